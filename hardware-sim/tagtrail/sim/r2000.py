"""The R2000 serial protocol, seen from the reader's side: frame encoder and command parser.

Written independently of :mod:`tagtrail.readers.protocols` (the host-side driver); the two
share only test vectors, so a misreading of the protocol in one shows up as a failing test
instead of cancelling out.

Frame layout, both directions::

    A0 | Len | Addr | Cmd | Data... | Check

``Len`` counts the bytes from ``Addr`` through ``Check`` (a frame is ``Len + 2`` bytes) and
``Check`` is the two's complement of the byte sum of ``Head`` through ``Data``, so a whole
frame sums to 0 modulo 256.

Replies the simulator sends:

* result frame ``Len=4``: one result code (``0x10`` success or an error code);
* tag frame (inventory): ``FreqAnt | PC(2) | EPC | RSSI`` where ``FreqAnt`` carries the
  frequency channel in bits 7..2 and the 0-based antenna in bits 1..0, ``PC`` has the EPC
  length in 16-bit words in bits 15..11 and RSSI is raw, ``dBm = raw - 129``;
* end of an inventory round, ``Len=0x0A``: ``Antenna(1, 0-based) | ReadRate(2) |
  TotalRead(4)``, big-endian; a round that read nothing ends with error ``0x36`` instead.

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from tagtrail.errors import ProtocolError

HEAD = 0xA0
BROADCAST = 0xFF

CMD_RESET = 0x70
CMD_GET_FIRMWARE = 0x72
CMD_SET_WORK_ANTENNA = 0x74
CMD_GET_WORK_ANTENNA = 0x75
CMD_REAL_TIME_INVENTORY = 0x89
CMD_SESSION_INVENTORY = 0x8B

SUCCESS = 0x10
ANTENNA_MISSING = 0x22
NO_TAG = 0x36
PARAMETER_INVALID = 0x41
ANTENNA_ID_OUT_OF_RANGE = 0x47

END_OF_ROUND_LEN = 0x0A
RESULT_LEN = 0x04
RSSI_OFFSET = 129
"""``rssi_dbm = raw - RSSI_OFFSET``."""

FREQ_CHANNELS = 64
"""Bits 7..2 of ``FreqAnt`` hold 0-63."""


def checksum(data: bytes | bytearray) -> int:
    """Two's complement of the byte sum: the byte that makes the frame sum to 0."""
    return -sum(data) & 0xFF


def encode_frame(address: int, cmd: int, data: bytes = b"") -> bytes:
    """One frame with header, length and checksum. Raises :class:`ProtocolError`."""
    if not 0 <= address <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ProtocolError(f"address {address} and cmd {cmd} must be bytes")
    length = len(data) + 3
    if length > 0xFF:
        raise ProtocolError(f"frame data of {len(data)} bytes does not fit one frame")
    body = bytes((HEAD, length, address, cmd)) + data
    return body + bytes((checksum(body),))


def result_frame(address: int, cmd: int, code: int) -> bytes:
    """A ``Len=4`` frame with one result code (success or an error)."""
    return encode_frame(address, cmd, bytes((code & 0xFF,)))


def pc_word(epc_len_bytes: int) -> int:
    """Protocol Control word for an EPC of that many bytes (whole 16-bit words)."""
    if epc_len_bytes <= 0 or epc_len_bytes % 2 or epc_len_bytes > 62:
        raise ProtocolError(f"an EPC of {epc_len_bytes} bytes is not 1-31 whole words")
    return (epc_len_bytes // 2) << 11


def rssi_raw(rssi_dbm: float) -> int:
    """Raw RSSI byte for a level in dBm, clamped to 1-127 (-128 to -2 dBm)."""
    raw = round(rssi_dbm) + RSSI_OFFSET
    return min(max(raw, 1), 127)


def freq_ant(freq_index: int, antenna_index: int) -> int:
    """The ``FreqAnt`` byte: channel in bits 7..2, 0-based antenna in bits 1..0."""
    if not 0 <= freq_index < FREQ_CHANNELS or not 0 <= antenna_index <= 3:
        raise ProtocolError(f"channel {freq_index} or antenna {antenna_index} out of range")
    return (freq_index << 2) | antenna_index


def tag_frame(
    address: int,
    cmd: int,
    *,
    freq_index: int,
    antenna_index: int,
    pc: int,
    epc: bytes,
    rssi_dbm: float,
) -> bytes:
    """One inventory tag frame."""
    data = (
        bytes((freq_ant(freq_index, antenna_index), pc >> 8 & 0xFF, pc & 0xFF))
        + epc
        + bytes((rssi_raw(rssi_dbm),))
    )
    return encode_frame(address, cmd, data)


def end_of_round_frame(
    address: int, cmd: int, *, antenna_index: int, read_rate: int, total_reads: int
) -> bytes:
    """The frame closing an inventory round; values are clamped to their field widths."""
    rate = min(max(read_rate, 0), 0xFFFF)
    total = min(max(total_reads, 0), 0xFFFFFFFF)
    data = bytes((antenna_index & 0x03,)) + rate.to_bytes(2, "big") + total.to_bytes(4, "big")
    return encode_frame(address, cmd, data)


@dataclass(frozen=True, slots=True)
class Command:
    """One well-formed host frame (checksum verified); meaning is the caller's business."""

    address: int
    cmd: int
    data: bytes


class CommandParser:
    """Incremental parser of the host's byte stream into :class:`Command` frames.

    Bytes before a header are skipped (counted as ``junk_bytes``); a frame with an
    impossible length or a wrong checksum is dropped by skipping its header byte only, so
    the parser resynchronises on the next ``0xA0`` even inside the bad frame. Problems are
    counted in :attr:`errors` by reason.
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
        """Add bytes; return every complete, valid frame they finish."""
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
            if len(buf) < 2:
                break
            length = buf[1]
            if length < 3:
                self._count("bad_length")
                del buf[0]
                continue
            total = length + 2
            if len(buf) < total:
                break
            if sum(buf[:total]) & 0xFF:
                self._count("bad_checksum")
                del buf[0]
                continue
            out.append(Command(address=buf[2], cmd=buf[3], data=bytes(buf[4 : total - 1])))
            del buf[:total]
        return out
