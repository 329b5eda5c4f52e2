"""The LLRP simulator -> the edge agent -> a private mosquitto -> a subscriber, as processes.

``python -m tagtrail.sim.llrp`` plays a scenario with known ground truth as an LLRP reader
on a free TCP port; ``python -m tagtrail edge run`` reads it with a ``type: llrp`` reader;
a persistent-session subscriber records what the broker delivered. Movement events must
match the ground truth exactly.
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
from tagtrail.devservices import free_port
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

pytestmark = pytest.mark.slow
TIME_SCALE = 4.0
SCENARIO = SCENARIOS / "llrp-dock.yaml"


class LlrpSimProcess:
    """``python -m tagtrail.sim.llrp`` as a subprocess; ready once it printed ``READY``."""

    def __init__(self, workdir: Path, *, time_scale: float) -> None:
        self.truth_path = workdir / "llrp-truth.json"
        self.log_path = workdir / "llrp-sim.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tagtrail.sim.llrp",
                str(SCENARIO),
                "--port",
                str(free_port()),
                "--time-scale",
                str(time_scale),
                "--ground-truth",
                str(self.truth_path),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        try:
            address = wait_ready_line(self.proc, 20.0)
        except TagtrailError as exc:
            raise AssertionError(f"simulator not ready: {self.logs()}") from exc
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.truth: dict[str, Any] = json.loads(self.truth_path.read_text())
        self.scenario: dict[str, Any] = yaml.safe_load(SCENARIO.read_text())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
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


def _edge_config(sim: LlrpSimProcess, workdir: Path, broker_port: int) -> Path:
    truth = sim.truth
    cfg: dict[str, Any] = {
        "site": truth["site"],
        "device": truth["device"],
        "readers": [
            {
                "type": "llrp",
                "id": "dock",
                "host": sim.host,
                "port": sim.port,
                "antennas": [
                    {"port": int(port), "zone": zone} for port, zone in truth["antennas"].items()
                ],
                "report_every_s": 0.2,
                "keepalive_s": 1.0,
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


def test_llrp_reader_events_equal_the_ground_truth(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sim = LlrpSimProcess(tmp_path, time_scale=TIME_SCALE)
    collector = Collector(mosquitto.port)
    edge = EdgeProcess(_edge_config(sim, tmp_path, mosquitto.port), tmp_path)
    try:
        truth = sim.truth
        expected = expected_sequences(truth)
        n_expected = expected_count(truth)
        assert n_expected >= 8
        edge.start()
        depart = float(sim.scenario["expect"]["depart_after_s"])
        real_s = (float(truth["end_s"]) + depart) / TIME_SCALE
        wait_for(
            lambda: len(unique_by_id(collector.movements())) >= n_expected,
            real_s * 4 + 20,
            f"{n_expected} movement events ({edge.logs()[-3000:]} / {sim.logs()[-2000:]})",
        )
        # the two tags that stay are still read: no extra event may appear meanwhile
        quiet_until = time.monotonic() + 1.0
        wait_for(lambda: time.monotonic() > quiet_until, 2, "quiet period")
        assert edge.terminate() == 0
        got = sequences(unique_by_id(collector.movements()))
        mismatched = {
            epc: (got.get(epc), want) for epc, want in expected.items() if got.get(epc) != want
        }
        assert mismatched == {}
        assert set(got) == set(expected)
        assert collector.invalid == []
        with collector.lock:
            statuses = [e for e in collector.events if isinstance(e, ReaderStatus)]
        assert statuses
        assert statuses[0].reader_type == "llrp"
        assert statuses[0].firmware == "Impinj model 2001002, firmware tagtrail-sim 1.9"
        assert any(s.reads_total > 0 for s in statuses)
        # the agent stopped the ROSpec and closed the connection on its way out
        sim.stop()
        log = sim.logs()
        assert "client disconnected" in log
        assert "errors none" in log
    finally:
        if edge.proc is not None and edge.proc.poll() is None:
            edge.proc.kill()
            edge.proc.wait()
        sim.stop()
        collector.close()
