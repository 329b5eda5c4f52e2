"""Asyncio driver for LLRP fixed readers (Impinj Speedway/R700, Zebra FX7500/FX9600) over TCP.

Messages are encoded and decoded by :mod:`tagtrail.readers.protocols.llrp` (tagtrail's own
LLRP implementation; sllurp is GPL-3.0 and not used). This module holds the conversation,
on one TCP connection (``asyncio.open_connection``) at a time:

1. connect to ``host:port`` (``connect_timeout_s``) and wait for the reader's
   ``READER_EVENT_NOTIFICATION`` with a ``ConnectionAttemptEvent``: Success goes on; any
   other status (another client holds the reader) counts ``connection_refused``;
2. ``GET_READER_CAPABILITIES``: manufacturer (IANA PEN), model number and firmware go into
   the snapshot's ``firmware``;
3. ``SET_READER_CONFIG``: periodic keep-alives every ``keepalive_s``, ROSpec/antenna/
   exception events on, events not held over a reconnect;
4. ``DELETE_ROSPEC`` 0 (every ROSpec; a reader that rejects 0 when it holds none is fine);
5. ``ADD_ROSPEC`` (:data:`ROSPEC_ID`; null start trigger, AISpec over the configured
   antennas with a ``report_every_s`` duration, Gen2 session / tag population / optional
   RF mode and transmit power index per antenna, a report at the end of every AISpec with
   antenna, peak RSSI, channel, first/last seen and seen count), ``ENABLE_ROSPEC``,
   ``START_ROSPEC``, then ``ENABLE_EVENTS_AND_REPORTS`` (no response; an
   ``ERROR_MESSAGE`` to it is only logged). The state is ``online`` from here.

Every request carries a fresh message id and its response is matched by that id. An
error ``LLRPStatus`` in a response is logged as an error with the step, status name,
code and the reader's description, counted as ``status_error``, the state set ``error``,
the connection closed (best effort) and the whole setup retried after the backoff. An
unanswered request (``connect_timeout_s``) counts ``timeouts`` and reconnects.

While reading, each ``TagReportData`` of an ``RO_ACCESS_REPORT`` is delivered as a
:class:`~tagtrail.readers.model.RawRead` (antenna, EPC in upper-case hex, peak RSSI, PC if
present; ``mono``/``time`` from the injected clock at receipt). Every ``KEEPALIVE`` is
answered with ``KEEPALIVE_ACK`` (same message id). If nothing at all arrives for three
keep-alive periods the link is taken as dead (``keepalive_timeouts``); end of file, a
reset or a ``ConnectionCloseEvent`` end the connection too. Then ``disconnects`` is
counted once per outage, the state set ``offline`` and the reader reconnected after a
backoff doubling from ``reconnect_initial_s`` to ``reconnect_max_s`` (reset after a
session that got online). Decoder failures are counted by reason.

On cancellation the driver sends ``STOP_ROSPEC``, ``DELETE_ROSPEC`` and
``CLOSE_CONNECTION`` best effort (waiting briefly for the close response), so the reader
does not keep inventorying for nobody, then closes the socket.

``idle_flush_s`` is accepted like every driver's but unused: TCP loses no bytes, so a
partial message is only ever completed by more bytes (it is flushed when the
connection ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from tagtrail.clock import Clock
from tagtrail.readers.config import LlrpReaderConfig
from tagtrail.readers.model import (
    RawRead,
    ReadCallback,
    ReaderSnapshot,
    ReaderState,
    StateCallback,
    deliver,
)
from tagtrail.readers.protocols import llrp
from tagtrail.readers.protocols.base import DecodeFailure

logger = logging.getLogger(__name__)

T = TypeVar("T")

ROSPEC_ID = 0x7474
"""The ROSpec this driver adds (and stops and deletes on the way out)."""
READ_SIZE = 65536
RATE_WINDOW_S = 5.0
_RATE_BATCHES = 4096
MISSED_KEEPALIVES = 3
CLOSE_WAIT_S = 2.0
MANUFACTURERS = {25882: "Impinj", 161: "Zebra (Motorola)", 17262: "Alien"}


class _LinkLostError(Exception):
    """Internal: the connection is gone or unusable; carries a reason."""


class _RejectedError(Exception):
    """Internal: the reader answered a setup step with an error status."""

    def __init__(self, step: str, status: llrp.Status) -> None:
        super().__init__(f"{step} rejected: {status.text()}")
        self.step = step
        self.status = status


class LlrpReader:
    """One LLRP reader on one TCP connection. Implements ``ReaderDriver``."""

    reader_type: ClassVar[str] = "llrp"

    def __init__(
        self,
        config: LlrpReaderConfig,
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
        self._rate_window_s = rate_window_s
        self._snap = ReaderSnapshot(reader=config.id, reader_type=self.reader_type)
        self._rate: deque[tuple[float, int]] = deque(maxlen=_RATE_BATCHES)
        self._decoder = llrp.StreamDecoder()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[llrp.Response]] = {}
        self._fire_and_forget: dict[int, str] = {}
        self._connection_event: asyncio.Future[llrp.ReaderEvent] | None = None
        self._lost: asyncio.Future[str] | None = None
        self._last_heard = 0.0
        self._next_id = 1
        self._session_online = False
        self._outage = False

    # -- ReaderDriver --

    @property
    def reader_id(self) -> str:
        return self._cfg.id

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
        cfg = self._cfg
        delay = cfg.reconnect_initial_s
        try:
            while True:
                if await self._session():
                    delay = cfg.reconnect_initial_s
                logger.info(
                    "reader %s: reconnecting to %s:%d in %.2f s", cfg.id, cfg.host, cfg.port, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.reconnect_max_s)
        finally:
            self._set_state("offline")

    # -- one connection --

    async def _session(self) -> bool:
        """Connect, set up and read until the link is lost. Returns whether it got online."""
        cfg = self._cfg
        self._session_online = False
        try:
            async with asyncio.timeout(cfg.connect_timeout_s):
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
        except (OSError, TimeoutError) as exc:
            self._link_down(f"connect to {cfg.host}:{cfg.port}: {exc or 'timed out'}")
            return False
        loop = asyncio.get_running_loop()
        self._writer = writer
        self._decoder = llrp.StreamDecoder()
        self._lost = loop.create_future()
        self._connection_event = loop.create_future()
        self._last_heard = loop.time()
        self._set_state("connecting")
        pump = asyncio.create_task(self._pump(reader), name=f"llrp-{cfg.id}-read")
        try:
            await self._converse()
        except _LinkLostError as exc:
            self._link_down(str(exc))
        except _RejectedError as exc:
            self._count("status_error")
            self._snap.last_error = str(exc)
            logger.error("reader %s: %s", cfg.id, exc)  # noqa: TRY400 - a reader's answer
            self._set_state("error")
            await self._say_goodbye(stop=False)
        except asyncio.CancelledError:
            await self._say_goodbye(stop=True)
            raise
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._close()
        return self._session_online

    async def _converse(self) -> None:
        cfg = self._cfg
        event_fut = self._connection_event
        if event_fut is None:
            raise _LinkLostError("no connection")
        event = await self._await(event_fut, "the connection event")
        if event.connection_status != 0:
            name = llrp.CONNECTION_STATUS_NAMES.get(
                event.connection_status or 0, str(event.connection_status)
            )
            self._count("connection_refused")
            raise _LinkLostError(f"reader refused the connection: {name}")
        caps = await self._request(
            "GET_READER_CAPABILITIES", llrp.get_reader_capabilities(self._new_id())
        )
        if caps.capabilities is not None:
            c = caps.capabilities
            maker = MANUFACTURERS.get(c.manufacturer, f"PEN {c.manufacturer}")
            self._snap.firmware = f"{maker} model {c.model}, firmware {c.firmware}"
        await self._request(
            "SET_READER_CONFIG",
            llrp.set_reader_config(self._new_id(), keepalive_ms=round(cfg.keepalive_s * 1000)),
        )
        deleted = await self._request(
            "DELETE_ROSPEC", llrp.delete_rospec(self._new_id(), 0), check=False
        )
        if not deleted.status.ok:
            logger.info(
                "reader %s: DELETE_ROSPEC 0 answered %s (nothing to delete)",
                cfg.id,
                deleted.status.text(),
            )
        settings = llrp.RoSpecSettings(
            rospec_id=ROSPEC_ID,
            antennas=tuple(a.port for a in cfg.antennas),
            duration_ms=max(1, round(cfg.report_every_s * 1000)),
            session=cfg.session,
            tag_population=cfg.tag_population,
            mode_index=cfg.mode_index,
            tx_power_index=cfg.tx_power_index,
        )
        await self._request("ADD_ROSPEC", llrp.add_rospec(self._new_id(), settings))
        await self._request("ENABLE_ROSPEC", llrp.enable_rospec(self._new_id(), ROSPEC_ID))
        await self._request("START_ROSPEC", llrp.start_rospec(self._new_id(), ROSPEC_ID))
        mid = self._new_id()
        self._fire_and_forget[mid] = "ENABLE_EVENTS_AND_REPORTS"
        await self._send(llrp.enable_events_and_reports(mid))
        self._set_state("online")
        logger.info("reader %s: inventorying antennas %s", cfg.id, list(settings.antennas))
        await self._watch()

    async def _watch(self) -> None:
        """Wait until the link is lost or silent for three keep-alive periods."""
        loop = asyncio.get_running_loop()
        silence_s = MISSED_KEEPALIVES * self._cfg.keepalive_s
        lost = self._lost_future()
        while True:
            remaining = self._last_heard + silence_s - loop.time()
            if remaining <= 0:
                self._count("keepalive_timeouts")
                raise _LinkLostError(
                    f"nothing from the reader for {silence_s:g} s "
                    f"({MISSED_KEEPALIVES} keep-alive periods)"
                )
            await asyncio.wait({lost}, timeout=remaining)
            if lost.done():
                raise _LinkLostError(lost.result())

    # -- requests --

    def _lost_future(self) -> asyncio.Future[str]:
        if self._lost is None:
            raise _LinkLostError("no connection")
        return self._lost

    def _new_id(self) -> int:
        mid = self._next_id
        self._next_id = mid + 1 if mid < 0xFFFFFFFF else 1
        return mid

    async def _send(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise _LinkLostError("connection closed")
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _LinkLostError(f"write: {exc}") from exc

    async def _request(self, step: str, data: bytes, *, check: bool = True) -> llrp.Response:
        """Send a request and await the response with its message id."""
        mid = int.from_bytes(data[6:10], "big")
        fut: asyncio.Future[llrp.Response] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        try:
            await self._send(data)
            response = await self._await(fut, step)
        finally:
            self._pending.pop(mid, None)
        if check and not response.status.ok:
            raise _RejectedError(step, response.status)
        return response

    async def _await(self, fut: asyncio.Future[T], step: str) -> T:
        """The result of ``fut``; the link lost or ``connect_timeout_s`` raise."""
        lost = self._lost_future()
        waits: set[asyncio.Future[Any]] = {fut, lost}
        done, _ = await asyncio.wait(
            waits, timeout=self._cfg.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if fut in done:
            return fut.result()
        if lost in done:
            raise _LinkLostError(lost.result())
        self._count("timeouts")
        raise _LinkLostError(f"no answer to {step} within {self._cfg.connect_timeout_s:g} s")

    async def _say_goodbye(self, *, stop: bool) -> None:
        """Best effort: stop and delete our ROSpec, close the connection politely."""
        writer = self._writer
        lost = self._lost
        if writer is None or writer.is_closing() or lost is None or lost.done():
            return
        loop = asyncio.get_running_loop()
        close_id = self._new_id()
        fut: asyncio.Future[llrp.Response] = loop.create_future()
        self._pending[close_id] = fut
        data = b""
        if stop:
            data += llrp.stop_rospec(self._new_id(), ROSPEC_ID)
            data += llrp.delete_rospec(self._new_id(), ROSPEC_ID)
        data += llrp.close_connection(close_id)
        try:
            writer.write(data)
            async with asyncio.timeout(CLOSE_WAIT_S):
                await writer.drain()
                waits: set[asyncio.Future[Any]] = {fut, lost}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except (ConnectionError, OSError, TimeoutError) as exc:
            logger.debug("reader %s: closing politely: %s", self._cfg.id, exc)
        finally:
            self._pending.pop(close_id, None)
            if not fut.done():
                fut.cancel()

    # -- incoming --

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        """Read, decode and dispatch until end of file or an error; then mark the link lost."""
        reason = "end of file"
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                self._last_heard = asyncio.get_running_loop().time()
                self._dispatch(self._decoder.feed(data))
                if self._lost is not None and self._lost.done():
                    return
        except (ConnectionError, OSError) as exc:
            reason = f"read: {exc}"
        self._dispatch(self._decoder.flush())
        self._mark_lost(reason)

    def _mark_lost(self, reason: str) -> None:
        lost = self._lost
        if lost is not None and not lost.done():
            lost.set_result(reason)

    def _dispatch(self, records: Sequence[llrp.Decoded]) -> None:
        if not records:
            return
        reads = 0
        mono = self._clock.monotonic()
        wall = self._clock.now()
        for rec in records:
            if isinstance(rec, llrp.TagReport):
                antenna = rec.antenna if rec.antenna is not None else self._cfg.antennas[0].port
                reads += 1
                self._deliver(
                    RawRead(
                        reader=self._cfg.id,
                        antenna=antenna,
                        epc=rec.epc,
                        rssi_dbm=None if rec.rssi_dbm is None else float(rec.rssi_dbm),
                        mono=mono,
                        time=wall,
                        pc=rec.pc,
                        scheme="epc",
                    )
                )
            elif isinstance(rec, llrp.Keepalive):
                self._ack(rec.message_id)
            elif isinstance(rec, llrp.Response):
                self._on_response(rec)
            elif isinstance(rec, llrp.ReaderEvent):
                self._on_event(rec)
            elif isinstance(rec, DecodeFailure):
                self._count(rec.reason)
                self._snap.last_error = f"{rec.reason}: {rec.data[:24].hex(' ').upper()}"
            else:
                logger.debug("reader %s: unsolicited %s", self._cfg.id, rec.name)
        if reads:
            self._snap.reads_total += reads
            self._rate.append((mono, reads))

    def _ack(self, message_id: int) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        try:
            writer.write(llrp.keepalive_ack(message_id))
        except (ConnectionError, OSError) as exc:
            self._mark_lost(f"write: {exc}")

    def _on_response(self, rec: llrp.Response) -> None:
        fut = self._pending.get(rec.message_id)
        if fut is not None and not fut.done():
            fut.set_result(rec)
            return
        step = self._fire_and_forget.pop(rec.message_id, None)
        if step is not None:
            logger.info("reader %s: %s answered %s", self._cfg.id, step, rec.status.text())
            return
        if not rec.status.ok:
            self._count("status_error")
            self._snap.last_error = f"{rec.name}: {rec.status.text()}"
            logger.error("reader %s: %s: %s", self._cfg.id, rec.name, rec.status.text())
        else:
            logger.debug("reader %s: unmatched %s", self._cfg.id, rec.name)

    def _on_event(self, rec: llrp.ReaderEvent) -> None:
        if rec.connection_status is not None:
            fut = self._connection_event
            if fut is not None and not fut.done():
                fut.set_result(rec)
        if "connection_close" in rec.events:
            self._mark_lost("the reader closed the connection (ConnectionCloseEvent)")
        if "reader_exception" in rec.events:
            self._count("reader_exception")
        logger.debug("reader %s: events %s", self._cfg.id, rec.events)

    def _deliver(self, read: RawRead) -> None:
        deliver(self._snap, self._on_read, read)

    # -- bookkeeping --

    def _close(self) -> None:
        writer = self._writer
        self._writer = None
        if writer is not None:
            writer.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        self._fire_and_forget.clear()

    def _link_down(self, reason: str) -> None:
        self._snap.last_error = reason
        if not self._outage:
            logger.warning("reader %s: offline: %s", self._cfg.id, reason)
            self._count("disconnects")
            self._outage = True
        else:
            logger.info("reader %s: still offline: %s", self._cfg.id, reason)
        self._set_state("offline")

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
            self._outage = False
        if self._snap.state == state:
            return
        self._snap.state = state
        logger.info("reader %s: %s", self._cfg.id, state)
        if self._on_state is not None:
            try:
                self._on_state(self.snapshot())
            except Exception:
                logger.exception("reader %s: on_state callback failed", self._cfg.id)
