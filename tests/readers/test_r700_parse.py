"""The pure parser of the R700 data stream: events, keep-alives and bad lines by reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.readers.r700_events import (
    LINE_FAILURE_REASONS,
    KeepAlive,
    LineDecoder,
    LineFailure,
    OtherEvent,
    TagInventory,
    parse_line,
)

EPC_HEX = "E2801170000002070000A1A1"
EPC_RAW = bytes.fromhex(EPC_HEX)


def tag_line(**fields: Any) -> bytes:
    body: dict[str, Any] = {
        "epcHex": EPC_HEX,
        "antennaPort": 2,
        "antennaName": "Antenna 2",
        "peakRssiCdbm": -5230,
        "frequency": 915250,
        "transmitPowerCdbm": 3000,
        "lastSeenTime": "2026-01-01T00:00:01.250Z",
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    event = {
        "timestamp": "2026-01-01T00:00:01.251Z",
        "eventType": "tagInventory",
        "tagInventoryEvent": body,
    }
    return json.dumps(event).encode()


def test_a_full_tag_event_is_parsed() -> None:
    rec = parse_line(tag_line())
    assert rec == TagInventory(
        epc=EPC_HEX,
        antenna=2,
        antenna_name="Antenna 2",
        rssi_dbm=-52.3,
        frequency_khz=915250,
        tx_power_cdbm=3000,
        last_seen="2026-01-01T00:00:01.250Z",
        timestamp="2026-01-01T00:00:01.251Z",
    )


def test_base64url_epc_is_the_fallback_and_lower_hex_is_upper_cased() -> None:
    odd = bytes.fromhex("FBFFBF30340000000000A1A1")
    urlsafe = base64.urlsafe_b64encode(odd).decode()
    assert "_" in urlsafe  # the alphabets differ for this EPC
    assert "-" in urlsafe
    for text in (urlsafe, base64.b64encode(odd).decode()):
        only_b64 = parse_line(tag_line(epcHex=None, epc=text))
        assert isinstance(only_b64, TagInventory)
        assert only_b64.epc == "FBFFBF30340000000000A1A1"
    urlsafe = base64.urlsafe_b64encode(EPC_RAW).decode()
    unpadded = parse_line(tag_line(epcHex=None, epc=base64.b64encode(b"\x30\x34").decode()))
    assert isinstance(unpadded, TagInventory)
    assert unpadded.epc == "3034"
    lower = parse_line(tag_line(epcHex=EPC_HEX.lower(), epc=urlsafe.rstrip("=")))
    assert isinstance(lower, TagInventory)
    assert lower.epc == EPC_HEX


def test_optional_fields_may_be_absent() -> None:
    rec = parse_line(
        tag_line(
            antennaName=None,
            peakRssiCdbm=None,
            frequency=None,
            transmitPowerCdbm=None,
            lastSeenTime=None,
        )
    )
    assert rec == TagInventory(epc=EPC_HEX, antenna=2, timestamp="2026-01-01T00:00:01.251Z")


def test_keepalives_and_other_events() -> None:
    assert parse_line(b"") == KeepAlive()
    assert parse_line(b"\r") == KeepAlive()
    status = parse_line(
        b'{"timestamp":"t","eventType":"inventoryStatus",'
        b'"inventoryStatusEvent":{"inventoryStatus":"running"}}'
    )
    assert status == OtherEvent("inventoryStatus", {"inventoryStatus": "running"}, "t")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "json"),
        (b"\xff\xfe{}", "json"),
        (b"[1, 2]", "shape"),
        (b'{"tagInventoryEvent": {}}', "shape"),
        (b'{"eventType": 7}', "shape"),
        (b'{"eventType": "tagInventory", "tagInventoryEvent": "x"}', "shape"),
        (b'{"eventType": "somethingNew", "somethingNewEvent": {}}', "unknown_event"),
        (tag_line(antennaPort=None), "missing_field"),
        (tag_line(epcHex=None), "missing_field"),
        (tag_line(antennaPort="1"), "bad_field"),
        (tag_line(antennaPort=True), "bad_field"),
        (tag_line(antennaPort=0), "bad_field"),
        (tag_line(peakRssiCdbm=-52.3), "bad_field"),
        (tag_line(peakRssiCdbm=500), "bad_field"),
        (tag_line(frequency="915"), "bad_field"),
        (tag_line(epcHex="E28G"), "bad_epc"),
        (tag_line(epcHex="E28011"), "bad_epc"),  # not whole 16-bit words
        (tag_line(epcHex=""), "bad_epc"),
        (tag_line(epcHex=None, epc="***"), "bad_epc"),
        (tag_line(epcHex=None, epc=12), "bad_epc"),
        (tag_line(epc=base64.urlsafe_b64encode(b"\x30\x34").decode()), "epc_mismatch"),
    ],
)
def test_bad_lines_fail_with_their_reason(line: bytes, reason: str) -> None:
    rec = parse_line(line)
    assert isinstance(rec, LineFailure)
    assert rec.reason == reason
    assert rec.line == line[:256]
    assert rec.detail


def test_decoder_splits_lines_across_chunks_and_counts() -> None:
    stream = tag_line() + b"\r\n\r\n" + b"{oops}\n" + tag_line(antennaPort=1) + b"\n"
    dec = LineDecoder()
    out = []
    for i in range(0, len(stream), 7):  # 7-byte chunks cut lines anywhere
        out += dec.feed(stream[i : i + 7])
    out += dec.flush()
    kinds = [type(r).__name__ for r in out]
    assert kinds == ["TagInventory", "KeepAlive", "LineFailure", "TagInventory"]
    assert [r.antenna for r in out if isinstance(r, TagInventory)] == [2, 1]
    assert dec.counters["ok"] == 2
    assert dec.counters["keepalive"] == 1
    assert dec.counters["json"] == 1
    assert dec.pending == 0


def test_decoder_reports_a_cut_line_and_drops_an_endless_one() -> None:
    dec = LineDecoder(max_line=100)
    assert dec.feed(tag_line()[:40]) == []
    assert dec.pending == 40
    (cut,) = dec.flush()
    assert isinstance(cut, LineFailure)
    assert cut.reason == "truncated"
    out = dec.feed(b"x" * 150)  # over the limit: reported at once, then skipped to LF
    assert [r.reason for r in out if isinstance(r, LineFailure)] == ["too_long"]
    assert dec.feed(b"y" * 500) == []
    assert dec.pending == 0
    assert dec.feed(b"\n") == []  # the end of the dropped line
    rest = dec.feed(b'{"eventType":"diagnostic","diagnosticEvent":{}}\n')
    assert rest == [OtherEvent("diagnostic", {}, None)]
    assert dec.counters["too_long"] == 1
    assert dec.counters["truncated"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_without_raising(data: bytes) -> None:
    dec = LineDecoder(max_line=128)
    out = dec.feed(data) + dec.flush()
    for rec in out:
        assert isinstance(rec, TagInventory | OtherEvent | KeepAlive | LineFailure)
        if isinstance(rec, LineFailure):
            assert rec.reason in LINE_FAILURE_REASONS
    total = sum(dec.counters.values())
    assert total == len(out)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=4,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "epcHex": json_values | st.text("0123456789abcdefABCDEF", max_size=64),
            "epc": json_values,
            "antennaPort": json_values,
            "peakRssiCdbm": json_values,
            "frequency": json_values,
            "transmitPowerCdbm": json_values,
            "antennaName": json_values,
            "lastSeenTime": json_values,
        },
    )
)
def test_any_tag_event_body_gives_a_read_or_a_failure(body: dict[str, Any]) -> None:
    line = json.dumps({"eventType": "tagInventory", "tagInventoryEvent": body}).encode()
    rec = parse_line(line)
    assert isinstance(rec, TagInventory | LineFailure)
    if isinstance(rec, TagInventory):
        assert rec.epc == rec.epc.upper()
        assert len(rec.epc) % 4 == 0
        assert 1 <= rec.antenna <= 32
