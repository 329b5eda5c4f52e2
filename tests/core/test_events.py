"""The event contract: parsing, rejection of bad payloads, generated docs not drifted."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from tagtrail import docgen
from tagtrail import events as ev
from tagtrail.errors import ContractError

ROOT = Path(__file__).resolve().parents[2]


def _arrived() -> dict[str, object]:
    return ev.dump_event(docgen.example_events()[0])


def test_single_event_and_batch_both_parse() -> None:
    one = json.dumps(_arrived())
    assert [e.kind for e in ev.parse_message(one)] == ["arrived"]
    batch = ev.encode_batch(docgen.example_events())
    parsed = ev.parse_message(batch)
    assert [e.kind for e in parsed] == [
        "arrived",
        "moved",
        "departed",
        "arrived",
        "reader_status",
        "device_status",
    ]
    assert parsed == docgen.example_events()


def test_stored_payloads_join_into_a_batch() -> None:
    stored = [e.model_dump_json() for e in docgen.example_events()]
    assert ev.parse_message(ev.encode_payloads(stored)) == docgen.example_events()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"colour": "red"}, "colour"),
        ({"event_time": "2026-11-29T08:00:00"}, "event_time"),
        ({"schema_version": 2}, "schema_version"),
        ({"epc": "E200"}, "epc must equal identity.epc"),
        ({"epc": "xyz"}, "epc"),
        ({"site": "wh/1"}, "site"),
        ({"antenna": 0}, "antenna"),
        ({"kind": "teleported"}, "kind"),
        ({"identity": {"scheme": "sscc", "sscc": "106141411234567890"}}, "check digit"),
    ],
)
def test_invalid_events_are_rejected_with_the_field(change: dict[str, object], where: str) -> None:
    data = {**_arrived(), **change}
    with pytest.raises(ContractError) as info:
        ev.parse_message(json.dumps(data))
    assert where in str(info.value)


def test_not_json_is_a_contract_error() -> None:
    with pytest.raises(ContractError):
        ev.parse_message(b"\xff\xfe not json")


def test_moved_needs_a_different_zone() -> None:
    data = {**_arrived(), "kind": "moved", "from_zone": "dock-door-1"}
    with pytest.raises(ContractError, match="differ"):
        ev.parse_message(json.dumps(data))


def test_events_are_frozen() -> None:
    event = docgen.example_events()[0]
    with pytest.raises(ValueError, match="frozen"):
        event.zone = "elsewhere"  # type: ignore[union-attr]


def test_barcode_identities_fit_version_1() -> None:
    base = _arrived()
    for identity, key in [
        ({"scheme": "sscc", "sscc": "106141411234567897"}, "sscc:106141411234567897"),
        (
            {"scheme": "gtin_serial", "gtin": "09506000134352", "serial": "ABC123"},
            "gtin_serial:09506000134352:ABC123",
        ),
        (
            {"scheme": "gtin_quantity", "gtin": "09506000134352", "quantity": 12},
            "gtin_quantity:09506000134352:",
        ),
        (
            {"scheme": "code", "symbology": "Code 128", "symbology_id": "]C0", "text": "LOC-A"},
            "code:]C0:LOC-A",
        ),
        ({"scheme": "code", "symbology": "unknown", "text": "X 1"}, "code:unknown:X 1"),
    ]:
        event = ev.parse_message(json.dumps({**base, "identity": identity, "epc": None}))[0]
        assert isinstance(event, ev.Arrived)
        assert event.item_key == key


def test_attributes_of_barcode_items() -> None:
    base = {**_arrived(), "identity": {"scheme": "sscc", "sscc": "106141411234567897"}}
    event = ev.parse_message(
        json.dumps({**base, "epc": None, "attributes": {"batch": "L1", "expiry": "2027-02-28"}})
    )[0]
    assert isinstance(event, ev.Arrived)
    assert event.attributes == ev.ItemAttributes(batch="L1", expiry=date(2027, 2, 28))
    for bad in ({"batch": ""}, {"expiry": "2027-02-30"}, {"colour": "red"}):
        with pytest.raises(ContractError, match="attributes"):
            ev.parse_message(json.dumps({**base, "epc": None, "attributes": bad}))


@pytest.mark.parametrize(
    "identity",
    [
        {"scheme": "code", "symbology": "Code 128", "symbology_id": "C0", "text": "x"},
        {"scheme": "code", "symbology": "Code 128", "text": ""},
        {"scheme": "code", "symbology": "", "text": "x"},
        {"scheme": "code", "symbology": "QR Code", "text": "x" * 1025},
    ],
)
def test_bad_code_identities_are_rejected(identity: dict[str, object]) -> None:
    with pytest.raises(ContractError, match="identity"):
        ev.parse_message(json.dumps({**_arrived(), "identity": identity, "epc": None}))


def test_topics() -> None:
    assert ev.events_topic("wh1", "door-1") == "tagtrail/v1/wh1/door-1/events"
    assert ev.status_topic("wh1", "door-1") == "tagtrail/v1/wh1/door-1/status"
    assert ev.deadletter_topic("wh1") == "tagtrail/v1/wh1/deadletter"


def test_generated_docs_have_not_drifted() -> None:
    stale = docgen.drifted(ROOT)
    assert stale == [], f"run 'tagtrail schema --write': {stale}"


def test_drift_is_detected(tmp_path: Path) -> None:
    docgen.write_all(tmp_path)
    assert docgen.drifted(tmp_path) == []
    schema = tmp_path / docgen.SCHEMA_PATH
    schema.write_text(schema.read_text().replace("read_count", "reads"))
    assert docgen.drifted(tmp_path) == [docgen.SCHEMA_PATH]


def test_schema_covers_every_kind() -> None:
    text = ev.json_schema_text()
    for kind in ("arrived", "moved", "departed", "reader_status", "device_status"):
        assert f'"const": "{kind}"' in text
