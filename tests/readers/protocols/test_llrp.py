"""LLRP protocol: encoders against llrpkit's bytes, decoder failures and property tests.

Messages for the property tests are built here with ``struct`` from field values,
independently of the module under test; the client messages are compared with what
llrpkit (MIT, a dev dependency) encodes for the same fields.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llrpkit.protocol import decode_message as llrpkit_decode

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import llrp
from tagtrail.readers.protocols.base import DecodeFailure, TagView
from tagtrail.readers.protocols.llrp import (
    Decoded,
    Keepalive,
    Message,
    ReaderEvent,
    Response,
    RoSpecSettings,
    Status,
    StreamDecoder,
    TagReport,
)
from tagtrail.readers.registry import PROTOCOLS

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "llrp"


def build(msg_type: int, mid: int, body: bytes = b"", version: int = 1) -> bytes:
    return struct.pack(">HII", version << 10 | msg_type, 10 + len(body), mid) + body


def tlv(ptype: int, body: bytes) -> bytes:
    return struct.pack(">HH", ptype, 4 + len(body)) + body


def tag_data(epc: bytes, antenna: int | None = None, rssi: int | None = None) -> bytes:
    out = b"\x8d" + epc if len(epc) == 12 else tlv(241, struct.pack(">H", 8 * len(epc)) + epc)
    if antenna is not None:
        out += struct.pack(">BH", 0x81, antenna)
    if rssi is not None:
        out += struct.pack(">Bb", 0x86, rssi)
    return tlv(240, out)


def status(code: int, text: str = "") -> bytes:
    raw = text.encode()
    return tlv(287, struct.pack(">HH", code, len(raw)) + raw)


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


def vector(name: str) -> list[bytes]:
    return [bytes.fromhex(line) for line in (VECTORS / f"{name}.hex").read_text().split()]


KEEPALIVE = build(62, 98)


# --- encoders ----------------------------------------------------------------------------


def test_client_messages_equal_llrpkit_bytes() -> None:
    assert vector("client_messages") == [
        llrp.get_reader_capabilities(1),
        llrp.delete_rospec(3, 0),
        llrp.enable_rospec(5, 1),
        llrp.start_rospec(6, 1),
        llrp.stop_rospec(7, 1),
        llrp.keepalive_ack(98),
        llrp.enable_events_and_reports(9),
        llrp.close_connection(10),
    ]


def test_setup_messages_equal_llrpkit_bytes() -> None:
    set_config, add = vector("setup_messages")
    assert llrp.set_reader_config(2, keepalive_ms=10_000) == set_config
    settings = RoSpecSettings(
        rospec_id=1,
        antennas=(1, 2),
        duration_ms=200,
        session=2,
        tag_population=32,
        mode_index=1002,
        tx_power_index=81,
    )
    assert llrp.add_rospec(4, settings) == add


@pytest.mark.parametrize(
    "settings",
    [
        RoSpecSettings(rospec_id=7, antennas=(3,), duration_ms=1000),
        RoSpecSettings(rospec_id=9, antennas=(1, 2, 3, 4), duration_ms=50, start_immediately=True),
        RoSpecSettings(rospec_id=2, antennas=(1,), duration_ms=1, session=None, report_n=5),
        RoSpecSettings(rospec_id=3, antennas=(0,), duration_ms=300, tx_power_index=1),
    ],
)
def test_add_rospec_variants_round_trip_through_llrpkit(settings: RoSpecSettings) -> None:
    data = llrp.add_rospec(11, settings)
    msg = llrpkit_decode(data)
    assert msg.to_bytes(message_id=11) == data
    spec = msg.ro_spec  # type: ignore[attr-defined]
    assert spec.ro_spec_id == settings.rospec_id
    start = spec.ro_boundary_spec.ro_spec_start_trigger.ro_spec_start_trigger_type
    assert int(start) == (1 if settings.start_immediately else 0)
    (ai,) = spec.spec_parameters
    assert list(ai.antenna_ids) == list(settings.antennas)
    assert ai.ai_spec_stop_trigger.duration_trigger == settings.duration_ms
    assert spec.ro_report_spec.n == settings.report_n


def test_header_arithmetic() -> None:
    data = llrp.encode_message(61, 0x01020304, b"\xaa\xbb", version=2)
    # Rsvd 000, Ver 010, Type 0000111101 -> 0x083D; length 12
    assert data == bytes.fromhex("083D 0000000C 01020304 AABB")
    assert llrp.tlv(287, b"\x00\x00\x00\x00") == bytes.fromhex("011F 0008 00000000")
    assert llrp.tv(1, b"\x00\x05") == bytes.fromhex("81 0005")
    assert llrp.llrp_status(100, "x") == bytes.fromhex("011F 0009 0064 0001 78")


@pytest.mark.parametrize(
    "call",
    [
        lambda: llrp.encode_message(1024, 1),
        lambda: llrp.encode_message(1, -1),
        lambda: llrp.encode_message(1, 2**32),
        lambda: llrp.tlv(12, b""),
        lambda: llrp.tv(13, b"\x00"),
        lambda: llrp.tv(99, b""),
        lambda: llrp.get_reader_capabilities(1, 9),
        lambda: llrp.delete_rospec(1, -1),
        lambda: llrp.set_reader_config(1, keepalive_ms=-5),
        lambda: llrp.rospec(RoSpecSettings(rospec_id=0, antennas=(1,), duration_ms=1)),
        lambda: llrp.rospec(RoSpecSettings(rospec_id=1, antennas=(), duration_ms=1)),
        lambda: llrp.rospec(RoSpecSettings(rospec_id=1, antennas=(1,), duration_ms=0)),
        lambda: llrp.rospec(RoSpecSettings(rospec_id=1, antennas=(1,), duration_ms=1, session=4)),
        lambda: llrp.rospec(
            RoSpecSettings(rospec_id=1, antennas=(1,), duration_ms=1, tx_power_index=True)
        ),
    ],
)
def test_bad_arguments_raise_protocol_error(call: Any) -> None:
    with pytest.raises(ProtocolError):
        call()


def test_keepalive_off_and_no_optional_parameters() -> None:
    data = llrp.set_reader_config(1, keepalive_ms=0, events=None, hold_events_on_reconnect=None)
    assert data == build(3, 1, b"\x00" + tlv(220, b"\x00\x00\x00\x00\x00"))
    assert llrp.set_reader_config(
        1, keepalive_ms=None, events=None, hold_events_on_reconnect=True
    ) == (build(3, 1, b"\x00" + tlv(226, b"\x80")))


# --- decoding ----------------------------------------------------------------------------


def test_decode_report_fields() -> None:
    (report,) = vector("ro_access_report")
    first, second = llrp.decode_message(report)
    assert first == TagReport(
        4242,
        "E20000170111B1620000000A",
        antenna=2,
        rssi_dbm=-58,
        channel_index=17,
        first_seen_us=1764460800123456,
        last_seen_us=1764460800373456,
        seen_count=5,
    )
    assert second == TagReport(4242, "3034257BF400B7810000000000000001", antenna=1, rssi_dbm=-71)
    assert llrp.tag_of(first) == TagView("E20000170111B1620000000A", 2, -58.0)


def test_decode_responses_and_events() -> None:
    caps, added, deleted, error, closed = vector("responses")
    (rec,) = llrp.decode_message(caps)
    assert isinstance(rec, Response)
    assert rec.status.ok
    assert rec.capabilities == llrp.Capabilities(4, 25882, 2001002, "7.5.0.240")
    assert llrp.decode_message(added) == [Response(30, 4, Status(0, ""))]
    (rec,) = llrp.decode_message(deleted)
    assert isinstance(rec, Response)
    assert rec.status.text() == "M_ParameterError (100): no ROSpec 0"
    assert not rec.status.ok
    (rec,) = llrp.decode_message(error)
    assert isinstance(rec, Response)
    assert (rec.name, rec.status.name) == ("ERROR_MESSAGE", "M_UnsupportedMessage")
    assert llrp.decode_message(closed)[0] == Response(4, 10, Status(0, ""))
    conn, close = vector("reader_events")
    assert llrp.decode_message(conn) == [
        ReaderEvent(0, 1764460800123456, ("connection_attempt",), 0)
    ]
    assert llrp.decode_message(close) == [
        ReaderEvent(7, 1764460800123457, ("connection_close",), None)
    ]
    assert llrp.decode_message(KEEPALIVE) == [Keepalive(98)]


def test_status_errors_carry_field_and_parameter_errors() -> None:
    body = status(101, "bad") + b""
    raw = struct.pack(">HH", 101, 3) + b"bad"
    raw += tlv(288, struct.pack(">HH", 2, 5)) + tlv(289, struct.pack(">HH", 177, 7))
    (rec,) = llrp.decode_message(build(30, 1, tlv(287, raw)))
    assert isinstance(rec, Response)
    assert rec.status == Status(101, "bad", (2, 5), (177, 7))
    assert rec.status.text() == "M_FieldError (101): bad [parameter 177 error 7] [field 2 error 5]"
    assert llrp.record_to_dict(rec)["parameter_error"] == [177, 7]
    assert body  # the plain builder makes the same header
    assert llrp.status_name(999) == "status_999"
    assert llrp.message_name(999) == "type_999"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "garbage"),
        (b"\xff" * 12, "garbage"),
        (build(62, 1)[:9], "garbage"),
        (build(62, 1) + b"\x00", "length"),
        (build(62, 1, version=0), "sanity"),
        (build(62, 1, version=5), "sanity"),
        (build(21, 1, b"\x00\x00"), "length"),
        (build(1, 1), "length"),
        (build(30, 1), "sanity"),  # response without LLRPStatus
        (build(30, 1, b"\x01\x1f\x00\x02"), "sanity"),  # TLV shorter than its header
        (build(30, 1, b"\x01\x1f\x00\x08\x00"), "sanity"),  # TLV past the message end
        (build(30, 1, b"\xfc\x1f\x00\x04"), "sanity"),  # reserved bits set
        (build(61, 1, b"\xf0"), "sanity"),  # unknown TV type 0x70
        (build(61, 1, b"\x81\x00"), "sanity"),  # TV cut short
        (build(61, 1, tlv(240, b"\x81\x00\x01")), "sanity"),  # no EPC
        (build(61, 1, tlv(240, tlv(241, b"\x00\x60" + b"\x00" * 11))), "sanity"),
        (build(63, 1), "sanity"),  # no ReaderEventNotificationData
        (build(63, 1, tlv(246, tlv(128, b"\x00")))[:], "sanity"),  # short timestamp
        (build(30, 1, tlv(287, b"\x00\x00\x00\x09ab")), "sanity"),  # description too long
    ],
)
def test_decode_message_failures(data: bytes, reason: str) -> None:
    (rec,) = llrp.decode_message(data)
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == reason


def test_other_messages_are_kept_whole() -> None:
    custom = build(1023, 5, struct.pack(">IB", 25882, 21) + b"\x01\x02")
    assert llrp.decode_message(custom) == [Message(1023, 5, 1, custom[10:])]
    assert llrp.decode_message(build(61, 2)) == [Message(61, 2, 1, b"")]
    assert llrp.record_to_dict(Message(2, 3, 2, b"\x01")) == {
        "type": "message",
        "message": "GET_READER_CONFIG",
        "message_id": 3,
        "version": 2,
        "body": "01",
    }


def test_protocol_info_and_registry() -> None:
    info = PROTOCOLS["llrp"]
    assert info is llrp.PROTOCOL
    assert info.line_rate_frames_s is None
    assert info.tags_of(Keepalive(1)) is None
    assert info.record_to_dict(DecodeFailure("garbage", b"\x01")) == {
        "type": "invalid",
        "reason": "garbage",
        "data": "01",
    }


# --- the stream decoder ------------------------------------------------------------------


def test_vectors_decode_in_any_chunking() -> None:
    for hex_file in sorted(VECTORS.glob("*.hex")):
        data = bytes.fromhex(hex_file.read_text())
        expected = json.loads(hex_file.with_suffix(".json").read_text())
        for chunk in (len(data), 1, 3, 11):
            out, _ = feed_all(data, list(range(chunk, len(data), chunk)))
            assert [llrp.record_to_dict(r) for r in out] == expected, (hex_file.stem, chunk)


def test_counters_and_garbage_run_across_feeds() -> None:
    report = build(61, 3, tag_data(b"\x11" * 12, 1, -60) + tag_data(b"\x22" * 12, 2, -61))
    dec = StreamDecoder()
    out = dec.feed(b"\xff\xfe") + dec.feed(b"\xfd" + KEEPALIVE[:4])
    assert out == []  # the run ends only once the header is known to be one
    assert dec.pending == 7
    out = dec.feed(KEEPALIVE[4:] + report) + dec.flush()
    assert out == [
        DecodeFailure("garbage", b"\xff\xfe\xfd"),
        Keepalive(98),
        TagReport(3, "11" * 12, 1, -60),
        TagReport(3, "22" * 12, 2, -61),
    ]
    assert dec.counters == {
        "ok": 2,
        "length": 0,
        "checksum": 0,
        "sanity": 0,
        "garbage": 1,
        "truncated": 0,
    }
    assert dec.pending == 0


def test_header_waits_for_its_whole_length() -> None:
    report = build(61, 3, tag_data(b"\x33" * 12, 4, -40))
    dec = StreamDecoder()
    assert dec.feed(report[:-1]) == []
    assert dec.pending == len(report) - 1
    assert dec.feed(report[-1:]) == [TagReport(3, "33" * 12, 4, -40)]


def test_message_hidden_after_a_false_header_is_found() -> None:
    # a false header (keep-alive type) claiming 30 bytes swallows a real keep-alive
    false = struct.pack(">HII", 1 << 10 | 62, 30, 1)
    data = false + b"\xee\xee" + KEEPALIVE + b"\xee" * 8
    out, dec = feed_all(data)
    assert out[0] == DecodeFailure("truncated", false + b"\xee\xee")
    assert out[1] == Keepalive(98)
    assert out[2] == DecodeFailure("garbage", b"\xee" * 8)
    assert dec.counters["ok"] == 1


def test_truncated_at_end_and_long_garbage_bounded() -> None:
    out, _ = feed_all(b"\xff" * 1000 + KEEPALIVE[:7])
    assert out == [
        DecodeFailure("garbage", b"\xff" * 256),
        DecodeFailure("truncated", KEEPALIVE[:7]),
    ]
    # a partial header that cannot be one is garbage at the end
    out, _ = feed_all(b"\x04\x3e\xff")
    assert out == [DecodeFailure("garbage", b"\x04\x3e\xff")]


def test_max_length_bounds_headers() -> None:
    big = build(61, 1, tag_data(b"\x44" * 12))
    dec = StreamDecoder(max_length=20)
    out = dec.feed(big) + dec.flush()
    assert [r for r in out if not isinstance(r, DecodeFailure)] == []
    assert StreamDecoder(max_length=len(big)).feed(big) == [TagReport(1, "44" * 12)]


def test_no_tags_in_the_other_protocols_vectors() -> None:
    others = [p for p in sorted(VECTORS.parent.glob("*/*.hex")) if p.parent.name != "llrp"]
    assert others
    streams = [bytes.fromhex(p.read_text()) for p in others]
    for data in [*streams, b"".join(streams)]:
        assert [t for t in map(llrp.tag_of, llrp.decode_stream(data)) if t is not None] == []


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    data: bytes
    records: tuple[llrp.Record, ...]


@st.composite
def reports(draw: st.DrawFn) -> Built:
    mid = draw(st.integers(0, 2**32 - 1))
    tags = draw(
        st.lists(
            st.tuples(
                st.integers(1, 31).flatmap(lambda w: st.binary(min_size=2 * w, max_size=2 * w)),
                st.none() | st.integers(0, 0xFFFF),
                st.none() | st.integers(-128, 127),
            ),
            min_size=1,
            max_size=4,
        )
    )
    body = b"".join(tag_data(epc, a, r) for epc, a, r in tags)
    recs = tuple(TagReport(mid, epc.hex().upper(), a, r) for epc, a, r in tags)
    return Built(build(61, mid, body), recs)


@st.composite
def responses(draw: st.DrawFn) -> Built:
    mid = draw(st.integers(0, 2**32 - 1))
    mtype = draw(st.sampled_from([4, 13, 30, 31, 32, 33, 34, 35, 100]))
    code = draw(st.integers(0, 0xFFFF))
    text = draw(st.text(alphabet="abc xyz012", max_size=20))
    return Built(build(mtype, mid, status(code, text)), (Response(mtype, mid, Status(code, text)),))


@st.composite
def simple(draw: st.DrawFn) -> Built:
    mid = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["keepalive", "delete", "ack"]))
    if kind == "keepalive":
        return Built(build(62, mid), (Keepalive(mid),))
    if kind == "ack":
        return Built(build(72, mid), (Message(72, mid, 1, b""),))
    body = draw(st.binary(min_size=4, max_size=4))
    return Built(build(21, mid, body), (Message(21, mid, 1, body),))


messages = st.one_of(reports(), responses(), simple())
# no byte 00-1F: no header (top three bits zero) can start inside this garbage
clean_garbage = st.binary(max_size=30).map(lambda b: bytes(x | 0x20 for x in b))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=20))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    for candidate in (data, KEEPALIVE[:2] + data, build(61, 1)[:6] + data):
        assert llrp.decode_message(candidate)
        out, dec = feed_all(candidate, [c for c in cuts if c <= len(candidate)])
        assert dec.pending == 0
        for rec in out:
            llrp.record_to_dict(rec)
        fails = sum(isinstance(r, DecodeFailure) for r in out)
        assert fails == sum(v for k, v in dec.counters.items() if k != "ok")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(clean_garbage, messages), max_size=6), tail=clean_garbage)
def test_messages_in_garbage_are_found_exactly(
    items: list[tuple[bytes, Built]], tail: bytes
) -> None:
    data = b"".join(g + m.data for g, m in items) + tail
    expected: list[Decoded] = []
    for garbage, msg in items:
        if garbage:
            expected.append(DecodeFailure("garbage", garbage))
        expected.extend(msg.records)
    if tail:
        expected.append(DecodeFailure("garbage", tail))
    out, dec = feed_all(data)
    assert out == expected
    assert dec.counters["ok"] == len(items)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(messages.map(lambda m: m.data), st.binary(max_size=20)), max_size=8),
    cuts=st.lists(st.integers(0, 800), max_size=25),
)
def test_chunking_does_not_change_output(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    whole, _ = feed_all(data)
    chunked, _ = feed_all(data, [c for c in cuts if c <= len(data)])
    assert chunked == whole
    single, _ = feed_all(data, list(range(1, len(data))))
    assert single == whole


@settings(max_examples=300)
@given(
    data=st.lists(
        st.one_of(st.sampled_from([0x04, 0x3D, 0x3E, 0x00, 0x0A, 0xF0, 0x8D]), st.integers(0, 255)),
        max_size=300,
    ).map(bytes)
)
def test_reported_tags_come_from_input(data: bytes) -> None:
    out, _ = feed_all(data)
    for rec in out:
        if isinstance(rec, TagReport):
            assert bytes.fromhex(rec.epc) in data
            assert rec.message_id.to_bytes(4, "big") in data
