"""Simulator -> edge agent -> a real mosquitto, as separate processes.

The simulator plays a scenario with known ground truth on a pseudo-terminal; the edge
agent reads it with the R2000 driver and publishes through its outbox; a subscriber
records what the broker delivered. Movement events must match the ground truth exactly,
through a broker outage and through SIGKILL of the agent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagtrail.edge.outbox import Outbox
from tagtrail.events import DeviceStatus, ReaderStatus, parse_message
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    SCENARIOS,
    Collector,
    EdgeProcess,
    SimProcess,
    edge_config,
    expected_count,
    expected_sequences,
    sequences,
    unique_by_id,
    wait_for,
)

pytestmark = pytest.mark.slow
TIME_SCALE = 10.0
PALLET_50 = SCENARIOS / "pallet-50.yaml"


class Pipeline:
    def __init__(self, workdir: Path, broker: Mosquitto) -> None:
        self.workdir = workdir
        self.broker = broker
        self.time_scale = TIME_SCALE
        self.sim: SimProcess | None = None

    def start(self, time_scale: float = TIME_SCALE) -> None:
        """Start the simulator (and the collector); the edge agent starts separately."""
        self.time_scale = time_scale
        self.sim = SimProcess(PALLET_50, self.workdir, time_scale=time_scale)
        self.collector = Collector(self.broker.port)
        self.config = edge_config(
            [self.sim], self.workdir, broker_port=self.broker.port, time_scale=time_scale
        )
        self.edge = EdgeProcess(self.config, self.workdir)
        self.truth = self.sim.truth
        self.expected = expected_sequences(self.truth)
        self.n_expected = expected_count(self.truth)

    def scenario_seconds(self) -> float:
        """Real seconds the scenario plays for, plus the departure timeout after it."""
        assert self.sim is not None
        depart = float(self.sim.scenario["expect"]["depart_after_s"])
        return (float(self.truth["end_s"]) + depart) / self.time_scale

    def wait_for_all_movements(self, timeout: float) -> None:
        wait_for(
            lambda: len(unique_by_id(self.collector.movements())) >= self.n_expected,
            timeout,
            f"{self.n_expected} movement events ({self.edge.logs()[-3000:]})",
        )

    def assert_matches_truth(self) -> None:
        got = sequences(unique_by_id(self.collector.movements()))
        assert len(got) == len(self.expected)
        mismatched = {
            epc: (got.get(epc), want) for epc, want in self.expected.items() if got.get(epc) != want
        }
        assert mismatched == {}
        assert self.collector.invalid == []

    def close(self) -> None:
        if self.sim is None:
            return
        if self.edge.proc is not None and self.edge.proc.poll() is None:
            self.edge.proc.kill()
            self.edge.proc.wait()
        self.sim.stop()
        self.collector.close()


@pytest.fixture
def pipeline(tmp_path: Path, mosquitto_persistent: Mosquitto) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path, mosquitto_persistent)
    try:
        yield p
    finally:
        p.close()


def test_pallet_50_produces_exactly_the_ground_truth(pipeline: Pipeline) -> None:
    pipeline.start()
    pipeline.edge.start()
    pipeline.wait_for_all_movements(pipeline.scenario_seconds() * 4 + 20)
    # keep running through the scenario's quiet tail (the two loose cases stay
    # visible): no extra event may appear
    quiet_until = time.monotonic() + 1.0
    wait_for(lambda: time.monotonic() > quiet_until, 2, "quiet period")
    assert pipeline.edge.terminate() == 0
    pipeline.assert_matches_truth()
    # 48 departures and 2 items still in staging, by the ground truth
    stays = [epc for epc, tag in pipeline.truth["tags"].items() if tag["final_zone"]]
    assert len(stays) == 2
    # the outbox is empty after a clean shutdown with the broker up
    with Outbox(pipeline.workdir / "outbox.sqlite") as outbox:
        assert outbox.depth() == 0
        assert sorted(p.epc for p in outbox.presence()) == sorted(stays)
    # reader status events went out too, with the reader's health
    with pipeline.collector.lock:
        statuses = [e for e in pipeline.collector.events if isinstance(e, ReaderStatus)]
        device = [parse_message(p)[0] for _, p, _ in pipeline.collector.status]
    assert statuses
    assert statuses[0].firmware == "1.9"
    assert any(s.reads_total > 0 for s in statuses)
    assert isinstance(device[0], DeviceStatus)
    assert device[0].state == "online"
    assert isinstance(device[-1], DeviceStatus)
    assert (device[-1].state, device[-1].reason) == ("offline", "shutdown")
    # periodic heartbeats (every 10 scenario seconds) carry every reader's status
    beats = [d for d in device if isinstance(d, DeviceStatus) and d.reason == "heartbeat"]
    assert len(beats) >= 2
    assert [r.reader for r in beats[-1].readers] == ["r0"]
    assert beats[-1].readers[0].state == "online"
    assert beats[-1].readers[0].read_rate_per_s > 0


def test_broker_outage_of_20_seconds_loses_nothing(pipeline: Pipeline) -> None:
    # at 2x the 60 s scenario lasts 30 s: the outage covers most of it, and the broker
    # is back before its end, so the two cases that stay are still present
    pipeline.start(time_scale=2.0)
    pipeline.edge.start()
    # let the first events through, then take the broker away mid-scenario
    wait_for(lambda: len(pipeline.collector.movements()) >= 10, 30, "first events")
    pipeline.broker.stop()
    outage_end = time.monotonic() + 20.0
    wait_for(lambda: time.monotonic() >= outage_end, 25, "20 s outage")
    with Outbox(pipeline.workdir / "outbox.sqlite") as outbox:
        assert outbox.depth() > 0  # events waited in the outbox during the outage
    pipeline.broker.start()
    pipeline.wait_for_all_movements(60)
    assert pipeline.edge.terminate() == 0
    pipeline.assert_matches_truth()
    log = pipeline.edge.logs()
    assert "Traceback" not in log
    assert "connected to MQTT broker" in log


def test_sigkill_of_the_edge_agent_loses_nothing(pipeline: Pipeline) -> None:
    # at 2x, the second or so an agent takes to start again is 2 scenario seconds
    pipeline.start(time_scale=2.0)
    pipeline.edge.start()
    wait_for(lambda: len(pipeline.collector.movements()) >= 30, 30, "events before the kill")
    pipeline.edge.kill()
    before = len(unique_by_id(pipeline.collector.movements()))
    pipeline.edge.start()
    pipeline.wait_for_all_movements(60)
    assert pipeline.edge.terminate() == 0
    assert before < pipeline.n_expected
    pipeline.assert_matches_truth()
    assert "Traceback" not in pipeline.edge.logs()


def test_unplugged_reader_is_reported_offline_then_back_online(pipeline: Pipeline) -> None:
    pipeline.start()
    pipeline.edge.start()

    def states() -> list[str]:
        with pipeline.collector.lock:
            return [e.state for e in pipeline.collector.events if isinstance(e, ReaderStatus)]

    wait_for(lambda: "online" in states(), 30, "reader online")
    assert pipeline.sim is not None
    pipeline.sim.stop()  # the reader's USB cable is pulled: the pty and its link vanish
    wait_for(lambda: "offline" in states(), 30, "reader reported offline")
    # plugged in again at the same path: the driver reconnects on its own
    pipeline.sim = SimProcess(PALLET_50, pipeline.workdir, time_scale=TIME_SCALE)
    wait_for(lambda: states().count("online") >= 2, 30, "reader back online")
    assert pipeline.edge.proc is not None
    assert pipeline.edge.proc.poll() is None  # the agent never stopped
    assert pipeline.edge.terminate() == 0
    with pipeline.collector.lock:
        offline = [
            e
            for e in pipeline.collector.events
            if isinstance(e, ReaderStatus) and e.state == "offline"
        ]
    assert offline[0].error_counts.get("disconnects", 0) >= 1
    assert offline[0].last_error
