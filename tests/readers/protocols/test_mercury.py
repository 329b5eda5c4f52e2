"""Mercury protocol: encoders, decoder failures and property tests.

Frames for the tests are built here from field values with this file's own bit-serial
CRC, independently of the module under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import base, mercury, r2000
from tagtrail.readers.protocols.base import ProtocolInfo, TagView
from tagtrail.readers.protocols.mercury import (
    Decoded,
    DecodeFailure,
    KeepAlive,
    Reply,
    StatusError,
    StreamDecoder,
    TagRead,
    TemperatureThrottle,
    decode_frame,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


# --- this file's own frame builder -------------------------------------------------------


def ref_crc(msg: bytes) -> int:
    """ThingMagic's CRC, bit-serial: shift message bits into 0xFFFF, XOR 0x1021 on carry."""
    r = 0xFFFF
    for byte in msg:
        for i in range(7, -1, -1):
            top = r >> 15
            r = ((r << 1) | ((byte >> i) & 1)) & 0xFFFF
            if top:
                r ^= 0x1021
    return r


def ref_gen2_crc(msg: bytes) -> int:
    """CRC-16/GENIBUS, bit-serial."""
    r = 0xFFFF
    for byte in msg:
        for i in range(7, -1, -1):
            flip = (r >> 15) ^ ((byte >> i) & 1)
            r = (r << 1) & 0xFFFF
            if flip:
                r ^= 0x1021
    return r ^ 0xFFFF


def build(op: int, status: int, data: bytes) -> bytes:
    """A module response frame."""
    body = bytes([len(data), op, status >> 8, status & 0xFF]) + data
    return b"\xff" + body + ref_crc(body).to_bytes(2, "big")


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


def tag_payload(rec: TagRead) -> bytes:
    """The 0x22 data a tag record was sent as, rebuilt from its fields."""
    f = rec.metadata_flags
    m = b""
    if f & 0x0001:
        assert rec.read_count is not None
        m += bytes([rec.read_count])
    if f & 0x0002:
        assert rec.rssi_dbm is not None
        m += bytes([rec.rssi_dbm & 0xFF])
    if f & 0x0004:
        assert rec.antenna is not None
        assert rec.rx_antenna is not None
        m += bytes([(rec.antenna & 0x0F) << 4 | (rec.rx_antenna & 0x0F)])
    if f & 0x0008:
        assert rec.frequency_khz is not None
        m += rec.frequency_khz.to_bytes(3, "big")
    if f & 0x0010:
        assert rec.timestamp_ms is not None
        m += rec.timestamp_ms.to_bytes(4, "big")
    if f & 0x0020:
        assert rec.phase is not None
        m += rec.phase.to_bytes(2, "big")
    if f & 0x0040:
        assert rec.protocol is not None
        m += bytes([rec.protocol])
    if f & 0x0080:
        assert rec.data_bits is not None
        assert rec.data is not None
        m += rec.data_bits.to_bytes(2, "big") + rec.data
    if f & 0x0100:
        assert rec.gpio is not None
        m += bytes([rec.gpio])
    ident = b"" if rec.pc is None else rec.pc.to_bytes(2, "big") + rec.xpc
    ident += bytes.fromhex(rec.epc)
    if rec.tag_crc is not None:
        ident += rec.tag_crc.to_bytes(2, "big")
    head = bytes([rec.option]) + rec.search_flags.to_bytes(2, "big") + f.to_bytes(2, "big")
    return head + b"\x01" + m + (8 * len(ident)).to_bytes(2, "big") + ident


def reencode(rec: mercury.Record) -> bytes:
    """The frame a record came from, rebuilt from its fields by this file's builder."""
    if isinstance(rec, TagRead):
        return build(rec.opcode, 0, tag_payload(rec))
    if isinstance(rec, KeepAlive):
        return build(rec.opcode, 0x0400, rec.data)
    if isinstance(rec, TemperatureThrottle):
        return build(rec.opcode, 0x0504, rec.data)
    if isinstance(rec, StatusError):
        return build(rec.opcode, rec.status, rec.data)
    return build(rec.opcode, 0, rec.data)


def feed_all(data: bytes, cuts: list[int] | None = None) -> tuple[list[Decoded], StreamDecoder]:
    dec = StreamDecoder()
    out: list[Decoded] = []
    prev = 0
    for cut in sorted(cuts or []):
        out += dec.feed(data[prev:cut])
        prev = cut
    out += dec.feed(data[prev:])
    out += dec.flush()
    return out, dec


# A real tag record from SparkFun's annotated M6e Nano example (its CRC by the module).
TAG_HEX = (
    "FF 28 22 00 00 10 00 1B 01 FF 01 01 C4 11 0E 16 40 00 00 01 27 00 00 05 00 00 0F"
    " 00 80 30 00 00 00 00 00 00 00 00 00 00 00 15 45 E9 4A 56 1D"
)
TAG = TagRead(
    opcode=0x22,
    option=0x10,
    search_flags=0x001B,
    metadata_flags=0x01FF,
    read_count=1,
    rssi_dbm=-60,
    antenna=1,
    rx_antenna=1,
    frequency_khz=923200,
    timestamp_ms=295,
    phase=0,
    protocol=5,
    data_bits=0,
    data=b"",
    gpio=0x0F,
    pc=0x3000,
    xpc=b"",
    epc="000000000000000000001545",
    tag_crc=0xE94A,
)
KEEP_ALIVE_HEX = "FF 00 22 04 00 84 E0"


# --- CRC and encoders --------------------------------------------------------------------


def test_reference_crc_reproduces_the_checked_frames() -> None:
    # guards this file's builder: the four checked frames of the issue
    assert ref_crc(hx("00 03")) == 0x1D0C
    assert ref_crc(hx("00 04")) == 0x1D0B
    assert ref_crc(hx("01 97 02")) == 0x4BBF
    assert ref_crc(hx("03 2F 00 00 02")) == 0x5E86


@given(st.binary(max_size=300))
def test_crc16_matches_the_bit_serial_reference(data: bytes) -> None:
    assert mercury.crc16(data) == ref_crc(data)
    assert mercury.gen2_crc16(data) == ref_gen2_crc(data)


def test_crc16_is_not_ccitt_false() -> None:
    # CRC-16/CCITT-FALSE of the get-version body is 0x2D6C; ThingMagic's is 0x1D0C
    assert mercury.crc16(hx("00 03")) == 0x1D0C
    assert mercury.crc16(hx("00 03")) != 0x2D6C


def test_checked_command_frames() -> None:
    assert mercury.cmd_get_version() == hx("FF 00 03 1D 0C")
    assert mercury.cmd_boot_firmware() == hx("FF 00 04 1D 0B")
    assert mercury.cmd_set_region(0x02) == hx("FF 01 97 02 4B BF")
    assert mercury.cmd_set_region(mercury.REGIONS["EU"]) == hx("FF 01 97 02 4B BF")
    assert mercury.cmd_stop_continuous_read() == hx("FF 03 2F 00 00 02 5E 86")


def test_commands_match_a_real_transport_log() -> None:
    # Frames Universal Reader Assistant sent to an M6e Nano (SparkFun's public logs)
    assert mercury.cmd_start_continuous_read() == hx(
        "FF 10 2F 00 00 01 22 00 00 05 07 22 10 00 1B 03 E8 01 FF DD 2B"
    )
    assert mercury.cmd_set_antenna_ports([1]) == hx("FF 03 91 02 01 01 42 C5")
    assert mercury.cmd_set_read_power(2700) == hx("FF 02 92 0A 8C 4B D5")
    assert mercury.cmd_set_read_filter(False) == hx("FF 03 9A 01 0C 00 A3 5D")
    assert mercury.cmd_set_read_filter(True) == hx("FF 03 9A 01 0C 01 A3 5C")
    assert mercury.cmd_set_region(0x0D) == hx("FF 01 97 0D 4B B0")


def test_encoders_by_construction() -> None:
    def host(op: int, data: bytes) -> bytes:
        body = bytes([len(data), op]) + data
        return b"\xff" + body + ref_crc(body).to_bytes(2, "big")

    assert mercury.cmd_set_baud_rate(921600) == host(0x06, (921600).to_bytes(4, "big"))
    assert mercury.cmd_set_tag_protocol() == host(0x93, hx("00 05"))
    assert mercury.cmd_set_antenna_ports([1, 2, 16]) == host(0x91, hx("02 01 01 02 02 10 10"))
    sub = hx("22 10 00 1B 00 C8 00 17")
    outer = hx("00 00 01 22 00 00 05") + bytes([len(sub) - 1]) + sub
    assert mercury.cmd_start_continuous_read(0x0017, 200) == host(0x2F, outer)
    frame = mercury.encode_command(0x40, bytes(range(255)))
    assert len(frame) == 260
    assert frame[1] == 255
    assert frame[-2:] == ref_crc(frame[1:-2]).to_bytes(2, "big")


@pytest.mark.parametrize(
    "call",
    [
        lambda: mercury.cmd_set_region(256),
        lambda: mercury.cmd_set_region(-1),
        lambda: mercury.cmd_set_region(True),
        lambda: mercury.cmd_set_baud_rate(0),
        lambda: mercury.cmd_set_tag_protocol(300),
        lambda: mercury.cmd_set_antenna_ports([]),
        lambda: mercury.cmd_set_antenna_ports([0]),
        lambda: mercury.cmd_set_antenna_ports([17]),
        lambda: mercury.cmd_set_antenna_ports(list(range(1, 18))),
        lambda: mercury.cmd_set_read_power(-1),
        lambda: mercury.cmd_set_read_power(0x8000),
        lambda: mercury.cmd_set_read_filter(1),  # type: ignore[arg-type]
        lambda: mercury.cmd_start_continuous_read(0x0200),
        lambda: mercury.cmd_start_continuous_read(0x01FF, 0),
        lambda: mercury.cmd_start_continuous_read(0x01FF, 0x10000),
        lambda: mercury.encode_command(0x100),
        lambda: mercury.encode_command(0x03, bytes(256)),
        lambda: mercury.encode_command(0x03, "text"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_protocol_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(ProtocolError):
        call()


# --- decode_frame ------------------------------------------------------------------------


def test_decode_real_tag_record() -> None:
    rec = decode_frame(hx(TAG_HEX))
    assert rec == TAG
    assert isinstance(rec, TagRead)
    assert rec.tag_crc_ok is True
    assert reencode(rec) == hx(TAG_HEX)


def test_status_records() -> None:
    assert decode_frame(hx(KEEP_ALIVE_HEX)) == KeepAlive(0x22, b"")
    assert decode_frame(build(0x22, 0x0504, b"")) == TemperatureThrottle(0x22, b"")
    assert decode_frame(build(0x2F, 0x0504, b"\x01")) == TemperatureThrottle(0x2F, b"\x01")
    # 0x0400 on another opcode is "no tags found", an error of that command
    assert decode_frame(build(0x21, 0x0400, b"")) == StatusError(0x21, 0x0400, "no_tags_found", b"")
    assert decode_frame(build(0x97, 0x010B, b"")) == StatusError(
        0x97, 0x010B, "invalid_region", b""
    )
    unknown = decode_frame(build(0x22, 0x1234, b"\x01"))
    assert unknown == StatusError(0x22, 0x1234, "0x1234", b"\x01")


def test_replies() -> None:
    assert decode_frame(hx("FF 00 97 00 00 77 9E")) == Reply(0x97, b"")
    started = decode_frame(hx("FF 04 2F 00 00 01 22 00 00 6D C3"))
    assert isinstance(started, Reply)
    assert started.continuous_reading() == "started"
    stopped = decode_frame(hx("FF 01 2F 00 00 02 30 E6"))
    assert isinstance(stopped, Reply)
    assert stopped.continuous_reading() == "stopped"
    version = decode_frame(
        hx("FF 14 03 00 00 14 12 08 00 30 00 00 02 20 15 03 10 01 03 01 47 00 00 00 10 EB FF")
    )
    assert isinstance(version, Reply)
    assert version.version() == {
        "bootloader": "14.12.08.00",
        "hardware": "30.00.00.02",
        "firmware_date": "20150310",
        "firmware": "01.03.01.47",
        "protocols": "00000010",
    }
    assert version.continuous_reading() is None
    assert Reply(0x03, b"\x01").version() is None
    # a search summary (Len 7) and a stream end (response type 0) are replies, not tags
    assert decode_frame(build(0x22, 0, hx("10 00 1B 00 00 00 2A"))) == Reply(
        0x22, hx("10 00 1B 00 00 00 2A")
    )
    assert isinstance(decode_frame(build(0x22, 0, hx("10 00 1B 01 FF 00 00 05"))), Reply)


def test_antenna_nibbles_and_signed_rssi() -> None:
    payload = hx("10 00 1B 00 06 01 80 F0 00 80 30 00") + bytes(12)
    crc = ref_gen2_crc(hx("30 00") + bytes(12))
    rec = decode_frame(build(0x22, 0, payload + crc.to_bytes(2, "big")))
    assert isinstance(rec, TagRead)
    assert (rec.antenna, rec.rx_antenna, rec.rssi_dbm) == (15, 16, -128)
    assert rec.tag_crc_ok is True
    wrong = decode_frame(build(0x22, 0, payload + b"\x00\x00"))
    assert isinstance(wrong, TagRead)
    assert wrong.tag_crc_ok is False


def test_non_gen2_ids() -> None:
    iso = decode_frame(build(0x22, 0, hx("10 00 1B 00 40 01 03 00 50") + bytes(8) + b"\xbe\xef"))
    assert isinstance(iso, TagRead)
    assert (iso.pc, iso.epc, iso.tag_crc, iso.tag_crc_ok) == (None, "00" * 8, 0xBEEF, None)
    ata = decode_frame(build(0x22, 0, hx("10 00 1B 00 40 01 1D 00 20 01 02 03 04")))
    assert isinstance(ata, TagRead)
    assert (ata.pc, ata.epc, ata.tag_crc) == (None, "01020304", None)


HDR = hx("10 00 1B")
PC_EPC_CRC = hx("30 00") + bytes(12) + ref_gen2_crc(hx("30 00") + bytes(12)).to_bytes(2, "big")


def tag_frame(flags: int, rest: bytes) -> bytes:
    return build(0x22, 0, HDR + flags.to_bytes(2, "big") + b"\x01" + rest)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "garbage"),
        (hx("01 02 03"), "garbage"),
        (hx("FF"), "length"),
        (hx(KEEP_ALIVE_HEX)[:-1], "length"),  # one byte short
        (hx(KEEP_ALIVE_HEX) + b"\x00", "length"),  # one byte long
        (hx("FF 00 22 04 00 84 E1"), "checksum"),
        (hx(TAG_HEX)[:-2] + b"\x56\x1c", "checksum"),
        (hx("FF 00 03 1D 0C"), "length"),  # a host command is no response
        # EPC bits claim one byte more / fewer than is left, or no whole bytes
        (tag_frame(0x0000, (136).to_bytes(2, "big") + PC_EPC_CRC), "sanity"),
        (tag_frame(0x0000, (120).to_bytes(2, "big") + PC_EPC_CRC), "sanity"),
        (tag_frame(0x0000, (124).to_bytes(2, "big") + PC_EPC_CRC[:-1]), "sanity"),
        # Gen2 PC + CRC with an empty EPC; too short for PC and CRC
        (tag_frame(0x0000, (32).to_bytes(2, "big") + hx("00 00 1D 0F")), "sanity"),
        (tag_frame(0x0000, (16).to_bytes(2, "big") + hx("30 00")), "sanity"),
        # XI bit set but no room for XPC_W1 plus an EPC; XEB bit without room for XPC_W2
        (tag_frame(0x0000, (48).to_bytes(2, "big") + hx("02 00 01 23 AB CD")), "sanity"),
        (tag_frame(0x0000, (32).to_bytes(2, "big") + hx("02 00 AB CD")), "sanity"),
        (tag_frame(0x0000, (64).to_bytes(2, "big") + hx("02 00 80 01 00 00 AB CD")), "sanity"),
        # ATA id with no bytes; a metadata flag this decoder does not model
        (tag_frame(0x0040, b"\x1d" + (0).to_bytes(2, "big")), "sanity"),
        (tag_frame(0x0200, b"\x04" + (128).to_bytes(2, "big") + PC_EPC_CRC), "sanity"),
        # the record ends before its metadata / data / GPIO / EPC-length word
        (tag_frame(0x01FF, hx("01 C4 11")), "length"),
        (tag_frame(0x0080, (800).to_bytes(2, "big") + PC_EPC_CRC), "length"),
        (tag_frame(0x0080, hx("00 10")), "length"),
        (tag_frame(0x0180, (0).to_bytes(2, "big")), "length"),
        (tag_frame(0x0006, hx("C4 11")), "length"),
    ],
)
def test_decode_frame_failures(frame: bytes, reason: str) -> None:
    rec = decode_frame(frame)
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == reason
    if frame[:1] == b"\xff":
        assert rec.data == frame


def test_record_to_dict_shapes() -> None:
    assert mercury.record_to_dict(TAG) == {
        "type": "tag",
        "opcode": "0x22",
        "option": "0x10",
        "search_flags": "0x001B",
        "metadata_flags": "0x01FF",
        "read_count": 1,
        "rssi_dbm": -60,
        "antenna": 1,
        "rx_antenna": 1,
        "frequency_khz": 923200,
        "timestamp_ms": 295,
        "phase": 0,
        "protocol": 5,
        "data_bits": 0,
        "data": "",
        "gpio": 15,
        "pc": "3000",
        "xpc": "",
        "epc": "000000000000000000001545",
        "tag_crc": "E94A",
        "tag_crc_ok": True,
    }
    assert mercury.record_to_dict(KeepAlive(0x22, b"")) == {
        "type": "keep_alive",
        "opcode": "0x22",
        "data": "",
    }
    assert mercury.record_to_dict(StatusError(0x97, 0x010B, "invalid_region", b"")) == {
        "type": "error",
        "opcode": "0x97",
        "status": "0x010B",
        "name": "invalid_region",
        "data": "",
    }
    assert mercury.record_to_dict(DecodeFailure("checksum", b"\xff\x00")) == {
        "type": "invalid",
        "reason": "checksum",
        "data": "FF00",
    }


def test_tag_of() -> None:
    assert mercury.tag_of(TAG) == TagView("000000000000000000001545", 1, -60.0)
    bare = decode_frame(tag_frame(0x0000, (128).to_bytes(2, "big") + PC_EPC_CRC))
    assert isinstance(bare, TagRead)
    assert mercury.tag_of(bare) == TagView("00" * 12, None, None)
    assert mercury.tag_of(KeepAlive(0x22, b"")) is None
    assert mercury.tag_of(DecodeFailure("garbage", b"\x00")) is None


def test_protocol_info() -> None:
    info = mercury.PROTOCOL
    assert info.name == "mercury"
    assert info.default_baud == 115200
    assert info.typical_frame_bytes == len(hx(TAG_HEX))
    assert info.decode_stream(hx(TAG_HEX)) == [TAG]


# --- StreamDecoder -----------------------------------------------------------------------


def test_stream_counts_and_resyncs() -> None:
    bad = hx(TAG_HEX)[:-1] + b"\x00"
    data = (
        hx("11 22")
        + hx(TAG_HEX)
        + bad
        + hx("33")
        + hx(KEEP_ALIVE_HEX)
        + hx(TAG_HEX)
        + hx("FF 28 22")
    )
    out, dec = feed_all(data)
    assert out == [
        DecodeFailure("garbage", hx("11 22")),
        TAG,
        DecodeFailure("checksum", bad),
        DecodeFailure("garbage", hx("33")),
        KeepAlive(0x22, b""),
        TAG,
        DecodeFailure("truncated", hx("FF 28 22")),
    ]
    assert dec.counters == {
        "ok": 3,
        "length": 0,
        "checksum": 1,
        "sanity": 0,
        "garbage": 2,
        "truncated": 1,
    }


def test_header_inside_incomplete_frame_does_not_end_it() -> None:
    # The EPC holds a complete good keep-alive frame; delivered in two chunks cut right
    # after it, the outer record must wait and then decode whole.
    epc = hx(KEEP_ALIVE_HEX) + hx("00 11 22 33 44")
    ident = hx("30 00") + epc + ref_gen2_crc(hx("30 00") + epc).to_bytes(2, "big")
    frame = tag_frame(0x0000, (8 * len(ident)).to_bytes(2, "big") + ident)
    dec = StreamDecoder()
    cut = 11 + 2 + 2 + 7
    assert dec.feed(frame[:cut]) == []
    assert dec.pending == cut
    [rec] = dec.feed(frame[cut:])
    assert isinstance(rec, TagRead)
    assert rec.epc == epc.hex().upper()
    assert dec.pending == 0
    assert dec.flush() == []


def test_truncated_frame_then_good_frame() -> None:
    cut = hx(TAG_HEX)[:14]
    out, dec = feed_all(cut + hx(TAG_HEX))
    assert out == [DecodeFailure("truncated", cut), TAG]
    assert dec.counters["truncated"] == 1
    assert dec.counters["ok"] == 1


def test_false_header_hides_frame() -> None:
    out, _ = feed_all(hx("FF 28 22") + hx(TAG_HEX))
    assert out == [DecodeFailure("truncated", hx("FF 28 22")), TAG]
    # a lone 0xFF claims Len 0xFF; the frame after it is still found at the end of input
    out, _ = feed_all(b"\xff" + hx(TAG_HEX))
    assert out == [DecodeFailure("truncated", b"\xff"), TAG]


def test_false_header_decision_waits_for_the_claimed_length_only() -> None:
    # "FF FF": the first header claims 262 bytes; once they are there, the decision is
    # taken without flush, and the frames inside are found.
    dec = StreamDecoder()
    assert dec.feed(b"\xff" + hx(TAG_HEX) * 5) == []  # 236 of the 262 claimed bytes
    assert dec.pending == 1 + 47 * 5
    out = dec.feed(hx(TAG_HEX))
    assert out == [DecodeFailure("truncated", b"\xff"), *[TAG] * 6]
    assert dec.flush() == []


def test_garbage_run_across_feeds_is_one_failure() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx("01 02")) == []
    assert dec.feed(hx("03")) == []
    assert dec.pending == 3
    out = dec.feed(hx(TAG_HEX))
    assert out == [DecodeFailure("garbage", hx("01 02 03")), TAG]
    assert dec.counters["garbage"] == 1


def test_long_garbage_run_keeps_bounded_data() -> None:
    dec = StreamDecoder()
    for _ in range(100):
        dec.feed(bytes(range(1, 101)))
    [fail] = dec.flush()
    assert isinstance(fail, DecodeFailure)
    assert fail.reason == "garbage"
    assert fail.data == bytes(range(1, 101)) * 2 + bytes(range(1, 57))
    assert len(fail.data) == base.MAX_FAILURE_DATA


def test_flush_resets_and_decoder_is_reusable() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx(TAG_HEX)[:10]) == []
    assert dec.flush() == [DecodeFailure("truncated", hx(TAG_HEX)[:10])]
    assert dec.pending == 0
    assert dec.flush() == []
    assert dec.feed(hx(TAG_HEX)) == [TAG]


# --- vectors and cross-protocol checks (through a local table until registered) ----------

LOCAL: dict[str, ProtocolInfo] = {"r2000": r2000.PROTOCOL, "mercury": mercury.PROTOCOL}
MERCURY_VECTORS = sorted((VECTORS / "mercury").glob("*.hex"))


def test_mercury_has_vectors() -> None:
    assert len(MERCURY_VECTORS) >= 15


@pytest.mark.parametrize("hex_file", MERCURY_VECTORS, ids=lambda p: p.stem)
def test_vector(hex_file: Path) -> None:
    data = bytes.fromhex(hex_file.read_text(encoding="utf-8"))
    expected = json.loads(hex_file.with_suffix(".json").read_text(encoding="utf-8"))
    for chunk in (len(data) or 1, 1, 7, 64):
        out, _ = feed_all(data, list(range(chunk, len(data), chunk)))
        assert [mercury.record_to_dict(r) for r in out] == expected


def test_vector_records_reencode_to_their_lines() -> None:
    """Every good frame of the vectors is rebuilt byte for byte from its decoded fields."""
    compared = 0
    for hex_file in MERCURY_VECTORS:
        for line in hex_file.read_text(encoding="utf-8").splitlines():
            rec = decode_frame(bytes.fromhex(line))
            if not isinstance(rec, DecodeFailure):
                assert reencode(rec) == bytes.fromhex(line), hex_file.name
                compared += 1
    assert compared >= 80


def _streams(protocol: str) -> list[bytes]:
    return [bytes.fromhex(p.read_text()) for p in sorted((VECTORS / protocol).glob("*.hex"))]


@pytest.mark.parametrize(("decoder", "source"), [("mercury", "r2000"), ("r2000", "mercury")])
def test_no_tags_in_the_other_protocols_vectors(decoder: str, source: str) -> None:
    info = LOCAL[decoder]
    streams = _streams(source)
    assert streams
    for data in [*streams, b"".join(streams)]:
        assert [t for t in map(info.tags_of, info.decode_stream(data)) if t is not None] == []


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    frame: bytes
    record: mercury.Record


@st.composite
def tag_frames(draw: st.DrawFn) -> Built:
    flags = draw(st.integers(0, 0x01FF))
    protocol = draw(st.sampled_from([5, 5, 3, 7, 8, 0x1D])) if flags & 0x40 else None
    gen2 = protocol in (None, 5)
    tx = draw(st.integers(1, 16))
    rx = draw(st.integers(1, 16))
    data_bits = draw(st.integers(0, 80))
    data = draw(st.binary(min_size=(data_bits + 7) // 8, max_size=(data_bits + 7) // 8))
    epc = draw(st.binary(min_size=1, max_size=62))
    pc = xpc = None
    if gen2:
        xi = draw(st.booleans())
        pc = draw(st.integers(0, 0xFFFF)) & ~0x0200 | (0x0200 if xi else 0)
        xpc = b""
        if xi:
            w1 = draw(st.integers(0, 0xFFFF))
            xpc = w1.to_bytes(2, "big")
            if w1 & 0x8000:
                xpc += draw(st.binary(min_size=2, max_size=2))
    tag_crc = None if protocol == 0x1D else draw(st.integers(0, 0xFFFF))
    rec = TagRead(
        opcode=0x22,
        option=draw(st.integers(0, 255)) | 0x10,
        search_flags=draw(st.integers(0, 0xFFFF)),
        metadata_flags=flags,
        read_count=draw(st.integers(0, 255)) if flags & 0x01 else None,
        rssi_dbm=draw(st.integers(-128, 127)) if flags & 0x02 else None,
        antenna=tx if flags & 0x04 else None,
        rx_antenna=rx if flags & 0x04 else None,
        frequency_khz=draw(st.integers(0, 0xFFFFFF)) if flags & 0x08 else None,
        timestamp_ms=draw(st.integers(0, 0xFFFFFFFF)) if flags & 0x10 else None,
        phase=draw(st.integers(0, 0xFFFF)) if flags & 0x20 else None,
        protocol=protocol,
        data_bits=data_bits if flags & 0x80 else None,
        data=data if flags & 0x80 else None,
        gpio=draw(st.integers(0, 255)) if flags & 0x100 else None,
        pc=pc,
        xpc=xpc or b"",
        epc=epc.hex().upper(),
        tag_crc=tag_crc,
    )
    return Built(build(0x22, 0, tag_payload(rec)), rec)


@st.composite
def status_frames(draw: st.DrawFn) -> Built:
    op = draw(st.integers(0, 255))
    status = draw(st.integers(1, 0xFFFF))
    data = draw(st.binary(max_size=20))
    rec: mercury.Record
    if status == 0x0400 and op == 0x22:
        rec = KeepAlive(op, data)
    elif status == 0x0504:
        rec = TemperatureThrottle(op, data)
    else:
        name = mercury.STATUS_NAMES.get(status) or f"0x{status:04X}"
        rec = StatusError(op, status, name, data)
    return Built(build(op, status, data), rec)


def _is_tag_shape(op: int, data: bytes) -> bool:
    return (
        op == 0x22 and len(data) >= 6 and len(data) != 7 and bool(data[0] & 0x10) and data[5] == 1
    )


@st.composite
def reply_frames(draw: st.DrawFn) -> Built:
    op = draw(st.sampled_from([0x03, 0x22, 0x2F, 0x97, 0x29]) | st.integers(0, 255))
    data = draw(st.binary(max_size=40))
    assume(not _is_tag_shape(op, data))
    return Built(build(op, 0, data), Reply(op, data))


valid_frames = st.one_of(tag_frames(), status_frames(), reply_frames())
noisy_bytes = st.lists(
    st.one_of(st.just(0xFF), st.sampled_from([0x00, 0x22, 0x01]), st.integers(0, 255)),
    max_size=60,
).map(bytes)


def span(item: Decoded) -> bytes:
    return item.data if isinstance(item, DecodeFailure) else reencode(item)


def good_span_starts(data: bytes, start: int, stop: int) -> bool:
    """Whether any 0xFF in data[start:stop] starts a complete frame with a good CRC."""
    for i in range(start, stop):
        if data[i] == 0xFF and i + 1 < len(data):
            end = i + data[i + 1] + 7
            if end <= len(data) and ref_crc(data[i + 1 : end - 2]) == int.from_bytes(
                data[end - 2 : end], "big"
            ):
                return True
    return False


def test_built_tag_records_equal_constructed_ones() -> None:
    """Slots filled directly by the decoder make the same object as the constructor."""
    rec = decode_frame(
        tag_frame(
            0x01FF,
            hx("02 B0 34 0D C6 5E 00 00 00 0C 00 2D 05 00 04 AB 07")
            + (128).to_bytes(2, "big")
            + PC_EPC_CRC,
        )
    )
    expected = TagRead(
        0x22, 0x10, 0x001B, 0x01FF, 2, -80, 3, 4, 902750, 12, 45, 5, 4, b"\xab", 7,
        0x3000, b"", "00" * 12, int.from_bytes(PC_EPC_CRC[-2:], "big"),
    )  # fmt: skip
    assert rec == expected
    assert repr(rec) == repr(expected)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    single = decode_frame(data)
    assert isinstance(
        single, TagRead | KeepAlive | TemperatureThrottle | StatusError | Reply | DecodeFailure
    )
    out, dec = feed_all(data, [c for c in cuts if c <= len(data)])
    failures = [r for r in out if isinstance(r, DecodeFailure)]
    assert dec.counters["ok"] == len(out) - len(failures)
    for reason in mercury.FAILURE_REASONS:
        assert dec.counters[reason] == sum(1 for f in failures if f.reason == reason)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.one_of(st.just(0xFF), st.integers(0, 255)), max_size=250).map(bytes),
    cuts=st.lists(st.integers(0, 400), max_size=10),
)
def test_header_rich_bytes_never_crash_and_account_for_every_byte(
    data: bytes, cuts: list[int]
) -> None:
    out, _ = feed_all(data, [c for c in cuts if c <= len(data)])
    # garbage runs are short here, so their data is whole: every byte is reported once
    assert b"".join(span(r) for r in out) == data


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.tuples(noisy_bytes, valid_frames), min_size=1, max_size=8),
    tail=noisy_bytes,
)
def test_valid_frames_in_garbage_are_found(items: list[tuple[bytes, Built]], tail: bytes) -> None:
    stream = b""
    garbage_ranges: list[tuple[int, int]] = []
    for garbage, built in items:
        garbage_ranges.append((len(stream), len(stream) + len(garbage)))
        stream += garbage + built.frame
    garbage_ranges.append((len(stream), len(stream) + len(tail)))
    stream += tail
    # A header in the garbage that by chance starts a good frame would be a real frame
    # on the wire too; exclude those (1 in 65536 per header).
    assume(not any(good_span_starts(stream, a, b) for a, b in garbage_ranges))
    out, _ = feed_all(stream)
    assert [r for r in out if not isinstance(r, DecodeFailure)] == [b.record for _, b in items]
    # every byte is accounted for exactly once, in order
    assert b"".join(span(r) for r in out) == stream


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(noisy_bytes, valid_frames.map(lambda b: b.frame)), max_size=10),
    cuts=st.lists(st.integers(0, 2000), max_size=30),
)
def test_chunking_does_not_change_output(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    whole, whole_dec = feed_all(stream)
    chunked, chunked_dec = feed_all(stream, [c for c in cuts if c <= len(stream)])
    assert chunked == whole
    assert chunked_dec.counters == whole_dec.counters
    one_by_one, _ = feed_all(stream, list(range(len(stream))))
    assert one_by_one == whole


def _dict_roundtrip(rec: Any) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(json.dumps(mercury.record_to_dict(rec)))
    return d


@given(valid_frames)
def test_record_to_dict_is_json(built: Built) -> None:
    assert _dict_roundtrip(built.record) == mercury.record_to_dict(built.record)
