"""Asyncio driver for UHF readers speaking the R2000 serial protocol.

The port is opened with pyserial (non-blocking) and watched with ``loop.add_reader``;
there are no threads and no polling. The conversation:

1. on connect, ask for the firmware version until the reader answers (each
   unanswered query counts a ``timeouts``); the state is ``connecting`` until then,
   ``online`` after;
2. then forever, for each configured antenna: set the work antenna and await its
   result (an error code such as 0x22 antenna missing is counted as ``reader_0x22``
   and the antenna skipped), start a real-time inventory with the configured
   ``repeat`` and deliver every tag frame as a :class:`~tagtrail.readers.model.RawRead`
   until the round-end frame, an error frame or ``round_timeout_s`` (``timeouts``).
   If a frame fails to decode during a request and the line then stays quiet for
   ``idle_flush_s``, the lost frame was most likely the awaited answer: the request
   ends early (also counted as ``timeouts``) instead of stalling the whole round.

Tags are delivered whenever they arrive, with the antenna the reader reported in the
frame (1-based), independent of the configured zones. Decoder failures are counted by
reason. When the line goes quiet for ``idle_flush_s`` with a partial frame or garbage
held, the decoder is flushed, so a frame cut short is reported as ``truncated``
without waiting for more bytes.

If the port cannot be opened, or reading or writing fails (EIO, hang-up, end of
file), the port is closed, the held partial frame flushed, ``disconnects`` counted
once per outage, the state set ``offline`` and the port reopened after a backoff
doubling from ``reconnect_initial_s`` to ``reconnect_max_s``, forever. ``run`` only
ends by cancellation, which closes the port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable

import serial

from tagtrail.clock import Clock
from tagtrail.readers.config import R2000ReaderConfig
from tagtrail.readers.model import (
    RawRead,
    ReadCallback,
    ReaderSnapshot,
    ReaderState,
    StateCallback,
)
from tagtrail.readers.protocols.r2000 import (
    CMD_GET_FIRMWARE,
    CMD_REALTIME_INVENTORY,
    CMD_SET_WORK_ANTENNA,
    Decoded,
    DecodeFailure,
    Record,
    Reply,
    ResultCode,
    RoundEnd,
    StreamDecoder,
    TagRecord,
    cmd_get_firmware,
    cmd_realtime_inventory,
    cmd_set_work_antenna,
)

logger = logging.getLogger(__name__)

READ_SIZE = 65536
RATE_WINDOW_S = 5.0
_RATE_BATCHES = 4096


class _LinkLostError(Exception):
    """The serial port failed; carries a human-readable reason."""


Matcher = Callable[[Record], bool]


def _is_firmware_answer(rec: Record) -> bool:
    return rec.command == CMD_GET_FIRMWARE and isinstance(rec, Reply | ResultCode)


def _is_antenna_answer(rec: Record) -> bool:
    return rec.command == CMD_SET_WORK_ANTENNA and isinstance(rec, ResultCode)


def _is_round_end(rec: Record) -> bool:
    return rec.command == CMD_REALTIME_INVENTORY and isinstance(rec, RoundEnd | ResultCode)


class R2000Reader:
    """One R2000 reader on one serial port. Implements ``ReaderDriver``."""

    reader_type = "r2000"

    def __init__(
        self,
        config: R2000ReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._on_read = on_read
        self._on_state = on_state
        self._idle_flush_s = idle_flush_s
        self._last_rx = 0.0
        self._failures_since_request = 0
        self._rate_window_s = rate_window_s
        self._snap = ReaderSnapshot(reader=config.id, reader_type=self.reader_type)
        self._decoder = StreamDecoder()
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._lost: str | None = None
        self._waiter: tuple[Matcher, asyncio.Future[Record]] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._rate: deque[tuple[float, int]] = deque(maxlen=_RATE_BATCHES)

    # -- ReaderDriver --

    @property
    def reader_id(self) -> str:
        return self._cfg.id

    def snapshot(self) -> ReaderSnapshot:
        self._snap.read_rate_per_s = self._read_rate()
        return dataclasses.replace(self._snap, error_counts=dict(self._snap.error_counts))

    async def run(self) -> None:
        """Keep the reader going until cancelled."""
        delay = self._cfg.reconnect_initial_s
        try:
            while True:
                if await self._session():
                    delay = self._cfg.reconnect_initial_s
                logger.info(
                    "reader %s: reopening %s in %.2f s", self._cfg.id, self._cfg.port, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._cfg.reconnect_max_s)
        finally:
            self._close()
            self._set_state("offline")

    # -- connection --

    async def _session(self) -> bool:
        """Open the port and talk until it fails. Returns whether it got online."""
        try:
            ser = serial.Serial(self._cfg.port, self._cfg.baudrate, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._link_down(f"open {self._cfg.port}: {exc}")
            return False
        self._serial = ser
        self._fd = ser.fileno()
        self._lost = None
        self._decoder = StreamDecoder()
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        logger.info("reader %s: opened %s", self._cfg.id, self._cfg.port)
        online = False
        try:
            self._set_state("connecting")
            await self._query_firmware()
            online = True
            self._set_state("online")
            await self._inventory_forever()
        except _LinkLostError as exc:
            self._link_down(str(exc))
        return online

    def _link_down(self, reason: str) -> None:
        self._idle_flush()
        self._close()
        self._snap.last_error = reason
        if self._snap.state != "offline":
            logger.warning("reader %s: offline: %s", self._cfg.id, reason)
            self._count("disconnects")
            self._set_state("offline")

    def _close(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self._serial is None:
            return
        if self._fd >= 0:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        try:
            self._serial.close()
        except (serial.SerialException, OSError) as exc:
            logger.debug("reader %s: closing port: %s", self._cfg.id, exc)
        self._serial = None
        self._fd = -1

    def _fail(self, reason: str) -> None:
        """The port failed under a callback: stop watching it and wake the conversation."""
        if self._lost is not None:
            return
        self._lost = reason
        if self._fd >= 0:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        for fut in (self._waiter[1] if self._waiter else None, self._write_waiter):
            if fut is not None and not fut.done():
                fut.set_exception(_LinkLostError(reason))

    # -- conversation --

    async def _query_firmware(self) -> None:
        while True:
            rec = await self._request(cmd_get_firmware(self._cfg.address), _is_firmware_answer)
            if rec is None:
                self._count("timeouts")
                self._snap.last_error = "no answer to get-firmware"
                continue
            if isinstance(rec, Reply):
                self._snap.firmware = rec.firmware() or rec.data.hex().upper()
            return

    async def _inventory_forever(self) -> None:
        addr = self._cfg.address
        while True:
            for antenna in self._cfg.antennas:
                res = await self._request(
                    cmd_set_work_antenna(addr, antenna.port), _is_antenna_answer
                )
                if res is None:
                    self._count("timeouts")
                    self._snap.last_error = f"no answer to set antenna {antenna.port}"
                    continue
                if not isinstance(res, ResultCode) or not res.ok:
                    continue  # counted when it arrived
                end = await self._request(
                    cmd_realtime_inventory(addr, self._cfg.repeat), _is_round_end
                )
                if end is None:
                    self._count("timeouts")
                    self._snap.last_error = f"inventory round on antenna {antenna.port} timed out"

    async def _request(self, frame: bytes, match: Matcher) -> Record | None:
        """Send ``frame`` and await the first record ``match`` accepts (None on timeout).

        Gives up after ``round_timeout_s``, or sooner when a frame failed to decode
        since the request was sent and the line has then been quiet for ``idle_flush_s``:
        the awaited answer was most likely the frame that was lost.
        """
        if self._lost is not None:
            raise _LinkLostError(self._lost)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Record] = loop.create_future()
        self._waiter = (match, fut)
        self._failures_since_request = 0
        deadline = loop.time() + self._cfg.round_timeout_s
        try:
            await self._write(frame)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                await asyncio.wait({fut}, timeout=min(remaining, self._idle_flush_s))
                if fut.done():
                    return fut.result()
                quiet = loop.time() - self._last_rx >= self._idle_flush_s
                if self._failures_since_request and quiet:
                    return None
        finally:
            self._waiter = None
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # mark retrieved

    async def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            if self._lost is not None:
                raise _LinkLostError(self._lost)
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self._fail(f"write: {exc}")
                raise _LinkLostError(f"write: {exc}") from exc
            view = view[written:]
            if view:
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                self._write_waiter = fut
                loop.add_writer(self._fd, _wake, fut)
                try:
                    await fut
                finally:
                    self._write_waiter = None
                    if self._fd >= 0 and self._lost is None:
                        loop.remove_writer(self._fd)

    # -- incoming bytes --

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(f"read: {exc}")
            return
        if not data:
            self._fail("read: end of file")
            return
        self._last_rx = asyncio.get_running_loop().time()
        self._dispatch(self._decoder.feed(data))
        if self._decoder.pending:
            if self._idle_handle is not None:
                self._idle_handle.cancel()
            loop = asyncio.get_running_loop()
            self._idle_handle = loop.call_later(self._idle_flush_s, self._idle_flush)
        elif self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _idle_flush(self) -> None:
        self._idle_handle = None
        self._dispatch(self._decoder.flush())

    def _dispatch(self, records: list[Decoded]) -> None:
        if not records:
            return
        reads = 0
        mono = self._clock.monotonic()
        wall = self._clock.now()
        for rec in records:
            if isinstance(rec, TagRecord):
                reads += 1
                self._deliver(
                    RawRead(
                        reader=self._cfg.id,
                        antenna=rec.antenna,
                        epc=rec.epc,
                        rssi_dbm=float(rec.rssi_dbm),
                        mono=mono,
                        time=wall,
                        pc=rec.pc,
                    )
                )
                continue
            if isinstance(rec, DecodeFailure):
                self._failures_since_request += 1
                self._count(rec.reason)
                self._snap.last_error = f"{rec.reason}: {rec.data[:24].hex(' ').upper()}"
                continue
            if isinstance(rec, RoundEnd):
                self._snap.round_read_rate_per_s = rec.read_rate
                self._snap.round_total_reads = rec.total_reads
            elif isinstance(rec, ResultCode) and not rec.ok:
                self._count(f"reader_0x{rec.code:02X}")
                self._snap.last_error = f"reader error {rec.name} on command 0x{rec.command:02X}"
            waiter = self._waiter
            if waiter is not None and not waiter[1].done() and waiter[0](rec):
                waiter[1].set_result(rec)
            else:
                logger.debug("reader %s: unsolicited %s", self._cfg.id, rec)
        if reads:
            self._snap.reads_total += reads
            self._rate.append((mono, reads))

    def _deliver(self, read: RawRead) -> None:
        try:
            self._on_read(read)
        except Exception:
            logger.exception("reader %s: on_read callback failed", self._cfg.id)

    # -- bookkeeping --

    def _count(self, key: str) -> None:
        counts = self._snap.error_counts
        counts[key] = counts.get(key, 0) + 1

    def _read_rate(self) -> float:
        cutoff = self._clock.monotonic() - self._rate_window_s
        rate = self._rate
        while rate and rate[0][0] <= cutoff:
            rate.popleft()
        return sum(n for _, n in rate) / self._rate_window_s

    def _set_state(self, state: ReaderState) -> None:
        if self._snap.state == state:
            return
        self._snap.state = state
        logger.info("reader %s: %s", self._cfg.id, state)
        if self._on_state is not None:
            try:
                self._on_state(self.snapshot())
            except Exception:
                logger.exception("reader %s: on_state callback failed", self._cfg.id)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
