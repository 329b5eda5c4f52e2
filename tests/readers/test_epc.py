"""EPC decoding per the GS1 Tag Data Standard: vectors, never-raises, encode->decode.

The vectors (tests/data/epc/vectors.json, sources in the README beside it) hold expected
values worked out from the standard, not from the decoder. The round trips use this file's
own small SGTIN-96 / SSCC-96 / SGTIN-198 encoder and its own GS1 mod-10, both written from
the TDS tables independently of :mod:`tagtrail.readers.epc`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.readers.epc import (
    EpcInfo,
    EpcNotGs1,
    EpcScheme,
    NotGs1Reason,
    decode_epc,
    gtin_of,
)
from tagtrail.readers.epc_cli import epc_command

VECTORS_FILE = Path(__file__).resolve().parents[1] / "data" / "epc" / "vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
KEY_FIELDS = ("gtin14", "sscc18", "gln13", "gln_extension", "grai", "giai")


# --- this file's own GS1 arithmetic and encoder (TDS 14.x tables, typed again here) -------


def mod10(body: str) -> str:
    """GS1 check digit: weights 3,1,3,... from the rightmost data digit."""
    weighted = 0
    for position, char in enumerate(body[::-1]):
        weighted += int(char) * (1 + 2 * ((position + 1) % 2))
    return str(-weighted % 10)


def check_ok(key: str) -> bool:
    return mod10(key[:-1]) == key[-1]


# GS1 Company Prefix digits -> (partition value, CP bits), same for every scheme.
CP_BITS = {12: (0, 40), 11: (1, 37), 10: (2, 34), 9: (3, 30), 8: (4, 27), 7: (5, 24), 6: (6, 20)}
# CP digits -> reference bits (the reference has 13 - CP digits for SGTIN, 17 - CP for SSCC).
SGTIN_REF_BITS = {12: 4, 11: 7, 10: 10, 9: 14, 8: 17, 7: 20, 6: 24}
SSCC_REF_BITS = {12: 18, 11: 21, 10: 24, 9: 28, 8: 31, 7: 34, 6: 38}
URI_ESCAPE = {"%": "%25", '"': "%22", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"}
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def to_hex(fields: list[tuple[int, int]]) -> str:
    """Concatenate (value, width) MSB first, zero-pad to whole 16-bit words, upper hex."""
    assert all(0 <= value < 1 << width for value, width in fields)
    text = "".join(format(value, f"0{width}b") for value, width in fields if width)
    text += "0" * (-len(text) % 16)
    return "".join(f"{int(text[i : i + 4], 2):X}" for i in range(0, len(text), 4))


def encode_sgtin96(flt: int, cp: str, item_ref: str, serial: int) -> str:
    partition, cp_bits = CP_BITS[len(cp)]
    return to_hex(
        [
            (0b00110000, 8),
            (flt, 3),
            (partition, 3),
            (int(cp), cp_bits),
            (int(item_ref), SGTIN_REF_BITS[len(cp)]),
            (serial, 38),
        ]
    )


def encode_sgtin198(flt: int, cp: str, item_ref: str, serial: str) -> str:
    partition, cp_bits = CP_BITS[len(cp)]
    chars = [(ord(c), 7) for c in serial]
    return to_hex(
        [
            (0b00110110, 8),
            (flt, 3),
            (partition, 3),
            (int(cp), cp_bits),
            (int(item_ref), SGTIN_REF_BITS[len(cp)]),
            *chars,
            (0, 140 - 7 * len(serial)),
        ]
    )


def encode_sscc96(flt: int, cp: str, serial_ref: str) -> str:
    partition, cp_bits = CP_BITS[len(cp)]
    return to_hex(
        [
            (0b00110001, 8),
            (flt, 3),
            (partition, 3),
            (int(cp), cp_bits),
            (int(serial_ref), SSCC_REF_BITS[len(cp)]),
            (0, 24),
        ]
    )


def test_own_encoder_matches_the_standard_example() -> None:
    # TDS Appendix E; if this fails the test's encoder, not the decoder, is wrong.
    assert encode_sgtin96(3, "0614141", "812345", 6789) == "3074257BF7194E4000001A85"
    assert mod10("8061414112345") == "8"


# --- vectors --------------------------------------------------------------------------------


def test_vector_file_is_substantial() -> None:
    sources = {v["source"] for v in VECTORS}
    assert {"TDS-E", "TDS-6.3", "EPCTAGCODER", "HAND", "TID"} <= sources
    schemes = {v["expect"].get("scheme") for v in VECTORS if v["expect"]["gs1"]}
    assert {s.value for s in EpcScheme} <= schemes
    partitions = {v["expect"].get("partition") for v in VECTORS if v["expect"]["gs1"]}
    assert {0, 3, 5, 6} <= partitions
    reasons = {v["expect"]["reason"] for v in VECTORS if not v["expect"]["gs1"]}
    assert reasons == {r.value for r in NotGs1Reason}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    result = decode_epc(vector["hex"])
    got = result.to_dict()
    for key, expected in vector["expect"].items():
        assert got.get(key) == expected, key
    if vector["expect"]["gs1"]:
        assert isinstance(result, EpcInfo)
        if "scheme" in vector["expect"]:  # full vectors name every key they expect
            assert {k for k in KEY_FIELDS if k in got} == {
                k for k in KEY_FIELDS if k in vector["expect"]
            }
        for key in ("gtin14", "sscc18", "gln13"):
            if key in got:
                assert check_ok(got[key]), key
        assert got["epc"] == vector["hex"].strip().upper()
    else:
        assert isinstance(result, EpcNotGs1)
        assert result.detail
        assert gtin_of(vector["hex"]) is None


# --- never raises ---------------------------------------------------------------------------


def _is_result(value: object) -> bool:
    return isinstance(value, (EpcInfo, EpcNotGs1))


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    result = decode_epc(text)
    assert _is_result(result)
    json.dumps(result.to_dict())
    gtin = gtin_of(text)
    assert gtin is None or (len(gtin) == 14 and check_ok(gtin))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([0x30, 0x31, 0x32, 0x33, 0x34, 0x36, 0x37, 0x38, 0x39, 0xE2, 0xF7, 0x00]),
    st.integers(min_value=0, max_value=32),
    st.data(),
)
def test_any_hex_under_a_known_header_never_raises(header: int, n_bytes: int, data: Any) -> None:
    body = data.draw(st.binary(min_size=n_bytes, max_size=n_bytes))
    text = f"{header:02X}{body.hex()}"
    case = data.draw(st.sampled_from([str.upper, str.lower]))
    result = decode_epc(case(text))
    assert _is_result(result)
    if isinstance(result, EpcInfo):
        assert result.epc_hex == text.upper()
        for key in (result.gtin14, result.sscc18, result.gln13):
            assert key is None or check_ok(key)


@pytest.mark.parametrize("value", [None, 12, b"3074257BF7194E4000001A85", ["30"]])
def test_non_string_input_is_invalid_hex(value: Any) -> None:
    result = decode_epc(value)
    assert isinstance(result, EpcNotGs1)
    assert result.reason is NotGs1Reason.INVALID_HEX
    assert gtin_of(value) is None


# --- encode -> decode with this file's encoder ----------------------------------------------

cp_digits = st.integers(min_value=6, max_value=12)


@settings(max_examples=300, deadline=None)
@given(cp_digits, st.integers(0, 7), st.integers(0, 2**38 - 1), st.data())
def test_sgtin96_round_trip(n_cp: int, flt: int, serial: int, data: Any) -> None:
    cp = str(data.draw(st.integers(0, 10**n_cp - 1))).zfill(n_cp)
    item_ref = str(data.draw(st.integers(0, 10 ** (13 - n_cp) - 1))).zfill(13 - n_cp)
    hexstr = encode_sgtin96(flt, cp, item_ref, serial)
    info = decode_epc(hexstr)
    assert isinstance(info, EpcInfo)
    assert info.scheme is EpcScheme.SGTIN_96
    assert (info.filter, info.partition) == (flt, 12 - n_cp)
    assert (info.company_prefix, info.reference, info.serial) == (cp, item_ref, str(serial))
    body = item_ref[0] + cp + item_ref[1:]
    assert info.gtin14 == body + mod10(body)
    assert gtin_of(hexstr) == info.gtin14
    assert info.pure_uri == f"urn:epc:id:sgtin:{cp}.{item_ref}.{serial}"
    assert info.tag_uri == f"urn:epc:tag:sgtin-96:{flt}.{cp}.{item_ref}.{serial}"
    assert info.element_string == f"(01){info.gtin14}(21){serial}"


@settings(max_examples=300, deadline=None)
@given(cp_digits, st.integers(0, 7), st.data())
def test_sscc96_round_trip(n_cp: int, flt: int, data: Any) -> None:
    cp = str(data.draw(st.integers(0, 10**n_cp - 1))).zfill(n_cp)
    serial_ref = str(data.draw(st.integers(0, 10 ** (17 - n_cp) - 1))).zfill(17 - n_cp)
    info = decode_epc(encode_sscc96(flt, cp, serial_ref))
    assert isinstance(info, EpcInfo)
    assert info.scheme is EpcScheme.SSCC_96
    assert (info.filter, info.partition, info.company_prefix) == (flt, 12 - n_cp, cp)
    assert info.reference == serial_ref
    body = serial_ref[0] + cp + serial_ref[1:]
    assert info.sscc18 == body + mod10(body)
    assert info.gtin14 is None
    assert info.pure_uri == f"urn:epc:id:sscc:{cp}.{serial_ref}"
    assert info.tag_uri == f"urn:epc:tag:sscc-96:{flt}.{cp}.{serial_ref}"


@settings(max_examples=300, deadline=None)
@given(cp_digits, st.text(alphabet=CSET82, min_size=1, max_size=20), st.data())
def test_sgtin198_round_trip(n_cp: int, serial: str, data: Any) -> None:
    cp = str(data.draw(st.integers(0, 10**n_cp - 1))).zfill(n_cp)
    item_ref = str(data.draw(st.integers(0, 10 ** (13 - n_cp) - 1))).zfill(13 - n_cp)
    hexstr = encode_sgtin198(1, cp, item_ref, serial)
    assert len(hexstr) == 52  # 198 bits in 13 words
    info = decode_epc(hexstr)
    assert isinstance(info, EpcInfo)
    assert info.serial == serial
    escaped = "".join(URI_ESCAPE.get(c, c) for c in serial)
    assert info.pure_uri == f"urn:epc:id:sgtin:{cp}.{item_ref}.{escaped}"
    assert info.element_string.endswith(f"(21){serial}")
    # byte-aligned (50 hex digits, 2 pad bits) is accepted too; a whole extra word is not
    assert decode_epc(hexstr[:50]) == dataclasses.replace(info, epc_hex=hexstr[:50])
    longer = decode_epc(hexstr + "0000")
    assert isinstance(longer, EpcNotGs1)
    assert longer.reason is NotGs1Reason.LENGTH_MISMATCH


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**88 - 1))
def test_random_sgtin96_bits_decode_only_when_the_encoder_agrees(rest: int) -> None:
    """Any 96 bits under header 0x30: either a rule of the standard rejects them, or the
    fields decoded re-encode (with this file's encoder) to exactly the same bits."""
    hexstr = f"30{rest:022X}"
    result = decode_epc(hexstr)
    if isinstance(result, EpcNotGs1):
        assert result.reason in {NotGs1Reason.BAD_PARTITION, NotGs1Reason.FIELD_OUT_OF_RANGE}
        return
    assert result.serial is not None
    again = encode_sgtin96(
        result.filter, result.company_prefix, result.reference, int(result.serial)
    )
    assert again == hexstr


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_random_sscc96_bits_decode_only_when_the_encoder_agrees(rest: int) -> None:
    hexstr = f"31{rest:016X}000000"
    result = decode_epc(hexstr)
    if isinstance(result, EpcNotGs1):
        assert result.reason in {NotGs1Reason.BAD_PARTITION, NotGs1Reason.FIELD_OUT_OF_RANGE}
        return
    assert encode_sscc96(result.filter, result.company_prefix, result.reference) == hexstr


# --- API details ----------------------------------------------------------------------------


def test_info_is_frozen_and_whitespace_is_ignored() -> None:
    info = decode_epc("  3074257BF7194E4000001A85\n")
    assert isinstance(info, EpcInfo)
    assert info.is_gs1
    assert (info.filter, info.filter_description) == (3, "reserved")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.serial = "1"  # type: ignore[misc]


def test_gtin_of() -> None:
    assert gtin_of("3074257BF7194E4000001A85") == "80614141123458"
    assert gtin_of("31AC16465751CCD0C2000000") is None  # SSCC
    assert gtin_of("E200301666130121155074EF") is None
    assert gtin_of("") is None


def test_filter_descriptions() -> None:
    sgtin = decode_epc(encode_sgtin96(1, "0614141", "812345", 1))
    sscc = decode_epc(encode_sscc96(6, "0614141", "1234567890"))
    assert isinstance(sgtin, EpcInfo)
    assert isinstance(sscc, EpcInfo)
    assert sgtin.filter_description == "point of sale (POS) trade item"
    assert sscc.filter_description == "unit load"


# --- CLI --------------------------------------------------------------------------------------


def test_cli_prints_one_json_object_per_epc() -> None:
    result = CliRunner().invoke(
        epc_command, ["3074257BF7194E4000001A85", "E200301666130121155074EF", "xyz"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["gs1"] for line in lines] == [True, False, False]
    assert lines[0]["gtin14"] == "80614141123458"
    assert lines[1]["reason"] == "unknown_header"
    assert lines[2]["reason"] == "invalid_hex"


def test_cli_reads_stdin_and_can_fail_on_non_gs1() -> None:
    result = CliRunner().invoke(
        epc_command,
        ["--strict"],
        input="3074257BF7194E4000001A85\n\nE200301666130121155074EF\n",
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2
    assert lines[0]["pure_uri"] == "urn:epc:id:sgtin:0614141.812345.6789"
