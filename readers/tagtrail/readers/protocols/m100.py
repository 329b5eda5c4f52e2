"""M100 serial protocol: ``0xBB ... 0x7E`` frames of M100 / QM100 / E710-class UHF modules.

Pure decoding and encoding: no I/O, no logging. Bad input gives a typed
:class:`DecodeFailure`, never an exception.

Frame
=====
::

    +------+------+-----+-----------------+------------+-------+------+
    | Head | Type | Cmd | PL (big-endian) | Payload    | Check | End  |
    | 0xBB |  1   |  1  |        2        | PL bytes   |   1   | 0x7E |
    +------+------+-----+-----------------+------------+-------+------+

* A whole frame is ``PL + 7`` bytes.
* ``Type``: ``0x00`` command (host -> module), ``0x01`` response (module -> host, one
  per command), ``0x02`` notice (module -> host, unsolicited: one per tag read by a
  single or multiple poll).
* ``Check`` is the low byte of the sum of ``Type`` through the last payload byte,
  ``sum(frame[1:-2]) & 0xFF``. ``End`` is always ``0x7E``.
* ``0xBB`` and ``0x7E`` are not escaped: they occur freely inside payloads (EPCs,
  RSSI, checksums), so frames are delimited by ``PL`` and verified by ``End`` and
  ``Check`` together.
* Unlike the R2000 protocol, the wire carries the direction: host commands decode as
  :class:`Command` records.

Records (module -> host)
========================
* Tag notice, ``Type 0x02``, ``Cmd 0x22`` (the command code of the single poll; the
  published multiple-poll captures and libraries show the same ``Cmd 0x22`` notices for
  ``0x27``; a notice with another ``Cmd`` is kept whole as a :class:`Notice`),
  ``PL = 5 + 2 * words``::

      Payload = RSSI(1, int8 dBm) | PC(2) | EPC(2 * words) | CRC(2)

  ``words = PC >> 11`` (the Gen2 EPC length field). ``RSSI`` is a signed byte in dBm
  (``0xC9`` = -55 dBm). ``CRC`` is the tag's own CRC-16 over PC + EPC as it was
  backscattered: **CRC-16/GENIBUS** (poly 0x1021, init 0xFFFF, not reflected, xorout
  0xFFFF; the Gen2 CRC-16). Confirmed on three published notices from unrelated sources
  (below) and used by the Flipper Zero M100 application to validate single polls.
  The modules have one antenna: tags are reported on antenna 1.
  Example (the issue's checked frame)::

      BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E

  RSSI -55 dBm, PC 3400 (6 words, UMI bit set), EPC 30751FEB705C5904E3D50D70,
  CRC 3A76 = CRC-16/GENIBUS(34 00 30 75 ... 0D 70), Check EF.
* Error response, ``Type 0x01``, ``Cmd 0xFF``: ``Payload = Code(1) | Extra``; e.g. a
  single poll that found no tag ends with ``BB 01 FF 00 01 15 16 7E`` (0x15). Tag
  access errors may append the addressed tag's UL/PC/EPC; ``Extra`` is kept raw.
* Module information, ``Type 0x01``, ``Cmd 0x03``: ``Payload = Kind(1) | ASCII text``
  (kind 0 hardware, 1 software, 2 manufacturer), e.g. ``00 "M100 26dBm V1.0"``.
* Any other response (:class:`Response`) or notice (:class:`Notice`) keeps its raw
  payload. A one-byte ``00`` answers a successful setter (set region ``0x07``, set
  select ``0x0C``, stop ``0x28``, set channel ``0xAB``, set power ``0xB6``); get region
  ``0x08`` answers the region byte, get power ``0xB7`` the power in 0.01 dBm, big-endian.

Commands used here (host -> module)
===================================
==================  =====  ==============================  ==================================
name                Cmd    Payload                         example
==================  =====  ==============================  ==================================
module info         0x03   kind (0 hw, 1 sw, 2 maker)      ``BB 00 03 00 01 00 04 7E``
single poll         0x22   none                            ``BB 00 22 00 00 22 7E``
multiple poll       0x27   0x22 (reserved), count(2)       ``BB 00 27 00 03 22 27 10 83 7E``
stop multiple poll  0x28   none                            ``BB 00 28 00 00 28 7E``
set region          0x07   region                          ``BB 00 07 00 01 03 0B 7E`` (EU)
get region          0x08   none                            ``BB 00 08 00 00 08 7E``
set baud rate       0x11   baud / 100 (2)                  ``BB 00 11 00 02 04 80 97 7E``
get TX power        0xB7   none                            ``BB 00 B7 00 00 B7 7E``
set TX power        0xB6   0.01 dBm (2)                    ``BB 00 B6 00 02 07 D0 8F 7E``
==================  =====  ==============================  ==================================

Regions: 0x01 China 900 MHz, 0x04 China 800 MHz, 0x02 US, 0x03 Europe, 0x06 Korea.

Error codes
===========
====  ===========================  ====  ===============================
0x09  read_fail                    0x17  command_error
0x10  write_fail                   0x1A  nxp_change_config_fail
0x12  kill_fail                    0x1B  nxp_change_eas_fail
0x13  lock_fail                    0x1D  nxp_eas_alarm_fail
0x14  block_permalock_fail         0x20  fhss_fail
0x15  inventory_fail (no tag)      0x2A  nxp_read_protect_fail
0x16  access_fail (password)       0x2B  nxp_reset_read_protect_fail
====  ===========================  ====  ===============================

``0xA0 | e``, ``0xB0 | e``, ``0xC0 | e``, ``0xD0 | e``, ``0xE0 | e``: read, write,
lock, kill, block-permalock error where ``e`` is the Gen2 tag error code (0x0 other,
0x1 not supported, 0x2 insufficient privileges, 0x3 memory overrun, 0x4 memory locked,
0xB insufficient power, 0xF non-specific), named e.g. ``read_error:memory_overrun``.
Unknown codes are named ``0xNN``.

Failures
========
``DecodeFailure.reason`` is one of:

* ``garbage``: a run of bytes outside any frame (one failure per run; ``data`` holds at
  most the first :data:`MAX_FAILURE_DATA` bytes). A ``0xBB`` whose next four bytes are
  no header (``Type`` above 2, or ``PL`` above the decoder's ``max_payload``) is a
  garbage byte.
* ``length``: ``PL`` points at a byte that is not ``0x7E`` (PL too small, or a frame
  cut and followed by other bytes); a frame given to :func:`decode_frame` whose length
  disagrees with ``PL``; a good frame whose payload is too short for its kind (tag
  notice below 5 bytes, error or module-information response of 0 bytes).
* ``checksum``: ``End`` is ``0x7E`` but ``Check`` is wrong; or a tag notice whose
  EPC CRC-16 does not match PC + EPC (only with ``verify_crc``, the default).
* ``sanity``: checksum good but the content is impossible: a tag notice whose PC word
  count disagrees with ``PL`` or is zero; for :func:`decode_frame` only, a ``Type``
  above 2.
* ``truncated``: a frame cut short by a newer frame, or still incomplete at
  :meth:`StreamDecoder.flush`.

Resynchronisation (:class:`StreamDecoder`)
==========================================
The decoder searches for ``0xBB`` with ``bytes.find`` and needs the five header bytes
to accept it (``Type`` <= 2 and ``PL`` <= ``max_payload``, default
:data:`MAX_PAYLOAD`). Bytes skipped before an accepted header form one ``garbage``
run. It then waits for the whole ``PL + 7`` bytes; a new ``0xBB`` inside an incomplete
frame proves nothing. Once complete:

* ``End`` and ``Check`` good: the record (or a ``length``/``sanity``/``checksum``
  failure of its content) is emitted and the search goes on after the frame;
* otherwise every later ``0xBB`` inside the bad frame's span is tried as a header, in
  order. If one starts a complete frame with good ``End`` and ``Check``, the bad frame
  was ``truncated`` there and decoding resumes at that header (a frame hidden after a
  false header, or following a frame cut short, is found; so is a frame after one whose
  ``PL`` is too big). If such a candidate is still incomplete, the decision waits for
  more bytes. If none is good, the bad span is one ``length`` (``End`` not ``0x7E``) or
  ``checksum`` failure and the search resumes after it.

Decisions are taken only on complete information, so the output does not depend on how
the input is split into chunks. :meth:`StreamDecoder.flush` is the end of input: a held
incomplete frame is ``truncated`` at the first later header that starts a good frame, or
at the end; a trailing ``0xBB`` with fewer than four bytes after it is ``truncated`` if
those bytes can still begin a header, else garbage. ``max_payload`` bounds how long a
false header can hold decoding back (1031 bytes, 90 ms at 115200 baud); raise it for
long tag-memory reads.

Speed: headers are found with ``bytes.find``, frames verified with ``sum`` over a slice,
the EPC CRC computed by :func:`binascii.crc_hqx` (CRC-16/XMODEM from the C library:
GENIBUS is XMODEM with init 0xFFFF and the result inverted), tag records' slots filled
directly. The input is copied only to join a held partial frame with the next chunk.

Sources
=======
* The M100/QM100 "UHF RFID module user protocol" (Magic RF), as reproduced by module
  vendors: electron.id's "EL-UHF-RMT01 Protocol" page (frame format, frame types,
  command codes, error code 0xFF) and M5Stack's UHF RFID unit (JRD-4035) protocol and
  Arduino command table (every command frame above).
* The YPD-R200 driver header of the ``uhfman`` project, citing user protocol v2.3.3
  (error code table and masks, notice layout, region codes).
* Published frames re-checked here by arithmetic: notices with CRCs 346F (a VM5GA
  Arduino sketch) and D444 (a YRM100 driver's tests); error frames
  ``BB 01 FF 00 01 09 0A 7E`` / ``10 11`` / ``17 18`` (sbcshop's Pico UHF library);
  responses ``BB 01 28 00 01 00 2A 7E``, ``BB 01 B7 00 02 0A 28 EC 7E``,
  ``BB 01 03 00 08 02 "MagicRf" A7 7E``; baud 115200 default (M5Stack, Flipper app).
"""

from __future__ import annotations

from binascii import crc_hqx
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

HEAD = 0xBB
END = 0x7E

TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTICE = 0x02

CMD_MODULE_INFO = 0x03
CMD_SET_REGION = 0x07
CMD_GET_REGION = 0x08
CMD_SET_SELECT = 0x0C
CMD_SET_BAUD = 0x11
CMD_SINGLE_POLL = 0x22
CMD_MULTIPLE_POLL = 0x27
CMD_STOP_MULTIPLE_POLL = 0x28
CMD_SET_CHANNEL = 0xAB
CMD_SET_TX_POWER = 0xB6
CMD_GET_TX_POWER = 0xB7
CMD_ERROR = 0xFF

MULTIPLE_POLL_RESERVED = 0x22
"""The fixed first payload byte of a multiple-poll command."""

ANTENNA = 1
"""The modules have one antenna port."""

MAX_PAYLOAD = 1024
"""Default ``max_payload``: longest ``PL`` the stream decoder accepts in a header."""


INFO_KINDS: dict[int, str] = {0x00: "hardware", 0x01: "software", 0x02: "manufacturer"}

REGIONS: dict[int, str] = {
    0x01: "china_900",
    0x02: "us",
    0x03: "eu",
    0x04: "china_800",
    0x06: "korea",
}

BAUD_RATES = (9600, 19200, 38400, 57600, 115200)

ERROR_CODES: dict[int, str] = {
    0x09: "read_fail",
    0x10: "write_fail",
    0x12: "kill_fail",
    0x13: "lock_fail",
    0x14: "block_permalock_fail",
    0x15: "inventory_fail",
    0x16: "access_fail",
    0x17: "command_error",
    0x1A: "nxp_change_config_fail",
    0x1B: "nxp_change_eas_fail",
    0x1D: "nxp_eas_alarm_fail",
    0x20: "fhss_fail",
    0x2A: "nxp_read_protect_fail",
    0x2B: "nxp_reset_read_protect_fail",
}

TAG_ERROR_GROUPS: dict[int, str] = {
    0xA0: "read_error",
    0xB0: "write_error",
    0xC0: "lock_error",
    0xD0: "kill_error",
    0xE0: "block_permalock_error",
}
"""High nibble of an error code carrying the tag's own Gen2 error code in the low nibble."""

GEN2_TAG_ERRORS: dict[int, str] = {
    0x0: "other_error",
    0x1: "not_supported",
    0x2: "insufficient_privileges",
    0x3: "memory_overrun",
    0x4: "memory_locked",
    0xB: "insufficient_power",
    0xF: "non_specific_error",
}

SETTER_COMMANDS = frozenset(
    {CMD_SET_REGION, CMD_SET_SELECT, CMD_STOP_MULTIPLE_POLL, CMD_SET_CHANNEL, CMD_SET_TX_POWER}
)
"""Commands whose response is one status byte, ``0x00`` on success."""


def error_name(code: int) -> str:
    """The table name of an error code, or ``0xNN`` if unknown."""
    name = ERROR_CODES.get(code)
    if name is not None:
        return name
    group = TAG_ERROR_GROUPS.get(code & 0xF0)
    if group is not None:
        low = code & 0x0F
        return f"{group}:{GEN2_TAG_ERRORS.get(low) or f'0x{low:X}'}"
    return f"0x{code:02X}"


def crc16_genibus(data: bytes) -> int:
    """CRC-16/GENIBUS (the Gen2 CRC-16) of ``data``, as a tag computes it over PC + EPC."""
    return crc_hqx(data, 0xFFFF) ^ 0xFFFF


@dataclass(frozen=True, slots=True)
class TagNotice:
    """One tag read by a single or multiple poll."""

    rssi_raw: int
    """The RSSI byte as sent (0-255)."""
    rssi_dbm: int
    """The RSSI byte read as a signed int8, in dBm."""
    pc: int
    epc: str
    """Upper-case hex."""
    crc: int
    """The tag's CRC-16 over PC + EPC, as received."""
    crc_ok: bool
    """Whether ``crc`` is CRC-16/GENIBUS of PC + EPC (always true when verified)."""

    @property
    def antenna(self) -> int:
        return ANTENNA


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error response (``Cmd 0xFF``)."""

    code: int
    name: str
    data: bytes
    """Payload after the code (e.g. the addressed tag for tag access errors)."""


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """The answer to get module information (``0x03``)."""

    kind: int
    """0 hardware version, 1 software version, 2 manufacturer."""
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("ascii", "replace")

    @property
    def kind_name(self) -> str:
        return INFO_KINDS.get(self.kind) or f"0x{self.kind:02X}"


@dataclass(frozen=True, slots=True)
class Response:
    """Any other response, with its raw payload."""

    command: int
    data: bytes

    def ok(self) -> bool | None:
        """Success of a setter (one status byte, 0 = success); ``None`` for other commands."""
        if self.command in SETTER_COMMANDS and len(self.data) == 1:
            return self.data[0] == 0
        return None

    def region(self) -> int | None:
        """The region byte of a get-region answer."""
        if self.command == CMD_GET_REGION and len(self.data) == 1:
            return self.data[0]
        return None

    def tx_power_dbm(self) -> float | None:
        """The power of a get-TX-power answer, in dBm."""
        if self.command == CMD_GET_TX_POWER and len(self.data) == 2:
            return int.from_bytes(self.data, "big") / 100
        return None


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice other than a tag read, with its raw payload."""

    command: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Command:
    """A host command (``Type 0x00``), seen on the wire."""

    command: int
    data: bytes


Record = TagNotice | ErrorReply | ModuleInfo | Response | Notice | Command
Decoded = Record | DecodeFailure


_new = object.__new__
_TAG_SLOT_SETTERS = {name: getattr(TagNotice, name).__set__ for name in TagNotice.__slots__}
_set_rssi_raw = _TAG_SLOT_SETTERS["rssi_raw"]
_set_rssi_dbm = _TAG_SLOT_SETTERS["rssi_dbm"]
_set_pc = _TAG_SLOT_SETTERS["pc"]
_set_epc = _TAG_SLOT_SETTERS["epc"]
_set_crc = _TAG_SLOT_SETTERS["crc"]
_set_crc_ok = _TAG_SLOT_SETTERS["crc_ok"]
_INT8 = tuple(range(128)) + tuple(range(-128, 0))


# --- encoding ----------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """Low byte of the sum of ``data`` (Type through Payload)."""
    return sum(data) & 0xFF


def _int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer {low}-{high}, got {value!r}")
    return value


def encode_frame(frame_type: int, cmd: int, payload: bytes = b"") -> bytes:
    """A whole frame: header, type, command, length, payload, checksum and end."""
    _int("frame_type", frame_type, 0, 2)
    _int("cmd", cmd, 0, 255)
    if not isinstance(payload, bytes | bytearray):
        raise ProtocolError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"payload is {len(payload)} bytes; a frame carries at most 65535")
    body = bytes((frame_type, cmd, len(payload) >> 8, len(payload) & 0xFF)) + bytes(payload)
    return bytes((HEAD,)) + body + bytes((checksum(body), END))


def encode_command(cmd: int, payload: bytes = b"") -> bytes:
    """A host command frame (``Type 0x00``)."""
    return encode_frame(TYPE_COMMAND, cmd, payload)


def cmd_module_info(kind: int) -> bytes:
    """Get module information: 0 hardware version, 1 software version, 2 manufacturer."""
    return encode_command(CMD_MODULE_INFO, bytes((_int("kind", kind, 0, 2),)))


def cmd_single_poll() -> bytes:
    return encode_command(CMD_SINGLE_POLL)


def cmd_multiple_poll(count: int) -> bytes:
    """Poll ``count`` times (1-65535); tags arrive as notices until done or stopped."""
    _int("count", count, 1, 0xFFFF)
    return encode_command(
        CMD_MULTIPLE_POLL, bytes((MULTIPLE_POLL_RESERVED, count >> 8, count & 0xFF))
    )


def cmd_stop_multiple_poll() -> bytes:
    return encode_command(CMD_STOP_MULTIPLE_POLL)


def cmd_set_region(region: int) -> bytes:
    if isinstance(region, bool) or not isinstance(region, int) or region not in REGIONS:
        known = ", ".join(f"0x{r:02X} {n}" for r, n in REGIONS.items())
        raise ProtocolError(f"region must be one of {known}; got {region!r}")
    return encode_command(CMD_SET_REGION, bytes((region,)))


def cmd_get_region() -> bytes:
    return encode_command(CMD_GET_REGION)


def cmd_set_baud(baud: int) -> bytes:
    """Set the serial speed (sent as baud / 100); the module answers at the old speed."""
    if isinstance(baud, bool) or not isinstance(baud, int) or baud not in BAUD_RATES:
        raise ProtocolError(f"baud must be one of {BAUD_RATES}, got {baud!r}")
    return encode_command(CMD_SET_BAUD, (baud // 100).to_bytes(2, "big"))


def cmd_get_tx_power() -> bytes:
    return encode_command(CMD_GET_TX_POWER)


def cmd_set_tx_power(centi_dbm: int) -> bytes:
    """Set the transmit power in 0.01 dBm (e.g. 2000 = 20 dBm), 0-3300."""
    _int("centi_dbm", centi_dbm, 0, 3300)
    return encode_command(CMD_SET_TX_POWER, centi_dbm.to_bytes(2, "big"))


# --- decoding ----------------------------------------------------------------------------


def _body(b: bytes, p: int, end: int, verify_crc: bool) -> Decoded:
    """Interpret the verified frame ``b[p:end]`` (``End`` and ``Check`` good)."""
    ftype = b[p + 1]
    cmd = b[p + 2]
    if ftype == TYPE_NOTICE and cmd == CMD_SINGLE_POLL:
        pl = end - p - 7
        if pl < 5:
            return DecodeFailure("length", b[p:end])
        pc = b[p + 6] << 8 | b[p + 7]
        words = pc >> 11
        if not words or pl != 5 + 2 * words:
            return DecodeFailure("sanity", b[p:end])
        crc = b[end - 4] << 8 | b[end - 3]
        crc_ok = crc_hqx(b[p + 6 : end - 4], 0xFFFF) ^ 0xFFFF == crc
        if verify_crc and not crc_ok:
            return DecodeFailure("checksum", b[p:end])
        rssi = b[p + 5]
        # Hot path: a frozen dataclass's __init__ costs a generic object.__setattr__
        # per field; filling the slots directly is much cheaper, same object.
        rec = _new(TagNotice)
        _set_rssi_raw(rec, rssi)
        _set_rssi_dbm(rec, _INT8[rssi])
        _set_pc(rec, pc)
        _set_epc(rec, b[p + 8 : end - 4].hex().upper())
        _set_crc(rec, crc)
        _set_crc_ok(rec, crc_ok)
        return rec
    data = bytes(b[p + 5 : end - 2])
    if ftype == TYPE_RESPONSE:
        if cmd == CMD_ERROR:
            if not data:
                return DecodeFailure("length", b[p:end])
            return ErrorReply(data[0], error_name(data[0]), data[1:])
        if cmd == CMD_MODULE_INFO:
            if not data:
                return DecodeFailure("length", b[p:end])
            return ModuleInfo(data[0], data[1:])
        return Response(cmd, data)
    if ftype == TYPE_NOTICE:
        return Notice(cmd, data)
    return Command(cmd, data)


def decode_frame(frame: bytes, *, verify_crc: bool = True) -> Decoded:
    """Decode exactly one frame. Never raises for any ``bytes`` input."""
    frame = bytes(frame)
    n = len(frame)
    if n == 0 or frame[0] != HEAD:
        return DecodeFailure("garbage", frame[:MAX_FAILURE_DATA])
    if n < 7:
        return DecodeFailure("length", frame)
    if frame[1] > TYPE_NOTICE:
        return DecodeFailure("sanity", frame)
    if n != (frame[3] << 8 | frame[4]) + 7 or frame[-1] != END:
        return DecodeFailure("length", frame)
    if sum(frame[1:-2]) & 0xFF != frame[-2]:
        return DecodeFailure("checksum", frame)
    return _body(frame, 0, n, verify_crc)


class StreamDecoder(StreamDecoderBase[Record]):
    """Decode a byte stream chunk by chunk, resynchronising after bad bytes.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input
    (reports a held partial frame as ``truncated`` and a pending garbage run) and
    leaves the decoder empty for further use. ``counters`` counts good frames (``ok``)
    and failures by reason. Never raises.

    ``verify_crc=False`` reports tag notices whose EPC CRC does not match (``crc_ok``
    false) instead of failing them; ``max_payload`` is the longest ``PL`` a header
    may claim.
    """

    __slots__ = ("_max_payload", "_verify_crc")

    def __init__(self, *, verify_crc: bool = True, max_payload: int = MAX_PAYLOAD) -> None:
        super().__init__()
        self._verify_crc = verify_crc
        self._max_payload = min(max(int(max_payload), 0), 0xFFFF)

    def _partial_header_ok(self, buf: bytes, p: int) -> bool:
        """Whether the fewer than five bytes at ``p`` can still begin a header."""
        n = len(buf)
        if p + 1 < n and buf[p + 1] > TYPE_NOTICE:
            return False
        return not (p + 3 < n and buf[p + 3] << 8 > self._max_payload)

    def _hidden(self, buf: bytes, start: int, stop: int, final: bool) -> int | None:
        """First header in ``buf[start:stop]`` that starts a complete good frame.

        Returns its position, ``-1`` if the answer needs more bytes, ``None`` if none.
        """
        n = len(buf)
        maxpl = self._max_payload
        q = buf.find(HEAD, start, stop)
        while q >= 0:
            if q + 5 > n:
                if not final and self._partial_header_ok(buf, q):
                    return -1
            elif buf[q + 1] <= TYPE_NOTICE:
                pl = buf[q + 3] << 8 | buf[q + 4]
                if pl <= maxpl:
                    eq = q + pl + 7
                    if eq > n:
                        if not final:
                            return -1
                    elif buf[eq - 1] == END and sum(buf[q + 1 : eq - 2]) & 0xFF == buf[eq - 2]:
                        return q
            q = buf.find(HEAD, q + 1, stop)
        return None

    def _run(self, buf: bytes, out: list[Decoded], final: bool) -> int:
        """Decode ``buf`` from 0; return how far it was consumed."""
        n = len(buf)
        pos = 0  # first byte not yet consumed (start of a garbage run, if any)
        q = 0  # where the header search resumes
        ok = 0
        find = buf.find
        body = _body
        append = out.append
        maxpl = self._max_payload
        verify = self._verify_crc
        try:
            while True:
                p = find(HEAD, q)
                if p < 0:
                    if pos < n:
                        self._skip(buf[pos:])
                    return n
                if p + 5 > n:
                    if self._partial_header_ok(buf, p):
                        if p > pos:
                            self._skip(buf[pos:p])
                        if not final:
                            return p
                        self._emit_garbage(out)
                        self._fail(out, "truncated", buf[p:])
                        return n
                    q = p + 1
                    continue
                pl = buf[p + 3] << 8 | buf[p + 4]
                if buf[p + 1] > TYPE_NOTICE or pl > maxpl:
                    q = p + 1  # not a header: the 0xBB stays in the garbage run
                    continue
                if p > pos:
                    self._skip(buf[pos:p])
                if self._garbage_len:
                    self._emit_garbage(out)
                end = p + pl + 7
                if end <= n:
                    if buf[end - 1] == END and sum(buf[p + 1 : end - 2]) & 0xFF == buf[end - 2]:
                        rec = body(buf, p, end, verify)
                        if type(rec) is DecodeFailure:
                            self.counters[rec.reason] += 1
                        else:
                            ok += 1
                        append(rec)
                        pos = q = end
                        continue
                    h = self._hidden(buf, p + 1, end, final)
                    if h == -1:
                        return p
                    if h is None:
                        reason: FailureReason = "length" if buf[end - 1] != END else "checksum"
                        self._fail(out, reason, buf[p:end])
                        pos = q = end
                    else:
                        self._fail(out, "truncated", buf[p:h])
                        pos = q = h
                    continue
                # incomplete frame
                if not final:
                    return p
                h = self._hidden(buf, p + 1, n, final)
                if h is None:
                    self._fail(out, "truncated", buf[p:])
                    return n
                self._fail(out, "truncated", buf[p:h])
                pos = q = h
        finally:
            self.counters["ok"] += ok


def decode_stream(data: bytes) -> list[Decoded]:
    """Decode a complete byte string (feed plus flush)."""
    dec = StreamDecoder()
    return dec.feed(data) + dec.flush()


# --- JSON form ---------------------------------------------------------------------------


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors."""
    if isinstance(rec, TagNotice):
        return {
            "type": "tag",
            "antenna": ANTENNA,
            "rssi_raw": rec.rssi_raw,
            "rssi_dbm": rec.rssi_dbm,
            "pc": f"{rec.pc:04X}",
            "epc": rec.epc,
            "crc": f"{rec.crc:04X}",
            "crc_ok": rec.crc_ok,
        }
    if isinstance(rec, ErrorReply):
        return {
            "type": "error",
            "code": f"0x{rec.code:02X}",
            "name": rec.name,
            "data": rec.data.hex().upper(),
        }
    if isinstance(rec, ModuleInfo):
        return {
            "type": "module_info",
            "kind": rec.kind_name,
            "text": rec.text,
            "data": rec.data.hex().upper(),
        }
    if isinstance(rec, Response):
        d: dict[str, Any] = {
            "type": "response",
            "command": f"0x{rec.command:02X}",
            "data": rec.data.hex().upper(),
        }
        ok = rec.ok()
        if ok is not None:
            d["ok"] = ok
        region = rec.region()
        if region is not None:
            d["region"] = REGIONS.get(region) or f"0x{region:02X}"
        power = rec.tx_power_dbm()
        if power is not None:
            d["tx_power_dbm"] = power
        return d
    if isinstance(rec, Notice):
        return {"type": "notice", "command": f"0x{rec.command:02X}", "data": rec.data.hex().upper()}
    if isinstance(rec, Command):
        return {
            "type": "command",
            "command": f"0x{rec.command:02X}",
            "data": rec.data.hex().upper(),
        }
    return failure_to_dict(rec)


def tag_of(rec: Decoded) -> TagView | None:
    """The tag a record holds (tag notices only), on the module's single antenna."""
    if isinstance(rec, TagNotice):
        return TagView(rec.epc, ANTENNA, float(rec.rssi_dbm))
    return None


PROTOCOL = ProtocolInfo(
    name="m100",
    title="M100/QM100/E710 module protocol (0xBB ... 0x7E frames)",
    spec="Magic RF M100/QM100 UHF RFID module user protocol as spoken by M100-, QM100- and "
    "E710-class modules; see this module's docstring",
    models=(
        "Magic RF M100 / QM100 modules and E710-class clones",
        "JRD-4035 (M5Stack UHF RFID unit U107)",
        "YPD-R200, EL-UHF-RMT01 and other single-antenna M100-based boards",
    ),
    default_baud=115200,
    typical_frame_bytes=24,
    reports=("epc", "pc", "rssi", "epc crc"),
    new_decoder=StreamDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
