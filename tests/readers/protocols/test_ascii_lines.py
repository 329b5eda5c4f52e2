"""Scanner line protocol: framing by prefix and suffix, AIM identifiers, failures by
reason, EPC lines from RFID handhelds, vectors, and property tests.

Lines for the tests are built here from their parts (prefix, identifier, text, suffix).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.events import GtinSerialIdentity, SsccIdentity
from tagtrail.readers.gs1 import parse_scan
from tagtrail.readers.protocols import ascii_lines
from tagtrail.readers.protocols.ascii_lines import (
    Decoded,
    DecodeFailure,
    LineDecoder,
    Scan,
)
from tagtrail.readers.protocols.base import ProtocolInfo, TagView
from tagtrail.readers.registry import PROTOCOLS

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
GS = "\x1d"
CRLF = b"\r\n"


def line(text: str, aim: str | None = None, prefix: bytes = b"", suffix: bytes = CRLF) -> bytes:
    return prefix + ((aim or "") + text).encode("utf-8") + suffix


def scan(text: str, aim: str | None = None, prefix: bytes = b"", suffix: bytes = CRLF) -> Scan:
    return Scan(text, aim, line(text, aim, prefix, suffix))


def feed_all(
    data: bytes, cuts: list[int] | None = None, dec: LineDecoder | None = None
) -> tuple[list[Decoded], LineDecoder]:
    dec = dec or LineDecoder()
    out: list[Decoded] = []
    prev = 0
    for cut in sorted(cuts or []):
        out += dec.feed(data[prev:cut])
        prev = cut
    out += dec.feed(data[prev:])
    out += dec.flush()
    return out, dec


SSCC_TEXT = "00106141411234567897"
GS1_TEXT = "0109506000134352" + "17261231" + "10LOT42" + GS + "21SN0001"


# --- lines and identifiers ---------------------------------------------------------------


def test_gs1_128_with_aim_and_gs_separator() -> None:
    out, dec = feed_all(line(GS1_TEXT, "]C1"))
    assert out == [scan(GS1_TEXT, "]C1")]
    [rec] = out
    assert isinstance(rec, Scan)
    assert GS in rec.text
    assert dec.counters["ok"] == 1
    # the framing layer hands exactly what the GS1 parser needs
    res = parse_scan(rec.text, rec.symbology)
    assert res.identity == GtinSerialIdentity(
        scheme="gtin_serial", gtin="09506000134352", serial="SN0001"
    )


@pytest.mark.parametrize(
    ("aim", "text"),
    [
        ("]d2", "0109506000134352" + "21XYZ789" + GS + "10B1"),
        ("]Q3", "0109506000134352" + "10LOT7" + GS + "3724"),
        ("]E0", "4006381333931"),
        ("]E4", "96385074"),
        ("]C0", "LOC-A-01-03"),
        ("]Q1", "Größe 42"),
        ("]e0", "0109506000134352"),
        ("]z0", "Aztec text"),
    ],
)
def test_symbology_identifiers(aim: str, text: str) -> None:
    out, _ = feed_all(line(text, aim))
    assert out == [scan(text, aim)]


def test_plain_code128_stays_plain_after_parsing() -> None:
    [rec], _ = feed_all(line(SSCC_TEXT, "]C0"))
    assert isinstance(rec, Scan)
    assert not parse_scan(rec.text, rec.symbology).is_gs1
    [rec], _ = feed_all(line(SSCC_TEXT, "]C1"))
    assert isinstance(rec, Scan)
    assert parse_scan(rec.text, rec.symbology).identity == SsccIdentity(
        scheme="sscc", sscc="106141411234567897"
    )


@pytest.mark.parametrize("text", ["LOC-B-17", "]x not an identifier", "]C", "] C1"])
def test_lines_without_identifier(text: str) -> None:
    out, _ = feed_all(line(text))
    assert out == [scan(text)]


def test_aim_off_keeps_identifier_in_text() -> None:
    out, _ = feed_all(line("]C1" + SSCC_TEXT), dec=LineDecoder(aim=False))
    assert out == [Scan("]C1" + SSCC_TEXT, None, line("]C1" + SSCC_TEXT))]


@pytest.mark.parametrize("suffix", [b"\r", b"\n", b"\t", b"\r\n"])
def test_suffix_variants(suffix: bytes) -> None:
    data = line("ABC", "]C0", suffix=suffix) + line("4006381333931", "]E0", suffix=suffix)
    out, dec = feed_all(data, dec=LineDecoder(suffix=suffix))
    assert out == [scan("ABC", "]C0", suffix=suffix), scan("4006381333931", "]E0", suffix=suffix)]
    assert dec.counters["ok"] == 2


def test_scanner_sending_crlf_to_a_cr_decoder_is_a_sanity_failure() -> None:
    data = line("A1", "]C0") + line("A2", "]C0")
    out, dec = feed_all(data, dec=LineDecoder(suffix=b"\r"))
    # the first line is fine; each LF then starts the next line
    assert out == [
        Scan("A1", "]C0", b"]C0A1\r"),
        DecodeFailure("sanity", b"\n]C0A2\r"),
        DecodeFailure("truncated", b"\n"),
    ]
    assert dec.counters["sanity"] == 1


def test_prefix() -> None:
    dec = LineDecoder(prefix=b"$>", suffix=b"\n")
    data = (
        line("ABC", "]C0", prefix=b"$>", suffix=b"\n")
        + b"noise$>"
        + b"]E04006381333931\n"
        + b"no prefix\n"
    )
    out, _ = feed_all(data, dec=dec)
    assert out == [
        scan("ABC", "]C0", prefix=b"$>", suffix=b"\n"),
        DecodeFailure("garbage", b"noise"),
        scan("4006381333931", "]E0", prefix=b"$>", suffix=b"\n"),
        DecodeFailure("garbage", b"no prefix\n"),
    ]
    assert dec.counters == {
        "ok": 2,
        "length": 0,
        "checksum": 0,
        "sanity": 0,
        "garbage": 2,
        "truncated": 0,
    }


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\r\n", "garbage"),
        (b"\x00ABC\r\n", "sanity"),
        (b"AB\tC\r\n", "sanity"),
        (b"AB\rC\r\n", "sanity"),
        (b"\x7fDEL\r\n", "sanity"),
        (b"\xff\xfe\r\n", "sanity"),
        (b"\xc3\x28\r\n", "sanity"),  # not UTF-8
        (b"]C1\r\n", "length"),  # identifier and nothing else
        (b"ABC", "truncated"),
    ],
)
def test_single_failures(data: bytes, reason: str) -> None:
    out, dec = feed_all(data)
    assert out == [DecodeFailure(reason, data)]  # type: ignore[arg-type]
    assert dec.counters[reason] == 1
    assert dec.counters["ok"] == 0


def test_over_long_line_is_reported_once_and_next_line_found() -> None:
    dec = LineDecoder(max_line=10)
    long = b"X" * 40
    data = long + CRLF + line("OK", "]C0")
    whole, _ = feed_all(data, dec=dec)
    assert whole == [DecodeFailure("length", long[:11]), scan("OK", "]C0")]
    assert dec.counters["length"] == 1
    one_by_one, dec2 = feed_all(data, list(range(len(data))), dec=LineDecoder(max_line=10))
    assert one_by_one == whole
    assert dec2.counters == dec.counters


def test_over_long_line_held_bytes_stay_bounded() -> None:
    dec = LineDecoder(max_line=100)
    fails = []
    for _ in range(1000):
        fails += dec.feed(b"Y" * 50)
        assert dec.pending <= 101
    assert fails == [DecodeFailure("length", b"Y" * 101)]
    # a CR at the end of a chunk may be half of the CR LF that ends the dropped line
    assert dec.feed(b"Y\r") == []
    assert dec.feed(b"\n" + line("NEXT")) == [scan("NEXT")]
    assert dec.flush() == []


def test_failure_data_is_bounded() -> None:
    out, _ = feed_all(b"\x00" * 1000 + CRLF + b"Z" * 1000)
    assert [(f.reason, len(f.data)) for f in out if isinstance(f, DecodeFailure)] == [
        ("sanity", ascii_lines.MAX_FAILURE_DATA),
        ("truncated", ascii_lines.MAX_FAILURE_DATA),
    ]


def test_flush_resets_and_decoder_is_reusable() -> None:
    dec = LineDecoder()
    assert dec.feed(b"]C0AB") == []
    assert dec.pending == 5
    assert dec.flush() == [DecodeFailure("truncated", b"]C0AB")]
    assert dec.pending == 0
    assert dec.flush() == []
    assert dec.feed(line("AB", "]C0")) == [scan("AB", "]C0")]
    assert dec.feed(b"") == []


def test_suffix_split_across_feeds() -> None:
    dec = LineDecoder()
    assert dec.feed(b"]C0AB\r") == []
    assert dec.feed(b"\n") == [scan("AB", "]C0")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"suffix": b""},
        {"suffix": b";"},
        {"suffix": b"\n\r"},
        {"prefix": b"\r"},
        {"prefix": b"\x1d"},
        {"max_line": 0},
    ],
)
def test_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        LineDecoder(**kwargs)  # type: ignore[arg-type]


# --- EPC lines, JSON form, protocol info ----------------------------------------------------


def test_tag_of_epc_lines_only() -> None:
    epc = "E200301666130121155074EF"
    assert ascii_lines.tag_of(scan(epc)) == TagView(epc, 1, None)
    assert ascii_lines.tag_of(scan(epc.lower())) == TagView(epc, 1, None)
    long = "3034257BF7194E4000001A85" + "ABCD1234"
    assert ascii_lines.tag_of(scan(long)) == TagView(long, 1, None)
    # a barcode (it has an identifier) is never a tag, whatever its text
    assert ascii_lines.tag_of(scan(epc, "]C0")) is None
    for text in ["E200301666130121155074", "E200301666130121155074EF0", "LOC-A", SSCC_TEXT]:
        assert ascii_lines.tag_of(scan(text)) is None
    assert ascii_lines.tag_of(DecodeFailure("sanity", b"\x00")) is None


def test_record_to_dict() -> None:
    assert ascii_lines.record_to_dict(scan("A" + GS + "B", "]C1")) == {
        "type": "scan",
        "symbology": "]C1",
        "text": "A\x1dB",
        "raw": "5D4331411D420D0A",
    }
    assert ascii_lines.record_to_dict(DecodeFailure("garbage", b"\r\n")) == {
        "type": "invalid",
        "reason": "garbage",
        "data": "0D0A",
    }


def test_protocol_info() -> None:
    info = ascii_lines.PROTOCOL
    assert isinstance(info, ProtocolInfo)
    assert info.name == "ascii"
    assert info.default_baud == 115200
    assert info.line_rate_frames_s == pytest.approx(115200 / 10 / 30)
    assert info.decode_stream(line("X", "]C0")) == [scan("X", "]C0")]
    assert isinstance(info.new_decoder(), LineDecoder)


# --- vectors and cross-protocol checks (until the lead registers ascii) ------------------------

LOCAL = {**PROTOCOLS, "ascii": ascii_lines.PROTOCOL}
OWN = sorted((VECTORS / "ascii").glob("*.hex"))


def test_vectors_exist() -> None:
    assert len(OWN) >= 12


@pytest.mark.parametrize("hex_file", OWN, ids=lambda p: p.stem)
@pytest.mark.parametrize("chunk", [0, 1, 2, 7, 30])
def test_own_vectors(hex_file: Path, chunk: int) -> None:
    data = bytes.fromhex(hex_file.read_text(encoding="utf-8"))
    expected = json.loads(hex_file.with_suffix(".json").read_text(encoding="utf-8"))
    cuts = list(range(chunk, len(data), chunk)) if chunk else []
    out, dec = feed_all(data, cuts)
    assert [ascii_lines.record_to_dict(r) for r in out] == expected
    assert dec.counters["ok"] == sum(1 for r in expected if r["type"] == "scan")


def test_no_tags_found_in_other_protocols_vectors_and_vice_versa() -> None:
    own = b"".join(bytes.fromhex(p.read_text()) for p in OWN)
    assert any(ascii_lines.tag_of(r) for r in ascii_lines.decode_stream(own))
    for name, info in LOCAL.items():
        if name == "ascii":
            continue
        foreign = b"".join(
            bytes.fromhex(p.read_text()) for p in sorted((VECTORS / name).glob("*.hex"))
        )
        assert foreign
        assert [t for t in map(ascii_lines.tag_of, ascii_lines.decode_stream(foreign)) if t] == []
        assert [t for t in map(info.tags_of, info.decode_stream(own)) if t is not None] == []


# --- property tests --------------------------------------------------------------------------

SETTINGS = [
    {},
    {"suffix": b"\r"},
    {"suffix": b"\n"},
    {"suffix": b"\t"},
    {"prefix": b"$", "suffix": b"\r\n", "max_line": 16},
    {"prefix": b"<S>", "suffix": b"\n", "aim": False, "max_line": 8},
]

noisy_bytes = st.lists(
    st.one_of(st.sampled_from(b"\r\n\t\x1d\x00]C1$<S>A9\xc3\xa4"), st.integers(0, 255)),
    max_size=80,
).map(bytes)


def span(item: Decoded) -> bytes:
    return item.data if isinstance(item, DecodeFailure) else item.raw


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(st.binary(max_size=400), noisy_bytes),
    cuts=st.lists(st.integers(0, 400), max_size=20),
    config=st.sampled_from(SETTINGS),
)
def test_random_bytes_never_crash(data: bytes, cuts: list[int], config: dict[str, object]) -> None:
    out, dec = feed_all(data, [c for c in cuts if c <= len(data)], LineDecoder(**config))  # type: ignore[arg-type]
    failures = [r for r in out if isinstance(r, DecodeFailure)]
    assert dec.counters["ok"] == len(out) - len(failures)
    for reason in ascii_lines.FAILURE_REASONS:
        assert dec.counters[reason] == sum(1 for f in failures if f.reason == reason)
    assert dec.pending == 0
    for rec in out:
        if isinstance(rec, Scan):
            assert rec.text
            assert rec.raw in data
    if not config and len(data) < ascii_lines.MAX_FAILURE_DATA:
        # every byte is accounted for exactly once, in order
        assert b"".join(span(r) for r in out) == data


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(
        st.one_of(
            noisy_bytes,
            st.text(min_size=1, max_size=30).map(lambda t: t.encode("utf-8") + b"\r\n"),
        ),
        max_size=10,
    ),
    cuts=st.lists(st.integers(0, 800), max_size=30),
    config=st.sampled_from(SETTINGS),
)
def test_chunking_does_not_change_output(
    parts: list[bytes], cuts: list[int], config: dict[str, object]
) -> None:
    stream = b"".join(parts)
    whole, whole_dec = feed_all(stream, dec=LineDecoder(**config))  # type: ignore[arg-type]
    chunked, chunked_dec = feed_all(
        stream,
        [c for c in cuts if c <= len(stream)],
        LineDecoder(**config),  # type: ignore[arg-type]
    )
    assert chunked == whole
    assert chunked_dec.counters == whole_dec.counters
    one_by_one, _ = feed_all(stream, list(range(len(stream))), LineDecoder(**config))  # type: ignore[arg-type]
    assert one_by_one == whole


# Scan texts: printable, no suffix characters, not starting with a bracket (so the
# identifier, if any, is the one given).
scan_texts = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="]$"),
    min_size=1,
    max_size=40,
).filter(lambda t: t.isprintable())
aims = st.sampled_from([None, "]C1", "]C0", "]d2", "]Q3", "]Q1", "]E0", "]e0"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.tuples(st.binary(max_size=20), scan_texts, aims),
        min_size=1,
        max_size=8,
    ),
    tail=st.binary(max_size=20),
)
def test_valid_lines_in_garbage_are_found(
    items: list[tuple[bytes, str, str | None]], tail: bytes
) -> None:
    # Garbage lines: noise that holds a byte no scan can hold (NUL), ended by the suffix.
    noise = [b"\x00" + g.replace(b"\r", b"").replace(b"\n", b"") + CRLF for g, _, _ in items]
    # The tail is an unfinished line: without a suffix it can never become a scan.
    tail = tail.replace(b"\r", b"").replace(b"\n", b"")
    stream = b"".join(n + line(t, a) for n, (_, t, a) in zip(noise, items, strict=True)) + tail
    out, _ = feed_all(stream)
    assert [r for r in out if isinstance(r, Scan)] == [scan(t, a) for _, t, a in items]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(st.binary(max_size=20), scan_texts, aims), min_size=1, max_size=8))
def test_prefix_resynchronises_inside_a_line(items: list[tuple[bytes, str, str | None]]) -> None:
    # Noise with no suffix before each prefixed line: the prefix finds the scan.
    def clean(g: bytes) -> bytes:
        return g.replace(b"\n", b"").replace(b"$", b"")

    assume(all(clean(g) for g, _, _ in items))
    stream = b"".join(clean(g) + line(t, a, b"$", b"\n") for g, t, a in items)
    out, _ = feed_all(stream, dec=LineDecoder(prefix=b"$", suffix=b"\n", max_line=200))
    assert out == [
        item
        for g, t, a in items
        for item in (DecodeFailure("garbage", clean(g)), scan(t, a, b"$", b"\n"))
    ]
