"""Chafon serial protocol: length-prefixed frames of the UHFReader18 / UHFReader288 family.

Spoken by Chafon CF-RU5102 / CF-RU5202 / CF-RU6402 desktop and fixed readers, the CF-MU903 /
CF-MU904 modules (UHFReader86) and many OEM clones (ZK-RFID101/102, IQRFID-5102 ...), some of
them R2000-based: the chip says nothing about the protocol, the firmware does.

Pure decoding and encoding: no I/O, no logging. Bad input gives a typed
:class:`DecodeFailure`, never an exception.

Frame
=====
::

    reader -> host                                      host -> reader
    +-----+-----+-----+--------+--------+---------+     +-----+-----+-----+--------+---------+
    | Len | Adr | Cmd | Status | Data.. |  CRC16  |     | Len | Adr | Cmd | Data.. |  CRC16  |
    |  1  |  1  |  1  |   1    | Len-5  | LSB MSB |     |  1  |  1  |  1  | Len-4  | LSB MSB |
    +-----+-----+-----+--------+--------+---------+     +-----+-----+-----+--------+---------+

* ``Len`` counts every byte after itself, CRC included, so a whole frame is ``Len + 1``
  bytes. Checked on the issue's inventory reply ``15 00 01 03 01 01 0C 30 39 60 63 03 C7
  43 80 00 1A 05 59 40 F9 3E``: 22 bytes, ``Len`` = 0x15 = 21 = 22 - 1.
* ``CRC16`` is CRC-16/MCRF4XX (reflected polynomial 0x8408, i.e. 0x1021 bit-reversed,
  preset 0xFFFF, no final xor) over ``Len`` through ``Data``, sent least-significant byte
  first. For the reply above it is 0x3EF9, sent ``F9 3E``. Because the CRC is reflected and
  has no final xor, the CRC of a whole good frame (CRC bytes included) is 0 -- the check
  used here. It is computed with :func:`binascii.crc_hqx` (the same polynomial, not
  reflected, preset 0xFFFF) over the bit-reversed bytes: ``MCRF4XX(d) =
  rev16(crc_hqx(rev8(d), 0xFFFF))``, a C loop instead of a Python one.
* Replies carry a ``Status`` byte; commands do not (``Len`` = 4 + data). ``Adr`` is the
  reader address; 0xFF broadcasts a command, the reader answers with its own address.
* Default line: 57600 baud, 8N1 (many readers can be switched to 9600-115200).

Inventory replies
=================
``Cmd`` 0x01 inventory, 0x0F single-tag inventory, 0x1A inventory with EPC match or 0x1B
QT inventory, with ``Status`` 0x01-0x04. The two generations lay the tags out differently:

* UHFReader288 (CF-RU6402, CF-MU904 ...)::

      Data = Ant | Num | Num x ( Len' | EPC (Len' bytes) | RSSI )

  The checked reply decodes as ``Adr`` 0x00, ``Cmd`` 0x01, ``Status`` 0x03 (more frames
  follow), ``Ant`` 0x01, ``Num`` 1, ``Len'`` 0x0C, EPC ``303960 6303C7 438000 1A0559``,
  RSSI 0x40 = 64, CRC ``F9 3E``. ``Ant`` is a bit mask, not a number: 0x01 antenna 1,
  0x02 antenna 2, 0x04 antenna 3, 0x08 antenna 4 (up to 0x80 antenna 8). The UR-series
  manual v1.14 (a UHFReader288 derivative) says so for every inventory reply ("0x04 is
  0000 0100 in binary, this indicates Antenna 3") and a public capture with ``Ant`` 0x04
  was read on antenna 3 (tests of github.com/wabson/chafon-rfid). :attr:`TagRead.antenna`
  is the 1-based antenna when exactly one bit is set, else ``None`` (the real-time output
  may report several, "0x05 ... Antenna 3 and Antenna 1"); ``antenna_mask`` keeps the byte.
  ``Len'`` bit 7 set means FastID: the block is EPC then a 12-byte TID, bits 6..0 the
  total; reported as ``epc`` and ``tid``. ``Num`` 0 (``07 00 01 01 01 00 1E 4B``) is an
  inventory that found nothing: an :class:`InventoryStatus`.
* UHFReader18 (CF-RU5102, ZK-RFID102 ...)::

      Data = Num | Num x ( Len' | EPC (Len' bytes) )

  No antenna, no RSSI: those fields are ``None``. No tag at all is ``Status`` 0xFB with no
  data (``05 00 01 FB F2 3D``).

Nothing on the wire says which generation sent a frame. ``layout="288"`` or ``"18"``
pins it (a driver knows its reader from its configuration; :class:`ReaderInfo`
``reader_type`` is 0x09 on a UHFReader18 and 0x0C on a UHFReader288M, but clones report
other values, e.g. 0x86); the default ``"auto"`` tries the 288 layout and then the 18 one.
By parity (288 data has even length, 18 data with ``Num`` even has odd length) a frame can
parse under both only if the 288 ``Ant`` is odd and at least 3 and the EPC and RSSI bytes
happen to spell a valid sequence of 18 blocks; then the 288 reading wins.

Every EPC length must be even (whole 16-bit words), 2-62 bytes; ``Num`` blocks must fill
``Data`` exactly; a 288 ``Ant`` of 0 is impossible. Each tag of a frame is one
:class:`TagRead` record (``index`` of ``count``), so :func:`tag_of` sees one tag per record.

``Status`` 0x03 says more frames of the same inventory follow; 0x01 (finished), 0x02 (scan
time ran out) and 0x04 (reader memory full) end it. ``Status`` 0x26 on an inventory is the
statistics packet (UHFReader288, when the command's QValue bit 7 asks for it)::

      Data = Ant | ReadRate (2) | TotalCount (4)         -> InventoryStats

multi-byte fields most-significant byte first, as everywhere in these manuals except the
CRC.

RSSI: the manuals call it "the reader signal strength at the time when the tag is
inquired", one byte, and define no unit or conversion, so it is reported as ``rssi_raw``
only; ``rssi_dbm`` is always ``None``.

Other replies
=============
* ``Cmd`` 0xEE ``Status`` 0x00, UHFReader288 real-time (auto-run) mode, one tag per frame:
  ``Data = Ant | Len' | EPC | RSSI`` -> :class:`TagRead` (``index`` 0, ``count`` 1). Other
  0xEE frames (heartbeat 0x28, the UHFReader18 scan-mode output, whose data layout depends
  on its configuration) are :class:`Reply`.
* ``Cmd`` 0x21 get reader information, ``Status`` 0x00, at least 8 data bytes::

      Version (major, minor) | Type | Tr_Type | DMaxFre | DMinFre | Power | ScanTime | extra

  ``DMaxFre`` bits 7-6 and ``DMinFre`` bits 7-6 are the band's high and low bits, bits
  5-0 the frequency indexes; ``ScanTime`` is in units of 100 ms. Later models append
  bytes (antenna configuration, beeper ...) kept raw as ``extra``. E.g. ``11 00 21 00 00
  16 0C 03 4E 00 1E 0A 01 00 00 00 E6 51``: firmware 0.22, type 0x0C (UHFReader288M),
  band 4 (EU), 30 dBm, 1 s.
* A frame with ``Len`` 4 has no room for a status: a host command without data (an echo on
  a half-duplex RS-485 bus) -> :class:`Command`.
* Anything else: :class:`Reply` with the status, its name and the raw data. As with every
  headerless protocol the wire carries no direction: a host command with data reads as the
  reply of that shape (``05 00 25 14 58 66``, set scan time 2 s, reads as a 0x25 reply
  with status 0x14).

Status codes
============
====  ====================================  ====  ====================================
0x00  success                               0x15  6b_inventory_finished
0x01  inventory_finished                    0x16  6b_inventory_timeout
0x02  inventory_timeout                     0x17  6b_more_data
0x03  more_data                             0x18  6b_memory_full
0x04  memory_full                           0x19  unsupported_or_access_password_zero
0x05  access_password_error                 0x1A  tag_custom_function_error
0x09  kill_password_error                   0x26  inventory_statistics
0x0A  kill_password_zero                    0x28  heartbeat
0x0B  tag_command_unsupported               0xF8  antenna_error
0x0C  access_password_zero                  0xF9  command_execute_error
0x0D  already_protected                     0xFA  poor_communication
0x0E  not_protected                         0xFB  no_tag
0x10  locked_bytes_write_fail               0xFC  tag_error_code
0x11  cannot_lock                           0xFD  command_length_wrong
0x12  already_locked                        0xFE  illegal_command
0x13  parameter_save_fail                   0xFF  parameter_error
0x14  cannot_adjust
====  ====================================  ====  ====================================

(0x30-0x38 and 0xEE in the vendor SDK tables are host-side DLL errors, never on the wire.)
``ok`` is true for 0x00-0x04, 0x15-0x18, 0x26 and 0x28.

Finding frames (:class:`StreamDecoder`)
=======================================
A frame starts with its length, so there is no header byte to search for: every byte is a
candidate start, and the 16-bit CRC is what makes a frame. To keep random bytes from
posing as frames and to resynchronise quickly, a position starts a frame only if its first
bytes are a *plausible header*:

* ``Len`` >= 5, ``Cmd`` in 0x01-0x7F or 0xEE (every command of the manuals), ``Status``
  one of the codes above (33 of 256 values); or
* ``Len`` == 4 and the same ``Cmd`` rule (a command without data).

About 6 % of random positions pass (251/256 x 128/256 x 33/256). A false header then also
needs the right CRC (1 in 65536), and a tag record needs one of 4 inventory commands, one
of 4 tag statuses and data that parse exactly, so a random byte string "contains a tag"
with a probability below 1e-8 per position. Replies to commands 0x80-0xED (none in the
manuals; integrators mention 0x93 "stop" on newer firmware) are not recognised and end up
in failures with their bytes. Plausible headers are found with one compiled regular
expression (C speed); the decoder never loops over bytes in Python.

* Bytes before a plausible header form one ``garbage`` run.
* A plausible header waits until its ``Len + 1`` bytes are there. Good CRC: its records
  (or a ``length``/``sanity`` failure) are emitted and decoding goes on after the frame.
* Bad CRC: every later plausible header inside its span is tried in order. If one starts a
  complete frame with a good CRC, the span up to it is ``truncated`` and decoding resumes
  there (a frame hidden behind a false header, or following a frame cut short, is found);
  if such a candidate is still incomplete the decision waits for more bytes; if none is
  good, the span is one ``checksum`` failure and decoding resumes after it.

A false header in noise therefore makes the decoder wait for up to 256 bytes. Decisions
are taken only on complete information, so the output does not depend on how the input is
chunked; :meth:`StreamDecoder.flush` is the end of input: a held incomplete frame is
``truncated`` at the first later plausible header that starts a good frame, or at the end.

Like Modbus RTU, a headerless protocol is delimited in the end by silence: a driver should
call ``flush`` when the line has been idle for a few character times after a reply. A clean
reply is emitted as soon as its last byte arrives (nothing is held), but noise right before
a reply often forms a false header with the reply's first bytes (two noise bytes, then
``Len`` read as a command and ``Adr`` 0x00 read as status "success"), which holds the reply
until the false span completes or the line goes idle, and shows up as a ``truncated``
failure rather than ``garbage``.

Failures
========
``DecodeFailure.reason`` is one of:

* ``garbage``: bytes outside any plausible header (one failure per run; ``data`` holds at
  most :data:`MAX_FAILURE_DATA` bytes); at the end of input, up to 3 trailing bytes too
  short to be a header.
* ``checksum``: a plausible header whose span fails the CRC and hides no good frame.
* ``truncated``: a plausible header cut short by a later good frame or by the end of input.
* ``length``: :func:`decode_frame` given a byte count other than ``Len + 1``; an
  inventory statistics packet without exactly 7 data bytes; reader information shorter
  than 8 data bytes.
* ``sanity``: CRC good but the content impossible: inventory data that does not parse
  under the layout (``Num`` against the bytes, odd / zero / > 62-byte EPC, 288 ``Ant``
  0); a real-time tag frame with ``Ant`` 0 or lengths that do not add up.

``counters["ok"]`` counts good frames (a frame with three tags is one ``ok`` and three
records).

Commands used here (host -> reader)
===================================
===================  ====  =====================================  ==========================
name                 Cmd   Data                                   example (addr 0x00)
===================  ====  =====================================  ==========================
inventory (18)       0x01  none                                   ``04 00 01 DB 4B``
inventory (288)      0x01  QValue, Session, MaskMem, MaskAdr(2),  ``0D 00 01 04 00 01
                           MaskLen, Target, Ant, ScanTime         00 00 00 00 80 0A
                                                                  6F BA`` (Q 4, ant 1, 1 s)
single inventory     0x0F  none                                   ``04 00 0F A5 A2``
get reader info      0x21  none                                   ``04 00 21 D9 6A``
set scan time        0x25  ScanTime (x 100 ms)                    ``05 00 25 14 58 66``
===================  ====  =====================================  ==========================

288 inventory: QValue bit 7 asks for the statistics packet, bit 5 FastID, bits 4-0 Q
(0-15); Session 0-3 (0xFF "smart"); MaskMem 0x01 (EPC) with MaskAdr 0 and MaskLen 0 is "no
mask"; Target 0x00 A / 0x01 B; Ant 0x80 + antenna - 1 (antenna 1-8).

Sources: "UHF RFID Reader UHFReader18 User's Manual V2.0" (frame, CRC, command set, status
table; same text as the ZK-RFID102 manual V2.0), "UHF RFID Reader UR-SERIES User Manual
v1.14" (UHFReader288 inventory layout, antenna mask, FastID, statistics, real-time
output), the status tables of the vendor SDK demos, and captured frames published with
github.com/wabson/chafon-rfid and other integrators' notes; every captured frame quoted
here and in ``tests/vectors/chafon`` was re-checked by CRC arithmetic.
"""

from __future__ import annotations

import re
from binascii import crc_hqx
from dataclasses import dataclass
from typing import Any, Literal

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

Layout = Literal["auto", "288", "18"]
LAYOUTS: tuple[Layout, ...] = ("auto", "288", "18")

CMD_INVENTORY = 0x01
CMD_SINGLE_INVENTORY = 0x0F
CMD_INVENTORY_EPC = 0x1A
CMD_QT_INVENTORY = 0x1B
CMD_GET_READER_INFO = 0x21
CMD_SET_SCAN_TIME = 0x25
CMD_REALTIME = 0xEE
BROADCAST = 0xFF

STATUS_SUCCESS = 0x00
STATUS_INVENTORY_FINISHED = 0x01
STATUS_INVENTORY_TIMEOUT = 0x02
STATUS_MORE_DATA = 0x03
STATUS_MEMORY_FULL = 0x04
STATUS_STATISTICS = 0x26
STATUS_HEARTBEAT = 0x28
STATUS_NO_TAG = 0xFB

MAX_EPC_BYTES = 62
FASTID_TID_BYTES = 12

STATUS_NAMES: dict[int, str] = {
    0x00: "success",
    0x01: "inventory_finished",
    0x02: "inventory_timeout",
    0x03: "more_data",
    0x04: "memory_full",
    0x05: "access_password_error",
    0x09: "kill_password_error",
    0x0A: "kill_password_zero",
    0x0B: "tag_command_unsupported",
    0x0C: "access_password_zero",
    0x0D: "already_protected",
    0x0E: "not_protected",
    0x10: "locked_bytes_write_fail",
    0x11: "cannot_lock",
    0x12: "already_locked",
    0x13: "parameter_save_fail",
    0x14: "cannot_adjust",
    0x15: "6b_inventory_finished",
    0x16: "6b_inventory_timeout",
    0x17: "6b_more_data",
    0x18: "6b_memory_full",
    0x19: "unsupported_or_access_password_zero",
    0x1A: "tag_custom_function_error",
    0x26: "inventory_statistics",
    0x28: "heartbeat",
    0xF8: "antenna_error",
    0xF9: "command_execute_error",
    0xFA: "poor_communication",
    0xFB: "no_tag",
    0xFC: "tag_error_code",
    0xFD: "command_length_wrong",
    0xFE: "illegal_command",
    0xFF: "parameter_error",
}
OK_STATUSES = frozenset({0x00, 0x01, 0x02, 0x03, 0x04, 0x15, 0x16, 0x17, 0x18, 0x26, 0x28})
TAG_STATUSES = frozenset({0x01, 0x02, 0x03, 0x04})
INVENTORY_COMMANDS = frozenset(
    {CMD_INVENTORY, CMD_SINGLE_INVENTORY, CMD_INVENTORY_EPC, CMD_QT_INVENTORY}
)
REPLY_COMMANDS = frozenset(range(0x01, 0x80)) | {CMD_REALTIME}
"""Commands a plausible header may carry."""


def status_name(status: int) -> str:
    """The table name of a status, or ``0xNN`` if unknown."""
    return STATUS_NAMES.get(status) or f"0x{status:02X}"


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagRead:
    """One tag of an inventory reply (or one real-time tag frame)."""

    address: int
    command: int
    status: int
    antenna_mask: int | None
    """The ``Ant`` byte (UHFReader288); ``None`` in the UHFReader18 layout."""
    antenna: int | None
    """1-based antenna if ``antenna_mask`` has exactly one bit set, else ``None``."""
    index: int
    """Position of this tag in its frame, 0-based."""
    count: int
    """Tags in the frame (``Num``)."""
    epc: str
    """Upper-case hex."""
    tid: str | None
    """The FastID TID (upper-case hex), if the reader sent one."""
    rssi_raw: int | None
    """The RSSI byte (UHFReader288); the manuals define no unit or dBm conversion."""

    @property
    def rssi_dbm(self) -> None:
        """Always ``None``: no conversion of ``rssi_raw`` to dBm is documented."""
        return None


@dataclass(frozen=True, slots=True)
class InventoryStatus:
    """An inventory reply frame without tags (``Num`` 0)."""

    address: int
    command: int
    status: int
    name: str
    antenna_mask: int | None
    antenna: int | None


@dataclass(frozen=True, slots=True)
class InventoryStats:
    """The statistics packet (status 0x26) closing a UHFReader288 inventory."""

    address: int
    command: int
    antenna_mask: int
    antenna: int | None
    read_rate: int
    """Successful identifications per second."""
    total_count: int
    """Identifications in the inventory (a tag read twice counts twice)."""


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """Reply to get reader information (0x21)."""

    address: int
    version_major: int
    version_minor: int
    reader_type: int
    """0x09 UHFReader18, 0x0C UHFReader288M, 0x0F/0x10 UHFReader86 (as reported)."""
    protocols: int
    """Tr_Type: bit 1 ISO 18000-6C (EPC Gen2), bit 0 ISO 18000-6B."""
    band: int
    max_freq: int
    min_freq: int
    power_dbm: int
    scan_time: int
    """Inventory scan time in units of 100 ms."""
    extra: bytes

    @property
    def firmware(self) -> str:
        return f"{self.version_major}.{self.version_minor}"


@dataclass(frozen=True, slots=True)
class Reply:
    """Any other reply, with its status and raw data."""

    address: int
    command: int
    status: int
    name: str
    ok: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class Command:
    """A frame with ``Len`` 4: a host command without data."""

    address: int
    command: int


Record = TagRead | InventoryStatus | InventoryStats | ReaderInfo | Reply | Command
Decoded = Record | DecodeFailure


_new = object.__new__
_TAG_SET = {name: getattr(TagRead, name).__set__ for name in TagRead.__slots__}
_set_address = _TAG_SET["address"]
_set_command = _TAG_SET["command"]
_set_status = _TAG_SET["status"]
_set_antenna_mask = _TAG_SET["antenna_mask"]
_set_antenna = _TAG_SET["antenna"]
_set_index = _TAG_SET["index"]
_set_count = _TAG_SET["count"]
_set_epc = _TAG_SET["epc"]
_set_tid = _TAG_SET["tid"]
_set_rssi_raw = _TAG_SET["rssi_raw"]


def _tag(  # noqa: PLR0917 - hot path: positional arguments are the cheapest call
    address: int,
    command: int,
    status: int,
    mask: int | None,
    antenna: int | None,
    index: int,
    count: int,
    epc: str,
    tid: str | None,
    rssi: int | None,
) -> TagRead:
    # Hot path: a frozen dataclass's __init__ costs a generic object.__setattr__ per
    # field; filling the slots directly is about half the time, same object.
    rec = _new(TagRead)
    _set_address(rec, address)
    _set_command(rec, command)
    _set_status(rec, status)
    _set_antenna_mask(rec, mask)
    _set_antenna(rec, antenna)
    _set_index(rec, index)
    _set_count(rec, count)
    _set_epc(rec, epc)
    _set_tid(rec, tid)
    _set_rssi_raw(rec, rssi)
    return rec


# --- CRC ---------------------------------------------------------------------------------

_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
"""Each byte with its bits reversed."""


def crc16(data: bytes) -> int:
    """CRC-16/MCRF4XX of ``data`` (send it least-significant byte first)."""
    c = crc_hqx(bytes(data).translate(_REV8), 0xFFFF)
    return _REV8[c & 0xFF] << 8 | _REV8[c >> 8]


def _crc_ok(frame: bytes) -> bool:
    """Whether a whole frame, CRC included, checks: its reflected CRC residue is 0."""
    return not crc_hqx(frame.translate(_REV8), 0xFFFF)


# --- encoding ----------------------------------------------------------------------------


def _byte(name: str, value: int, low: int = 0, high: int = 255) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer {low}-{high}, got {value!r}")
    return value


def encode_command(address: int, cmd: int, data: bytes = b"") -> bytes:
    """A whole host frame: length, address, command, data and CRC (LSB first)."""
    _byte("address", address)
    _byte("cmd", cmd)
    if not isinstance(data, bytes | bytearray):
        raise ProtocolError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > 251:
        raise ProtocolError(f"data is {len(data)} bytes; a frame carries at most 251")
    body = bytes((len(data) + 4, address, cmd)) + bytes(data)
    return body + crc16(body).to_bytes(2, "little")


def cmd_get_reader_info(address: int = BROADCAST) -> bytes:
    return encode_command(address, CMD_GET_READER_INFO)


def cmd_inventory_18(address: int = BROADCAST) -> bytes:
    """UHFReader18 inventory: no parameters, the reader's own scan time."""
    return encode_command(address, CMD_INVENTORY)


def cmd_single_inventory(address: int = BROADCAST) -> bytes:
    return encode_command(address, CMD_SINGLE_INVENTORY)


def cmd_set_scan_time(address: int, scan_time: int) -> bytes:
    """Set the inventory scan time in units of 100 ms."""
    return encode_command(address, CMD_SET_SCAN_TIME, bytes((_byte("scan_time", scan_time),)))


def cmd_inventory(
    address: int = BROADCAST,
    *,
    q: int = 4,
    session: int = 0,
    target: str = "A",
    antenna: int = 1,
    scan_time: int = 10,
    fast_id: bool = False,
    statistics: bool = False,
) -> bytes:
    """UHFReader288 inventory on one antenna (1-8), no mask.

    ``session`` 0-3 or 0xFF (reader's choice); ``scan_time`` in units of 100 ms;
    ``fast_id`` asks for EPC + TID blocks; ``statistics`` for the 0x26 packet at the end.
    """
    _byte("q", q, 0, 15)
    if isinstance(session, bool) or session not in (0, 1, 2, 3, 0xFF):
        raise ProtocolError(f"session must be 0-3 or 0xFF, got {session!r}")
    if target not in ("A", "B"):
        raise ProtocolError(f"target must be 'A' or 'B', got {target!r}")
    _byte("antenna", antenna, 1, 8)
    _byte("scan_time", scan_time)
    qvalue = q | (0x20 if fast_id else 0) | (0x80 if statistics else 0)
    data = bytes(
        (
            qvalue,
            session,
            0x01,  # MaskMem: EPC
            0x00,  # MaskAdr, 2 bytes
            0x00,
            0x00,  # MaskLen 0: no mask
            0 if target == "A" else 1,
            0x80 + antenna - 1,
            scan_time,
        )
    )
    return encode_command(address, CMD_INVENTORY, data)


# --- decoding ----------------------------------------------------------------------------


def _class(values: frozenset[int] | set[int]) -> str:
    return "[" + "".join(f"\\x{v:02x}" for v in sorted(values)) + "]"


_HEAD = re.compile(
    (
        "(?=[\\x05-\\xff]."
        + _class(REPLY_COMMANDS)
        + _class(set(STATUS_NAMES))
        + "|\\x04."
        + _class(REPLY_COMMANDS)
        + ")"
    ).encode("latin-1"),
    re.DOTALL,
)
"""Zero-width match at every plausible frame start."""

_SINGLE_BIT: list[int | None] = [None] * 256
for _bit in range(8):
    _SINGLE_BIT[1 << _bit] = _bit + 1


def _epc_ok(n: int) -> bool:
    return 2 <= n <= MAX_EPC_BYTES and not n & 1


_BLOCK288: list[tuple[int, bool] | None] = [None] * 256
"""For a 288 ``Len'`` byte: (bytes in the block, FastID) if the EPC length is valid."""
for _ln in range(256):
    _n = _ln & 0x7F
    if _ln & 0x80:
        if _epc_ok(_n - FASTID_TID_BYTES):
            _BLOCK288[_ln] = (_n, True)
    elif _epc_ok(_n):
        _BLOCK288[_ln] = (_n, False)


def _inventory_288(buf: bytes, p: int, end: int) -> list[Record] | None:
    d = p + 4
    dend = end - 2
    if dend - d < 2:
        return None
    mask = buf[d]
    num = buf[d + 1]
    if not mask:
        return None
    addr = buf[p + 1]
    cmd = buf[p + 2]
    status = buf[p + 3]
    antenna = _SINGLE_BIT[mask]
    i = d + 2
    if not num:
        if i != dend:
            return None
        return [InventoryStatus(addr, cmd, status, status_name(status), mask, antenna)]
    recs: list[Record] = []
    for k in range(num):
        if i >= dend:
            return None
        block = _BLOCK288[buf[i]]
        if block is None:
            return None
        n, fast = block
        j = i + 1 + n  # the RSSI byte
        if j >= dend:
            return None
        if fast:
            epc = buf[i + 1 : j - FASTID_TID_BYTES].hex().upper()
            tid: str | None = buf[j - FASTID_TID_BYTES : j].hex().upper()
        else:
            epc = buf[i + 1 : j].hex().upper()
            tid = None
        recs.append(_tag(addr, cmd, status, mask, antenna, k, num, epc, tid, buf[j]))
        i = j + 1
    if i != dend:
        return None
    return recs


def _inventory_18(buf: bytes, p: int, end: int) -> list[Record] | None:
    d = p + 4
    dend = end - 2
    if dend - d < 1:
        return None
    num = buf[d]
    addr = buf[p + 1]
    cmd = buf[p + 2]
    status = buf[p + 3]
    i = d + 1
    if not num:
        if i != dend:
            return None
        return [InventoryStatus(addr, cmd, status, status_name(status), None, None)]
    recs: list[Record] = []
    for k in range(num):
        if i >= dend:
            return None
        n = buf[i]
        if not _epc_ok(n):
            return None
        j = i + 1 + n
        if j > dend:
            return None
        epc = buf[i + 1 : j].hex().upper()
        recs.append(_tag(addr, cmd, status, None, None, k, num, epc, None, None))
        i = j
    if i != dend:
        return None
    return recs


def _realtime_288(buf: bytes, p: int, end: int) -> list[Record] | None:
    d = p + 4
    dend = end - 2
    if dend - d < 4:
        return None
    mask = buf[d]
    block = _BLOCK288[buf[d + 1]]
    if not mask or block is None:
        return None
    n, fast = block
    j = d + 2 + n
    if j != dend - 1:
        return None
    if fast:
        epc = buf[d + 2 : j - FASTID_TID_BYTES].hex().upper()
        tid: str | None = buf[j - FASTID_TID_BYTES : j].hex().upper()
    else:
        epc = buf[d + 2 : j].hex().upper()
        tid = None
    return [_tag(buf[p + 1], CMD_REALTIME, 0, mask, _SINGLE_BIT[mask], 0, 1, epc, tid, buf[j])]


def _body(buf: bytes, p: int, end: int, layout: Layout) -> list[Record] | DecodeFailure:
    """Interpret the CRC-verified frame ``buf[p:end]``."""
    ln = end - p - 1
    addr = buf[p + 1]
    cmd = buf[p + 2]
    if ln == 4:
        return [Command(addr, cmd)]
    status = buf[p + 3]
    if cmd in INVENTORY_COMMANDS:
        if status in TAG_STATUSES:
            recs = None
            if layout != "18":
                recs = _inventory_288(buf, p, end)
            if recs is None and layout != "288":
                recs = _inventory_18(buf, p, end)
            if recs is None:
                return DecodeFailure("sanity", bytes(buf[p:end]))
            return recs
        if status == STATUS_STATISTICS:
            if ln != 5 + 7:
                return DecodeFailure("length", bytes(buf[p:end]))
            mask = buf[p + 4]
            return [
                InventoryStats(
                    addr,
                    cmd,
                    mask,
                    _SINGLE_BIT[mask],
                    buf[p + 5] << 8 | buf[p + 6],
                    int.from_bytes(buf[p + 7 : p + 11], "big"),
                )
            ]
    elif cmd == CMD_REALTIME and status == STATUS_SUCCESS and layout != "18":
        recs = _realtime_288(buf, p, end)
        if recs is not None:
            return recs
        if layout == "288":
            return DecodeFailure("sanity", bytes(buf[p:end]))
    elif cmd == CMD_GET_READER_INFO and status == STATUS_SUCCESS:
        if ln < 5 + 8:
            return DecodeFailure("length", bytes(buf[p:end]))
        mx = buf[p + 8]
        mn = buf[p + 9]
        return [
            ReaderInfo(
                addr,
                buf[p + 4],
                buf[p + 5],
                buf[p + 6],
                buf[p + 7],
                (mx >> 6) << 2 | mn >> 6,
                mx & 0x3F,
                mn & 0x3F,
                buf[p + 10],
                buf[p + 11],
                bytes(buf[p + 12 : end - 2]),
            )
        ]
    return [
        Reply(
            addr,
            cmd,
            status,
            status_name(status),
            status in OK_STATUSES,
            bytes(buf[p + 4 : end - 2]),
        )
    ]


def _check_layout(layout: str) -> Layout:
    if layout not in LAYOUTS:
        raise ProtocolError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return layout


def decode_frame(frame: bytes, layout: Layout = "auto") -> list[Decoded]:
    """Decode exactly one frame: its records (one per tag), or one failure.

    Never raises for any ``bytes`` input (``layout`` must be one of :data:`LAYOUTS`).
    """
    _check_layout(layout)
    frame = bytes(frame)
    n = len(frame)
    head = 3 if n and frame[0] == 4 else 4
    if n < head:
        if n == 0 or frame[0] < 4:
            return [DecodeFailure("garbage", frame)]
        return [DecodeFailure("length", frame)]
    if not _HEAD.match(frame):
        return [DecodeFailure("garbage", frame[:MAX_FAILURE_DATA])]
    if n != frame[0] + 1:
        return [DecodeFailure("length", frame)]
    if not _crc_ok(frame):
        return [DecodeFailure("checksum", frame)]
    res = _body(frame, 0, n, layout)
    if isinstance(res, DecodeFailure):
        return [res]
    out: list[Decoded] = []
    out += res
    return out


class StreamDecoder(StreamDecoderBase[Record]):
    """Decode a byte stream chunk by chunk, resynchronising after bad bytes.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input
    (reports a held partial frame as ``truncated`` and a pending garbage run) and leaves
    the decoder empty for further use. ``counters`` counts good frames (``ok``) and
    failures by reason. Never raises.
    """

    __slots__ = ("layout",)

    def __init__(self, layout: Layout = "auto") -> None:
        super().__init__()
        self.layout: Layout = _check_layout(layout)

    def _fail(self, out: list[Decoded], reason: FailureReason, data: bytes) -> None:
        self._emit_garbage(out)  # a garbage run before a failed frame is reported first
        super()._fail(out, reason, data)

    @staticmethod
    def _hidden(buf: bytes, rbuf: bytes, start: int, stop: int, final: bool) -> int | None:
        """First plausible header in ``buf[start:stop]`` starting a complete good frame.

        Returns its position, ``-1`` if the answer needs more bytes, ``None`` if none.
        """
        n = len(buf)
        search = _HEAD.search
        m = search(buf, start)
        while m is not None:
            q = m.start()
            if q >= stop:
                return None
            eq = q + buf[q] + 1
            if eq > n:
                if not final:
                    return -1
            elif not crc_hqx(rbuf[q:eq], 0xFFFF):
                return q
            m = search(buf, q + 1)
        if not final and stop > n - 3:
            return -1  # a header in the last 3 bytes cannot be judged yet
        return None

    def _run(self, buf: bytes, out: list[Decoded], final: bool) -> int:
        """Decode ``buf`` from 0; return how far it was consumed."""
        n = len(buf)
        rbuf = buf.translate(_REV8)
        pos = 0
        ok = 0
        search = _HEAD.search
        layout = self.layout
        try:
            while True:
                m = search(buf, pos)
                if m is None:
                    # No plausible header; one in the last 3 bytes may still be incomplete.
                    stop = n if final else max(pos, n - 3)
                    if stop > pos:
                        self._skip(buf[pos:stop])
                    return stop
                p = m.start()
                if p > pos:
                    self._skip(buf[pos:p])
                end = p + buf[p] + 1
                if end > n:  # incomplete frame
                    if not final:
                        return p
                    q = self._hidden(buf, rbuf, p + 1, n, final)
                    if q is None:
                        self._fail(out, "truncated", buf[p:])
                        return n
                    self._fail(out, "truncated", buf[p:q])
                    pos = q
                    continue
                if not crc_hqx(rbuf[p:end], 0xFFFF):
                    if self._garbage_len:
                        self._emit_garbage(out)
                    res = _body(buf, p, end, layout)
                    if isinstance(res, DecodeFailure):
                        self.counters[res.reason] += 1
                        out.append(res)
                    else:
                        ok += 1
                        out += res
                    pos = end
                    continue
                q = self._hidden(buf, rbuf, p + 1, end, final)
                if q == -1:
                    return p
                if q is None:
                    self._fail(out, "checksum", buf[p:end])
                    pos = end
                else:
                    self._fail(out, "truncated", buf[p:q])
                    pos = q
        finally:
            self.counters["ok"] += ok


def decode_stream(data: bytes, layout: Layout = "auto") -> list[Decoded]:
    """Decode a complete byte string (feed plus flush)."""
    dec = StreamDecoder(layout)
    return dec.feed(data) + dec.flush()


# --- JSON form ---------------------------------------------------------------------------


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors."""
    if isinstance(rec, TagRead):
        return {
            "type": "tag",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "status": f"0x{rec.status:02X}",
            "antenna_mask": rec.antenna_mask,
            "antenna": rec.antenna,
            "index": rec.index,
            "count": rec.count,
            "epc": rec.epc,
            "tid": rec.tid,
            "rssi_raw": rec.rssi_raw,
            "rssi_dbm": None,
        }
    if isinstance(rec, InventoryStatus):
        return {
            "type": "inventory_status",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "status": f"0x{rec.status:02X}",
            "name": rec.name,
            "antenna_mask": rec.antenna_mask,
            "antenna": rec.antenna,
        }
    if isinstance(rec, InventoryStats):
        return {
            "type": "inventory_stats",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "antenna_mask": rec.antenna_mask,
            "antenna": rec.antenna,
            "read_rate": rec.read_rate,
            "total_count": rec.total_count,
        }
    if isinstance(rec, ReaderInfo):
        return {
            "type": "reader_info",
            "address": rec.address,
            "firmware": rec.firmware,
            "reader_type": f"0x{rec.reader_type:02X}",
            "protocols": f"0x{rec.protocols:02X}",
            "band": rec.band,
            "max_freq": rec.max_freq,
            "min_freq": rec.min_freq,
            "power_dbm": rec.power_dbm,
            "scan_time": rec.scan_time,
            "extra": rec.extra.hex().upper(),
        }
    if isinstance(rec, Reply):
        return {
            "type": "reply",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "status": f"0x{rec.status:02X}",
            "name": rec.name,
            "ok": rec.ok,
            "data": rec.data.hex().upper(),
        }
    if isinstance(rec, Command):
        return {"type": "command", "address": rec.address, "command": f"0x{rec.command:02X}"}
    return failure_to_dict(rec)


def tag_of(rec: Decoded) -> TagView | None:
    """The tag a record holds (tag records only); RSSI in dBm is unknown (``None``)."""
    if isinstance(rec, TagRead):
        return TagView(rec.epc, rec.antenna, None)
    return None


PROTOCOL = ProtocolInfo(
    name="chafon",
    title="Chafon UHFReader18 / UHFReader288 serial protocol (Len-prefixed, CRC-16/MCRF4XX)",
    spec="Chafon UHFReader18 User's Manual V2.0 and the UHFReader288-family (UR-series v1.14) "
    "manual; see this module's docstring",
    models=(
        "Chafon UHFReader18 family: CF-RU5102 and clones (ZK-RFID101/102, IQRFID-5102)",
        "Chafon UHFReader288 family: CF-RU6402, CF-RU5202, CF-MU903/CF-MU904 (UHFReader86)",
    ),
    default_baud=57600,
    typical_frame_bytes=22,
    reports=("epc", "antenna (288 family)", "rssi raw (288 family)", "tid (FastID)"),
    new_decoder=StreamDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
