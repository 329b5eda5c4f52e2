"""What every serial reader driver shares: port, stream decoder, reconnects, health.

:class:`SerialReader` owns the port and the bookkeeping; a driver for one wire protocol
subclasses it and supplies three things:

* :meth:`SerialReader._new_decoder`: a fresh stream decoder of its protocol (one per
  connection), with ``feed``/``flush``/``pending`` (see
  :class:`~tagtrail.readers.protocols.base.StreamDecoderLike`);
* :meth:`SerialReader._on_record`: what a decoded record (not a failure) means: a
  :class:`~tagtrail.readers.model.RawRead` to deliver, or ``None`` after updating the
  snapshot (status, error codes); records that are not reads are then offered to the
  request in flight (:meth:`SerialReader._request`);
* :meth:`SerialReader._converse`: the conversation run while the port is open. It sets the
  state ``online`` when the reader has shown it is there, and never returns: it ends by
  the :class:`LinkLostError` that :meth:`_request`, :meth:`_write` or
  :meth:`_until_link_lost` raise when the port fails.

The port is opened with pyserial (non-blocking) and watched with ``loop.add_reader``;
there are no threads and no polling. A driver whose device is not a serial port (an evdev
keyboard, say) overrides :meth:`SerialReader._open_link` to open it some other way and
gets the same machinery. Writes that do not fit wait for ``add_writer``.

Decoder failures are counted in ``error_counts`` by reason and described in
``last_error``. When the line goes quiet for ``idle_flush_s`` with a partial frame or
garbage held, the decoder is flushed, so a frame cut short is reported as ``truncated``
without waiting for more bytes.

If the port cannot be opened, or reading or writing fails (EIO, hang-up, end of file),
the port is closed, the held partial frame flushed, ``disconnects`` counted once per
outage, the state set ``offline`` and the port reopened after a backoff doubling from
``reconnect_initial_s`` to ``reconnect_max_s`` (reset after a session that got online),
forever. ``run`` only ends by cancellation, which closes the port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar, Generic, NoReturn, Protocol, TypeVar

import serial

from tagtrail.clock import Clock
from tagtrail.readers.model import (
    RawRead,
    ReadCallback,
    ReaderSnapshot,
    ReaderState,
    StateCallback,
    deliver,
)
from tagtrail.readers.protocols.base import DecodeFailure, StreamDecoderLike

logger = logging.getLogger(__name__)

READ_SIZE = 65536
RATE_WINDOW_S = 5.0
_RATE_BATCHES = 4096

RecordT = TypeVar("RecordT")


class LinkLostError(Exception):
    """The serial port failed; carries a human-readable reason.

    Internal control flow of the drivers: it never leaves :meth:`SerialReader.run`.
    """


class LinkSettings(Protocol):
    """The part of a reader's config the shared machinery needs."""

    @property
    def id(self) -> str: ...

    @property
    def port(self) -> str: ...

    @property
    def reconnect_initial_s(self) -> float: ...

    @property
    def reconnect_max_s(self) -> float: ...


class SerialPortSettings(LinkSettings, Protocol):
    """A serial reader's config: a link with a baud rate."""

    @property
    def baudrate(self) -> int: ...


class Link(Protocol):
    """An open device: a pollable file descriptor and a way to close it."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class SerialReader(ABC, Generic[RecordT]):
    """One reader on one serial port. Implements ``ReaderDriver``.

    ``RecordT`` is the type of the protocol's good records (its decoder yields those and
    :class:`DecodeFailure`).
    """

    reader_type: ClassVar[str]

    def __init__(
        self,
        config: LinkSettings,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._port_cfg = config
        self._clock = clock
        self._on_read = on_read
        self._on_state = on_state
        self._idle_flush_s = idle_flush_s
        self._last_rx = 0.0
        self._failures_since_request = 0
        self._rate_window_s = rate_window_s
        self._snap = ReaderSnapshot(reader=config.id, reader_type=self.reader_type)
        self._decoder: StreamDecoderLike = self._new_decoder()
        self._serial: Link | None = None
        self._fd = -1
        self._lost: str | None = None
        self._session_online = False
        self._waiter: tuple[Callable[[RecordT], bool], asyncio.Future[RecordT]] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._rate: deque[tuple[float, int]] = deque(maxlen=_RATE_BATCHES)

    # -- what a protocol supplies --

    @abstractmethod
    def _new_decoder(self) -> StreamDecoderLike:
        """A fresh stream decoder for this protocol.

        Called from ``__init__`` too: a subclass whose decoder depends on its config sets
        that config before calling ``super().__init__``.
        """

    @abstractmethod
    def _on_record(self, rec: RecordT, mono: float, wall: datetime) -> RawRead | None:
        """The read a good record holds, or None (after noting any status it carries)."""

    @abstractmethod
    async def _converse(self) -> NoReturn:
        """Talk to the reader while the port is open; ends only by :class:`LinkLostError`."""

    def _open_link(self) -> Link:
        """Open the device, non-blocking. Raises ``OSError`` (or pyserial's errors, or
        ``ValueError``) with the reason when it cannot. The default opens a serial port
        at the config's ``baudrate``."""
        cfg = self._port_cfg
        baudrate = int(getattr(cfg, "baudrate"))  # noqa: B009 - serial configs have one
        return serial.Serial(cfg.port, baudrate, timeout=0)

    # -- ReaderDriver --

    @property
    def reader_id(self) -> str:
        return self._port_cfg.id

    def snapshot(self) -> ReaderSnapshot:
        self._snap.read_rate_per_s = self._read_rate()
        return dataclasses.replace(
            self._snap,
            error_counts=dict(self._snap.error_counts),
            antenna_reads=dict(self._snap.antenna_reads),
            counters=dict(self._snap.counters),
        )

    async def run(self) -> None:
        """Keep the reader going until cancelled."""
        cfg = self._port_cfg
        delay = cfg.reconnect_initial_s
        try:
            while True:
                if await self._session():
                    delay = cfg.reconnect_initial_s
                logger.info("reader %s: reopening %s in %.2f s", cfg.id, cfg.port, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.reconnect_max_s)
        finally:
            self._close()
            self._set_state("offline")

    # -- connection --

    async def _session(self) -> bool:
        """Open the port and talk until it fails. Returns whether it got online."""
        cfg = self._port_cfg
        try:
            ser = self._open_link()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._link_down(f"open {cfg.port}: {exc}")
            return False
        self._serial = ser
        self._fd = ser.fileno()
        self._lost = None
        self._session_online = False
        self._decoder = self._new_decoder()
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        logger.info("reader %s: opened %s", cfg.id, cfg.port)
        try:
            self._set_state("connecting")
            await self._converse()
        except LinkLostError as exc:
            self._link_down(str(exc))
        return self._session_online

    def _link_down(self, reason: str) -> None:
        self._idle_flush()
        self._close()
        self._snap.last_error = reason
        if self._snap.state != "offline":
            logger.warning("reader %s: offline: %s", self._port_cfg.id, reason)
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
            logger.debug("reader %s: closing port: %s", self._port_cfg.id, exc)
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
        waiting = self._waiter[1] if self._waiter else None
        for fut in (waiting, self._write_waiter, self._lost_waiter):
            if fut is not None and not fut.done():
                fut.set_exception(LinkLostError(reason))

    # -- for conversations --

    async def _until_link_lost(self) -> NoReturn:
        """Wait, sending nothing, until the port fails; then raise :class:`LinkLostError`."""
        if self._lost is not None:
            raise LinkLostError(self._lost)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lost_waiter = fut
        try:
            await fut
        finally:
            self._lost_waiter = None
        raise AssertionError("the link-lost future only ever fails")  # pragma: no cover

    async def _request(
        self, frame: bytes, match: Callable[[RecordT], bool], timeout_s: float
    ) -> RecordT | None:
        """Send ``frame`` and await the first record ``match`` accepts (None on timeout).

        Gives up after ``timeout_s``, or sooner when a frame failed to decode since the
        request was sent and the line has then been quiet for ``idle_flush_s``: the
        awaited answer was most likely the frame that was lost.
        """
        if self._lost is not None:
            raise LinkLostError(self._lost)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[RecordT] = loop.create_future()
        self._waiter = (match, fut)
        self._failures_since_request = 0
        deadline = loop.time() + timeout_s
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
        """Write all of ``frame``, waiting for the port to drain when it is full."""
        view = memoryview(frame)
        while view:
            if self._lost is not None:
                raise LinkLostError(self._lost)
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self._fail(f"write: {exc}")
                raise LinkLostError(f"write: {exc}") from exc
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
        loop = asyncio.get_running_loop()
        self._last_rx = loop.time()
        self._dispatch(self._decoder.feed(data))
        if self._decoder.pending:
            if self._idle_handle is not None:
                self._idle_handle.cancel()
            self._idle_handle = loop.call_later(self._idle_flush_s, self._idle_flush)
        elif self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _idle_flush(self) -> None:
        self._idle_handle = None
        self._dispatch(self._decoder.flush())

    def _dispatch(self, records: Sequence[RecordT | DecodeFailure]) -> None:
        if not records:
            return
        reads = 0
        mono = self._clock.monotonic()
        wall = self._clock.now()
        for rec in records:
            if isinstance(rec, DecodeFailure):
                self._failures_since_request += 1
                self._count(rec.reason)
                self._snap.last_error = f"{rec.reason}: {rec.data[:24].hex(' ').upper()}"
                continue
            read = self._on_record(rec, mono, wall)
            if read is not None:
                reads += 1
                self._deliver(read)
                continue
            waiter = self._waiter
            if waiter is not None and not waiter[1].done() and waiter[0](rec):
                waiter[1].set_result(rec)
            else:
                logger.debug("reader %s: unsolicited %s", self._port_cfg.id, rec)
        if reads:
            self._snap.reads_total += reads
            self._rate.append((mono, reads))

    def _deliver(self, read: RawRead) -> None:
        deliver(self._snap, self._on_read, read)

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
        if state == "online":
            self._session_online = True
        if self._snap.state == state:
            return
        self._snap.state = state
        logger.info("reader %s: %s", self._port_cfg.id, state)
        if self._on_state is not None:
            try:
                self._on_state(self.snapshot())
            except Exception:
                logger.exception("reader %s: on_state callback failed", self._port_cfg.id)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
