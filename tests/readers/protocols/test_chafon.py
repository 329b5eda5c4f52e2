"""Chafon protocol: encoders, decoder failures, layouts and property tests.

Frames for the property tests are built here from field values with this file's own CRC
(bit by bit), independently of the module under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import base, chafon
from tagtrail.readers.protocols.base import TagView
from tagtrail.readers.protocols.chafon import (
    Command,
    Decoded,
    DecodeFailure,
    InventoryStats,
    InventoryStatus,
    Layout,
    ReaderInfo,
    Reply,
    StreamDecoder,
    TagRead,
    decode_frame,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def crc(data: bytes) -> int:
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
    return c


def build(addr: int, cmd: int, status: int, data: bytes = b"") -> bytes:
    body = bytes([len(data) + 5, addr, cmd, status]) + data
    return body + crc(body).to_bytes(2, "little")


def build_cmd(addr: int, cmd: int, data: bytes = b"") -> bytes:
    body = bytes([len(data) + 4, addr, cmd]) + data
    return body + crc(body).to_bytes(2, "little")


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


def feed_all(
    data: bytes, cuts: list[int] | None = None, layout: Layout = "auto"
) -> tuple[list[Decoded], StreamDecoder]:
    dec = StreamDecoder(layout)
    out: list[Decoded] = []
    prev = 0
    for cut in sorted(cuts or []):
        out += dec.feed(data[prev:cut])
        prev = cut
    out += dec.feed(data[prev:])
    out += dec.flush()
    return out, dec


CHECKED = "15 00 01 03 01 01 0C 30 39 60 63 03 C7 43 80 00 1A 05 59 40 F9 3E"
CHECKED_TAG = TagRead(
    address=0,
    command=0x01,
    status=0x03,
    antenna_mask=0x01,
    antenna=1,
    index=0,
    count=1,
    epc="3039606303C74380001A0559",
    tid=None,
    rssi_raw=0x40,
)


# --- CRC and encoders --------------------------------------------------------------------


def test_checked_reply_arithmetic() -> None:
    frame = hx(CHECKED)
    # Len counts every byte after itself, CRC included
    assert frame[0] == len(frame) - 1 == 21
    # CRC-16/MCRF4XX over Len..Data, sent LSB first
    assert chafon.crc16(frame[:-2]) == crc(frame[:-2]) == 0x3EF9
    assert frame[-2:] == hx("F9 3E")


def test_crc_matches_the_bitwise_reference() -> None:
    for data in (b"", b"\x00", bytes(range(256)), b"123456789"):
        assert chafon.crc16(data) == crc(data)
    # the catalogued check value of CRC-16/MCRF4XX
    assert chafon.crc16(b"123456789") == 0x6F91


def test_published_command_frames() -> None:
    assert chafon.cmd_get_reader_info(0xFF) == hx("04 FF 21 19 95")
    assert chafon.cmd_get_reader_info(0x00) == hx("04 00 21 D9 6A")
    assert chafon.cmd_inventory_18(0xFF) == hx("04 FF 01 1B B4")
    assert chafon.cmd_inventory_18(0x00) == hx("04 00 01 DB 4B")
    assert chafon.cmd_single_inventory(0x00) == hx("04 00 0F A5 A2")
    assert chafon.cmd_set_scan_time(0x00, 0x14) == hx("05 00 25 14 58 66")
    assert chafon.cmd_set_scan_time(0x00, 0x32) == hx("05 00 25 32 6C 22")


def test_288_inventory_command_by_arithmetic() -> None:
    # Q=4, S0, MaskMem EPC, MaskAdr 0000, MaskLen 0, target A, Ant 0x80, ScanTime 0x14:
    # the data bytes integrators publish for antenna 1; CRC from this file's own loop.
    data = hx("04 00 01 00 00 00 00 80 14")
    assert chafon.cmd_inventory(0xFF, q=4, antenna=1, scan_time=0x14) == build_cmd(0xFF, 1, data)
    # Q=15, S1, target B, antenna 4, FastID and statistics: QValue 0x80|0x20|0x0F = 0xAF
    data = hx("AF 01 01 00 00 00 01 83 0A")
    assert chafon.cmd_inventory(
        0x00, q=15, session=1, target="B", antenna=4, scan_time=10, fast_id=True, statistics=True
    ) == build_cmd(0x00, 1, data)
    assert chafon.cmd_inventory(session=0xFF)[4] == 0xFF


@pytest.mark.parametrize(
    "call",
    [
        lambda: chafon.cmd_inventory(q=16),
        lambda: chafon.cmd_inventory(session=4),
        lambda: chafon.cmd_inventory(target="C"),
        lambda: chafon.cmd_inventory(antenna=0),
        lambda: chafon.cmd_inventory(antenna=9),
        lambda: chafon.cmd_inventory(scan_time=256),
        lambda: chafon.cmd_inventory(session=True),
        lambda: chafon.cmd_get_reader_info(256),
        lambda: chafon.cmd_inventory_18(-1),
        lambda: chafon.cmd_set_scan_time(0, 300),
        lambda: chafon.encode_command(0, 0x100),
        lambda: chafon.encode_command(0, 0x01, bytes(252)),
        lambda: chafon.encode_command(0, 0x01, "ab"),  # type: ignore[arg-type]
        lambda: StreamDecoder("19"),  # type: ignore[arg-type]
        lambda: decode_frame(b"", "x"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_protocol_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(ProtocolError):
        call()


def test_longest_command_frame() -> None:
    frame = chafon.encode_command(1, 0x40, bytes(range(251)))
    assert len(frame) == 256
    assert frame[0] == 255
    assert frame == build_cmd(1, 0x40, bytes(range(251)))


# --- decode_frame ------------------------------------------------------------------------


def test_decode_checked_reply() -> None:
    assert decode_frame(hx(CHECKED)) == [CHECKED_TAG]
    assert CHECKED_TAG.rssi_dbm is None
    assert chafon.tag_of(CHECKED_TAG) == TagView("3039606303C74380001A0559", 1, None)


def test_antenna_is_a_bit_mask() -> None:
    epc = hx("E2 00 68 06 00 00 00 00 00 00 12 34")
    for mask, antenna in [(1, 1), (2, 2), (4, 3), (8, 4), (0x40, 7), (0x80, 8), (3, None)]:
        [rec] = decode_frame(build(0, 1, 1, bytes([mask, 1, 12]) + epc + b"\x30"))
        assert isinstance(rec, TagRead)
        assert (rec.antenna_mask, rec.antenna) == (mask, antenna)


def test_multi_tag_frame_gives_one_record_per_tag() -> None:
    data = bytes([2, 3]) + b"\x02\x11\x22\x41" + b"\x04\xaa\xbb\xcc\xdd\x42" + b"\x02\x33\x44\x43"
    recs = decode_frame(build(7, 1, 3, data))
    assert [(r.index, r.count, r.epc, r.rssi_raw) for r in recs if isinstance(r, TagRead)] == [
        (0, 3, "1122", 0x41),
        (1, 3, "AABBCCDD", 0x42),
        (2, 3, "3344", 0x43),
    ]
    assert all(isinstance(r, TagRead) and r.address == 7 and r.antenna == 2 for r in recs)


def test_fastid_block_splits_epc_and_tid() -> None:
    epc = bytes(range(1, 13))
    tid = bytes(range(0xE0, 0xEC))
    [rec] = decode_frame(build(0, 1, 1, bytes([1, 1, 0x80 | 24]) + epc + tid + b"\x55"))
    assert isinstance(rec, TagRead)
    assert (rec.epc, rec.tid, rec.rssi_raw) == (epc.hex().upper(), tid.hex().upper(), 0x55)


def test_no_tag_frames() -> None:
    assert decode_frame(hx("07 00 01 01 01 00 1E 4B")) == [
        InventoryStatus(0, 1, 1, "inventory_finished", 1, 1)
    ]
    assert decode_frame(hx("05 00 01 FB F2 3D")) == [Reply(0, 1, 0xFB, "no_tag", False, b"")]
    # UHFReader18 Num 0
    assert decode_frame(build(0, 1, 1, b"\x00")) == [
        InventoryStatus(0, 1, 1, "inventory_finished", None, None)
    ]


def test_statistics_and_reader_info() -> None:
    assert decode_frame(build(0, 1, 0x26, hx("04 01 02 00 01 02 03"))) == [
        InventoryStats(0, 1, 4, 3, 0x0102, 0x00010203)
    ]
    [info] = decode_frame(hx("11 00 21 00 00 16 0C 03 4E 00 1E 0A 01 00 00 00 E6 51"))
    assert info == ReaderInfo(0, 0, 22, 0x0C, 0x03, 4, 14, 0, 30, 10, hx("01 00 00 00"))
    assert isinstance(info, ReaderInfo)
    assert info.firmware == "0.22"


def test_realtime_tag_and_heartbeat() -> None:
    epc = hx("30 08 33 B2 DD D9 01 40 00 00 00 01")
    [rec] = decode_frame(build(3, 0xEE, 0, bytes([8, 12]) + epc + b"\x61"))
    assert rec == TagRead(3, 0xEE, 0, 8, 4, 0, 1, epc.hex().upper(), None, 0x61)
    hb = bytes(16)
    assert decode_frame(build(3, 0xEE, 0x28, hb)) == [Reply(3, 0xEE, 0x28, "heartbeat", True, hb)]


def test_len_4_frame_is_a_command() -> None:
    assert decode_frame(hx("04 FF 21 19 95")) == [Command(0xFF, 0x21)]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "garbage"),
        (hx("02 00 01 03"), "garbage"),  # Len 2
        (hx("15 00 80 03 01"), "garbage"),  # Cmd 0x80 is no command
        (hx("15 00 01 30 01"), "garbage"),  # status 0x30 is not in the table
        (hx("15 00"), "length"),
        (hx(CHECKED)[:-1], "length"),  # one byte short
        (hx(CHECKED) + b"\x00", "length"),  # one byte long
        (hx(CHECKED)[:-1] + b"\x3f", "checksum"),
        (hx(CHECKED)[:-3] + b"\x41" + hx(CHECKED)[-2:], "checksum"),
        # good CRC, impossible content
        (build(0, 1, 1, hx("00 01 02 AA BB 40")), "sanity"),  # Ant 0
        (build(0, 1, 1, hx("01 02 02 AA BB 40")), "sanity"),  # Num 2, one block
        (build(0, 1, 1, hx("01 01 03 AA BB CC 40")), "sanity"),  # odd EPC
        (build(0, 1, 1, hx("01 01 00 40")), "sanity"),  # zero-length EPC
        (build(0, 1, 1, hx("01 01 02 AA BB 40 00")), "sanity"),  # a byte too many
        (build(0, 1, 1, hx("01 01 8B") + bytes(11) + b"\x40"), "sanity"),  # FastID too short
        (build(0, 1, 1, bytes([1, 1, 64]) + bytes(64) + b"\x40"), "sanity"),  # 64-byte EPC
        (build(0, 1, 0x26, hx("01 00 05 00 00 00")), "length"),  # statistics, 6 bytes
        (build(0, 0x21, 0, hx("01 02 09 03 3E 00 1E")), "length"),  # reader info, 7 bytes
    ],
)
def test_decode_frame_failures(frame: bytes, reason: str) -> None:
    [rec] = decode_frame(frame)
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == reason


def test_record_to_dict_shapes() -> None:
    assert chafon.record_to_dict(CHECKED_TAG) == {
        "type": "tag",
        "address": 0,
        "command": "0x01",
        "status": "0x03",
        "antenna_mask": 1,
        "antenna": 1,
        "index": 0,
        "count": 1,
        "epc": "3039606303C74380001A0559",
        "tid": None,
        "rssi_raw": 64,
        "rssi_dbm": None,
    }
    assert chafon.record_to_dict(Command(0, 0x21)) == {
        "type": "command",
        "address": 0,
        "command": "0x21",
    }
    assert chafon.record_to_dict(DecodeFailure("checksum", b"\x15\x00")) == {
        "type": "invalid",
        "reason": "checksum",
        "data": "1500",
    }
    assert chafon.tag_of(Reply(0, 1, 0xFB, "no_tag", False, b"")) is None


# --- layouts -----------------------------------------------------------------------------


def test_layouts_for_a_uhfreader18_frame() -> None:
    frame = hx("13 00 01 03 01 0C 00 00 00 00 00 00 00 00 00 00 03 13 3F 39")
    tag18 = TagRead(0, 1, 3, None, None, 0, 1, "000000000000000000000313", None, None)
    assert decode_frame(frame) == [tag18]
    assert decode_frame(frame, "18") == [tag18]
    [rec] = decode_frame(frame, "288")
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == "sanity"


def test_layouts_for_a_uhfreader288_frame() -> None:
    assert decode_frame(hx(CHECKED), "288") == [CHECKED_TAG]
    [rec] = decode_frame(hx(CHECKED), "18")
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == "sanity"
    # real-time frames are a 288 feature: the 18 layout keeps them raw
    frame = build(0, 0xEE, 0, hx("01 02 AA BB 40"))
    assert decode_frame(frame, "18") == [Reply(0, 0xEE, 0, "success", True, hx("01 02 AA BB 40"))]
    bad = build(0, 0xEE, 0, hx("01 04 AA BB 40"))
    assert isinstance(decode_frame(bad)[0], Reply)
    [rec] = decode_frame(bad, "288")
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == "sanity"


def test_auto_prefers_288_when_both_layouts_parse() -> None:
    # 288: Ant 3, Num 2, [4: E0 02 E2 E3] RSSI 04, [2: F0 F1] RSSI 07
    # 18:  Num 3, [2: 04 E0], [2: E2 E3], [4: 02 F0 F1 07]
    data = bytes([3, 2, 4, 0xE0, 2, 0xE2, 0xE3, 4, 2, 0xF0, 0xF1, 0x07])
    frame = build(0, 1, 1, data)
    auto = decode_frame(frame)
    assert [(r.antenna_mask, r.epc, r.rssi_raw) for r in auto if isinstance(r, TagRead)] == [
        (3, "E002E2E3", 4),
        (3, "F0F1", 7),
    ]
    assert decode_frame(frame, "288") == auto
    as18 = decode_frame(frame, "18")
    assert [r.epc for r in as18 if isinstance(r, TagRead)] == ["04E0", "E2E3", "02F0F107"]


# --- StreamDecoder -----------------------------------------------------------------------


def test_stream_counts_and_resyncs() -> None:
    bad = hx(CHECKED)[:-1] + b"\x00"
    data = hx("00 01") + hx(CHECKED) + bad + hx("02") + hx(CHECKED) + hx("15 00 01 03 01")
    out, dec = feed_all(data)
    assert out == [
        DecodeFailure("garbage", hx("00 01")),
        CHECKED_TAG,
        DecodeFailure("checksum", bad),
        DecodeFailure("garbage", hx("02")),
        CHECKED_TAG,
        DecodeFailure("truncated", hx("15 00 01 03 01")),
    ]
    assert dec.counters == {
        "ok": 2,
        "length": 0,
        "checksum": 1,
        "sanity": 0,
        "garbage": 2,
        "truncated": 1,
    }


def test_ok_counts_frames_not_tags() -> None:
    data = bytes([1, 2]) + b"\x02\x11\x22\x41" + b"\x02\x33\x44\x42"
    out, dec = feed_all(build(0, 1, 1, data) * 3)
    assert len(out) == 6
    assert dec.counters["ok"] == 3


def test_frame_inside_an_incomplete_frame_does_not_end_it() -> None:
    # The EPC holds a complete good frame (05 00 01 FB F2 3D); delivered in two chunks cut
    # right after it, the outer frame must wait and then decode whole.
    epc = hx("05 00 01 FB F2 3D 00 11 22 33 44 55")
    frame = build(0, 1, 1, bytes([1, 1, 12]) + epc + b"\x50")
    dec = StreamDecoder()
    cut = 7 + 6
    assert dec.feed(frame[:cut]) == []
    assert dec.pending == cut
    [rec] = dec.feed(frame[cut:])
    assert isinstance(rec, TagRead)
    assert rec.epc == epc.hex().upper()
    assert dec.pending == 0
    assert dec.flush() == []


def test_false_header_hides_frame() -> None:
    out, _ = feed_all(hx("30 00 01 03") + hx(CHECKED))
    assert out == [DecodeFailure("truncated", hx("30 00 01 03")), CHECKED_TAG]


def test_false_header_holds_a_frame_until_flush() -> None:
    # A long false header before the end of a reply: the frame inside its span cannot be
    # told from the false frame's data until the span completes or the input ends.
    dec = StreamDecoder()
    assert dec.feed(hx("FF 00 01 01") + hx(CHECKED)) == []
    assert dec.pending == 4 + 22
    assert dec.flush() == [DecodeFailure("truncated", hx("FF 00 01 01")), CHECKED_TAG]


def test_garbage_run_across_feeds_is_one_failure() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx("00 01")) == []
    assert dec.feed(hx("02 03 00")) == []
    assert dec.pending == 5
    out = dec.feed(hx(CHECKED))
    assert out == [DecodeFailure("garbage", hx("00 01 02 03 00")), CHECKED_TAG]
    assert dec.counters["garbage"] == 1


def test_long_garbage_run_keeps_bounded_data() -> None:
    dec = StreamDecoder()
    for _ in range(100):
        dec.feed(bytes(100))  # Len 0 everywhere: never a header
    [fail] = dec.flush()
    assert isinstance(fail, DecodeFailure)
    assert fail.reason == "garbage"
    assert fail.data == bytes(base.MAX_FAILURE_DATA)


def test_short_tail_at_end_of_input() -> None:
    assert feed_all(hx(CHECKED) + hx("15 00 01"))[0] == [
        CHECKED_TAG,
        DecodeFailure("garbage", hx("15 00 01")),
    ]
    assert feed_all(hx(CHECKED) + hx("04 00 21"))[0] == [
        CHECKED_TAG,
        DecodeFailure("truncated", hx("04 00 21")),
    ]


def test_flush_resets_and_decoder_is_reusable() -> None:
    dec = StreamDecoder()
    assert dec.feed(hx(CHECKED)[:10]) == []
    assert dec.flush() == [DecodeFailure("truncated", hx(CHECKED)[:10])]
    assert dec.pending == 0
    assert dec.flush() == []
    assert dec.feed(hx(CHECKED)) == [CHECKED_TAG]


def test_decode_stream_is_feed_plus_flush() -> None:
    data = hx("00") + hx(CHECKED) + hx(CHECKED)[:7]
    assert chafon.decode_stream(data) == feed_all(data)[0]


# --- vectors (also run through the registry by tests/readers/test_vectors.py) ------------

CHAFON_VECTORS = sorted((VECTORS / "chafon").glob("*.hex"))


@pytest.mark.parametrize("hex_file", CHAFON_VECTORS, ids=lambda p: p.stem)
def test_vector_in_any_chunking(hex_file: Path) -> None:
    data = bytes.fromhex(hex_file.read_text(encoding="utf-8"))
    expected = json.loads(hex_file.with_suffix(".json").read_text(encoding="utf-8"))
    for chunk in (len(data) or 1, 1, 3, 22):
        out, _ = feed_all(data, list(range(chunk, len(data), chunk)))
        assert [chafon.record_to_dict(r) for r in out] == expected


def test_vectors_exist() -> None:
    assert len(CHAFON_VECTORS) >= 15


def test_strict_layouts_agree_with_auto_on_their_vectors() -> None:
    strict: list[tuple[str, Layout]] = [
        ("layout18", "18"),
        ("epc_lengths", "288"),
        ("multi_tag", "288"),
    ]
    for name, layout in strict:
        data = bytes.fromhex((VECTORS / "chafon" / f"{name}.hex").read_text())
        assert feed_all(data, layout=layout)[0] == feed_all(data)[0]


def test_no_tags_in_other_protocols_vectors() -> None:
    foreign = [p for p in sorted(VECTORS.glob("*/*.hex")) if p.parent.name != "chafon"]
    assert foreign, "the other protocols' vectors are there"
    joined = b""
    for path in foreign:
        data = bytes.fromhex(path.read_text())
        joined += data
        for layout in chafon.LAYOUTS:
            assert [r for r in chafon.decode_stream(data, layout) if chafon.tag_of(r)] == []
    assert [r for r in chafon.decode_stream(joined) if chafon.tag_of(r)] == []


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    frame: bytes
    records: tuple[chafon.Record, ...]


def ant_of(mask: int) -> int | None:
    return mask.bit_length() if mask and not mask & (mask - 1) else None


epcs = st.integers(1, 31).flatmap(lambda w: st.binary(min_size=2 * w, max_size=2 * w))
tids = st.binary(min_size=12, max_size=12)
tag_statuses = st.sampled_from([1, 2, 3, 4])
inventory_cmds = st.sampled_from([0x01, 0x0F, 0x1A, 0x1B])


@st.composite
def inventory_288(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(inventory_cmds)
    status = draw(tag_statuses)
    mask = draw(st.integers(1, 255))
    tags = draw(
        st.lists(st.tuples(epcs, st.integers(0, 255), st.none() | tids), min_size=0, max_size=3)
    )
    data = bytes([mask, len(tags)])
    recs: list[chafon.Record] = []
    for k, (epc, rssi, tid) in enumerate(tags):
        if tid is None:
            data += bytes([len(epc)]) + epc + bytes([rssi])
        else:
            data += bytes([0x80 | (len(epc) + 12)]) + epc + tid + bytes([rssi])
        recs.append(
            TagRead(
                addr,
                cmd,
                status,
                mask,
                ant_of(mask),
                k,
                len(tags),
                epc.hex().upper(),
                tid.hex().upper() if tid is not None else None,
                rssi,
            )
        )
    if not tags:
        recs.append(
            InventoryStatus(addr, cmd, status, chafon.STATUS_NAMES[status], mask, ant_of(mask))
        )
    assume(len(data) <= 250)
    return Built(build(addr, cmd, status, data), tuple(recs))


@st.composite
def inventory_18(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(inventory_cmds)
    status = draw(tag_statuses)
    tags = draw(st.lists(epcs, min_size=0, max_size=3))
    data = bytes([len(tags)])
    recs: list[chafon.Record] = []
    for k, epc in enumerate(tags):
        data += bytes([len(epc)]) + epc
        recs.append(
            TagRead(addr, cmd, status, None, None, k, len(tags), epc.hex().upper(), None, None)
        )
    if not tags:
        recs.append(InventoryStatus(addr, cmd, status, chafon.STATUS_NAMES[status], None, None))
    return Built(build(addr, cmd, status, data), tuple(recs))


@st.composite
def realtime(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    mask = draw(st.integers(1, 255))
    epc = draw(epcs)
    rssi = draw(st.integers(0, 255))
    data = bytes([mask, len(epc)]) + epc + bytes([rssi])
    rec = TagRead(addr, 0xEE, 0, mask, ant_of(mask), 0, 1, epc.hex().upper(), None, rssi)
    return Built(build(addr, 0xEE, 0, data), (rec,))


@st.composite
def stats(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(inventory_cmds)
    mask = draw(st.integers(0, 255))
    rate = draw(st.integers(0, 0xFFFF))
    total = draw(st.integers(0, 0xFFFFFFFF))
    data = bytes([mask]) + rate.to_bytes(2, "big") + total.to_bytes(4, "big")
    rec = InventoryStats(addr, cmd, mask, ant_of(mask), rate, total)
    return Built(build(addr, cmd, 0x26, data), (rec,))


@st.composite
def reader_info(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    fields = draw(st.binary(min_size=8, max_size=8))
    extra = draw(st.binary(max_size=8))
    mx, mn = fields[4], fields[5]
    rec = ReaderInfo(
        addr,
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        (mx >> 6) << 2 | mn >> 6,
        mx & 0x3F,
        mn & 0x3F,
        fields[6],
        fields[7],
        extra,
    )
    return Built(build(addr, 0x21, 0, fields + extra), (rec,))


def is_special(cmd: int, status: int) -> bool:
    if cmd in (0x01, 0x0F, 0x1A, 0x1B):
        return status in (1, 2, 3, 4, 0x26)
    return (cmd, status) in ((0x21, 0), (0xEE, 0))


@st.composite
def replies(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(st.sampled_from([*range(1, 0x80), 0xEE]))
    status = draw(st.sampled_from(sorted(chafon.STATUS_NAMES)))
    assume(not is_special(cmd, status))
    data = draw(st.binary(max_size=40))
    rec = Reply(addr, cmd, status, chafon.STATUS_NAMES[status], status in chafon.OK_STATUSES, data)
    return Built(build(addr, cmd, status, data), (rec,))


@st.composite
def commands(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(st.sampled_from([*range(1, 0x80), 0xEE]))
    return Built(build_cmd(addr, cmd), (Command(addr, cmd),))


common = st.one_of(stats(), reader_info(), replies(), commands())
FRAMES: dict[str, st.SearchStrategy[Built]] = {
    "auto": st.one_of(inventory_288(), realtime(), common),
    "288": st.one_of(inventory_288(), realtime(), common),
    "18": st.one_of(inventory_18(), common),
}
noisy_bytes = st.lists(
    st.one_of(st.sampled_from([0x00, 0x01, 0x03, 0x15, 0xFF]), st.integers(0, 255)), max_size=60
).map(bytes)


def reencode(recs: list[chafon.Record]) -> bytes:
    """The frame some records came from, rebuilt from their fields by this file's builder."""
    first = recs[0]
    if isinstance(first, Command):
        return build_cmd(first.address, first.command)
    if isinstance(first, TagRead):
        if first.command == 0xEE:
            return build(first.address, 0xEE, 0, realtime_data(first))
        data = b"" if first.antenna_mask is None else bytes([first.antenna_mask])
        data += bytes([len(recs)])
        for r in recs:
            assert isinstance(r, TagRead)
            epc = bytes.fromhex(r.epc)
            if r.antenna_mask is None:
                data += bytes([len(epc)]) + epc
            elif r.tid is None:
                data += bytes([len(epc)]) + epc + bytes([r.rssi_raw or 0])
            else:
                tid = bytes.fromhex(r.tid)
                data += bytes([0x80 | (len(epc) + 12)]) + epc + tid + bytes([r.rssi_raw or 0])
        return build(first.address, first.command, first.status, data)
    if isinstance(first, InventoryStatus):
        data = b"" if first.antenna_mask is None else bytes([first.antenna_mask])
        return build(first.address, first.command, first.status, data + b"\x00")
    if isinstance(first, InventoryStats):
        data = (
            bytes([first.antenna_mask])
            + first.read_rate.to_bytes(2, "big")
            + first.total_count.to_bytes(4, "big")
        )
        return build(first.address, first.command, 0x26, data)
    if isinstance(first, ReaderInfo):
        f = first
        data = bytes(
            [
                f.version_major,
                f.version_minor,
                f.reader_type,
                f.protocols,
                (f.band >> 2) << 6 | f.max_freq,
                (f.band & 3) << 6 | f.min_freq,
                f.power_dbm,
                f.scan_time,
            ]
        )
        return build(f.address, 0x21, 0, data + f.extra)
    assert isinstance(first, Reply)
    return build(first.address, first.command, first.status, first.data)


def realtime_data(r: TagRead) -> bytes:
    epc = bytes.fromhex(r.epc)
    assert r.antenna_mask is not None
    return bytes([r.antenna_mask, len(epc)]) + epc + bytes([r.rssi_raw or 0])


def spans(out: list[Decoded]) -> bytes:
    """Every byte of the input, rebuilt from the output in order."""
    res = b""
    i = 0
    while i < len(out):
        item = out[i]
        if isinstance(item, DecodeFailure):
            res += item.data
            i += 1
            continue
        n = item.count if isinstance(item, TagRead) else 1
        recs = [r for r in out[i : i + n] if not isinstance(r, DecodeFailure)]
        res += reencode(recs)
        i += n
    return res


def good_frame_starts(data: bytes, start: int, stop: int) -> bool:
    """Whether a position in data[start:stop] starts a complete frame with a good CRC."""
    for i in range(start, stop):
        end = i + data[i] + 1
        if (
            data[i] >= 4
            and end <= len(data)
            and crc(data[i : end - 2]) == int.from_bytes(data[end - 2 : end], "little")
        ):
            return True
    return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    for layout in chafon.LAYOUTS:
        single = decode_frame(data, layout)
        assert single
        kinds = TagRead | InventoryStatus | InventoryStats | ReaderInfo | Reply | Command
        assert all(isinstance(r, kinds | DecodeFailure) for r in single)
    out, dec = feed_all(data, [c for c in cuts if c <= len(data)])
    failures = [r for r in out if isinstance(r, DecodeFailure)]
    for reason in chafon.FAILURE_REASONS:
        assert dec.counters[reason] == sum(1 for f in failures if f.reason == reason)
    assert dec.counters["ok"] <= len(out) - len(failures)
    assert dec.pending == 0
    # random bytes hold no tag (a tag needs a 1-in-65536 CRC on top of an exact layout)
    assert [r for r in out if chafon.tag_of(r)] == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    layout=st.sampled_from(chafon.LAYOUTS),
    data=st.data(),
    tail=noisy_bytes,
)
def test_valid_frames_in_garbage_are_found(
    layout: Layout, data: st.DataObject, tail: bytes
) -> None:
    items = data.draw(st.lists(st.tuples(noisy_bytes, FRAMES[layout]), min_size=1, max_size=6))
    stream = b""
    garbage_ranges: list[tuple[int, int]] = []
    for garbage, built in items:
        garbage_ranges.append((len(stream), len(stream) + len(garbage)))
        stream += garbage + built.frame
    garbage_ranges.append((len(stream), len(stream) + len(tail)))
    stream += tail
    # A position in the garbage that by chance starts a good frame would be a real frame
    # on the wire too; exclude those (about 1 in 65536 per position).
    assume(not any(good_frame_starts(stream, a, b) for a, b in garbage_ranges))
    out, _ = feed_all(stream, layout=layout)
    expected = [r for _, b in items for r in b.records]
    assert [r for r in out if not isinstance(r, DecodeFailure)] == expected
    # every byte is accounted for exactly once, in order
    assert spans(out) == stream


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(noisy_bytes, FRAMES["auto"].map(lambda b: b.frame)), max_size=10),
    cuts=st.lists(st.integers(0, 3000), max_size=30),
)
def test_chunking_does_not_change_output(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    whole, whole_dec = feed_all(stream)
    chunked, chunked_dec = feed_all(stream, [c for c in cuts if c <= len(stream)])
    assert chunked == whole
    assert chunked_dec.counters == whole_dec.counters
    one_by_one, _ = feed_all(stream, list(range(len(stream))))
    assert one_by_one == whole
