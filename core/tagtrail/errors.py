"""The one root error class of tagtrail and its few subclasses.

Foreign errors (``OSError``, ``serial.SerialException``, ``sqlite3.Error``, pydantic's
``ValidationError`` ...) are converted at the boundary where they occur with
``raise TagtrailError(...) from exc`` so that callers only ever catch ``TagtrailError``.
"""

from __future__ import annotations


class TagtrailError(Exception):
    """Root of every error tagtrail raises on purpose."""


class ConfigError(TagtrailError):
    """A configuration file is missing, unreadable or invalid.

    ``problems`` holds one ``(field_path, reason)`` pair per failing field.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "; ".join(f"{path}: {reason}" for path, reason in problems)
        super().__init__(f"{source}: {lines}")


class ProtocolError(TagtrailError):
    """A reader protocol was used wrongly (bad command argument, impossible frame)."""


class TransportError(TagtrailError):
    """A serial port or socket to a reader failed."""


class OutboxError(TagtrailError):
    """The durable outbox could not store or read events."""


class PublishError(TagtrailError):
    """The MQTT broker could not be reached or refused us."""


class ContractError(TagtrailError):
    """A payload does not match the tagtrail event contract."""
