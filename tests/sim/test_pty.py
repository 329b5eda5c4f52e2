"""The simulator over a real pseudo-terminal: commands in, frames out, byte for byte."""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tagtrail.clock import ManualClock, ScaledClock
from tagtrail.sim import PtySimulator, SimulatorError, parse_scenario
from tagtrail.sim.scenario import Scenario
from tests.sim.helpers import SCENARIOS, PtyClient, command, split_frames, until

H = bytes.fromhex
A = "E200301666130121155074EF"
B = "E200301666130121155074F0"

BASE: dict[str, Any] = {
    "name": "pty",
    "antennas": {1: "dock", 2: "staging", 4: "yard"},
    "disconnected": [4],
    "end_s": 30,
    "reads": {
        "reads_per_s": 20,
        "round_period_s": 0.05,
        "miss_probability": 0,
        "duplicate_probability": 0,
        "corrupt_byte_rate": 0,
        "rssi": {"jitter_db": 0, "ramp_s": 0, "ramp_db": 0},
    },
    "tags": [
        {"epc": A, "visible": [{"antenna": 1, "from_s": 2, "to_s": 10, "rssi_dbm": -50}]},
        {
            "epc": B,
            "visible": [
                {"antenna": 1, "from_s": 0, "to_s": 10, "rssi_dbm": -58},
                {"antenna": 2, "from_s": 11, "rssi_dbm": -61},
            ],
        },
    ],
}


def make(**changes: Any) -> Scenario:
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return parse_scenario(data)


Body = Callable[[PtySimulator, PtyClient, ManualClock], Awaitable[None]]


def run(scenario: Scenario, body: Body, **options: Any) -> None:
    async def main() -> None:
        clock = ManualClock()
        options.setdefault("pace", False)
        sim = PtySimulator(scenario, clock, **options)
        path = await sim.start()
        try:
            with PtyClient(path) as client:
                await body(sim, client, clock)
        finally:
            await sim.close()

    asyncio.run(main())


def tag_fields(frame: bytes) -> tuple[int, int, str, int]:
    """(antenna 0-based, PC, EPC hex, RSSI dBm) of a tag frame, parsed by hand."""
    assert frame[1] == 0x13
    pc = frame[5] << 8 | frame[6]
    return frame[4] & 0x03, pc, frame[7:19].hex().upper(), frame[19] - 129


def test_firmware_and_work_antenna_commands() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        client.send(H("A0 03 01 72 EA"))
        assert await client.frames(1) == [H("A0 05 01 72 01 09 DE")]
        client.send(H("A0 04 01 74 00 E7"))
        assert await client.frames(1) == [H("A0 04 01 74 10 D7")]
        client.send(command(0x75))
        assert await client.frames(1) == [command(0x75, 0)]
        client.send(command(0x74, 1))
        assert await client.frames(1) == [command(0x74, 0x10)]
        client.send(command(0x75))
        assert await client.frames(1) == [command(0x75, 1)]
        # port 3 is not in the scenario, port 4 is listed as disconnected: antenna missing
        for index in (2, 3):
            client.send(command(0x74, index))
            assert await client.frames(1) == [command(0x74, 0x22)]
        client.send(command(0x74, 4))  # no such port on an R2000
        assert await client.frames(1) == [command(0x74, 0x47)]
        client.send(command(0x75))
        assert await client.frames(1) == [command(0x75, 1)]
        client.send(command(0x70))  # reset: no reply, work antenna back to 1
        client.send(command(0x75))
        assert await client.frames(1) == [command(0x75, 0)]
        assert sim.counters.commands == 11
        assert sim.counters.bad_commands == 0

    run(make(), body)


def test_firmware_version_comes_from_the_scenario() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        client.send(command(0x72))
        assert await client.frames(1) == [command(0x72, 2, 14)]

    run(make(reader={"firmware": "2.14"}), body)


def test_inventory_rounds_over_the_pty() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        clock.set(100.0)  # the scenario clock starts at the first inventory: t = 0
        client.send(H("A0 04 01 89 01 D1"))
        tag, end = await client.round_reply()
        assert sim.scenario_time() == 0.0
        assert tag_fields(tag) == (0, 0x3000, B, -58)
        assert tag[3] == 0x89
        assert end[1] == 0x0A
        assert end[3] == 0x89
        assert end[4] == 0  # antenna, 0-based
        assert int.from_bytes(end[5:7], "big") == 20  # 1 read in 0.05 s
        assert int.from_bytes(end[7:11], "big") == 1

        clock.set(105.0)  # t = 5: both tags in front of antenna 1
        client.send(command(0x89, 1))
        *tags, end = await client.round_reply()
        assert sorted(tag_fields(f) for f in tags) == [(0, 0x3000, A, -50), (0, 0x3000, B, -58)]
        assert int.from_bytes(end[7:11], "big") == 2

        client.send(command(0x74, 1))
        assert await client.frames(1) == [command(0x74, 0x10)]
        client.send(command(0x89, 1))  # nothing at staging at t = 5: error 0x36
        assert await client.round_reply() == [command(0x89, 0x36)]

        clock.set(115.0)  # t = 15: B at staging; session inventory with repeat 2
        client.send(H("A0 06 01 8B 01 00 02 CB"))
        *tags, end = await client.round_reply()
        assert [f[3] for f in [*tags, end]] == [0x8B] * 3
        assert [tag_fields(f) for f in tags] == [(1, 0x3000, B, -61)] * 2
        assert end[4] == 1
        assert int.from_bytes(end[7:11], "big") == 2

        clock.set(131.0)  # past end_s: nothing anywhere
        client.send(command(0x89, 1))
        assert await client.round_reply() == [command(0x89, 0x36)]
        assert sim.counters.rounds == 5
        assert sim.counters.tag_frames == 5

    run(make(), body)


def test_start_immediately_runs_the_clock_from_start() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        assert sim.scenario_time() == 0.0
        clock.set(5.0)
        client.send(command(0x89, 1))
        frames = await client.round_reply()
        assert sorted(tag_fields(f)[2] for f in frames[:-1]) == [A, B]

    run(make(), body, start_immediately=True)


def test_bad_frames_are_ignored_and_counted() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        client.send(H("A0 03 01 72 EB"))  # bad checksum
        client.send(command(0x99))  # unknown command
        client.send(command(0x72, address=7))  # another reader's address
        client.send(b"\x13\x37")  # line noise
        client.send(command(0x89, 0))  # repeat 0: parameter invalid
        assert await client.frames(1) == [command(0x89, 0x41)]
        client.send(command(0x72, address=0xFF))  # broadcast is answered
        assert await client.frames(1) == [H("A0 05 01 72 01 09 DE")]
        reasons = sim.counters.bad_command_reasons
        assert reasons["bad_checksum"] == 1
        assert reasons["unknown_command"] == 1
        assert reasons["other_address"] == 1
        assert reasons["bad_parameter"] == 1
        assert reasons["junk_bytes"] >= 2
        assert sim.counters.bad_commands == 4
        assert client.buf == b""

    run(make(), body)


NOISY = {
    "reads_per_s": 13,
    "miss_probability": 0.2,
    "duplicate_probability": 0.1,
    "corrupt_byte_rate": 0.002,
    "rssi": {"jitter_db": 2, "ramp_s": 0.5, "ramp_db": 6},
}


def record(scenario: Scenario, seed: int) -> bytes:
    """Bytes the simulator sends for a fixed command sequence under a manual clock."""
    received = bytearray()

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        expected = 0
        for step in range(60):
            antenna = step % 2
            for cmd in (command(0x74, antenna), command(0x89, 1 + step % 3)):
                client.send(cmd)
                expected += 1
                await until(lambda: sim.counters.commands == expected)  # noqa: B023 - awaited now
                await sim.wait_idle()
            clock.advance(0.5)
        received.extend(await client.wait_bytes(sim.counters.bytes_sent))

    run(scenario, body, seed=seed)
    return bytes(received)


def test_same_seed_gives_the_same_bytes() -> None:
    scenario = make(reads=NOISY)
    first = record(scenario, 9)
    assert len(first) > 1000
    assert record(scenario, 9) == first
    assert record(scenario, 10) != first


def test_corruption_rate_zero_yields_only_valid_frames() -> None:
    data = yaml.safe_load((SCENARIOS / "pallet-50.yaml").read_text())
    data["reads"]["corrupt_byte_rate"] = 0
    scenario = parse_scenario(data)
    known = {t.epc for t in scenario.resolved_tags()}

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        for step in range(160):
            client.send(command(0x74, step % 2))
            await client.frames(1)
            client.send(command(0x89, 1))
            await client.round_reply()
            clock.advance(0.25)
        await sim.wait_idle()
        assert client.buf == b""
        frames, rest = split_frames(bytes(client.received))
        assert rest == b""
        tag_frames = [f for f in frames if f[1] == 0x13]
        assert len(tag_frames) == sim.counters.tag_frames > 500
        assert {tag_fields(f)[2] for f in tag_frames} <= known
        assert sim.counters.corrupted_bytes == 0
        others = [f for f in frames if f[1] != 0x13]
        assert len(others) == 320
        assert all(f[1] in (0x04, 0x0A) for f in others)

    run(scenario, body, start_immediately=True)


def test_corrupted_bytes_are_counted() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        clock.set(5.0)
        for _ in range(200):
            client.send(command(0x89, 1))
        await until(lambda: sim.counters.commands == 200)
        await sim.wait_idle()
        await client.wait_bytes(sim.counters.bytes_sent)
        assert sim.counters.corrupted_bytes > 0

    run(make(reads={"corrupt_byte_rate": 0.01}), body, start_immediately=True)


def test_link_points_at_the_pty_and_is_removed(tmp_path: Path) -> None:
    link = tmp_path / "reader0"

    async def main() -> None:
        sim = PtySimulator(make(), ManualClock(), link=link, pace=False)
        path = await sim.start()
        assert link.is_symlink()
        assert os.readlink(link) == path
        with PtyClient(str(link)) as client:
            client.send(command(0x72))
            assert await client.frames(1) == [H("A0 05 01 72 01 09 DE")]
        await sim.close()
        assert not link.exists()
        assert not link.is_symlink()

    asyncio.run(main())


def test_link_over_a_regular_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "not-a-link"
    target.write_text("keep me")

    async def main() -> None:
        sim = PtySimulator(make(), ManualClock(), link=target)
        with pytest.raises(SimulatorError):
            await sim.start()
        await sim.close()

    asyncio.run(main())
    assert target.read_text() == "keep me"


def test_paced_rounds_under_a_scaled_clock() -> None:
    async def main() -> None:
        clock = ScaledClock(1000.0)
        async with PtySimulator(make(), clock, start_immediately=True) as sim:
            assert sim.time_scale == 1000.0
            with PtyClient(sim.slave_path) as client:
                client.send(command(0x89, 4))
                frames = await client.round_reply()
                assert frames[-1][3] == 0x89
                t = sim.scenario_time()
                assert t is not None
                assert t >= 0.2  # the reply took repeat * round_period scenario seconds

    asyncio.run(main())


def test_looping_replays_the_scenario() -> None:
    """With loop_s the scenario starts again: t = end_s + grace + 5 plays like t = 5."""

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        client.send(command(0x89, 1))  # starts the scenario clock at t = 0
        await client.round_reply()
        clock.set(5.0)
        client.send(command(0x89, 1))
        *first, _ = await client.round_reply()
        clock.set(5.0 + sim.scenario.end_s + 2.0)
        client.send(command(0x89, 1))
        *again, _ = await client.round_reply()
        assert sorted(tag_fields(f)[2] for f in first) == [A, B]
        assert sorted(tag_fields(f)[2] for f in again) == [A, B]

    run(make(), body, loop_s=make().end_s + 2.0)
