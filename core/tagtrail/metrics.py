"""Prometheus metrics for the edge agent and the gateway.

Each process keeps its counters where they already live (driver snapshots, publisher,
consumer and writer stats) and exposes them through a :class:`prometheus_client`
collector that reads them at scrape time, so the hot paths pay nothing for metrics. Latencies
are recorded into :class:`LatencyHistogram`, a small fixed-bucket histogram with no
dependencies, which the collectors export as Prometheus histograms.

:class:`MetricsServer` serves ``GET /metrics`` (Prometheus text format) on its own port from
the process's asyncio loop: no thread, no second web framework. It is off unless
``metrics.port`` is set in the config.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from tagtrail.errors import ConfigError

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the latency buckets; +Inf is implied."""

REQUEST_HEAD_LIMIT = 8192
REQUEST_TIMEOUT_S = 5.0


class MetricsConfig(BaseModel):
    """Where the Prometheus metrics endpoint listens (off unless ``port`` is set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="TCP port of the /metrics endpoint; null turns it off, 0 picks a free "
        "port (logged).",
    )
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; 0.0.0.0 lets a Prometheus on another host scrape.",
    )


class LatencyHistogram:
    """Counts of observations per bucket, their sum and count (seconds)."""

    __slots__ = ("buckets", "count", "counts", "total")

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError("buckets must be a non-empty ascending sequence")
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.count += 1
        self.total += seconds

    def family(self, name: str, doc: str, labels: dict[str, str] | None = None) -> Metric:
        """This histogram as a Prometheus metric family (cumulative buckets)."""
        family = HistogramMetricFamily(name, doc, labels=list(labels or {}))
        self.add_to(family, labels)
        return family

    def add_to(self, family: HistogramMetricFamily, labels: dict[str, str] | None) -> None:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            cumulative.append((repr(bound), running))
        cumulative.append(("+Inf", self.count))
        family.add_metric(list((labels or {}).values()), cumulative, self.total)


class CallbackCollector(Collector):
    """A collector whose metrics come from a function called at every scrape."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._collect())
        except Exception:
            logger.exception("collecting metrics failed")
            return []


class MetricsServer:
    """Serves ``registry`` at ``GET /metrics`` on ``host:port`` from the running loop."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; return the bound port. Raises :class:`ConfigError` if it can't bind."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                "metrics",
                [
                    (
                        "metrics.port",
                        f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                    )
                ],
            ) from exc
        sockets = self._server.sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.port
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, ctype = self._answer(head)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except OSError as exc:
            logger.debug("metrics client: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[str, bytes, str]:
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or len(head) > REQUEST_HEAD_LIMIT:
            return "400 Bad Request", b"bad request\n", "text/plain"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target != b"/metrics":
            return "404 Not Found", b"only /metrics here\n", "text/plain"
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", b"GET /metrics\n", "text/plain"
        body = generate_latest(self.registry)
        return "200 OK", b"" if method == b"HEAD" else body, CONTENT_TYPE_LATEST


def new_registry(collect: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """A registry holding one :class:`CallbackCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallbackCollector(collect))
    return registry


def labels_of(**labels: Any) -> dict[str, str]:
    return {k: str(v) for k, v in labels.items()}
