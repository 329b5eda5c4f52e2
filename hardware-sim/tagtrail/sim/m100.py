"""The M100 module protocol, seen from the module's side: frame encoder and command parser.

Written independently of :mod:`tagtrail.readers.protocols` (the host-side driver); the two
share only test vectors, so a misreading of the protocol in one shows up as a failing test
instead of cancelling out.

Frame layout, both directions::

    BB | Type | Cmd | PL_H PL_L | Payload (PL bytes) | Check | 7E

``Type`` is 0x00 for a host command, 0x01 for the module's response and 0x02 for an
unsolicited notice. ``Check`` is the low byte of the sum of every byte from ``Type`` to
the end of the payload. Nothing is escaped.

What the simulated module sends:

* one tag notice per tag read by a single (0x22) or multiple (0x27) poll, ``Type 0x02``,
  ``Cmd 0x22``: ``RSSI(int8 dBm) | PC | EPC | CRC``, where the CRC is the tag's CRC-16
  over PC and EPC (CRC-16/GENIBUS: polynomial 0x1021, preset 0xFFFF, inverted, the
  EPC Gen2 CRC-16) and the PC's top five bits give the EPC length in words;
* error responses ``Cmd 0xFF`` with a code (0x15: a single poll found no tag,
  0x17: a command the module does not know or could not parse);
* responses to setters: one status byte, 0x00 for success; module information as a kind
  byte and ASCII text; the region byte; the power in 0.01 dBm.

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from tagtrail.errors import ProtocolError

HEAD = 0xBB
TAIL = 0x7E

COMMAND = 0x00
RESPONSE = 0x01
NOTICE = 0x02

CMD_MODULE_INFO = 0x03
CMD_SET_REGION = 0x07
CMD_GET_REGION = 0x08
CMD_SET_BAUD = 0x11
CMD_SINGLE_POLL = 0x22
CMD_MULTIPLE_POLL = 0x27
CMD_STOP = 0x28
CMD_SET_POWER = 0xB6
CMD_GET_POWER = 0xB7
CMD_ERROR = 0xFF

NO_TAG = 0x15
COMMAND_ERROR = 0x17

MAX_COMMAND_PAYLOAD = 1024
"""A host frame claiming a longer payload is taken for junk (real commands are short)."""


def checksum(data: bytes | bytearray) -> int:
    """The check byte over ``Type`` through the payload."""
    return sum(data) % 256


def _crc_table() -> tuple[int, ...]:
    table = []
    for top in range(256):
        reg = top << 8
        for _ in range(8):
            reg = (reg << 1) ^ 0x1021 if reg & 0x8000 else reg << 1
        table.append(reg & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def epc_crc(pc_and_epc: bytes) -> int:
    """The Gen2 CRC-16 a tag sends after its PC and EPC (table-driven, MSB first)."""
    reg = 0xFFFF
    for byte in pc_and_epc:
        reg = ((reg << 8) & 0xFFFF) ^ _CRC_TABLE[(reg >> 8) ^ byte]
    return reg ^ 0xFFFF


def encode_frame(frame_type: int, cmd: int, payload: bytes = b"") -> bytes:
    """One frame with header, length, check byte and tail. Raises :class:`ProtocolError`."""
    if frame_type not in (COMMAND, RESPONSE, NOTICE) or not 0 <= cmd <= 0xFF:
        raise ProtocolError(f"frame type {frame_type} or command {cmd} out of range")
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"a payload of {len(payload)} bytes does not fit one frame")
    inner = bytes((frame_type, cmd)) + len(payload).to_bytes(2, "big") + payload
    return bytes((HEAD,)) + inner + bytes((checksum(inner), TAIL))


def response_frame(cmd: int, payload: bytes = b"") -> bytes:
    return encode_frame(RESPONSE, cmd, payload)


def status_frame(cmd: int, status: int = 0) -> bytes:
    """A setter's answer: one status byte, 0 for success."""
    return response_frame(cmd, bytes((status & 0xFF,)))


def error_frame(code: int, extra: bytes = b"") -> bytes:
    """An error response (``Cmd 0xFF``)."""
    return response_frame(CMD_ERROR, bytes((code & 0xFF,)) + extra)


def module_info_frame(kind: int, text: str) -> bytes:
    """Module information: kind 0 hardware, 1 software, 2 manufacturer; ASCII text."""
    return response_frame(CMD_MODULE_INFO, bytes((kind & 0xFF,)) + text.encode("ascii"))


def region_frame(region: int) -> bytes:
    return response_frame(CMD_GET_REGION, bytes((region & 0xFF,)))


def power_frame(centi_dbm: int) -> bytes:
    """The answer to get TX power, in 0.01 dBm."""
    return response_frame(CMD_GET_POWER, min(max(centi_dbm, 0), 0xFFFF).to_bytes(2, "big"))


def pc_word(epc_len_bytes: int) -> int:
    """Protocol Control word for an EPC of that many bytes (whole 16-bit words)."""
    if epc_len_bytes <= 0 or epc_len_bytes % 2 or epc_len_bytes > 62:
        raise ProtocolError(f"an EPC of {epc_len_bytes} bytes is not 1-31 whole words")
    return (epc_len_bytes // 2) << 11


def rssi_byte(rssi_dbm: float) -> int:
    """The RSSI byte: the level in dBm as a signed byte, clamped to -128..127."""
    level = min(max(round(rssi_dbm), -128), 127)
    return level & 0xFF


def tag_notice(*, epc: bytes, rssi_dbm: float, pc: int | None = None) -> bytes:
    """One tag notice; ``pc`` defaults to the plain PC word of the EPC's length."""
    word = pc_word(len(epc)) if pc is None else pc
    if not 0 <= word <= 0xFFFF:
        raise ProtocolError(f"PC {word} is not a 16-bit word")
    pc_and_epc = word.to_bytes(2, "big") + epc
    payload = bytes((rssi_byte(rssi_dbm),)) + pc_and_epc + epc_crc(pc_and_epc).to_bytes(2, "big")
    return encode_frame(NOTICE, CMD_SINGLE_POLL, payload)


@dataclass(frozen=True, slots=True)
class Command:
    """One well-formed host frame (check and tail verified); meaning is the caller's business."""

    cmd: int
    data: bytes

    @property
    def poll_count(self) -> int | None:
        """The count of a multiple-poll command (reserved byte 0x22, count big-endian)."""
        if self.cmd == CMD_MULTIPLE_POLL and len(self.data) == 3:
            return int.from_bytes(self.data[1:], "big")
        return None


class CommandParser:
    """Incremental parser of the host's byte stream into :class:`Command` frames.

    Bytes before a header are skipped (counted as ``junk_bytes``). A frame that is not a
    command (``Type`` other than 0x00), claims an impossible length, or has a wrong tail
    or check byte is dropped by skipping its header byte only, so the parser resynchronises
    on the next ``0xBB`` even inside the bad frame. Problems are counted in :attr:`errors`.
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

    def feed(self, chunk: bytes) -> list[Command]:
        """Add bytes; return every complete, valid command they finish."""
        buf = self._buf
        buf += chunk
        out: list[Command] = []
        while buf:
            start = buf.find(HEAD)
            if start < 0:
                self._count("junk_bytes", len(buf))
                buf.clear()
                break
            if start:
                self._count("junk_bytes", start)
                del buf[:start]
            if len(buf) < 5:
                break
            length = buf[3] << 8 | buf[4]
            if buf[1] != COMMAND or length > MAX_COMMAND_PAYLOAD:
                self._count("not_a_command")
                del buf[0]
                continue
            total = length + 7
            if len(buf) < total:
                break
            if buf[total - 1] != TAIL:
                self._count("bad_tail")
                del buf[0]
                continue
            if checksum(buf[1 : total - 2]) != buf[total - 2]:
                self._count("bad_checksum")
                del buf[0]
                continue
            out.append(Command(cmd=buf[2], data=bytes(buf[5 : total - 2])))
            del buf[:total]
        return out
