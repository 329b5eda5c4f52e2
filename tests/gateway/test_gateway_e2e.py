"""Simulator -> edge -> mosquitto -> gateway -> SQLite positions + influxd, as processes.

After a scenario, the API's positions must equal the scenario's ground truth, and
InfluxDB must hold exactly the expected movement points — through a SIGKILL of the
gateway, a 30 s influxd outage, a broker restart, and replayed messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tagtrail.events import Arrived, Departed, Moved, ReaderStatus, encode_batch
from tests.support.influxd import Influxd
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    SCENARIOS,
    Collector,
    EdgeProcess,
    GatewayProcess,
    SimProcess,
    edge_config,
    gateway_config,
    unique_by_id,
    wait_for,
)

pytestmark = pytest.mark.slow
PALLET_50 = SCENARIOS / "pallet-50.yaml"
DB = "tagtrail"


class Stack:
    def __init__(self, workdir: Path, broker: Mosquitto, influx: Influxd) -> None:
        self.workdir = workdir
        self.broker = broker
        self.influx = influx
        self.sim: SimProcess | None = None
        self.edge: EdgeProcess | None = None
        self.gateway = GatewayProcess(
            gateway_config(workdir, broker_port=broker.port, influx_url=influx.url), workdir
        )

    def start(self, time_scale: float = 10.0) -> None:
        # records every event the broker delivers, as an independent witness
        self.collector = Collector(self.broker.port, client_id="witness")
        self.gateway.start()
        self.sim = SimProcess(PALLET_50, self.workdir, time_scale=time_scale)
        self.truth = self.sim.truth
        self.edge = EdgeProcess(
            edge_config(
                [self.sim], self.workdir, broker_port=self.broker.port, time_scale=time_scale
            ),
            self.workdir,
        )
        self.edge.start()

    # -- what the ground truth says ------------------------------------------------------

    def expected_zones(self) -> dict[str, str | None]:
        return {epc: tag["final_zone"] for epc, tag in self.truth["tags"].items()}

    def expected_points(self) -> dict[str, list[tuple[str, str]]]:
        return {
            epc: [(m["kind"], m["zone"]) for m in tag["movements"]]
            for epc, tag in self.truth["tags"].items()
        }

    # -- what the gateway has ------------------------------------------------------------

    def api_zones(self) -> dict[str, str | None]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            body = self.gateway.get("/v1/items", **params)
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                break
        return {i["epc"]: i["zone"] for i in items}

    def influx_points(self) -> dict[str, list[tuple[str, str]]]:
        rows = self.influx.rows(
            'SELECT "epc", "kind", "zone", "event_id" FROM "movement" ORDER BY time ASC', DB
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for r in rows:
            out.setdefault(r["epc"], []).append((r["kind"], r["zone"]))
        return out

    def influx_count(self) -> int:
        try:
            rows = self.influx.rows('SELECT count("epc") FROM "movement"', DB)
        except Exception:  # noqa: BLE001 - the database may not exist yet
            return 0
        return int(rows[0]["count"]) if rows else 0

    def converged(self) -> bool:
        try:
            return self.api_zones() == self.expected_zones() and (
                self.influx_count() == sum(len(v) for v in self.expected_points().values())
            )
        except Exception:  # noqa: BLE001 - the gateway may be restarting
            return False

    def assert_matches_truth(self) -> None:
        assert self.api_zones() == self.expected_zones()
        assert self.influx_points() == self.expected_points()
        stock = self.gateway.get("/v1/stock")
        zones = stock["zones"] if isinstance(stock, dict) else stock
        present = [z for z in self.expected_zones().values() if z is not None]
        counts = {row["zone"]: row["count"] for row in zones if row["count"]}
        assert counts == {z: present.count(z) for z in set(present)}

    # -- what the edge published (for faults that outlast the scenario) -------------------

    def published(self) -> list[Arrived | Moved | Departed]:
        return unique_by_id(self.collector.movements())

    def influx_event_ids(self) -> set[str]:
        try:
            rows = self.influx.rows('SELECT "event_id" FROM "movement"', DB)
        except Exception:  # noqa: BLE001 - influxd may be down
            return set()
        return {r["event_id"] for r in rows}

    def published_zones(self) -> dict[str, str | None]:
        latest: dict[str, Arrived | Moved | Departed] = {}
        for e in self.published():
            key = e.epc or ""
            if key not in latest or (e.event_time, e.event_id) > (
                latest[key].event_time,
                latest[key].event_id,
            ):
                latest[key] = e
        return {k: (None if e.kind == "departed" else e.zone) for k, e in latest.items()}

    def holds_everything_published(self) -> bool:
        """The scenario's movements were all published, and InfluxDB has exactly the
        published movements and the API their positions."""
        published = self.published()
        counts: dict[str, int] = {}
        for e in published:
            counts[e.epc or ""] = counts.get(e.epc or "", 0) + 1
        if any(counts.get(epc, 0) < len(want) for epc, want in self.expected_points().items()):
            return False
        if self.influx_event_ids() != {e.event_id for e in published}:
            return False
        try:
            return self.api_zones() == self.published_zones()
        except Exception:  # noqa: BLE001 - the gateway may be restarting
            return False

    def assert_published_follow_truth(self) -> None:
        """Each EPC's published movements begin with the ground truth's; after the end of
        the scenario an item that stayed may depart (the simulator stops showing it)."""
        got: dict[str, list[tuple[str, str]]] = {}
        for e in sorted(self.published(), key=lambda e: e.event_time):
            got.setdefault(e.epc or "", []).append((e.kind, e.zone))
        for epc, want in self.expected_points().items():
            final = self.expected_zones()[epc]
            extra = got.get(epc, [])[len(want) :]
            assert got.get(epc, [])[: len(want)] == want
            assert extra in ([], [("departed", final)])

    def close(self) -> None:
        if hasattr(self, "collector"):
            self.collector.close()
        for proc in (self.edge, self.gateway):
            if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()
        self.gateway._close_pipe()
        if self.sim is not None:
            self.sim.stop()


@pytest.fixture
def stack(tmp_path: Path, mosquitto_persistent: Mosquitto, influxd: Influxd) -> Iterator[Stack]:
    s = Stack(tmp_path, mosquitto_persistent, influxd)
    try:
        yield s
    finally:
        s.close()


def test_positions_and_influx_equal_the_ground_truth(stack: Stack) -> None:
    stack.start()
    wait_for(stack.converged, 60, "gateway state equal to the ground truth")
    stack.assert_matches_truth()
    item = next(iter(stack.expected_zones()))
    one = stack.gateway.get(f"/v1/items/{item}")
    assert one["epc"] == item
    assert stack.edge is not None
    assert stack.edge.terminate() == 0
    assert stack.gateway.terminate() == 0


def test_gateway_sigkill_mid_stream(stack: Stack) -> None:
    stack.start(time_scale=4.0)
    wait_for(lambda: stack.influx_count() >= 20, 60, "first points")
    stack.gateway.kill()  # the edge keeps publishing; the broker queues for the session
    stack.gateway.start()
    wait_for(stack.holds_everything_published, 90, "everything published, after the restart")
    stack.assert_published_follow_truth()
    assert "Traceback" not in stack.gateway.logs()


def test_influxd_down_for_30_seconds_loses_no_point(stack: Stack) -> None:
    stack.start(time_scale=4.0)
    wait_for(lambda: stack.influx_count() >= 20, 60, "first points")
    stack.influx.stop()
    outage_end = time.monotonic() + 30.0
    # the API keeps serving positions from the store while InfluxDB is away
    wait_for(lambda: stack.api_zones() == stack.expected_zones(), 40, "positions during outage")
    ready = httpx.get(stack.gateway.url + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert "influxdb" in ready.text
    wait_for(lambda: time.monotonic() >= outage_end, 35, "the 30 s outage")
    stack.influx.start()
    wait_for(stack.holds_everything_published, 60, "spooled points written after influxd is back")
    stack.assert_published_follow_truth()
    assert httpx.get(stack.gateway.url + "/readyz", timeout=10).status_code == 200


def test_broker_restart_loses_nothing(stack: Stack) -> None:
    stack.start(time_scale=4.0)
    wait_for(lambda: stack.influx_count() >= 20, 60, "first points")
    stack.broker.stop()
    stack.broker.start()
    wait_for(stack.holds_everything_published, 90, "everything published, after the restart")
    stack.assert_published_follow_truth()


def test_replayed_messages_do_not_double_count(stack: Stack) -> None:
    stack.start()
    wait_for(stack.converged, 60, "gateway state equal to the ground truth")
    with stack.collector.lock:
        published = list(stack.collector.events)
    moves = unique_by_id([e for e in published if isinstance(e, Arrived | Moved | Departed)])
    assert len(moves) == sum(len(v) for v in stack.expected_points().values())
    # replay every event the edge published, as an edge outbox replay after a crash would,
    # in batches and one of them again on its own; then a marker to know they were consumed
    marker = ReaderStatus(
        kind="reader_status",
        event_id="marker-" + "0" * 24,
        event_time=moves[-1].event_time,
        site=moves[0].site,
        device=moves[0].device,
        reader="marker",
        reader_type="r2000",
        state="online",
        read_rate_per_s=0.0,
        reads_total=0,
    )
    topic = f"tagtrail/v1/{moves[0].site}/{moves[0].device}/events"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="replayer", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", stack.broker.port)
    pub.loop_start()
    try:
        for start in range(0, len(published), 50):
            batch = encode_batch(published[start : start + 50])
            pub.publish(topic, batch, qos=1).wait_for_publish(10)
        pub.publish(topic, moves[0].model_dump_json().encode(), qos=1).wait_for_publish(10)
        pub.publish(topic, encode_batch([marker]), qos=1).wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()

    def marker_written() -> bool:
        q = 'SELECT count("state") FROM "reader_status" WHERE "reader" = \'marker\''
        rows = stack.influx.rows(q, DB)
        return bool(rows) and int(rows[0]["count"]) == 1

    wait_for(marker_written, 30, "the replayed messages consumed")
    stack.assert_matches_truth()
