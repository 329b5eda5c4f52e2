"""The M100 driver against a module peer on a real pseudo-terminal.

The peer holds the pty master, parses the driver's commands with the simulator's own
parser (:class:`tagtrail.sim.m100.CommandParser`) and answers with frames built by the
simulator's encoders (:mod:`tagtrail.sim.m100`, written independently of the driver's
decoder and command encoders). The driver opens a symlink in tmp_path, which the tests
re-point to a new pty to simulate replugging the module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tagtrail.cli import main
from tagtrail.clock import ManualClock
from tagtrail.readers.config import M100ReaderConfig
from tagtrail.readers.m100 import M100Reader
from tagtrail.readers.model import RawRead
from tagtrail.sim import m100 as sim
from tests.support.ptypeer import PtyPeer, Recorder

EPC_A = bytes.fromhex("30751FEB705C5904E3D50D70")
PC_A = 0x3400  # 6 words, UMI bit set
EPC_B = bytes.fromhex("E200301666130121155074EF")
HARDWARE = "M100 26dBm V1.0"

Responder = Callable[["Peer", sim.Command], bytes]


class Peer(PtyPeer[sim.Command]):
    """The module end of a pty, answering with ``respond``."""

    def __init__(self, link: Path, respond: Responder) -> None:
        super().__init__(link, sim.CommandParser(), lambda cmd: respond(self, cmd))

    def codes(self) -> list[int]:
        return [c.cmd for c in self.commands]

    def polls(self) -> int:
        return self.codes().count(sim.CMD_MULTIPLE_POLL)


def module(
    runs: Callable[[int], bytes], *, hardware: str = HARDWARE, ignore_info: int = 0
) -> Responder:
    """A module: answers module info (after ignoring the first ``ignore_info`` queries),
    stop with success, and the n-th multiple poll (1-based) with ``runs(n)``."""
    asked = [0]

    def respond(peer: Peer, cmd: sim.Command) -> bytes:
        if cmd.cmd == sim.CMD_MODULE_INFO:
            asked[0] += 1
            if asked[0] <= ignore_info:
                return b""
            return sim.module_info_frame(cmd.data[0], hardware)
        if cmd.cmd == sim.CMD_STOP:
            return sim.status_frame(sim.CMD_STOP, 0)
        if cmd.cmd == sim.CMD_MULTIPLE_POLL:
            return runs(peer.polls())
        return sim.error_frame(sim.COMMAND_ERROR)

    return respond


def no_tag(rounds: int = 1) -> bytes:
    return sim.error_frame(sim.NO_TAG) * rounds


def config(link: Path, *, round_timeout_s: float, poll_count: int = 7) -> M100ReaderConfig:
    return M100ReaderConfig.model_validate(
        {
            "type": "m100",
            "id": "gate-1",
            "port": str(link),
            "zone": "dock",
            "poll_count": poll_count,
            "round_timeout_s": round_timeout_s,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
        }
    )


Scenario = Callable[
    [M100Reader, Recorder, Path, "asyncio.Task[None]"], Coroutine[Any, Any, list[Peer]]
]


def run_with_driver(
    tmp_path: Path,
    scenario: Scenario,
    *,
    idle_flush_s: float = 0.2,
    round_timeout_s: float = 0.2,
) -> tuple[M100Reader, Recorder, ManualClock]:
    """Run the driver under ``scenario``, which returns the peers to close after the
    driver has been cancelled."""
    link = tmp_path / "ttyM100"
    clock = ManualClock()

    async def main_() -> tuple[M100Reader, Recorder]:
        rec = Recorder()
        reader = M100Reader(
            config(link, round_timeout_s=round_timeout_s),
            clock,
            rec.on_read,
            rec.on_state,
            idle_flush_s=idle_flush_s,
        )
        task = asyncio.create_task(reader.run())
        peers: list[Peer] = []
        try:
            peers = await scenario(reader, rec, link, task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for peer in peers:
                peer.close()
        assert task.cancelled()
        return reader, rec

    reader, rec = asyncio.run(main_())
    return reader, rec, clock


def test_tag_notices_are_delivered_with_fields(tmp_path: Path) -> None:
    first = (
        sim.tag_notice(epc=EPC_A, rssi_dbm=-55, pc=PC_A)
        + no_tag()
        + sim.tag_notice(epc=EPC_B, rssi_dbm=-61)
    )
    later = sim.tag_notice(epc=EPC_B, rssi_dbm=-70) + no_tag(2)
    seen: list[int] = []

    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, module(lambda n: first if n == 1 else later))
        await rec.until(lambda: len(rec.reads) >= 3)
        await peer.until(lambda: peer.polls() >= 3)
        seen.extend(peer.codes())
        return [peer]

    reader, rec, clock = run_with_driver(tmp_path, scenario)
    # the conversation: module info (hardware), then poll runs each ended by a stop
    assert seen[:6] == [0x03, 0x27, 0x28, 0x27, 0x28, 0x27]
    assert rec.states[0].state == "online"
    assert rec.reads[0] == RawRead(
        reader="gate-1",
        antenna=1,
        epc="30751FEB705C5904E3D50D70",
        rssi_dbm=-55.0,
        mono=0.0,
        time=clock.now(),
        pc=0x3400,
        scheme="epc",
    )
    assert rec.reads[1] == RawRead(
        reader="gate-1",
        antenna=1,
        epc="E200301666130121155074EF",
        rssi_dbm=-61.0,
        mono=0.0,
        time=clock.now(),
        pc=0x3000,  # 6 words, plain
        scheme="epc",
    )
    assert rec.reads[2].epc == "E200301666130121155074EF"
    assert rec.reads[2].rssi_dbm == -70.0
    snap = reader.snapshot()
    assert snap.reader_type == "m100"
    assert snap.firmware == HARDWARE
    assert snap.error_counts == {}  # empty rounds (0x15) are not errors
    assert snap.reads_total == len(rec.reads)


def test_multiple_poll_carries_the_configured_count(tmp_path: Path) -> None:
    commands: list[sim.Command] = []

    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, module(lambda n: no_tag()))
        await peer.until(lambda: peer.polls() >= 1)
        commands.extend(peer.commands)
        return [peer]

    run_with_driver(tmp_path, scenario)
    assert commands[0] == sim.Command(cmd=0x03, data=b"\x00")  # kind 0: hardware version
    assert commands[1].poll_count == 7
    assert commands[1].data[0] == 0x22  # the reserved byte
    assert commands[1].data == bytes([0x22, 0x00, 0x07])


def test_no_tag_rounds_are_not_errors_but_other_codes_are(tmp_path: Path) -> None:
    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        # first runs find nothing; the third reports an FHSS failure (0x20)
        peer = Peer(link, module(lambda n: sim.error_frame(0x20) if n == 3 else no_tag(5)))
        await peer.until(lambda: peer.polls() >= 4)
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert rec.reads == []
    snap = reader.snapshot()
    assert snap.error_counts == {"reader_0x20": 1}
    assert snap.last_error is not None
    assert "fhss_fail" in snap.last_error
    assert [s.state for s in rec.states] == ["online", "offline"]


def test_garbage_and_bad_checksums_are_counted_while_good_notices_arrive(tmp_path: Path) -> None:
    good_a = sim.tag_notice(epc=EPC_A, rssi_dbm=-55, pc=PC_A)
    good_b = sim.tag_notice(epc=EPC_B, rssi_dbm=-61)
    bad_check = bytearray(good_b)
    bad_check[-2] ^= 0x01  # frame check byte
    # an EPC bit flipped with a frame check that matches: the tag's CRC-16 catches it
    inner = bytearray(good_b[5:-2])
    inner[5] ^= 0x40
    bad_crc = sim.encode_frame(sim.NOTICE, sim.CMD_SINGLE_POLL, bytes(inner))
    burst = b"\x00\x11noise" + bytes(bad_check) + good_a + bad_crc + good_b + no_tag()

    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, module(lambda n: burst if n == 1 else no_tag()))
        await rec.until(lambda: len(rec.reads) >= 2)
        await peer.until(lambda: peer.polls() >= 2)
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert [(r.epc, r.rssi_dbm) for r in rec.reads] == [
        (EPC_A.hex().upper(), -55.0),
        (EPC_B.hex().upper(), -61.0),
    ]
    counts = reader.snapshot().error_counts
    assert counts == {"garbage": 1, "checksum": 2}


def test_unanswered_module_info_counts_timeouts_until_answered(tmp_path: Path) -> None:
    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, module(lambda n: no_tag(), ignore_info=2))
        await rec.until(rec.online)
        assert reader.snapshot().error_counts == {"timeouts": 2}
        assert peer.codes()[:3] == [0x03, 0x03, 0x03]
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert rec.states[0].state == "online"  # "connecting" until then (the initial state)
    assert reader.snapshot().firmware == HARDWARE


def test_a_silent_poll_run_counts_a_timeout_and_is_restarted(tmp_path: Path) -> None:
    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        # the first run says nothing at all; the second reads a tag
        runs = [b"", sim.tag_notice(epc=EPC_A, rssi_dbm=-40, pc=PC_A)]
        peer = Peer(link, module(lambda n: runs[n - 1] if n <= 2 else no_tag()))
        await rec.until(lambda: len(rec.reads) == 1)
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert rec.reads[0].rssi_dbm == -40.0
    assert reader.snapshot().error_counts == {"timeouts": 1}


def test_cancel_sends_stop(tmp_path: Path) -> None:
    after_cancel: list[int] = []

    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, module(lambda n: sim.tag_notice(epc=EPC_B, rssi_dbm=-50)))
        await rec.until(lambda: len(rec.reads) == 1)
        # the run's quiet gap is 30 s: a stop now can only come from the cancellation
        assert peer.codes() == [0x03, 0x27]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peer.until(lambda: len(peer.commands) == 3)
        after_cancel.extend(peer.codes())
        return [peer]

    _, rec, _ = run_with_driver(tmp_path, scenario, round_timeout_s=30.0)
    assert after_cancel == [0x03, 0x27, 0x28]
    assert rec.states[-1].state == "offline"


def test_unplugged_goes_offline_and_reconnects(tmp_path: Path) -> None:
    async def scenario(
        reader: M100Reader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        first = Peer(link, module(lambda n: sim.tag_notice(epc=EPC_A, rssi_dbm=-55, pc=PC_A)))
        await rec.until(lambda: len(rec.reads) >= 1)
        first.close()
        await rec.until(lambda: rec.states[-1].state == "offline")
        offline = rec.states[-1]
        assert offline.error_counts["disconnects"] == 1
        assert offline.last_error is not None
        second = Peer(
            link,
            module(lambda n: sim.tag_notice(epc=EPC_B, rssi_dbm=-61), hardware="E710 V2"),
        )
        await rec.until(lambda: any(r.epc == EPC_B.hex().upper() for r in rec.reads))
        assert second.codes()[:2] == [0x03, 0x27]
        return [second]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert [s.state for s in rec.states] == ["online", "offline", "connecting", "online", "offline"]
    snap = reader.snapshot()
    assert snap.error_counts["disconnects"] == 1  # one outage, however many reopen attempts
    assert snap.firmware == "E710 V2"
    assert {r.epc for r in rec.reads} == {EPC_A.hex().upper(), EPC_B.hex().upper()}


VALID = """
site: wh1
device: gate
readers:
  - type: m100
    id: uhf-gate
    port: /dev/ttyUSB2
    zone: dock
"""


def test_check_config_accepts_an_m100_reader(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(VALID + "    poll_count: 500\n")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid edge config (1 reader(s), site wh1, device gate)" in result.output


def test_check_config_names_a_bad_poll_count(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(VALID + "    poll_count: 0\n")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "readers.0.m100.poll_count:" in result.output, result.output
    assert "Traceback" not in result.output
