"""The R700 driver against the simulated R700 over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tagtrail.clock import ScaledClock, SystemClock
from tagtrail.readers.config import R700ReaderConfig
from tagtrail.readers.model import RawRead, ReaderSnapshot
from tagtrail.readers.r700 import R700Reader, build_preset
from tagtrail.sim.r700 import R700Simulator, server_tls_context
from tagtrail.sim.scenario import Scenario, load_scenario
from tests.support.mosquitto import make_test_certificates

SCENARIO = Path(__file__).resolve().parents[2] / "hardware-sim" / "scenarios" / "r700-dock.yaml"
TIME_SCALE = 20.0


class Recorder:
    def __init__(self) -> None:
        self.reads: list[RawRead] = []
        self.states: list[ReaderSnapshot] = []

    def on_read(self, read: RawRead) -> None:
        self.reads.append(read)

    def on_state(self, snap: ReaderSnapshot) -> None:
        self.states.append(snap)

    @property
    def state_names(self) -> list[str]:
        return [s.state for s in self.states]


def config(url: str, **overrides: Any) -> R700ReaderConfig:
    values: dict[str, Any] = {
        "type": "r700",
        "id": "r7",
        "url": url,
        "password": "impinj",
        "antennas": [{"port": 1, "zone": "dock-door"}, {"port": 2, "zone": "staging"}],
        "transmit_power_cdbm": 2800,
        "session": 2,
        "rf_mode": 4,
        "stream_silence_s": 5.0,
        "request_timeout_s": 5.0,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.3,
    }
    values.update(overrides)
    return R700ReaderConfig.model_validate(values)


def new_sim(scenario: Scenario | None = None, **kwargs: Any) -> R700Simulator:
    kwargs.setdefault("keepalive_s", 1.0)
    return R700Simulator(scenario or load_scenario(SCENARIO), ScaledClock(TIME_SCALE), **kwargs)


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def drive(
    sim: R700Simulator,
    body: Callable[[R700Reader, Recorder], Awaitable[None]],
    **overrides: Any,
) -> tuple[R700Reader, Recorder]:
    """Run the driver against ``sim`` while ``body`` runs, then cancel it."""

    async def main() -> tuple[R700Reader, Recorder]:
        rec = Recorder()
        async with sim:
            reader = R700Reader(
                config(sim.url, **overrides), SystemClock(), rec.on_read, rec.on_state
            )
            task = asyncio.create_task(reader.run())
            try:
                await body(reader, rec)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await until(lambda: not sim.running, 5, "the driver's stop on cancel")
        return reader, rec

    return asyncio.run(main())


def expected_by_antenna(scenario: Scenario, ports: set[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for tag in scenario.resolved_tags():
        for iv in tag.intervals:
            if iv.antenna in ports:
                out.setdefault(iv.antenna, set()).add(tag.epc)
    return out


def test_build_preset_maps_the_config() -> None:
    preset = build_preset(config("http://127.0.0.1:1"))
    assert [a["antennaPort"] for a in preset["antennaConfigs"]] == [1, 2]
    first = preset["antennaConfigs"][0]
    assert first["transmitPowerCdbm"] == 2800
    assert first["inventorySession"] == 2
    assert first["rfMode"] == 4
    assert preset["eventConfig"]["tagInventory"]["epcHex"] == "enabled"
    assert "rfMode" not in build_preset(config("http://x", rf_mode=None))["antennaConfigs"][0]
    json.dumps(preset)  # it is plain JSON


def test_reads_are_exactly_the_scenario_tags_per_antenna() -> None:
    sim = new_sim()
    scenario = sim.scenario

    async def body(reader: R700Reader, rec: Recorder) -> None:
        await until(lambda: reader.snapshot().state == "online", 10, "online")
        end = scenario.end_s
        await until(lambda: (sim.scenario_time() or 0) > end, 10, "the scenario's end")

    reader, rec = drive(sim, body)
    got: dict[int, set[str]] = {}
    for read in rec.reads:
        got.setdefault(read.antenna, set()).add(read.epc)
        assert read.reader == "r7"
        assert read.rssi_dbm is not None
        assert -75 < read.rssi_dbm < -40
        assert read.scheme == "epc"
    assert got == expected_by_antenna(scenario, {1, 2})
    snap = reader.snapshot()
    assert snap.reads_total == len(rec.reads)
    assert snap.error_counts == {}
    assert snap.firmware == "R700 8.4.1.240 (serial 370000000001)"
    assert rec.state_names == ["online", "offline"]
    # the driver started the preset the config describes, and stopped it on cancel
    assert sim.preset is not None
    assert [(a.port, a.power_cdbm, a.session, a.rf_mode) for a in sim.preset.antennas] == [
        (1, 2800, 2, 4),
        (2, 2800, 2, 4),
    ]
    assert not sim.running
    assert sim.counters.statuses[409] == 1  # the first stop found nothing running
    assert sim.counters.tag_events == len(rec.reads)
    assert sim.counters.stalls == 0  # the driver never made the reader pause


def test_bad_lines_are_counted_and_reading_goes_on() -> None:
    sim = new_sim()
    bad = [
        b"{this is not json\n",
        b'{"eventType":"fancyNewEvent","fancyNewEventEvent":{}}\n',
        b'{"eventType":"tagInventory","tagInventoryEvent":{"epcHex":"3034"}}\n',
        b'{"eventType":"tagInventory","tagInventoryEvent":'
        b'{"epcHex":"30340000","epc":"MDQ=","antennaPort":1}}\n',
        b'{"eventType":"tagInventory","tagInventoryEvent":{"epcHex":"3034","antennaPort":4}}\n',
        b'{"eventType":"diagnostic","diagnosticEvent":{"metric":1}}\n\r\n',
    ]

    async def body(reader: R700Reader, rec: Recorder) -> None:
        await until(lambda: len(rec.reads) > 10, 10, "first reads")
        for line in bad:
            sim.inject_raw(line)
        wanted = ("json", "unknown_event", "missing_field", "epc_mismatch", "unexpected_antenna")
        await until(
            lambda: all(k in reader.snapshot().error_counts for k in wanted), 5, "bad lines"
        )
        before = len(rec.reads)
        await until(lambda: len(rec.reads) > before + 10, 5, "reads after the bad lines")

    reader, rec = drive(sim, body)
    snap = reader.snapshot()
    assert snap.error_counts == {
        "json": 1,
        "unknown_event": 1,
        "missing_field": 1,
        "epc_mismatch": 1,
        "unexpected_antenna": 1,
    }
    assert rec.state_names == ["online", "offline"]  # bad data never drops the link
    assert {r.antenna for r in rec.reads} <= {1, 2}


def test_a_wrong_password_is_an_error_state_and_retried() -> None:
    sim = new_sim()

    async def body(reader: R700Reader, rec: Recorder) -> None:
        await until(lambda: reader.snapshot().error_counts.get("auth", 0) >= 3, 10, "retries")

    reader, rec = drive(sim, body, password="not-it")
    snap = reader.snapshot()
    assert rec.state_names == ["error", "offline"]  # no flapping through "connecting"
    assert rec.states[0].last_error is not None
    assert "wrong username or password" in rec.states[0].last_error
    assert set(snap.error_counts) == {"auth"}
    assert sim.counters.statuses[401] == snap.error_counts["auth"]
    assert sim.counters.streams_opened == 0
    assert sim.preset is None


def test_a_preset_the_reader_refuses_is_an_error_state() -> None:
    sim = new_sim(max_power_cdbm=3000)  # a region with a lower power limit

    async def body(reader: R700Reader, rec: Recorder) -> None:
        await until(lambda: reader.snapshot().error_counts.get("rejected", 0) >= 2, 10, "retry")

    reader, rec = drive(sim, body, transmit_power_cdbm=3300)
    assert rec.state_names[0] == "error"
    last_error = reader.snapshot().last_error or ""
    assert "refused the inventory preset" in last_error
    assert "antennaConfigs[0].transmitPowerCdbm" in last_error
    assert sim.counters.rejected_presets >= 2
    assert not rec.reads


def test_a_silent_stream_is_dropped_and_reopened() -> None:
    # antenna 3 sees no tag and keep-alives come only every 1000 scenario seconds
    sim = new_sim(keepalive_s=1000.0)

    async def body(reader: R700Reader, rec: Recorder) -> None:
        await until(lambda: sim.counters.streams_opened >= 2, 10, "a second stream")
        await until(lambda: reader.snapshot().state == "online", 5, "online again")

    reader, rec = drive(sim, body, antennas=[{"port": 3, "zone": "yard"}], stream_silence_s=0.3)
    snap = reader.snapshot()
    assert snap.error_counts["timeouts"] >= 1
    assert snap.error_counts["disconnects"] >= 1
    assert rec.state_names[:4] == ["online", "offline", "connecting", "online"]
    assert not rec.reads


def test_a_restarted_reader_goes_offline_and_is_read_again() -> None:
    async def main() -> tuple[R700Reader, Recorder, R700Simulator]:
        rec = Recorder()
        first = new_sim()
        await first.start()
        port = first.port
        reader = R700Reader(config(first.url), SystemClock(), rec.on_read, rec.on_state)
        task = asyncio.create_task(reader.run())
        second = new_sim(port=port)
        try:
            await until(lambda: len(rec.reads) > 10, 10, "reads from the first reader")
            await first.close()
            await until(lambda: reader.snapshot().state == "offline", 5, "offline")
            offline_reads = len(rec.reads)
            await second.start()
            await until(lambda: reader.snapshot().state == "online", 10, "online again")
            await until(lambda: len(rec.reads) > offline_reads + 10, 10, "reads again")
            assert second.running  # inventory was started again on the new reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await second.close()
        return reader, rec, second

    reader, rec, second = asyncio.run(main())
    snap = reader.snapshot()
    # offline while nothing answers, connecting once the new reader does
    assert rec.state_names == ["online", "offline", "connecting", "online", "offline"]
    assert snap.error_counts["disconnects"] == 1
    assert second.counters.tag_events > 0
    assert snap.reads_total == len(rec.reads)


def test_https_with_the_reader_ca_and_an_unverified_certificate(tmp_path: Path) -> None:
    ca, cert, key = make_test_certificates(tmp_path / "tls", "127.0.0.1")

    def run(**overrides: Any) -> tuple[R700Reader, Recorder]:
        sim = new_sim(ssl_context=server_tls_context(cert, key))

        async def body(reader: R700Reader, rec: Recorder) -> None:
            assert sim.url.startswith("https://")
            await until(lambda: len(rec.reads) > 10, 10, "reads over HTTPS")

        return drive(sim, body, **overrides)

    reader, rec = run(ca_file=str(ca))
    assert reader.snapshot().error_counts == {}
    assert {r.antenna for r in rec.reads} <= {1, 2}
    reader, rec = run(verify_tls=False)
    assert reader.snapshot().firmware is not None


def test_https_with_an_untrusted_certificate_stays_offline(tmp_path: Path) -> None:
    _, cert, key = make_test_certificates(tmp_path / "tls", "127.0.0.1")
    sim = new_sim(ssl_context=server_tls_context(cert, key))

    async def body(reader: R700Reader, rec: Recorder) -> None:
        await until(lambda: bool(rec.states), 10, "a failure")

    async def main() -> tuple[R700Reader, Recorder]:
        rec = Recorder()
        async with sim:
            reader = R700Reader(config(sim.url), SystemClock(), rec.on_read, rec.on_state)
            task = asyncio.create_task(reader.run())
            try:
                await body(reader, rec)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return reader, rec

    reader, rec = asyncio.run(main())
    snap = reader.snapshot()
    assert rec.state_names == ["offline"]
    assert snap.error_counts == {"disconnects": 1}
    assert "CERTIFICATE_VERIFY_FAILED" in (snap.last_error or "")
    assert sim.counters.requests == 0
