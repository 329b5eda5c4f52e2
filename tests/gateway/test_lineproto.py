"""Line protocol built by hand: escaping, number types, timestamps, and real influxd reads."""

from __future__ import annotations

import calendar
import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tagtrail.events import (
    Arrived,
    Departed,
    DeviceStatus,
    EpcIdentity,
    GtinSerialIdentity,
    Moved,
    ReaderStatus,
)
from tagtrail.gateway import lineproto
from tests.support.influxd import Influxd

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
DB = "lp"


def movement(
    kind: str = "arrived",
    *,
    epc: str | None = "E200301666130121155074EF",
    zone: str = "dock-1",
    rssi: float | None = -60.0,
    read_count: int = 3,
    when: datetime = T0,
    serial: str | None = None,
) -> Arrived | Moved | Departed:
    if serial is not None:
        identity: Any = GtinSerialIdentity(
            scheme="gtin_serial", gtin="09506000134352", serial=serial
        )
        epc = None
    else:
        assert epc is not None
        identity = EpcIdentity(scheme="epc", epc=epc)
    common: dict[str, Any] = {
        "event_id": f"ev-{kind}-{when.timestamp()}-{zone}",
        "event_time": when,
        "site": "wh-1",
        "device": "edge-1",
        "reader": "door-a",
        "antenna": 2,
        "zone": zone,
        "identity": identity,
        "epc": epc,
        "first_seen": when - timedelta(seconds=2),
        "last_seen": when,
        "read_count": read_count,
        "peak_rssi_dbm": rssi,
    }
    if kind == "arrived":
        return Arrived(kind="arrived", **common)
    if kind == "moved":
        return Moved(kind="moved", from_zone="aisle-3", **common)
    return Departed(kind="departed", **common)


def post_write(server: Influxd, db: str, body: str) -> tuple[int, str]:
    """POST /write; the status and body, for 4xx answers too."""
    url = f"{server.url}/write?db={urllib.parse.quote(db)}&precision=ns"
    req = urllib.request.Request(url, data=body.encode(), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def field_types(server: Influxd, measurement: str) -> dict[str, str]:
    rows = server.rows(f'SHOW FIELD KEYS FROM "{measurement}"', DB)
    return {r["fieldKey"]: r["fieldType"] for r in rows}


# ------------------------------------------------------------------- pure functions


def test_tag_values_escape_commas_equals_and_spaces() -> None:
    # Line protocol: tag values escape ',', '=' and ' ' with a backslash.
    assert lineproto.tag_value("dock 1,a=b") == "dock\\ 1\\,a\\=b"
    assert lineproto.tag_value("plain-name_1.2") == "plain-name_1.2"


def test_string_fields_are_quoted_with_quotes_and_backslashes_escaped() -> None:
    assert lineproto.string_field('say "hi"') == '"say \\"hi\\""'
    assert lineproto.string_field("C:\\tmp\\") == '"C:\\\\tmp\\\\"'
    assert lineproto.string_field("a,b=c d") == '"a,b=c d"'  # nothing else needs escaping


@pytest.mark.parametrize("value", [-60, -60.0, 0, -0.0, 17, 1e20, 1.5e-7, -73.25, 2**53])
def test_float_fields_always_look_like_floats(value: float) -> None:
    text = lineproto.float_field(value)
    assert not text.endswith(("i", "u"))
    assert "." in text or "e" in text
    assert float(text) == float(value)


def test_rssi_is_a_float_and_counts_are_integers_in_movement_lines() -> None:
    line = lineproto.movement_line(movement(rssi=-60), 1_772_366_400_123_456_000)
    assert "rssi_dbm=-60.0" in line.split(" ")[1].split(",")
    assert "read_count=3i" in line
    assert "antenna=2i" in line
    assert line.endswith(" 1772366400123456000")


def test_movement_line_fields_per_kind() -> None:
    moved = lineproto.movement_line(movement("moved"), 1)
    assert ',from_zone="aisle-3"' in moved
    assert "kind=moved" in moved.split(" ")[0]
    arrived = lineproto.movement_line(movement("arrived", rssi=None), 1)
    assert "from_zone" not in arrived
    assert "rssi_dbm" not in arrived
    # The EPC is a field, never a tag.
    key = lineproto.movement_series(movement())
    assert "E200301666130121155074EF" not in key
    assert 'epc="E200301666130121155074EF"' in lineproto.movement_line(movement(), 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_rssi_is_left_out(bad: float) -> None:
    # The contract refuses NaN/Infinity (they never reach the gateway from MQTT) ...
    with pytest.raises(ValidationError, match="finite"):
        movement(rssi=bad)
    # ... and line protocol, which has no such numbers, leaves them out even if an
    # event is built without validation.
    event = movement().model_copy(update={"peak_rssi_dbm": bad})
    line = lineproto.movement_line(event, 1)
    assert "rssi_dbm" not in line
    assert "nan" not in line.lower()
    assert "inf" not in line.lower()


@pytest.mark.parametrize(
    "ts",
    [
        datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_time_ns_is_exact(ts: datetime) -> None:
    expected = calendar.timegm(ts.utctimetuple()) * 10**9 + ts.microsecond * 1000
    assert lineproto.time_ns(ts) == expected


# ------------------------------------------------------------------ through influxd


def test_every_line_reads_back_from_influxd_with_the_right_types(influxd: Influxd) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    base = lineproto.time_ns(T0)
    events = [
        movement("arrived", rssi=-60, read_count=1),  # an integral RSSI first
        movement("moved", rssi=-61.5, read_count=7, zone="dock-2"),
        movement("departed", rssi=None, read_count=0, zone="dock-3"),
        movement("arrived", serial="AB-7", rssi=-70, zone="dock-4"),
    ]
    lines = [lineproto.movement_line(e, base + i) for i, e in enumerate(events)]
    status = ReaderStatus(
        kind="reader_status",
        event_id="status-reader-1",
        event_time=T0,
        site="wh-1",
        device="edge-1",
        reader="door-a",
        reader_type="r2000",
        state="online",
        read_rate_per_s=120,
        reads_total=5000,
        error_counts={"checksum": 2, "reader_0x22": 1},
        round_read_rate_per_s=310,
        round_total_reads=62,
        antenna_reads={1: 3100, 2: 1900},
        counters={"engine_zxing": 7},
    )
    device = DeviceStatus(
        kind="device_status",
        event_id="status-device-1",
        event_time=T0,
        site="wh-1",
        device="edge-1",
        state="online",
        reason="heartbeat",
        software_version="0.1.0",
        uptime_s=12,
        heartbeat_interval_s=30,
        outbox_depth=4,
    )
    lines += [
        lineproto.reader_status_line(status, base),
        lineproto.device_status_line(device, base),
        lineproto.stock_line("wh-1", "dock 1,a=b", 42, base),
    ]
    assert post_write(influxd, DB, "\n".join(lines)) == (204, "")

    assert field_types(influxd, "movement") == {
        "antenna": "integer",
        "epc": "string",
        "event_id": "string",
        "from_zone": "string",
        "item": "string",
        "read_count": "integer",
        "rssi_dbm": "float",
    }
    assert field_types(influxd, "reader_status") == {
        "err_checksum": "integer",
        "err_reader_0x22": "integer",
        "errors_total": "integer",
        "n_engine_zxing": "integer",
        "online": "integer",
        "read_rate_per_s": "float",
        "reads_ant1": "integer",
        "reads_ant2": "integer",
        "reads_total": "integer",
        "round_read_rate_per_s": "integer",
        "round_total_reads": "integer",
        "state": "string",
    }
    assert field_types(influxd, "device_status") == {
        "online": "integer",
        "outbox_depth": "integer",
        "state": "string",
        "uptime_s": "float",
    }
    assert field_types(influxd, "stock") == {"count": "integer"}

    rows = influxd.rows('SELECT * FROM "movement" ORDER BY time', DB)
    assert [r["time"] for r in rows] == [base + i for i in range(len(events))]
    for row, event in zip(rows, events, strict=True):
        assert row["kind"] == event.kind
        assert row["zone"] == event.zone
        assert row["reader"] == event.reader
        assert row["item"] == event.item_key
        assert row["epc"] == (event.epc or event.item_key)
        assert row["event_id"] == event.event_id
        assert row["read_count"] == event.read_count
        assert row["antenna"] == event.antenna
        assert row["rssi_dbm"] == event.peak_rssi_dbm
        assert row["from_zone"] == (event.from_zone if isinstance(event, Moved) else None)
    stock = influxd.rows('SELECT * FROM "stock"', DB)
    assert stock == [{"time": base, "site": "wh-1", "zone": "dock 1,a=b", "count": 42}]
    errors = influxd.rows('SELECT "err_checksum", "errors_total" FROM "reader_status"', DB)
    assert errors == [{"time": base, "err_checksum": 2, "errors_total": 3}]
    rounds = influxd.rows(
        'SELECT "round_read_rate_per_s", "round_total_reads" FROM "reader_status"', DB
    )
    assert rounds == [{"time": base, "round_read_rate_per_s": 310, "round_total_reads": 62}]


def test_integer_rssi_or_float_count_would_conflict_in_influxd(influxd: Influxd) -> None:
    """Why the types must never vary: InfluxDB refuses a field's second type."""
    influxd.query(f"CREATE DATABASE {DB}")
    base = lineproto.time_ns(T0)
    good = [lineproto.movement_line(movement(rssi=r), base + i) for i, r in enumerate([-60, -58])]
    assert post_write(influxd, DB, "\n".join(good)) == (204, "")
    series = lineproto.movement_series(movement())
    status, body = post_write(influxd, DB, f"{series} rssi_dbm=-60i {base + 10}")
    assert status == 400
    assert "field type conflict" in json.loads(body)["error"]
    status, body = post_write(influxd, DB, f"{series} read_count=3.0 {base + 11}")
    assert status == 400
    assert "field type conflict" in json.loads(body)["error"]
    # and the writer's own float/integer choice is stable for any value
    more = [
        lineproto.movement_line(movement(rssi=r, read_count=c), base + 20 + i)
        for i, (r, c) in enumerate([(-71.0, 0), (-3, 10**12), (0, 5), (-0.5, 1)])
    ]
    assert post_write(influxd, DB, "\n".join(more)) == (204, "")
    assert len(influxd.rows('SELECT "rssi_dbm" FROM "movement"', DB)) == 6


# string_field writes a newline as the two characters backslash-n (keeping every point
# on one line); influxd stores those two characters, so newlines do not round-trip.
_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n"),
    max_size=40,
)
# Tag values: the contract's names never contain a backslash, and 1.x line protocol
# cannot express a tag value ending in one; empty tag values are not allowed.
_TAG = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Zl", "Zp"), exclude_characters="\\"
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() == s and s != "")


_EXAMPLE = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_TEXT, tag=_TAG, stamp=st.integers(min_value=0, max_value=2**62))
def test_strings_and_tags_round_trip_through_influxd(
    influxd: Influxd, text: str, tag: str, stamp: int
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    measurement = f"rt{next(_EXAMPLE)}"  # one measurement per example
    line = (
        f"{measurement},t={lineproto.tag_value(tag)} "
        f"s={lineproto.string_field(text)},n={lineproto.float_field(stamp / 7)} {stamp}"
    )
    assert post_write(influxd, DB, line) == (204, "")
    rows = influxd.rows(f'SELECT * FROM "{measurement}" WHERE time = {stamp}', DB)  # noqa: S608
    # JSON drops the float-ness of integral floats ("2e16" comes back as an int)
    assert [{**r, "n": float(r["n"])} for r in rows] == [
        {"time": stamp, "t": tag, "s": text, "n": stamp / 7}
    ]
