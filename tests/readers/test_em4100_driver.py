"""The EM4100 driver against a card reader on a real pseudo-terminal.

The "reader" holds the pty master and writes frames built by the simulator's own encoder
(:mod:`tagtrail.sim.em4100`, written independently of the decoder). The driver opens a
symlink in tmp_path, which the tests re-point to a new pty to simulate replugging.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tagtrail.cli import main
from tagtrail.clock import ManualClock
from tagtrail.readers.config import EM4100ReaderConfig
from tagtrail.readers.em4100 import EM4100Reader
from tagtrail.readers.model import RawRead
from tagtrail.sim import em4100 as sim
from tests.support.ptypeer import Recorder

CODE_A = sim.code_text(0x67, 3887558)  # 67003B51C6
CODE_B = sim.code_text(0x3C, 13530444)  # 3C00CE754C


class CardReader:
    """The reader end of a pty: writes frames; drains (ignores) whatever the host sends."""

    def __init__(self, link: Path) -> None:
        self.master, self.slave = os.openpty()
        # raw from the start, so bytes written before the driver opens the port are not
        # cooked by the line discipline (0x03 would be an interrupt character)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        tmp = link.with_name(link.name + ".new")
        os.symlink(os.ttyname(self.slave), tmp)
        tmp.replace(link)
        self.from_host = b""
        asyncio.get_running_loop().add_reader(self.master, self._readable)
        self.closed = False

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self.from_host += os.read(self.master, 4096)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def unread(self) -> int:
        """Bytes written here that the driver has not read yet."""
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


def config(link: Path) -> EM4100ReaderConfig:
    return EM4100ReaderConfig.model_validate(
        {
            "type": "em4100",
            "id": "desk-1",
            "port": str(link),
            "zone": "packing",
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
        }
    )


Scenario = Callable[[EM4100Reader, Recorder, Path, ManualClock], Coroutine[Any, Any, None]]


def run_with_driver(
    tmp_path: Path, scenario: Scenario, *, idle_flush_s: float = 0.2
) -> tuple[EM4100Reader, Recorder, ManualClock]:
    link = tmp_path / "ttyEM"
    clock = ManualClock()

    async def main_() -> tuple[EM4100Reader, Recorder]:
        rec = Recorder()
        reader = EM4100Reader(
            config(link), clock, rec.on_read, rec.on_state, idle_flush_s=idle_flush_s
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

    reader, rec = asyncio.run(main_())
    return reader, rec, clock


def test_frames_of_both_forms_are_delivered_with_fields(tmp_path: Path) -> None:
    async def scenario(reader: EM4100Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        card = CardReader(link)
        try:
            await rec.until(lambda: bool(rec.states) and rec.states[-1].state == "online")
            for frame in sim.presence_frames(CODE_A, 0.1):  # three RDM6300 frames
                card.send(frame)
            await rec.until(lambda: len(rec.reads) == 3)
            clock.advance(1.5)
            card.send(sim.tag_frame(CODE_B, crlf=True))  # one ID-12 frame
            await rec.until(lambda: len(rec.reads) >= 4)
        finally:
            card.close()

    reader, rec, clock = run_with_driver(tmp_path, scenario)
    assert [r.epc for r in rec.reads] == [CODE_A] * 3 + [CODE_B]
    assert rec.reads[0] == RawRead(
        reader="desk-1",
        antenna=1,
        epc="67003B51C6",
        rssi_dbm=None,
        mono=0.0,
        time=rec.reads[0].time,
        pc=None,
        scheme="em4100",
    )
    assert rec.reads[-1].mono == 1.5
    assert rec.reads[-1].time == clock.now()  # the clock stood still after the advance
    assert (rec.reads[-1].time - rec.reads[0].time).total_seconds() == 1.5
    assert all(r.antenna == 1 and r.rssi_dbm is None for r in rec.reads)
    snap = reader.snapshot()
    assert snap.reader_type == "em4100"
    assert snap.reads_total == 4
    assert snap.error_counts == {}
    # the reader never hears from the driver: these readers take no commands
    assert rec.states[0].state == "online"
    # 4 reads at clock times 0 and 1.5, both inside the 5 s window
    assert snap.read_rate_per_s == 4 / 5.0


def test_garbage_and_bad_checksums_are_counted_and_skipped(tmp_path: Path) -> None:
    good = sim.tag_frame(CODE_A)
    bad_sum = bytearray(sim.tag_frame(CODE_B))
    bad_sum[12] = ord("0") if bad_sum[12] != ord("0") else ord("1")  # second check digit
    lower = sim.tag_frame(CODE_B).replace(b"C", b"c")  # lower-case digits: sanity
    cut = good[:7]  # cut short by the next STX: truncated

    async def scenario(reader: EM4100Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        card = CardReader(link)
        try:
            await rec.until(lambda: bool(rec.states) and rec.states[-1].state == "online")
            card.send(b"\xff\x00noise" + bytes(bad_sum) + good + lower + cut + good + b"\x11")
            await rec.until(lambda: len(rec.reads) == 2)
            # the garbage tail is held until the line goes quiet, then flushed; counters
            # have no event to await: poll them with a deadline
            async with asyncio.timeout(5):
                while reader.snapshot().error_counts.get("garbage") != 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            card.close()

    reader, rec, _ = run_with_driver(tmp_path, scenario, idle_flush_s=0.05)
    assert [r.epc for r in rec.reads] == [CODE_A, CODE_A]
    counts = reader.snapshot().error_counts
    assert counts["checksum"] == 1
    assert counts["sanity"] == 1
    assert counts["truncated"] == 1
    assert counts["garbage"] == 2
    assert "disconnects" not in counts


def test_unplugged_goes_offline_and_reconnects(tmp_path: Path) -> None:
    async def scenario(reader: EM4100Reader, rec: Recorder, link: Path, clock: ManualClock) -> None:
        first = CardReader(link)
        await rec.until(lambda: bool(rec.states) and rec.states[-1].state == "online")
        first.send(sim.tag_frame(CODE_A) + sim.tag_frame(CODE_A)[:6])  # unplugged mid-frame
        await rec.until(lambda: len(rec.reads) == 1)
        # make sure the driver holds the partial frame before the line drops
        async with asyncio.timeout(5):
            # the kernel's tty queue has no event to await: poll it with a deadline
            while first.unread():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        first.close()
        await rec.until(lambda: rec.states[-1].state == "offline")
        offline = rec.states[-1]
        assert offline.error_counts["disconnects"] == 1
        assert offline.error_counts["truncated"] == 1
        assert offline.last_error is not None
        second = CardReader(link)
        try:
            await rec.until(lambda: rec.states[-1].state == "online")
            second.send(sim.tag_frame(CODE_B, crlf=True))
            await rec.until(lambda: any(r.epc == CODE_B for r in rec.reads))
        finally:
            second.close()

    # a long idle flush: the partial frame must be reported by the disconnect itself
    reader, rec, _ = run_with_driver(tmp_path, scenario, idle_flush_s=60.0)
    assert [s.state for s in rec.states] == ["online", "offline", "connecting", "online", "offline"]
    assert [r.epc for r in rec.reads] == [CODE_A, CODE_B]
    counts = reader.snapshot().error_counts
    assert counts["disconnects"] == 1  # one outage, however many reopen attempts
    assert counts["truncated"] == 1


VALID = """
site: wh1
device: desk
readers:
  - type: em4100
    id: rfid-desk
    port: /dev/ttyUSB1
    zone: packing
"""


def test_check_config_accepts_an_em4100_reader(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(VALID)
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid edge config (1 reader(s), site wh1, device desk)" in result.output


def test_check_config_names_a_bad_baud_rate(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(VALID + "    baudrate: 9601\n")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "readers.0.em4100.baudrate:" in result.output, result.output
    assert "Traceback" not in result.output
