"""Simulated R700 process -> the edge agent process -> a private mosquitto -> a subscriber.

The simulator (``python -m tagtrail.sim.r700``) plays a scenario with known ground truth
behind the IoT device interface on a loopback port; the agent (``python -m tagtrail edge
run``) reads it with an ``r700`` reader over HTTP and publishes through its outbox; the
movement events the broker delivers must equal the ground truth exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tagtrail.demo import wait_ready_line
from tagtrail.errors import TagtrailError
from tagtrail.events import ReaderStatus
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    SCENARIOS,
    Collector,
    EdgeProcess,
    expected_count,
    expected_sequences,
    sequences,
    unique_by_id,
    wait_for,
)
from tests.support.services import free_port

pytestmark = pytest.mark.slow

TIME_SCALE = 10.0
SCENARIO = SCENARIOS / "r700-dock.yaml"
PASSWORD = "dock-secret"


class R700SimProcess:
    """``python -m tagtrail.sim.r700`` as a subprocess; ready once it printed READY."""

    def __init__(self, workdir: Path) -> None:
        self.truth_path = workdir / "r700-truth.json"
        self.log_path = workdir / "r700-sim.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tagtrail.sim.r700",
                str(SCENARIO),
                "--port",
                str(free_port()),
                "--time-scale",
                str(TIME_SCALE),
                "--password",
                PASSWORD,
                "--ground-truth",
                str(self.truth_path),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        try:
            self.url = wait_ready_line(self.proc, 20.0)
        except TagtrailError as exc:
            log = self.log_path.read_text(errors="replace")
            raise AssertionError(f"R700 simulator not ready: {log}") from exc
        self.truth: dict[str, Any] = json.loads(self.truth_path.read_text())
        self.scenario: dict[str, Any] = yaml.safe_load(SCENARIO.read_text())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


def edge_yaml(sim: R700SimProcess, workdir: Path, broker_port: int) -> Path:
    truth = sim.truth
    cfg: dict[str, Any] = {
        "site": truth["site"],
        "device": truth["device"],
        "readers": [
            {
                "type": "r700",
                "id": "r700-1",
                "url": sim.url,
                "password": PASSWORD,
                "antennas": [
                    {"port": int(port), "zone": zone} for port, zone in truth["antennas"].items()
                ],
                "stream_silence_s": 5.0,
                "reconnect_initial_s": 0.2,
                "reconnect_max_s": 1.0,
            }
        ],
        "time_scale": TIME_SCALE,
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "outbox": {"path": str(workdir / "outbox.sqlite"), "synchronous": "normal"},
        "smoothing": {"depart_after_s": sim.scenario["expect"]["depart_after_s"]},
        "status": {"heartbeat_s": 10},
    }
    path = workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_r700_scenario_produces_exactly_the_ground_truth(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sim = R700SimProcess(tmp_path)
    collector = Collector(mosquitto.port)
    edge = EdgeProcess(edge_yaml(sim, tmp_path, mosquitto.port), tmp_path)
    try:
        edge.start()
        n_expected = expected_count(sim.truth)
        scenario_s = (sim.truth["end_s"] + sim.scenario["expect"]["depart_after_s"]) / TIME_SCALE
        wait_for(
            lambda: len(unique_by_id(collector.movements())) >= n_expected,
            scenario_s * 4 + 20,
            f"{n_expected} movement events ({edge.logs()[-3000:]})",
        )
        # the two cases that stay are still seen: no extra event may appear meanwhile
        quiet_until = time.monotonic() + 1.0
        wait_for(lambda: time.monotonic() > quiet_until, 2, "quiet period")
        assert edge.terminate() == 0
        got = sequences(unique_by_id(collector.movements()))
        assert got == expected_sequences(sim.truth)
        assert collector.invalid == []
        with collector.lock:
            statuses = [e for e in collector.events if isinstance(e, ReaderStatus)]
        assert statuses
        assert statuses[0].reader == "r700-1"
        assert statuses[0].firmware == "R700 8.4.1.240 (serial 370000000001)"
        assert any(s.state == "online" and s.reads_total > 0 for s in statuses)
    finally:
        if edge.proc is not None and edge.proc.poll() is None:
            edge.proc.kill()
            edge.proc.wait()
        collector.close()
        assert sim.stop() == 0
    # the agent stopped inventory on its way out: the simulator logged it
    assert "inventory stopped" in sim.log_path.read_text()
