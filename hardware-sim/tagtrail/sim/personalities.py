"""What the simulated reader is: one personality per device protocol.

A personality owns the protocol side of :class:`~tagtrail.sim.server.PtySimulator`: its
command parser, and what it answers to each command. The pty, the bounded command queue,
the output buffer, pacing, corruption, the counters and the scenario clock are the
simulator's; reads always come from its :class:`~tagtrail.sim.engine.Engine`, so every
personality plays the same scenario with the same ground truth.

* ``r2000``: request-response inventory rounds (:mod:`tagtrail.sim.r2000`), as before;
* ``mercury``: version, boot, tag protocol, region, antenna ports and read power are
  acknowledged; continuous reading (``0x2F``, sub-opcode ``0x22``) streams one tag record
  per read, with the metadata the start command asked for, round by round on the
  configured antenna ports in turn, and a keep-alive (status ``0x0400``) after every
  search cycle (``on_time`` ms) that found no tag; stop (``2F 00 00 02``) ends the stream
  and is acknowledged after the last record (:mod:`tagtrail.sim.mercury`);
* ``chafon``: reader information (``0x21``) and inventory (``0x01``) on the antenna the
  command names, in the scenario's layout: tags packed into frames, all but the last with
  status ``0x03`` (more data); an empty round is ``Ant | 00`` (288) or status ``0xFB``
  (18). Each tag is reported once per round (:mod:`tagtrail.sim.chafon`);
* ``m100``: module information, region and power, single poll (``0x22``, one round) and
  multiple poll (``0x27``, ``count`` rounds streamed; stop ``0x28`` ends it early); each
  round sends a notice per read or the ``0x15`` error when it found no tag
  (:mod:`tagtrail.sim.m100`);
* ``em4100``: takes no commands (bytes written to it are counted as ``junk_bytes``); from
  :meth:`PtySimulator.start` on, every :data:`~tagtrail.sim.em4100.REPEAT_INTERVAL_S`
  scenario seconds, sends the frame of each card in the field of port 1 (one expected
  read per card and tick, subject to misses and duplicates), and nothing while no card is
  there (:mod:`tagtrail.sim.em4100`).

Streams (Mercury, M100 multiple poll, EM4100) follow the scenario clock: a round is sent
when the clock reaches its end; a stream that fell far behind skips ahead
(:data:`CATCH_UP_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from tagtrail.errors import ProtocolError
from tagtrail.sim import chafon, em4100, m100, mercury, r2000

if TYPE_CHECKING:
    from tagtrail.sim.server import PtySimulator

log = logging.getLogger(__name__)

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)

MERCURY_BASE_KHZ = 902_750
MERCURY_STEP_KHZ = 500
CHAFON_BAND_US = 2
CHAFON_MAX_FREQ = 49
CHAFON_POWER_DBM = 30
M100_REGION_US = 0x02
M100_POWER_CDBM = 2600
CATCH_UP_S = 10.0
"""A stream more than this many scenario seconds behind the clock skips ahead."""


class CommandParserLike(Protocol[C_co]):
    """What the simulator needs of a protocol's command parser."""

    errors: dict[str, int]

    def feed(self, chunk: bytes) -> Sequence[C_co]: ...


class Personality(ABC, Generic[C]):
    """The protocol side of a simulated reader."""

    protocol: ClassVar[str]
    autonomous: ClassVar[bool] = False
    """Whether the reader starts on its own (no command starts the scenario clock)."""

    def __init__(self, sim: PtySimulator) -> None:
        self.sim = sim
        self._stream: asyncio.Task[None] | None = None

    @property
    @abstractmethod
    def parser(self) -> CommandParserLike[C]:
        """The parser of host commands (one per simulator)."""

    @abstractmethod
    async def handle(self, cmd: C) -> None:
        """Answer one well-formed host command."""

    def describe(self) -> str:
        return f"{self.protocol} reader"

    def started(self) -> None:
        """The pty is served (streams of autonomous readers start here)."""

    async def close(self) -> None:
        await self.stop_stream()

    # -- streams --

    def start_stream(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as the reader's one stream (replacing a running one)."""
        if self._stream is not None and not self._stream.done():
            self._stream.cancel()
        self._stream = asyncio.create_task(coro, name=f"sim-{self.protocol}")
        self._stream.add_done_callback(self._stream_done)

    def _stream_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("the %s stream failed", self.protocol, exc_info=exc)

    async def stop_stream(self) -> bool:
        """Cancel the running stream; return whether one was running."""
        task, self._stream = self._stream, None
        if task is None or task.done():
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True


# -- R2000 ----------------------------------------------------------------------------


_R2000_KNOWN = frozenset(
    {
        r2000.CMD_RESET,
        r2000.CMD_GET_FIRMWARE,
        r2000.CMD_SET_WORK_ANTENNA,
        r2000.CMD_GET_WORK_ANTENNA,
        r2000.CMD_REAL_TIME_INVENTORY,
        r2000.CMD_SESSION_INVENTORY,
    }
)


class R2000(Personality[r2000.Command]):
    """An R2000 module: request-response inventory rounds on the work antenna."""

    protocol = "r2000"

    def __init__(self, sim: PtySimulator) -> None:
        super().__init__(sim)
        self._parser = r2000.CommandParser()
        self.work_antenna = 0
        """0-based work antenna, as in the protocol."""

    @property
    def parser(self) -> r2000.CommandParser:
        return self._parser

    def describe(self) -> str:
        return f"R2000 reader {self.sim.address:#04x}"

    async def handle(self, cmd: r2000.Command) -> None:
        sim = self.sim
        if cmd.address not in (sim.address, r2000.BROADCAST):
            sim.counters.count_bad("other_address")
            return
        op = cmd.cmd
        if op not in _R2000_KNOWN:
            sim.counters.count_bad("unknown_command")
            log.debug("ignoring unknown command %#04x", op)
            return
        sim.counters.commands += 1
        addr = sim.address
        if op == r2000.CMD_RESET:
            self.work_antenna = 0
            log.debug("reset")
        elif op == r2000.CMD_GET_FIRMWARE:
            sim.reply(r2000.encode_frame(addr, op, sim.scenario.reader.firmware_bytes))
        elif op == r2000.CMD_SET_WORK_ANTENNA:
            if len(cmd.data) != 1:
                self._bad_parameter(op)
                return
            index = cmd.data[0]
            if index > 3:
                sim.reply(r2000.result_frame(addr, op, r2000.ANTENNA_ID_OUT_OF_RANGE))
            elif not sim.engine.connected(index + 1):
                sim.reply(r2000.result_frame(addr, op, r2000.ANTENNA_MISSING))
            else:
                self.work_antenna = index
                sim.reply(r2000.result_frame(addr, op, r2000.SUCCESS))
        elif op == r2000.CMD_GET_WORK_ANTENNA:
            sim.reply(r2000.encode_frame(addr, op, bytes((self.work_antenna,))))
        else:
            await self._inventory(cmd)

    def _bad_parameter(self, op: int) -> None:
        self.sim.counters.count_bad("bad_parameter")
        self.sim.reply(r2000.result_frame(self.sim.address, op, r2000.PARAMETER_INVALID))

    async def _inventory(self, cmd: r2000.Command) -> None:
        sim = self.sim
        op = cmd.cmd
        if op == r2000.CMD_REAL_TIME_INVENTORY:
            if len(cmd.data) != 1 or cmd.data[0] == 0:
                self._bad_parameter(op)
                return
            repeat = cmd.data[0]
        else:
            if len(cmd.data) != 3 or cmd.data[0] > 3 or cmd.data[1] > 1 or cmd.data[2] == 0:
                self._bad_parameter(op)
                return
            repeat = cmd.data[2]
        t = sim.query_time(sim.now())
        port = self.work_antenna + 1
        if not sim.engine.connected(port):
            sim.reply(r2000.result_frame(sim.address, op, r2000.ANTENNA_MISSING))
            return
        engine = sim.engine
        result = engine.inventory(port, t, repeat)
        out = bytearray()
        for read in result.reads:
            out += r2000.tag_frame(
                sim.address,
                op,
                freq_index=result.freq_index,
                antenna_index=self.work_antenna,
                pc=engine.pcs[read.tag],
                epc=engine.epc_bytes[read.tag],
                rssi_dbm=read.rssi_dbm,
            )
        if result.reads:
            out += r2000.end_of_round_frame(
                sim.address,
                op,
                antenna_index=self.work_antenna,
                read_rate=result.read_rate,
                total_reads=len(result.reads),
            )
        else:
            out += r2000.result_frame(sim.address, op, r2000.NO_TAG)
        corrupted = engine.corrupt(out)
        await sim.pace_round(result.duration_s)
        c = sim.counters
        c.rounds += 1
        c.tag_frames += len(result.reads)
        c.frames_sent += len(result.reads) + 1
        c.corrupted_bytes += corrupted
        sim.write(out)


# -- Mercury --------------------------------------------------------------------------


def _firmware(sim: PtySimulator) -> tuple[int, int]:
    fw = sim.scenario.reader.firmware_bytes
    return fw[0], fw[1]


class Mercury(Personality[mercury.Command]):
    """A ThingMagic Mercury module (M6e class) with continuous reading."""

    protocol = "mercury"

    def __init__(self, sim: PtySimulator) -> None:
        super().__init__(sim)
        self._parser = mercury.CommandParser()
        self.ports: list[int] = [1]
        """Antenna ports searched in turn (set by 0x91)."""
        self.region = 0x01
        self.read_power_cdbm = 3000
        self.tag_protocol = mercury.GEN2
        self.reading: mercury.StartReading | None = None

    @property
    def parser(self) -> mercury.CommandParser:
        return self._parser

    def describe(self) -> str:
        return "Mercury module"

    async def handle(self, cmd: mercury.Command) -> None:
        sim, op, data = self.sim, cmd.opcode, cmd.data
        ok = mercury.STATUS_OK
        if op == mercury.OP_VERSION:
            major, minor = _firmware(sim)
            sim.counters.commands += 1
            sim.reply(mercury.version_reply(firmware=bytes((major, minor, 0, 0))))
        elif op in (mercury.OP_BOOT_FIRMWARE, mercury.OP_SET_BAUD_RATE):
            sim.counters.commands += 1
            sim.reply(mercury.encode_response(op, ok))
        elif op == mercury.OP_SET_TAG_PROTOCOL:
            if len(data) != 2 or int.from_bytes(data, "big") != mercury.GEN2:
                self._bad_parameter(op)
                return
            sim.counters.commands += 1
            sim.reply(mercury.encode_response(op, ok))
        elif op == mercury.OP_SET_REGION:
            if len(data) != 1:
                self._bad_parameter(op)
                return
            sim.counters.commands += 1
            if data[0] == 0:
                sim.reply(mercury.encode_response(op, mercury.STATUS_INVALID_REGION))
                return
            self.region = data[0]
            sim.reply(mercury.encode_response(op, ok))
        elif op == mercury.OP_SET_ANTENNA_PORT:
            ports = self._antenna_list(data)
            if ports is None:
                self._bad_parameter(op)
                return
            sim.counters.commands += 1
            self.ports = ports
            sim.reply(mercury.encode_response(op, ok))
        elif op == mercury.OP_SET_READ_TX_POWER:
            if len(data) not in (2, 4):
                self._bad_parameter(op)
                return
            sim.counters.commands += 1
            self.read_power_cdbm = int.from_bytes(data[:2], "big")
            sim.reply(mercury.encode_response(op, ok))
        elif op == mercury.OP_MULTI_PROTOCOL_TAG_OP:
            await self._tag_op(cmd)
        else:
            sim.counters.count_bad("unknown_command")
            sim.reply(mercury.encode_response(op, mercury.STATUS_INVALID_OPCODE))

    def _bad_parameter(self, op: int) -> None:
        self.sim.counters.count_bad("bad_parameter")
        self.sim.reply(mercury.encode_response(op, mercury.STATUS_INVALID_PARAMETER))

    @staticmethod
    def _antenna_list(data: bytes) -> list[int] | None:
        """Ports of a logical antenna list (``02 | TX RX ...``), each TX == RX, 1-4."""
        if len(data) < 3 or len(data) % 2 == 0 or data[0] != 0x02:
            return None
        pairs = [(data[i], data[i + 1]) for i in range(1, len(data), 2)]
        if any(tx != rx or not 1 <= tx <= 4 for tx, rx in pairs):
            return None
        return [tx for tx, _ in pairs]

    async def _tag_op(self, cmd: mercury.Command) -> None:
        sim = self.sim
        if mercury.is_stop_reading(cmd):
            sim.counters.commands += 1
            await self.stop_stream()
            self.reading = None
            sim.reply(mercury.reading_stopped())
            return
        try:
            start = mercury.parse_start_reading(cmd.data)
        except ProtocolError as exc:
            log.debug("bad start of continuous reading: %s", exc)
            start = None
        if start is None:
            self._bad_parameter(cmd.opcode)
            return
        sim.counters.commands += 1
        self.reading = start
        sim.reply(mercury.reading_started())
        t0 = sim.now()
        self.start_stream(self._read_continuously(start, t0))

    async def _read_continuously(self, start: mercury.StartReading, t0: float) -> None:
        sim = self.sim
        engine = sim.engine
        period = sim.scenario.reads.round_period_s
        cycle_s = max(start.on_time_ms / 1000.0, period)
        t = t0
        cycle_end = t0 + cycle_s
        cycle_tags = 0
        index = 0
        while True:
            await sim.sleep_until(t + period)
            now = sim.now()
            if now - t > CATCH_UP_S:
                t = now - period
                cycle_end = t + cycle_s
            ports = self.ports
            port = ports[index % len(ports)]
            index += 1
            result = engine.inventory(port, sim.query_time(t), duration_s=period)
            out = bytearray()
            for read in result.reads:
                out += mercury.tag_record(
                    engine.epc_bytes[read.tag],
                    metadata_flags=start.metadata_flags,
                    rssi_dbm=read.rssi_dbm,
                    antenna=port,
                    frequency_khz=MERCURY_BASE_KHZ + MERCURY_STEP_KHZ * result.freq_index,
                    timestamp_ms=round((t - t0) * 1000),
                    pc=engine.pcs[read.tag],
                )
            frames = len(result.reads)
            cycle_tags += frames
            t += period
            if t >= cycle_end - 1e-9:
                if not cycle_tags:
                    out += mercury.keep_alive()
                    frames += 1
                cycle_tags = 0
                cycle_end += cycle_s
            sim.send_round(out, frames=frames, tag_frames=len(result.reads))


# -- Chafon ---------------------------------------------------------------------------


def chafon_rssi(rssi_dbm: float) -> int:
    """The UHFReader288 RSSI byte: the protocol gives no unit; the simulator sends dBm + 128."""
    return min(max(round(rssi_dbm) + 128, 0), 0xFF)


class Chafon(Personality[chafon.Command]):
    """A Chafon UHFReader288 (or UHFReader18) answering inventory commands."""

    protocol = "chafon"

    def __init__(self, sim: PtySimulator) -> None:
        super().__init__(sim)
        self._parser = chafon.CommandParser()
        self.layout = sim.scenario.reader.layout
        self.scan_time = 10

    @property
    def parser(self) -> chafon.CommandParser:
        return self._parser

    def describe(self) -> str:
        return f"Chafon UHFReader{self.layout} {self.sim.address:#04x}"

    async def handle(self, cmd: chafon.Command) -> None:
        sim = self.sim
        if cmd.address not in (sim.address, chafon.BROADCAST):
            sim.counters.count_bad("other_address")
            return
        addr = sim.address
        if cmd.cmd == chafon.CMD_GET_READER_INFO:
            sim.counters.commands += 1
            major, minor = _firmware(sim)
            sim.reply(
                chafon.reader_info_frame(
                    addr,
                    version=(major, minor),
                    reader_type=chafon.TYPE_UHFREADER18
                    if self.layout == "18"
                    else chafon.TYPE_UHFREADER288M,
                    band=CHAFON_BAND_US,
                    max_freq=CHAFON_MAX_FREQ,
                    min_freq=0,
                    power_dbm=CHAFON_POWER_DBM,
                    scan_time=self.scan_time,
                )
            )
        elif cmd.cmd == chafon.CMD_SET_SCAN_TIME:
            if len(cmd.data) != 1 or not 3 <= cmd.data[0] <= 255:
                self._reply_status(cmd.cmd, chafon.STATUS_PARAMETER_ERROR, "bad_parameter")
                return
            sim.counters.commands += 1
            self.scan_time = cmd.data[0]
            sim.reply(chafon.encode_reply(addr, cmd.cmd, chafon.STATUS_SUCCESS))
        elif cmd.cmd == chafon.CMD_INVENTORY:
            await self._inventory(cmd)
        else:
            self._reply_status(cmd.cmd, chafon.STATUS_ILLEGAL_COMMAND, "unknown_command")

    def _reply_status(self, op: int, status: int, reason: str) -> None:
        self.sim.counters.count_bad(reason)
        self.sim.reply(chafon.encode_reply(self.sim.address, op, status))

    async def _inventory(self, cmd: chafon.Command) -> None:
        sim = self.sim
        req = chafon.parse_inventory(cmd.data)
        if req is None or (self.layout == "18" and cmd.data):
            self._reply_status(cmd.cmd, chafon.STATUS_PARAMETER_ERROR, "bad_parameter")
            return
        sim.counters.commands += 1
        port = 1 if self.layout == "18" else (req.antenna or 1)
        scan_s = (req.scan_time or self.scan_time) / 10
        duration = min(sim.scenario.reads.round_period_s, scan_s)
        t = sim.query_time(sim.now())
        if not sim.engine.connected(port):
            await sim.pace_round(duration)
            sim.reply(chafon.encode_reply(sim.address, cmd.cmd, chafon.STATUS_ANTENNA_ERROR))
            return
        engine = sim.engine
        result = engine.inventory(port, t, duration_s=duration)
        best: dict[int, int] = {}
        for read in result.reads:  # a round reports each tag once, at its strongest
            if read.tag not in best or read.rssi_dbm > best[read.tag]:
                best[read.tag] = read.rssi_dbm
        tags = [
            chafon.SimTag(engine.epc_bytes[tag], rssi=chafon_rssi(rssi))
            for tag, rssi in best.items()
        ]
        frames = chafon.inventory_frames(sim.address, tags, layout=self.layout, antenna=port)
        out = bytearray(b"".join(frames))
        await sim.pace_round(duration)
        sim.send_round(out, frames=len(frames), tag_frames=len(tags))


# -- M100 -----------------------------------------------------------------------------


_M100_KNOWN = frozenset(
    {m100.CMD_SET_REGION, m100.CMD_GET_REGION, m100.CMD_SET_POWER, m100.CMD_GET_POWER}
)


class M100(Personality[m100.Command]):
    """An M100 / QM100-class module: single and multiple polls on its one antenna."""

    protocol = "m100"

    def __init__(self, sim: PtySimulator) -> None:
        super().__init__(sim)
        self._parser = m100.CommandParser()
        self.region = M100_REGION_US
        self.power_cdbm = M100_POWER_CDBM

    @property
    def parser(self) -> m100.CommandParser:
        return self._parser

    def describe(self) -> str:
        return "M100 module"

    def module_info(self, kind: int) -> str:
        major, minor = _firmware(self.sim)
        return {0: f"M100 26dBm V{major}.{minor}", 1: f"V{major}.{minor}"}.get(kind, "tagtrail")

    async def handle(self, cmd: m100.Command) -> None:
        sim, op, data = self.sim, cmd.cmd, cmd.data
        if op == m100.CMD_MODULE_INFO:
            if len(data) != 1 or data[0] > 2:
                self._command_error("bad_parameter")
                return
            sim.counters.commands += 1
            sim.reply(m100.module_info_frame(data[0], self.module_info(data[0])))
        elif op == m100.CMD_SINGLE_POLL:
            sim.counters.commands += 1
            await self._single_poll()
        elif op == m100.CMD_MULTIPLE_POLL:
            count = cmd.poll_count
            if count is None or data[0] != 0x22 or count == 0:
                self._command_error("bad_parameter")
                return
            sim.counters.commands += 1
            self.start_stream(self._multiple_poll(count, sim.now()))
        elif op == m100.CMD_STOP:
            sim.counters.commands += 1
            await self.stop_stream()
            sim.reply(m100.status_frame(op))
        elif op == m100.CMD_SET_REGION and len(data) == 1:
            sim.counters.commands += 1
            self.region = data[0]
            sim.reply(m100.status_frame(op))
        elif op == m100.CMD_GET_REGION and not data:
            sim.counters.commands += 1
            sim.reply(m100.region_frame(self.region))
        elif op == m100.CMD_SET_POWER and len(data) == 2:
            sim.counters.commands += 1
            self.power_cdbm = int.from_bytes(data, "big")
            sim.reply(m100.status_frame(op))
        elif op == m100.CMD_GET_POWER and not data:
            sim.counters.commands += 1
            sim.reply(m100.power_frame(self.power_cdbm))
        elif op in _M100_KNOWN:
            self._command_error("bad_parameter")
        else:
            self._command_error("unknown_command")

    def _command_error(self, reason: str) -> None:
        self.sim.counters.count_bad(reason)
        self.sim.reply(m100.error_frame(m100.COMMAND_ERROR))

    def _round(self, t: float) -> tuple[bytearray, int, int]:
        """One poll round at scenario time ``t``: (bytes, frames, tag frames)."""
        sim = self.sim
        engine = sim.engine
        result = engine.inventory(
            1, sim.query_time(t), duration_s=sim.scenario.reads.round_period_s
        )
        out = bytearray()
        for read in result.reads:
            out += m100.tag_notice(
                epc=engine.epc_bytes[read.tag], rssi_dbm=read.rssi_dbm, pc=engine.pcs[read.tag]
            )
        if not result.reads:
            out += m100.error_frame(m100.NO_TAG)
            return out, 1, 0
        return out, len(result.reads), len(result.reads)

    async def _single_poll(self) -> None:
        sim = self.sim
        out, frames, tags = self._round(sim.now())
        await sim.pace_round(sim.scenario.reads.round_period_s)
        sim.send_round(out, frames=frames, tag_frames=tags)

    async def _multiple_poll(self, count: int, t0: float) -> None:
        sim = self.sim
        period = sim.scenario.reads.round_period_s
        t = t0
        for _ in range(count):
            await sim.sleep_until(t + period)
            now = sim.now()
            if now - t > CATCH_UP_S:
                t = now - period
            out, frames, tags = self._round(t)
            sim.send_round(out, frames=frames, tag_frames=tags)
            t += period


# -- EM4100 ---------------------------------------------------------------------------


class IgnoreInput:
    """The "parser" of a reader that takes no commands: every byte is junk."""

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}

    def feed(self, chunk: bytes) -> list[None]:
        if chunk:
            self.errors["junk_bytes"] = self.errors.get("junk_bytes", 0) + len(chunk)
        return []


class EM4100(Personality[None]):
    """An RDM6300-style 125 kHz reader: pushes a card's frame every 50 ms it is in the field."""

    protocol = "em4100"
    autonomous = True
    PORT = 1

    def __init__(self, sim: PtySimulator) -> None:
        super().__init__(sim)
        self._parser = IgnoreInput()

    @property
    def parser(self) -> IgnoreInput:
        return self._parser

    def describe(self) -> str:
        return "EM4100 reader (RDM6300)"

    async def handle(self, cmd: None) -> None:  # pragma: no cover - IgnoreInput yields none
        return

    def started(self) -> None:
        self.start_stream(self._push())

    async def _push(self) -> None:
        sim = self.sim
        engine = sim.engine
        interval = em4100.REPEAT_INTERVAL_S
        tick = 0
        while True:
            t = tick * interval
            await sim.sleep_until(t)
            now = sim.now()
            if now - t > CATCH_UP_S:
                tick = int(now / interval)
                t = tick * interval
            result = engine.inventory(
                self.PORT, sim.query_time(t), duration_s=interval, reads_per_tag=1
            )
            out = bytearray()
            for read in result.reads:
                out += em4100.tag_frame(engine.epcs[read.tag])
            sim.send_round(out, frames=len(result.reads), tag_frames=len(result.reads))
            tick += 1


PERSONALITIES: dict[str, type[Personality[Any]]] = {
    p.protocol: p for p in (R2000, Mercury, Chafon, M100, EM4100)
}


def make_personality(sim: PtySimulator) -> Personality[Any]:
    """The personality of the simulator's scenario (``reader.protocol``)."""
    return PERSONALITIES[sim.scenario.reader.protocol](sim)
