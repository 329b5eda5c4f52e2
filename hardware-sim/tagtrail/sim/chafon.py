"""The Chafon UHFReader18 / UHFReader288 protocol, seen from the reader's side.

Frame encoder and host-command parser, written independently of
:mod:`tagtrail.readers.protocols` (the host-side decoder); the two share only test vectors,
so a misreading of the protocol in one shows up as a failing test instead of cancelling out.

Frames, both directions::

    reader -> host:  Len | Adr | Cmd | Status | Data... | CRC-lo | CRC-hi
    host -> reader:  Len | Adr | Cmd | Data... | CRC-lo | CRC-hi

``Len`` is the number of bytes after it (CRC included). The CRC is CRC-16/MCRF4XX
(reflected polynomial 0x8408, preset 0xFFFF, no final xor) over ``Len`` .. ``Data``; here
it is computed with a 256-entry table.

Replies the simulator sends:

* inventory (0x01), UHFReader288 layout: ``Ant(bit mask) | Num | Num x (Len' | EPC |
  RSSI)``, UHFReader18 layout: ``Num | Num x (Len' | EPC)``. Tags that do not fit one
  frame go in several, all but the last with status 0x03 ("more data"); the last has 0x01
  (finished). An inventory that found nothing is ``Ant | 00`` with status 0x01 (288) or a
  bare status 0xFB "no tag" (18). ``Len'`` bit 7 marks an EPC followed by a 12-byte TID
  (FastID).
* statistics (status 0x26): ``Ant | ReadRate(2) | TotalCount(4)``, most-significant byte
  first.
* real-time tag (Cmd 0xEE, status 0x00): ``Ant | Len' | EPC | RSSI``.
* reader information (0x21): ``Version(2) | Type | Tr_Type | DMaxFre | DMinFre | Power |
  ScanTime | extra``, the band's four bits split over the top two bits of DMaxFre (high)
  and DMinFre (low).

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from tagtrail.errors import ProtocolError

BROADCAST = 0xFF

CMD_INVENTORY = 0x01
CMD_SINGLE_INVENTORY = 0x0F
CMD_GET_READER_INFO = 0x21
CMD_SET_SCAN_TIME = 0x25
CMD_REALTIME = 0xEE

STATUS_SUCCESS = 0x00
STATUS_FINISHED = 0x01
STATUS_TIMEOUT = 0x02
STATUS_MORE_DATA = 0x03
STATUS_MEMORY_FULL = 0x04
STATUS_STATISTICS = 0x26
STATUS_HEARTBEAT = 0x28
STATUS_ANTENNA_ERROR = 0xF8
STATUS_NO_TAG = 0xFB
STATUS_ILLEGAL_COMMAND = 0xFE
STATUS_PARAMETER_ERROR = 0xFF

TYPE_UHFREADER18 = 0x09
TYPE_UHFREADER288M = 0x0C

TID_BYTES = 12
MAX_LEN = 0xFF


def _table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _table()


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/MCRF4XX by table: one lookup per byte."""
    c = 0xFFFF
    for b in data:
        c = (c >> 8) ^ _TABLE[(c ^ b) & 0xFF]
    return c


def _frame(body: bytes) -> bytes:
    c = crc16(body)
    return body + bytes((c & 0xFF, c >> 8))


def encode_reply(address: int, cmd: int, status: int, data: bytes = b"") -> bytes:
    """A reader -> host frame. Raises :class:`ProtocolError` if it cannot be one frame."""
    for name, v in (("address", address), ("cmd", cmd), ("status", status)):
        if not 0 <= v <= 0xFF:
            raise ProtocolError(f"{name} {v} is not a byte")
    length = 5 + len(data)
    if length > MAX_LEN:
        raise ProtocolError(f"reply data of {len(data)} bytes does not fit one frame")
    return _frame(bytes((length, address, cmd, status)) + bytes(data))


def encode_command(address: int, cmd: int, data: bytes = b"") -> bytes:
    """A host -> reader frame (no status byte), for tests and tools."""
    if not 0 <= address <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ProtocolError(f"address {address} and cmd {cmd} must be bytes")
    length = 4 + len(data)
    if length > MAX_LEN:
        raise ProtocolError(f"command data of {len(data)} bytes does not fit one frame")
    return _frame(bytes((length, address, cmd)) + bytes(data))


def antenna_mask(antenna: int) -> int:
    """The ``Ant`` byte of a reply for a 1-based antenna (1-8): one bit."""
    if not 1 <= antenna <= 8:
        raise ProtocolError(f"antenna {antenna} is not 1-8")
    return 1 << (antenna - 1)


@dataclass(frozen=True, slots=True)
class SimTag:
    """One tag as the reader reports it."""

    epc: bytes
    rssi: int = 0x40
    """The raw RSSI byte (UHFReader288 only)."""
    tid: bytes | None = None
    """A 12-byte TID to send after the EPC (FastID)."""

    def block(self, layout: str) -> bytes:
        """The tag's bytes in an inventory reply."""
        n = len(self.epc)
        if n < 2 or n % 2 or n > 62:
            raise ProtocolError(f"an EPC of {n} bytes is not 1-31 whole words")
        if layout == "18":
            return bytes((n,)) + self.epc
        if not 0 <= self.rssi <= 0xFF:
            raise ProtocolError(f"rssi {self.rssi} is not a byte")
        if self.tid is None:
            return bytes((n,)) + self.epc + bytes((self.rssi,))
        if len(self.tid) != TID_BYTES:
            raise ProtocolError(f"a FastID TID is {TID_BYTES} bytes, got {len(self.tid)}")
        return bytes((0x80 | (n + TID_BYTES),)) + self.epc + self.tid + bytes((self.rssi,))


def inventory_frames(
    address: int,
    tags: list[SimTag],
    *,
    layout: str = "288",
    antenna: int = 1,
    cmd: int = CMD_INVENTORY,
    final_status: int = STATUS_FINISHED,
    max_len: int = MAX_LEN,
) -> list[bytes]:
    """The whole reply to one inventory: tags packed into as few frames as fit ``max_len``."""
    if layout not in ("288", "18"):
        raise ProtocolError(f"layout must be '288' or '18', got {layout!r}")
    head = bytes((antenna_mask(antenna),)) if layout == "288" else b""
    if not tags:
        if layout == "18":
            return [encode_reply(address, cmd, STATUS_NO_TAG)]
        return [encode_reply(address, cmd, final_status, head + b"\x00")]
    room = max_len - 5 - len(head) - 1  # Len counts Adr, Cmd, Status, CRC(2), head, Num
    groups: list[list[bytes]] = [[]]
    used = 0
    for tag in tags:
        block = tag.block(layout)
        if len(block) > room:
            raise ProtocolError(f"a tag block of {len(block)} bytes does not fit a frame")
        if used + len(block) > room or len(groups[-1]) == 255:
            groups.append([])
            used = 0
        groups[-1].append(block)
        used += len(block)
    frames = []
    for k, group in enumerate(groups):
        status = final_status if k == len(groups) - 1 else STATUS_MORE_DATA
        data = head + bytes((len(group),)) + b"".join(group)
        frames.append(encode_reply(address, cmd, status, data))
    return frames


def stats_frame(
    address: int, *, antenna: int, read_rate: int, total_count: int, cmd: int = CMD_INVENTORY
) -> bytes:
    """The 0x26 statistics packet; values are clamped to their field widths."""
    rate = min(max(read_rate, 0), 0xFFFF)
    total = min(max(total_count, 0), 0xFFFFFFFF)
    data = bytes((antenna_mask(antenna),)) + rate.to_bytes(2, "big") + total.to_bytes(4, "big")
    return encode_reply(address, cmd, STATUS_STATISTICS, data)


def realtime_frame(address: int, *, antenna: int, tag: SimTag) -> bytes:
    """One tag in real-time (auto-run) mode, Cmd 0xEE."""
    data = bytes((antenna_mask(antenna),)) + tag.block("288")
    return encode_reply(address, CMD_REALTIME, STATUS_SUCCESS, data)


def heartbeat_frame(
    address: int, *, packet_no: int, total_count: int, ant_status: bytes = bytes(8)
) -> bytes:
    """Real-time mode heartbeat (status 0x28): PacketNo(4), AntStatus(8), TotalCount(4)."""
    if len(ant_status) != 8:
        raise ProtocolError("ant_status is 8 bytes")
    data = (
        (packet_no & 0xFFFFFFFF).to_bytes(4, "big")
        + ant_status
        + min(max(total_count, 0), 0xFFFFFFFF).to_bytes(4, "big")
    )
    return encode_reply(address, CMD_REALTIME, STATUS_HEARTBEAT, data)


def reader_info_frame(
    address: int,
    *,
    version: tuple[int, int],
    reader_type: int,
    protocols: int = 0x02,
    band: int,
    max_freq: int,
    min_freq: int,
    power_dbm: int,
    scan_time: int,
    extra: bytes = b"",
) -> bytes:
    """Reply to get reader information (0x21)."""
    if not 0 <= band <= 15 or not 0 <= max_freq <= 63 or not 0 <= min_freq <= 63:
        raise ProtocolError(f"band {band} (0-15) or frequencies {max_freq}/{min_freq} (0-63)")
    dmax = (band >> 2) << 6 | max_freq
    dmin = (band & 3) << 6 | min_freq
    data = bytes((version[0], version[1], reader_type, protocols, dmax, dmin, power_dbm, scan_time))
    return encode_reply(address, CMD_GET_READER_INFO, STATUS_SUCCESS, data + extra)


# --- host commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One well-formed host frame (CRC verified); meaning is the caller's business."""

    address: int
    cmd: int
    data: bytes


class CommandParser:
    """Incremental parser of the host's byte stream into :class:`Command` frames.

    A frame with ``Len`` < 4 or a wrong CRC is dropped by skipping its first byte only, so
    the parser resynchronises even inside a bad frame. Problems are counted in
    :attr:`errors` by reason (``junk_bytes``, ``bad_crc``).
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
            length = buf[0]
            if length < 4:
                self._count("junk_bytes")
                del buf[0]
                continue
            total = length + 1
            if len(buf) < total:
                break
            if crc16(buf[: total - 2]) != buf[total - 2] | buf[total - 1] << 8:
                self._count("bad_crc")
                del buf[0]
                continue
            out.append(Command(address=buf[1], cmd=buf[2], data=bytes(buf[3 : total - 2])))
            del buf[:total]
        return out


@dataclass(frozen=True, slots=True)
class InventoryRequest:
    """What an inventory command (0x01) asks for; ``None`` where the command left it out."""

    q: int | None = None
    session: int | None = None
    fast_id: bool = False
    statistics: bool = False
    mask_len_bits: int = 0
    tid: tuple[int, int] | None = None
    """(AdrTID, LenTID) for a TID inventory."""
    target: int | None = None
    antenna: int | None = None
    """1-based (the command sends 0x80 + antenna - 1)."""
    scan_time: int | None = None


def parse_inventory(data: bytes) -> InventoryRequest | None:
    """Read an inventory command's data; ``None`` if its length fits no documented form.

    UHFReader18 sends no data. UHFReader288: QValue, Session, then optionally MaskMem,
    MaskAdr(2), MaskLen, MaskData (MaskLen bits), then optionally AdrTID, LenTID, then
    optionally Target, Ant, ScanTime (all three or none).
    """
    if not data:
        return InventoryRequest()
    if len(data) < 2:
        return None
    qv, session = data[0], data[1]
    starts = []
    if len(data) >= 6 and 6 + (data[5] + 7) // 8 <= len(data):
        starts.append((6 + (data[5] + 7) // 8, data[5]))
    starts.append((2, 0))
    for start, mask_bits in starts:
        rest = data[start:]
        if len(rest) not in (0, 2, 3, 5):
            continue
        tid = (rest[0], rest[1]) if len(rest) in (2, 5) else None
        tail = rest[-3:] if len(rest) in (3, 5) else b""
        antenna = None
        if tail:
            if not 0x80 <= tail[1] <= 0x87:
                return None
            antenna = tail[1] - 0x80 + 1
        return InventoryRequest(
            q=qv & 0x1F,
            session=session,
            fast_id=bool(qv & 0x20),
            statistics=bool(qv & 0x80),
            mask_len_bits=mask_bits,
            tid=tid,
            target=tail[0] if tail else None,
            antenna=antenna,
            scan_time=tail[2] if tail else None,
        )
    return None
