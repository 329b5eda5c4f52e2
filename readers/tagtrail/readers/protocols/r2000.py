"""R2000 serial protocol: ``0xA0`` frames of Impinj R2000 based UHF reader modules.

Pure decoding and encoding: no I/O, no logging. Bad input gives a typed
:class:`DecodeFailure`, never an exception.

Frame
=====
::

    +------+-----+------+-----+-----------+-------+
    | Head | Len | Addr | Cmd | Data ...  | Check |
    | 0xA0 |  1  |  1   |  1  | Len-3     |   1   |
    +------+-----+------+-----+-----------+-------+

* ``Len`` counts the bytes from ``Addr`` through ``Check``, so a whole frame is
  ``Len + 2`` bytes and ``Len`` must be at least 3 (Addr, Cmd, Check).
* ``Check`` is the two's complement of the byte sum of Head..Data,
  ``(~sum(frame[:-1]) + 1) & 0xFF``; hence the byte sum of a whole good frame is
  0 mod 256, which is how frames are verified here.
* The same frame shape is used host -> reader (commands) and reader -> host (replies).
  ``Addr`` is the reader address (0xFF broadcasts).

Records (reader -> host)
========================
Real-time inventory ``0x89`` and session inventory ``0x8B`` reply with one frame per
tag read, then one end-of-round frame (or a single error frame):

* Tag read, ``Len`` odd, ``Len = 7 + 2 * words``::

      Data = FreqAnt(1) | PC(2, big-endian) | EPC(2 * words) | RSSI(1)

  ``FreqAnt`` bits 1..0 are the antenna (0-based on the wire, reported 1-based),
  bits 7..2 the frequency-point index. ``words = PC >> 11`` (the EPC length field of
  the Gen2 protocol-control word). ``rssi_dbm = RSSI - 129``.
  Example ``A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF``:
  antenna 1, frequency index 1, PC 3000 (6 words), EPC E200301666130121155074EF,
  RSSI 0x45 = 69 -> -60 dBm.
* End of round, ``Len = 0x0A``::

      Data = Antenna(1, 0-based) | ReadRate(2, big-endian) | TotalReads(4, big-endian)

* Error / result, ``Len = 0x04``: ``Data = Code(1)``, see the table below.

Any other command: ``Len = 0x04`` is a result code (except the one-byte value getters
``0x75`` get work antenna and ``0x77`` get output power), anything else a
:class:`Reply` carrying the raw data, e.g. get firmware ``0x72``:
``A0 05 01 72 01 09 DE`` = firmware 1.9.

The wire carries no direction: fed a host command, the decoder reports it as the
reply of that shape (``A0 04 01 89 01 D1`` reads as result code 0x01 of 0x89).

Commands used here (host -> reader)
===================================
============  =====  ========================================  ==========================
name          Cmd    Data                                      example
============  =====  ========================================  ==========================
reset         0x70   none                                      ``A0 03 01 70 EC``
get firmware  0x72   none                                      ``A0 03 01 72 EA``
set antenna   0x74   antenna id, 0-based                       ``A0 04 01 74 00 E7``
real-time     0x89   repeat                                    ``A0 04 01 89 01 D1``
session       0x8B   session (0-3), target (0=A, 1=B), repeat  ``A0 06 01 8B 01 00 01 CC``
============  =====  ========================================  ==========================

Result codes
============
====  =============================================
0x10  command_success
0x11  command_fail
0x20  mcu_reset_error
0x21  cw_on_error
0x22  antenna_missing_error
0x23  write_flash_error
0x24  read_flash_error
0x25  set_output_power_error
0x31  tag_inventory_error
0x32  tag_read_error
0x33  tag_write_error
0x34  tag_lock_error
0x35  tag_kill_error
0x36  no_tag_error
0x37  inventory_ok_but_access_fail
0x38  buffer_is_empty_error
0x40  access_or_password_error
0x41  parameter_invalid
0x42  parameter_invalid_wordcnt_too_long
0x43  parameter_invalid_membank_out_of_range
0x44  parameter_invalid_lock_region_out_of_range
0x45  parameter_invalid_lock_action_out_of_range
0x46  parameter_reader_address_invalid
0x47  parameter_invalid_antenna_id_out_of_range
0x48  parameter_invalid_output_power_out_of_range
0x49  parameter_invalid_frequency_region_out_of_range
0x4A  parameter_invalid_baudrate_out_of_range
0x4B  parameter_beeper_mode_out_of_range
0x4C  parameter_epc_match_len_too_long
0x4D  parameter_epc_match_len_error
0x4E  parameter_invalid_epc_match_mode
0x4F  parameter_invalid_frequency_range
0x50  fail_to_get_rn16_from_tag
0x51  parameter_invalid_drm_mode
0x52  pll_lock_fail
0x53  rf_chip_fail_to_response
0x54  fail_to_achieve_desired_output_power
0x55  copyright_authentication_fail
0x56  spectrum_regulation_error
0x57  output_power_too_low
0xEE  fail_to_get_rf_port_return_loss
====  =============================================

Unknown codes are named ``0xNN``. Only ``0x10`` is ``ok``.

Failures
========
``DecodeFailure.reason`` is one of:

* ``checksum``: the frame's bytes do not sum to 0 mod 256.
* ``length``: ``Len`` disagrees with the bytes given to :func:`decode_frame`, or is not
  a length the command's replies can have (e.g. an ``0x89`` frame with ``Len`` 6).
* ``sanity``: checksum good but the content is impossible: ``Len < 3``, a tag record
  whose PC word count does not match ``Len``, a zero-word EPC, a round-end antenna
  above 3.
* ``garbage``: a run of bytes outside any frame (one failure per run; ``data`` holds
  at most the first :data:`MAX_FAILURE_DATA` bytes).
* ``truncated``: a frame cut short by a newer frame, or still incomplete at
  :meth:`StreamDecoder.flush`.

Resynchronisation (:class:`StreamDecoder`)
==========================================
The decoder searches for ``0xA0`` with ``bytes.find``. Bytes skipped before a header
form one ``garbage`` run. ``0xA0 Len`` with ``Len < 3`` is a ``sanity`` failure of two
bytes. Otherwise it waits until the whole ``Len + 2`` bytes are there; a new ``0xA0``
inside an incomplete frame proves nothing (0xA0 is a common data byte). Once complete:

* good checksum: the record (or a ``length``/``sanity`` failure) is emitted and the
  search goes on after the frame;
* bad checksum: every later ``0xA0`` inside the bad frame's span is tried as a header,
  in order. If one starts a complete frame with a good checksum, the bad frame was
  ``truncated`` there and decoding resumes at that header (so a frame hidden after a
  false header, or following a frame cut short, is found). If such a candidate is still
  incomplete, the decision waits for more bytes. If none is good, the bad span is one
  ``checksum`` failure and the search resumes after it.

Decisions are taken only on complete information, so the output does not depend on how
the input is split into chunks. :meth:`StreamDecoder.flush` is the end of input (for a
serial line: it went idle or was lost): a held incomplete frame is ``truncated`` at the
first later header that starts a good frame, or at the end.

Speed: the hot path finds headers with ``bytes.find``, verifies with ``sum`` over a
slice, fills tag records' slots directly and copies the input only to join a held
partial frame with the next chunk (a few hundred bytes at most).
``bench/bench_r2000_decode.py`` measures it.

Source: "UHF RFID Reader Serial Interface Protocol" (Serial_Protocol_User's_Guide
V2.38) for Impinj R2000 reader modules, as mirrored by many public reader SDKs, whose
result-code tables agree on the codes above. Worked examples were re-checked by
arithmetic (several published examples carry wrong checksums).
"""

from __future__ import annotations

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

HEAD = 0xA0
CMD_RESET = 0x70
CMD_GET_FIRMWARE = 0x72
CMD_SET_WORK_ANTENNA = 0x74
CMD_GET_WORK_ANTENNA = 0x75
CMD_GET_OUTPUT_POWER = 0x77
CMD_REALTIME_INVENTORY = 0x89
CMD_SESSION_INVENTORY = 0x8B

SUCCESS = 0x10
ANTENNA_MISSING = 0x22
RSSI_OFFSET = 129

RESULT_CODES: dict[int, str] = {
    0x10: "command_success",
    0x11: "command_fail",
    0x20: "mcu_reset_error",
    0x21: "cw_on_error",
    0x22: "antenna_missing_error",
    0x23: "write_flash_error",
    0x24: "read_flash_error",
    0x25: "set_output_power_error",
    0x31: "tag_inventory_error",
    0x32: "tag_read_error",
    0x33: "tag_write_error",
    0x34: "tag_lock_error",
    0x35: "tag_kill_error",
    0x36: "no_tag_error",
    0x37: "inventory_ok_but_access_fail",
    0x38: "buffer_is_empty_error",
    0x40: "access_or_password_error",
    0x41: "parameter_invalid",
    0x42: "parameter_invalid_wordcnt_too_long",
    0x43: "parameter_invalid_membank_out_of_range",
    0x44: "parameter_invalid_lock_region_out_of_range",
    0x45: "parameter_invalid_lock_action_out_of_range",
    0x46: "parameter_reader_address_invalid",
    0x47: "parameter_invalid_antenna_id_out_of_range",
    0x48: "parameter_invalid_output_power_out_of_range",
    0x49: "parameter_invalid_frequency_region_out_of_range",
    0x4A: "parameter_invalid_baudrate_out_of_range",
    0x4B: "parameter_beeper_mode_out_of_range",
    0x4C: "parameter_epc_match_len_too_long",
    0x4D: "parameter_epc_match_len_error",
    0x4E: "parameter_invalid_epc_match_mode",
    0x4F: "parameter_invalid_frequency_range",
    0x50: "fail_to_get_rn16_from_tag",
    0x51: "parameter_invalid_drm_mode",
    0x52: "pll_lock_fail",
    0x53: "rf_chip_fail_to_response",
    0x54: "fail_to_achieve_desired_output_power",
    0x55: "copyright_authentication_fail",
    0x56: "spectrum_regulation_error",
    0x57: "output_power_too_low",
    0xEE: "fail_to_get_rf_port_return_loss",
}

_VALUE_GETTERS = frozenset({CMD_GET_WORK_ANTENNA, CMD_GET_OUTPUT_POWER})
_INVENTORY = frozenset({CMD_REALTIME_INVENTORY, CMD_SESSION_INVENTORY})


def result_name(code: int) -> str:
    """The table name of a result code, or ``0xNN`` if unknown."""
    return RESULT_CODES.get(code) or f"0x{code:02X}"


@dataclass(frozen=True, slots=True)
class TagRecord:
    """One tag read from an inventory command."""

    address: int
    command: int
    antenna: int
    """1-based antenna (wire bits 1..0 plus one)."""
    freq_index: int
    pc: int
    epc: str
    """Upper-case hex."""
    rssi_raw: int
    rssi_dbm: int


@dataclass(frozen=True, slots=True)
class RoundEnd:
    """End of an inventory round with the reader's own statistics."""

    address: int
    command: int
    antenna: int
    """1-based antenna."""
    read_rate: int
    total_reads: int


@dataclass(frozen=True, slots=True)
class ResultCode:
    """A one-byte result of a command: success or an error code."""

    address: int
    command: int
    code: int
    name: str
    ok: bool


@dataclass(frozen=True, slots=True)
class Reply:
    """Any other command reply, with its raw data."""

    address: int
    command: int
    data: bytes

    def firmware(self) -> str | None:
        """``"major.minor"`` for a get-firmware reply, else ``None``."""
        if self.command == CMD_GET_FIRMWARE and len(self.data) == 2:
            return f"{self.data[0]}.{self.data[1]}"
        return None


Record = TagRecord | RoundEnd | ResultCode | Reply
Decoded = Record | DecodeFailure


_new = object.__new__
_TAG_SLOT_SETTERS = {name: getattr(TagRecord, name).__set__ for name in TagRecord.__slots__}
_set_address = _TAG_SLOT_SETTERS["address"]
_set_command = _TAG_SLOT_SETTERS["command"]
_set_antenna = _TAG_SLOT_SETTERS["antenna"]
_set_freq_index = _TAG_SLOT_SETTERS["freq_index"]
_set_pc = _TAG_SLOT_SETTERS["pc"]
_set_epc = _TAG_SLOT_SETTERS["epc"]
_set_rssi_raw = _TAG_SLOT_SETTERS["rssi_raw"]
_set_rssi_dbm = _TAG_SLOT_SETTERS["rssi_dbm"]


# --- encoding ----------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """Two's complement of the byte sum of ``data`` (Head through Data)."""
    return (~sum(data) + 1) & 0xFF


def _byte(name: str, value: int, low: int = 0, high: int = 255) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer {low}-{high}, got {value!r}")
    return value


def encode_command(address: int, cmd: int, data: bytes = b"") -> bytes:
    """A whole frame: header, length, address, command, data and checksum."""
    _byte("address", address)
    _byte("cmd", cmd)
    if not isinstance(data, bytes | bytearray):
        raise ProtocolError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > 252:
        raise ProtocolError(f"data is {len(data)} bytes; a frame carries at most 252")
    body = bytes((HEAD, len(data) + 3, address, cmd)) + bytes(data)
    return body + bytes((checksum(body),))


def cmd_reset(address: int) -> bytes:
    return encode_command(address, CMD_RESET)


def cmd_get_firmware(address: int) -> bytes:
    return encode_command(address, CMD_GET_FIRMWARE)


def cmd_set_work_antenna(address: int, antenna_1_based: int) -> bytes:
    """Select the antenna for the next inventory (sent 0-based)."""
    antenna = _byte("antenna", antenna_1_based, 1, 4)
    return encode_command(address, CMD_SET_WORK_ANTENNA, bytes((antenna - 1,)))


def cmd_realtime_inventory(address: int, repeat: int) -> bytes:
    return encode_command(address, CMD_REALTIME_INVENTORY, bytes((_byte("repeat", repeat, 1),)))


def cmd_session_inventory(address: int, session: int, target: str, repeat: int) -> bytes:
    """Session inventory: ``session`` 0-3 (S0-S3), ``target`` "A" or "B"."""
    _byte("session", session, 0, 3)
    if target not in ("A", "B"):
        raise ProtocolError(f"target must be 'A' or 'B', got {target!r}")
    _byte("repeat", repeat, 1)
    data = bytes((session, 0 if target == "A" else 1, repeat))
    return encode_command(address, CMD_SESSION_INVENTORY, data)


# --- decoding ----------------------------------------------------------------------------


def _body(frame: bytes, p: int, end: int) -> Decoded:
    """Interpret the checksum-verified frame ``frame[p:end]``."""
    ln = end - p - 2
    cmd = frame[p + 3]
    if cmd in _INVENTORY:
        if ln & 1:
            if ln < 7:
                return DecodeFailure("length", frame[p:end])
            pc = frame[p + 5] << 8 | frame[p + 6]
            words = pc >> 11
            if words == 0 or ln != 7 + 2 * words:
                return DecodeFailure("sanity", frame[p:end])
            fa = frame[p + 4]
            rssi = frame[end - 2]
            # Hot path: a frozen dataclass's __init__ costs a generic object.__setattr__
            # per field; filling the slots directly is half the time, same object.
            rec = _new(TagRecord)
            _set_address(rec, frame[p + 2])
            _set_command(rec, cmd)
            _set_antenna(rec, (fa & 3) + 1)
            _set_freq_index(rec, fa >> 2)
            _set_pc(rec, pc)
            _set_epc(rec, frame[p + 7 : end - 2].hex().upper())
            _set_rssi_raw(rec, rssi)
            _set_rssi_dbm(rec, rssi - RSSI_OFFSET)
            return rec
        if ln == 10:
            ant = frame[p + 4]
            if ant > 3:
                return DecodeFailure("sanity", frame[p:end])
            return RoundEnd(
                frame[p + 2],
                cmd,
                ant + 1,
                frame[p + 5] << 8 | frame[p + 6],
                int.from_bytes(frame[p + 7 : p + 11], "big"),
            )
        if ln != 4:
            return DecodeFailure("length", frame[p:end])
    if ln == 4 and cmd not in _VALUE_GETTERS:
        code = frame[p + 4]
        return ResultCode(frame[p + 2], cmd, code, result_name(code), code == SUCCESS)
    return Reply(frame[p + 2], cmd, bytes(frame[p + 4 : end - 1]))


def decode_frame(frame: bytes) -> Decoded:
    """Decode exactly one frame. Never raises for any ``bytes`` input."""
    frame = bytes(frame)
    n = len(frame)
    if n == 0 or frame[0] != HEAD:
        return DecodeFailure("garbage", frame[:MAX_FAILURE_DATA])
    if n < 2:
        return DecodeFailure("length", frame)
    if frame[1] < 3:
        return DecodeFailure("sanity", frame)
    if n != frame[1] + 2:
        return DecodeFailure("length", frame)
    if sum(frame) & 0xFF:
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

    def _hidden(self, buf: bytes, start: int, stop: int, final: bool) -> int | None:
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
                lq = buf[q + 1]
                if lq >= 3:
                    eq = q + lq + 2
                    if eq > n:
                        if not final:
                            return -1
                    elif not sum(buf[q:eq]) & 0xFF:
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
                ln = buf[p + 1]
                if ln < 3:
                    self._fail(out, "sanity", buf[p : p + 2])
                    pos = p + 2
                    continue
                end = p + ln + 2
                if end <= n:
                    if not sum(buf[p:end]) & 0xFF:
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


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors."""
    if isinstance(rec, TagRecord):
        return {
            "type": "tag",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "antenna": rec.antenna,
            "freq_index": rec.freq_index,
            "pc": f"{rec.pc:04X}",
            "epc": rec.epc,
            "rssi_raw": rec.rssi_raw,
            "rssi_dbm": rec.rssi_dbm,
        }
    if isinstance(rec, RoundEnd):
        return {
            "type": "round_end",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "antenna": rec.antenna,
            "read_rate": rec.read_rate,
            "total_reads": rec.total_reads,
        }
    if isinstance(rec, ResultCode):
        return {
            "type": "result",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "code": f"0x{rec.code:02X}",
            "name": rec.name,
            "ok": rec.ok,
        }
    if isinstance(rec, Reply):
        d: dict[str, Any] = {
            "type": "reply",
            "address": rec.address,
            "command": f"0x{rec.command:02X}",
            "data": rec.data.hex().upper(),
        }
        fw = rec.firmware()
        if fw is not None:
            d["firmware"] = fw
        return d
    return failure_to_dict(rec)


def tag_of(rec: Decoded) -> TagView | None:
    """The tag a record holds (tag records only)."""
    if isinstance(rec, TagRecord):
        return TagView(rec.epc, rec.antenna, float(rec.rssi_dbm))
    return None


PROTOCOL = ProtocolInfo(
    name="r2000",
    title="R2000 serial protocol (0xA0 frames)",
    spec="Impinj R2000 module serial protocol as spoken by most R2000-based UHF readers; see "
    "this module's docstring",
    models=("Impinj R2000-based modules and desktop/fixed readers (many OEMs)",),
    default_baud=115200,
    typical_frame_bytes=21,
    reports=("epc", "pc", "antenna", "rssi", "frequency index"),
    new_decoder=StreamDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
