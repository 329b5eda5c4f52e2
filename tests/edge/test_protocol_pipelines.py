"""Every serial protocol end to end: simulator -> edge agent -> a real mosquitto.

For each of Mercury, Chafon, M100 and EM4100 the real ``python -m tagtrail.sim`` plays a
small door scenario with ``--protocol``, the real ``python -m tagtrail edge run`` reads it
with that reader type's driver, and a subscriber records what the broker delivered. The
movement events must equal the simulator's ground truth exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tagtrail.events import ReaderStatus
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    SCENARIOS,
    Collector,
    EdgeProcess,
    SimProcess,
    edge_config,
    expected_count,
    expected_sequences,
    reader_config,
    sequences,
    unique_by_id,
    wait_for,
)

pytestmark = pytest.mark.slow

TIME_SCALE = 4.0
FAST_RECONNECT = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.1}
FIRMWARE = {
    "mercury": "firmware 01.03.00.00 (20150310), hardware 30.00.00.02",
    "chafon": "2.1",
    "m100": "M100 26dBm V1.2",
    "em4100": None,
}


class Run:
    def __init__(self, workdir: Path, broker: Mosquitto) -> None:
        self.workdir = workdir
        self.broker = broker
        self.sim: SimProcess | None = None
        self.edge: EdgeProcess | None = None
        self.collector: Collector | None = None

    def close(self) -> None:
        if self.edge is not None and self.edge.proc is not None and self.edge.proc.poll() is None:
            self.edge.proc.kill()
            self.edge.proc.wait()
        if self.sim is not None:
            self.sim.stop()
        if self.collector is not None:
            self.collector.close()


@pytest.fixture
def run(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Run]:
    r = Run(tmp_path, mosquitto)
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("protocol", ["mercury", "chafon", "m100", "em4100"])
def test_protocol_pipeline_equals_the_ground_truth(run: Run, protocol: str) -> None:
    scenario = SCENARIOS / f"door-{protocol}.yaml"
    # an EM4100 reader pushes from the moment it is powered: the agent waits for it first
    autonomous = protocol == "em4100"
    sim = SimProcess(
        scenario, run.workdir, time_scale=TIME_SCALE, protocol=protocol, start=not autonomous
    )
    run.sim = sim
    run.collector = collector = Collector(run.broker.port)
    config = edge_config(
        [sim],
        run.workdir,
        broker_port=run.broker.port,
        time_scale=TIME_SCALE,
        # reopen the port quickly: the EM4100 simulator appears after the agent
        extra={"readers": [{**reader_config(sim, "r0"), **FAST_RECONNECT}]},
    )
    run.edge = edge = EdgeProcess(config, run.workdir)
    edge.start()
    if autonomous:
        wait_for(lambda: "offline" in edge.logs(), 30, "the agent waiting for the reader")
        sim.start()
    truth = sim.truth
    assert truth["protocol"] == protocol
    expected = expected_sequences(truth)
    n_expected = expected_count(truth)
    depart = float(sim.scenario["expect"]["depart_after_s"])
    budget = (float(truth["end_s"]) + depart) / TIME_SCALE * 3 + 20
    wait_for(
        lambda: len(unique_by_id(collector.movements())) >= n_expected,
        budget,
        f"{n_expected} movement events ({edge.logs()[-3000:]}\n{sim.logs()[-2000:]})",
    )
    assert edge.terminate() == 0
    got = sequences(unique_by_id(collector.movements()))
    assert got == expected
    assert collector.invalid == []
    with collector.lock:
        statuses = [e for e in collector.events if isinstance(e, ReaderStatus)]
    assert statuses
    assert {s.reader_type for s in statuses} == {protocol}
    assert statuses[-1].reads_total > 0
    assert any(s.state == "online" for s in statuses)
    assert statuses[-1].firmware == FIRMWARE[protocol]
    assert "Traceback" not in edge.logs()
    # every command the driver sent was understood (the count is in the closing log line)
    sim.stop()
    closing = [line for line in sim.logs().splitlines() if "closing:" in line]
    assert len(closing) == 1
    assert closing[0].endswith("bad commands none"), closing[0]
    assert "Traceback" not in sim.logs()
