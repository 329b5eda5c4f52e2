"""The gateway process: consumer -> store (+ InfluxDB spool) -> writer, API and stream.

One asyncio loop runs it all:

* the :class:`~tagtrail.gateway.consumer.Consumer` receives events and calls
  :meth:`Gateway.apply`, which commits them to the :class:`SqliteStore` (positions,
  dedupe records and the InfluxDB points, in one transaction) before the MQTT messages
  are acknowledged, then wakes the writer and publishes position changes to the stream;
* the :class:`~tagtrail.gateway.influx.InfluxWriter` drains the spooled points to InfluxDB
  in batches, retrying while it is down;
* a task writes the ``stock`` measurement and the gateway's own ``gateway_stats``
  (messages, events, dead letters, InfluxDB writes, write latency, spool depth) every
  ``write.stock_interval_s``, and prunes old dedupe records;
* uvicorn serves the API in the same loop.

SIGTERM or SIGINT stop it cleanly: the consumer acknowledges what it applied and
disconnects, the writer makes a last attempt to flush (whatever remains stays spooled),
the API stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import uvicorn

from tagtrail.clock import Clock, SystemClock
from tagtrail.events import AnyEvent
from tagtrail.gateway import lineproto
from tagtrail.gateway.api import Broadcaster, create_app
from tagtrail.gateway.config import GatewayConfig
from tagtrail.gateway.consumer import Consumer
from tagtrail.gateway.influx import InfluxQuery, InfluxWriter, make_backend
from tagtrail.gateway.metrics import gateway_metrics
from tagtrail.gateway.store import SqliteStore
from tagtrail.metrics import MetricsServer, new_registry

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway stops it in order itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    """The wired gateway. ``run`` serves until ``stop`` is set (or a signal arrives)."""

    def __init__(self, config: GatewayConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.store = SqliteStore(
            config.store.path,
            synchronous=config.store.synchronous,
            clock=self.clock,
            dedupe_retention_s=config.store.dedupe_retention_s,
        )
        self.backend = make_backend(config.influx, timeout_s=config.write.timeout_s)
        self.writer = InfluxWriter(self.backend, config.write, self.store, clock=self.clock)
        self.query = InfluxQuery(config.influx, timeout_s=config.write.timeout_s)
        self.stream = Broadcaster(config.api.stream_queue)
        self.consumer = Consumer(config.mqtt, self.apply, now=self.clock.now)
        self.app = create_app(
            self.store, config.api, movements=self.query, health=self, stream=self.stream
        )
        self.api_port: int | None = None
        self._server: _Server | None = None
        self._stats_ts = 0
        self.metrics_port: int | None = None

    # -- wiring ---------------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent]) -> None:
        """Commit events (called by the consumer before it acknowledges them)."""
        result = self.store.apply(events)
        self.writer.notify()
        if result.changes:
            self.stream.publish(result.changes)

    def stats_line(self, now: datetime) -> str:
        """The gateway's counters as one ``gateway_stats`` point at ``now``."""
        consumer, writer = self.consumer.stats, self.writer.stats
        counters = {
            "messages": consumer.messages,
            "events": consumer.events,
            "dead_letters": consumer.dead_letters,
            "apply_failures": consumer.apply_failures,
            "points_written": writer.points_written,
            "points_rejected": writer.points_rejected,
            "write_retries": writer.retries,
            "spool_depth": self.store.line_depth(),
            "influx_ok": int(writer.influx_ok),
            "mqtt_connected": int(consumer.connected),
        }
        gauges: dict[str, float] = {}
        if writer.last_write_latency_s is not None:
            gauges["write_latency_ms"] = writer.last_write_latency_s * 1000.0
        ts = lineproto.time_ns(now)
        if ts <= self._stats_ts:
            ts = self._stats_ts + 1
        self._stats_ts = ts
        return lineproto.gateway_stats_line(self.config.mqtt.client_id, counters, gauges, ts)

    async def _start_metrics(self) -> MetricsServer | None:
        cfg = self.config.metrics
        if cfg.port is None:
            return None
        server = MetricsServer(new_registry(lambda: gateway_metrics(self)), cfg.host, cfg.port)
        self.metrics_port = await server.start()
        return server

    def readiness(self) -> dict[str, bool]:
        return {"mqtt": self.consumer.connected, "influxdb": self.writer.stats.influx_ok}

    async def _housekeeping(self) -> None:
        interval = self.config.write.stock_interval_s
        since_prune = 0.0
        while True:
            await asyncio.sleep(interval)
            now = self.clock.now()
            self.store.enqueue_lines([*self.store.stock_lines(now), self.stats_line(now)])
            self.writer.notify()
            since_prune += interval
            if since_prune >= PRUNE_EVERY_S:
                since_prune = 0.0
                self.store.prune_processed(self.clock.now())

    async def run(
        self, stop: asyncio.Event | None = None, on_ready: Callable[[str], None] | None = None
    ) -> None:
        """Serve until ``stop`` is set (or a task fails); then shut down in order."""
        api = self.config.api
        server = _Server(
            uvicorn.Config(
                self.app,
                host=api.host,
                port=api.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        self._server = server
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.writer.run(), name="influx-writer"),
            asyncio.create_task(self.consumer.run(), name="mqtt-consumer"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        metrics = await self._start_metrics()
        serving = asyncio.create_task(server.serve(), name="api")
        watchers: list[asyncio.Task[Any]] = [serving]
        if stop is not None:
            watchers.append(asyncio.create_task(stop.wait(), name="stop"))
        started = asyncio.create_task(self._announce(server, on_ready), name="announce")
        try:
            done, _ = await asyncio.wait([*watchers, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in tasks and not task.cancelled() and task.exception() is not None:
                    log.error("task %s failed", task.get_name(), exc_info=task.exception())
        finally:
            log.info("gateway stopping")
            started.cancel()
            await self.consumer.close()
            self.stream.close()  # SSE clients end their responses, so uvicorn can stop
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            await self.writer.close(timeout_s=5.0)
            if metrics is not None:
                await metrics.close()
            for task in [*tasks, *watchers]:
                task.cancel()
            for task in [*tasks, *watchers, started]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.query.close()
            await self.backend.close()
            self.store.close()
            log.info("gateway stopped")

    async def _announce(
        self, server: uvicorn.Server, on_ready: Callable[[str], None] | None
    ) -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
            await asyncio.sleep(0.02)
        sockets = [s for srv in server.servers for s in srv.sockets]
        self.api_port = int(sockets[0].getsockname()[1]) if sockets else self.config.api.port
        url = f"http://{self.config.api.host}:{self.api_port}"
        log.info("API listening on %s", url)
        if on_ready is not None:
            on_ready(url)


def run_gateway(config: GatewayConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Run a gateway in a new event loop until SIGTERM or SIGINT, then stop cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Gateway(config).run(stop, on_ready)

    asyncio.run(main())
