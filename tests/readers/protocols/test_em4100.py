"""EM4100 ASCII protocol: checksum helper, decoder failures by reason, stream behaviour and
property tests.

Frames for the tests are built here from field values with this file's own checksum (a
per-byte XOR over ``bytes.fromhex``), independently of the module under test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import base, em4100
from tagtrail.readers.protocols.base import ProtocolInfo, TagView
from tagtrail.readers.protocols.em4100 import (
    Decoded,
    DecodeFailure,
    StreamDecoder,
    TagRecord,
    decode_frame,
)
from tagtrail.readers.registry import PROTOCOLS

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def xor5(code: str) -> int:
    return reduce(lambda a, b: a ^ b, bytes.fromhex(code))


def build(code: str, crlf: bool = False, check: int | None = None) -> bytes:
    """A frame for the 10-digit ``code`` (with its own XOR unless ``check`` is given)."""
    chk = xor5(code) if check is None else check
    return b"\x02" + f"{code}{chk:02X}".encode() + (b"\r\n" if crlf else b"") + b"\x03"


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


CHECKED = b"\x0267003B51C6CB\x03"
CHECKED_CRLF = b"\x0267003B51C6CB\r\n\x03"
TAG = TagRecord(code="67003B51C6", version=0x67, card=3887558, checksum=0xCB, crlf=False)


# --- checksum helper (the protocol has no host commands to encode) ----------------------


def test_checksum_of_checked_frames() -> None:
    # 67^00=67, ^3B=5C, ^51=0D, ^C6=CB
    assert em4100.checksum(bytes.fromhex("67003B51C6")) == 0xCB
    # RDM630 spec example: 62^E3=81, ^08=89, ^6C=E5, ^ED=08
    assert em4100.checksum(bytes.fromhex("62E3086CED")) == 0x08
    # ID-12 datasheet example: 0C^00=0C, ^06=0A, ^21=2B, ^A5=8E
    assert em4100.checksum(bytearray.fromhex("0C000621A5")) == 0x8E


@pytest.mark.parametrize("data", [b"", b"\x01\x02\x03\x04", bytes(6), "67003B51C6"])
def test_checksum_rejects_wrong_input(data: Any) -> None:
    with pytest.raises(ProtocolError):
        em4100.checksum(data)


def test_protocol_has_no_command_encoders() -> None:
    # These readers take no commands: nothing named cmd_* / encode_* is offered.
    assert [n for n in dir(em4100) if n.startswith(("cmd_", "encode"))] == []


# --- decode_frame ------------------------------------------------------------------------


def test_decode_checked_frame_both_forms() -> None:
    assert decode_frame(CHECKED) == TAG
    long = decode_frame(CHECKED_CRLF)
    assert isinstance(long, TagRecord)
    assert long.crlf
    assert (long.code, long.version, long.card, long.checksum) == (
        "67003B51C6",
        0x67,
        3887558,
        0xCB,
    )
    assert decode_frame(bytearray(CHECKED)) == TAG


def test_card_number_is_last_four_bytes() -> None:
    rec = decode_frame(build("3C00CE754C"))
    assert isinstance(rec, TagRecord)
    assert rec.card == 13530444  # 0x00CE754C
    assert rec.version == 0x3C
    rec = decode_frame(build("FFFFFFFFFF", crlf=True))
    assert isinstance(rec, TagRecord)
    assert (rec.version, rec.card, rec.checksum) == (255, 2**32 - 1, 0xFF)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "garbage"),
        (b"67003B51C6CB", "garbage"),
        (b"\x02", "length"),
        (b"\x02\x03", "length"),
        (CHECKED[:-1], "length"),  # no ETX
        (CHECKED + b"\x03", "length"),  # 15 bytes
        (b"\x0267003B51C6C\x03", "length"),  # 11 digits
        (b"\x0267003b51c6cb\x03", "sanity"),  # lower case, XOR good
        (b"\x0267003B51C6cB\x03", "sanity"),
        (b"\x0267003B51C6CG\x03", "sanity"),
        (b"\x0267003B51C6C \x03", "sanity"),
        (b"\x02+7003B51C6CB\x03", "sanity"),  # int() would accept a sign
        (b"\x026_003B51C6CB\x03", "sanity"),  # ... and an underscore
        (b"\x0267003B51C6CB\n\r\x03", "sanity"),  # LF CR
        (b"\x0267003B51C6CB12\x03", "sanity"),  # 16 bytes without CR LF
        (b"\x02" + b"0" * 20 + b"\x03", "length"),
        (build("67003B51C6", check=0xCA), "checksum"),
        (build("67003B51C6", crlf=True, check=0x00), "checksum"),
        (build("02004DB005", check=0xFC), "checksum"),  # real capture, XOR is FA
    ],
)
def test_decode_frame_failures(frame: bytes, reason: str) -> None:
    rec = decode_frame(frame)
    assert isinstance(rec, DecodeFailure)
    assert rec.reason == reason


def test_record_to_dict_and_tag_view() -> None:
    assert em4100.record_to_dict(TAG) == {
        "type": "tag",
        "code": "67003B51C6",
        "version": 103,
        "card": 3887558,
        "checksum": "CB",
        "crlf": False,
    }
    assert em4100.record_to_dict(DecodeFailure("sanity", b"\x02\x03")) == {
        "type": "invalid",
        "reason": "sanity",
        "data": "0203",
    }
    assert em4100.tag_of(TAG) == TagView(epc="67003B51C6", antenna=1, rssi_dbm=None)
    assert em4100.tag_of(DecodeFailure("checksum", CHECKED)) is None


def test_protocol_info() -> None:
    info = em4100.PROTOCOL
    assert isinstance(info, ProtocolInfo)
    assert info.name == "em4100"
    assert info.default_baud == 9600
    assert info.typical_frame_bytes == len(CHECKED)
    assert info.line_rate_frames_s == pytest.approx(9600 / 10 / 14)
    assert info.decode_stream(CHECKED) == [TAG]
    assert isinstance(info.new_decoder(), StreamDecoder)


# --- StreamDecoder -----------------------------------------------------------------------


def test_stream_counts_and_resyncs() -> None:
    bad = build("67003B51C6", check=0x00)
    data = b"\x11\x22" + CHECKED + bad + b"\x0d" + CHECKED_CRLF + b"\x0267003"
    out, dec = feed_all(data)
    assert out == [
        DecodeFailure("garbage", b"\x11\x22"),
        TAG,
        DecodeFailure("checksum", bad),
        DecodeFailure("garbage", b"\x0d"),
        TagRecord("67003B51C6", 0x67, 3887558, 0xCB, True),
        DecodeFailure("truncated", b"\x0267003"),
    ]
    assert dec.counters == {
        "ok": 2,
        "length": 0,
        "checksum": 1,
        "sanity": 0,
        "garbage": 2,
        "truncated": 1,
    }


def test_repeated_card_is_reported_every_time() -> None:
    out, dec = feed_all(CHECKED * 5)
    assert out == [TAG] * 5
    assert dec.counters["ok"] == 5


def test_decoder_holds_at_most_fifteen_bytes_of_a_frame() -> None:
    dec = StreamDecoder()
    assert dec.feed(b"\x02" + b"0123456789ABCD") == []
    assert dec.pending == 15
    # the 16th byte decides: no STX/ETX in the 15 bytes after STX -> length failure
    assert dec.feed(b"E") == [DecodeFailure("length", b"\x020123456789ABCDE")]
    assert dec.pending == 0


def test_new_stx_ends_an_incomplete_frame() -> None:
    dec = StreamDecoder()
    assert dec.feed(CHECKED[:9]) == []
    assert dec.pending == 9
    assert dec.feed(CHECKED) == [DecodeFailure("truncated", CHECKED[:9]), TAG]
    assert dec.pending == 0


def test_garbage_run_across_feeds_is_one_failure() -> None:
    dec = StreamDecoder()
    assert dec.feed(b"\r\n") == []
    assert dec.feed(b"\x03") == []
    assert dec.pending == 3
    assert dec.feed(CHECKED) == [DecodeFailure("garbage", b"\r\n\x03"), TAG]
    assert dec.counters["garbage"] == 1


def test_long_garbage_run_keeps_bounded_data() -> None:
    dec = StreamDecoder()
    chunk = bytes(range(4, 104))
    for _ in range(100):
        dec.feed(chunk)
    assert dec.pending == 10_000
    [fail] = dec.flush()
    assert isinstance(fail, DecodeFailure)
    assert fail.reason == "garbage"
    assert fail.data == (chunk * 3)[: base.MAX_FAILURE_DATA]


def test_flush_resets_and_decoder_is_reusable() -> None:
    dec = StreamDecoder()
    assert dec.feed(CHECKED[:10]) == []
    assert dec.flush() == [DecodeFailure("truncated", CHECKED[:10])]
    assert dec.pending == 0
    assert dec.flush() == []
    assert dec.feed(CHECKED) == [TAG]
    assert dec.feed(b"") == []


# --- registry-shaped checks (until the lead registers em4100) ---------------------------

LOCAL = {**PROTOCOLS, "em4100": em4100.PROTOCOL}
OWN = sorted((VECTORS / "em4100").glob("*.hex"))


def test_vectors_exist() -> None:
    assert len(OWN) >= 12


@pytest.mark.parametrize("hex_file", OWN, ids=lambda p: p.stem)
@pytest.mark.parametrize("chunk", [0, 1, 2, 7, 15])
def test_own_vectors(hex_file: Path, chunk: int) -> None:
    data = bytes.fromhex(hex_file.read_text(encoding="utf-8"))
    expected = json.loads(hex_file.with_suffix(".json").read_text(encoding="utf-8"))
    cuts = list(range(chunk, len(data), chunk)) if chunk else []
    out, dec = feed_all(data, cuts)
    assert [em4100.record_to_dict(r) for r in out] == expected
    assert dec.counters["ok"] == sum(1 for r in expected if r["type"] == "tag")


def test_no_tags_found_in_other_protocols_vectors_and_vice_versa() -> None:
    own = b"".join(bytes.fromhex(p.read_text()) for p in OWN)
    assert any(em4100.tag_of(r) for r in em4100.decode_stream(own))
    for name, info in LOCAL.items():
        if name == "em4100":
            continue
        foreign = b"".join(
            bytes.fromhex(p.read_text()) for p in sorted((VECTORS / name).glob("*.hex"))
        )
        assert foreign
        assert [t for t in map(em4100.tag_of, em4100.decode_stream(foreign)) if t] == []
        assert [t for t in map(info.tags_of, info.decode_stream(own)) if t is not None] == []


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    frame: bytes
    record: TagRecord


@st.composite
def tag_frames(draw: st.DrawFn) -> Built:
    version = draw(st.integers(0, 255))
    card = draw(st.integers(0, 2**32 - 1))
    crlf = draw(st.booleans())
    code = f"{version:02X}{card:08X}"
    rec = TagRecord(code, version, card, xor5(code), crlf)
    return Built(build(code, crlf), rec)


# Noise rich in the bytes that matter: STX, ETX, CR, LF, hex digits (both cases), others.
noisy_bytes = st.lists(
    st.one_of(st.sampled_from(b"\x02\x03\r\n0123456789ABCDEFabcG"), st.integers(0, 255)),
    max_size=60,
).map(bytes)

GOOD_FRAME = re.compile(rb"\x02([0-9A-F]{10})([0-9A-F]{2})(?:\r\n)?\x03")


def holds_good_frame(data: bytes) -> bool:
    """Whether ``data`` contains a complete frame with a good check (independent regex)."""
    return any(xor5(m[1].decode()) == int(m[2], 16) for m in GOOD_FRAME.finditer(data))


def span(item: Decoded) -> bytes:
    if isinstance(item, DecodeFailure):
        return item.data
    return build(item.code, item.crlf, item.checksum)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(st.binary(max_size=400), noisy_bytes),
    cuts=st.lists(st.integers(0, 400), max_size=20),
)
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    single = decode_frame(data)
    assert isinstance(single, TagRecord | DecodeFailure)
    out, dec = feed_all(data, [c for c in cuts if c <= len(data)])
    failures = [r for r in out if isinstance(r, DecodeFailure)]
    assert dec.counters["ok"] == len(out) - len(failures)
    for reason in em4100.FAILURE_REASONS:
        assert dec.counters[reason] == sum(1 for f in failures if f.reason == reason)
    assert dec.pending == 0
    if len(data) < base.MAX_FAILURE_DATA:
        assert b"".join(span(r) for r in out) == data


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.tuples(noisy_bytes, tag_frames()), min_size=1, max_size=8),
    tail=noisy_bytes,
)
def test_valid_frames_in_garbage_are_found(items: list[tuple[bytes, Built]], tail: bytes) -> None:
    # A good frame inside the garbage would be a real read on the wire too; exclude those.
    assume(not any(holds_good_frame(g) for g, _ in items) and not holds_good_frame(tail))
    stream = b"".join(g + b.frame for g, b in items) + tail
    out, _ = feed_all(stream)
    assert [r for r in out if not isinstance(r, DecodeFailure)] == [b.record for _, b in items]
    # every byte is accounted for exactly once, in order
    assert b"".join(span(r) for r in out) == stream


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(noisy_bytes, tag_frames().map(lambda b: b.frame)), max_size=10),
    cuts=st.lists(st.integers(0, 800), max_size=30),
)
def test_chunking_does_not_change_output(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    whole, whole_dec = feed_all(stream)
    chunked, chunked_dec = feed_all(stream, [c for c in cuts if c <= len(stream)])
    assert chunked == whole
    assert chunked_dec.counters == whole_dec.counters
    one_by_one, _ = feed_all(stream, list(range(len(stream))))
    assert one_by_one == whole
