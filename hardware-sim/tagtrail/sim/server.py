"""The simulated reader on a pseudo-terminal.

:class:`PtySimulator` opens a pty pair, puts the slave side in raw mode and serves the
master side with ``loop.add_reader``/``add_writer``: host frames are parsed, queued
(bounded) and answered one at a time like a real module. A client (the driver under test,
or a test) opens the slave device path like a serial port.

What the reader *is* comes from a personality (:mod:`tagtrail.sim.personalities`): the
scenario's ``reader.protocol`` (or the ``protocol`` argument) picks the R2000 (the
default), Mercury, Chafon, M100 or EM4100 one. The personality parses commands and
answers them; the plumbing here (pty, bounded queue, output buffer, pacing, corruption,
counters, scenario clock and loop) is shared, and so is the read :class:`Engine`, so the
ground truth does not depend on the protocol.

Time: the injected clock measures *scenario seconds* (a :class:`~tagtrail.clock.ScaledClock`
for real runs, a :class:`~tagtrail.clock.ManualClock` in tests). The scenario clock starts
at the first inventory command (for an EM4100 reader, which takes no commands, at
:meth:`PtySimulator.start`), or at :meth:`PtySimulator.start` with ``start_immediately``.
``time_scale`` converts scenario durations into real waits: an R2000 inventory round's
reply is sent ``round_period_s * repeat / time_scale`` real seconds after the command
(unless ``pace`` is off). Streaming personalities (Mercury continuous reading, M100
multiple poll, EM4100) send each round when the scenario clock reaches its end, whatever
``pace`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtrail.clock import Clock, ScaledClock
from tagtrail.errors import TagtrailError
from tagtrail.sim.engine import Engine
from tagtrail.sim.personalities import make_personality
from tagtrail.sim.scenario import Scenario

log = logging.getLogger(__name__)

MAX_PENDING_OUTPUT = 1 << 20
"""Bytes buffered for a client that does not read; beyond this, replies are dropped."""
COMMAND_QUEUE_SIZE = 256
MAX_WAIT_S = 0.05
"""Longest real wait between looks at the clock while waiting for a scenario time."""


class SimulatorError(TagtrailError):
    """The simulator could not set up its pseudo-terminal or link."""


@dataclass(slots=True)
class SimCounters:
    """What the simulator has done so far. ``bad_command_reasons`` counts by reason:
    ``bad_checksum``, ``bad_length``, ``unknown_command``, ``bad_parameter``,
    ``other_address``, ``queue_full`` and the protocol parsers' own reasons (``bad_crc``,
    ``bad_tail``, ``not_a_command`` ...); ``junk_bytes`` counts bytes outside any frame.
    ``rounds`` counts inventory rounds (for an EM4100 reader: repeat ticks)."""

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
    """A reader playing ``scenario``, served on a pseudo-terminal.

    ``protocol`` overrides the scenario's ``reader.protocol`` (the scenario is validated
    again for it: raises :class:`~tagtrail.errors.ConfigError`).
    """

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
        protocol: str | None = None,
    ) -> None:
        if protocol is not None:
            scenario = scenario.with_protocol(protocol)
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
        self.personality = make_personality(self)
        self._parser = self.personality.parser
        self._parser.errors = self.counters.bad_command_reasons
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._pending = bytearray()
        self._writing = False
        self._queue: asyncio.Queue[Any] | None = None
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
    def protocol(self) -> str:
        """The device played: r2000, mercury, chafon, m100 or em4100."""
        return self.scenario.reader.protocol

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
        if self.start_immediately or self.personality.autonomous:
            self.start_scenario()
        self.personality.started()
        log.info(
            "simulating %s for scenario %r on %s%s",
            self.personality.describe(),
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
        await self.personality.close()
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

    async def _work(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            cmd = await queue.get()
            self._busy = True
            try:
                await self.personality.handle(cmd)
            except Exception:
                log.exception("handling command %r failed", cmd)
            finally:
                self._busy = False
                self._update_idle()

    # -- for personalities ------------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        """Send bytes as they are (buffered while the client does not read)."""
        self._write(data)

    def reply(self, frame: bytes) -> None:
        """Send one answer frame (uncorrupted, like the R2000's command replies)."""
        self.counters.frames_sent += 1
        self._write(frame)

    def send_round(self, out: bytearray, *, frames: int, tag_frames: int) -> None:
        """Send one round's frames, corrupted at the scenario's byte rate, and count it."""
        corrupted = self.engine.corrupt(out)
        c = self.counters
        c.rounds += 1
        c.tag_frames += tag_frames
        c.frames_sent += frames
        c.corrupted_bytes += corrupted
        if out:
            self._write(out)

    def query_time(self, t: float) -> float:
        """The scenario time the engine plays at scenario clock ``t`` (with ``loop_s``)."""
        return t % self.loop_s if self.loop_s is not None else t

    def now(self) -> float:
        """Scenario seconds since the scenario clock started (starting it if need be)."""
        return self.clock.monotonic() - self.start_scenario()

    async def pace_round(self, duration_s: float) -> None:
        """Wait out a request-response round's duration (when ``pace`` is on)."""
        if self.pace:
            await asyncio.sleep(duration_s / self.time_scale)

    async def sleep_until(self, t: float) -> None:
        """Wait until the scenario clock reads ``t`` (seconds since it started)."""
        t0 = self.start_scenario()
        while True:
            remaining = t0 + t - self.clock.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining / self.time_scale, MAX_WAIT_S))


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
