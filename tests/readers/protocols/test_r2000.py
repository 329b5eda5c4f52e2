"""R2000 protocol: encoders, decoder failures and property tests.

Frames for the property tests are built here from field values with this file's own
checksum, independently of the module under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import base, r2000
from tagtrail.readers.protocols.r2000 import (
    Decoded,
    DecodeFailure,
    Reply,
    ResultCode,
    RoundEnd,
    StreamDecoder,
    TagRecord,
    decode_frame,
)


def build(addr: int, cmd: int, data: bytes) -> bytes:
    body = bytes([0xA0, len(data) + 3, addr, cmd]) + data
    return body + bytes([(256 - sum(body) % 256) % 256])


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


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


TAG_HEX = "A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF"
TAG = TagRecord(
    address=1,
    command=0x89,
    antenna=1,
    freq_index=1,
    pc=0x3000,
    epc="E200301666130121155074EF",
    rssi_raw=0x45,
    rssi_dbm=-60,
)


# --- encoders ----------------------------------------------------------------------------


def test_checked_command_frames() -> None:
    assert r2000.cmd_realtime_inventory(1, 1) == hx("A0 04 01 89 01 D1")
    assert r2000.cmd_get_firmware(1) == hx("A0 03 01 72 EA")
    assert r2000.cmd_set_work_antenna(1, 1) == hx("A0 04 01 74 00 E7")
    assert r2000.cmd_session_inventory(1, 1, "A", 1) == hx("A0 06 01 8B 01 00 01 CC")
    assert r2000.cmd_reset(1) == hx("A0 03 01 70 EC")


def test_encoders_by_arithmetic() -> None:
    # antenna 4 is id 3 on the wire: 0xA0+0x04+0x02+0x74+0x03 = 0x11D -> check 0xE3
    assert r2000.cmd_set_work_antenna(2, 4) == hx("A0 04 02 74 03 E3")
    # session S3, target B, repeat 255 at address 0xFF:
    # 0xA0+0x06+0xFF+0x8B+0x03+0x01+0xFF = 0x333 -> check 0xCD
    assert r2000.cmd_session_inventory(0xFF, 3, "B", 255) == hx("A0 06 FF 8B 03 01 FF CD")
    frame = r2000.encode_command(1, 0x40, bytes(range(252)))
    assert len(frame) == 257
    assert frame[1] == 255
    assert sum(frame) % 256 == 0
    assert r2000.checksum(hx("A0 03 01 72")) == 0xEA


@pytest.mark.parametrize(
    "call",
    [
        lambda: r2000.cmd_set_work_antenna(1, 0),
        lambda: r2000.cmd_set_work_antenna(1, 5),
        lambda: r2000.cmd_realtime_inventory(1, 0),
        lambda: r2000.cmd_realtime_inventory(1, 256),
        lambda: r2000.cmd_session_inventory(1, 4, "A", 1),
        lambda: r2000.cmd_session_inventory(1, 0, "C", 1),
        lambda: r2000.cmd_session_inventory(1, 0, "A", 0),
        lambda: r2000.cmd_get_firmware(256),
        lambda: r2000.cmd_reset(-1),
        lambda: r2000.cmd_reset(True),
        lambda: r2000.encode_command(1, 0x100),
        lambda: r2000.encode_command(1, 0x72, bytes(253)),
    ],
)
def test_bad_arguments_raise_protocol_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(ProtocolError):
        call()


# --- decode_frame ------------------------------------------------------------------------


def test_decode_checked_replies() -> None:
    fw = decode_frame(hx("A0 05 01 72 01 09 DE"))
    assert isinstance(fw, Reply)
    assert fw.data == b"\x01\x09"
    assert fw.firmware() == "1.9"
    assert decode_frame(hx("A0 04 01 74 10 D7")) == ResultCode(
        address=1, command=0x74, code=0x10, name="command_success", ok=True
    )
    assert decode_frame(hx(TAG_HEX)) == TAG


def test_result_codes_named() -> None:
    missing = decode_frame(build(1, 0x74, b"\x22"))
    assert missing == ResultCode(1, 0x74, 0x22, "antenna_missing_error", False)
    no_tag = decode_frame(build(1, 0x89, b"\x36"))
    assert isinstance(no_tag, ResultCode)
    assert no_tag.name == "no_tag_error"
    unknown = decode_frame(build(1, 0x89, b"\x5a"))
    assert isinstance(unknown, ResultCode)
    assert unknown.name == "0x5A"
    assert not unknown.ok


def test_round_end_fields() -> None:
    # antenna id 2 -> antenna 3; rate 0x0102 = 258; total 0x00010203 = 66051
    rec = decode_frame(build(1, 0x89, hx("02 01 02 00 01 02 03")))
    assert rec == RoundEnd(address=1, command=0x89, antenna=3, read_rate=258, total_reads=66051)


def test_value_getter_is_a_reply_not_a_result() -> None:
    rec = decode_frame(build(1, 0x75, b"\x02"))
    assert rec == Reply(1, 0x75, b"\x02")
    assert rec.firmware() is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "garbage"),
        (hx("01 02 03"), "garbage"),
        (hx("A0"), "length"),
        (hx("A0 01 01"), "sanity"),
        (hx("A0 05 01 72 01 09"), "length"),  # one byte short
        (hx("A0 05 01 72 01 09 DE 00"), "length"),  # one byte long
        (hx("A0 05 01 72 01 09 DF"), "checksum"),
        (hx(TAG_HEX)[:-1] + b"\xbe", "checksum"),
        # good check, PC says 4 words but Len says 6
        (build(1, 0x89, hx("00 20 00") + bytes(12) + b"\x40"), "sanity"),
        # zero-word EPC
        (build(1, 0x89, hx("00 00 00 40")), "sanity"),
        # round end with antenna id 4
        (build(1, 0x89, hx("04 00 01 00 00 00 01")), "sanity"),
        (build(1, 0x89, hx("01 02 03")), "length"),
        (build(1, 0x8B, hx("01 02")), "length"),
    ],
)
def test_decode_frame_failures(frame: bytes, reason: str) -> None:
    rec = decode_frame(frame)
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == reason


def test_record_to_dict_shapes() -> None:
    assert r2000.record_to_dict(TAG) == {
        "type": "tag",
        "address": 1,
        "command": "0x89",
        "antenna": 1,
        "freq_index": 1,
        "pc": "3000",
        "epc": "E200301666130121155074EF",
        "rssi_raw": 69,
        "rssi_dbm": -60,
    }
    assert r2000.record_to_dict(DecodeFailure("checksum", b"\xa0\x03")) == {
        "type": "invalid",
        "reason": "checksum",
        "data": "A003",
    }
    assert r2000.record_to_dict(Reply(1, 0x72, b"\x02\x0c"))["firmware"] == "2.12"


# --- StreamDecoder -----------------------------------------------------------------------


def test_stream_counts_and_resyncs() -> None:
    bad = hx(TAG_HEX)[:-1] + b"\x00"
    data = hx("11 22") + hx(TAG_HEX) + bad + hx("33") + hx(TAG_HEX) + hx("A0 13 01 89")
    out, dec = feed_all(data)
    assert out == [
        DecodeFailure("garbage", hx("11 22")),
        TAG,
        DecodeFailure("checksum", bad),
        DecodeFailure("garbage", hx("33")),
        TAG,
        DecodeFailure("truncated", hx("A0 13 01 89")),
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
    # The EPC holds a complete good frame (A0 03 01 72 EA); delivered in two chunks cut
    # right after it, the outer frame must wait and then decode whole.
    epc = hx("A0 03 01 72 EA 00 11 22 33 44 55 66")
    frame = build(1, 0x89, hx("00 30 00") + epc + b"\x50")
    dec = StreamDecoder()
    cut = 7 + 5
    assert dec.feed(frame[:cut]) == []
    assert dec.pending == cut
    [rec] = dec.feed(frame[cut:])
    assert isinstance(rec, TagRecord)
    assert rec.epc == epc.hex().upper()
    assert dec.pending == 0
    assert dec.flush() == []


def test_truncated_frame_then_good_frame() -> None:
    cut = hx(TAG_HEX)[:8]
    out, dec = feed_all(cut + hx(TAG_HEX))
    assert out == [DecodeFailure("truncated", cut), TAG]
    assert dec.counters["truncated"] == 1
    assert dec.counters["ok"] == 1


def test_false_header_hides_frame() -> None:
    out, _ = feed_all(hx("A0 13 01") + hx(TAG_HEX))
    assert out == [DecodeFailure("truncated", hx("A0 13 01")), TAG]


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


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    frame: bytes
    record: r2000.Record


@st.composite
def tag_frames(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(st.sampled_from([0x89, 0x8B]))
    antenna = draw(st.integers(1, 4))
    freq = draw(st.integers(0, 63))
    words = draw(st.integers(1, 31))
    epc = draw(st.binary(min_size=2 * words, max_size=2 * words))
    rssi = draw(st.integers(0, 255))
    pc = words << 11 | draw(st.integers(0, 0x7FF))  # low PC bits carry other flags
    data = bytes([freq << 2 | (antenna - 1), pc >> 8, pc & 0xFF]) + epc + bytes([rssi])
    rec = TagRecord(addr, cmd, antenna, freq, pc, epc.hex().upper(), rssi, rssi - 129)
    return Built(build(addr, cmd, data), rec)


@st.composite
def round_end_frames(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(st.sampled_from([0x89, 0x8B]))
    antenna = draw(st.integers(1, 4))
    rate = draw(st.integers(0, 0xFFFF))
    total = draw(st.integers(0, 0xFFFFFFFF))
    data = bytes([antenna - 1]) + rate.to_bytes(2, "big") + total.to_bytes(4, "big")
    return Built(build(addr, cmd, data), RoundEnd(addr, cmd, antenna, rate, total))


@st.composite
def result_frames(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(st.integers(0, 255).filter(lambda c: c not in (0x75, 0x77)))
    code = draw(st.integers(0, 255))
    name = r2000.RESULT_CODES.get(code) or f"0x{code:02X}"
    return Built(build(addr, cmd, bytes([code])), ResultCode(addr, cmd, code, name, code == 0x10))


@st.composite
def reply_frames(draw: st.DrawFn) -> Built:
    addr = draw(st.integers(0, 255))
    cmd = draw(st.integers(0, 255).filter(lambda c: c not in (0x89, 0x8B)))
    if cmd in (0x75, 0x77):
        data = draw(st.binary(max_size=40))
    else:
        data = draw(st.binary(max_size=40).filter(lambda d: len(d) != 1))
    return Built(build(addr, cmd, data), Reply(addr, cmd, data))


valid_frames = st.one_of(tag_frames(), round_end_frames(), result_frames(), reply_frames())
noisy_bytes = st.lists(st.one_of(st.just(0xA0), st.integers(0, 255)), max_size=60).map(bytes)


def reencode(rec: r2000.Record) -> bytes:
    """The frame a record came from, rebuilt from its fields by this test's builder."""
    if isinstance(rec, TagRecord):
        epc = bytes.fromhex(rec.epc)
        head = bytes([rec.freq_index << 2 | (rec.antenna - 1), rec.pc >> 8, rec.pc & 0xFF])
        return build(rec.address, rec.command, head + epc + bytes([rec.rssi_raw]))
    if isinstance(rec, RoundEnd):
        data = (
            bytes([rec.antenna - 1])
            + rec.read_rate.to_bytes(2, "big")
            + rec.total_reads.to_bytes(4, "big")
        )
        return build(rec.address, rec.command, data)
    if isinstance(rec, ResultCode):
        return build(rec.address, rec.command, bytes([rec.code]))
    return build(rec.address, rec.command, rec.data)


def span(item: Decoded) -> bytes:
    return item.data if isinstance(item, DecodeFailure) else reencode(item)


def good_span_starts(data: bytes, start: int, stop: int) -> bool:
    """Whether any 0xA0 in data[start:stop] starts a complete frame with a good check."""
    for i in range(start, stop):
        if data[i] == 0xA0 and i + 1 < len(data) and data[i + 1] >= 3:
            end = i + data[i + 1] + 2
            if end <= len(data) and sum(data[i:end]) % 256 == 0:
                return True
    return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    single = decode_frame(data)
    assert isinstance(single, TagRecord | RoundEnd | ResultCode | Reply | DecodeFailure)
    out, dec = feed_all(data, [c for c in cuts if c <= len(data)])
    failures = [r for r in out if isinstance(r, DecodeFailure)]
    assert dec.counters["ok"] == len(out) - len(failures)
    for reason in r2000.FAILURE_REASONS:
        assert dec.counters[reason] == sum(1 for f in failures if f.reason == reason)


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
    # on the wire too; exclude those (1 in 256 per header).
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
