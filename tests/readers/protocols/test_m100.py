"""M100 protocol: encoders, decoder failures and property tests.

Frames for the property tests are built here from field values with this file's own
checksum and a bit-by-bit CRC-16/GENIBUS, independently of the module under test.
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
from tagtrail.readers.protocols import base, m100, r2000
from tagtrail.readers.protocols.base import ProtocolInfo, TagView
from tagtrail.readers.protocols.m100 import (
    Command,
    Decoded,
    DecodeFailure,
    ErrorReply,
    ModuleInfo,
    Notice,
    Response,
    StreamDecoder,
    TagNotice,
    decode_frame,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def crc_ref(data: bytes) -> int:
    """CRC-16/GENIBUS bit by bit (poly 0x1021, init 0xFFFF, MSB first, xorout 0xFFFF)."""
    reg = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = reg >> 15
            reg = (reg << 1) & 0xFFFF
            if top ^ (byte >> bit) & 1:
                reg ^= 0x1021
    return reg ^ 0xFFFF


def build(ftype: int, cmd: int, payload: bytes) -> bytes:
    body = bytes([ftype, cmd, len(payload) // 256, len(payload) % 256]) + payload
    return b"\xbb" + body + bytes([sum(body) % 256, 0x7E])


def notice_payload(rssi: int, pc: int, epc: bytes, crc: int | None = None) -> bytes:
    pc_epc = pc.to_bytes(2, "big") + epc
    c = crc_ref(pc_epc) if crc is None else crc
    return bytes([rssi]) + pc_epc + c.to_bytes(2, "big")


def feed_all(
    data: bytes, cuts: list[int] | None = None, **kw: Any
) -> tuple[list[Decoded], StreamDecoder]:
    dec = StreamDecoder(**kw)
    out: list[Decoded] = []
    prev = 0
    for cut in sorted(cuts or []):
        out += dec.feed(data[prev:cut])
        prev = cut
    out += dec.feed(data[prev:])
    out += dec.flush()
    return out, dec


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


NOTICE_HEX = "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E"
NOTICE = TagNotice(
    rssi_raw=0xC9,
    rssi_dbm=-55,
    pc=0x3400,
    epc="30751FEB705C5904E3D50D70",
    crc=0x3A76,
    crc_ok=True,
)
STOP_OK = hx("BB 01 28 00 01 00 2A 7E")


# --- encoders ----------------------------------------------------------------------------


def test_checked_command_frames() -> None:
    assert m100.cmd_single_poll() == hx("BB 00 22 00 00 22 7E")
    assert m100.cmd_stop_multiple_poll() == hx("BB 00 28 00 00 28 7E")


def test_published_command_frames() -> None:
    assert m100.cmd_multiple_poll(10000) == hx("BB 00 27 00 03 22 27 10 83 7E")
    assert m100.cmd_multiple_poll(0xFFFF) == hx("BB 00 27 00 03 22 FF FF 4A 7E")
    assert m100.cmd_module_info(0) == hx("BB 00 03 00 01 00 04 7E")
    assert m100.cmd_module_info(2) == hx("BB 00 03 00 01 02 06 7E")
    assert m100.cmd_set_region(0x03) == hx("BB 00 07 00 01 03 0B 7E")
    assert m100.cmd_get_region() == hx("BB 00 08 00 00 08 7E")
    assert m100.cmd_set_tx_power(2000) == hx("BB 00 B6 00 02 07 D0 8F 7E")
    assert m100.cmd_get_tx_power() == hx("BB 00 B7 00 00 B7 7E")
    assert m100.cmd_set_baud(9600) == hx("BB 00 11 00 02 00 60 73 7E")
    assert m100.cmd_set_baud(19200) == hx("BB 00 11 00 02 00 C0 D3 7E")


def test_encoders_by_arithmetic() -> None:
    # 115200 / 100 = 1152 = 0x0480; 0x00+0x11+0x00+0x02+0x04+0x80 = 0x97
    assert m100.cmd_set_baud(115200) == hx("BB 00 11 00 02 04 80 97 7E")
    # count 1: 0x27+0x03+0x22+0x00+0x01 = 0x4D
    assert m100.cmd_multiple_poll(1) == hx("BB 00 27 00 03 22 00 01 4D 7E")
    # 3300 = 0x0CE4: 0xB6+0x02+0x0C+0xE4 = 0x1A8 -> 0xA8
    assert m100.cmd_set_tx_power(3300) == hx("BB 00 B6 00 02 0C E4 A8 7E")
    frame = m100.encode_frame(1, 0xF3, bytes([0xBB]) * 300)
    assert frame[3:5] == hx("01 2C")
    assert len(frame) == 307
    assert frame[-2] == (1 + 0xF3 + 0x01 + 0x2C + 0xBB * 300) % 256
    assert frame[-1] == 0x7E
    assert m100.checksum(hx("00 22 00 00")) == 0x22


@pytest.mark.parametrize(
    "call",
    [
        lambda: m100.cmd_module_info(3),
        lambda: m100.cmd_module_info(-1),
        lambda: m100.cmd_multiple_poll(0),
        lambda: m100.cmd_multiple_poll(0x10000),
        lambda: m100.cmd_multiple_poll(True),
        lambda: m100.cmd_set_region(0x05),
        lambda: m100.cmd_set_region(True),
        lambda: m100.cmd_set_region(3.0),  # type: ignore[arg-type]
        lambda: m100.cmd_set_baud(4800),
        lambda: m100.cmd_set_baud(115200.0),  # type: ignore[arg-type]
        lambda: m100.cmd_set_tx_power(3301),
        lambda: m100.cmd_set_tx_power(-1),
        lambda: m100.encode_frame(3, 0x22),
        lambda: m100.encode_frame(0, 0x100),
        lambda: m100.encode_frame(0, 0x22, bytes(0x10000)),
        lambda: m100.encode_frame(0, 0x22, "text"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_protocol_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(ProtocolError):
        call()


def test_crc_matches_reference_and_published_notices() -> None:
    assert m100.crc16_genibus(b"123456789") == crc_ref(b"123456789") == 0xD64E
    for frame in (
        hx(NOTICE_HEX),
        hx("BB 02 22 00 11 C3 30 00 34 08 33 B2 DD D9 01 40 00 00 00 00 34 6F E3 7E"),
        hx("BB 02 22 00 11 D6 34 00 E2 80 11 70 40 00 02 1D 35 AE 40 08 D4 44 C4 7E"),
    ):
        assert crc_ref(frame[6:20]) == int.from_bytes(frame[20:22], "big")
        assert m100.crc16_genibus(frame[6:20]) == crc_ref(frame[6:20])


# --- decode_frame ------------------------------------------------------------------------


def test_decode_checked_frames() -> None:
    assert decode_frame(hx(NOTICE_HEX)) == NOTICE
    assert NOTICE.antenna == 1
    assert decode_frame(hx("BB 00 22 00 00 22 7E")) == Command(0x22, b"")
    assert decode_frame(hx("BB 00 28 00 00 28 7E")) == Command(0x28, b"")


def test_decode_replies() -> None:
    assert decode_frame(hx("BB 01 FF 00 01 15 16 7E")) == ErrorReply(0x15, "inventory_fail", b"")
    info = decode_frame(hx("BB 01 03 00 08 02 4D 61 67 69 63 52 66 A7 7E"))
    assert info == ModuleInfo(2, b"MagicRf")
    assert isinstance(info, ModuleInfo)
    assert info.text == "MagicRf"
    assert info.kind_name == "manufacturer"
    stop = decode_frame(STOP_OK)
    assert stop == Response(0x28, b"\x00")
    assert isinstance(stop, Response)
    assert stop.ok() is True
    assert stop.region() is None
    power = decode_frame(hx("BB 01 B7 00 02 0A 28 EC 7E"))
    assert isinstance(power, Response)
    assert power.tx_power_dbm() == 26.0
    assert power.ok() is None
    region = decode_frame(build(1, 0x08, b"\x03"))
    assert isinstance(region, Response)
    assert region.region() == 3
    assert decode_frame(build(2, 0x27, b"\x01\x02")) == Notice(0x27, b"\x01\x02")


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x15, "inventory_fail"),
        (0x16, "access_fail"),
        (0x09, "read_fail"),
        (0x20, "fhss_fail"),
        (0xA3, "read_error:memory_overrun"),
        (0xB4, "write_error:memory_locked"),
        (0xCB, "lock_error:insufficient_power"),
        (0xD0, "kill_error:other_error"),
        (0xEF, "block_permalock_error:non_specific_error"),
        (0xA6, "read_error:0x6"),
        (0x00, "0x00"),
        (0x99, "0x99"),
    ],
)
def test_error_names(code: int, name: str) -> None:
    rec = decode_frame(build(1, 0xFF, bytes([code, 0x0E])))
    assert rec == ErrorReply(code, name, b"\x0e")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "garbage"),
        (hx("01 02 03"), "garbage"),
        (hx("BB 00 22 00 00 22"), "length"),  # one byte short
        (hx("BB 00 22 00 00 22 7E 00"), "length"),  # one byte long
        (hx("BB 00 22 00 00 22 7F"), "length"),  # End is not 0x7E
        (hx("BB 00 22 00 01 22 7E"), "length"),  # PL says one more byte
        (hx("BB 03 22 00 00 25 7E"), "sanity"),  # Type 3
        (hx("BB 00 22 00 00 23 7E"), "checksum"),
        (hx(NOTICE_HEX)[:-2] + hx("EE 7E"), "checksum"),
        # good check, EPC CRC one off
        (build(2, 0x22, notice_payload(0xC9, 0x3400, hx(NOTICE_HEX)[8:20], 0x3A77)), "checksum"),
        # PC says 4 words but PL says 6
        (build(2, 0x22, notice_payload(0xC9, 0x2000, bytes(12))), "sanity"),
        # zero-word EPC
        (build(2, 0x22, notice_payload(0xC9, 0x0000, b"")), "sanity"),
        # PC 0x0800 (1 word) with PL 4: too short for RSSI + PC + CRC
        (build(2, 0x22, hx("C9 08 00 12")), "length"),
        (build(1, 0xFF, b""), "length"),
        (build(1, 0x03, b""), "length"),
    ],
)
def test_decode_frame_failures(frame: bytes, reason: str) -> None:
    rec = decode_frame(frame)
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == reason
    assert rec.data == frame


def test_crc_mismatch_reported_when_not_verified() -> None:
    epc = hx(NOTICE_HEX)[8:20]
    frame = build(2, 0x22, notice_payload(0xC9, 0x3400, epc, 0x1234))
    rec = decode_frame(frame, verify_crc=False)
    assert rec == TagNotice(0xC9, -55, 0x3400, epc.hex().upper(), 0x1234, False)
    out, dec = feed_all(frame, verify_crc=False)
    assert out == [rec]
    assert dec.counters["ok"] == 1
    out, dec = feed_all(frame)
    assert out == [DecodeFailure("checksum", frame)]


def test_record_to_dict_shapes() -> None:
    assert m100.record_to_dict(NOTICE) == {
        "type": "tag",
        "antenna": 1,
        "rssi_raw": 201,
        "rssi_dbm": -55,
        "pc": "3400",
        "epc": "30751FEB705C5904E3D50D70",
        "crc": "3A76",
        "crc_ok": True,
    }
    assert m100.record_to_dict(ErrorReply(0x15, "inventory_fail", b"")) == {
        "type": "error",
        "code": "0x15",
        "name": "inventory_fail",
        "data": "",
    }
    assert m100.record_to_dict(Response(0xB6, b"\x01")) == {
        "type": "response",
        "command": "0xB6",
        "data": "01",
        "ok": False,
    }
    assert m100.record_to_dict(Response(0x08, b"\x02"))["region"] == "us"
    assert m100.record_to_dict(ModuleInfo(9, b"\xff"))["kind"] == "0x09"
    assert m100.record_to_dict(ModuleInfo(9, b"\xff"))["text"] == "\ufffd"
    assert m100.record_to_dict(Command(0x22, b"")) == {
        "type": "command",
        "command": "0x22",
        "data": "",
    }
    assert m100.record_to_dict(DecodeFailure("length", b"\xbb\x00")) == {
        "type": "invalid",
        "reason": "length",
        "data": "BB00",
    }


def test_tag_of_and_protocol_info() -> None:
    assert m100.tag_of(NOTICE) == TagView("30751FEB705C5904E3D50D70", 1, -55.0)
    assert m100.tag_of(Response(0x28, b"\x00")) is None
    assert m100.tag_of(DecodeFailure("garbage", b"\x00")) is None
    info = m100.PROTOCOL
    assert isinstance(info, ProtocolInfo)
    assert info.name == "m100"
    assert info.default_baud == 115200
    assert info.typical_frame_bytes == len(hx(NOTICE_HEX))
    assert info.line_rate_frames_s == 480.0
    assert info.decode_stream(hx(NOTICE_HEX)) == [NOTICE]
    assert isinstance(info.new_decoder(), StreamDecoder)


# --- StreamDecoder -----------------------------------------------------------------------


def test_stream_counts_and_resyncs() -> None:
    bad = hx(NOTICE_HEX)[:-2] + hx("00 7E")
    data = hx("11 22") + hx(NOTICE_HEX) + bad + hx("33") + hx(NOTICE_HEX) + hx("BB 02 22 00")
    out, dec = feed_all(data)
    assert out == [
        DecodeFailure("garbage", hx("11 22")),
        NOTICE,
        DecodeFailure("checksum", bad),
        DecodeFailure("garbage", hx("33")),
        NOTICE,
        DecodeFailure("truncated", hx("BB 02 22 00")),
    ]
    assert dec.counters == {
        "ok": 2,
        "length": 0,
        "checksum": 1,
        "sanity": 0,
        "garbage": 2,
        "truncated": 1,
    }


def test_header_inside_incomplete_frame_does_not_end_it() -> None:
    # The EPC holds a complete good frame (BB 00 28 00 00 28 7E); delivered in two
    # chunks cut right after it, the outer notice must wait and then decode whole.
    epc = hx("BB 00 28 00 00 28 7E 11 22 33 44 55")
    frame = build(2, 0x22, notice_payload(0xC0, 0x3000, epc))
    dec = StreamDecoder()
    cut = 8 + 7
    assert dec.feed(frame[:cut]) == []
    assert dec.pending == cut
    [rec] = dec.feed(frame[cut:])
    assert isinstance(rec, TagNotice)
    assert rec.epc == epc.hex().upper()
    assert dec.pending == 0
    assert dec.flush() == []


def test_header_is_decided_only_with_five_bytes() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx("00 BB 02")) == []
    assert dec.pending == 3
    # Type 0x02 and PL 0x0011 make a header: the garbage before it is reported now.
    assert dec.feed(hx("22 00 11")) == [DecodeFailure("garbage", hx("00"))]
    assert dec.feed(hx(NOTICE_HEX)[5:]) == [NOTICE]
    # Type 0x07 is no header: the 0xBB joins the garbage run.
    assert dec.feed(hx("BB 07")) == []
    assert dec.feed(hx("00 00 00") + STOP_OK) == [
        DecodeFailure("garbage", hx("BB 07 00 00 00")),
        Response(0x28, b"\x00"),
    ]


def test_truncated_frame_then_good_frame() -> None:
    cut = hx(NOTICE_HEX)[:9]
    out, dec = feed_all(cut + hx(NOTICE_HEX))
    assert out == [DecodeFailure("truncated", cut), NOTICE]
    assert dec.counters["truncated"] == 1
    assert dec.counters["ok"] == 1


def test_false_header_hides_frame() -> None:
    out, _ = feed_all(hx("BB 02 22 00 11") + hx(NOTICE_HEX))
    assert out == [DecodeFailure("truncated", hx("BB 02 22 00 11")), NOTICE]


def test_bad_frame_waits_for_an_incomplete_candidate() -> None:
    # The bad frame's payload holds 'BB 00 00 00 09': a header claiming a 16-byte frame
    # that reaches past the bytes so far; the decision waits for them.
    inner = build(0, 0x00, bytes(9))
    assert inner[:5] == hx("BB 00 00 00 09")
    bad = build(1, 0x0D, inner[:5] + bytes(3))[:-2] + hx("00 7E")
    dec = StreamDecoder()
    assert dec.feed(bad) == []
    assert dec.pending == len(bad)
    # the rest of the candidate, which does not make it good: one checksum failure
    assert dec.feed(bytes(8)) == [DecodeFailure("checksum", bad)]
    assert dec.flush() == [DecodeFailure("garbage", bytes(8))]


def test_length_failure_when_end_is_not_7e() -> None:
    frame = hx("BB 01 28 00 01 00 2A 00")
    out, dec = feed_all(frame + STOP_OK)
    assert out == [DecodeFailure("length", frame), Response(0x28, b"\x00")]
    assert dec.counters["length"] == 1


def test_max_payload_bounds_headers() -> None:
    big = build(1, 0x39, bytes(range(256)) * 8)  # PL 2048
    out, _ = feed_all(big + STOP_OK)
    assert [type(r) for r in out] == [DecodeFailure, Response]
    assert isinstance(out[0], DecodeFailure)
    assert out[0].reason == "garbage"
    out, _ = feed_all(big + STOP_OK, max_payload=4096)
    assert out == [Response(0x39, bytes(range(256)) * 8), Response(0x28, b"\x00")]


def test_garbage_run_across_feeds_is_one_failure() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx("01 02")) == []
    assert dec.feed(hx("03 BB")) == []
    assert dec.feed(hx("09")) == []
    assert dec.pending == 5
    out = dec.feed(hx(NOTICE_HEX))
    assert out == [DecodeFailure("garbage", hx("01 02 03 BB 09")), NOTICE]
    assert dec.counters["garbage"] == 1


def test_long_garbage_run_keeps_bounded_data() -> None:
    dec = StreamDecoder()
    for _ in range(100):
        dec.feed(bytes(range(100)))
    [fail] = dec.flush()
    assert isinstance(fail, DecodeFailure)
    assert fail.reason == "garbage"
    assert fail.data == bytes(range(100)) * 2 + bytes(range(56))
    assert len(fail.data) == base.MAX_FAILURE_DATA


def test_flush_resets_and_decoder_is_reusable() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx(NOTICE_HEX)[:10]) == []
    assert dec.flush() == [DecodeFailure("truncated", hx(NOTICE_HEX)[:10])]
    assert dec.pending == 0
    assert dec.flush() == []
    assert dec.feed(hx(NOTICE_HEX)) == [NOTICE]


# --- vectors and other protocols (until the registry lists m100) ---------------------------

LOCAL_PROTOCOLS = {"m100": m100.PROTOCOL, "r2000": r2000.PROTOCOL}


def test_own_vectors_decode_in_any_chunking() -> None:
    files = sorted((VECTORS / "m100").glob("*.hex"))
    assert len(files) >= 15
    for hex_file in files:
        data = bytes.fromhex(hex_file.read_text())
        expected = json.loads(hex_file.with_suffix(".json").read_text())
        for chunk in (len(data), 1, 5, 13):
            out, _ = feed_all(data, list(range(chunk, len(data), chunk)))
            assert [m100.record_to_dict(r) for r in out] == expected, (hex_file.stem, chunk)


@pytest.mark.parametrize(("mine", "other"), [("m100", "r2000"), ("r2000", "m100")])
def test_no_tags_in_the_other_protocols_vectors(mine: str, other: str) -> None:
    info = LOCAL_PROTOCOLS[mine]
    streams = [bytes.fromhex(p.read_text()) for p in sorted((VECTORS / other).glob("*.hex"))]
    assert streams
    for data in [*streams, b"".join(streams)]:
        assert [t for t in map(info.tags_of, info.decode_stream(data)) if t is not None] == []


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    frame: bytes
    record: m100.Record


ERROR_NAMES = {
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
GROUPS = {0xA: "read_error", 0xB: "write_error", 0xC: "lock_error", 0xD: "kill_error"}
GROUPS[0xE] = "block_permalock_error"
TAG_ERRORS = {
    0: "other_error",
    1: "not_supported",
    2: "insufficient_privileges",
    3: "memory_overrun",
    4: "memory_locked",
    11: "insufficient_power",
    15: "non_specific_error",
}


def error_name(code: int) -> str:
    if code in ERROR_NAMES:
        return ERROR_NAMES[code]
    if code >> 4 in GROUPS:
        low = code & 15
        return GROUPS[code >> 4] + ":" + TAG_ERRORS.get(low, f"0x{low:X}")
    return f"0x{code:02X}"


@st.composite
def tag_frames(draw: st.DrawFn) -> Built:
    rssi = draw(st.integers(0, 255))
    words = draw(st.integers(1, 31))
    epc = draw(st.binary(min_size=2 * words, max_size=2 * words))
    pc = words << 11 | draw(st.integers(0, 0x7FF))  # low PC bits carry flags
    crc = crc_ref(pc.to_bytes(2, "big") + epc)
    rec = TagNotice(rssi, rssi - 256 if rssi > 127 else rssi, pc, epc.hex().upper(), crc, True)
    return Built(build(2, 0x22, notice_payload(rssi, pc, epc)), rec)


@st.composite
def error_frames(draw: st.DrawFn) -> Built:
    code = draw(st.integers(0, 255))
    extra = draw(st.binary(max_size=20))
    return Built(build(1, 0xFF, bytes([code]) + extra), ErrorReply(code, error_name(code), extra))


@st.composite
def info_frames(draw: st.DrawFn) -> Built:
    kind = draw(st.integers(0, 255))
    text = draw(st.binary(max_size=30))
    return Built(build(1, 0x03, bytes([kind]) + text), ModuleInfo(kind, text))


@st.composite
def other_frames(draw: st.DrawFn) -> Built:
    ftype = draw(st.integers(0, 2))
    if ftype == 1:
        cmd = draw(st.integers(0, 255).filter(lambda c: c not in (0x03, 0xFF)))
    elif ftype == 2:
        cmd = draw(st.integers(0, 255).filter(lambda c: c != 0x22))
    else:
        cmd = draw(st.integers(0, 255))
    data = draw(st.binary(max_size=40))
    rec: m100.Record = (Command, Response, Notice)[ftype](cmd, data)
    return Built(build(ftype, cmd, data), rec)


valid_frames = st.one_of(tag_frames(), error_frames(), info_frames(), other_frames())
noisy_bytes = st.lists(
    st.one_of(st.sampled_from([0xBB, 0x7E, 0x00, 0x01, 0x02]), st.integers(0, 255)), max_size=60
).map(bytes)


def reencode(rec: m100.Record) -> bytes:
    """The frame a record came from, rebuilt from its fields by this test's builder."""
    if isinstance(rec, TagNotice):
        return build(2, 0x22, notice_payload(rec.rssi_raw, rec.pc, bytes.fromhex(rec.epc)))
    if isinstance(rec, ErrorReply):
        return build(1, 0xFF, bytes([rec.code]) + rec.data)
    if isinstance(rec, ModuleInfo):
        return build(1, 0x03, bytes([rec.kind]) + rec.data)
    ftype = {Command: 0, Response: 1, Notice: 2}[type(rec)]
    return build(ftype, rec.command, rec.data)


def span(item: Decoded) -> bytes:
    return item.data if isinstance(item, DecodeFailure) else reencode(item)


def good_frame_starts(data: bytes, start: int, stop: int) -> bool:
    """Whether any 0xBB in data[start:stop] starts a complete frame with good end and check."""
    for i in range(start, stop):
        if data[i] != 0xBB or i + 5 > len(data) or data[i + 1] > 2:
            continue
        pl = data[i + 3] * 256 + data[i + 4]
        end = i + pl + 7
        if (
            pl <= 1024
            and end <= len(data)
            and data[end - 1] == 0x7E
            and sum(data[i + 1 : end - 2]) % 256 == data[end - 2]
        ):
            return True
    return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    for candidate in (data, b"\xbb" + data, b"\xbb\x02\x22" + data):
        single = decode_frame(candidate)
        assert isinstance(
            single,
            TagNotice | ErrorReply | ModuleInfo | Response | Notice | Command | DecodeFailure,
        )
    for stream in (data, data.replace(b"\x00", b"\xbb")):
        out, dec = feed_all(stream, [c for c in cuts if c <= len(stream)])
        failures = [r for r in out if isinstance(r, DecodeFailure)]
        assert dec.counters["ok"] == len(out) - len(failures)
        for reason in m100.FAILURE_REASONS:
            assert dec.counters[reason] == sum(1 for f in failures if f.reason == reason)
        assert dec.pending == 0


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
    # on the wire too; exclude those.
    assume(not any(good_frame_starts(stream, a, b) for a, b in garbage_ranges))
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
