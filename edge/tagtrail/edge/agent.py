"""The edge agent: readers -> smoother -> durable outbox -> MQTT.

One asyncio loop runs everything:

* each configured reader's driver (:class:`~tagtrail.readers.model.ReaderDriver`) calls
  :meth:`EdgeAgent.on_read` for every raw read;
* the :class:`~tagtrail.edge.smoothing.Smoother` turns reads into movement events, and a
  tick task checks departures and pending moves;
* new events are committed to the :class:`~tagtrail.edge.outbox.Outbox` (SQLite, WAL)
  together with the presence state they imply, before anything is published;
* the :class:`~tagtrail.edge.publisher.Publisher` sends the outbox in order and deletes
  rows only on PUBACK;
* a heartbeat task republishes the retained device status and records every reader's
  status as an event.

SIGTERM or SIGINT stop it cleanly: pending events are committed, the final offline status
is published, and whatever the broker has not acknowledged stays in the outbox for the
next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel

from tagtrail import __version__, logsetup
from tagtrail.clock import Clock, ScaledClock, SystemClock
from tagtrail.edge.config import EdgeConfig
from tagtrail.edge.metrics import edge_metrics
from tagtrail.edge.outbox import Outbox
from tagtrail.edge.publisher import Publisher
from tagtrail.edge.smoothing import MovementEvent, Smoother
from tagtrail.errors import TagtrailError
from tagtrail.events import (
    AnyEvent,
    Arrived,
    Departed,
    DeviceStatus,
    Moved,
    ReaderStatus,
    new_event_id,
)
from tagtrail.metrics import MetricsServer, new_registry
from tagtrail.readers.ascii import AsciiScanner
from tagtrail.readers.camera import CameraReader
from tagtrail.readers.chafon import ChafonReader
from tagtrail.readers.config import (
    AsciiScannerConfig,
    CameraReaderConfig,
    ChafonReaderConfig,
    EM4100ReaderConfig,
    HidScannerConfig,
    LlrpReaderConfig,
    M100ReaderConfig,
    MercuryReaderConfig,
    R700ReaderConfig,
    R2000ReaderConfig,
    ReaderConfig,
)
from tagtrail.readers.em4100 import EM4100Reader
from tagtrail.readers.hid import HidScanner
from tagtrail.readers.llrp import LlrpReader
from tagtrail.readers.m100 import M100Reader
from tagtrail.readers.mercury import MercuryReader
from tagtrail.readers.model import RawRead, ReaderDriver, ReaderSnapshot
from tagtrail.readers.r700 import R700Reader
from tagtrail.readers.r2000 import R2000Reader

log = logging.getLogger(__name__)

IDLE_FLUSH_S = 0.2
"""A partial frame held this long with the line quiet is reported as truncated."""

DRIVERS: dict[type[BaseModel], Callable[..., ReaderDriver]] = {
    R2000ReaderConfig: R2000Reader,
    EM4100ReaderConfig: EM4100Reader,
    M100ReaderConfig: M100Reader,
    ChafonReaderConfig: ChafonReader,
    MercuryReaderConfig: MercuryReader,
    AsciiScannerConfig: AsciiScanner,
    HidScannerConfig: HidScanner,
    LlrpReaderConfig: LlrpReader,
    R700ReaderConfig: R700Reader,
    CameraReaderConfig: CameraReader,
}
"""The driver class of each reader type; every one takes
``(config, clock, on_read, on_state, *, idle_flush_s)``."""


def make_driver(
    config: ReaderConfig,
    clock: Clock,
    agent: EdgeAgent,
    time_scale: float = 1.0,
) -> ReaderDriver:
    """The driver for one configured reader.

    Under a simulator running ``time_scale`` times faster than real time, the driver's
    idle gap shrinks by the same factor, as the simulated reader's pauses do.
    """
    driver = DRIVERS[type(config)]
    return driver(
        config,
        clock,
        agent.on_read,
        agent.on_reader_state,
        idle_flush_s=IDLE_FLUSH_S / time_scale,
    )


class EdgeAgent:
    """Runs one device's readers and publishes their movement events."""

    def __init__(self, config: EdgeConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        if clock is None:
            clock = SystemClock() if config.time_scale == 1.0 else ScaledClock(config.time_scale)
        self.clock = clock
        self._started_mono = clock.monotonic()
        self._real_per_tick_s = config.smoothing.tick_s / config.time_scale
        zones = {(r.id, a.port): a.zone for r in config.readers for a in r.antennas}
        self._observers = {
            r.id: r.repeat_suppress_s
            for r in config.readers
            if isinstance(r, AsciiScannerConfig | HidScannerConfig | CameraReaderConfig)
        }
        self.smoother = Smoother(
            config.smoothing,
            site=config.site,
            device=config.device,
            zones=zones,
            observers=self._observers,
        )
        self.outbox = Outbox(config.outbox.path, synchronous=config.outbox.synchronous)
        self._restore_presence()
        self.publisher = Publisher(
            config.mqtt,
            site=config.site,
            device=config.device,
            client_id=config.client_id,
            outbox=self.outbox,
            clock=self.clock,
            will_payload=self._device_status("offline", "will").model_dump_json().encode(),
            status_payload=lambda: (
                self._device_status("online", "startup").model_dump_json().encode()
            ),
        )
        self.drivers: list[ReaderDriver] = [
            make_driver(r, self.clock, self, config.time_scale) for r in config.readers
        ]
        self._reader_types = {r.id: r.type for r in config.readers}
        self._ports = {r.id: [a.port for a in r.antennas] for r in config.readers}
        self._pending: list[AnyEvent] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.events_emitted = 0
        self.metrics_port: int | None = None

    # -- callbacks from drivers ------------------------------------------------

    def on_read(self, read: RawRead) -> None:
        events = self.smoother.feed(read)
        if events:
            self._queue(events)

    def on_reader_state(self, snap: ReaderSnapshot) -> None:
        log.info("reader %s is %s", snap.reader, snap.state, extra={"reader": snap.reader})
        self._queue([self._reader_status(snap)])

    # -- internals -------------------------------------------------------------

    def _queue(self, events: Sequence[AnyEvent]) -> None:
        self._pending.extend(events)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Commit queued events (and presence) to the outbox, then wake the publisher."""
        self._flush_scheduled = False
        if not self._pending:
            return
        events, self._pending = self._pending, []
        self.outbox.append(events, presence=_presence_changes(events, self._observers))
        self.events_emitted += len(events)
        depth = self.outbox.depth()
        if depth > self.config.outbox.warn_depth:
            log.warning("outbox holds %d unacknowledged events", depth)
        self.publisher.notify()

    def _restore_presence(self) -> None:
        now_mono, now_time = self.clock.monotonic(), self.clock.now()
        restored = 0
        for row in self.outbox.presence():
            self.smoother.restore(
                epc=row.epc,
                zone=row.zone,
                reader=row.reader,
                antenna=row.antenna,
                first_seen=row.first_seen,
                read_count=row.read_count,
                peak_rssi_dbm=row.peak_rssi_dbm,
                now_mono=now_mono,
                now_time=now_time,
                scheme=row.scheme,
            )
            restored += 1
        if restored:
            log.info("restored %d present items from the outbox database", restored)

    def _reader_status(self, snap: ReaderSnapshot) -> ReaderStatus:
        return ReaderStatus(
            kind="reader_status",
            event_id=new_event_id(),
            event_time=self.clock.now(),
            site=self.config.site,
            device=self.config.device,
            reader=snap.reader,
            reader_type=snap.reader_type,
            state=snap.state,
            read_rate_per_s=round(snap.read_rate_per_s, 3),
            reads_total=snap.reads_total,
            error_counts=dict(snap.error_counts),
            last_error=snap.last_error,
            firmware=snap.firmware,
            round_read_rate_per_s=snap.round_read_rate_per_s,
            round_total_reads=snap.round_total_reads,
            antenna_reads={**dict.fromkeys(self._ports[snap.reader], 0), **snap.antenna_reads},
            counters=dict(snap.counters),
        )

    def _device_status(
        self, state: str, reason: str, readers: Sequence[ReaderStatus] = ()
    ) -> DeviceStatus:
        return DeviceStatus.model_validate(
            {
                "kind": "device_status",
                "event_id": new_event_id(),
                "event_time": self.clock.now(),
                "site": self.config.site,
                "device": self.config.device,
                "state": state,
                "reason": reason,
                "software_version": __version__,
                "uptime_s": round(
                    (self.clock.monotonic() - self._started_mono) / self.config.time_scale, 3
                ),
                "heartbeat_interval_s": self.config.status.heartbeat_s,
                "outbox_depth": self.outbox.depth(),
                "readers": list(readers),
            }
        )

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._real_per_tick_s)
            events = self.smoother.tick(self.clock.monotonic(), self.clock.now())
            if events:
                self._queue(events)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status.heartbeat_s / self.config.time_scale)
            try:
                await self.heartbeat()
            except (TagtrailError, ValueError):
                # A status that cannot be built or sent must not stop the readers.
                log.exception("heartbeat failed; the next one follows on schedule")

    async def _start_metrics(self) -> MetricsServer | None:
        cfg = self.config.metrics
        if cfg.port is None:
            return None
        server = MetricsServer(new_registry(lambda: edge_metrics(self)), cfg.host, cfg.port)
        self.metrics_port = await server.start()
        return server

    async def heartbeat(self) -> None:
        """Record every reader's status and republish the retained device status."""
        statuses = [self._reader_status(d.snapshot()) for d in self.drivers]
        self._queue(statuses)
        status = self._device_status("online", "heartbeat", statuses)
        await self.publisher.publish_status(status.model_dump_json().encode())

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down cleanly."""
        self._loop = asyncio.get_running_loop()
        log.info(
            "edge agent %s/%s starting with %d reader(s); %d events waiting in the outbox",
            self.config.site,
            self.config.device,
            len(self.drivers),
            self.outbox.depth(),
        )
        metrics = await self._start_metrics()
        tasks = [
            asyncio.create_task(_run_reader(d), name=f"reader-{d.reader_id}") for d in self.drivers
        ]
        tasks.append(asyncio.create_task(self.publisher.run(), name="publisher"))
        tasks.append(asyncio.create_task(self._tick_loop(), name="smoothing-tick"))
        tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error("task %s failed", task.get_name(), exc_info=task.exception())
        finally:
            log.info("edge agent stopping")
            for task in tasks:
                if task.get_name() != "publisher":
                    task.cancel()
            for task in tasks:
                if task.get_name() != "publisher":
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.flush()
            final = self._device_status("offline", "shutdown")
            await self.publisher.close(final.model_dump_json().encode())
            stopper.cancel()
            for task in tasks:
                if task.get_name() == "publisher":
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.outbox.close()
            if metrics is not None:
                await metrics.close()
            log.info("edge agent stopped")


async def _run_reader(driver: ReaderDriver) -> None:
    """Run one driver with ``reader=<id>`` on every log record it (and its callbacks) makes."""
    logsetup.bind(reader=driver.reader_id)
    await driver.run()


def _presence_changes(
    events: Sequence[AnyEvent], observers: Mapping[str, float]
) -> list[MovementEvent]:
    """The movements that change stored presence. A scanner's sightings do not: they
    never depart, so restoring them as present RFID tracks would depart them falsely."""
    return [
        e for e in events if isinstance(e, Arrived | Moved | Departed) and e.reader not in observers
    ]


def run_agent(config: EdgeConfig) -> None:
    """Run the agent in a new event loop until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        agent = EdgeAgent(config)
        await agent.run(stop)

    asyncio.run(main())
