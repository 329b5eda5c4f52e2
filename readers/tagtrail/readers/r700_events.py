"""Impinj IoT device interface data stream: NDJSON lines of the R700's ``/api/v1/data/stream``.

Pure decoding: no I/O, no logging. Bad input gives a typed :class:`LineFailure`, never an
exception.

Framing
=======
``GET /api/v1/data/stream`` answers ``200`` with an endless HTTP/1.1 body (chunked), one
JSON object per line, lines ended by ``LF`` (a ``CR`` before it is dropped)::

    {"timestamp":"2026-01-01T00:00:01.250Z","eventType":"tagInventory",
     "tagInventoryEvent":{"epc":"MAISIwABAgMEBQYH","epcHex":"300122230001020304050607",
     "antennaPort":1,"antennaName":"Antenna 1","peakRssiCdbm":-5230,
     "frequency":915250,"transmitPowerCdbm":3000,"lastSeenTime":"2026-..."}}\\n

* With nothing to send for 30 s the reader sends a keep-alive, a bare ``CR LF`` (an empty
  line): :class:`KeepAlive`.
* ``eventType`` names the event; its body is under ``<eventType>Event``.
  ``tagInventory`` gives a :class:`TagInventory`; the other event types of the interface
  (:data:`OTHER_EVENT_TYPES`, e.g. ``inventoryStatus`` with
  ``{"inventoryStatus": "running" | "idle"}``) give an :class:`OtherEvent`.

Tag fields (``tagInventoryEvent``)
==================================
* ``epcHex``: the EPC as hex; ``epc``: the same bytes in base64. The reader's documented
  form is URL-safe base64; the standard alphabet and missing ``=`` padding are accepted
  too. ``epcHex`` is preferred; with only ``epc`` it is decoded; with both, they must
  agree (else ``epc_mismatch``). The EPC must be whole 16-bit words, 2-62 bytes.
* ``antennaPort`` (int, 1-32) is required; ``antennaName`` is optional text.
* ``peakRssiCdbm`` (int, centi-dBm: ``-5230`` = -52.3 dBm), ``frequency`` (kHz),
  ``transmitPowerCdbm``, ``lastSeenTime`` (ISO 8601) and ``timestamp`` are optional
  (the preset's ``eventConfig`` can turn each off); a present one of the wrong type is a
  ``bad_field``.

Failure reasons
===============
``json`` (not UTF-8 JSON), ``shape`` (not an object, or ``eventType`` missing or not a
string, or the event body missing or not an object), ``unknown_event`` (an
``eventType`` not listed here), ``missing_field`` (no ``antennaPort``, or neither
``epc`` nor ``epcHex``), ``bad_field`` (a field of the wrong type or range),
``bad_epc`` (not hex / base64, or not whole words), ``epc_mismatch``, ``too_long`` (a
line over :data:`MAX_LINE_BYTES`, dropped up to its end) and ``truncated`` (a line cut
off by the end of the stream).

Source: Impinj IoT device interface reference (Reader Configuration REST API, Swagger
1.x, ``/data/stream`` and the ``TagInventoryEvent`` definitions); event-type names other
than ``tagInventory`` and ``inventoryStatus`` were not checked against a device.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

LineFailureReason = Literal[
    "json",
    "shape",
    "unknown_event",
    "missing_field",
    "bad_field",
    "bad_epc",
    "epc_mismatch",
    "too_long",
    "truncated",
]
LINE_FAILURE_REASONS: tuple[LineFailureReason, ...] = (
    "json",
    "shape",
    "unknown_event",
    "missing_field",
    "bad_field",
    "bad_epc",
    "epc_mismatch",
    "too_long",
    "truncated",
)

MAX_LINE_BYTES = 64 * 1024
"""A longer line is dropped (``too_long``): a tag event is a few hundred bytes."""
MAX_FAILURE_DATA = 256
"""A failure keeps at most this many bytes of its line."""

TAG_INVENTORY = "tagInventory"
OTHER_EVENT_TYPES = frozenset(
    {
        "inventoryStatus",
        "inventoryTerminated",
        "antennaConnectionState",
        "diagnostic",
        "gpiTransition",
        "overflow",
        "tagLocate",
        "tagAuthentication",
    }
)
"""Event types of the interface that carry no tag read; passed on as :class:`OtherEvent`."""


@dataclass(frozen=True, slots=True)
class TagInventory:
    """One ``tagInventory`` event: a tag seen on an antenna."""

    epc: str
    """Upper-case hex."""
    antenna: int
    antenna_name: str | None = None
    rssi_dbm: float | None = None
    frequency_khz: int | None = None
    tx_power_cdbm: int | None = None
    last_seen: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An event of a known type that is not a tag read (status, diagnostics ...)."""

    event_type: str
    body: dict[str, Any]
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """An empty line: the reader's keep-alive."""


@dataclass(frozen=True, slots=True)
class LineFailure:
    """A line that is not a good event, and why."""

    reason: LineFailureReason
    line: bytes
    detail: str


StreamEvent = TagInventory | OtherEvent | KeepAlive


class _Bad(Exception):  # noqa: N818 - internal control flow of parse_line only
    def __init__(self, reason: LineFailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_line(line: bytes) -> StreamEvent | LineFailure:
    """Parse one line of the stream (without its ``LF``; a trailing ``CR`` is ignored)."""
    text = line.rstrip(b"\r")
    if not text.strip():
        return KeepAlive()
    try:
        return _parse(text)
    except _Bad as bad:
        return LineFailure(bad.reason, text[:MAX_FAILURE_DATA], bad.detail)


def _parse(text: bytes) -> StreamEvent:
    try:
        obj = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Bad("json", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _Bad("shape", f"a line is a JSON object, not {type(obj).__name__}")
    event_type = obj.get("eventType")
    if not isinstance(event_type, str):
        raise _Bad("shape", "no eventType string")
    timestamp = _opt_str(obj, "timestamp")
    if event_type != TAG_INVENTORY and event_type not in OTHER_EVENT_TYPES:
        raise _Bad("unknown_event", f"unknown eventType {event_type[:40]!r}")
    body = obj.get(f"{event_type}Event")
    if not isinstance(body, dict):
        raise _Bad("shape", f"no {event_type}Event object")
    if event_type != TAG_INVENTORY:
        return OtherEvent(event_type, body, timestamp)
    return _tag(body, timestamp)


def _tag(body: dict[str, Any], timestamp: str | None) -> TagInventory:
    antenna = body.get("antennaPort")
    if antenna is None:
        raise _Bad("missing_field", "no antennaPort")
    if not _is_int(antenna) or not 1 <= antenna <= 32:
        raise _Bad("bad_field", f"antennaPort {antenna!r} is not a port number")
    epc = _epc(body)
    rssi = body.get("peakRssiCdbm")
    if rssi is not None and (not _is_int(rssi) or not -15000 <= rssi <= 0):
        raise _Bad("bad_field", f"peakRssiCdbm {rssi!r} is not centi-dBm")
    frequency = body.get("frequency")
    if frequency is not None and (not _is_int(frequency) or frequency < 0):
        raise _Bad("bad_field", f"frequency {frequency!r} is not kHz")
    power = body.get("transmitPowerCdbm")
    if power is not None and not _is_int(power):
        raise _Bad("bad_field", f"transmitPowerCdbm {power!r} is not centi-dBm")
    return TagInventory(
        epc=epc,
        antenna=antenna,
        antenna_name=_opt_str(body, "antennaName"),
        rssi_dbm=None if rssi is None else rssi / 100,
        frequency_khz=frequency,
        tx_power_cdbm=power,
        last_seen=_opt_str(body, "lastSeenTime"),
        timestamp=timestamp,
    )


def _epc(body: dict[str, Any]) -> str:
    hex_value = body.get("epcHex")
    b64_value = body.get("epc")
    if hex_value is None and b64_value is None:
        raise _Bad("missing_field", "neither epcHex nor epc")
    if hex_value is None:
        return _epc_from_base64(b64_value)
    epc = _epc_from_hex(hex_value)
    if b64_value is not None:
        other = _epc_from_base64(b64_value)
        if other != epc:
            raise _Bad("epc_mismatch", f"epcHex {epc} but epc decodes to {other}")
    return epc


def _epc_from_hex(value: object) -> str:
    if not isinstance(value, str):
        raise _Bad("bad_epc", "epcHex is not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise _Bad("bad_epc", f"epcHex {value[:40]!r} is not hex") from None
    return _check_words(raw, "epcHex")


def _epc_from_base64(value: object) -> str:
    if not isinstance(value, str) or not value.isascii():
        raise _Bad("bad_epc", "epc is not a base64 string")
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("bad_epc", f"epc {value[:40]!r} is not base64") from None
    return _check_words(raw, "epc")


def _check_words(raw: bytes, name: str) -> str:
    if not raw or len(raw) % 2 or len(raw) > 62:
        raise _Bad("bad_epc", f"{name} holds {len(raw)} bytes, not 1-31 whole 16-bit words")
    return raw.hex().upper()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


class LineDecoder:
    """Splits the stream's bytes into lines and parses each one.

    ``feed`` returns the events and failures completed by the new bytes; ``flush`` ends
    the stream (a held partial line is ``truncated``). ``counters`` counts good lines
    (``ok``, keep-alives included as ``keepalive``) and failures by reason. A line longer
    than ``max_line`` is dropped up to its end (``too_long``) so memory stays bounded.
    Never raises.
    """

    __slots__ = ("_buf", "_dropping", "counters", "max_line")

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._dropping = False
        self.counters: dict[str, int] = dict.fromkeys(("ok", "keepalive", *LINE_FAILURE_REASONS), 0)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line held."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[StreamEvent | LineFailure]:
        out: list[StreamEvent | LineFailure] = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                self._hold(data[start:], out)
                break
            if self._dropping:
                self._dropping = False
            else:
                self._buf += data[start:end]
                self._emit(bytes(self._buf), out)
            self._buf.clear()
            start = end + 1
        return out

    def flush(self) -> list[StreamEvent | LineFailure]:
        out: list[StreamEvent | LineFailure] = []
        if self._buf.strip():
            self._count("truncated")
            out.append(
                LineFailure("truncated", bytes(self._buf[:MAX_FAILURE_DATA]), "line cut off")
            )
        self._buf.clear()
        self._dropping = False
        return out

    def _hold(self, chunk: bytes, out: list[StreamEvent | LineFailure]) -> None:
        if self._dropping:
            return
        self._buf += chunk
        if len(self._buf) > self.max_line:
            self._count("too_long")
            out.append(
                LineFailure(
                    "too_long",
                    bytes(self._buf[:MAX_FAILURE_DATA]),
                    f"line longer than {self.max_line} bytes",
                )
            )
            self._buf.clear()
            self._dropping = True

    def _emit(self, line: bytes, out: list[StreamEvent | LineFailure]) -> None:
        if len(line) > self.max_line:
            self._count("too_long")
            out.append(
                LineFailure(
                    "too_long", line[:MAX_FAILURE_DATA], f"line longer than {self.max_line} bytes"
                )
            )
            return
        rec = parse_line(line)
        if isinstance(rec, LineFailure):
            self._count(rec.reason)
        elif isinstance(rec, KeepAlive):
            self._count("keepalive")
        else:
            self._count("ok")
        out.append(rec)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
