"""The Chafon driver against a reader peer on a real pseudo-terminal.

The peer holds the pty master, parses the driver's commands with the simulator's own
parser (:class:`tagtrail.sim.chafon.CommandParser`, :func:`tagtrail.sim.chafon.parse_inventory`)
and answers with frames built by the simulator's encoders (:mod:`tagtrail.sim.chafon`,
written independently of the driver's decoder and command encoders). The driver opens a
symlink in tmp_path, which the tests re-point to a new pty to simulate replugging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tagtrail.clock import ManualClock
from tagtrail.readers.chafon import ChafonReader
from tagtrail.readers.config import ChafonReaderConfig
from tagtrail.readers.model import RawRead
from tagtrail.sim import chafon as sim
from tests.support.ptypeer import PtyPeer, Recorder

EPC_A = bytes.fromhex("3039606303C74380001A0559")
EPC_B = bytes.fromhex("E200301666130121155074EF")
EPC_C = bytes.fromhex("AAAA0000BBBB")
ADDR = 0x00

Rounds = Callable[[int, int | None], bytes]
"""(n-th inventory command, 1-based; antenna it asked for) -> the reply bytes."""

Responder = Callable[["Peer", sim.Command], bytes]


class Peer(PtyPeer[sim.Command]):
    """The reader end of a pty, answering with ``respond``."""

    def __init__(self, link: Path, respond: Responder) -> None:
        super().__init__(link, sim.CommandParser(), lambda cmd: respond(self, cmd))

    def codes(self) -> list[int]:
        return [c.cmd for c in self.commands]

    def inventories(self) -> list[sim.InventoryRequest]:
        out = []
        for c in self.commands:
            if c.cmd == sim.CMD_INVENTORY:
                req = sim.parse_inventory(c.data)
                assert req is not None, c
                out.append(req)
        return out


def reader(
    rounds: Rounds, *, version: tuple[int, int] = (0, 22), ignore_info: int = 0
) -> Responder:
    """A reader: answers get reader information (after ignoring the first ``ignore_info``
    queries) and the n-th inventory with ``rounds(n, antenna)``."""
    asked = [0, 0]

    def respond(peer: Peer, cmd: sim.Command) -> bytes:
        if cmd.cmd == sim.CMD_GET_READER_INFO:
            asked[0] += 1
            if asked[0] <= ignore_info:
                return b""
            return sim.reader_info_frame(
                ADDR,
                version=version,
                reader_type=sim.TYPE_UHFREADER288M,
                band=4,
                max_freq=0x0E,
                min_freq=0,
                power_dbm=30,
                scan_time=10,
            )
        if cmd.cmd == sim.CMD_INVENTORY:
            asked[1] += 1
            req = sim.parse_inventory(cmd.data)
            return rounds(asked[1], req.antenna if req else None)
        return sim.encode_reply(ADDR, cmd.cmd, sim.STATUS_ILLEGAL_COMMAND)

    return respond


def empty_288(antenna: int | None) -> bytes:
    return sim.inventory_frames(ADDR, [], layout="288", antenna=antenna or 1)[0]


def config(
    link: Path, *, layout: str, antennas: list[int], round_timeout_s: float
) -> ChafonReaderConfig:
    return ChafonReaderConfig.model_validate(
        {
            "type": "chafon",
            "id": "dock-1",
            "port": str(link),
            "address": ADDR,
            "layout": layout,
            "antennas": [{"port": p, "zone": f"zone{p}"} for p in antennas],
            "q": 6,
            "session": 1,
            "scan_time": 1,
            "round_timeout_s": round_timeout_s,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
        }
    )


Scenario = Callable[[ChafonReader, Recorder, Path], Coroutine[Any, Any, list[Peer]]]


def run_with_driver(
    tmp_path: Path,
    scenario: Scenario,
    *,
    layout: str = "288",
    antennas: tuple[int, ...] = (1, 2),
    round_timeout_s: float = 0.3,
) -> tuple[ChafonReader, Recorder, ManualClock]:
    """Run the driver under ``scenario``, which returns the peers to close after the
    driver has been cancelled."""
    link = tmp_path / "ttyChafon"
    clock = ManualClock()

    async def main_() -> tuple[ChafonReader, Recorder]:
        rec = Recorder()
        driver = ChafonReader(
            config(link, layout=layout, antennas=list(antennas), round_timeout_s=round_timeout_s),
            clock,
            rec.on_read,
            rec.on_state,
            idle_flush_s=0.1,
        )
        task = asyncio.create_task(driver.run())
        peers: list[Peer] = []
        try:
            peers = await scenario(driver, rec, link)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for peer in peers:
                peer.close()
        assert task.cancelled()
        return driver, rec

    driver, rec = asyncio.run(main_())
    return driver, rec, clock


def test_reads_are_delivered_with_fields_across_two_antennas(tmp_path: Path) -> None:
    def rounds(n: int, antenna: int | None) -> bytes:
        if n == 1:  # antenna 1: two tags split over two frames (0x03 then 0x01)
            assert antenna == 1
            tags = [sim.SimTag(EPC_A, rssi=0x40), sim.SimTag(EPC_B, rssi=0x51)]
            frames = sim.inventory_frames(ADDR, tags, antenna=1, max_len=25)
            assert len(frames) == 2
            return b"".join(frames)
        if n == 2:  # antenna 2: one tag, then a frame whose Ant mask names two antennas
            assert antenna == 2
            # Ant 0x05 = antennas 1 and 3: no single antenna, so the polled one is used
            data = bytes((0x05, 1)) + sim.SimTag(EPC_B).block("288")
            two = sim.encode_reply(ADDR, sim.CMD_INVENTORY, sim.STATUS_MORE_DATA, data)
            one = sim.inventory_frames(
                ADDR, [sim.SimTag(EPC_C)], antenna=2, final_status=sim.STATUS_MORE_DATA
            )
            end = sim.inventory_frames(ADDR, [], antenna=2)  # Ant | Num 0, finished
            return two + b"".join(one + end)
        return empty_288(antenna)

    seen: list[sim.InventoryRequest] = []
    codes: list[int] = []

    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        peer = Peer(link, reader(rounds))
        await rec.until(lambda: len(rec.reads) >= 4)
        await peer.until(lambda: len(peer.inventories()) >= 4)
        seen.extend(peer.inventories())
        codes.extend(peer.codes())
        return [peer]

    driver, rec, clock = run_with_driver(tmp_path, scenario)
    assert codes[:3] == [sim.CMD_GET_READER_INFO, sim.CMD_INVENTORY, sim.CMD_INVENTORY]
    assert [r.antenna for r in seen[:4]] == [1, 2, 1, 2]
    for req in seen:
        assert (req.q, req.session, req.scan_time, req.target) == (6, 1, 1, 0)
        assert not req.fast_id
        assert not req.statistics
        assert req.mask_len_bits == 0
    assert rec.reads[0] == RawRead(
        reader="dock-1",
        antenna=1,
        epc="3039606303C74380001A0559",
        rssi_dbm=None,
        mono=0.0,
        time=clock.now(),
    )
    assert [(r.epc, r.antenna, r.rssi_dbm, r.pc) for r in rec.reads[:4]] == [
        (EPC_A.hex().upper(), 1, None, None),
        (EPC_B.hex().upper(), 1, None, None),
        (EPC_B.hex().upper(), 2, None, None),  # mask 0x05: the polled antenna
        (EPC_C.hex().upper(), 2, None, None),
    ]
    snap = driver.snapshot()
    assert snap.reader_type == "chafon"
    assert snap.firmware == "0.22"
    assert snap.error_counts == {}
    assert snap.reads_total == len(rec.reads)
    assert rec.states[0].state == "online"


def test_a_more_data_frame_does_not_end_the_round(tmp_path: Path) -> None:
    """A 0x03 frame alone leaves the round open: it ends by the round timeout."""
    at_second: list[dict[str, int]] = []

    def rounds(n: int, antenna: int | None) -> bytes:
        if n == 1:  # only the first of two frames: the finishing one never comes
            tags = [sim.SimTag(EPC_A), sim.SimTag(EPC_B)]
            return sim.inventory_frames(ADDR, tags, antenna=1, max_len=25)[0]
        return empty_288(antenna)

    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        peer = Peer(link, reader(rounds))
        await peer.until(lambda: len(peer.inventories()) >= 2)
        at_second.append(driver.snapshot().error_counts)
        return [peer]

    driver, rec, _ = run_with_driver(tmp_path, scenario, antennas=(1,))
    assert at_second == [{"timeouts": 1}]
    assert [r.epc for r in rec.reads] == [EPC_A.hex().upper()]
    assert driver.snapshot().last_error == "inventory round on antenna 1 timed out"


def test_layout_18_no_tag_rounds_are_not_errors_but_other_statuses_are(tmp_path: Path) -> None:
    def rounds(n: int, antenna: int | None) -> bytes:
        assert antenna is None  # the UHFReader18 inventory carries no parameters
        if n == 2:
            return b"".join(sim.inventory_frames(ADDR, [sim.SimTag(EPC_B)], layout="18"))
        if n == 4:
            return sim.encode_reply(ADDR, sim.CMD_INVENTORY, sim.STATUS_ANTENNA_ERROR)
        return sim.inventory_frames(ADDR, [], layout="18")[0]  # 0xFB no tag

    datas: list[bytes] = []

    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        peer = Peer(link, reader(rounds))
        await peer.until(lambda: len(peer.inventories()) >= 6)
        datas.extend(c.data for c in peer.commands if c.cmd == sim.CMD_INVENTORY)
        return [peer]

    driver, rec, clock = run_with_driver(tmp_path, scenario, layout="18", antennas=(1,))
    assert set(datas) == {b""}
    assert rec.reads == [
        RawRead(
            reader="dock-1",
            antenna=1,  # no antenna in the reply: the configured (polled) one
            epc=EPC_B.hex().upper(),
            rssi_dbm=None,
            mono=0.0,
            time=clock.now(),
        )
    ]
    snap = driver.snapshot()
    assert snap.error_counts == {"reader_0xF8": 1}
    assert snap.last_error is not None
    assert "antenna_error" in snap.last_error
    assert [s.state for s in rec.states] == ["online", "offline"]


def test_garbage_and_bad_checksums_are_counted_while_good_frames_arrive(tmp_path: Path) -> None:
    frames = sim.inventory_frames(
        ADDR, [sim.SimTag(EPC_A), sim.SimTag(EPC_B)], antenna=2, max_len=25
    )
    bad = bytearray(sim.inventory_frames(ADDR, [sim.SimTag(EPC_C)], antenna=2)[0])
    bad[-1] ^= 0x5A  # CRC high byte
    # zero bytes: a Len of 0 is never a frame start, so this is one garbage run
    burst = b"\x00\x00\x00" + bytes(bad) + frames[0] + frames[1]

    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        peer = Peer(link, reader(lambda n, ant: burst if n == 1 else empty_288(ant)))
        await rec.until(lambda: len(rec.reads) >= 2)
        await peer.until(lambda: len(peer.inventories()) >= 3)
        return [peer]

    driver, rec, _ = run_with_driver(tmp_path, scenario, antennas=(2,))
    assert [(r.epc, r.antenna) for r in rec.reads] == [
        (EPC_A.hex().upper(), 2),
        (EPC_B.hex().upper(), 2),
    ]
    assert driver.snapshot().error_counts == {"garbage": 1, "checksum": 1}


def test_unanswered_reader_info_counts_timeouts_until_answered(tmp_path: Path) -> None:
    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        peer = Peer(link, reader(lambda n, ant: empty_288(ant), version=(3, 1), ignore_info=2))
        await rec.until(rec.online)
        assert driver.snapshot().error_counts == {"timeouts": 2}
        assert peer.codes()[:3] == [sim.CMD_GET_READER_INFO] * 3
        return [peer]

    driver, rec, _ = run_with_driver(tmp_path, scenario)
    assert rec.states[0].state == "online"  # "connecting" until then (the initial state)
    assert driver.snapshot().firmware == "3.1"


def test_a_silent_round_counts_a_timeout_and_the_next_antenna_is_polled(tmp_path: Path) -> None:
    antennas: list[int | None] = []

    def rounds(n: int, antenna: int | None) -> bytes:
        if n == 1:
            return b""
        return b"".join(sim.inventory_frames(ADDR, [sim.SimTag(EPC_C)], antenna=antenna or 1))

    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        peer = Peer(link, reader(rounds))
        await rec.until(lambda: len(rec.reads) >= 1)
        antennas.extend(r.antenna for r in peer.inventories())
        return [peer]

    driver, rec, _ = run_with_driver(tmp_path, scenario, round_timeout_s=0.2)
    assert antennas[:2] == [1, 2]
    assert rec.reads[0].antenna == 2
    snap = driver.snapshot()
    assert snap.error_counts == {"timeouts": 1}
    assert snap.last_error == "inventory round on antenna 1 timed out"


def test_unplugged_goes_offline_and_reconnects(tmp_path: Path) -> None:
    def tag(epc: bytes) -> Rounds:
        return lambda n, ant: b"".join(
            sim.inventory_frames(ADDR, [sim.SimTag(epc)], antenna=ant or 1)
        )

    async def scenario(driver: ChafonReader, rec: Recorder, link: Path) -> list[Peer]:
        first = Peer(link, reader(tag(EPC_A)))
        await rec.until(lambda: len(rec.reads) >= 1)
        first.close()
        await rec.until(lambda: rec.states[-1].state == "offline")
        offline = rec.states[-1]
        assert offline.error_counts["disconnects"] == 1
        assert offline.last_error is not None
        second = Peer(link, reader(tag(EPC_B), version=(2, 5)))
        await rec.until(lambda: any(r.epc == EPC_B.hex().upper() for r in rec.reads))
        assert second.codes()[:2] == [sim.CMD_GET_READER_INFO, sim.CMD_INVENTORY]
        return [second]

    driver, rec, _ = run_with_driver(tmp_path, scenario)
    assert [s.state for s in rec.states] == ["online", "offline", "connecting", "online", "offline"]
    snap = driver.snapshot()
    assert snap.error_counts["disconnects"] == 1  # one outage, however many reopen attempts
    assert snap.firmware == "2.5"
    assert {r.epc for r in rec.reads} == {EPC_A.hex().upper(), EPC_B.hex().upper()}


def test_a_round_timeout_shorter_than_the_scan_time_is_refused() -> None:
    """The reader may use its whole scan time before answering: such a config fails at
    start, naming the problem, instead of timing out every round."""
    with pytest.raises(ValidationError, match="round_timeout_s must exceed scan_time"):
        ChafonReaderConfig.model_validate(
            {
                "type": "chafon",
                "id": "r",
                "port": "/dev/null",
                "antennas": [{"port": 1, "zone": "z"}],
                "scan_time": 30,
                "round_timeout_s": 2.0,
            }
        )
