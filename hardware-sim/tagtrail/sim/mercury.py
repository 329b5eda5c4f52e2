"""The ThingMagic Mercury serial protocol, seen from the module's side: response encoder
and host command parser.

Written independently of :mod:`tagtrail.readers.protocols` (the host-side driver); the two
share only test vectors, so a misreading of the protocol in one shows up as a failing test
instead of cancelling out.

Frames::

    host -> module:  FF | Len | Opcode | Data | CRC_hi CRC_lo                 (Len + 5 bytes)
    module -> host:  FF | Len | Opcode | Status_hi Status_lo | Data | CRC     (Len + 7 bytes)

``Len`` is the number of ``Data`` bytes. The CRC covers everything between the ``FF`` and
the CRC. It is ThingMagic's CRC-16: a 16-bit register starting at ``0xFFFF`` takes each
byte as two nibbles, high first; per nibble the register shifts left by four with the
nibble entering at the bottom, and the four bits that fell out of the top select a
correction from a 16-entry table of multiples of the polynomial ``0x1021``. Here the table
is built from the polynomial and the nibble steps are run as written.

Responses the simulator sends while reading continuously (opcode ``0x22``):

* a tag record: ``Option 0x10 | SearchFlags(2) | MetadataFlags(2) | 0x01 | metadata |
  EpcBits(2) | PC(2) | EPC | TagCRC(2)``; metadata fields appear in flag order: read
  count (1), RSSI (signed dBm, 1), antenna (TX << 4 | RX, port 16 as 0), frequency (kHz, 3),
  timestamp (ms, 4), phase (2), protocol (1), data (bit count (2) + bytes), GPIO (1);
  ``EpcBits`` counts PC, EPC and tag CRC in bits; the tag CRC is Gen2's CRC-16 (preset
  0xFFFF, polynomial 0x1021, result inverted) over PC and EPC;
* a keep-alive after every search cycle: status ``0x0400`` with no data;
* a temperature throttle: status ``0x0504``.

Commands are acknowledged with a response of the same opcode: status 0 (with data where
the command returns some) or an error status.

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from tagtrail.errors import ProtocolError

SOF = 0xFF
POLY = 0x1021

OP_VERSION = 0x03
OP_BOOT_FIRMWARE = 0x04
OP_SET_BAUD_RATE = 0x06
OP_READ_TAG_ID_MULTIPLE = 0x22
OP_MULTI_PROTOCOL_TAG_OP = 0x2F
OP_SET_ANTENNA_PORT = 0x91
OP_SET_READ_TX_POWER = 0x92
OP_SET_TAG_PROTOCOL = 0x93
OP_SET_REGION = 0x97
OP_SET_READER_OPTIONAL_PARAMS = 0x9A

STATUS_OK = 0x0000
STATUS_INVALID_OPCODE = 0x0101
STATUS_INVALID_PARAMETER = 0x0105
STATUS_INVALID_REGION = 0x010B
STATUS_NO_TAGS_FOUND = 0x0400
STATUS_ANTENNA_NOT_CONNECTED = 0x0503
STATUS_TEMPERATURE = 0x0504

GEN2 = 0x05
ATA = 0x1D
METADATA_OPTION = 0x10
TAG_RESPONSE = 0x01
STREAM_SEARCH_FLAGS = 0x001B

F_COUNT = 0x0001
F_RSSI = 0x0002
F_ANTENNA = 0x0004
F_FREQUENCY = 0x0008
F_TIMESTAMP = 0x0010
F_PHASE = 0x0020
F_PROTOCOL = 0x0040
F_DATA = 0x0080
F_GPIO = 0x0100
ALL_METADATA = 0x01FF


def _nibble_table() -> tuple[int, ...]:
    """``T[k]``: what the four bits ``k`` falling out of the register XOR back in."""
    table = []
    for k in range(16):
        value = 0
        for bit in range(4):
            if k >> bit & 1:
                value ^= POLY << bit
        table.append(value & 0xFFFF)
    return tuple(table)


NIBBLE_TABLE = _nibble_table()


def crc16(data: bytes | bytearray) -> int:
    """ThingMagic's CRC of the bytes after ``FF`` (two nibble steps per byte)."""
    reg = 0xFFFF
    for byte in data:
        for nibble in (byte >> 4, byte & 0x0F):
            reg = (((reg << 4) | nibble) & 0xFFFF) ^ NIBBLE_TABLE[reg >> 12]
    return reg


def tag_crc16(data: bytes) -> int:
    """Gen2 CRC-16 of PC..EPC, as a tag backscatters it."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte << 8
        for _ in range(8):
            reg = ((reg << 1) ^ POLY) & 0xFFFF if reg & 0x8000 else (reg << 1) & 0xFFFF
    return reg ^ 0xFFFF


def _with_crc(body: bytes) -> bytes:
    crc = crc16(body)
    return bytes((SOF,)) + body + bytes((crc >> 8, crc & 0xFF))


def encode_command(opcode: int, data: bytes = b"") -> bytes:
    """A host frame (what a driver sends); used by tests and clients of the simulator."""
    if not 0 <= opcode <= 0xFF or len(data) > 0xFF:
        raise ProtocolError(f"opcode {opcode} or {len(data)} data bytes out of range")
    return _with_crc(bytes((len(data), opcode)) + data)


def encode_response(opcode: int, status: int = STATUS_OK, data: bytes = b"") -> bytes:
    """A module response frame."""
    if not 0 <= opcode <= 0xFF or not 0 <= status <= 0xFFFF or len(data) > 0xFF:
        raise ProtocolError(f"opcode {opcode}, status {status} or data length out of range")
    return _with_crc(bytes((len(data), opcode, status >> 8, status & 0xFF)) + data)


def keep_alive() -> bytes:
    """End of a search cycle during continuous reading."""
    return encode_response(OP_READ_TAG_ID_MULTIPLE, STATUS_NO_TAGS_FOUND)


def temperature_throttle(opcode: int = OP_READ_TAG_ID_MULTIPLE) -> bytes:
    return encode_response(opcode, STATUS_TEMPERATURE)


def reading_started() -> bytes:
    """Acknowledgement of the start-continuous-reading command."""
    return encode_response(OP_MULTI_PROTOCOL_TAG_OP, data=bytes((0x01, 0x22, 0x00, 0x00)))


def reading_stopped() -> bytes:
    """Acknowledgement of the stop command, sent after the last tag record."""
    return encode_response(OP_MULTI_PROTOCOL_TAG_OP, data=b"\x02")


def version_reply(
    *,
    bootloader: bytes = bytes((0x14, 0x12, 0x08, 0x00)),
    hardware: bytes = bytes((0x30, 0x00, 0x00, 0x02)),
    firmware_date: bytes = bytes((0x20, 0x15, 0x03, 0x10)),
    firmware: bytes = bytes((0x01, 0x03, 0x01, 0x47)),
    protocols: int = 1 << (GEN2 - 1),
) -> bytes:
    """Get-version reply; the defaults are those of an M6e Nano."""
    for part in (bootloader, hardware, firmware_date, firmware):
        if len(part) != 4:
            raise ProtocolError("version fields are 4 bytes each")
    data = bootloader + hardware + firmware_date + firmware + protocols.to_bytes(4, "big")
    return encode_response(OP_VERSION, data=data)


def pc_for(epc: bytes) -> int:
    """The PC word of an EPC: its length in 16-bit words in the top five bits."""
    if not epc or len(epc) % 2 or len(epc) > 62:
        raise ProtocolError(f"an EPC of {len(epc)} bytes is not 1-31 whole words")
    return (len(epc) // 2) << 11


def _port_nibble(port: int) -> int:
    if not 1 <= port <= 16:
        raise ProtocolError(f"antenna port {port} is not 1-16")
    return port & 0x0F


def tag_record(
    epc: bytes,
    *,
    metadata_flags: int = ALL_METADATA,
    read_count: int = 1,
    rssi_dbm: float = -60,
    antenna: int = 1,
    rx_antenna: int | None = None,
    frequency_khz: int = 915250,
    timestamp_ms: int = 0,
    phase: int = 0,
    protocol: int = GEN2,
    data: bytes = b"",
    data_bits: int | None = None,
    gpio: int = 0,
    pc: int | None = None,
    xpc: bytes = b"",
    tag_crc: int | None = None,
    option: int = METADATA_OPTION,
    search_flags: int = STREAM_SEARCH_FLAGS,
) -> bytes:
    """One streamed tag record (opcode 0x22) with the metadata ``metadata_flags`` selects.

    ``pc`` defaults to the EPC's length word (plus the XI bit when ``xpc`` is given) and
    ``tag_crc`` to the Gen2 CRC of PC, XPC and EPC. Non-Gen2 ids (``protocol`` other than
    5, with the protocol flag set) carry no PC; ATA ids (0x1D) no tag CRC either; other
    non-Gen2 ids get ``tag_crc`` as given, or the same CRC-16 over the id.
    """
    if not 0 <= metadata_flags <= ALL_METADATA:
        raise ProtocolError(f"metadata flags 0x{metadata_flags:X} beyond 0x01FF")
    gen2 = not metadata_flags & F_PROTOCOL or protocol == GEN2
    meta = bytearray()
    if metadata_flags & F_COUNT:
        meta.append(min(max(read_count, 0), 255))
    if metadata_flags & F_RSSI:
        meta.append(min(max(round(rssi_dbm), -128), 127) & 0xFF)
    if metadata_flags & F_ANTENNA:
        rx = antenna if rx_antenna is None else rx_antenna
        meta.append(_port_nibble(antenna) << 4 | _port_nibble(rx))
    if metadata_flags & F_FREQUENCY:
        meta += frequency_khz.to_bytes(3, "big")
    if metadata_flags & F_TIMESTAMP:
        meta += (timestamp_ms & 0xFFFFFFFF).to_bytes(4, "big")
    if metadata_flags & F_PHASE:
        meta += phase.to_bytes(2, "big")
    if metadata_flags & F_PROTOCOL:
        meta.append(protocol)
    if metadata_flags & F_DATA:
        bits = len(data) * 8 if data_bits is None else data_bits
        if (bits + 7) // 8 != len(data):
            raise ProtocolError(f"{bits} data bits do not fill {len(data)} bytes")
        meta += bits.to_bytes(2, "big") + data
    if metadata_flags & F_GPIO:
        meta.append(gpio)
    ident = bytearray()
    if gen2:
        if pc is None:
            pc = pc_for(epc) | (0x0200 if xpc else 0)
        ident += pc.to_bytes(2, "big") + xpc
    ident += epc
    if not (metadata_flags & F_PROTOCOL and protocol == ATA):
        crc = tag_crc16(bytes(ident)) if tag_crc is None else tag_crc
        ident += crc.to_bytes(2, "big")
    head = bytes((option,)) + search_flags.to_bytes(2, "big") + metadata_flags.to_bytes(2, "big")
    payload = head + bytes((TAG_RESPONSE,)) + meta + (len(ident) * 8).to_bytes(2, "big") + ident
    if len(payload) > 0xFF:
        raise ProtocolError(f"a tag record of {len(payload)} bytes does not fit one frame")
    return encode_response(OP_READ_TAG_ID_MULTIPLE, STATUS_OK, payload)


@dataclass(frozen=True, slots=True)
class Command:
    """One well-formed host frame (CRC verified); meaning is the caller's business."""

    opcode: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StartReading:
    """What a start-continuous-reading command (0x2F, option 1, sub-opcode 0x22) asks."""

    metadata_flags: int
    on_time_ms: int
    search_flags: int
    protocol: int


def parse_start_reading(data: bytes) -> StartReading | None:
    """The request of a ``0x2F`` command's data, ``None`` for a stop or another 0x2F.

    Raises :class:`ProtocolError` for a start command the simulator cannot honour.
    """
    if len(data) < 3 or data[2] != 0x01:
        return None
    if len(data) < 8 or data[3] != OP_READ_TAG_ID_MULTIPLE:
        raise ProtocolError(f"unsupported continuous-reading command {data.hex()}")
    protocol, sub_len = data[6], data[7]
    sub = data[8:]
    if len(sub) != sub_len + 1 or len(sub) < 8 or sub[0] != OP_READ_TAG_ID_MULTIPLE:
        raise ProtocolError(f"malformed embedded read command {sub.hex()}")
    if not sub[1] & METADATA_OPTION:
        raise ProtocolError("continuous reading without metadata is not simulated")
    return StartReading(
        metadata_flags=int.from_bytes(sub[6:8], "big"),
        on_time_ms=int.from_bytes(sub[4:6], "big"),
        search_flags=int.from_bytes(sub[2:4], "big"),
        protocol=protocol,
    )


def is_stop_reading(command: Command) -> bool:
    return command.opcode == OP_MULTI_PROTOCOL_TAG_OP and command.data[2:3] == b"\x02"


class CommandParser:
    """Incremental parser of the host's byte stream into :class:`Command` frames.

    Bytes before a header are skipped (counted as ``junk_bytes``). A complete frame with a
    wrong CRC is dropped by skipping its header byte only, so the parser resynchronises on
    the next ``0xFF`` even inside the bad frame. A header whose frame is still incomplete
    gives way to a later header that already starts a complete frame with a good CRC (the
    bytes before it count as ``junk_bytes``): a wake-up preamble of ``FF`` bytes, each
    claiming 255 data bytes, must not hold up the command behind it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.errors: dict[str, int] = {}

    def _count(self, reason: str, n: int = 1) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + n

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def _complete_good(self, at: int) -> int:
        """Length of a complete, CRC-correct frame at ``at``, or 0."""
        buf = self._buf
        if at + 1 >= len(buf):
            return 0
        total = buf[at + 1] + 5
        if at + total > len(buf):
            return 0
        crc = crc16(buf[at + 1 : at + total - 2])
        return total if buf[at + total - 2 : at + total] == bytes((crc >> 8, crc & 0xFF)) else 0

    def feed(self, chunk: bytes) -> list[Command]:
        """Add bytes; return every complete, valid frame they finish."""
        buf = self._buf
        buf += chunk
        out: list[Command] = []
        while buf:
            start = buf.find(SOF)
            if start < 0:
                self._count("junk_bytes", len(buf))
                buf.clear()
                break
            if start:
                self._count("junk_bytes", start)
                del buf[:start]
            if len(buf) < 2:
                break
            total = buf[1] + 5
            if len(buf) < total:
                later = buf.find(SOF, 1)
                while later > 0 and not self._complete_good(later):
                    later = buf.find(SOF, later + 1)
                if later > 0:
                    self._count("junk_bytes", later)
                    del buf[:later]
                    continue
                break
            if not self._complete_good(0):
                self._count("bad_crc")
                del buf[0]
                continue
            out.append(Command(opcode=buf[2], data=bytes(buf[3 : total - 2])))
            del buf[:total]
        return out
