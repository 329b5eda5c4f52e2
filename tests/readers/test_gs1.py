"""GS1 scan parsing: classification by symbology identifier, identities, check digits,
dates, the missing-separator pitfall and keyboard-wedge separator substitutes.

Valid numbers are built here with this file's own GS1 mod-10 check digit (weights 3 and
1 from the right), independently of biip and of the module under test.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.errors import TagtrailError
from tagtrail.events import GtinQuantityIdentity, GtinSerialIdentity, SsccIdentity
from tagtrail.readers.gs1 import Gs1Error, ScanResult, parse_scan, split_aim, symbology_name

GS = "\x1d"


def check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return str((10 - total % 10) % 10)


def with_check(body: str) -> str:
    return body + check_digit(body)


def wrong_check(body: str) -> str:
    return body + str((int(check_digit(body)) + 1) % 10)


GTIN = with_check("0950600013435")  # 09506000134352
SSCC = with_check("10614141123456789")  # 106141411234567897


def test_own_check_digit_helper_matches_published_numbers() -> None:
    # GS1's own examples: GTIN 09506000134352 and SSCC 106141411234567897.
    assert GTIN == "09506000134352"
    assert SSCC == "106141411234567897"
    assert with_check("400638133393") == "4006381333931"


# --- identities ----------------------------------------------------------------------------


def test_sscc_label() -> None:
    res = parse_scan("00" + SSCC, "]C1")
    assert res.is_gs1
    assert res.symbology == "GS1-128"
    assert res.symbology_id == "]C1"
    assert res.elements == {"00": SSCC}
    assert res.identity == SsccIdentity(scheme="sscc", sscc=SSCC)


def test_sscc_wins_over_content_fields_of_a_pallet_label() -> None:
    content = with_check("1950600013435")
    res = parse_scan("00" + SSCC + "02" + content + "3712", "]C1")
    assert res.identity == SsccIdentity(scheme="sscc", sscc=SSCC)
    assert res.elements == {"00": SSCC, "02": content, "37": "12"}


def test_gtin_serial_with_expiry_and_batch_kept() -> None:
    text = "01" + GTIN + "17261231" + "10LOT42" + GS + "21SN0001"
    res = parse_scan(text, "]d2")
    assert res.symbology == "GS1 DataMatrix"
    assert res.identity == GtinSerialIdentity(scheme="gtin_serial", gtin=GTIN, serial="SN0001")
    assert res.elements == {"01": GTIN, "17": "261231", "10": "LOT42", "21": "SN0001"}
    assert res.expiry == date(2026, 12, 31)
    assert res.text == text
    assert res.warnings == ()


def test_expiry_day_zero_is_last_day_of_month() -> None:
    res = parse_scan("01" + GTIN + "17280200", "]C1")
    assert res.expiry == date(2028, 2, 29)


@pytest.mark.parametrize(("ai", "symbology"), [("37", "]Q3"), ("30", "]C1"), ("37", "]e0")])
def test_gtin_quantity_with_count_and_batch(ai: str, symbology: str) -> None:
    res = parse_scan("01" + GTIN + "10B7" + GS + ai + "24", symbology)
    assert res.identity == GtinQuantityIdentity(
        scheme="gtin_quantity", gtin=GTIN, quantity=24, batch="B7"
    )


def test_gtin_alone_is_quantity_one_without_batch() -> None:
    res = parse_scan("01" + GTIN, "]C1")
    assert res.identity == GtinQuantityIdentity(scheme="gtin_quantity", gtin=GTIN, quantity=1)


def test_gs1_payload_without_item_key_has_no_identity() -> None:
    gln = with_check("950600013437")  # (414) location GLN
    res = parse_scan("414" + gln, "]C1")
    assert res.is_gs1
    assert res.elements == {"414": gln}
    assert res.identity is None


def test_ean13() -> None:
    res = parse_scan("4006381333931", "]E0")
    assert res.is_gs1
    assert res.symbology == "EAN-13/UPC"
    assert res.elements == {"01": "04006381333931"}
    assert res.identity == GtinQuantityIdentity(
        scheme="gtin_quantity", gtin="04006381333931", quantity=1
    )


def test_upc_a_as_ean13_with_leading_zero() -> None:
    # UPC-A 614141000036 arrives as the EAN-13 0614141000036; both give the same GTIN-14.
    as_ean = parse_scan("0614141000036", "]E0")
    as_upc = parse_scan("614141000036", "]E0")
    assert as_ean.identity == as_upc.identity
    assert as_ean.identity == GtinQuantityIdentity(
        scheme="gtin_quantity", gtin="00614141000036", quantity=1
    )


def test_upc_e_is_expanded() -> None:
    # UPC-E 04252614 is UPC-A 042100005264 (number system 0, last digit 4 rule).
    res = parse_scan("04252614", "]E0")
    assert res.elements == {"01": "00042100005264"}


def test_ean8_and_itf14_and_addon() -> None:
    assert parse_scan("96385074", "]E4").elements == {"01": "00000096385074"}
    itf = with_check("1950600013435")
    assert parse_scan(itf, "]I1").elements == {"01": itf}
    res = parse_scan("4006381333931" + "12", "]E3")
    assert res.addon == "12"
    assert res.elements == {"01": "04006381333931"}


# --- not GS1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "symbology", "name"),
    [
        ("00" + SSCC, "]C0", "Code 128"),  # looks like an SSCC, but plain Code 128
        ("01" + GTIN + "21ABC", "]Q1", "QR Code"),
        ("LOC-A-01-03", "]C0", "Code 128"),
        ("https://id.gs1.org/01/09506000134352", "]Q1", "QR Code"),
        ("4006381333931", "]A0", "Code 39"),
        ("0109506000134352", "]d1", "Data Matrix"),
        ("00" + SSCC, None, "unknown"),  # no identifier and no GS: not guessed
        ("4006381333931", None, "unknown"),
    ],
)
def test_non_gs1_text_stays_non_gs1(text: str, symbology: str | None, name: str) -> None:
    res = parse_scan(text, symbology)
    assert res == ScanResult(text=text, symbology_id=symbology, symbology=name, is_gs1=False)
    assert res.elements == {}
    assert res.identity is None


def test_gs_without_identifier_means_gs1() -> None:
    res = parse_scan("01" + GTIN + "10X" + GS + "21Y", None)
    assert res.is_gs1
    assert res.identity == GtinSerialIdentity(scheme="gtin_serial", gtin=GTIN, serial="Y")


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "symbology", "needle"),
    [
        ("01" + wrong_check("0950600013435"), "]C1", "check digit"),
        ("00" + wrong_check("10614141123456789"), "]C1", "check digit"),
        (wrong_check("400638133393"), "]E0", "check digit"),
        (wrong_check("9638507"), "]E4", "check digit"),
        ("400638133393", "]E4", "8 digits"),
        ("40063813339X", "]E0", "digits"),
        ("01" + GTIN + "17251301", "]C1", "(17)"),  # month 13
        ("01" + GTIN + "17250231", "]C1", "(17)"),  # 31 February
        ("01" + GTIN + "3700", "]C1", "at least 1"),
        ("99", "]C1", "GS1"),
        ("", "]C1", "empty"),
        ("HELLO", "]d2", "GS1"),
        ("01" + GTIN + "10A" + GS + "10B", "]C1", "twice"),
    ],
)
def test_bad_gs1_payload_raises_clear_error(text: str, symbology: str, needle: str) -> None:
    with pytest.raises(Gs1Error) as info:
        parse_scan(text, symbology)
    assert needle in str(info.value)
    assert isinstance(info.value, TagtrailError)


def test_invalid_dates_can_be_allowed() -> None:
    res = parse_scan("01" + GTIN + "17000000", "]C1", verify_dates=False)
    assert res.elements["17"] == "000000"
    assert res.expiry is None


# --- the merged-field pitfall -----------------------------------------------------------------


def test_serial_longer_than_20_means_a_missing_separator() -> None:
    with pytest.raises(Gs1Error, match=r"missing GS separator after AI \(21\)"):
        parse_scan("01" + GTIN + "21" + "A" * 25, "]C1")


def test_variable_field_followed_by_data_without_gs_is_refused() -> None:
    # batch at its full 20 characters, then a serial with no GS in between
    with pytest.raises(Gs1Error, match=r"missing GS separator after AI \(10\)"):
        parse_scan("01" + GTIN + "10" + "B" * 20 + "21SN1", "]C1")
    # ... and the same with a GS is fine
    res = parse_scan("01" + GTIN + "10" + "B" * 20 + GS + "21SN1", "]C1")
    assert res.elements["21"] == "SN1"


def test_text_that_cannot_follow_is_refused() -> None:
    # a 20-character serial, then something that is no element string
    with pytest.raises(Gs1Error, match=r"after AI \(21\)"):
        parse_scan("01" + GTIN + "21" + "S" * 20 + "ZZ", "]C1")


def test_merged_expiry_in_last_serial_is_warned_about() -> None:
    res = parse_scan("01" + GTIN + "21ABC123" + "17261231", "]C1")
    # the serial really is 'ABC12317261231' as far as the payload says: kept, but flagged
    assert res.identity == GtinSerialIdentity(
        scheme="gtin_serial", gtin=GTIN, serial="ABC12317261231"
    )
    [warning] = res.warnings
    assert "(17)" in warning
    assert "separator" in warning
    # with the separator there is nothing to warn about
    ok = parse_scan("01" + GTIN + "21ABC123" + GS + "17261231", "]C1")
    assert ok.warnings == ()
    assert ok.expiry == date(2026, 12, 31)


# --- separators --------------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["~", "|", "<GS>"])
def test_keyboard_wedge_substitutes(sub: str) -> None:
    text = "01" + GTIN + "10LOT" + sub + "21SN9"
    res = parse_scan(text, "]C1", gs_substitutes=[sub])
    assert res.elements == {"01": GTIN, "10": "LOT", "21": "SN9"}
    assert res.text == text
    if sub == "<GS>":
        # '<', 'G', 'S', '>' are all legal in values: unconfigured, the batch swallows the
        # rest. This is the undetectable merge the module docstring warns about.
        assert parse_scan(text, "]C1").elements["10"] == "LOT<GS>21SN9"
    else:
        # '~' and '|' are outside CSET 82: unconfigured, the payload is refused.
        with pytest.raises(Gs1Error, match=r"after AI \(10\)"):
            parse_scan(text, "]C1")


def test_substitutes_do_not_touch_plain_text() -> None:
    assert parse_scan("A~B", "]C0", gs_substitutes=["~"]).text == "A~B"


@pytest.mark.parametrize("sub", ["A", "-", "1", ""])
def test_substitute_inside_gs1_charset_is_refused(sub: str) -> None:
    with pytest.raises(Gs1Error):
        parse_scan("01" + GTIN, "]C1", gs_substitutes=[sub])


def test_leading_and_trailing_gs_are_ignored() -> None:
    res = parse_scan(GS + "01" + GTIN + "10X" + GS, "]C1")
    assert res.elements == {"01": GTIN, "10": "X"}


# --- helpers --------------------------------------------------------------------------------


def test_split_aim_and_names() -> None:
    assert split_aim("]C1010950") == ("]C1", "010950")
    assert split_aim("]x1abc") == (None, "]x1abc")
    assert split_aim("]C") == (None, "]C")
    assert symbology_name("]E4") == "EAN-8"
    assert symbology_name("]z0") == "Aztec Code"
    assert symbology_name(None) == "unknown"


def test_to_dict() -> None:
    res = parse_scan("01" + GTIN + "17261231" + "21S", "]C1")
    assert res.to_dict() == {
        "text": "01" + GTIN + "17261231" + "21S",
        "symbology_id": "]C1",
        "symbology": "GS1-128",
        "is_gs1": True,
        "elements": {"01": GTIN, "17": "261231", "21": "S"},
        "identity": {"scheme": "gtin_serial", "gtin": GTIN, "serial": "S"},
        "expiry": "2026-12-31",
        "addon": None,
        "warnings": [],
    }


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=200)
@given(body=st.text("0123456789", min_size=12, max_size=12))
def test_any_ean13_with_good_check_digit_parses_and_bad_one_fails(body: str) -> None:
    res = parse_scan(with_check(body), "]E0")
    assert res.identity == GtinQuantityIdentity(
        scheme="gtin_quantity", gtin="0" + with_check(body), quantity=1
    )
    with pytest.raises(Gs1Error):
        parse_scan(wrong_check(body), "]E0")


@settings(max_examples=200)
@given(
    body=st.text("0123456789", min_size=13, max_size=13),
    serial=st.text(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-./"),
        min_size=1,
        max_size=20,
    ),
)
def test_gtin_serial_round_trip(body: str, serial: str) -> None:
    gtin = with_check(body)
    res = parse_scan("01" + gtin + "21" + serial, "]d2")
    assert res.identity == GtinSerialIdentity(scheme="gtin_serial", gtin=gtin, serial=serial)


@settings(max_examples=300)
@given(
    text=st.text(max_size=60),
    symbology=st.sampled_from([None, "]C1", "]C0", "]d2", "]Q3", "]Q1", "]E0", "]E3", "]e0"]),
)
def test_any_text_gives_a_result_or_gs1_error(text: str, symbology: str | None) -> None:
    try:
        res = parse_scan(text, symbology)
    except Gs1Error:
        assert symbology not in ("]C0", "]Q1")
        return
    assert res.text == text
    if symbology in ("]C0", "]Q1"):
        assert not res.is_gs1
