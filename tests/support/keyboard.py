"""A keyboard-wedge scanner's key events, as Linux would record them from the device.

Written from linux/input-event-codes.h independently of the decoder's tables: each
character is the key (and Shift) a US keyboard types it with. ``type_scan`` gives the
``struct input_event`` byte stream (64-bit layout, zero timestamps, an ``EV_MSC`` scan
code and ``EV_SYN`` report after each key change, as real keyboards send them).
"""

from __future__ import annotations

import struct

EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
MSC_SCAN = 4
KEY_ENTER, KEY_TAB, KEY_LEFTSHIFT, KEY_LEFTCTRL, KEY_LEFTALT = 28, 15, 42, 29, 56
KEY_RIGHTBRACE = 27
KEY_F1 = 59
KP_DIGIT = {"7": 71, "8": 72, "9": 73, "4": 75, "5": 76, "6": 77, "1": 79, "2": 80, "3": 81}
KP_DIGIT["0"] = 82

# Rows of a US keyboard, from input-event-codes.h: KEY_1 = 2 ... KEY_EQUAL = 13,
# KEY_Q = 16 ... KEY_RIGHTBRACE = 27, KEY_A = 30 ... KEY_GRAVE = 41,
# KEY_BACKSLASH = 43, KEY_Z = 44 ... KEY_SLASH = 53, KEY_SPACE = 57.
_ROWS = [
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
]
KEYS: dict[str, tuple[int, bool]] = {" ": (57, False)}
for first, plain, shifted in _ROWS:
    for offset, ch in enumerate(plain):
        KEYS[ch] = (first + offset, False)
    for offset, ch in enumerate(shifted):
        KEYS[ch] = (first + offset, True)


def event(etype: int, code: int, value: int) -> bytes:
    """One 24-byte ``input_event`` (64-bit Linux), timestamp zero."""
    return struct.pack("<qqHHi", 0, 0, etype, code, value)


def key(code: int, value: int) -> bytes:
    """A key change as a keyboard reports it: scan code, key event, sync report."""
    return (
        event(EV_MSC, MSC_SCAN, 0x70000 + code) + event(EV_KEY, code, value) + event(EV_SYN, 0, 0)
    )


def tap(code: int) -> bytes:
    return key(code, 1) + key(code, 0)


def type_text(text: str, *, gs: str = "ctrl") -> bytes:
    """Key events typing ``text``; GS (0x1D) as Ctrl+] (``gs="ctrl"``) or Alt+0029."""
    out = bytearray()
    for ch in text:
        if ch == "\x1d":
            if gs == "ctrl":
                out += key(KEY_LEFTCTRL, 1) + tap(KEY_RIGHTBRACE) + key(KEY_LEFTCTRL, 0)
            else:
                out += key(KEY_LEFTALT, 1)
                for digit in "0029":
                    out += tap(KP_DIGIT[digit])
                out += key(KEY_LEFTALT, 0)
            continue
        code, shift = KEYS[ch]
        if shift:
            out += key(KEY_LEFTSHIFT, 1) + tap(code) + key(KEY_LEFTSHIFT, 0)
        else:
            out += tap(code)
    return bytes(out)


def type_scan(text: str, *, end: str = "enter", gs: str = "ctrl") -> bytes:
    """A whole scan: ``text`` then the end key (Enter or Tab)."""
    return type_text(text, gs=gs) + tap(KEY_ENTER if end == "enter" else KEY_TAB)
