"""USB HID keyboard-wedge scanners, read as Linux evdev key events.

Pure decoding: no I/O, no logging. Bad input gives a typed :class:`DecodeFailure`, never
an exception.

Frame
=====
A keyboard-wedge scanner is a USB keyboard that types each scan. Linux delivers its keys
on ``/dev/input/eventN`` as fixed-size ``struct input_event`` records (linux/input.h),
native byte order; on 64-bit Linux (and 32-bit with 64-bit time) 24 bytes::

    +----------------------+----------------------+---------+---------+-------------+
    | tv_sec (8, signed)   | tv_usec (8, signed)  | type(2) | code(2) | value(4, s) |
    +----------------------+----------------------+---------+---------+-------------+

32-bit x86/ARM with 32-bit time use 4-byte seconds and microseconds (16 bytes);
``event_size`` selects the layout. Only ``EV_KEY`` (type 1) events matter: ``value`` 1
is a press, 0 a release, 2 an auto-repeat (typed again, as a keyboard would). ``EV_SYN``
(0), ``EV_MSC`` (4, scan codes), ``EV_LED`` (17) and ``EV_REP`` (20) are ignored.

Keys become characters with the US layout the scanner must be set to (the usual
factory setting): letters, digits and punctuation with Shift; the keypad; ``Ctrl+]``
types GS (0x1D), the FNC1 separator of GS1 symbols, as scanners in "control character"
mode send it; ``Alt`` held while keypad digits are typed gives the character of that
decimal code on release of Alt (the other common way scanners send GS: Alt+0029).
Enter (or keypad Enter) or Tab, whichever the scanner is set to send, ends a scan. The
completed line is framed like a serial scanner's
(:class:`~tagtrail.readers.protocols.ascii_lines.LineDecoder`: AIM identifier, length,
control characters), so both scanner kinds yield the same
:class:`~tagtrail.readers.protocols.ascii_lines.Scan` records.

Source: linux/input.h and linux/input-event-codes.h (key codes), the USB HID usage
tables as Linux maps them, ISO/IEC 15424 for AIM identifiers.

Failures
========
* ``sanity``: a line typed with a key that has no character in the layout (F-keys,
  arrows, Ctrl+letter ...), an event type above ``EV_MAX`` (0x1f), or a key value other
  than 0/1/2. A key without a character spoils its whole line: the line is reported as
  a failure when its end key arrives (a scan missing a character must never pass as a
  different, valid code). Failures from the line framer (control characters, empty line,
  over-long line) keep their reasons.
* ``truncated``: at :meth:`HidDecoder.flush`, a partial event record, or a line typed
  without its end key.
"""

from __future__ import annotations

import struct
from typing import Any

from tagtrail.readers.protocols.ascii_lines import LineDecoder, Scan, tag_of
from tagtrail.readers.protocols.ascii_lines import record_to_dict as _line_record_to_dict
from tagtrail.readers.protocols.base import (
    MAX_FAILURE_DATA,
    DecodeFailure,
    ProtocolInfo,
    StreamDecoderBase,
)

EV_SYN, EV_KEY, EV_MAX = 0x00, 0x01, 0x1F
EVENT_SIZE_64 = 24
EVENT_SIZE_32 = 16
NATIVE_EVENT_SIZE = struct.calcsize("@llHHi")
GS = "\x1d"

KEY_LEFTCTRL, KEY_RIGHTCTRL = 29, 97
KEY_LEFTSHIFT, KEY_RIGHTSHIFT = 42, 54
KEY_LEFTALT, KEY_RIGHTALT = 56, 100
KEY_CAPSLOCK = 58
KEY_ENTER, KEY_KPENTER, KEY_TAB = 28, 96, 15
KEY_RIGHTBRACE = 27

_MODIFIERS = frozenset(
    {KEY_LEFTCTRL, KEY_RIGHTCTRL, KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_LEFTALT, KEY_RIGHTALT}
)

# US layout: key code -> (plain, shifted).
_US: dict[int, tuple[str, str]] = {}
for _first, _plain, _shifted in (
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
):
    for _i, (_p, _s) in enumerate(zip(_plain, _shifted, strict=True)):
        _US[_first + _i] = (_p, _s)
_US[57] = (" ", " ")
# Keypad (num lock on, as scanners assume): same character with or without Shift.
_KEYPAD: dict[int, str] = {
    71: "7", 72: "8", 73: "9", 75: "4", 76: "5", 77: "6", 79: "1", 80: "2", 81: "3",
    82: "0", 83: ".", 55: "*", 74: "-", 78: "+", 98: "/",
}  # fmt: skip
_KEYPAD_DIGITS = {code: ch for code, ch in _KEYPAD.items() if ch.isdigit()}

END_KEYS: dict[str, frozenset[int]] = {
    "enter": frozenset({KEY_ENTER, KEY_KPENTER}),
    "tab": frozenset({KEY_TAB}),
}
"""Keys that end a scan, by the scanner's suffix setting."""
_END_BYTES = {"enter": b"\r", "tab": b"\t"}


class HidDecoder(StreamDecoderBase[Scan]):
    """Decode a keyboard-wedge scanner's evdev byte stream into :class:`Scan` records.

    ``suffix`` is the end key (``enter`` or ``tab``); ``aim`` as for line scanners.
    ``counters`` counts good scans (``ok``) and failures by reason.
    """

    __slots__ = (
        "_alt_code",
        "_bad",
        "_caps",
        "_ctrl",
        "_fmt",
        "_line",
        "_lines",
        "_shift",
        "_size",
        "_spoiler",
        "end_keys",
        "suffix",
    )

    def __init__(
        self,
        suffix: str = "enter",
        aim: bool = True,
        max_line: int = 4096,
        event_size: int = NATIVE_EVENT_SIZE,
    ) -> None:
        if suffix not in END_KEYS:
            raise ValueError(f"suffix must be one of {sorted(END_KEYS)}, got {suffix!r}")
        if event_size not in (EVENT_SIZE_64, EVENT_SIZE_32):
            raise ValueError(f"event_size must be 24 or 16, got {event_size}")
        super().__init__()
        self.suffix = suffix
        self.end_keys = END_KEYS[suffix]
        self._size = event_size
        self._fmt = struct.Struct("@qqHHi" if event_size == EVENT_SIZE_64 else "@iiHHi")
        self._lines = LineDecoder(suffix=_END_BYTES[suffix], aim=aim, max_line=max_line)
        self._line = bytearray()
        self._bad = False
        self._spoiler = b""
        self._shift: set[int] = set()
        self._ctrl: set[int] = set()
        self._alt_code: str | None = None
        self._caps = False

    @property
    def pending(self) -> int:
        return super().pending + len(self._line)

    def _run(self, buf: bytes, out: list[Scan | DecodeFailure], final: bool) -> int:
        size = self._size
        unpack = self._fmt.unpack_from
        pos = 0
        n = len(buf)
        while n - pos >= size:
            _sec, _usec, etype, code, value = unpack(buf, pos)
            if etype > EV_MAX or (etype == EV_KEY and value not in (0, 1, 2)):
                self._fail(out, "sanity", buf[pos : pos + size])
            elif etype == EV_KEY:
                self._key(code, value, buf[pos : pos + size], out)
            pos += size
        if final:
            if pos < n:
                self._fail(out, "truncated", buf[pos:n])
            if self._line:
                self._fail(out, "truncated", bytes(self._line[:MAX_FAILURE_DATA]))
            self._reset_line()
            self._shift.clear()
            self._ctrl.clear()
            self._alt_code = None
            return n
        return pos

    def _key(self, code: int, value: int, raw: bytes, out: list[Scan | DecodeFailure]) -> None:
        if code in _MODIFIERS:
            held = value != 0
            if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
                (self._shift.add if held else self._shift.discard)(code)
            elif code in (KEY_LEFTCTRL, KEY_RIGHTCTRL):
                (self._ctrl.add if held else self._ctrl.discard)(code)
            elif value == 1:
                self._alt_code = ""
            elif value == 0:
                self._end_alt_code()
            return
        if value == 0:
            return  # releases type nothing
        if code == KEY_CAPSLOCK:
            if value == 1:
                self._caps = not self._caps
            return
        if code in self.end_keys:
            self._end_line(out)
            return
        if self._alt_code is not None:
            digit = _KEYPAD_DIGITS.get(code)
            if digit is not None:
                self._alt_code += digit
            else:
                self._spoil(raw)
            return
        if self._ctrl:
            if code == KEY_RIGHTBRACE:
                self._line += GS.encode()
            else:
                self._spoil(raw)
            return
        ch = _KEYPAD.get(code)
        if ch is None:
            pair = _US.get(code)
            if pair is None:
                self._spoil(raw)
                return
            shifted = bool(self._shift)
            if self._caps and pair[0].isalpha():
                shifted = not shifted
            ch = pair[1] if shifted else pair[0]
        self._line += ch.encode()

    def _end_alt_code(self) -> None:
        digits, self._alt_code = self._alt_code, None
        if not digits:
            return
        number = int(digits)
        if 0 < number < 0x80:
            self._line.append(number)
        else:
            self._spoil(digits.encode())

    def _spoil(self, raw: bytes) -> None:
        if not self._bad:
            self._bad = True
            self._spoiler = raw

    def _end_line(self, out: list[Scan | DecodeFailure]) -> None:
        line = bytes(self._line)
        if self._bad:
            self._fail(out, "sanity", (line + self._spoiler)[:MAX_FAILURE_DATA])
        else:
            end = _END_BYTES[self.suffix]
            for rec in self._lines.feed(line + end):
                out.append(rec)
                if isinstance(rec, DecodeFailure):
                    self.counters[rec.reason] += 1
                else:
                    self.counters["ok"] += 1
        self._reset_line()

    def _reset_line(self) -> None:
        self._line = bytearray()
        self._bad = False
        self._spoiler = b""


StreamDecoder = HidDecoder
"""The registry's decoder (Enter ends a scan, AIM on, native event size)."""


def decode_stream(data: bytes) -> list[Scan | DecodeFailure]:
    """Decode a complete byte string with the default settings (feed plus flush)."""
    dec = HidDecoder()
    return dec.feed(data) + dec.flush()


def record_to_dict(rec: Scan | DecodeFailure) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors (as for line scanners)."""
    return _line_record_to_dict(rec)


def encode_event(etype: int, code: int, value: int, event_size: int = EVENT_SIZE_64) -> bytes:
    """One ``input_event`` record with a zero timestamp (for recordings and tests)."""
    fmt = "@qqHHi" if event_size == EVENT_SIZE_64 else "@iiHHi"
    return struct.pack(fmt, 0, 0, etype, code, value)


PROTOCOL = ProtocolInfo(
    name="hid",
    title="USB HID keyboard-wedge scanners read as Linux evdev key events (US layout)",
    spec="linux/input.h struct input_event, linux/input-event-codes.h key codes, "
    "AIM symbology identifiers (ISO/IEC 15424); see this module's docstring",
    models=(
        "Any USB barcode scanner in HID keyboard mode (Honeywell, Zebra, Datalogic, "
        "Newland ...), set to the US keyboard layout",
        "RFID handhelds in keyboard-wedge mode that type an EPC as hex",
    ),
    default_baud=None,
    typical_frame_bytes=30 * 4 * EVENT_SIZE_64,
    reports=("barcode text", "AIM symbology identifier", "EPC (RFID handhelds only)"),
    new_decoder=HidDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
