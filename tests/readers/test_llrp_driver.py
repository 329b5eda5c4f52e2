"""The LLRP driver against real TCP readers: tagtrail's simulator and llrpkit's emulator.

The simulator (:mod:`tagtrail.sim.llrp`) has its own LLRP encoder and parser, written
independently of the driver's codec; llrpkit's emulator (MIT, a dev dependency) is a
third, unrelated implementation. Both run in-process on free loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable

import pytest
from llrpkit.emulator.core import EmulatedTag, LLRPEmulator

from tagtrail.clock import ScaledClock, SystemClock
from tagtrail.readers.config import AntennaConfig, LlrpReaderConfig
from tagtrail.readers.llrp import ROSPEC_ID, LlrpReader
from tagtrail.readers.model import RawRead, ReaderSnapshot
from tagtrail.readers.protocols import llrp
from tagtrail.sim.llrp import LlrpSimulator
from tagtrail.sim.scenario import Scenario, load_scenario
from tests.sim.helpers import SCENARIOS

TIME_SCALE = 20.0
WAIT_S = 15.0


def config(port: int, antennas: dict[int, str], **extra: object) -> LlrpReaderConfig:
    values: dict[str, object] = {
        "type": "llrp",
        "id": "dock",
        "host": "127.0.0.1",
        "port": port,
        "antennas": [AntennaConfig(port=p, zone=z) for p, z in antennas.items()],
        "report_every_s": 0.2,
        "keepalive_s": 1.0,
        "connect_timeout_s": 2.0,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    values.update(extra)
    return LlrpReaderConfig.model_validate(values)


class Recorder:
    def __init__(self) -> None:
        self.reads: list[RawRead] = []
        self.states: list[ReaderSnapshot] = []

    def on_read(self, read: RawRead) -> None:
        self.reads.append(read)

    def on_state(self, snap: ReaderSnapshot) -> None:
        self.states.append(snap)

    def state_names(self) -> list[str]:
        return [s.state for s in self.states]

    def online_count(self) -> int:
        return self.state_names().count("online")


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def running(driver: LlrpReader, body: Callable[[], Awaitable[None]]) -> None:
    """Run the driver while ``body`` runs; then cancel it and wait for it to end."""
    task = asyncio.create_task(driver.run())
    try:
        await body()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert driver.snapshot().state == "offline"


def dock() -> Scenario:
    return load_scenario(SCENARIOS / "llrp-dock.yaml")


def test_reads_exactly_the_scenarios_tags_per_antenna() -> None:
    scenario = dock()
    expected = {(iv.antenna, t.epc) for t in scenario.resolved_tags() for iv in t.intervals}
    rec = Recorder()

    async def main() -> None:
        async with LlrpSimulator(scenario, ScaledClock(TIME_SCALE), seed=1) as sim:
            driver = LlrpReader(
                config(sim.port, {1: "dock-door", 2: "staging"}),
                SystemClock(),
                rec.on_read,
                rec.on_state,
            )

            async def body() -> None:
                await until(lambda: rec.online_count() == 1, "online")
                await sim.wait_end(0.5)
                assert driver.snapshot().read_rate_per_s > 0

            await running(driver, body)
            assert sim.rospecs == {}  # stopped and deleted on the way out
            assert sim.counters.by_type.get(llrp.CLOSE_CONNECTION) == 1
            assert sim.counters.by_type.get(llrp.ENABLE_EVENTS_AND_REPORTS) == 1

    asyncio.run(main())
    assert {(r.antenna, r.epc) for r in rec.reads} == expected
    snap = rec.states[-1]
    assert snap.firmware == "Impinj model 2001002, firmware tagtrail-sim 1.9"
    assert snap.reads_total == len(rec.reads)
    assert snap.error_counts == {}
    assert all(r.reader == "dock" and r.rssi_dbm is not None for r in rec.reads)
    assert all(-80 <= (r.rssi_dbm or 0) <= -40 for r in rec.reads)
    assert rec.state_names() == ["online", "offline"]  # it starts "connecting"


def test_reconnects_after_the_reader_restarts() -> None:
    rec = Recorder()

    async def main() -> None:
        first = LlrpSimulator(dock(), ScaledClock(TIME_SCALE), seed=1)
        await first.start()
        port = first.port
        driver = LlrpReader(
            config(port, {1: "dock-door", 2: "staging"}), SystemClock(), rec.on_read, rec.on_state
        )

        async def body() -> None:
            await until(lambda: rec.online_count() == 1 and len(rec.reads) > 5, "reads")
            await first.close()
            await until(lambda: rec.state_names()[-1] == "offline", "offline")
            second = LlrpSimulator(dock(), ScaledClock(TIME_SCALE), seed=2, port=port)
            await second.start()
            try:
                before = len(rec.reads)
                await until(lambda: rec.online_count() == 2, "online again")
                await until(lambda: len(rec.reads) > before + 5, "reads again")
                assert second.counters.connections == 1
            finally:
                await second.close()

        await running(driver, body)
        snap = driver.snapshot()
        assert snap.error_counts["disconnects"] >= 1

    asyncio.run(main())


def test_keepalive_loss_goes_offline_then_recovers() -> None:
    rec = Recorder()

    async def main() -> None:
        async with LlrpSimulator(dock(), ScaledClock(TIME_SCALE), seed=1) as sim:
            driver = LlrpReader(
                config(sim.port, {1: "dock-door"}, keepalive_s=0.1),
                SystemClock(),
                rec.on_read,
                rec.on_state,
            )

            async def body() -> None:
                await until(lambda: rec.online_count() == 1, "online")
                await until(lambda: sim.counters.keepalive_acks >= 2, "keep-alives acknowledged")
                sim.mute()
                await until(lambda: rec.state_names()[-1] == "offline", "offline")
                snap = driver.snapshot()
                assert snap.error_counts["keepalive_timeouts"] == 1
                assert snap.last_error is not None
                assert "3 keep-alive periods" in snap.last_error
                sim.mute(False)
                await until(lambda: rec.online_count() == 2, "online again")

            await running(driver, body)

    asyncio.run(main())


def test_error_status_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    caplog.set_level(logging.ERROR, logger="tagtrail.readers.llrp")

    async def main() -> None:
        async with LlrpSimulator(dock(), ScaledClock(TIME_SCALE), seed=1) as sim:
            sim.fail_next(llrp.ADD_ROSPEC, 401, "antenna hub overheated")
            driver = LlrpReader(
                config(sim.port, {1: "dock-door"}), SystemClock(), rec.on_read, rec.on_state
            )

            async def body() -> None:
                await until(lambda: "error" in rec.state_names(), "error state")
                snap = driver.snapshot()
                assert snap.error_counts["status_error"] == 1
                assert snap.last_error == (
                    "ADD_ROSPEC rejected: R_DeviceError (401): antenna hub overheated"
                )
                await until(lambda: rec.online_count() == 1, "online after the retry")
                await until(lambda: len(rec.reads) > 0, "reads")

            await running(driver, body)
            assert sim.counters.by_type[llrp.ADD_ROSPEC] == 2

    asyncio.run(main())
    assert rec.state_names()[:3] == ["error", "connecting", "online"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "reader dock: ADD_ROSPEC rejected: R_DeviceError (401): antenna hub overheated"
    ]


def test_reader_held_by_another_client_refuses_the_connection() -> None:
    rec = Recorder()

    async def main() -> None:
        async with LlrpSimulator(dock(), ScaledClock(TIME_SCALE)) as sim:
            reader, writer = await asyncio.open_connection(sim.host, sim.port)
            await reader.readexactly(10)
            driver = LlrpReader(
                config(sim.port, {1: "dock-door"}), SystemClock(), rec.on_read, rec.on_state
            )

            async def body() -> None:
                await until(
                    lambda: driver.snapshot().error_counts.get("connection_refused", 0) >= 2,
                    "refusals",
                )
                writer.close()
                await until(lambda: rec.online_count() == 1, "online once the other left")

            await running(driver, body)
            snap = driver.snapshot()
            assert snap.error_counts["disconnects"] == 1  # one outage, however many refusals

    asyncio.run(main())
    assert "online" not in rec.state_names()[:2]


def test_against_llrpkit_emulator_reads_and_clean_stop() -> None:
    tags = [
        EmulatedTag(epc=bytes.fromhex("E2000017010B0162100000A1"), antennas=(1,), rssi_dbm=-50.0),
        EmulatedTag(epc=bytes.fromhex("E2000017010B0162100000A2"), antennas=(2,), rssi_dbm=-52.0),
        EmulatedTag(epc=bytes.fromhex("E2000017010B0162100000A3"), antennas=(3,), rssi_dbm=-54.0),
    ]
    rec = Recorder()

    async def main() -> None:
        async with LLRPEmulator(tags=tags, reads_per_sec=300.0) as emu:
            driver = LlrpReader(
                config(
                    emu.port, {1: "a", 2: "b"}, keepalive_s=0.1, tx_power_index=21, mode_index=2
                ),
                SystemClock(),
                rec.on_read,
                rec.on_state,
            )

            async def body() -> None:
                await until(
                    lambda: {r.antenna for r in rec.reads} == {1, 2} and emu.keepalive_acks >= 2,
                    "reads on both antennas and keep-alives acknowledged",
                )

            await running(driver, body)
            # a new client is welcome (the driver closed its connection) and finds no ROSpec
            reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
            try:
                (event,) = llrp.decode_message(await read_message(reader))
                assert isinstance(event, llrp.ReaderEvent)
                assert event.connection_status == 0
                writer.write(llrp.encode_message(llrp.GET_ROSPECS, 77))
                raw = await read_message(reader)
                (listed,) = llrp.decode_message(raw)
                assert isinstance(listed, llrp.Response)
                assert listed.status.ok
                assert struct.pack(">H", 177) not in raw[10:]  # no ROSpec parameter
            finally:
                writer.close()

    asyncio.run(main())
    assert {(r.antenna, r.epc) for r in rec.reads} == {
        (1, "E2000017010B0162100000A1"),
        (2, "E2000017010B0162100000A2"),
    }
    snap = rec.states[-1]
    assert snap.firmware == "Impinj model 700, firmware llrpkit-emu 0.1"
    assert "status_error" not in snap.error_counts
    assert ROSPEC_ID != 0


async def read_message(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(WAIT_S):
        header = await reader.readexactly(10)
        return header + await reader.readexactly(struct.unpack(">I", header[2:6])[0] - 10)
