"""Every panel query of every dashboard, run against a real influxd 1.6.

One fill for the whole module: the demo's scenario (demo-door) plays through the real
pipeline (simulator on a pseudo-terminal -> edge agent -> mosquitto -> gateway -> influxd),
the edge agent then stops cleanly (its device goes offline). Each target is rendered as
Grafana renders it (tests/support/grafana.py) and run; the figures are checked against the
scenario's ground truth.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tagtrail.events import ReaderStatus
from tagtrail.gateway.lineproto import reader_status_line, time_ns
from tests.support import grafana
from tests.support.grafana import Context, Json, QueryError, Series, TimeRange
from tests.support.influxd import Influxd
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    SCENARIOS,
    EdgeProcess,
    GatewayProcess,
    SimProcess,
    edge_config,
    expected_count,
    gateway_config,
    wait_for,
)

pytestmark = pytest.mark.slow
DB = "tagtrail"
TIME_SCALE = 10.0
INTERVAL_MS = 10_000
DASHBOARDS = grafana.load_dashboards()


@dataclass
class Fill:
    influx: Influxd
    truth: dict[str, Any]
    time: TimeRange
    site: str
    device: str
    round_period_s: float
    contexts: dict[str, Context] = field(default_factory=dict)

    def run(self, query: str) -> list[Series]:
        return grafana.run_influxql(self.influx.url, DB, query)

    def run_in_range(self, query: str) -> list[Series]:
        """A query of the test's own, ``$timeFilter`` rendered for the fill's range."""
        return self.run(grafana.render(query, Context(self.time)))

    def context(self, dashboard: str) -> Context:
        """The dashboard's variables resolved against the fill (once; a fresh copy each
        call, so a test may change its selection)."""
        if dashboard not in self.contexts:
            ctx = grafana.resolve_variables(DASHBOARDS[dashboard], self.time, self.run)
            self.contexts[dashboard] = ctx
        ctx = self.contexts[dashboard]
        return Context(ctx.time, dict(ctx.values), dict(ctx.definitions))

    # -- ground truth --------------------------------------------------------------------

    def moves(self) -> list[dict[str, str]]:
        return [m for tag in self.truth["tags"].values() for m in tag["movements"]]

    def per_zone(self) -> Counter[str]:
        return Counter(m["zone"] for m in self.moves())

    def per_kind(self) -> Counter[str]:
        return Counter(m["kind"] for m in self.moves())

    def final_stock(self) -> dict[str, int]:
        return final_stock(self.truth)


def final_stock(truth: dict[str, Any]) -> dict[str, int]:
    """Items per zone at the end of the scenario, empty zones included."""
    zones = dict.fromkeys(truth["antennas"].values(), 0)
    for tag in truth["tags"].values():
        if tag["final_zone"] is not None:
            zones[tag["final_zone"]] += 1
    return zones


def _scenario(workdir: Path) -> Path:
    """demo-door with a later end: items that stay remain visible (no departures after the
    scenario's last movement while the test waits)."""
    spec = yaml.safe_load((SCENARIOS / "demo-door.yaml").read_text())
    spec["end_s"] = 400
    path = workdir / "demo-door-long.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _count(fill_run: Callable[[str], list[Series]], query: str) -> int:
    try:
        series = fill_run(query)
    except QueryError:
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def _last_by_tag(series: list[Series], tag: str) -> dict[str, Any]:
    """The last non-null value of each series, keyed by one of its tags."""
    out: dict[str, Any] = {}
    for s in series:
        values = [row[1] for row in s["values"] if row[1] is not None]
        out[s["tags"][tag]] = values[-1] if values else None
    return out


@pytest.fixture(scope="module")
def fill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fill]:
    wd = tmp_path_factory.mktemp("dashboards")
    broker = Mosquitto(wd / "mosquitto")
    influx = Influxd(wd / "influxd")
    broker.start()
    influx.start()
    started_ms = int(time.time() * 1000)
    gateway = GatewayProcess(gateway_config(wd, broker_port=broker.port, influx_url=influx.url), wd)
    sim: SimProcess | None = None
    edge: EdgeProcess | None = None
    try:
        gateway.start()
        sim = SimProcess(_scenario(wd), wd, time_scale=TIME_SCALE)
        truth = sim.truth
        edge = EdgeProcess(
            edge_config([sim], wd, broker_port=broker.port, time_scale=TIME_SCALE), wd
        )
        edge.start()
        run = grafana.influx_runner(influx.url, DB)
        total = expected_count(truth)
        wait_for(
            lambda: _count(run, 'SELECT count("event_id") FROM "movement"') == total,
            90,
            f"{total} movement points",
            step=0.2,
        )
        want_stock = final_stock(truth)

        def stock_written() -> bool:
            try:
                series = run('SELECT last("count") FROM "stock" GROUP BY "zone"')
            except QueryError:
                return False
            return _last_by_tag(series, "zone") == want_stock

        wait_for(stock_written, 30, "stock points equal to the ground truth", step=0.2)
        assert edge.terminate() == 0  # a clean stop: the device's last status is offline
        wait_for(
            lambda: (
                _count(run, 'SELECT count("online") FROM "device_status" WHERE "online" = 0') >= 1
            ),
            30,
            "the edge's offline status",
            step=0.2,
        )
        # events carry the edge's scaled clock: they run ahead of the wall clock
        last = run('SELECT last("event_id") FROM "movement"')[0]["values"][0][0]
        now_ms = int(time.time() * 1000)
        span = TimeRange(started_ms - 60_000, max(now_ms, int(last)) + 60_000, INTERVAL_MS)
        period = float(sim.scenario["reads"]["round_period_s"])
        yield Fill(influx, truth, span, truth["site"], truth["device"], period)
    finally:
        for proc in (edge, gateway):
            if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()
        gateway._close_pipe()
        if sim is not None:
            sim.stop()
        influx.stop()
        broker.stop()


# -- every target ------------------------------------------------------------------------

TARGETS = [
    pytest.param(name, panel["title"], target["refId"], id=f"{name}:{panel['id']}{target['refId']}")
    for name, dashboard in DASHBOARDS.items()
    for panel, target in grafana.influx_targets(dashboard)
]


def find(dashboard: str, title: str, ref: str = "A") -> dict[str, Any]:
    for panel, target in grafana.influx_targets(DASHBOARDS[dashboard]):
        if panel["title"] == title and target["refId"] == ref:
            return target
    raise AssertionError(f"no target {ref} in panel {title!r} of {dashboard}")


def run_panel(
    fill: Fill, dashboard: str, title: str, ref: str = "A", **values: list[str]
) -> list[Series]:
    ctx = fill.context(dashboard)
    ctx.values.update(values)
    return grafana.run_target(find(dashboard, title, ref), ctx, fill.run)


@pytest.mark.parametrize(("dashboard", "title", "ref"), TARGETS)
def test_every_target_runs_and_returns_data(
    fill: Fill, dashboard: str, title: str, ref: str
) -> None:
    """The demo fills every panel: each target succeeds and returns at least one series
    with at least one non-null value."""
    series = run_panel(fill, dashboard, title, ref)
    assert series, f"{title} {ref}: no series"
    values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
    assert values, f"{title} {ref}: only nulls"


def test_a_broken_query_fails_the_same_check(fill: Fill) -> None:
    ctx = fill.context("stock-movement.json")
    good = find("stock-movement.json", "Stock per zone")
    assert grafana.run_target(good, ctx, fill.run)
    typo = {**good, "query": good["query"].replace("SELECT", "SELEC", 1)}
    with pytest.raises(QueryError, match="error parsing query"):
        grafana.run_target(typo, ctx, fill.run)
    wrong_type = {**good, "query": good["query"].replace('last("count")', 'sum("nonexistent") +')}
    with pytest.raises(QueryError):
        grafana.run_target(wrong_type, ctx, fill.run)
    undefined = {**good, "query": good["query"].replace("$zone", "$zones")}
    with pytest.raises(QueryError, match="undefined variable"):
        grafana.run_target(undefined, ctx, fill.run)
    # and a panel whose query finds nothing fails the "returns data" test
    empty = {**good, "query": good["query"].replace('"stock"', '"stocks"')}
    assert grafana.run_target(empty, ctx, fill.run) == []


# -- figures against the ground truth -----------------------------------------------------

SM = "stock-movement.json"
RH = "reader-health.json"
PL = "pipeline.json"


def sums_by(series: list[Series], *tags: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for s in series:
        key = tuple(s["tags"][t] for t in tags)
        out[key] = out.get(key, 0) + sum(row[1] or 0 for row in s["values"])
    return out


def test_variables_resolve_to_the_scenario(fill: Fill) -> None:
    ctx = fill.context(SM)
    assert ctx.values["site"] == [fill.site]
    assert ctx.values["device"] == [fill.device]
    assert ctx.values["zone"] == sorted(fill.final_stock())
    assert ctx.values["door"] == ["dock-door"]  # the variable's regex keeps the doors
    assert ctx.values["staging"] == ["staging"]
    rendered = grafana.render('"zone" =~ /^$zone$/ AND "site" =~ /^$site$/', ctx)
    assert rendered == f'"zone" =~ /^(dock-door|staging|storage)$/ AND "site" =~ /^{fill.site}$/'
    pctx = fill.context(PL)
    assert pctx.values["gateway"] == ["gateway-test"]
    rctx = fill.context(RH)
    assert rctx.values["reader"] == ["r0"]


def test_stock_per_zone_equals_the_final_ground_truth(fill: Fill) -> None:
    want = fill.final_stock()
    assert _last_by_tag(run_panel(fill, SM, "Stock per zone"), "zone") == want
    assert _last_by_tag(run_panel(fill, SM, "Stock now"), "zone") == want


def test_movement_counts_equal_the_ground_truth(fill: Fill) -> None:
    per_zone = sums_by(run_panel(fill, SM, "Movements per zone"), "zone")
    assert per_zone == {(z,): n for z, n in fill.per_zone().items()}
    per_kind = sums_by(run_panel(fill, SM, "Movements in range"), "kind")
    assert per_kind == {(k,): n for k, n in fill.per_kind().items()}
    at_door = Counter((m["zone"], m["kind"]) for m in fill.moves() if m["zone"] == "dock-door")
    got = sums_by(run_panel(fill, SM, "Movements per door, by kind"), "zone", "kind")
    assert got == dict(at_door)
    # the same through the reader-health view (per reader and zone)
    by_reader = sums_by(
        run_panel(fill, RH, "Movement events per reader and zone (antenna)"), "zone"
    )
    assert by_reader == {(z,): n for z, n in fill.per_zone().items()}


def test_multi_value_selection_filters_with_a_regex(fill: Fill) -> None:
    two = ["dock-door", "staging"]
    series = run_panel(fill, SM, "Movements per zone", zone=two)
    assert sums_by(series, "zone") == {(z,): fill.per_zone()[z] for z in two}
    one = run_panel(fill, SM, "Movements per zone", zone=["storage"])
    assert sums_by(one, "zone") == {("storage",): fill.per_zone()["storage"]}


def test_inbound_and_outbound_per_door(fill: Fill) -> None:
    inbound = sum(1 for m in fill.moves() if m["kind"] == "arrived" and m["zone"] == "dock-door")
    outbound = sum(1 for m in fill.moves() if m["kind"] == "departed" and m["zone"] == "dock-door")
    assert inbound > 0
    assert outbound > 0
    for title in ("Inbound vs outbound per dock door", "Inbound / outbound per door in range"):
        assert sums_by(run_panel(fill, SM, title, "A"), "zone") == {("dock-door",): inbound}
        assert sums_by(run_panel(fill, SM, title, "B"), "zone") == {("dock-door",): outbound}


@dataclass(frozen=True)
class Exit:
    """An item leaving a zone, from the movement points: ``dwell`` from the event times
    (this point's minus the item's previous point's), ``dwell_s`` as the gateway wrote it."""

    time_ms: int
    zone: str
    dwell: float
    dwell_s: float | None


def exits(fill: Fill) -> list[Exit]:
    series = fill.run_in_range(
        'SELECT "item", "kind", "zone", "from_zone", "dwell_s" FROM "movement" WHERE $timeFilter'
    )
    by_item: dict[str, list[dict[str, Any]]] = {}
    for row in grafana.rows(series[0]):
        by_item.setdefault(row["item"], []).append(row)
    out = []
    for points in by_item.values():
        points.sort(key=lambda r: r["time"])
        for before, point in itertools.pairwise(points):
            if point["kind"] == "arrived":
                continue
            left = point["from_zone"] if point["kind"] == "moved" else point["zone"]
            assert left == before["zone"]  # the item leaves the zone its last event put it in
            dwell = (point["time"] - before["time"]) / 1000
            out.append(Exit(point["time"], left, dwell, point["dwell_s"]))
    return out


def percentile(values: list[float], p: float) -> float | None:
    """InfluxQL's percentile(): nearest rank, index floor(n * p / 100 + 0.5) - 1."""
    i = math.floor(len(values) * p / 100 + 0.5) - 1
    return sorted(values)[i] if 0 <= i < len(values) else None


MS = 0.0025  # event times are read back in ms: a dwell from two of them is off by < 1 ms


def test_dwell_points_match_the_event_times_and_the_ground_truth(fill: Fill) -> None:
    """What the dwell panels read: every exit carries dwell_s, equal to the time since the
    item's previous event; the exits per zone are the ground truth's."""
    got = exits(fill)
    assert all(e.dwell_s is not None for e in got)
    assert all(e.dwell_s == pytest.approx(e.dwell, abs=MS) for e in got)
    assert min(e.dwell for e in got) > 0
    truth = Counter(
        m["from_zone"] if m["kind"] == "moved" else m["zone"]
        for m in fill.moves()
        if m["kind"] != "arrived"
    )
    assert Counter(e.zone for e in got) == truth
    assert truth["staging"] > 0


def test_staging_dwell_stat(fill: Fill) -> None:
    staging = [e for e in exits(fill) if e.zone == "staging"]
    want = [e.dwell for e in staging]
    (series,) = run_panel(fill, SM, "Dwell in staging (range)")
    ((_, mean, p90, items),) = series["values"]
    assert series["columns"][1:] == ["mean", "p90", "items left"]
    assert items == len(staging)
    assert mean == pytest.approx(sum(want) / len(want), abs=MS)
    assert p90 == percentile([e.dwell_s for e in staging if e.dwell_s is not None], 90)
    assert p90 == pytest.approx(percentile(want, 90), abs=MS)
    assert 0 < mean <= p90


def test_staging_dwell_over_time(fill: Fill) -> None:
    """Per GROUP BY time() interval (aligned to the epoch), the mean and p90 of the items
    that left staging in it; intervals without exits are left out (fill(none))."""
    windows: dict[int, list[float]] = {}
    for e in exits(fill):
        if e.zone == "staging":
            windows.setdefault(e.time_ms - e.time_ms % INTERVAL_MS, []).append(e.dwell)
    (series,) = run_panel(fill, SM, "Dwell in staging (items leaving it)")
    got = {row[0]: row[1:] for row in series["values"]}
    assert sorted(got) == sorted(windows)
    for start, dwells in windows.items():
        mean, p90 = got[start]
        assert mean == pytest.approx(sum(dwells) / len(dwells), abs=MS)
        assert p90 == pytest.approx(percentile(dwells, 90), abs=MS)


def test_staging_selection_is_a_regex(fill: Fill) -> None:
    """The staging variable is multi-value: two zones count the exits of both."""
    two = ["staging", "storage"]
    want = [e.dwell for e in exits(fill) if e.zone in two]
    (series,) = run_panel(fill, SM, "Dwell in staging (range)", staging=two)
    ((_, mean, _, items),) = series["values"]
    assert items == len(want)
    assert mean == pytest.approx(sum(want) / len(want), abs=MS)


def test_dwell_by_zone_table(fill: Fill) -> None:
    per_zone: dict[str, list[float]] = {}
    for e in exits(fill):
        per_zone.setdefault(e.zone, []).append(e.dwell)
    panel = next(
        p for p in grafana.all_panels(DASHBOARDS[SM]) if p["title"] == "Dwell by zone left"
    )
    ctx = fill.context(SM)
    (table,) = grafana.run_table_panel(panel, ctx, fill.run)
    assert table.fields == ["zone", "mean dwell", "max dwell", "items left"]
    rows = table.records()
    assert [r["zone"] for r in rows] == sorted(per_zone)
    for r in rows:
        dwells = per_zone[r["zone"]]
        assert r["items left"] == len(dwells)
        assert r["mean dwell"] == pytest.approx(sum(dwells) / len(dwells), abs=MS)
        assert r["max dwell"] == pytest.approx(max(dwells), abs=MS)
    # the zone variable filters the zone left, for both kinds of exit
    ctx.values["zone"] = ["storage"]
    (only,) = grafana.run_table_panel(panel, ctx, fill.run)
    assert [(r["zone"], r["items left"]) for r in only.records()] == [
        ("storage", len(per_zone["storage"]))
    ]


def test_latest_movements_table(fill: Fill) -> None:
    series = run_panel(fill, SM, "Latest movements")
    table = grafana.rows(series[0])
    total = expected_count(fill.truth)
    assert len(table) == min(100, total)
    times = [r["time"] for r in table]
    assert times == sorted(times, reverse=True)
    assert {r["kind"] for r in table} <= {"arrived", "moved", "departed"}
    assert all(r["epc"] and r["zone"] and r["reader"] == "r0" for r in table)
    assert all((r["from_zone"] is not None) == (r["kind"] == "moved") for r in table)


def test_reader_health_figures(fill: Fill) -> None:
    rates = run_panel(fill, RH, "Read rate per reader")
    assert max(row[1] for s in rates for row in s["values"]) > 1.0
    # the edge agent stopped cleanly at the end of the fill: its reader went offline last
    assert _last_by_tag(run_panel(fill, RH, "Readers"), "reader") == {"r0": 0}
    online = run_panel(fill, RH, "Reader online")
    assert {row[1] for row in online[0]["values"] if row[1] is not None} == {0, 1}
    assert run_panel(fill, RH, "Devices offline")[0]["values"][0][1] == 1  # stopped cleanly
    reads = _last_by_tag(run_panel(fill, RH, "Reads since start"), "reader")
    assert reads["r0"] > 100
    table = grafana.rows(run_panel(fill, RH, "Errors by reason (since the edge agent started)")[0])
    reasons = {k: v for k, v in table[0].items() if k.startswith("last_err_")}
    assert reasons  # the demo scenario corrupts bytes: checksum errors at least
    assert table[0]["total"] == sum(v or 0 for v in reasons.values())


def test_end_of_round_figures(fill: Fill) -> None:
    """R2000 end-of-round frames: per status point, the reads of the latest round and the
    rate the reader computed over it (reads / round_period_s of the scenario)."""
    raw = fill.run_in_range(
        'SELECT "round_read_rate_per_s", "round_total_reads" FROM "reader_status" WHERE $timeFilter'
    )
    points = [r for r in grafana.rows(raw[0]) if r["round_total_reads"] is not None]
    assert len(points) >= 5
    # an empty round (no tag at the door: the reader's 0x36) is a round of 0 reads
    assert all(r["round_total_reads"] >= 0 for r in points)
    assert any(r["round_total_reads"] > 0 for r in points)
    period = fill.round_period_s
    assert all(r["round_read_rate_per_s"] == round(r["round_total_reads"] / period) for r in points)
    latest = _last_by_tag(run_panel(fill, RH, "Round read rate (latest round)"), "reader")
    assert latest == {"r0": points[-1]["round_read_rate_per_s"]}
    windows: dict[int, list[int]] = {}
    for r in points:
        windows.setdefault(r["time"] - r["time"] % INTERVAL_MS, []).append(r["round_total_reads"])
    (series,) = run_panel(fill, RH, "Reads per inventory round")
    assert series["tags"] == {"device": fill.device, "reader": "r0"}
    got = {row[0]: row[1] for row in series["values"]}
    assert got == pytest.approx({t: sum(v) / len(v) for t, v in windows.items()})


def test_pipeline_figures(fill: Fill) -> None:
    letters = run_panel(fill, PL, "Dead letters (since gateway start)")
    assert [row[1:] for row in letters[0]["values"]] == [[0, 0]]
    links = run_panel(fill, PL, "Gateway links")
    assert [row[1:] for row in links[0]["values"]] == [[1, 1]]
    latency = run_panel(fill, PL, "InfluxDB write latency")
    assert all(row[1] > 0 for row in latency[0]["values"] if row[1] is not None)
    errors = run_panel(fill, PL, "InfluxDB write errors per interval")
    assert {v for row in errors[0]["values"] for v in row[1:] if v is not None} == {0}
    rate = run_panel(fill, PL, "Movements per second (edge event time)")
    per_s = sum(row[1] for row in rate[0]["values"])
    assert per_s * INTERVAL_MS / 1000 == pytest.approx(expected_count(fill.truth))
    events = run_panel(fill, PL, "Events per second (gateway)")
    assert max(row[1] or 0 for row in events[0]["values"]) > 0


# -- per-antenna reads and reader activity ------------------------------------------------


def panel_named(dashboard: str, title: str) -> dict[str, Any]:
    return next(p for p in grafana.all_panels(DASHBOARDS[dashboard]) if p["title"] == title)


def status_points(run: Callable[[str], list[Series]], ctx: Context) -> dict[str, list[Json]]:
    """The raw reader_status points in the range, per reader, oldest first: time,
    reads_total and every reads_ant<N> / n_<counter> field."""
    series = run(
        grafana.render(
            'SELECT "reads_total", /^reads_ant/, /^n_/ FROM "reader_status" '
            'WHERE $timeFilter GROUP BY "reader"',
            ctx,
        )
    )
    return {s["tags"]["reader"]: grafana.rows(s) for s in series}


def counter_fields(points: list[Json], prefix: str) -> list[str]:
    return sorted(
        {k for p in points for k, v in p.items() if k.startswith(prefix) and v is not None}
    )


def interval_last(points: list[Json], name: str) -> list[tuple[int, int]]:
    """``last(name)`` per GROUP BY time() interval (aligned to the epoch), intervals
    without a value of the field left out (fill(none))."""
    last: dict[int, int] = {}
    for p in points:
        if p[name] is not None:
            last[p["time"] - p["time"] % INTERVAL_MS] = p[name]
    return sorted(last.items())


def rate_per_s(points: list[Json], name: str) -> dict[int, float]:
    """non_negative_derivative(last(name), 1s) over the intervals: the change between
    consecutive intervals with a value, per second of the intervals' start times."""
    out = {}
    for (t0, v0), (t1, v1) in itertools.pairwise(interval_last(points, name)):
        rate = (v1 - v0) / ((t1 - t0) / 1000)
        if rate >= 0:
            out[t1] = rate
    return out


def per_interval(points: list[Json], name: str) -> dict[int, int]:
    """non_negative_difference(last(name)) over the intervals."""
    out = {}
    for (_, v0), (t1, v1) in itertools.pairwise(interval_last(points, name)):
        if v1 >= v0:
            out[t1] = v1 - v0
    return out


def increments(points: list[Json], name: str) -> int:
    """Sum of the non-negative changes between consecutive points carrying the field."""
    values = [p[name] for p in points if p[name] is not None]
    return sum(b - a for a, b in itertools.pairwise(values) if b >= a)


def non_null(rows: list[list[Any]]) -> dict[int, Any]:
    return {t: v for t, v in rows if v is not None}


def test_read_rate_per_reader_and_antenna(fill: Fill) -> None:
    """One line per reader and antenna, named "<device>/<reader> antenna <N>", each the
    per-second rate of that antenna's cumulative counter between the intervals."""
    ctx = fill.context(RH)
    points = status_points(fill.run, ctx)["r0"]
    antennas = counter_fields(points, "reads_ant")
    # the scenario's three connected antennas see tags; port 4 is disconnected
    assert antennas == [f"reads_ant{n}" for n in sorted(int(a) for a in fill.truth["antennas"])]
    got = grafana.run_timeseries_panel(
        panel_named(RH, "Read rate per reader and antenna"), ctx, fill.run
    )
    want = {
        f"{fill.device}/r0 antenna {name.removeprefix('reads_ant')}": rate_per_s(points, name)
        for name in antennas
    }
    assert sorted(got) == sorted(want)
    for name, rates in want.items():
        assert non_null(got[name]) == pytest.approx(rates), name
        assert max(rates.values()) > 1.0, name  # tags sat in front of every antenna


def test_reads_per_antenna_in_range(fill: Fill) -> None:
    """One row per reader, a column per antenna: the reads of the range, the sum of the
    counter's increments (= latest minus first: the edge agent did not restart)."""
    ctx = fill.context(RH)
    points = status_points(fill.run, ctx)["r0"]
    antennas = counter_fields(points, "reads_ant")
    (table,) = grafana.run_table_panel(panel_named(RH, "Reads per antenna in range"), ctx, fill.run)
    assert sorted(table.fields) == sorted(
        ["device", "reader", *(f"antenna {a.removeprefix('reads_ant')}" for a in antennas)]
    )
    (row,) = table.records()
    assert (row["device"], row["reader"]) == (fill.device, "r0")
    for name in antennas:
        values = [p[name] for p in points if p[name] is not None]
        n = increments(points, name)
        assert n == values[-1] - values[0] > 0
        assert row[f"antenna {name.removeprefix('reads_ant')}"] == n
    # every raw read is counted on its antenna: at each point the antennas add up to the
    # reader's reads (an antenna's field is absent until its first read)
    assert all(sum(p[a] or 0 for a in antennas) == p["reads_total"] for p in points)


def test_reader_activity_of_an_rfid_reader_is_its_reads(fill: Fill) -> None:
    """An R2000 reader's activity: its reads per interval (never an empty panel on an
    RFID-only site such as the demo) and its empty inventory rounds (n_empty_rounds)."""
    ctx = fill.context(RH)
    points = status_points(fill.run, ctx)["r0"]
    assert counter_fields(points, "n_") == ["n_empty_rounds"]
    got = grafana.run_timeseries_panel(
        panel_named(RH, "Reader activity per interval"), ctx, fill.run
    )
    reads, empty = f"{fill.device}/r0 reads", f"{fill.device}/r0 empty_rounds"
    assert sorted(got) == sorted([reads, empty])
    want = per_interval(points, "reads_total")
    assert non_null(got[reads]) == want
    assert sum(want.values()) > 100
    assert non_null(got[empty]) == per_interval(points, "n_empty_rounds")


CAMERA_DB = "tagtrail_camera"


def test_reader_activity_of_a_camera(fill: Fill) -> None:
    """A camera's counters as the gateway writes them (its own line protocol code) into a
    database of their own: one bar per counter, named after it, each the counter's
    increase per interval; frames_dropped among them. The demo has no camera."""
    start = fill.time.from_ms + 120_000
    start -= start % INTERVAL_MS
    counters = [
        {"frames": 15 * i * 10, "analysed": 12 * i * 10, "decodes": 3 * i, "engine_zxing": i}
        | {"frames_dropped": 3 * i * 10}
        for i in range(6)
    ]
    counters[4]["frames_dropped"] = counters[3]["frames_dropped"]  # none dropped then
    lines = []
    for i, c in enumerate(counters):
        event = ReaderStatus(
            event_id=f"camera-status-{i}",
            event_time=datetime.fromtimestamp((start + i * INTERVAL_MS + 1500) / 1000, UTC),
            site=fill.site,
            device="dock-cam",
            kind="reader_status",
            reader="cam-1",
            reader_type="camera",
            state="online",
            read_rate_per_s=0.2,
            reads_total=2 * i,
            counters=c,
        )
        lines.append(reader_status_line(event, time_ns(event.event_time)))
    fill.influx.query(f"CREATE DATABASE {CAMERA_DB}")
    fill.influx.write(CAMERA_DB, "\n".join(lines))

    def run(query: str) -> list[Series]:
        return grafana.run_influxql(fill.influx.url, CAMERA_DB, query)

    ctx = fill.context(RH)  # the site's selection, with the camera's device and reader
    ctx.values.update(device=["dock-cam"], reader=["cam-1"])
    points = status_points(run, ctx)["cam-1"]
    fields = counter_fields(points, "n_")
    assert fields == sorted(f"n_{k}" for k in counters[0])
    got = grafana.run_timeseries_panel(panel_named(RH, "Reader activity per interval"), ctx, run)
    want = {f"dock-cam/cam-1 {f.removeprefix('n_')}": per_interval(points, f) for f in fields}
    want["dock-cam/cam-1 reads"] = per_interval(points, "reads_total")
    assert sorted(got) == sorted(want)
    for name, values in want.items():
        assert non_null(got[name]) == values, name
    dropped = non_null(got["dock-cam/cam-1 frames_dropped"])
    assert sorted(dropped.values()) == [0, 30, 30, 30, 60]  # none dropped in one interval
    # a camera counts no reads per antenna: the antenna panels stay empty for it
    assert (
        grafana.run_timeseries_panel(panel_named(RH, "Read rate per reader and antenna"), ctx, run)
        == {}
    )
    # and the red override picks the dropped frames out
    overrides = panel_named(RH, "Reader activity per interval")["fieldConfig"]["overrides"]
    (red,) = [o for o in overrides if o["properties"][0]["value"]["fixedColor"] == "red"]
    assert [n for n in got if re.fullmatch(red["matcher"]["options"], n)] == [
        "dock-cam/cam-1 frames_dropped"
    ]
