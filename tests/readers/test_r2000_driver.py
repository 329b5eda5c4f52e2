"""The R2000 driver against a reader peer on a real pseudo-terminal.

The peer holds the pty master and answers the driver's commands with frames written out
here by hand (or built by this file's own checksum helper), not with the module's
encoders. The driver opens a symlink in tmp_path, which the tests re-point to a new pty
to simulate replugging the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tagtrail.clock import ManualClock
from tagtrail.readers.config import R2000ReaderConfig
from tagtrail.readers.model import RawRead, ReaderSnapshot
from tagtrail.readers.r2000 import R2000Reader


def build(addr: int, cmd: int, data: bytes) -> bytes:
    body = bytes([0xA0, len(data) + 3, addr, cmd]) + data
    return body + bytes([(256 - sum(body) % 256) % 256])


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


FIRMWARE_1_9 = hx("A0 05 01 72 01 09 DE")
ANTENNA_OK = hx("A0 04 01 74 10 D7")
ANTENNA_MISSING = hx("A0 04 01 74 22 C5")  # 0xA0+0x04+0x01+0x74+0x22 = 0x13B -> 0xC5
# antenna 1 (FreqAnt 0x04: freq 1, antenna bits 0), PC 3000, RSSI 0x45 = -60 dBm
TAG_A1 = hx("A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF")
EPC_A1 = "E200301666130121155074EF"


def tag(antenna: int, epc: str, rssi_raw: int, freq: int = 3) -> bytes:
    words = len(epc) // 4
    pc = words << 11
    data = bytes([freq << 2 | (antenna - 1), pc >> 8, pc & 0xFF]) + hx(epc) + bytes([rssi_raw])
    return build(1, 0x89, data)


def round_end(antenna_id: int, rate: int, total: int) -> bytes:
    data = bytes([antenna_id]) + rate.to_bytes(2, "big") + total.to_bytes(4, "big")
    return build(1, 0x89, data)


Responder = Callable[["Peer", bytes], bytes]


class Peer:
    """The reader end of a pty: parses command frames and writes canned replies."""

    def __init__(self, link: Path, respond: Responder) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.respond = respond
        self.commands: list[bytes] = []
        self.antenna_id = 0
        self.inventories = 0
        self._buf = b""
        tmp = link.with_name(link.name + ".new")
        os.symlink(os.ttyname(self.slave), tmp)
        tmp.replace(link)
        asyncio.get_running_loop().add_reader(self.master, self._readable)
        self.closed = False

    def _readable(self) -> None:
        try:
            self._buf += os.read(self.master, 4096)
        except BlockingIOError:
            return
        while len(self._buf) >= 2:
            if self._buf[0] != 0xA0:
                self._buf = self._buf[1:]
                continue
            size = self._buf[1] + 2
            if len(self._buf) < size:
                break
            frame, self._buf = self._buf[:size], self._buf[size:]
            self.commands.append(frame)
            if frame[3] == 0x74:
                self.antenna_id = frame[4]
            if frame[3] == 0x89:
                self.inventories += 1
            reply = self.respond(self, frame)
            if reply:
                os.write(self.master, reply)

    def unread(self) -> int:
        """Bytes written by the peer that the driver has not read yet."""
        buf = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        count: int = struct.unpack("i", buf)[0]
        return count

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.slave)
        os.close(self.master)


def standard(
    inventory: Callable[[Peer], bytes], missing: frozenset[int] = frozenset()
) -> Responder:
    """Firmware 1.9, set-antenna success (or 0x22 for ids in ``missing``), inventory replies."""

    def respond(peer: Peer, frame: bytes) -> bytes:
        cmd = frame[3]
        if cmd == 0x72:
            return FIRMWARE_1_9
        if cmd == 0x74:
            return ANTENNA_MISSING if frame[4] in missing else ANTENNA_OK
        if cmd == 0x89:
            return inventory(peer)
        return b""

    return respond


class Recorder:
    def __init__(self) -> None:
        self.reads: list[RawRead] = []
        self.states: list[ReaderSnapshot] = []
        self.changed = asyncio.Event()

    def on_read(self, read: RawRead) -> None:
        self.reads.append(read)
        self.changed.set()

    def on_state(self, snap: ReaderSnapshot) -> None:
        self.states.append(snap)
        self.changed.set()

    async def until(self, condition: Callable[[], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def config(link: Path, ports: list[int], round_timeout_s: float) -> R2000ReaderConfig:
    return R2000ReaderConfig.model_validate(
        {
            "type": "r2000",
            "id": "dock-1",
            "port": str(link),
            "antennas": [{"port": p, "zone": f"zone-{p}"} for p in ports],
            "round_timeout_s": round_timeout_s,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
        }
    )


def run_with_driver(
    tmp_path: Path,
    ports: list[int],
    scenario: Callable[[R2000Reader, Recorder, Path, ManualClock], Coroutine[Any, Any, None]],
    *,
    idle_flush_s: float = 0.2,
    round_timeout_s: float = 2.0,
) -> tuple[R2000Reader, Recorder, ManualClock]:
    link = tmp_path / "ttyR2000"
    clock = ManualClock()

    async def main() -> tuple[R2000Reader, Recorder]:
        rec = Recorder()
        reader = R2000Reader(
            config(link, ports, round_timeout_s),
            clock,
            rec.on_read,
            rec.on_state,
            idle_flush_s=idle_flush_s,
        )
        task = asyncio.create_task(reader.run())
        try:
            await scenario(reader, rec, link, clock)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert task.cancelled()
        return reader, rec

    reader, rec = asyncio.run(main())
    return reader, rec, clock


def test_tag_reads_delivered_with_fields(tmp_path: Path) -> None:
    peers: list[Peer] = []
    epc3 = "300833B2DDD9014000000001"

    def inventory(peer: Peer) -> bytes:
        if peer.antenna_id == 0:
            # the tag seen on port 1, and one the reader reports on antenna 2 (not
            # configured): the driver passes the reader's antenna through unchanged
            return TAG_A1 + tag(2, "AAAA0000BBBB1111CCCC2222", 0x40) + round_end(0, 120, 2)
        return tag(3, epc3, 0x50) + round_end(2, 80, 1)

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer = Peer(link, standard(inventory))
        peers.append(peer)
        try:
            await rec.until(lambda: peer.inventories >= 4 and len(rec.reads) >= 6)
        finally:
            peer.close()

    reader, rec, clock = run_with_driver(tmp_path, [1, 3], scenario)
    [peer] = peers
    # the driver's own commands, checked byte for byte
    assert peer.commands[0] == hx("A0 03 01 72 EA")
    assert peer.commands[1] == hx("A0 04 01 74 00 E7")
    assert peer.commands[2] == hx("A0 04 01 89 01 D1")
    assert peer.commands[3] == hx("A0 04 01 74 02 E5")  # antenna 3 is id 2: check 0xE5
    assert peer.commands[4] == hx("A0 04 01 89 01 D1")
    first = rec.reads[0]
    assert first == RawRead(
        reader="dock-1",
        antenna=1,
        epc=EPC_A1,
        rssi_dbm=-60.0,
        mono=0.0,
        time=clock.now(),
        pc=0x3000,
    )
    assert rec.reads[1].antenna == 2
    assert rec.reads[1].epc == "AAAA0000BBBB1111CCCC2222"
    assert rec.reads[1].rssi_dbm == 0x40 - 129
    third = rec.reads[2]
    assert (third.antenna, third.epc, third.rssi_dbm, third.pc) == (3, epc3, -49.0, 0x3000)
    assert rec.states[0].state == "online"  # from the initial "connecting"
    assert rec.states[0].firmware == "1.9"
    snap = reader.snapshot()
    assert snap.state == "offline"  # after cancellation
    assert snap.reads_total == len(rec.reads)
    assert snap.round_read_rate_per_s in (120, 80)
    assert snap.round_total_reads in (2, 1)
    assert "timeouts" not in snap.error_counts
    # all reads happened at clock time 0, inside the 5 s rate window
    assert snap.read_rate_per_s == snap.reads_total / 5.0
    clock.advance(5.0)
    assert reader.snapshot().read_rate_per_s == 0.0


def test_garbage_and_truncated_frames_are_counted_and_skipped(tmp_path: Path) -> None:
    good = tag(1, "111122223333444455556666", 0x48)
    cut = TAG_A1[:8]  # a tag frame cut short, then the next frame starts

    def inventory(peer: Peer) -> bytes:
        return hx("01 02 03 FF") + cut + good + hx("55 66") + round_end(0, 10, 1)

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer = Peer(link, standard(inventory))
        try:
            await rec.until(lambda: len(rec.reads) >= 3)
        finally:
            peer.close()

    reader, rec, _ = run_with_driver(tmp_path, [1], scenario)
    assert all(r.epc == "111122223333444455556666" for r in rec.reads)
    assert all(r.antenna == 1 and r.rssi_dbm == 0x48 - 129 for r in rec.reads)
    counts = reader.snapshot().error_counts
    # two garbage runs and one truncated frame per completed round
    rounds = len(rec.reads)
    assert counts["truncated"] >= rounds
    assert counts["garbage"] >= 2 * rounds
    assert "checksum" not in counts
    assert "timeouts" not in counts  # every round end still arrived
    assert reader.snapshot().round_total_reads == 1


def test_wrong_checksums_are_counted(tmp_path: Path) -> None:
    good = tag(1, "ABCDEF000000000000000001", 0x44)
    bad = bytearray(tag(1, "0BAD0BAD0BAD0BAD0BAD0BAD", 0x44))
    bad[-1] ^= 0x01

    def inventory(peer: Peer) -> bytes:
        return bytes(bad) + good + round_end(0, 1, 1)

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer = Peer(link, standard(inventory))
        try:
            await rec.until(lambda: len(rec.reads) >= 3)
        finally:
            peer.close()

    reader, rec, _ = run_with_driver(tmp_path, [1], scenario)
    assert {r.epc for r in rec.reads} == {"ABCDEF000000000000000001"}
    counts = reader.snapshot().error_counts
    assert counts["checksum"] >= len(rec.reads)
    assert "truncated" not in counts
    assert "garbage" not in counts
    assert reader.snapshot().last_error is not None


def test_unplugged_mid_frame_goes_offline_and_reconnects(tmp_path: Path) -> None:
    epc2 = "E2801170000002112233AA55"

    def first_inventory(peer: Peer) -> bytes:
        if peer.inventories == 1:
            return TAG_A1 + TAG_A1[:11]  # a good tag, then the reader is unplugged mid-frame
        return b""

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer1 = Peer(link, standard(first_inventory))
        await rec.until(lambda: len(rec.reads) == 1)
        # make sure the driver holds the partial frame before the line drops
        async with asyncio.timeout(5):
            # the kernel's tty queue has no event to await: poll it with a deadline
            while peer1.unread():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        peer1.close()
        await rec.until(lambda: rec.states[-1].state == "offline")
        offline = rec.states[-1]
        assert offline.error_counts["disconnects"] == 1
        assert offline.error_counts["truncated"] == 1
        assert offline.last_error is not None

        def later_inventory(peer: Peer) -> bytes:
            return tag(2, epc2, 0x3F) + round_end(1, 5, 1)

        peer2 = Peer(link, standard(later_inventory))
        try:
            await rec.until(lambda: any(r.epc == epc2 for r in rec.reads))
        finally:
            peer2.close()

    # a long idle flush: the partial frame must be reported by the disconnect itself
    reader, rec, _ = run_with_driver(tmp_path, [2], scenario, idle_flush_s=60.0)
    states = [s.state for s in rec.states]
    # a driver starts "connecting", so its first change is to "online"
    assert states[:2] == ["online", "offline"]
    assert states[2:4] == ["connecting", "online"]
    assert rec.reads[0].epc == EPC_A1
    assert rec.reads[-1].epc == epc2
    assert rec.reads[-1].antenna == 2
    counts = reader.snapshot().error_counts
    assert counts["disconnects"] == 1  # one outage, however many reopen attempts
    assert counts["truncated"] == 1


def test_antenna_missing_error_is_counted(tmp_path: Path) -> None:
    def inventory(peer: Peer) -> bytes:
        return TAG_A1 + round_end(peer.antenna_id, 3, 1)

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer = Peer(link, standard(inventory, missing=frozenset({1})))
        try:
            await rec.until(lambda: len(rec.reads) >= 3)
        finally:
            peer.close()
        # after antenna 2 failed, the driver never ran an inventory on it
        for before, after in zip(peer.commands, peer.commands[1:], strict=False):
            if before == hx("A0 04 01 74 01 E6"):  # set antenna 2 (id 1): check 0xE6
                assert after == hx("A0 04 01 74 00 E7")

    reader, rec, _ = run_with_driver(tmp_path, [1, 2], scenario)
    assert {r.antenna for r in rec.reads} == {1}
    snap = reader.snapshot()
    assert snap.error_counts["reader_0x22"] >= 2
    assert "timeouts" not in snap.error_counts
    assert snap.last_error is not None
    assert "antenna_missing_error" in snap.last_error


def test_stalled_partial_frame_is_flushed_and_round_times_out(tmp_path: Path) -> None:
    def inventory(peer: Peer) -> bytes:
        if peer.inventories == 1:
            return TAG_A1 + TAG_A1[:9]  # then silence: no rest of frame, no round end
        return TAG_A1 + round_end(0, 7, 1)

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer = Peer(link, standard(inventory))
        try:
            await rec.until(lambda: len(rec.reads) >= 2)
        finally:
            peer.close()

    reader, rec, _ = run_with_driver(
        tmp_path, [1], scenario, idle_flush_s=0.05, round_timeout_s=0.5
    )
    assert {r.epc for r in rec.reads} == {EPC_A1}
    counts = reader.snapshot().error_counts
    assert counts["truncated"] == 1  # reported by the idle flush, while still online
    assert counts["timeouts"] == 1  # the first round never ended
    assert "disconnects" not in counts
    assert [s.state for s in rec.states] == ["online", "offline"]  # offline: cancelled


def test_a_round_without_tags_is_an_empty_round_not_an_error(tmp_path: Path) -> None:
    # A0 04 01 89 36: checksum = -(0xA0 + 0x04 + 0x01 + 0x89 + 0x36) & 0xFF = 0x9C
    no_tag = hx("A0 04 01 89 36 9C")

    fourth_round = asyncio.Event()

    def inventory(peer: Peer) -> bytes:
        if peer.inventories >= 4:
            fourth_round.set()  # the driver ended rounds 2 and 3 (empty) before asking
        return TAG_A1 + round_end(0, 120, 1) if peer.inventories == 1 else no_tag

    async def scenario(reader: R2000Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        peer = Peer(link, standard(inventory))
        try:
            async with asyncio.timeout(10):
                await fourth_round.wait()
        finally:
            peer.close()

    reader, rec, _ = run_with_driver(tmp_path, [1], scenario)
    snap = reader.snapshot()
    assert len(rec.reads) == 1
    assert snap.counters["empty_rounds"] >= 2
    assert not any(k.startswith("reader_0x") for k in snap.error_counts)
    assert "timeouts" not in snap.error_counts
    assert snap.round_total_reads == 0
    assert snap.round_read_rate_per_s == 0
