"""ThingMagic/JADAK Mercury serial protocol: ``0xFF`` frames of M6e, M7e, Nano and Micro modules.

Pure decoding and encoding: no I/O, no logging. Bad input gives a typed
:class:`DecodeFailure`, never an exception.

Frames
======
Host -> module (commands)::

    +------+-----+--------+-----------+-----------------+
    | 0xFF | Len | Opcode | Data      | CRC             |
    |  1   |  1  |   1    | Len bytes | 2, big-endian   |
    +------+-----+--------+-----------+-----------------+      Len + 5 bytes

Module -> host (responses, what :class:`StreamDecoder` reads)::

    +------+-----+--------+-----------------+-----------+---------------+
    | 0xFF | Len | Opcode | Status          | Data      | CRC           |
    |  1   |  1  |   1    | 2, big-endian   | Len bytes | 2, big-endian |
    +------+-----+--------+-----------------+-----------+---------------+   Len + 7 bytes

``Len`` counts ``Data`` only. The CRC covers every byte after the ``0xFF`` header up to
the CRC (Len, Opcode, Status, Data). ``Status`` 0 is success; anything else is a
module error code (table below).

CRC
===
ThingMagic's own CRC-16, fed a nibble at a time (Mercury API ``serial_reader_l3.c``,
``tm_crc`` with the 16-entry ``crctable``; the source calls it "notably, not a CCITT
CRC-16, though it looks close"): register ``r = 0xFFFF``; for each byte, high nibble
first, ``r = ((r << 4) | nibble) ^ T[r >> 12]`` (16 bits) with ``T[k] = k * 0x1021``
carry-less. As a polynomial that is ``r = (0xFFFF * x^n + M(x)) mod P`` with
``P = x^16 + x^12 + x^5 + 1`` and ``n`` the message length in bits: the message is
shifted *through* the register without the 16 zero bits that CRC-16/CCITT-FALSE
appends, so stock CRC-16 helpers give different values.

This module does not loop over bytes in Python. ``binascii.crc_hqx(M, J)`` computes the
direct form ``(J * x^n + M * x^16) mod P`` in C; with ``J = 0xFFFF * x^16 mod P``
(``= 0x1D0F``) that is ``x^16 * r``. So a frame is good when
``crc_hqx(Len..Data, 0x1D0F) == crc_hqx(CRC bytes, 0)`` (both sides are ``x^16`` times
a value), and :func:`crc16` gets ``r`` itself by multiplying by ``x^-16``, a linear map
tabled as two 256-entry tables (``x^-1 = x^15 + x^11 + x^4`` mod P, i.e. one step is
``v >> 1 ^ (0x8810 if v & 1)``). Checked frames: ``FF 00 03 1D 0C`` (get version),
``FF 00 04 1D 0B`` (boot firmware), ``FF 01 97 02 4B BF`` (set region 2),
``FF 03 2F 00 00 02 5E 86`` (stop continuous reading).

Continuous reading
==================
The host starts it with opcode ``0x2F`` (multi-protocol tag op)::

    2F | Timeout(2)=0 | Option=0x01 | Sub-opcode=0x22 | SearchFlags(2)=0 | Protocol=0x05 |
         SubLen | 0x22 | SubOption=0x10 | SubSearchFlags(2) | OnTime ms(2) | MetadataFlags(2)

(``SubLen`` counts the embedded command after its opcode; see
:func:`cmd_start_continuous_read`) and stops it with ``2F 00 00 02``. The module
acknowledges with ``0x2F`` replies (data ``01 22 ..`` started, ``02`` stopped), then
streams one ``0x22`` response per tag read (multi-byte fields big-endian)::

    Data = Option(1) | SearchFlags(2) | MetadataFlags(2) | ResponseType(1)=0x01 |
           Metadata ... | EpcBits(2) | PC(2) | [XPC_W1(2) | [XPC_W2(2)]] | EPC | TagCRC(2)

``Option`` has bit ``0x10`` (metadata present) in streamed records. ``ResponseType``
``0x01`` is a tag record, ``0x00`` the end of a stream, ``0x02`` a status report; only
``0x01`` is decoded, the others become :class:`Reply`. Metadata fields are present
when their ``MetadataFlags`` bit is set, in this order:

======  ================  =========================================================
bit     field             layout
======  ================  =========================================================
0x0001  read count        1 byte
0x0002  RSSI              1 byte, signed (int8), dBm
0x0004  antenna           1 byte: TX port in the high nibble, RX port in the low
                          nibble; 0 means port 16. Reported 1-based as ``antenna``
                          (TX) and ``rx_antenna``.
0x0008  frequency         3 bytes, kHz
0x0010  timestamp         4 bytes, ms relative to the module's search start (the API
                          adds it to the host's start time; real logs step in ms)
0x0020  phase             2 bytes
0x0040  protocol          1 byte: 0x05 Gen2, 0x03 ISO 18000-6B, 0x07 IPX64,
                          0x08 IPX256, 0x1D ATA
0x0080  data              DataBits(2) then ceil(DataBits / 8) bytes (embedded read)
0x0100  GPIO              1 byte, one bit per pin
======  ================  =========================================================

Other metadata bits (newer firmware: 0x0200 Gen2 Q, 0x0400 link frequency, 0x0800
target, 0x1000 brand identifier ...) change the layout in ways this decoder does not
model; a tag record using them is a ``sanity`` failure rather than a guess.

``EpcBits`` is the length in bits of what follows it (PC .. ``TagCRC``). For Gen2
(protocol 0x05, or no protocol field: continuous reading as started here is Gen2) it
begins with the PC word; the PC's XI bit (0x0200) adds XPC_W1, whose bit 0x8000 adds
XPC_W2. ``TagCRC`` is the tag's own CRC-16 (CRC-16/GENIBUS over PC..EPC), reported with
``tag_crc_ok``. ISO 18000-6B/IPX ids have no PC; ATA ids have neither PC nor tag CRC.
Example (an M6e Nano record annotated in SparkFun's library, ``parseResponse``)::

    FF 28 22 00 00 10 00 1B 01 FF 01 01 C4 11 0E 16 40 00 00 01 27 00 00 05 00 00 0F
    00 80 30 00 00 00 00 00 00 00 00 00 00 00 15 45 E9 4A 56 1D

Option 0x10, search flags 0x001B, metadata 0x01FF; read count 1, RSSI 0xC4 = -60 dBm,
antenna 0x11 (TX 1, RX 1), 923200 kHz, timestamp 295 ms, phase 0, protocol 5 (Gen2),
no data, GPIO 0x0F, 128 EPC bits = PC 3000 + 12-byte EPC 000000000000000000001545 +
tag CRC E94A; frame CRC 561D.

Status records
==============
* Keep-alive: opcode ``0x22`` with status ``0x0400`` ("no tags found"), ``Len`` 0, sent
  once per search cycle while reading continuously (``FF 00 22 04 00 84 E0``). Decoded
  as :class:`KeepAlive`, not as an error (any ``Len``: firmware with multi-select
  appends a timestamp).
* Temperature throttle: status ``0x0504`` (temperature exceeds limits), any opcode:
  :class:`TemperatureThrottle`.
* Any other non-zero status: :class:`StatusError` with the code and its name.

Other replies
=============
Every other good frame is a :class:`Reply` with its raw data, e.g. the ``0x03`` version
reply (bootloader, hardware, firmware date, firmware version, supported protocols: 4
bytes each), ``0x22`` search summaries (``Len`` 7), ``0x29`` tag-buffer replies of
synchronous reads (not decoded into tags: tagtrail reads continuously) and the ``0x2F``
start/stop acknowledgements.

The direction is not on the wire but the shapes differ by the two status bytes: fed a
host command, the decoder sees a frame two bytes longer than it is, whose CRC fails.

Status codes
============
The names of :data:`STATUS_NAMES` (Mercury API ``tmr_status.h``), e.g. 0x0105
msg_invalid_parameter_value, 0x0400 no_tags_found, 0x0503 antenna_not_connected,
0x0504 temperature_exceed_limits, 0x0601 tag_id_buffer_full. Unknown codes are named
``0xNNNN``.

Failures
========
``DecodeFailure.reason`` is one of:

* ``checksum``: the frame's CRC is wrong.
* ``length``: :func:`decode_frame` got more or fewer bytes than ``Len + 7``, or a tag
  record ends before its metadata fields and its EPC-length word.
* ``sanity``: CRC good but the tag record is impossible: ``EpcBits`` disagrees with the
  bytes left, is not whole bytes, is too short for PC/XPC and tag CRC, leaves an empty
  EPC, or the metadata flags hold bits this decoder does not model.
* ``garbage``: a run of bytes outside any frame (one failure per run; ``data`` holds at
  most the first :data:`MAX_FAILURE_DATA` bytes).
* ``truncated``: a frame cut short by a newer frame, or still incomplete at
  :meth:`StreamDecoder.flush`.

Resynchronisation (:class:`StreamDecoder`)
==========================================
The decoder searches for ``0xFF`` with ``bytes.find``; bytes skipped before a header form
one ``garbage`` run. A header waits until its whole ``Len + 7`` bytes are there (a new
``0xFF`` inside an incomplete frame proves nothing: 0xFF is a common data byte, e.g. in
metadata flags ``01 FF``). Once complete:

* good CRC: the record (or a ``length``/``sanity`` failure) is emitted and the search
  goes on after the frame;
* bad CRC: every later ``0xFF`` inside the bad frame's span is tried as a header, in
  order. If one starts a complete frame with a good CRC, the bad frame was ``truncated``
  there and decoding resumes at that header (so a frame hidden after a false header,
  or following a frame cut short, is found). If such a candidate is still incomplete,
  the decision waits for more bytes. If none is good, the bad span is one ``checksum``
  failure and the search resumes after it.

Decisions are taken only on complete information, so the output does not depend on how
the input is split into chunks. :meth:`StreamDecoder.flush` is the end of input (the
serial line went idle or was lost): a held incomplete frame is ``truncated`` at the first
later header that starts a good frame, or at the end. A false header can hold up to 261
following bytes before its CRC decides, which is latency, never loss.

Speed: headers are found with ``bytes.find``, CRCs computed by ``binascii.crc_hqx`` in C,
metadata offsets precomputed per flags value, and tag records' slots filled directly.

Not modelled: the extra option byte of multi-select / read-after-write streams (such
records fail ``sanity`` or decode as replies), tag-buffer (``0x29``) records, and the
contents of status reports.

Sources: ThingMagic Mercury API C source (``serial_reader_l3.c``: ``tm_crc``,
``TMR_SR_parseMetadataFromMessage``, ``TMR_SR_receiveMessage``; ``serial_reader.c``:
``TMR_SR_hasMoreTags``, ``TMR_SR_getNextTag``, ``TMR_SR_executeEmbeddedRead``;
``tmr_status.h``; ``serial_reader_imp.h``), as mirrored in public repositories, and
SparkFun's Simultaneous RFID Tag Reader library and its M6e Nano transport logs (real
frames, every CRC re-checked here) for the keep-alive, temperature-throttle and stream
records.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Sequence
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

HEAD = 0xFF
FRAME_OVERHEAD = 7
"""Header, Len, Opcode, Status(2) and CRC(2) around a response's data."""
COMMAND_OVERHEAD = 5
"""Header, Len, Opcode and CRC(2) around a command's data."""

OP_VERSION = 0x03
OP_BOOT_FIRMWARE = 0x04
OP_SET_BAUD_RATE = 0x06
OP_READ_TAG_ID_SINGLE = 0x21
OP_READ_TAG_ID_MULTIPLE = 0x22
OP_GET_TAG_ID_BUFFER = 0x29
OP_MULTI_PROTOCOL_TAG_OP = 0x2F
OP_SET_ANTENNA_PORT = 0x91
OP_SET_READ_TX_POWER = 0x92
OP_SET_TAG_PROTOCOL = 0x93
OP_SET_REGION = 0x97
OP_SET_READER_OPTIONAL_PARAMS = 0x9A

STATUS_NO_TAGS_FOUND = 0x0400
STATUS_TEMPERATURE_EXCEED_LIMITS = 0x0504

OPTION_METADATA = 0x10
RESPONSE_STREAM_END = 0x00
RESPONSE_TAG = 0x01
RESPONSE_STATUS = 0x02

META_READ_COUNT = 0x0001
META_RSSI = 0x0002
META_ANTENNA = 0x0004
META_FREQUENCY = 0x0008
META_TIMESTAMP = 0x0010
META_PHASE = 0x0020
META_PROTOCOL = 0x0040
META_DATA = 0x0080
META_GPIO = 0x0100
META_ALL = 0x01FF
"""Every metadata field this decoder models (what Universal Reader Assistant asks for)."""

PROTOCOL_ISO180006B = 0x03
PROTOCOL_GEN2 = 0x05
PROTOCOL_IPX64 = 0x07
PROTOCOL_IPX256 = 0x08
PROTOCOL_ATA = 0x1D

PC_XI = 0x0200
"""PC bit: an XPC_W1 word follows the PC."""
XPC_XEB = 0x8000
"""XPC_W1 bit: an XPC_W2 word follows."""

SEARCH_FLAGS_STREAMING = 0x001B
"""Configured antenna list (0x03) | tag streaming (0x08) | large tag population (0x10)."""

READER_CONFIG_ENABLE_READ_FILTER = 0x0C

REGIONS: dict[str, int] = {
    "NA": 0x01,
    "EU": 0x02,
    "KR": 0x03,
    "IN": 0x04,
    "JP": 0x05,
    "PRC": 0x06,
    "EU2": 0x07,
    "EU3": 0x08,
    "KR2": 0x09,
    "AU": 0x0B,
    "NZ": 0x0C,
    "NA2": 0x0D,
    "OPEN": 0xFF,
}
"""Region codes for :func:`cmd_set_region` (``tmr_region.h``, SparkFun's list for 0x0B-0x0D)."""


STATUS_NAMES: dict[int, str] = {
    0x0100: "msg_wrong_number_of_data",
    0x0101: "invalid_opcode",
    0x0102: "unimplemented_opcode",
    0x0103: "msg_power_too_high",
    0x0104: "msg_invalid_freq_received",
    0x0105: "msg_invalid_parameter_value",
    0x0106: "msg_power_too_low",
    0x0109: "unimplemented_feature",
    0x010A: "invalid_baud_rate",
    0x010B: "invalid_region",
    0x010C: "invalid_license_key",
    0x0200: "bl_invalid_image_crc",
    0x0201: "bl_invalid_app_end_addr",
    0x0300: "flash_bad_erase_password",
    0x0301: "flash_bad_write_password",
    0x0302: "flash_undefined_sector",
    0x0303: "flash_illegal_sector",
    0x0304: "flash_write_to_non_erased_area",
    0x0305: "flash_write_to_illegal_sector",
    0x0306: "flash_verify_failed",
    0x0400: "no_tags_found",
    0x0401: "no_protocol_defined",
    0x0402: "invalid_protocol_specified",
    0x0403: "write_passed_lock_failed",
    0x0404: "protocol_no_data_read",
    0x0405: "afe_not_on",
    0x0406: "protocol_write_failed",
    0x0407: "not_implemented_for_this_protocol",
    0x0408: "protocol_invalid_write_data",
    0x0409: "protocol_invalid_address",
    0x040A: "general_tag_error",
    0x040B: "data_too_large",
    0x040C: "protocol_invalid_kill_password",
    0x040E: "protocol_kill_failed",
    0x040F: "protocol_bit_decoding_failed",
    0x0410: "protocol_invalid_epc",
    0x0411: "protocol_invalid_num_data",
    0x0420: "gen2_protocol_other_error",
    0x0423: "gen2_protocol_memory_overrun_bad_pc",
    0x0424: "gen2_protocol_memory_locked",
    0x042B: "gen2_protocol_insufficient_power",
    0x042F: "gen2_protocol_non_specific_error",
    0x0430: "gen2_protocol_unknown_error",
    0x0500: "ahal_invalid_freq",
    0x0501: "ahal_channel_occupied",
    0x0502: "ahal_transmitter_on",
    0x0503: "antenna_not_connected",
    0x0504: "temperature_exceed_limits",
    0x0505: "high_return_loss",
    0x0507: "invalid_antenna_config",
    0x0600: "tag_id_buffer_not_enough_tags_available",
    0x0601: "tag_id_buffer_full",
    0x0602: "tag_id_buffer_repeated_tag_id",
    0x0603: "tag_id_buffer_num_tag_too_large",
    0x7F00: "system_unknown_error",
    0x7F01: "tm_assert_failed",
}


def status_name(status: int) -> str:
    """The table name of a status code, or ``0xNNNN`` if unknown."""
    return STATUS_NAMES.get(status) or f"0x{status:04X}"


# --- CRC ---------------------------------------------------------------------------------

_POLY_INV_STEP = 0x8810
"""x^-1 mod P as a 16-bit value: x^15 + x^11 + x^4."""


def _times_x_inv16(value: int) -> int:
    for _ in range(16):
        value = (value >> 1) ^ (_POLY_INV_STEP if value & 1 else 0)
    return value


_INIT = crc_hqx(b"\x00\x00", 0xFFFF)
"""0xFFFF * x^16 mod P (= 0x1D0F): crc_hqx with this init is x^16 times ThingMagic's CRC."""
_INV_HI = tuple(_times_x_inv16(b << 8) for b in range(256))
_INV_LO = tuple(_times_x_inv16(b) for b in range(256))


def crc16(data: bytes) -> int:
    """ThingMagic's CRC of ``data`` (the bytes after the 0xFF header up to the CRC)."""
    c = crc_hqx(data, _INIT)
    return _INV_HI[c >> 8] ^ _INV_LO[c & 0xFF]


def gen2_crc16(data: bytes) -> int:
    """A Gen2 tag's CRC-16 (CRC-16/GENIBUS: poly 0x1021, init and xor-out 0xFFFF)."""
    return crc_hqx(data, 0xFFFF) ^ 0xFFFF


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagRead:
    """One streamed tag record (opcode 0x22, response type 0x01).

    Metadata fields are ``None`` when their flag is not set in ``metadata_flags``.
    """

    opcode: int
    option: int
    search_flags: int
    metadata_flags: int
    read_count: int | None
    rssi_dbm: int | None
    antenna: int | None
    """TX antenna port, 1-based (wire nibble 0 is port 16)."""
    rx_antenna: int | None
    frequency_khz: int | None
    timestamp_ms: int | None
    phase: int | None
    protocol: int | None
    data_bits: int | None
    data: bytes | None
    gpio: int | None
    pc: int | None
    """Gen2 PC word; ``None`` for protocols without one."""
    xpc: bytes
    """XPC_W1 (and XPC_W2) as sent; empty without the PC's XI bit."""
    epc: str
    """Upper-case hex."""
    tag_crc: int | None
    """The tag's CRC as sent; ``None`` for ATA ids."""

    @property
    def tag_crc_ok(self) -> bool | None:
        """Whether ``tag_crc`` is the Gen2 CRC-16 of PC..EPC; ``None`` if not Gen2."""
        if self.pc is None or self.tag_crc is None:
            return None
        body = self.pc.to_bytes(2, "big") + self.xpc + bytes.fromhex(self.epc)
        return gen2_crc16(body) == self.tag_crc


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """End of a search cycle while reading continuously (0x22, status 0x0400)."""

    opcode: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TemperatureThrottle:
    """The module is too hot and throttles or stops reading (status 0x0504)."""

    opcode: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StatusError:
    """A response with any other non-zero status code."""

    opcode: int
    status: int
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """Any other successful response, with its raw data."""

    opcode: int
    data: bytes

    def version(self) -> dict[str, str] | None:
        """Fields of a get-version (0x03) reply as dotted hex, else ``None``."""
        if self.opcode != OP_VERSION or len(self.data) < 20:
            return None
        d = self.data
        quads = [".".join(f"{b:02X}" for b in d[i : i + 4]) for i in range(0, 16, 4)]
        return {
            "bootloader": quads[0],
            "hardware": quads[1],
            "firmware_date": d[8:12].hex().upper(),
            "firmware": quads[3],
            "protocols": d[16:20].hex().upper(),
        }

    def continuous_reading(self) -> str | None:
        """``"started"``/``"stopped"`` for 0x2F acknowledgements, else ``None``."""
        if self.opcode != OP_MULTI_PROTOCOL_TAG_OP or not self.data:
            return None
        return {0x01: "started", 0x02: "stopped"}.get(self.data[0])


Record = TagRead | KeepAlive | TemperatureThrottle | StatusError | Reply
Decoded = Record | DecodeFailure


# --- encoding (host -> module) -----------------------------------------------------------


def _int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer {low}-{high}, got {value!r}")
    return value


def encode_command(opcode: int, data: bytes = b"") -> bytes:
    """A whole host frame: header, length, opcode, data and CRC."""
    _int("opcode", opcode, 0, 255)
    if not isinstance(data, bytes | bytearray):
        raise ProtocolError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > 255:
        raise ProtocolError(f"data is {len(data)} bytes; a frame carries at most 255")
    body = bytes((len(data), opcode)) + bytes(data)
    return b"\xff" + body + crc16(body).to_bytes(2, "big")


def cmd_get_version() -> bytes:
    return encode_command(OP_VERSION)


def cmd_boot_firmware() -> bytes:
    """Leave the bootloader and start the application firmware."""
    return encode_command(OP_BOOT_FIRMWARE)


def cmd_set_baud_rate(baud: int) -> bytes:
    return encode_command(OP_SET_BAUD_RATE, _int("baud", baud, 1, 0xFFFFFFFF).to_bytes(4, "big"))


def cmd_set_region(region: int) -> bytes:
    """Set the regulatory region (a code of :data:`REGIONS`, e.g. 0x02 EU)."""
    return encode_command(OP_SET_REGION, bytes((_int("region", region, 0, 255),)))


def cmd_set_tag_protocol(protocol: int = PROTOCOL_GEN2) -> bytes:
    return encode_command(
        OP_SET_TAG_PROTOCOL, _int("protocol", protocol, 0, 255).to_bytes(2, "big")
    )


def cmd_set_antenna_ports(ports: Sequence[int]) -> bytes:
    """Search these antenna ports (1-based), each transmitting and receiving on itself."""
    if isinstance(ports, str | bytes) or not 1 <= len(ports) <= 16:
        raise ProtocolError(f"ports must list 1-16 antenna ports, got {ports!r}")
    data = bytearray((0x02,))  # logical antenna list
    for port in ports:
        _int("antenna port", port, 1, 16)
        data += bytes((port, port))
    return encode_command(OP_SET_ANTENNA_PORT, bytes(data))


def cmd_set_read_power(centi_dbm: int) -> bytes:
    """Read transmit power in 1/100 dBm (2700 = 27.00 dBm); the module enforces its limits."""
    return encode_command(
        OP_SET_READ_TX_POWER, _int("power", centi_dbm, 0, 0x7FFF).to_bytes(2, "big")
    )


def cmd_set_read_filter(enabled: bool) -> bytes:
    """Turn the module's duplicate-read filter on or off (off: every read is streamed)."""
    if not isinstance(enabled, bool):
        raise ProtocolError(f"enabled must be a bool, got {enabled!r}")
    data = bytes((0x01, READER_CONFIG_ENABLE_READ_FILTER, int(enabled)))
    return encode_command(OP_SET_READER_OPTIONAL_PARAMS, data)


def cmd_start_continuous_read(metadata_flags: int = META_ALL, on_time_ms: int = 1000) -> bytes:
    """Start continuous Gen2 reading with tag streaming (opcode 0x2F, sub-opcode 0x22).

    ``metadata_flags`` selects the metadata of every tag record (any of :data:`META_ALL`);
    ``on_time_ms`` is the search cycle, one keep-alive per cycle. With the defaults this is
    the frame Universal Reader Assistant sends: ``FF 10 2F 00 00 01 22 00 00 05 07 22 10
    00 1B 03 E8 01 FF DD 2B``.
    """
    _int("metadata_flags", metadata_flags, 0, 0xFFFF)
    if metadata_flags & ~META_ALL:
        raise ProtocolError(f"metadata flags 0x{metadata_flags:04X} hold bits beyond 0x01FF")
    _int("on_time_ms", on_time_ms, 1, 0xFFFF)
    sub = (
        bytes((OPTION_METADATA,))
        + SEARCH_FLAGS_STREAMING.to_bytes(2, "big")
        + on_time_ms.to_bytes(2, "big")
        + metadata_flags.to_bytes(2, "big")
    )
    data = (
        bytes((0x00, 0x00, 0x01, OP_READ_TAG_ID_MULTIPLE, 0x00, 0x00, PROTOCOL_GEN2, len(sub)))
        + bytes((OP_READ_TAG_ID_MULTIPLE,))
        + sub
    )
    return encode_command(OP_MULTI_PROTOCOL_TAG_OP, data)


def cmd_stop_continuous_read() -> bytes:
    return encode_command(OP_MULTI_PROTOCOL_TAG_OP, b"\x00\x00\x02")


# --- decoding ----------------------------------------------------------------------------

# Offsets of the fixed-size metadata fields (read count .. protocol) after ResponseType,
# per flags value: (read_count, rssi, antenna, frequency, timestamp, phase, protocol,
# prefix length); -1 for an absent field.
_FIXED_FIELDS = (
    (META_READ_COUNT, 1),
    (META_RSSI, 1),
    (META_ANTENNA, 1),
    (META_FREQUENCY, 3),
    (META_TIMESTAMP, 4),
    (META_PHASE, 2),
    (META_PROTOCOL, 1),
)
_LAYOUTS: dict[int, tuple[int, ...]] = {}


def _layout(flags: int) -> tuple[int, ...]:
    offsets = []
    at = 0
    for bit, size in _FIXED_FIELDS:
        if flags & bit:
            offsets.append(at)
            at += size
        else:
            offsets.append(-1)
    return (*offsets, at)


for _flags in range(META_ALL + 1):
    _LAYOUTS[_flags] = _layout(_flags)
del _flags

_new = object.__new__
_TAG_SLOTS = {name: getattr(TagRead, name).__set__ for name in TagRead.__slots__}
_set_opcode = _TAG_SLOTS["opcode"]
_set_option = _TAG_SLOTS["option"]
_set_search_flags = _TAG_SLOTS["search_flags"]
_set_metadata_flags = _TAG_SLOTS["metadata_flags"]
_set_read_count = _TAG_SLOTS["read_count"]
_set_rssi_dbm = _TAG_SLOTS["rssi_dbm"]
_set_antenna = _TAG_SLOTS["antenna"]
_set_rx_antenna = _TAG_SLOTS["rx_antenna"]
_set_frequency_khz = _TAG_SLOTS["frequency_khz"]
_set_timestamp_ms = _TAG_SLOTS["timestamp_ms"]
_set_phase = _TAG_SLOTS["phase"]
_set_protocol = _TAG_SLOTS["protocol"]
_set_data_bits = _TAG_SLOTS["data_bits"]
_set_data = _TAG_SLOTS["data"]
_set_gpio = _TAG_SLOTS["gpio"]
_set_pc = _TAG_SLOTS["pc"]
_set_xpc = _TAG_SLOTS["xpc"]
_set_epc = _TAG_SLOTS["epc"]
_set_tag_crc = _TAG_SLOTS["tag_crc"]


def _tag(buf: bytes, p: int, end: int) -> Decoded:
    """Parse the checksum-verified 0x22 tag record ``buf[p:end]``."""
    flags = buf[p + 8] << 8 | buf[p + 9]
    layout = _LAYOUTS.get(flags)
    if layout is None:
        return DecodeFailure("sanity", buf[p:end])
    i = p + 11
    dend = end - 2
    j = i + layout[7]
    if j > dend:
        return DecodeFailure("length", buf[p:end])
    o = layout[0]
    read_count = buf[i + o] if o >= 0 else None
    o = layout[1]
    rssi = (buf[i + o] ^ 0x80) - 0x80 if o >= 0 else None
    o = layout[2]
    if o >= 0:
        ant = buf[i + o]
        tx: int | None = (ant >> 4) or 16
        rx: int | None = (ant & 0x0F) or 16
    else:
        tx = rx = None
    o = layout[3]
    freq = (buf[i + o] << 16 | buf[i + o + 1] << 8 | buf[i + o + 2]) if o >= 0 else None
    o = layout[4]
    stamp = (
        (buf[i + o] << 24 | buf[i + o + 1] << 16 | buf[i + o + 2] << 8 | buf[i + o + 3])
        if o >= 0
        else None
    )
    o = layout[5]
    phase = (buf[i + o] << 8 | buf[i + o + 1]) if o >= 0 else None
    o = layout[6]
    protocol = buf[i + o] if o >= 0 else None
    data_bits = data = gpio = None
    if flags & META_DATA:
        if j + 2 > dend:
            return DecodeFailure("length", buf[p:end])
        data_bits = buf[j] << 8 | buf[j + 1]
        k = j + 2 + ((data_bits + 7) >> 3)
        if k > dend:
            return DecodeFailure("length", buf[p:end])
        data = buf[j + 2 : k]
        j = k
    if flags & META_GPIO:
        if j + 1 > dend:
            return DecodeFailure("length", buf[p:end])
        gpio = buf[j]
        j += 1
    if j + 2 > dend:
        return DecodeFailure("length", buf[p:end])
    epc_bits = buf[j] << 8 | buf[j + 1]
    j += 2
    if epc_bits & 7 or j + (epc_bits >> 3) != dend:
        return DecodeFailure("sanity", buf[p:end])
    pc: int | None = None
    xpc = b""
    if protocol is None or protocol == PROTOCOL_GEN2:
        if dend - j < 4:
            return DecodeFailure("sanity", buf[p:end])
        pc = buf[j] << 8 | buf[j + 1]
        j += 2
        if pc & PC_XI:
            x = 4 if buf[j] & 0x80 else 2  # XPC_W1, and XPC_W2 if W1 has its XEB bit
            if dend - j < x + 2:
                return DecodeFailure("sanity", buf[p:end])
            xpc = buf[j : j + x]
            j += x
    if protocol == PROTOCOL_ATA:
        tag_crc = None
        epc_end = dend
    else:
        epc_end = dend - 2
        tag_crc = buf[epc_end] << 8 | buf[epc_end + 1]
    if epc_end <= j:
        return DecodeFailure("sanity", buf[p:end])
    # Hot path: a frozen dataclass's __init__ costs a generic object.__setattr__ per
    # field; filling the slots directly is the same object for a fraction of the time.
    rec = _new(TagRead)
    _set_opcode(rec, buf[p + 2])
    _set_option(rec, buf[p + 5])
    _set_search_flags(rec, buf[p + 6] << 8 | buf[p + 7])
    _set_metadata_flags(rec, flags)
    _set_read_count(rec, read_count)
    _set_rssi_dbm(rec, rssi)
    _set_antenna(rec, tx)
    _set_rx_antenna(rec, rx)
    _set_frequency_khz(rec, freq)
    _set_timestamp_ms(rec, stamp)
    _set_phase(rec, phase)
    _set_protocol(rec, protocol)
    _set_data_bits(rec, data_bits)
    _set_data(rec, data)
    _set_gpio(rec, gpio)
    _set_pc(rec, pc)
    _set_xpc(rec, xpc)
    _set_epc(rec, buf[j:epc_end].hex().upper())
    _set_tag_crc(rec, tag_crc)
    return rec


def _body(buf: bytes, p: int, end: int) -> Decoded:
    """Interpret the CRC-verified response ``buf[p:end]``."""
    op = buf[p + 2]
    status = buf[p + 3] << 8 | buf[p + 4]
    if status:
        data = buf[p + 5 : end - 2]
        if status == STATUS_NO_TAGS_FOUND and op == OP_READ_TAG_ID_MULTIPLE:
            return KeepAlive(op, data)
        if status == STATUS_TEMPERATURE_EXCEED_LIMITS:
            return TemperatureThrottle(op, data)
        return StatusError(op, status, status_name(status), data)
    ln = end - p - FRAME_OVERHEAD
    if (
        op == OP_READ_TAG_ID_MULTIPLE
        and ln >= 6
        and ln != 7
        and buf[p + 5] & OPTION_METADATA
        and buf[p + 10] == RESPONSE_TAG
    ):
        return _tag(buf, p, end)
    return Reply(op, buf[p + 5 : end - 2])


def _crc_ok(buf: bytes, p: int, end: int) -> bool:
    return crc_hqx(buf[p + 1 : end - 2], _INIT) == crc_hqx(buf[end - 2 : end], 0)


def decode_frame(frame: bytes) -> Decoded:
    """Decode exactly one module response. Never raises for any ``bytes`` input."""
    frame = bytes(frame)
    n = len(frame)
    if n == 0 or frame[0] != HEAD:
        return DecodeFailure("garbage", frame[:MAX_FAILURE_DATA])
    if n < 2 or n != frame[1] + FRAME_OVERHEAD:
        return DecodeFailure("length", frame)
    if not _crc_ok(frame, 0, n):
        return DecodeFailure("checksum", frame)
    return _body(frame, 0, n)


class StreamDecoder(StreamDecoderBase[Record]):
    """Decode a byte stream chunk by chunk, resynchronising after bad bytes.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input
    (reports a held partial frame as ``truncated`` and a pending garbage run) and
    leaves the decoder empty for further use. ``counters`` counts good frames (``ok``)
    and failures by reason. Never raises.
    """

    __slots__ = ()

    @staticmethod
    def _hidden(buf: bytes, start: int, stop: int, final: bool) -> int | None:
        """First header in ``buf[start:stop]`` that starts a complete good frame.

        Returns its position, ``-1`` if the answer needs more bytes, ``None`` if none.
        """
        n = len(buf)
        q = buf.find(HEAD, start, stop)
        while q >= 0:
            if q + 1 >= n:
                if not final:
                    return -1
            else:
                eq = q + buf[q + 1] + FRAME_OVERHEAD
                if eq > n:
                    if not final:
                        return -1
                elif _crc_ok(buf, q, eq):
                    return q
            q = buf.find(HEAD, q + 1, stop)
        return None

    def _run(self, buf: bytes, out: list[Decoded], final: bool) -> int:
        """Decode ``buf`` from 0; return how far it was consumed."""
        n = len(buf)
        pos = 0
        ok = 0
        find = buf.find
        body = _body
        append = out.append
        init = _INIT
        try:
            while True:
                p = find(HEAD, pos)
                if p < 0:
                    if pos < n:
                        self._skip(buf[pos:])
                    return n
                if p > pos:
                    self._skip(buf[pos:p])
                if self._garbage_len:
                    self._emit_garbage(out)
                if p + 1 >= n:
                    if final:
                        self._fail(out, "truncated", buf[p:])
                        return n
                    return p
                end = p + buf[p + 1] + FRAME_OVERHEAD
                if end <= n:
                    if crc_hqx(buf[p + 1 : end - 2], init) == crc_hqx(buf[end - 2 : end], 0):
                        rec = body(buf, p, end)
                        if type(rec) is DecodeFailure:
                            self.counters[rec.reason] += 1
                        else:
                            ok += 1
                        append(rec)
                        pos = end
                        continue
                    q = self._hidden(buf, p + 1, end, final)
                    if q == -1:
                        return p
                    if q is None:
                        self._fail(out, "checksum", buf[p:end])
                        pos = end
                    else:
                        self._fail(out, "truncated", buf[p:q])
                        pos = q
                    continue
                # incomplete frame
                if not final:
                    return p
                q = self._hidden(buf, p + 1, n, final)
                if q is None:
                    self._fail(out, "truncated", buf[p:])
                    return n
                self._fail(out, "truncated", buf[p:q])
                pos = q
        finally:
            self.counters["ok"] += ok


def decode_stream(data: bytes) -> list[Decoded]:
    """Decode a complete byte string (feed plus flush)."""
    dec = StreamDecoder()
    return dec.feed(data) + dec.flush()


# --- JSON form ---------------------------------------------------------------------------


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex().upper()


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors."""
    if isinstance(rec, TagRead):
        return {
            "type": "tag",
            "opcode": f"0x{rec.opcode:02X}",
            "option": f"0x{rec.option:02X}",
            "search_flags": f"0x{rec.search_flags:04X}",
            "metadata_flags": f"0x{rec.metadata_flags:04X}",
            "read_count": rec.read_count,
            "rssi_dbm": rec.rssi_dbm,
            "antenna": rec.antenna,
            "rx_antenna": rec.rx_antenna,
            "frequency_khz": rec.frequency_khz,
            "timestamp_ms": rec.timestamp_ms,
            "phase": rec.phase,
            "protocol": rec.protocol,
            "data_bits": rec.data_bits,
            "data": _hex(rec.data),
            "gpio": rec.gpio,
            "pc": None if rec.pc is None else f"{rec.pc:04X}",
            "xpc": rec.xpc.hex().upper(),
            "epc": rec.epc,
            "tag_crc": None if rec.tag_crc is None else f"{rec.tag_crc:04X}",
            "tag_crc_ok": rec.tag_crc_ok,
        }
    if isinstance(rec, KeepAlive):
        return {"type": "keep_alive", "opcode": f"0x{rec.opcode:02X}", "data": _hex(rec.data)}
    if isinstance(rec, TemperatureThrottle):
        return {
            "type": "temperature_throttle",
            "opcode": f"0x{rec.opcode:02X}",
            "data": _hex(rec.data),
        }
    if isinstance(rec, StatusError):
        return {
            "type": "error",
            "opcode": f"0x{rec.opcode:02X}",
            "status": f"0x{rec.status:04X}",
            "name": rec.name,
            "data": _hex(rec.data),
        }
    if isinstance(rec, Reply):
        d: dict[str, Any] = {
            "type": "reply",
            "opcode": f"0x{rec.opcode:02X}",
            "data": _hex(rec.data),
        }
        version = rec.version()
        if version is not None:
            d["version"] = version
        reading = rec.continuous_reading()
        if reading is not None:
            d["continuous_reading"] = reading
        return d
    return failure_to_dict(rec)


def tag_of(rec: Decoded) -> TagView | None:
    """The tag a record holds (tag records only)."""
    if isinstance(rec, TagRead):
        rssi = None if rec.rssi_dbm is None else float(rec.rssi_dbm)
        return TagView(rec.epc, rec.antenna, rssi)
    return None


PROTOCOL = ProtocolInfo(
    name="mercury",
    title="ThingMagic/JADAK Mercury serial protocol (0xFF frames)",
    spec="ThingMagic Mercury API serial protocol (serial_reader_l3.c) with continuous "
    "reading and tag streaming; see this module's docstring",
    models=(
        "ThingMagic/JADAK M6e, M6e Micro, M6e Nano (SparkFun Simultaneous RFID Reader)",
        "ThingMagic/JADAK M7e Pico/Hecto/Tera",
    ),
    default_baud=115200,
    typical_frame_bytes=47,
    reports=(
        "epc",
        "pc",
        "antenna",
        "rssi",
        "frequency",
        "phase",
        "timestamp",
        "read count",
    ),
    new_decoder=StreamDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
