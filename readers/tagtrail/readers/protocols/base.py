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
from typing import Any, Generic, Literal, Protocol, TypeVar

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


MAX_FAILURE_DATA = 256
"""A garbage run keeps at most this many of its bytes in its failure record."""

R = TypeVar("R")


class StreamDecoderBase(Generic[R]):
    """The plumbing every protocol's stream decoder shares.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input
    (reports a held partial frame as ``truncated`` and a pending garbage run) and leaves
    the decoder empty for further use. ``counters`` counts good frames (``ok``) and
    failures by reason. Never raises.

    A protocol implements :meth:`_run`: decode ``buf`` from the start, append records and
    failures to ``out`` (``_fail`` for failures, ``_skip`` for bytes outside any frame,
    ``_emit_garbage`` to close a garbage run), and return how many bytes it consumed; with
    ``final`` it must consume everything.
    """

    __slots__ = ("_buf", "_garbage", "_garbage_len", "counters")

    def __init__(self) -> None:
        self._buf = b""
        self._garbage = bytearray()
        self._garbage_len = 0
        self.counters: dict[str, int] = dict.fromkeys(("ok", *FAILURE_REASONS), 0)

    @property
    def pending(self) -> int:
        """Bytes held: an incomplete frame plus a garbage run not yet reported."""
        return len(self._buf) + self._garbage_len

    def feed(self, data: bytes) -> list[R | DecodeFailure]:
        if not data:
            return []
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        out: list[R | DecodeFailure] = []
        pos = self._run(buf, out, final=False)
        self._buf = buf[pos:]
        return out

    def flush(self) -> list[R | DecodeFailure]:
        out: list[R | DecodeFailure] = []
        buf = self._buf
        self._buf = b""
        self._run(buf, out, final=True)
        self._emit_garbage(out)
        return out

    def _run(self, buf: bytes, out: list[R | DecodeFailure], final: bool) -> int:
        raise NotImplementedError

    def _emit_garbage(self, out: list[R | DecodeFailure]) -> None:
        if self._garbage_len:
            out.append(DecodeFailure("garbage", bytes(self._garbage)))
            self.counters["garbage"] += 1
            self._garbage = bytearray()
            self._garbage_len = 0

    def _skip(self, chunk: bytes) -> None:
        room = MAX_FAILURE_DATA - len(self._garbage)
        if room > 0:
            self._garbage += chunk[:room]
        self._garbage_len += len(chunk)

    def _fail(self, out: list[R | DecodeFailure], reason: FailureReason, data: bytes) -> None:
        out.append(DecodeFailure(reason, data))
        self.counters[reason] += 1
