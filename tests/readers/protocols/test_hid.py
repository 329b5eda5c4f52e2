"""The keyboard-wedge decoder: evdev key events -> scans (tests/support/keyboard.py types)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.readers.protocols.ascii_lines import Scan
from tagtrail.readers.protocols.base import DecodeFailure
from tagtrail.readers.protocols.hid import EVENT_SIZE_32, HidDecoder, decode_stream
from tests.support import keyboard as kb

SSCC_LINE = "]C100106141411234567897"
GTIN_SERIAL = "]d201095011010209171719050810ABCD1234\x1d2110"


def scans(records: list[Scan | DecodeFailure]) -> list[tuple[str | None, str]]:
    return [(r.symbology, r.text) for r in records if isinstance(r, Scan)]


def failures(records: list[Scan | DecodeFailure]) -> list[str]:
    return [r.reason for r in records if isinstance(r, DecodeFailure)]


def test_typed_scans_with_shift_and_aim_identifier() -> None:
    data = kb.type_scan(SSCC_LINE) + kb.type_scan("Loc-A/01 #7")
    records = decode_stream(data)
    assert scans(records) == [("]C1", "00106141411234567897"), (None, "Loc-A/01 #7")]
    assert failures(records) == []


def test_gs_as_ctrl_bracket_and_as_alt_code() -> None:
    for gs in ("ctrl", "alt"):
        records = decode_stream(kb.type_scan(GTIN_SERIAL, gs=gs))
        assert scans(records) == [("]d2", GTIN_SERIAL[3:])], gs
        assert "\x1d" in scans(records)[0][1]


def test_tab_suffix_and_enter_is_then_a_bad_character() -> None:
    dec = HidDecoder(suffix="tab")
    out = dec.feed(kb.type_scan("ABC123", end="tab"))
    assert scans(out) == [(None, "ABC123")]
    # With Tab as the end key, Enter types CR, a control character the framer rejects.
    out = dec.feed(kb.type_scan("XYZ", end="enter") + kb.tap(kb.KEY_TAB))
    assert scans(out) == []
    assert failures(out) == ["sanity"]


def test_a_key_without_character_spoils_only_its_line() -> None:
    bad = kb.type_text("12") + kb.tap(kb.KEY_F1) + kb.type_text("34") + kb.tap(kb.KEY_ENTER)
    records = decode_stream(bad + kb.type_scan("5678"))
    assert failures(records) == ["sanity"]
    assert scans(records) == [(None, "5678")]
    failure = next(r for r in records if isinstance(r, DecodeFailure))
    assert failure.data.startswith(b"1234")


def test_autorepeat_types_again_and_releases_type_nothing() -> None:
    a = kb.KEYS["a"][0]
    data = kb.key(a, 1) + kb.key(a, 2) + kb.key(a, 0) + kb.tap(kb.KEY_ENTER)
    assert scans(decode_stream(data)) == [(None, "aa")]


def test_capslock_toggles_letters_only() -> None:
    data = kb.tap(58) + kb.type_text("ab1") + kb.tap(58) + kb.type_scan("c")
    assert scans(decode_stream(data)) == [(None, "AB1c")]


def test_unfinished_scan_and_partial_event_are_truncated() -> None:
    dec = HidDecoder()
    assert dec.feed(kb.type_text("12345")) == []
    assert dec.pending > 0
    out = dec.flush()
    assert failures(out) == ["truncated"]
    assert dec.pending == 0
    out = dec.feed(kb.type_text("9") + kb.tap(kb.KEY_ENTER)[:10])
    out += dec.flush()
    assert failures(out) == ["truncated", "truncated"]


def test_bad_event_type_and_key_value_are_sanity_failures() -> None:
    records = decode_stream(kb.event(0x40, 1, 1) + kb.event(kb.EV_KEY, 30, 7))
    assert failures(records) == ["sanity", "sanity"]


def test_32_bit_event_layout() -> None:
    data = kb.type_scan("42")
    # Re-pack each 24-byte event into the 16-byte layout of 32-bit time.
    small = b"".join(b"\0" * 8 + data[i + 16 : i + 24] for i in range(0, len(data), 24))
    dec = HidDecoder(event_size=EVENT_SIZE_32)
    assert scans(dec.feed(small) + dec.flush()) == [(None, "42")]


def test_counters_count_scans_and_failures() -> None:
    dec = HidDecoder()
    dec.feed(kb.type_scan("1") + kb.type_scan("") + kb.type_scan("2"))
    assert dec.counters["ok"] == 2
    assert dec.counters["garbage"] == 1  # an empty line


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data: bytes) -> None:
    dec = HidDecoder()
    for rec in dec.feed(data) + dec.flush():
        assert isinstance(rec, Scan | DecodeFailure)
    assert dec.pending == 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(alphabet="0123456789ABCDEFabcdef-/.", min_size=1, max_size=30), max_size=5),
    st.integers(min_value=1, max_value=100),
)
def test_chunking_does_not_change_the_result(lines: list[str], chunk: int) -> None:
    data = b"".join(kb.type_scan(line) for line in lines)
    whole = decode_stream(data)
    dec = HidDecoder()
    parts: list[Scan | DecodeFailure] = []
    for i in range(0, len(data), chunk):
        parts += dec.feed(data[i : i + chunk])
    parts += dec.flush()
    assert parts == whole
    assert scans(whole) == [(None, line) for line in lines]
