"""The R2000 driver against the hardware simulator, over a real pseudo-terminal.

The simulator encodes frames on its own (it never imports the decoder), so this is the
two independent implementations of the protocol talking to each other.
"""

from __future__ import annotations

import asyncio
import contextlib

from tagtrail.clock import ScaledClock
from tagtrail.readers.config import AntennaConfig, R2000ReaderConfig
from tagtrail.readers.model import RawRead
from tagtrail.readers.r2000 import R2000Reader
from tagtrail.sim import PtySimulator, load_scenario
from tests.support.pipeline import SCENARIOS

TIME_SCALE = 10.0


async def _play(seconds: float) -> tuple[list[tuple[RawRead, float]], R2000Reader, PtySimulator]:
    scenario = load_scenario(SCENARIOS / "pallet-50.yaml")
    clock = ScaledClock(TIME_SCALE)
    sim = PtySimulator(scenario, clock, seed=7)
    path = await sim.start()
    reads: list[tuple[RawRead, float]] = []

    def on_read(read: RawRead) -> None:
        now = sim.scenario_time()
        assert now is not None
        reads.append((read, now))

    cfg = R2000ReaderConfig(
        type="r2000",
        id="door",
        port=path,
        antennas=[
            AntennaConfig(port=1, zone="dock-door-1"),
            AntennaConfig(port=2, zone="staging"),
        ],
    )
    driver = R2000Reader(cfg, clock, on_read, idle_flush_s=0.2 / TIME_SCALE)
    task = asyncio.create_task(driver.run())
    try:
        await asyncio.sleep(seconds)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.close()
    return reads, driver, sim


def test_driver_reads_what_the_simulated_reader_sees() -> None:
    reads, driver, sim = asyncio.run(_play(2.5))
    snap = driver.snapshot()
    assert snap.firmware == "1.9"
    assert len(reads) > 500
    # every read is a tag the scenario has, on an antenna that saw it around that time
    epcs = set(sim.engine.epcs)
    for read, t in reads:
        assert read.epc in epcs
        assert read.antenna in (1, 2)
        assert read.reader == "door"
        assert read.rssi_dbm is not None
        assert -100 < read.rssi_dbm < -20
        seen = {
            sim.engine.epcs[iv.tag]
            for back in (0.0, 0.25, 0.5)
            for iv in sim.engine.visible(read.antenna, t - back)
        }
        assert read.epc in seen, (read, t)
    # nothing invented, nothing double-counted: every delivered read was a tag frame sent,
    # and only frames hit by corrupted bytes went missing
    sent = sim.counters.tag_frames
    assert snap.reads_total == len(reads)
    assert snap.reads_total <= sent
    failures = sum(
        n
        for k, n in snap.error_counts.items()
        if k in ("checksum", "truncated", "length", "sanity")
    )
    if sim.counters.corrupted_bytes == 0:
        assert snap.reads_total == sent
    else:
        assert failures > 0
        assert sent - snap.reads_total <= 20 * sim.counters.corrupted_bytes
