"""The positions store: apply, dedupe, ordering, stock, the InfluxDB spool, pagination,
durability (reopen, SIGKILL) and pruning."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.clock import ManualClock
from tagtrail.events import (
    AnyEvent,
    Arrived,
    Departed,
    DeviceStatus,
    EpcIdentity,
    Moved,
    ReaderStatus,
    SsccIdentity,
)
from tagtrail.gateway import lineproto
from tagtrail.gateway.store import (
    CursorError,
    ItemPosition,
    SqliteStore,
    StoreError,
    ZoneStock,
)
from tests.support.influxd import Influxd

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RETENTION_S = 3600.0


def epc_of(i: int) -> str:
    return f"E280{i:020X}"


def movement(
    i: int,
    kind: str,
    *,
    zone: str,
    at: float,
    event_id: str | None = None,
    from_zone: str = "dock",
    site: str = "wh1",
    reader: str = "r1",
) -> Arrived | Moved | Departed:
    """A movement of item ``i`` at ``T0 + at`` seconds."""
    epc = epc_of(i)
    when = T0 + timedelta(seconds=at)
    common = {
        "event_id": event_id or f"{kind}-{i}-{at}-{zone}-{site}",
        "event_time": when,
        "site": site,
        "device": "edge1",
        "reader": reader,
        "antenna": 1 + i % 4,
        "zone": zone,
        "identity": EpcIdentity(scheme="epc", epc=epc),
        "epc": epc,
        "first_seen": T0,
        "last_seen": when,
        "read_count": 3 + i,
        "peak_rssi_dbm": -50.0 - i % 10,
    }
    if kind == "arrived":
        return Arrived(kind="arrived", **common)  # type: ignore[arg-type]
    if kind == "moved":
        return Moved(kind="moved", from_zone=from_zone, **common)  # type: ignore[arg-type]
    return Departed(kind="departed", **common)  # type: ignore[arg-type]


def reader_status(i: int, *, at: float = 0.0) -> ReaderStatus:
    return ReaderStatus(
        kind="reader_status",
        event_id=f"rs-{i:08d}",
        event_time=T0 + timedelta(seconds=at),
        site="wh1",
        device="edge1",
        reader="r1",
        reader_type="r2000",
        state="online",
        read_rate_per_s=12.5,
        reads_total=100 + i,
        error_counts={"checksum": i},
    )


def device_status(i: int, *, at: float = 0.0) -> DeviceStatus:
    return DeviceStatus(
        kind="device_status",
        event_id=f"ds-{i:08d}",
        event_time=T0 + timedelta(seconds=at),
        site="wh1",
        device="edge1",
        state="online",
        reason="heartbeat",
        software_version="0.1.0",
        uptime_s=float(i),
        heartbeat_interval_s=10.0,
        outbox_depth=0,
    )


def open_store(path: Path, clock: ManualClock | None = None) -> SqliteStore:
    return SqliteStore(
        path, clock=clock or ManualClock(T0), dedupe_retention_s=RETENTION_S, synchronous="normal"
    )


def all_items(store: SqliteStore) -> list[ItemPosition]:
    items, cursor = store.list_items(limit=1_000_000)
    assert cursor is None
    return items


def line_ts(line: str) -> int:
    return int(line.rsplit(" ", 1)[1])


def line_series(line: str) -> str:
    return line.split(" ", 1)[0]


# -- apply ----------------------------------------------------------------------------


def test_apply_sets_positions_stock_and_changes(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "gw" / "store.sqlite"
    clock = ManualClock(T0)
    with open_store(path, clock) as store:
        assert path.exists()
        events = [movement(i, "arrived", zone="dock", at=1) for i in range(3)]
        result = store.apply(events)
        assert (result.applied, result.duplicates, result.out_of_order) == (3, 0, 0)
        assert [c.item for c in result.changes] == [f"epc:{epc_of(i)}" for i in range(3)]
        assert all(c.from_zone is None and c.to_zone == "dock" for c in result.changes)
        assert [c.event for c in result.changes] == events

        clock.advance(5)
        moved = movement(0, "moved", zone="aisle-3", from_zone="dock", at=4)
        departed = movement(1, "departed", zone="dock", at=6)
        result = store.apply([moved, departed])
        assert [(c.from_zone, c.to_zone) for c in result.changes] == [
            ("dock", "aisle-3"),
            ("dock", None),
        ]

        item0 = store.get_item(f"epc:{epc_of(0)}")
        assert item0 is not None
        assert item0.epc == epc_of(0)
        assert item0.identity == {"scheme": "epc", "epc": epc_of(0)}
        assert (item0.site, item0.zone, item0.present, item0.last_zone) == (
            "wh1",
            "aisle-3",
            True,
            "aisle-3",
        )
        assert item0.first_seen == moved.first_seen
        assert item0.last_seen == moved.last_seen
        assert item0.updated_at == T0 + timedelta(seconds=5)
        last = item0.last_event
        assert (last.event_id, last.kind, last.time) == (moved.event_id, "moved", moved.event_time)
        assert (last.reader, last.device, last.antenna) == (moved.reader, "edge1", moved.antenna)
        assert (last.zone, last.from_zone) == ("aisle-3", "dock")
        assert (last.read_count, last.peak_rssi_dbm) == (moved.read_count, moved.peak_rssi_dbm)

        item1 = store.get_item(f"epc:{epc_of(1)}")
        assert item1 is not None
        assert (item1.zone, item1.present, item1.last_zone) == (None, False, "dock")
        assert item1.last_event.kind == "departed"
        assert store.get_item("epc:FFFF") is None

        assert store.stock() == [
            ZoneStock("wh1", "aisle-3", 1),
            ZoneStock("wh1", "dock", 1),
        ]
        assert store.stock() == store.recount()
        # An emptied zone stays listed with 0.
        store.apply([movement(2, "departed", zone="dock", at=7)])
        assert store.zones() == [ZoneStock("wh1", "aisle-3", 1), ZoneStock("wh1", "dock", 0)]
        assert store.stock() == [ZoneStock("wh1", "aisle-3", 1)]
        assert store.zone("dock") == [ZoneStock("wh1", "dock", 0)]
        assert store.zone("dock", site="wh2") == []
        assert store.zone("nowhere") == []


def test_status_events_queue_points_but_no_positions(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        result = store.apply([reader_status(1), device_status(1)])
        assert (result.applied, result.changes) == (2, [])
        assert all_items(store) == []
        lines = [line for _, line in store.pending_lines(10)]
        assert [line_series(x) for x in lines] == [
            lineproto.reader_status_series(reader_status(1)),
            lineproto.device_status_series(device_status(1)),
        ]
        assert lines[0] == lineproto.reader_status_line(reader_status(1), line_ts(lines[0]))
        assert "err_checksum=1i" in lines[0]


def test_barcode_items_are_keyed_by_their_identity(tmp_path: Path) -> None:
    sscc = "106141411234567897"
    event = Arrived(
        kind="arrived",
        event_id="cam-0001",
        event_time=T0,
        site="wh1",
        device="edge1",
        reader="cam1",
        antenna=1,
        zone="dock",
        identity=SsccIdentity(scheme="sscc", sscc=sscc),
        epc=None,
        first_seen=T0,
        last_seen=T0,
        read_count=1,
    )
    with open_store(tmp_path / "s.sqlite") as store:
        (change,) = store.apply([event]).changes
        assert (change.item, change.epc) == (f"sscc:{sscc}", None)
        item = store.get_item(f"sscc:{sscc}")
        assert item is not None
        assert item.epc is None
        assert item.identity == {"scheme": "sscc", "sscc": sscc}


def test_duplicates_change_nothing(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        batch = [movement(i, "arrived", zone="dock", at=1) for i in range(5)] + [reader_status(1)]
        first = store.apply(batch)
        assert (first.applied, first.duplicates) == (6, 0)
        depth = store.line_depth()
        before = all_items(store)

        again = store.apply(batch)
        assert (again.applied, again.duplicates, again.changes) == (0, 6, [])
        assert store.line_depth() == depth == 6
        assert all_items(store) == before
        assert store.stock() == [ZoneStock("wh1", "dock", 5)]

        # A duplicate inside one batch, and a replayed departure that must not count twice.
        gone = movement(0, "departed", zone="dock", at=3)
        result = store.apply([gone, gone, batch[1]])
        assert (result.applied, result.duplicates, len(result.changes)) == (1, 2, 1)
        assert store.stock() == [ZoneStock("wh1", "dock", 4)]
        assert store.line_depth() == depth + 1
        assert store.processed_count() == 7


def test_out_of_order_never_moves_an_item_backwards(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        late_arrival = movement(0, "arrived", zone="dock", at=1)
        move = movement(0, "moved", zone="aisle-3", from_zone="dock", at=5)
        store.apply([move])
        result = store.apply([late_arrival])
        # Recorded (dedupe record and InfluxDB point) but no position change.
        assert (result.applied, result.out_of_order, result.changes) == (1, 1, [])
        assert store.line_depth() == 2
        assert store.apply([late_arrival]).duplicates == 1
        item = store.get_item(f"epc:{epc_of(0)}")
        assert item is not None
        assert (item.zone, item.last_event.event_id) == ("aisle-3", move.event_id)
        assert store.stock() == [ZoneStock("wh1", "aisle-3", 1)]

        # A stale departure doesn't remove a present item; a newer one does.
        store.apply([movement(0, "departed", zone="dock", at=3)])
        assert store.stock() == [ZoneStock("wh1", "aisle-3", 1)]
        store.apply([movement(0, "departed", zone="aisle-3", at=9)])
        assert store.stock() == []
        assert store.zones() == [ZoneStock("wh1", "aisle-3", 0), ZoneStock("wh1", "dock", 0)]


def test_ties_on_event_time_resolve_by_event_id_in_any_order(tmp_path: Path) -> None:
    a = movement(0, "moved", zone="aisle-1", at=5, event_id="evt-aaaa")
    b = movement(0, "moved", zone="aisle-2", at=5, event_id="evt-bbbb")
    zones = []
    for name, order in (("ab", [a, b]), ("ba", [b, a])):
        with open_store(tmp_path / f"{name}.sqlite") as store:
            for event in order:
                store.apply([event])
            item = store.get_item(f"epc:{epc_of(0)}")
            assert item is not None
            zones.append((item.zone, item.last_event.event_id))
            assert store.stock() == [ZoneStock("wh1", "aisle-2", 1)]
    assert zones == [("aisle-2", "evt-bbbb"), ("aisle-2", "evt-bbbb")]


# -- InfluxDB timestamps and the spool ------------------------------------------------


def test_timestamps_are_unique_per_series_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    tick = 10.0
    departures = [movement(i, "departed", zone="dock", at=tick) for i in range(50)]
    other_zone = movement(99, "departed", zone="aisle-3", at=tick)
    base = lineproto.time_ns(T0 + timedelta(seconds=tick))
    with open_store(path) as store:
        store.apply([*departures[:30], other_zone])
        store.apply(departures[30:])
        lines = [line for _, line in store.pending_lines(100)]
    dock = [x for x in lines if ",zone=dock " in x]
    assert [line_ts(x) for x in dock] == [base + k for k in range(50)]
    (aisle,) = [x for x in lines if ",zone=aisle-3 " in x]
    assert line_ts(aisle) == base  # another series keeps the event time
    for event, line in zip(departures, dock, strict=True):
        assert line == lineproto.movement_line(event, line_ts(line))

    # After a restart the series continues above its last timestamp.
    with open_store(path) as store:
        late = movement(200, "departed", zone="dock", at=tick)
        store.apply([late])
        _, line = store.pending_lines(100)[-1]
        assert line_ts(line) == base + 50
        # Stock points of one instant are unique per series too.
        now = T0 + timedelta(seconds=60)
        first = store.stock_lines(now)
        second = store.stock_lines(now)
    assert [line_series(x) for x in first] == [
        "stock,site=wh1,zone=aisle-3",
        "stock,site=wh1,zone=dock",
    ]
    assert all(x.split(" ")[1] == "count=0i" for x in first)
    ns = lineproto.time_ns(now)
    assert [line_ts(x) for x in first] == [ns, ns]
    assert [line_ts(x) for x in second] == [ns + 1, ns + 1]


def test_every_point_survives_in_influxdb(tmp_path: Path, influxd: Influxd) -> None:
    """Real InfluxDB keeps every point: no two share series and timestamp."""
    influxd.query("CREATE DATABASE tagtrail")
    with open_store(tmp_path / "s.sqlite") as store:
        events: list[AnyEvent] = [movement(i, "arrived", zone="dock", at=1) for i in range(40)]
        events += [movement(i, "departed", zone="dock", at=2) for i in range(40)]
        events += [reader_status(i) for i in range(5)]
        store.apply(events)
        store.enqueue_lines(store.stock_lines(T0 + timedelta(seconds=3)))
        store.enqueue_lines(store.stock_lines(T0 + timedelta(seconds=3)))
        rows = store.pending_lines(1000)
        influxd.write("tagtrail", "\n".join(line for _, line in rows))
        store.lines_done([seq for seq, _ in rows])
        assert store.line_depth() == 0
    counts = influxd.rows('SELECT COUNT("event_id") FROM "movement"', "tagtrail")
    assert counts[0]["count"] == 80
    epcs = influxd.rows('SELECT "epc" FROM "movement" WHERE "kind" = \'departed\'', "tagtrail")
    assert sorted(r["epc"] for r in epcs) == sorted(epc_of(i) for i in range(40))
    status = influxd.rows('SELECT COUNT("state") FROM "reader_status"', "tagtrail")
    assert status[0]["count"] == 5
    stock = influxd.rows('SELECT COUNT("count") FROM "stock"', "tagtrail")
    assert stock[0]["count"] == 2


def test_line_queue_semantics(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with open_store(path) as store:
        assert (store.line_depth(), store.pending_lines(10)) == (0, [])
        store.apply([movement(i, "arrived", zone="dock", at=i) for i in range(6)])
        store.enqueue_lines(["extra a=1i 1", "extra a=2i 2"])
        assert store.line_depth() == 8
        rows = store.pending_lines(100)
        seqs = [s for s, _ in rows]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 8
        assert [line for _, line in rows[-2:]] == ["extra a=1i 1", "extra a=2i 2"]
        assert store.pending_lines(3) == rows[:3]
        assert store.pending_lines(3, after=seqs[2]) == rows[3:6]
        assert store.pending_lines(0) == []

        store.lines_done([seqs[1], seqs[3], 10_000_000])  # unknown seqs are ignored
        assert store.line_depth() == 6
        assert store.pending_lines(100) == [r for r in rows if r[0] not in (seqs[1], seqs[3])]
        store.lines_done([])
        store.enqueue_lines([])
        assert store.line_depth() == 6
    with open_store(path) as store:
        assert store.line_depth() == 6
        remaining = store.pending_lines(100)
        store.lines_done([s for s, _ in remaining])
        assert (store.line_depth(), store.pending_lines(100)) == (0, [])
        # Sequence numbers never go back, even after everything was deleted.
        store.enqueue_lines(["extra a=3i 3"])
        ((seq, _),) = store.pending_lines(10)
        assert seq > max(seqs)


# -- stock == recount, whatever the delivery --------------------------------------------

ITEMS = 6
ZONES = ("dock", "aisle-1", "aisle-2")
SITES = ("wh1", "wh2")


@st.composite
def event_histories(draw: st.DrawFn) -> list[Arrived | Moved | Departed]:
    """Random movements of a few items over few zones, sites and coarse times (ties)."""
    count = draw(st.integers(min_value=1, max_value=40))
    events: list[Arrived | Moved | Departed] = []
    for n in range(count):
        item = draw(st.integers(0, ITEMS - 1))
        kind = draw(st.sampled_from(("arrived", "moved", "departed")))
        zone = draw(st.sampled_from(ZONES))
        from_zone = draw(st.sampled_from([z for z in ZONES if z != zone]))
        at = float(draw(st.integers(0, 8)))
        events.append(
            movement(
                item,
                kind,
                zone=zone,
                from_zone=from_zone,
                at=at,
                site=draw(st.sampled_from(SITES)),
                event_id=f"evt-{n:04d}-{draw(st.integers(0, 99)):02d}",
            )
        )
    return events


def expected_positions(events: Sequence[Arrived | Moved | Departed]) -> dict[str, tuple[str, ...]]:
    """The model: per item, the event with the greatest (event_time, event_id)."""
    newest: dict[str, Arrived | Moved | Departed] = {}
    for e in events:
        key = e.item_key
        if key not in newest or (e.event_time, e.event_id) > (
            newest[key].event_time,
            newest[key].event_id,
        ):
            newest[key] = e
    return {
        key: (e.event_id, e.site, "" if isinstance(e, Departed) else e.zone)
        for key, e in newest.items()
    }


def snapshot(store: SqliteStore) -> dict[str, tuple[str, ...]]:
    return {p.item: (p.last_event.event_id, p.site, p.zone or "") for p in all_items(store)}


@settings(max_examples=60, deadline=None)
@given(
    events=event_histories(),
    dup_picks=st.lists(st.integers(0, 1000), max_size=10),
    seed=st.integers(0, 2**32 - 1),
)
def test_stock_equals_recount_for_any_delivery(
    events: list[Arrived | Moved | Departed], dup_picks: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    delivered = list(events) + [events[p % len(events)] for p in dup_picks]
    rng.shuffle(delivered)
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "s.sqlite") as store:
        applied = duplicates = 0
        i = 0
        while i < len(delivered):
            size = rng.randint(1, 7)
            result = store.apply(delivered[i : i + size])
            applied += result.applied
            duplicates += result.duplicates
            i += size
            assert store.stock() == store.recount()
            assert all(z.count >= 0 for z in store.zones())
        unique = len({e.event_id for e in events})
        assert (applied, duplicates) == (unique, len(delivered) - unique)
        assert store.line_depth() == unique
        assert snapshot(store) == expected_positions(events)
        present = [p for p in all_items(store) if p.present]
        assert sum(z.count for z in store.stock()) == len(present)


# -- pagination -----------------------------------------------------------------------


def test_pagination_is_stable_while_items_change(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        store.apply([movement(i, "arrived", zone="dock", at=1) for i in range(0, 500, 2)])
        seen: list[str] = []
        cursor: str | None = None
        page_no = 0
        while True:
            page, cursor = store.list_items(zone="dock", limit=37, cursor=cursor)
            seen += [p.item for p in page]
            assert all(p.zone == "dock" for p in page)
            page_no += 1
            # Meanwhile: new items arrive between existing keys, and one leaves.
            store.apply([movement(2 * page_no + 1, "arrived", zone="dock", at=2)])
            store.apply([movement(498 - 2 * page_no, "moved", zone="aisle-1", at=3)])
            if cursor is None:
                break
        assert seen == sorted(set(seen))
        untouched = {f"epc:{epc_of(i)}" for i in range(0, 500, 2)} - {
            f"epc:{epc_of(498 - 2 * k)}" for k in range(1, page_no + 1)
        }
        assert untouched <= set(seen)


def test_filters_and_cursor_errors(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        store.apply([movement(i, "arrived", zone="dock", at=i) for i in range(10)])
        store.apply([movement(i, "arrived", zone="dock", at=i, site="wh2") for i in range(10, 14)])
        store.apply([movement(3, "departed", zone="dock", at=20)])
        by_site, _ = store.list_items(site="wh2", limit=100)
        assert [p.item for p in by_site] == [f"epc:{epc_of(i)}" for i in range(10, 14)]
        dock_wh1, _ = store.list_items(zone="dock", site="wh1", limit=100)
        assert len(dock_wh1) == 9  # item 3 departed
        since, _ = store.list_items(since=T0 + timedelta(seconds=8), limit=100)
        assert [p.item for p in since] == [f"epc:{epc_of(i)}" for i in (3, 8, 9, 10, 11, 12, 13)]
        assert store.list_items(zone="nowhere", limit=10) == ([], None)

        _, cursor = store.list_items(zone="dock", limit=3)
        assert cursor is not None
        with pytest.raises(CursorError, match="different query"):
            store.list_items(zone="aisle-1", limit=3, cursor=cursor)
        with pytest.raises(CursorError, match="cannot decode"):
            store.list_items(limit=3, cursor="%%%not-base64")
        with pytest.raises(CursorError, match="unexpected content"):
            store.list_items(limit=3, cursor="eyJhIjoxfQ")  # {"a":1}
        with pytest.raises(StoreError):
            store.list_items(limit=0)


def test_indexes_serve_lookups_and_zone_pages(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with open_store(path) as store:
        store.apply([movement(i, "arrived", zone="dock", at=1) for i in range(20)])
    conn = sqlite3.connect(path)
    try:
        by_key = conn.execute("EXPLAIN QUERY PLAN SELECT * FROM items WHERE item = ?", ("x",))
        assert "USING PRIMARY KEY" in " ".join(str(r[-1]) for r in by_key)
        by_zone = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM items WHERE zone = ? AND item > ? "
            "ORDER BY item LIMIT 10",
            ("dock", ""),
        )
        plan = " ".join(str(r[-1]) for r in by_zone)
        assert "items_by_zone" in plan
        assert "TEMP B-TREE" not in plan
    finally:
        conn.close()


# -- durability -----------------------------------------------------------------------


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    events = [movement(i, "arrived", zone="dock", at=1) for i in range(20)]
    events += [movement(i, "moved", zone="aisle-1", at=2) for i in range(5)]
    with open_store(path) as store:
        store.apply(events)
        items, zones, lines = all_items(store), store.zones(), store.pending_lines(100)
    assert store.closed
    with pytest.raises(StoreError, match="closed"):
        store.get_item("epc:0000")
    store.close()  # closing twice is fine
    with open_store(path) as again:
        assert all_items(again) == items
        assert again.zones() == zones
        assert again.pending_lines(100) == lines
        assert again.line_depth() == len(lines)
        assert again.apply(events).duplicates == len(events)
        assert again.processed_count() == len(events)


def test_open_errors_are_store_errors(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StoreError, match="cannot"):
        open_store(tmp_path / "dir.sqlite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create folder"):
        open_store(blocker / "sub" / "s.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        open_store(tmp_path / "junk.sqlite")


_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from tagtrail.clock import SystemClock
    from tagtrail.gateway.store import SqliteStore
    from tests.gateway.test_store import movement

    store = SqliteStore(Path(sys.argv[1]), synchronous=sys.argv[2], clock=SystemClock(),
                        dedupe_retention_s=3600)
    kinds = ("arrived", "moved", "departed")
    zones = ("dock", "aisle-1", "aisle-2")
    for batch in range(1_000_000):
        events = []
        for i in range(50):
            n = batch * 50 + i
            events.append(movement(n % 300, kinds[n % 3], zone=zones[n % 3], at=n,
                                   event_id=f"evt-{n:09d}"))
        store.apply(events)
        print((batch + 1) * 50, flush=True)
    """
)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_sigkilled_writer_leaves_a_consistent_store(tmp_path: Path, synchronous: str) -> None:
    """Killed from outside mid-stream: every reported commit is there, whole batches only,
    stock equals a recount, and each applied event has exactly one queued point."""
    path = tmp_path / "s.sqlite"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), synchronous, root],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    reported = 0
    try:
        for line in proc.stdout:
            reported = int(line)
            if reported >= 2_000:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    with open_store(path) as store:
        stored = store.processed_count()
        assert stored >= reported
        assert stored % 50 == 0
        assert store.line_depth() == stored
        assert store.stock() == store.recount()
        lines = store.pending_lines(stored + 10)
        ids = [x.split('event_id="', 1)[1].split('"', 1)[0] for _, x in lines]
        assert ids == [f"evt-{n:09d}" for n in range(stored)]
        # Replaying everything that was committed changes nothing.
        kinds = ("arrived", "moved", "departed")
        zones = ("dock", "aisle-1", "aisle-2")
        replay = [
            movement(n % 300, kinds[n % 3], zone=zones[n % 3], at=n, event_id=f"evt-{n:09d}")
            for n in range(stored)
        ]
        before = all_items(store)
        assert store.apply(replay).duplicates == stored
        assert all_items(store) == before


# -- pruning --------------------------------------------------------------------------


def test_prune_forgets_only_expired_event_ids(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with open_store(tmp_path / "s.sqlite", clock) as store:
        old = [movement(i, "arrived", zone="dock", at=1) for i in range(5)]
        store.apply(old)
        clock.advance(RETENTION_S / 2)
        recent = [movement(i, "arrived", zone="dock", at=2) for i in range(5, 8)]
        store.apply(recent)
        assert store.prune_processed(clock.now()) == 0
        clock.advance(RETENTION_S / 2 + 1)
        assert store.prune_processed(clock.now(), max_rows=2) == 2
        assert store.prune_processed(clock.now()) == 3
        assert store.processed_count() == 3
        # Recent ids still deduplicate. Forgotten ones count as new again (which is why
        # the retention must outlast any redelivery); they set the same positions.
        assert store.apply(recent).duplicates == 3
        depth = store.line_depth()
        before = snapshot(store)
        result = store.apply(old)
        assert (result.applied, result.duplicates) == (5, 0)
        assert store.line_depth() == depth + 5
        assert snapshot(store) == before
        assert store.stock() == store.recount() == [ZoneStock("wh1", "dock", 8)]


def test_em4100_cards_are_items_too(tmp_path: Path) -> None:
    """A 125 kHz card's identity is its own scheme; its position is keyed em4100:<code>."""
    from tagtrail.clock import ManualClock
    from tagtrail.events import Arrived, Em4100Identity
    from tagtrail.gateway.store import SqliteStore

    clock = ManualClock()
    when = clock.now()
    event = Arrived(
        kind="arrived",
        event_id="em4100-card-0001",
        event_time=when,
        site="wh1",
        device="desk-1",
        reader="desk",
        antenna=1,
        zone="packing",
        identity=Em4100Identity(scheme="em4100", code="67003b51c6"),
        epc=None,
        first_seen=when,
        last_seen=when,
        read_count=5,
    )
    with SqliteStore(tmp_path / "s.sqlite", clock=clock, dedupe_retention_s=3600) as store:
        result = store.apply([event])
        assert result.applied == 1
        item = store.get_item("em4100:67003B51C6")
        assert item is not None
        assert item.zone == "packing"
        assert item.epc is None
        assert item.identity == {"scheme": "em4100", "code": "67003B51C6"}
        assert any('epc="em4100:67003B51C6"' in line for _, line in store.pending_lines(10))


def test_dwell_in_the_zone_an_item_leaves(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        steps = [
            (movement(1, "arrived", zone="dock", at=0), None),
            (movement(1, "arrived", zone="dock", at=5), None),  # seen again, same zone
            (movement(1, "moved", zone="staging", at=30), 30.0),  # 30 s at the dock
            (movement(1, "moved", zone="aisle-3", from_zone="staging", at=100), 70.0),
            (movement(1, "departed", zone="aisle-3", at=160), 60.0),
            (movement(1, "arrived", zone="dock", at=200), None),  # back: a new presence
            (movement(1, "moved", zone="staging", at=150), None),  # older: out of order
        ]
        for event, dwell in steps:
            result = store.apply([event])
            if result.changes:
                assert result.changes[0].dwell_s == dwell, event
            else:
                assert dwell is None
        lines = [line for _, line in store.pending_lines(100)]
        dwells: list[float | None] = []
        for line in lines:
            fields = dict(f.split("=", 1) for f in line.split(" ")[1].split(","))
            dwells.append(float(fields["dwell_s"]) if "dwell_s" in fields else None)
        assert dwells == [None, None, 30.0, 70.0, 60.0, None, None]


def test_dwell_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with open_store(path) as store:
        store.apply([movement(2, "arrived", zone="dock", at=0)])
    with open_store(path) as store:
        result = store.apply([movement(2, "moved", zone="staging", at=42)])
        assert result.changes[0].dwell_s == 42.0
