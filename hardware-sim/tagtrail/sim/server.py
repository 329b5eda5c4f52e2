"""The simulated R2000 reader on a pseudo-terminal.

:class:`PtySimulator` opens a pty pair, puts the slave side in raw mode and serves the
master side with ``loop.add_reader``/``add_writer``: host frames are parsed, queued
(bounded) and answered one at a time like a real module. A client (the driver under test,
or a test) opens the slave device path like a serial port.

Time: the injected clock measures *scenario seconds* (a :class:`~tagtrail.clock.ScaledClock`
for real runs, a :class:`~tagtrail.clock.ManualClock` in tests). The scenario clock starts
at the first inventory command, or at :meth:`PtySimulator.start` with
``start_immediately``. ``time_scale`` converts scenario durations into real waits: an
inventory round's reply is sent ``round_period_s * repeat / time_scale`` real seconds after
the command (unless ``pace`` is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from dataclasses import dataclass, field
from pathlib import Path

from tagtrail.clock import Clock, ScaledClock
from tagtrail.errors import TagtrailError
from tagtrail.sim.engine import Engine
from tagtrail.sim.r2000 import (
    ANTENNA_ID_OUT_OF_RANGE,
    ANTENNA_MISSING,
    BROADCAST,
    CMD_GET_FIRMWARE,
    CMD_GET_WORK_ANTENNA,
    CMD_REAL_TIME_INVENTORY,
    CMD_RESET,
    CMD_SESSION_INVENTORY,
    CMD_SET_WORK_ANTENNA,
    NO_TAG,
    PARAMETER_INVALID,
    SUCCESS,
    Command,
    CommandParser,
    encode_frame,
    end_of_round_frame,
    result_frame,
    tag_frame,
)
from tagtrail.sim.scenario import Scenario

log = logging.getLogger(__name__)

MAX_PENDING_OUTPUT = 1 << 20
"""Bytes buffered for a client that does not read; beyond this, replies are dropped."""
COMMAND_QUEUE_SIZE = 256


class SimulatorError(TagtrailError):
    """The simulator could not set up its pseudo-terminal or link."""


@dataclass(slots=True)
class SimCounters:
    """What the simulator has done so far. ``bad_command_reasons`` counts by reason:
    ``bad_checksum``, ``bad_length``, ``unknown_command``, ``bad_parameter``,
    ``other_address``, ``queue_full``; ``junk_bytes`` counts bytes outside any frame."""

    commands: int = 0
    rounds: int = 0
    frames_sent: int = 0
    tag_frames: int = 0
    corrupted_bytes: int = 0
    bytes_sent: int = 0
    dropped_bytes: int = 0
    bad_command_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def bad_commands(self) -> int:
        return sum(n for reason, n in self.bad_command_reasons.items() if reason != "junk_bytes")

    def count_bad(self, reason: str) -> None:
        self.bad_command_reasons[reason] = self.bad_command_reasons.get(reason, 0) + 1


class PtySimulator:
    """An R2000 reader module playing ``scenario``, served on a pseudo-terminal."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        seed: int | None = None,
        time_scale: float | None = None,
        *,
        link: Path | str | None = None,
        start_immediately: bool = False,
        pace: bool = True,
        loop_s: float | None = None,
    ) -> None:
        if time_scale is None:
            time_scale = clock.scale if isinstance(clock, ScaledClock) else 1.0
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.scenario = scenario
        self.clock = clock
        self.time_scale = time_scale
        self.engine = Engine(scenario, seed)
        self.link = Path(link) if link is not None else None
        self.start_immediately = start_immediately
        self.pace = pace
        if loop_s is not None and loop_s <= 0:
            raise ValueError("loop_s must be positive")
        self.loop_s = loop_s
        """Replay the scenario every ``loop_s`` scenario seconds (None: play it once)."""
        self.counters = SimCounters()
        self.address = scenario.reader.address
        self.work_antenna = 0
        """0-based work antenna, as in the protocol."""
        self._parser = CommandParser()
        self._parser.errors = self.counters.bad_command_reasons
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._pending = bytearray()
        self._writing = False
        self._queue: asyncio.Queue[Command] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0: float | None = None
        self._started = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = False

    # -- public API -------------------------------------------------------------------

    @property
    def slave_path(self) -> str:
        if self._slave_path is None:
            raise SimulatorError("the simulator is not started")
        return self._slave_path

    @property
    def output_pending(self) -> int:
        """Bytes waiting for the client to read the pty."""
        return len(self._pending)

    def scenario_time(self) -> float | None:
        """Scenario seconds since the scenario clock started, or None before that."""
        if self._t0 is None:
            return None
        return self.clock.monotonic() - self._t0

    def start_scenario(self) -> float:
        """Start the scenario clock now (no-op if it runs already); return its origin."""
        if self._t0 is None:
            self._t0 = self.clock.monotonic()
            self._started.set()
            log.info("scenario %r started", self.scenario.name)
        return self._t0

    async def start(self) -> str:
        """Open the pty, begin serving, and return the slave device path."""
        if self._master is not None:
            return self.slave_path
        self._loop = asyncio.get_running_loop()
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise SimulatorError(f"cannot open a pseudo-terminal: {exc}") from exc
        self._master, self._slave = master, slave
        try:
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._slave_path = os.ttyname(slave)
            if self.link is not None:
                _make_link(self.link, self._slave_path)
        except (OSError, SimulatorError) as exc:
            self._close_fds()
            if isinstance(exc, SimulatorError):
                raise
            raise SimulatorError(f"cannot set up the pseudo-terminal: {exc}") from exc
        self._queue = asyncio.Queue(maxsize=COMMAND_QUEUE_SIZE)
        self._loop.add_reader(master, self._on_readable)
        self._worker = asyncio.create_task(
            self._work(self._queue), name=f"sim-{self.scenario.name}"
        )
        if self.start_immediately:
            self.start_scenario()
        log.info(
            "simulating R2000 reader %#04x for scenario %r on %s%s",
            self.address,
            self.scenario.name,
            self._slave_path,
            f" (link {self.link})" if self.link else "",
        )
        return self._slave_path

    async def wait_idle(self) -> None:
        """Wait until every command received so far is answered and written out."""
        await self._idle.wait()

    async def wait_end(self, grace_s: float = 0.0) -> None:
        """Wait until the scenario clock passes ``end_s + grace_s`` (it must start first)."""
        await self._started.wait()
        t0 = self.start_scenario()
        while True:
            remaining = t0 + self.scenario.end_s + grace_s - self.clock.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining / self.time_scale)

    async def close(self) -> None:
        """Stop serving, close the pty and remove the link. Safe to call twice."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._master is not None:
            log.info(
                "simulator %s closing: %d commands, %d rounds, %d frames (%d tag frames), "
                "%d corrupted bytes, bad commands %s",
                self._slave_path,
                self.counters.commands,
                self.counters.rounds,
                self.counters.frames_sent,
                self.counters.tag_frames,
                self.counters.corrupted_bytes,
                self.counters.bad_command_reasons or "none",
            )
        self._close_fds()
        if self.link is not None and self._slave_path is not None:
            with contextlib.suppress(OSError):
                if self.link.is_symlink() and os.readlink(self.link) == self._slave_path:
                    self.link.unlink()

    async def __aenter__(self) -> PtySimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- I/O ------------------------------------------------------------------------

    def _close_fds(self) -> None:
        loop = self._loop
        if self._master is not None:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self._master)
                if self._writing:
                    loop.remove_writer(self._master)
            self._writing = False
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None
        self._pending.clear()

    def _on_readable(self) -> None:
        master, queue, loop = self._master, self._queue, self._loop
        if master is None or queue is None or loop is None:
            return
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            return
        except OSError:
            log.exception("reading the pty master failed, no more commands")
            loop.remove_reader(master)
            return
        for cmd in self._parser.feed(data):
            try:
                queue.put_nowait(cmd)
            except asyncio.QueueFull:
                self.counters.count_bad("queue_full")
            else:
                self._idle.clear()

    def _write(self, data: bytes | bytearray) -> None:
        if self._master is None:
            return
        if len(self._pending) + len(data) > MAX_PENDING_OUTPUT:
            if not self.counters.dropped_bytes:
                log.warning("the client does not read the pty; dropping replies")
            self.counters.dropped_bytes += len(data)
            return
        self._pending += data
        self._flush()

    def _flush(self) -> None:
        fd, loop = self._master, self._loop
        if fd is None or loop is None:
            return
        while self._pending:
            try:
                n = os.write(fd, self._pending)
            except BlockingIOError:
                break
            except OSError:
                log.exception("writing the pty master failed, dropping output")
                self.counters.dropped_bytes += len(self._pending)
                self._pending.clear()
                break
            self.counters.bytes_sent += n
            del self._pending[:n]
        if self._pending and not self._writing:
            loop.add_writer(fd, self._flush)
            self._writing = True
        elif not self._pending and self._writing:
            loop.remove_writer(fd)
            self._writing = False
        self._update_idle()

    def _update_idle(self) -> None:
        if self._pending or (self._queue is not None and not self._queue.empty()):
            self._idle.clear()
        elif not self._busy:
            self._idle.set()

    # -- command handling -------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[Command]) -> None:
        while True:
            cmd = await queue.get()
            self._busy = True
            try:
                await self._handle(cmd)
            except Exception:
                log.exception("handling command %#04x failed", cmd.cmd)
            finally:
                self._busy = False
                self._update_idle()

    def _reply(self, frame: bytes) -> None:
        self.counters.frames_sent += 1
        self._write(frame)

    async def _handle(self, cmd: Command) -> None:
        if cmd.address not in (self.address, BROADCAST):
            self.counters.count_bad("other_address")
            return
        op = cmd.cmd
        if op not in _KNOWN:
            self.counters.count_bad("unknown_command")
            log.debug("ignoring unknown command %#04x", op)
            return
        self.counters.commands += 1
        addr = self.address
        if op == CMD_RESET:
            self.work_antenna = 0
            log.debug("reset")
        elif op == CMD_GET_FIRMWARE:
            self._reply(encode_frame(addr, op, self.scenario.reader.firmware_bytes))
        elif op == CMD_SET_WORK_ANTENNA:
            if len(cmd.data) != 1:
                self._bad_parameter(op)
                return
            index = cmd.data[0]
            if index > 3:
                self._reply(result_frame(addr, op, ANTENNA_ID_OUT_OF_RANGE))
            elif not self.engine.connected(index + 1):
                self._reply(result_frame(addr, op, ANTENNA_MISSING))
            else:
                self.work_antenna = index
                self._reply(result_frame(addr, op, SUCCESS))
        elif op == CMD_GET_WORK_ANTENNA:
            self._reply(encode_frame(addr, op, bytes((self.work_antenna,))))
        else:
            await self._inventory(cmd)

    def _bad_parameter(self, op: int) -> None:
        self.counters.count_bad("bad_parameter")
        self._reply(result_frame(self.address, op, PARAMETER_INVALID))

    async def _inventory(self, cmd: Command) -> None:
        op = cmd.cmd
        if op == CMD_REAL_TIME_INVENTORY:
            if len(cmd.data) != 1 or cmd.data[0] == 0:
                self._bad_parameter(op)
                return
            repeat = cmd.data[0]
        else:
            if len(cmd.data) != 3 or cmd.data[0] > 3 or cmd.data[1] > 1 or cmd.data[2] == 0:
                self._bad_parameter(op)
                return
            repeat = cmd.data[2]
        t = self.clock.monotonic() - self.start_scenario()
        if self.loop_s is not None:
            t %= self.loop_s
        port = self.work_antenna + 1
        if not self.engine.connected(port):
            self._reply(result_frame(self.address, op, ANTENNA_MISSING))
            return
        result = self.engine.inventory(port, t, repeat)
        out = bytearray()
        engine = self.engine
        for read in result.reads:
            out += tag_frame(
                self.address,
                op,
                freq_index=result.freq_index,
                antenna_index=self.work_antenna,
                pc=engine.pcs[read.tag],
                epc=engine.epc_bytes[read.tag],
                rssi_dbm=read.rssi_dbm,
            )
        if result.reads:
            out += end_of_round_frame(
                self.address,
                op,
                antenna_index=self.work_antenna,
                read_rate=result.read_rate,
                total_reads=len(result.reads),
            )
        else:
            out += result_frame(self.address, op, NO_TAG)
        corrupted = engine.corrupt(out)
        if self.pace:
            await asyncio.sleep(result.duration_s / self.time_scale)
        c = self.counters
        c.rounds += 1
        c.tag_frames += len(result.reads)
        c.frames_sent += len(result.reads) + 1
        c.corrupted_bytes += corrupted
        self._write(out)


_KNOWN = frozenset(
    {
        CMD_RESET,
        CMD_GET_FIRMWARE,
        CMD_SET_WORK_ANTENNA,
        CMD_GET_WORK_ANTENNA,
        CMD_REAL_TIME_INVENTORY,
        CMD_SESSION_INVENTORY,
    }
)


def _make_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target``, replacing an existing symlink atomically."""
    if link.exists() and not link.is_symlink():
        raise SimulatorError(f"{link} exists and is not a symlink; not replacing it")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(target)
        tmp.replace(link)
    except OSError as exc:
        raise SimulatorError(f"cannot create link {link} -> {target}: {exc}") from exc
