"""EM4100 125 kHz readers in ASCII mode: ``STX | 10 hex | 2 hex checksum | [CR LF] | ETX``.

Pure decoding: no I/O, no logging. Bad input gives a typed :class:`DecodeFailure`, never
an exception.

Frame
=====
Two forms, both 9600 baud 8N1, reader -> host only::

    RDM6300 / RDM630 (14 bytes)
    +------+---------------------+-------------------+------+
    | STX  | DATA                | CHECKSUM          | ETX  |
    | 0x02 | 10 ASCII hex digits | 2 ASCII hex digits| 0x03 |
    +------+---------------------+-------------------+------+

    ID-Innovations ID-12 / ID-20 (and the -LA variants), ASCII output format (16 bytes)
    +------+---------------------+-------------------+------+------+------+
    | STX  | DATA                | CHECKSUM          |  CR  |  LF  | ETX  |
    | 0x02 | 10 ASCII hex digits | 2 ASCII hex digits| 0x0D | 0x0A | 0x03 |
    +------+---------------------+-------------------+------+------+------+

* ``DATA`` is the tag's 40-bit EM4100 code as 10 upper-case hex digits, most significant
  first: one version / customer-id byte, then the 32-bit card number. For example
  ``67003B51C6``: version 0x67, card 0x003B51C6 = 3887558. Cards printed with a number
  usually show the card number as 10 decimal digits (``0003887558``).
* ``CHECKSUM`` is the XOR of the 5 data bytes, as 2 hex digits:
  ``67 ^ 00 ^ 3B ^ 51 ^ C6 = CB``, so the frame text is ``67003B51C6CB``.
* The decoder accepts both forms and records which one it saw (``crlf``).

The code is **not an EPC**: it is the 40-bit EM4100 identity. It is what
:func:`tag_of` reports as ``TagView.epc`` (10 upper-case hex digits) so that the edge can
track these tags like any other, with antenna 1 (the readers have one coil) and no RSSI.

Upper case only
===============
Every datasheet and published capture shows upper-case digits (RDM630 spec example
``62E3086CED`` + ``08``; ID-12 datasheet example ``0C000621A5`` + ``8E``; captures in
forum threads). A frame with lower-case digits is therefore not something a documented
reader sends; it is rejected as ``sanity``, like any other non-hex character. This also
keeps the identity canonical: a code is exactly one string.

Presence and repeats
====================
These readers send a frame per read and, while a card stays in the field, repeat it
(the RDM6300 about every 50 ms). There is no "card left" frame: presence is a timeout
on the last frame, which is the driver's / edge's job. The decoder reports every frame.
Note that the RDM630 spec also lists a "standard design" that reads a card once and not
again until it has left the field; with such a unit a timeout means "not re-read", not
"gone".

Commands
========
None. These readers take no host commands (the RDM6300's RX pin does nothing), so this
module has no command encoders; :func:`checksum` is the only encoding helper.

Failures
========
``DecodeFailure.reason`` is one of:

* ``garbage``: a run of bytes outside any frame (one failure per run; ``data`` holds at
  most the first :data:`MAX_FAILURE_DATA` bytes).
* ``truncated``: an ``STX`` followed by a new ``STX`` before any ``ETX`` (the frame was
  cut short, e.g. a reader reset), or still incomplete at :meth:`StreamDecoder.flush`.
* ``length``: an ``ETX`` at the wrong place (the frame is neither 14 nor 16 bytes), or
  no ``STX``/``ETX`` at all within the 16 bytes after an ``STX`` (the failure then holds
  those 16 bytes and the search goes on after them).
* ``sanity``: right length but impossible content: a non-hex or lower-case digit, or a
  16-byte frame without ``CR LF`` before its ``ETX``.
* ``checksum``: the XOR of the data bytes is not the checksum byte.

Resynchronisation (:class:`StreamDecoder`)
==========================================
``STX`` (0x02) and ``ETX`` (0x03) never occur inside a good frame (its bytes are hex
digits, CR and LF), so framing needs no checksum search: a frame starts at an ``STX`` and
ends at the first ``ETX``, unless another ``STX`` comes first. The decoder finds ``STX``
with ``bytes.find``; bytes before it form a ``garbage`` run. It then looks at the next
15 bytes only, and decides as soon as they hold an ``STX`` or ``ETX`` (or all 15 are
there): the decision never depends on bytes further on, so the output does not depend on
how the input is split into chunks, and at most 15 bytes are held between feeds.

Speed: per frame, three ``bytes.find`` calls, a ``translate`` to check the digits, one
``int(digits, 16)``, an XOR fold of that integer and a record whose slots are filled
directly. ``bench/`` measures it; a 9600-baud line carries at most 68.6 frames/s.

Sources: RDM630 / RDM6300 specification (Seeed / ITEAD; frame ``02 | 10 ASCII data | 2
ASCII checksum | 03`` with the worked example ``62E3086CED`` -> 08). ID-Innovations
"ID-2/12/20 LA Series Datasheet" (rev. 2013) and the older ID-12/ID-20 datasheet, section
"Data Formats": "Output Data Structure - ASCII - 9600 Baud, No Parity, 1 stop bit:
STX (02h) DATA (10 ASCII) CHECK SUM (2 ASCII) CR LF ETX (03h)", with the worked example
``0C000621A58E`` whose bit-column XOR gives 8E (the prose line beside it says "the actual
data is 0C,00,00,06,21,A5 and the checksum is 6E", a typo: the arithmetic and the output
string agree on 8E). The version-byte / 32-bit-number
split matches published captures whose printed card numbers are the last 4 bytes in
decimal (``3C00CE754C`` -> card 0013530444). ``tests/vectors/em4100/README.md`` lists where
each source and capture was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols.base import (
    FAILURE_REASONS,
    MAX_FAILURE_DATA,
    DecodeFailure,
    FailureReason,
    ProtocolInfo,
    StreamDecoderBase,
    TagView,
    failure_to_dict,
)

__all__ = ["FAILURE_REASONS", "DecodeFailure", "FailureReason"]

STX = 0x02
ETX = 0x03
CRLF = b"\r\n"
SHORT_FRAME = 14
"""RDM6300: STX, 12 digits, ETX."""
LONG_FRAME = 16
"""ID-12/ID-20: STX, 12 digits, CR, LF, ETX."""

_HEX_DIGITS = b"0123456789ABCDEF"


@dataclass(frozen=True, slots=True)
class TagRecord:
    """One EM4100 read."""

    code: str
    """The 40-bit EM4100 code: 10 upper-case hex digits (version byte + card number)."""
    version: int
    """First data byte: version / customer id."""
    card: int
    """Last 4 data bytes as a big-endian integer."""
    checksum: int
    """The checksum byte as sent (equal to the XOR of the 5 data bytes)."""
    crlf: bool
    """True for the ID-12/ID-20 form with CR LF before ETX."""


Record = TagRecord
Decoded = TagRecord | DecodeFailure


_new = object.__new__
_SETTERS = {name: getattr(TagRecord, name).__set__ for name in TagRecord.__slots__}
_set_code = _SETTERS["code"]
_set_version = _SETTERS["version"]
_set_card = _SETTERS["card"]
_set_checksum = _SETTERS["checksum"]
_set_crlf = _SETTERS["crlf"]


# --- encoding ----------------------------------------------------------------------------


def checksum(data: bytes | bytearray) -> int:
    """XOR of the 5 data bytes of an EM4100 code (raises :class:`ProtocolError` otherwise)."""
    if not isinstance(data, bytes | bytearray) or len(data) != 5:
        raise ProtocolError(f"an EM4100 code is 5 bytes, got {data!r}")
    x = 0
    for b in data:
        x ^= b
    return x


# --- decoding ----------------------------------------------------------------------------


def _frame(buf: bytes, p: int, end: int) -> Decoded:
    """Interpret ``buf[p:end]``, which starts with STX and ends with ETX."""
    n = end - p
    if n == SHORT_FRAME:
        crlf = False
    elif n == LONG_FRAME:
        if buf[p + 13 : p + 15] != CRLF:
            return DecodeFailure("sanity", buf[p:end])
        crlf = True
    else:
        return DecodeFailure("length", buf[p:end])
    digits = buf[p + 1 : p + 13]
    if digits.translate(None, _HEX_DIGITS):
        return DecodeFailure("sanity", buf[p:end])
    value = int(digits, 16)
    code = value >> 8
    check = value & 0xFF
    # XOR of the five bytes of ``code``: fold bytes 0/2/4 and 1/3 together, then the two.
    t = code ^ (code >> 16) ^ (code >> 32)
    if (t ^ (t >> 8)) & 0xFF != check:
        return DecodeFailure("checksum", buf[p:end])
    rec = _new(TagRecord)
    _set_code(rec, digits[:10].decode("ascii"))
    _set_version(rec, code >> 32)
    _set_card(rec, code & 0xFFFFFFFF)
    _set_checksum(rec, check)
    _set_crlf(rec, crlf)
    return rec


def decode_frame(frame: bytes | bytearray) -> Decoded:
    """Decode exactly one frame (either form). Never raises for any ``bytes`` input."""
    data = bytes(frame)
    n = len(data)
    if n == 0 or data[0] != STX:
        return DecodeFailure("garbage", data[:MAX_FAILURE_DATA])
    if data[-1] != ETX:
        return DecodeFailure("length", data)
    return _frame(data, 0, n)


class StreamDecoder(StreamDecoderBase[Record]):
    """Decode a byte stream chunk by chunk, resynchronising after bad bytes.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input
    (reports a held partial frame as ``truncated`` and a pending garbage run) and leaves
    the decoder empty for further use. ``counters`` counts good frames (``ok``) and
    failures by reason. Never raises.
    """

    __slots__ = ()

    def _run(self, buf: bytes, out: list[Decoded], final: bool) -> int:
        """Decode ``buf`` from 0; return how far it was consumed."""
        n = len(buf)
        pos = 0
        ok = 0
        find = buf.find
        frame = _frame
        append = out.append
        try:
            while True:
                p = find(STX, pos)
                if p < 0:
                    if pos < n:
                        self._skip(buf[pos:])
                    return n
                if p > pos:
                    self._skip(buf[pos:p])
                if self._garbage_len:
                    self._emit_garbage(out)
                lim = p + LONG_FRAME
                e = find(ETX, p + 1, lim)
                s = find(STX, p + 1, lim if e < 0 else e)
                if s >= 0:
                    self._fail(out, "truncated", buf[p:s])
                    pos = s
                    continue
                if e >= 0:
                    pos = e + 1
                    rec = frame(buf, p, pos)
                    if type(rec) is DecodeFailure:
                        self.counters[rec.reason] += 1
                    else:
                        ok += 1
                    append(rec)
                    continue
                if lim <= n:
                    # 15 bytes after the STX and no STX/ETX: no frame is that long.
                    self._fail(out, "length", buf[p:lim])
                    pos = lim
                    continue
                if not final:
                    return p
                self._fail(out, "truncated", buf[p:])
                return n
        finally:
            self.counters["ok"] += ok


def decode_stream(data: bytes) -> list[Decoded]:
    """Decode a complete byte string (feed plus flush)."""
    dec = StreamDecoder()
    return dec.feed(data) + dec.flush()


# --- JSON form ---------------------------------------------------------------------------


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors."""
    if isinstance(rec, TagRecord):
        return {
            "type": "tag",
            "code": rec.code,
            "version": rec.version,
            "card": rec.card,
            "checksum": f"{rec.checksum:02X}",
            "crlf": rec.crlf,
        }
    return failure_to_dict(rec)


def tag_of(rec: Decoded) -> TagView | None:
    """The tag a record holds: the 10-digit EM4100 code as ``epc``, antenna 1, no RSSI."""
    if isinstance(rec, TagRecord):
        return TagView(rec.code, 1, None)
    return None


PROTOCOL = ProtocolInfo(
    name="em4100",
    title="EM4100 125 kHz readers, ASCII frames (STX, 10+2 hex digits, [CR LF], ETX)",
    spec="RDM630/RDM6300 specification and ID-Innovations ID-2/12/20 datasheet (ASCII output "
    "format); see this module's docstring",
    models=(
        "RDM6300 / RDM630 125 kHz UART modules (and the many clones)",
        "ID-Innovations ID-12, ID-20, ID-12LA, ID-20LA in ASCII mode",
    ),
    default_baud=9600,
    typical_frame_bytes=SHORT_FRAME,
    reports=("40-bit EM4100 code (as epc, not an EPC)", "card number", "version byte"),
    new_decoder=StreamDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
