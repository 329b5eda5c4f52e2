"""Handheld barcode (and RFID) scanners in serial line mode: one scan per text line.

Pure decoding: no I/O, no logging. Bad input gives a typed :class:`DecodeFailure`, never
an exception.

Frame
=====
Scanners attached as USB CDC-ACM (a virtual serial port, ``/dev/ttyACM*``) or RS-232 send
each scan as a line, scanner -> host only::

    +-----------------+----------------------------+--------------------+--------------+
    | PREFIX          | AIM SYMBOLOGY IDENTIFIER   | DATA               | SUFFIX       |
    | configured,     | optional: ']' + code char  | the symbol's text, | configured:  |
    | often empty     | + modifier, e.g. ']C1'     | GS (0x1D) = FNC1   | CR LF, CR,   |
    |                 |                            |                    | LF or Tab    |
    +-----------------+----------------------------+--------------------+--------------+

* The prefix and suffix are set in the scanner (Honeywell "Prefix/Suffix", Zebra "Scan
  Data Options", Datalogic "Global Prefix/Suffix"); the factory suffix is usually CR or
  CR LF. :class:`LineDecoder` takes the same settings; the defaults (no prefix, CR LF,
  AIM on) are what the vector files use.
* The AIM identifier (ISO/IEC 15424) names the symbology: ``]C1`` GS1-128, ``]C0`` Code
  128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR, ``]Q1`` QR, ``]e0`` GS1 DataBar, ``]E0``
  EAN-13/UPC-A, ``]E4`` EAN-8, ... When ``aim`` is on and a line starts with ``]``, a code
  letter and an alphanumeric modifier, those three characters become
  :attr:`Scan.symbology`; a line without one keeps ``symbology=None`` (some scanners omit
  it for some symbologies). With ``aim`` off the text is kept whole.
* FNC1 field separators of GS1 symbols arrive as GS (0x1D), the one control character a
  line may hold. :mod:`tagtrail.readers.gs1` parses GS1 payloads; this module only frames.
* Data is UTF-8 (plain ASCII for 1D symbols; QR/DataMatrix may carry UTF-8 text).
* RFID handhelds (Zebra RFD40/RFD8500, Chainway, TSL 1128 in "barcode-like" output) send
  an EPC as a line of 24 or more hex digits. :func:`tag_of` reports such a line, when it
  carries no AIM identifier, as a tag (``TagView(epc=HEX)``); barcode scans are not tags
  and give None (they become GS1 identities through :mod:`tagtrail.readers.gs1`).

Baud: on CDC-ACM the port is virtual and the baud setting is ignored by the device; data
moves at USB speed. :data:`PROTOCOL` lists 115200 (the common RS-232 setting) so the
line-rate figure means something for RS-232 scanners; a typical scan line is about 30
bytes (a GS1-128 SSCC label with AIM identifier and CR LF is 25).

Failures
========
``DecodeFailure.reason`` is one of:

* ``length``: a line longer than ``max_line`` bytes (everything before the suffix), or a
  line with nothing but the prefix / identifier. An over-long line is reported once,
  as soon as it is certain, with its first bytes (at most ``min(max_line + 1, 256)``); the
  rest up to the next suffix is dropped.
* ``sanity``: a control character other than GS (stray CR/LF/Tab/NUL ...) or bytes that
  are not UTF-8.
* ``garbage``: a line that does not start with the configured prefix (if the prefix occurs
  later in the line, the bytes before it are the garbage and the rest is decoded), or an
  empty line.
* ``truncated``: an unfinished line at :meth:`LineDecoder.flush`.

Resynchronisation is by the suffix: every suffix ends a line, so one bad line never
affects the next. The decision about a line never depends on how the bytes were chunked.
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

__all__ = ["FAILURE_REASONS", "MAX_FAILURE_DATA", "DecodeFailure", "FailureReason"]

SUFFIXES: dict[str, bytes] = {"crlf": b"\r\n", "cr": b"\r", "lf": b"\n", "tab": b"\t"}
"""The suffixes scanners offer, by config name."""
GS = 0x1D
MIN_EPC_HEX = 24
"""Fewest hex digits in a line that :func:`tag_of` takes for an EPC (a 96-bit EPC)."""
MAX_EPC_HEX = 124
_HEX = frozenset("0123456789ABCDEFabcdef")
_AIM_CODES = frozenset("ABCDEFGHIKLMNOPQRSTUXYZcdeopsz")
# C0 controls and DEL except GS: any of these in a line is a ``sanity`` failure.
_BAD_CONTROLS = bytes(b for b in [*range(0x20), 0x7F] if b != GS)


@dataclass(frozen=True, slots=True)
class Scan:
    """One scanned symbol."""

    text: str
    """The data, without prefix, AIM identifier and suffix; GS (0x1D) kept."""
    symbology: str | None
    """The AIM identifier, e.g. ``]C1``, or None if the line had none (or ``aim`` is off)."""
    raw: bytes
    """The whole line as received, prefix and suffix included."""


Record = Scan
Decoded = Scan | DecodeFailure


class LineDecoder(StreamDecoderBase[Scan]):
    """Decode a scanner's byte stream into :class:`Scan` records, line by line.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input
    (an unfinished line is ``truncated``) and leaves the decoder empty for further use.
    ``counters`` counts good lines (``ok``) and failures by reason. Never raises once
    constructed; bad settings raise :class:`ProtocolError`. ``pending`` is the start of
    an unfinished line (or the tail of a dropped over-long one that may hold half of a
    CR LF).
    """

    __slots__ = ("_skipping", "aim", "max_line", "prefix", "suffix")

    def __init__(
        self,
        prefix: bytes = b"",
        suffix: bytes = b"\r\n",
        aim: bool = True,
        max_line: int = 4096,
    ) -> None:
        if suffix not in SUFFIXES.values():
            raise ProtocolError(
                f"suffix must be one of CR LF, CR, LF or Tab ({list(SUFFIXES)}), got {suffix!r}"
            )
        if prefix.translate(None, _BAD_CONTROLS) != prefix or GS in prefix:
            raise ProtocolError(f"prefix must be printable, got {prefix!r}")
        if max_line < 1:
            raise ProtocolError(f"max_line must be at least 1, got {max_line}")
        super().__init__()
        self.prefix = bytes(prefix)
        self.suffix = bytes(suffix)
        self.aim = aim
        self.max_line = max_line
        self._skipping = False

    def _run(self, buf: bytes, out: list[Decoded], final: bool) -> int:
        """Decode the complete lines of ``buf``; return how far it was consumed."""
        suffix = self.suffix
        slen = len(suffix)
        pos = 0
        while True:
            end = buf.find(suffix, pos)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                self._line(buf, pos, end, out)
            pos = end + slen
        n = len(buf)
        if final:
            if pos < n and not self._skipping:
                self._fail(out, "truncated", buf[pos : pos + MAX_FAILURE_DATA])
            self._skipping = False
            return n
        # Of a line being dropped, keep only what could be the start of a suffix split
        # across feeds.
        keep = slen - 1
        if self._skipping:
            return max(pos, n - keep)
        if n - pos - keep > self.max_line:
            # The line is already longer than max_line whatever comes next.
            self._fail(out, "length", buf[pos : pos + self._length_data()])
            self._skipping = True
            return max(pos, n - keep)
        return pos

    # -- internals --

    def _length_data(self) -> int:
        return min(self.max_line + 1, MAX_FAILURE_DATA)

    def _line(self, buf: bytes, start: int, end: int, out: list[Decoded]) -> None:
        """Decode ``buf[start:end]`` (a line without its suffix)."""
        raw_end = end + len(self.suffix)
        if end == start:
            self._fail(out, "garbage", buf[start:raw_end])
            return
        if end - start > self.max_line:
            # Judged on the whole line, garbage included, as feed() does before the
            # suffix arrives: the result must not depend on chunking.
            self._fail(out, "length", buf[start : start + self._length_data()])
            return
        prefix = self.prefix
        if prefix and not buf.startswith(prefix, start, end):
            p = buf.find(prefix, start, end)
            if p < 0:
                self._fail(out, "garbage", buf[start:raw_end][:MAX_FAILURE_DATA])
                return
            self._fail(out, "garbage", buf[start:p][:MAX_FAILURE_DATA])
            start = p
        raw = buf[start:raw_end]
        body = buf[start + len(prefix) : end]
        if body.translate(None, _BAD_CONTROLS) != body:
            self._fail(out, "sanity", raw[:MAX_FAILURE_DATA])
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(out, "sanity", raw[:MAX_FAILURE_DATA])
            return
        symbology: str | None = None
        if (
            self.aim
            and len(text) >= 3
            and text[0] == "]"
            and text[1] in _AIM_CODES
            and text[2].isascii()
            and text[2].isalnum()
        ):
            symbology, text = text[:3], text[3:]
        if not text:
            self._fail(out, "length", raw[:MAX_FAILURE_DATA])
            return
        out.append(Scan(text, symbology, raw))
        self.counters["ok"] += 1


StreamDecoder = LineDecoder
"""The registry's name for this module's decoder (defaults: no prefix, CR LF, AIM on)."""


def decode_stream(data: bytes) -> list[Decoded]:
    """Decode a complete byte string with the default settings (feed plus flush)."""
    dec = LineDecoder()
    return dec.feed(data) + dec.flush()


# --- JSON form ---------------------------------------------------------------------------


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors."""
    if isinstance(rec, Scan):
        return {
            "type": "scan",
            "symbology": rec.symbology,
            "text": rec.text,
            "raw": rec.raw.hex().upper(),
        }
    return failure_to_dict(rec)


def epc_of(text: str) -> str | None:
    """``text`` as an upper-case EPC if it is 24-124 hex digits in whole 16-bit words."""
    n = len(text)
    if MIN_EPC_HEX <= n <= MAX_EPC_HEX and n % 4 == 0 and _HEX.issuperset(text):
        return text.upper()
    return None


def tag_of(rec: Decoded) -> TagView | None:
    """An RFID handheld's EPC line as a tag (antenna 1, no RSSI); barcode scans give None.

    A line with an AIM identifier came from a barcode, so it is never a tag, whatever its
    text. A line without one is a tag when its text is an EPC (:func:`epc_of`).
    """
    if isinstance(rec, Scan) and rec.symbology is None:
        epc = epc_of(rec.text)
        if epc is not None:
            return TagView(epc, 1, None)
    return None


PROTOCOL = ProtocolInfo(
    name="ascii",
    title="Handheld barcode/RFID scanners in serial line mode "
    "([prefix] [AIM id] text suffix; CDC-ACM or RS-232)",
    spec="Scanner line output with AIM symbology identifiers (ISO/IEC 15424); see this "
    "module's docstring. Baud is irrelevant on CDC-ACM (virtual port)",
    models=(
        "Honeywell Xenon / Granit / Voyager in USB serial (CDC-ACM) or RS-232 mode",
        "Zebra DS22xx/DS36xx/DS81xx in USB CDC or RS-232 mode",
        "Datalogic Gryphon / PowerScan, Newland, and other line-mode scanners",
        "RFID handhelds that output an EPC as a hex line",
    ),
    default_baud=115200,
    typical_frame_bytes=30,
    reports=("barcode text", "AIM symbology identifier", "EPC (RFID handhelds only)"),
    new_decoder=LineDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
