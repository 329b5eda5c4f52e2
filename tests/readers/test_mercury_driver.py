"""The Mercury driver against a module peer on a real pseudo-terminal.

The peer holds the pty master, parses the driver's commands with the simulator's own
parser (:class:`tagtrail.sim.mercury.CommandParser`) and answers with frames built by the
simulator's encoders (:mod:`tagtrail.sim.mercury`, written independently of the driver's
decoder and command encoders). The driver opens a symlink in tmp_path, which the tests
re-point to a new pty to simulate replugging the module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tagtrail.clock import ManualClock
from tagtrail.readers.config import MercuryReaderConfig
from tagtrail.readers.mercury import MercuryReader
from tagtrail.readers.model import RawRead
from tagtrail.sim import mercury as sim
from tests.support.ptypeer import PtyPeer, Recorder

EPC_A = bytes.fromhex("30751FEB705C5904E3D50D70")
EPC_B = bytes.fromhex("E200301666130121155074EF")


class Module:
    """What the module answers: setup commands with a status, start with an
    acknowledgement followed by ``on_start`` (bytes), stop with its acknowledgement."""

    def __init__(
        self,
        *,
        on_start: bytes = b"",
        ignore_version: int = 0,
        statuses: dict[int, int] | None = None,
        firmware: bytes = bytes((0x01, 0x03, 0x01, 0x47)),
    ) -> None:
        self.on_start = on_start
        self.ignore_version = ignore_version
        self.statuses = statuses or {}
        self.firmware = firmware
        self.version_asked = 0
        self.started: sim.StartReading | None = None

    def respond(self, cmd: sim.Command) -> bytes:
        if cmd.opcode == sim.OP_VERSION:
            self.version_asked += 1
            if self.version_asked <= self.ignore_version:
                return b""
            return sim.version_reply(firmware=self.firmware)
        if cmd.opcode == sim.OP_MULTI_PROTOCOL_TAG_OP:
            if sim.is_stop_reading(cmd):
                self.started = None
                return sim.reading_stopped()
            self.started = sim.parse_start_reading(cmd.data)
            return sim.reading_started() + self.on_start
        if cmd.opcode in (
            sim.OP_SET_TAG_PROTOCOL,
            sim.OP_SET_REGION,
            sim.OP_SET_ANTENNA_PORT,
            sim.OP_SET_READ_TX_POWER,
        ):
            return sim.encode_response(cmd.opcode, self.statuses.get(cmd.opcode, sim.STATUS_OK))
        return sim.encode_response(cmd.opcode, sim.STATUS_INVALID_OPCODE)


class Peer(PtyPeer[sim.Command]):
    """The module end of a pty, answering with ``module``."""

    def __init__(self, link: Path, module: Module) -> None:
        self.commands_parser = sim.CommandParser()
        super().__init__(link, self.commands_parser, module.respond)
        self.module = module
        self.sent_keep_alives = 0
        self._ticker: asyncio.TimerHandle | None = None

    def keep_alive_every(self, period_s: float) -> None:
        """Send a keep-alive per search cycle, as a reading module does with no tag."""

        def tick() -> None:
            if self.closed:
                return
            if self.module.started is not None:
                self.write(sim.keep_alive())
                self.sent_keep_alives += 1
                self.changed.set()
            self._ticker = asyncio.get_running_loop().call_later(period_s, tick)

        tick()

    def opcodes(self) -> list[int]:
        return [c.opcode for c in self.commands]

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        super().close()


def config(link: Path, *, silence_timeout_s: float) -> MercuryReaderConfig:
    return MercuryReaderConfig.model_validate(
        {
            "type": "mercury",
            "id": "dock-m6e",
            "port": str(link),
            "region": 0x02,
            "read_power_cdbm": 2500,
            "antennas": [{"port": 1, "zone": "dock"}, {"port": 3, "zone": "aisle"}],
            "on_time_ms": 250,
            "silence_timeout_s": silence_timeout_s,
            "round_timeout_s": 0.3,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
        }
    )


Scenario = Callable[
    [MercuryReader, Recorder, Path, "asyncio.Task[None]"], Coroutine[Any, Any, list[Peer]]
]


def run_with_driver(
    tmp_path: Path, scenario: Scenario, *, silence_timeout_s: float = 30.0
) -> tuple[MercuryReader, Recorder, ManualClock]:
    """Run the driver under ``scenario``, which returns the peers to close after the
    driver has been cancelled."""
    link = tmp_path / "ttyM6e"
    clock = ManualClock()

    async def main_() -> tuple[MercuryReader, Recorder]:
        rec = Recorder()
        reader = MercuryReader(
            config(link, silence_timeout_s=silence_timeout_s), clock, rec.on_read, rec.on_state
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


def test_setup_sequence_is_sent_byte_for_byte(tmp_path: Path) -> None:
    captured: list[Peer] = []

    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, Module())
        captured.append(peer)
        await peer.until(lambda: peer.module.started is not None)
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    peer = captured[0]
    setup = [
        sim.Command(sim.OP_VERSION, b""),
        sim.Command(sim.OP_SET_TAG_PROTOCOL, b"\x00\x05"),  # Gen2
        sim.Command(sim.OP_SET_REGION, b"\x02"),  # EU
        sim.Command(sim.OP_SET_ANTENNA_PORT, bytes((0x02, 1, 1, 3, 3))),  # ports 1 and 3
        sim.Command(sim.OP_SET_READ_TX_POWER, (2500).to_bytes(2, "big")),
    ]
    assert peer.commands[:5] == setup
    start = peer.commands[5]
    assert start.opcode == sim.OP_MULTI_PROTOCOL_TAG_OP
    # timeout 0, option 1, embedded 0x22, no search flags, Gen2, 7 bytes, 0x22, metadata
    # option, streaming search flags, then on-time and metadata flags
    assert start.data[:12] == bytes.fromhex("000001220000050722 10 001B")
    sent_before_stop = b"".join(sim.encode_command(c.opcode, c.data) for c in peer.commands[:6])
    assert bytes(peer.raw).startswith(sent_before_stop)
    req = sim.parse_start_reading(start.data)
    assert req is not None
    assert req.on_time_ms == 250
    assert req.protocol == sim.GEN2
    assert req.search_flags == sim.STREAM_SEARCH_FLAGS
    wanted = sim.F_COUNT | sim.F_RSSI | sim.F_ANTENNA
    assert req.metadata_flags & wanted == wanted
    assert peer.commands_parser.errors == {}
    assert rec.states[0].state == "online"
    snap = reader.snapshot()
    assert snap.reader_type == "mercury"
    assert snap.firmware is not None
    assert "01.03.01.47" in snap.firmware
    assert snap.error_counts == {}


def test_tag_records_are_delivered_with_exact_fields(tmp_path: Path) -> None:
    started: list[sim.StartReading] = []

    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        module = Module()
        peer = Peer(link, module)
        await peer.until(lambda: module.started is not None)
        assert module.started is not None
        started.append(module.started)
        flags = module.started.metadata_flags
        peer.write(
            sim.tag_record(EPC_A, metadata_flags=flags, rssi_dbm=-57, antenna=3, read_count=2)
            + sim.keep_alive()
            + sim.tag_record(EPC_B, metadata_flags=flags, rssi_dbm=-71, antenna=1, pc=0x3400)
        )
        await rec.until(lambda: len(rec.reads) >= 2)
        return [peer]

    reader, rec, clock = run_with_driver(tmp_path, scenario)
    assert rec.reads == [
        RawRead(
            reader="dock-m6e",
            antenna=3,
            epc="30751FEB705C5904E3D50D70",
            rssi_dbm=-57.0,
            mono=0.0,
            time=clock.now(),
            pc=0x3000,  # 6 words
            scheme="epc",
        ),
        RawRead(
            reader="dock-m6e",
            antenna=1,
            epc="E200301666130121155074EF",
            rssi_dbm=-71.0,
            mono=0.0,
            time=clock.now(),
            pc=0x3400,
            scheme="epc",
        ),
    ]
    snap = reader.snapshot()
    assert snap.reads_total == 2
    assert snap.error_counts == {}


def test_keep_alives_keep_it_online_and_are_not_reads(tmp_path: Path) -> None:
    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        peer = Peer(link, Module())
        peer.keep_alive_every(0.05)
        # 30 keep-alives span about five silence timeouts (0.3 s)
        await peer.until(lambda: peer.sent_keep_alives >= 30)
        assert peer.module.version_asked == 1  # never reconnected
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario, silence_timeout_s=0.3)
    assert rec.reads == []
    assert [s.state for s in rec.states] == ["online", "offline"]  # offline: the cancel
    snap = reader.snapshot()
    assert snap.reads_total == 0
    assert snap.error_counts == {}


def test_bad_crc_is_counted_while_good_records_arrive(tmp_path: Path) -> None:
    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        module = Module()
        peer = Peer(link, module)
        await peer.until(lambda: module.started is not None)
        assert module.started is not None
        flags = module.started.metadata_flags
        good_a = sim.tag_record(EPC_A, metadata_flags=flags, rssi_dbm=-50, antenna=1)
        bad = bytearray(sim.tag_record(EPC_B, metadata_flags=flags, rssi_dbm=-60, antenna=3))
        bad[-1] ^= 0x01  # frame CRC
        good_b = sim.tag_record(EPC_B, metadata_flags=flags, rssi_dbm=-61, antenna=3)
        peer.write(good_a + bytes(bad) + good_b + sim.keep_alive())
        await rec.until(lambda: len(rec.reads) >= 2)
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert [(r.epc, r.rssi_dbm, r.antenna) for r in rec.reads] == [
        (EPC_A.hex().upper(), -50.0, 1),
        (EPC_B.hex().upper(), -61.0, 3),
    ]
    snap = reader.snapshot()
    assert snap.error_counts == {"checksum": 1}
    assert snap.last_error is not None
    assert snap.last_error.startswith("checksum")


def test_failing_setup_status_and_throttle_are_counted_and_reading_goes_on(
    tmp_path: Path,
) -> None:
    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        module = Module(ignore_version=1, statuses={sim.OP_SET_REGION: sim.STATUS_INVALID_REGION})
        peer = Peer(link, module)
        await peer.until(lambda: module.started is not None)
        snap = reader.snapshot()
        assert snap.error_counts == {"timeouts": 1, "reader_0x010B": 1}
        assert snap.last_error is not None
        assert "invalid_region" in snap.last_error
        assert module.started is not None
        flags = module.started.metadata_flags
        peer.write(
            sim.temperature_throttle() + sim.tag_record(EPC_A, metadata_flags=flags, antenna=1)
        )
        await rec.until(lambda: len(rec.reads) >= 1)
        assert peer.opcodes()[:7] == [0x03, 0x03, 0x93, 0x97, 0x91, 0x92, 0x2F]
        return [peer]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert rec.reads[0].epc == EPC_A.hex().upper()
    snap = reader.snapshot()
    assert snap.error_counts == {"timeouts": 1, "reader_0x010B": 1, "throttled": 1}
    assert snap.last_error is not None
    assert "temperature" in snap.last_error


def test_silence_counts_a_timeout_and_reconnects(tmp_path: Path) -> None:
    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        module = Module()  # acknowledges the start, then says nothing
        peer = Peer(link, module)
        await peer.until(lambda: module.version_asked >= 2)
        snap = reader.snapshot()
        assert snap.error_counts == {"timeouts": 1, "disconnects": 1}
        assert snap.last_error is not None
        assert "nothing from the module" in snap.last_error
        ops = peer.opcodes()
        # start, then the stop written before the link was dropped, then the new session
        assert ops[:8] == [0x03, 0x93, 0x97, 0x91, 0x92, 0x2F, 0x2F, 0x03]
        assert sim.parse_start_reading(peer.commands[5].data) is not None
        assert sim.is_stop_reading(peer.commands[6])
        await rec.until(lambda: [s.state for s in rec.states][-1:] == ["online"])
        return [peer]

    _, rec, _ = run_with_driver(tmp_path, scenario, silence_timeout_s=0.3)
    assert [s.state for s in rec.states] == ["online", "offline", "connecting", "online", "offline"]


def test_unplugged_goes_offline_and_reconnects_at_the_same_path(tmp_path: Path) -> None:
    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        first_module = Module()
        first = Peer(link, first_module)
        await first.until(lambda: first_module.started is not None)
        assert first_module.started is not None
        first.write(
            sim.tag_record(EPC_A, metadata_flags=first_module.started.metadata_flags, antenna=1)
        )
        await rec.until(lambda: len(rec.reads) >= 1)
        first.close()
        await rec.until(lambda: rec.states[-1].state == "offline")
        offline = rec.states[-1]
        assert offline.error_counts == {"disconnects": 1}
        assert offline.last_error is not None
        second_module = Module(firmware=bytes((0x01, 0x09, 0x00, 0x02)))
        second = Peer(link, second_module)
        await second.until(lambda: second_module.started is not None)
        assert second_module.started is not None
        second.write(
            sim.tag_record(EPC_B, metadata_flags=second_module.started.metadata_flags, antenna=3)
        )
        await rec.until(lambda: len(rec.reads) >= 2)
        assert second.opcodes()[:6] == [0x03, 0x93, 0x97, 0x91, 0x92, 0x2F]
        return [second]

    reader, rec, _ = run_with_driver(tmp_path, scenario)
    assert [s.state for s in rec.states] == ["online", "offline", "connecting", "online", "offline"]
    assert [(r.epc, r.antenna) for r in rec.reads] == [
        (EPC_A.hex().upper(), 1),
        (EPC_B.hex().upper(), 3),
    ]
    snap = reader.snapshot()
    assert snap.error_counts["disconnects"] == 1  # one outage, however many reopen attempts
    assert snap.firmware is not None
    assert "01.09.00.02" in snap.firmware


def test_cancel_sends_stop(tmp_path: Path) -> None:
    after_cancel: list[sim.Command] = []

    async def scenario(
        reader: MercuryReader, rec: Recorder, link: Path, task: asyncio.Task[None]
    ) -> list[Peer]:
        module = Module()
        peer = Peer(link, module)
        await peer.until(lambda: module.started is not None)
        assert len(peer.commands) == 6  # nothing else is sent while reading
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peer.until(lambda: len(peer.commands) == 7)
        after_cancel.extend(peer.commands)
        return [peer]

    _, rec, _ = run_with_driver(tmp_path, scenario)
    assert sim.is_stop_reading(after_cancel[-1])
    assert after_cancel[-1] == sim.Command(sim.OP_MULTI_PROTOCOL_TAG_OP, b"\x00\x00\x02")
    assert rec.states[-1].state == "offline"
