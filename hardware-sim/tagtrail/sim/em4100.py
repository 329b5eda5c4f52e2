"""EM4100 125 kHz readers (RDM6300, ID-12/ID-20 ASCII mode) seen from the reader's side.

Written independently of :mod:`tagtrail.readers.protocols` (the host-side decoder); the
two share only test vectors, so a misreading of the protocol in one shows up as a failing
test instead of cancelling out.

What the reader sends, 9600 baud 8N1, once per read and again and again while the card
stays in the field::

    RDM6300:      STX  D D D D D D D D D D  C C  ETX            (14 bytes)
    ID-12/ID-20:  STX  D D D D D D D D D D  C C  CR LF  ETX     (16 bytes)

``D`` are the 40 bits of the card as upper-case ASCII hex (version byte first, then the
32-bit card number), ``C C`` the XOR of those five bytes, also as two upper-case hex
digits. STX is 0x02, ETX 0x03.

The host sends nothing: these readers take no commands, so there is no command parser
here. Whatever a driver writes to the simulated port is simply not read.

This module does no I/O.
"""

from __future__ import annotations

from tagtrail.errors import ProtocolError

STX = b"\x02"
ETX = b"\x03"
CR_LF = b"\r\n"
BAUD = 9600
REPEAT_INTERVAL_S = 0.05
"""How often an RDM6300 re-sends a card that stays in its field (about 50 ms)."""

_HEX = "0123456789ABCDEF"


def code_text(version: int, card: int) -> str:
    """The 10 hex digits for a version byte (0-255) and a 32-bit card number."""
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 0xFF:
        raise ProtocolError(f"version must be 0-255, got {version!r}")
    if isinstance(card, bool) or not isinstance(card, int) or not 0 <= card <= 0xFFFFFFFF:
        raise ProtocolError(f"card must be 0-4294967295, got {card!r}")
    return f"{version:02X}{card:08X}"


def _code_bytes(code: str) -> list[int]:
    text = code.upper()
    if len(text) != 10 or any(ch not in _HEX for ch in text):
        raise ProtocolError(f"an EM4100 code is 10 hex digits, got {code!r}")
    return [_HEX.index(text[i]) * 16 + _HEX.index(text[i + 1]) for i in range(0, 10, 2)]


def check_digits(code: str) -> str:
    """The two checksum digits of a code: the XOR of its five bytes, upper-case hex."""
    check = 0
    for value in _code_bytes(code):
        check ^= value
    return _HEX[check >> 4] + _HEX[check & 0x0F]


def tag_frame(code: str, *, crlf: bool = False) -> bytes:
    """One read of the card ``code`` (10 hex digits, any case; sent upper-case).

    ``crlf`` selects the ID-12/ID-20 form with CR LF before ETX.
    """
    text = code.upper()
    body = (text + check_digits(text)).encode("ascii")
    return STX + body + (CR_LF if crlf else b"") + ETX


def card_frame(version: int, card: int, *, crlf: bool = False) -> bytes:
    """One read of the card with this version byte and card number."""
    return tag_frame(code_text(version, card), crlf=crlf)


def presence_frames(code: str, present_s: float, *, crlf: bool = False) -> list[bytes]:
    """The frames a continuously reading unit sends while a card stays ``present_s`` seconds:
    one at once, then one per :data:`REPEAT_INTERVAL_S`."""
    if present_s < 0:
        raise ProtocolError(f"presence time must not be negative, got {present_s!r}")
    frame = tag_frame(code, crlf=crlf)
    return [frame] * (int(present_s / REPEAT_INTERVAL_S + 1e-9) + 1)
