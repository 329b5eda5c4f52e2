"""What every wire protocol module shares: the typed decode failure and its description.

A protocol module (one file per protocol, rtl_433's model) is pure: no I/O, no print.
It offers a ``StreamDecoder`` with ``feed(bytes) -> list``, ``flush() -> list``,
``pending`` and ``counters`` (``ok`` plus one counter per :data:`FailureReason`), a
``decode_stream(bytes)``, a ``record_to_dict(record)`` giving the JSON form used by
``tagtrail decode`` and the test vectors, and a :class:`ProtocolInfo` named ``PROTOCOL``
that the registry (:mod:`tagtrail.readers.registry`) lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

FailureReason = Literal["length", "checksum", "sanity", "garbage", "truncated"]
FAILURE_REASONS: tuple[FailureReason, ...] = (
    "length",
    "checksum",
    "sanity",
    "garbage",
    "truncated",
)


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """Bytes that are not a good frame, and why."""

    reason: FailureReason
    data: bytes


def failure_to_dict(failure: DecodeFailure) -> dict[str, Any]:
    return {"type": "invalid", "reason": failure.reason, "data": failure.data.hex().upper()}


class StreamDecoderLike(Protocol):
    """The decoder interface drivers and tests rely on."""

    counters: dict[str, int]

    @property
    def pending(self) -> int: ...

    def feed(self, data: bytes) -> Sequence[Any]: ...

    def flush(self) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class TagView:
    """A tag found in a decoded record, whatever the protocol."""

    epc: str
    antenna: int | None
    rssi_dbm: float | None


@dataclass(frozen=True)
class ProtocolInfo:
    """One wire protocol, as the registry and ``docs/readers.md`` describe it."""

    name: str
    title: str
    spec: str
    models: tuple[str, ...]
    default_baud: int | None
    typical_frame_bytes: int
    """A typical tag frame, for the line-rate ceiling: baud / 10 / this = frames/s."""
    reports: tuple[str, ...]
    """What a tag read carries, e.g. ("epc", "antenna", "rssi")."""
    new_decoder: Callable[[], StreamDecoderLike]
    decode_stream: Callable[[bytes], list[Any]]
    record_to_dict: Callable[[Any], dict[str, Any]]
    tags_of: Callable[[Any], TagView | None]
    """The tag a record holds, or None (replies, failures, status records)."""

    @property
    def line_rate_frames_s(self) -> float | None:
        if self.default_baud is None:
            return None
        return self.default_baud / 10 / self.typical_frame_bytes
