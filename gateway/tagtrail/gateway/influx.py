"""Writing line protocol to InfluxDB, and reading movement history back with InfluxQL.

The gateway never hands events to this module. When it applies an event it commits the
event's line-protocol point (see :mod:`tagtrail.gateway.lineproto`) into the positions
store's point queue in the same transaction as the position, before the MQTT ack. That
queue is the disk spool: :class:`InfluxWriter` drains it through a :class:`LineQueue`
and deletes lines only once InfluxDB accepted them or they were put in the reject log.

Write backends (one small interface, :class:`InfluxBackend`):

* :class:`V1Backend`: ``POST /write?db=&rp=&precision=ns`` with basic auth (httpx). 1.x
  natively; 2.x and 3.x serve it too. ``CREATE DATABASE`` at start when configured.
* :class:`V2Backend`: influxdb-client's synchronous write API, run in a worker thread
  (1.8+, 2.x, 3.x: url, org, bucket, token).

Both map an answer to one :data:`WriteOutcome`:

* 2xx: :class:`WriteOk`;
* 429, 5xx, timeouts, connection errors: :class:`WriteRetryable`. The lines stay queued
  and the writer retries with exponential backoff;
* any other 4xx: :class:`WriteRejected`, never retried. When InfluxDB names the bad
  points (``unable to parse '<line>'``, or ``field type conflict: input field "f" on
  measurement "m" is type T``), only those lines are rejected and the rest is written
  again at once; otherwise the whole batch is. A 413 (request too large) splits the batch
  in halves first and rejects only a single line that is still too large.

Rejected points go to ``reject_log``, one JSON object a line
(``{"time", "status", "reason", "line"}``), fsynced before they leave the queue.

:class:`InfluxQuery` runs InfluxQL through ``/query``, which 1.x serves, 2.x serves for
buckets with a DBRP mapping and 3.x serves natively.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import httpx
import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from tagtrail.clock import Clock
from tagtrail.errors import TagtrailError
from tagtrail.gateway.config import InfluxV1Config, InfluxV2Config, InfluxWriteConfig
from tagtrail.gateway.lineproto import time_ns
from tagtrail.metrics import LatencyHistogram

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_REASON_MAX = 1000
"""Longest error text kept as a reason (a 400 can quote thousands of lines)."""


class InfluxError(TagtrailError):
    """InfluxDB could not be reached or refused a query."""


class LineQueue(Protocol):
    """The durable queue of line-protocol points waiting for InfluxDB (the disk spool).

    The positions store implements it; ``line_depth`` is called on every wake-up of the
    writer, so it should be cheap.
    """

    def pending_lines(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` ``(seq, line)`` pairs, oldest first."""
        ...

    def lines_done(self, seqs: Sequence[int]) -> None:
        """Delete these lines: written, or rejected and logged."""
        ...

    def line_depth(self) -> int:
        """Lines waiting."""
        ...

    def enqueue_lines(self, lines: Sequence[str]) -> None:
        """Append lines (committed when this returns)."""
        ...


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class WriteOk:
    """InfluxDB accepted every line."""


@dataclass(frozen=True)
class WriteRetryable:
    """Nothing can be said about the lines; write them again later."""

    reason: str
    status: int | None = None
    """HTTP status, when there was an answer (429, 5xx)."""


@dataclass(frozen=True)
class WriteRejected:
    """InfluxDB refused the request with a 4xx; rejected lines are never retried."""

    status: int
    reason: str
    lines: tuple[str, ...] | None = None
    """The offending lines when InfluxDB named them; ``None``: the whole batch."""
    line_reasons: Mapping[str, str] = field(default_factory=dict)
    """A more specific reason per offending line, when InfluxDB gave one."""


WriteOutcome = WriteOk | WriteRetryable | WriteRejected


# ------------------------------------------------------------ error text -> outcomes

_PARSE_PREFIX = "unable to parse '"
_CONFLICT_RE = re.compile(
    r'input field "((?:[^"\\]|\\.)*)" on measurement "((?:[^"\\]|\\.)*)" is type (\w+)'
)
_KEY_UNESCAPE_RE = re.compile(r"\\([,= ])")
_BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})


def _go_unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _value_type(value: str) -> str:
    """InfluxDB's name for the type of a line-protocol field value."""
    if value.startswith('"'):
        return "string"
    if value.endswith("i"):
        return "integer"
    if value.endswith("u"):
        return "unsigned"
    if value in _BOOLEANS:
        return "boolean"
    return "float"


def line_field_types(line: str) -> tuple[str, dict[str, str]] | None:
    """Measurement and ``{field: type}`` of one line-protocol line; ``None`` if malformed.

    Only as much parsing as matching a type-conflict message needs.
    """
    n = len(line)
    i = 0
    while i < n and line[i] != " ":
        i += 2 if line[i] == "\\" else 1
    if i >= n:
        return None
    key = line[:i]
    j = 0
    while j < len(key) and key[j] != ",":
        j += 2 if key[j] == "\\" else 1
    measurement = _KEY_UNESCAPE_RE.sub(r"\1", key[:j])
    i += 1
    parts: list[str] = []
    start = i
    in_string = False
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if in_string:
            if c == '"':
                in_string = False
        elif c == '"' and line[i - 1] == "=":
            in_string = True
        elif c == ",":
            parts.append(line[start:i])
            start = i + 1
        elif c == " ":
            break
        i += 1
    parts.append(line[start:i])
    fields: dict[str, str] = {}
    for part in parts:
        k = 0
        while k < len(part) and part[k] != "=":
            k += 2 if part[k] == "\\" else 1
        if k >= len(part) or k == 0:
            return None
        fields[_KEY_UNESCAPE_RE.sub(r"\1", part[:k])] = _value_type(part[k + 1 :])
    return measurement, fields


def offending_lines(
    message: str, body: Any, lines: Sequence[str]
) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """The lines of ``lines`` that an InfluxDB 400 names, with a reason for each.

    Understands ``unable to parse '<line>': <why>`` (1.x, 2.x), ``field type conflict:
    input field "f" on measurement "m" is type T`` (1.x, 2.x) and a JSON body listing
    the failing lines as ``data: [{"original_line": ..., "error_message": ...}]``.
    ``None`` when it names none of them.
    """
    wanted: dict[str, str] = {}
    for part in message.split("\n"):
        at = part.find(_PARSE_PREFIX)
        if at < 0:
            continue
        text, sep, why = part[at + len(_PARSE_PREFIX) :].rpartition("': ")
        if sep:
            wanted[text.strip()] = f"unable to parse: {why.strip()}"
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        for item in body["data"]:
            if isinstance(item, dict) and isinstance(item.get("original_line"), str):
                detail = item.get("error_message")
                wanted[item["original_line"].strip()] = str(detail) if detail else message
    conflicts = [
        (_go_unquote(m.group(2)), _go_unquote(m.group(1)), m.group(3))
        for m in _CONFLICT_RE.finditer(message)
    ]
    if not wanted and not conflicts:
        return None
    found: list[str] = []
    reasons: dict[str, str] = {}
    for line in lines:
        stripped = line.strip()
        if stripped in wanted:
            found.append(line)
            reasons[line] = wanted[stripped]
            continue
        if conflicts:
            parsed = line_field_types(line)
            if parsed is None:
                continue
            measurement, types = parsed
            for c_measurement, c_field, c_type in conflicts:
                if measurement == c_measurement and types.get(c_field) == c_type:
                    found.append(line)
                    reasons[line] = (
                        f"field type conflict: field {c_field!r} of {c_measurement!r} "
                        f"written as {c_type}"
                    )
                    break
    if not found:
        return None
    return tuple(found), reasons


def _error_text(status: int, text: str, headers: Mapping[str, str]) -> tuple[str, Any]:
    """The error message of an InfluxDB answer (1.x ``error``, 2.x ``message``)."""
    body: Any = None
    message = ""
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("error") or body.get("message") or "")
        if not message:
            message = text.strip()
    if not message:
        message = str(headers.get("X-Influxdb-Error") or headers.get("X-Influx-Error") or "")
    return (message or f"HTTP {status}"), body


def classify(
    status: int, text: str, headers: Mapping[str, str], lines: Sequence[str]
) -> WriteOutcome:
    """Map an InfluxDB write answer to an outcome (see the module docstring)."""
    if 200 <= status < 300:
        return WriteOk()
    message, body = _error_text(status, text, headers)
    reason = f"HTTP {status}: {message}"
    if status == 429 or status >= 500:
        return WriteRetryable(reason[:_REASON_MAX], status)
    if 400 <= status < 500:
        named = offending_lines(message, body, lines) if status == 400 else None
        if named is None:
            return WriteRejected(status, reason[:_REASON_MAX])
        bad, reasons = named
        return WriteRejected(status, reason[:_REASON_MAX], bad, reasons)
    # 1xx/3xx: a proxy or a wrong URL, not a problem of the points.
    return WriteRetryable(f"unexpected {reason}"[:_REASON_MAX], status)


# ------------------------------------------------------------------------- backends


class InfluxBackend(Protocol):
    """One way of writing line protocol to InfluxDB."""

    async def prepare(self) -> bool:
        """Make the target ready (create the database where configured); True if it answered."""
        ...

    async def write(self, lines: list[str]) -> WriteOutcome:
        """Write the lines in one request. Never raises for InfluxDB or network trouble."""
        ...

    async def ping(self) -> bool:
        """True if InfluxDB answers ``/ping``."""
        ...

    async def close(self) -> None:
        """Release connections; waits for a write in progress."""
        ...


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted and escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal, single-quoted and escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


class V1Backend:
    """``POST /write`` of the 1.x HTTP API, with basic auth (httpx)."""

    def __init__(self, config: InfluxV1Config, *, timeout_s: float = 10.0) -> None:
        self.config = config
        auth = (
            httpx.BasicAuth(
                config.username,
                config.password.get_secret_value() if config.password else "",
            )
            if config.username
            else None
        )
        self._client = httpx.AsyncClient(base_url=config.url, auth=auth, timeout=timeout_s)
        self._params = {"db": config.database, "precision": "ns"}
        if config.retention_policy:
            self._params["rp"] = config.retention_policy
        self._database_ready = not config.create_database

    async def create_database(self) -> WriteOutcome:
        """``CREATE DATABASE`` through ``/query`` (idempotent on 1.x)."""
        query = f"CREATE DATABASE {quote_ident(self.config.database)}"
        try:
            resp = await self._client.post("/query", params={"q": query})
        except httpx.HTTPError as exc:
            return WriteRetryable(f"create database: {type(exc).__name__}: {exc}")
        outcome = classify(resp.status_code, resp.text, resp.headers, [])
        if isinstance(outcome, WriteOk):
            try:
                results = resp.json().get("results", [])
            except ValueError:
                results = []
            errors = [r["error"] for r in results if isinstance(r, dict) and "error" in r]
            if errors:
                return WriteRejected(resp.status_code, f"create database: {errors[0]}")
        return outcome

    async def _ensure_database(self) -> WriteOutcome:
        if self._database_ready:
            return WriteOk()
        outcome = await self.create_database()
        if isinstance(outcome, WriteRetryable):
            return outcome
        if isinstance(outcome, WriteRejected):
            # e.g. a user without admin rights: the writes will tell what is wrong
            logger.warning("could not create database %r: %s", self.config.database, outcome)
        self._database_ready = True
        return WriteOk()

    async def prepare(self) -> bool:
        if not self._database_ready:
            return isinstance(await self._ensure_database(), WriteOk)
        return await self.ping()

    async def write(self, lines: list[str]) -> WriteOutcome:
        ready = await self._ensure_database()
        if not isinstance(ready, WriteOk):
            return ready
        body = "\n".join(lines).encode()
        try:
            resp = await self._client.post(
                "/write",
                params=self._params,
                content=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except httpx.TimeoutException as exc:
            return WriteRetryable(f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return WriteRetryable(f"connection: {type(exc).__name__}: {exc}")
        outcome = classify(resp.status_code, resp.text, resp.headers, lines)
        if (
            isinstance(outcome, WriteRejected)
            and outcome.status == 404
            and "database not found" in outcome.reason
            and self.config.create_database
        ):
            # Dropped while we run: create it again rather than reject every point.
            self._database_ready = False
            return WriteRetryable(f"{outcome.reason}; creating it again", 404)
        return outcome

    async def ping(self) -> bool:
        try:
            resp = await self._client.get("/ping")
        except httpx.HTTPError:
            return False
        return resp.is_success

    async def close(self) -> None:
        """Idempotent."""
        await self._client.aclose()


class V2Backend:
    """influxdb-client's v2 write API (``/api/v2/write``), blocking, in a worker thread."""

    def __init__(self, config: InfluxV2Config, *, timeout_s: float = 10.0) -> None:
        self.config = config
        self._timeout_s = timeout_s
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token.get_secret_value() if config.token else "",
            org=config.org,
            timeout=max(1, int(timeout_s * 1000)),
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._busy: asyncio.Future[Any] | None = None
        self._closed = False

    def _write_blocking(self, lines: list[str]) -> WriteOutcome:
        try:
            self._write_api.write(
                bucket=self.config.bucket,
                org=self.config.org,
                record=lines,
                write_precision=cast(WritePrecision, WritePrecision.NS),
            )
        except ApiException as exc:
            raw = exc.body
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
            headers = {str(k): str(v) for k, v in (exc.headers or {}).items()}
            if exc.status is None:
                return WriteRetryable(f"no answer: {exc.reason}")
            return classify(int(exc.status), text, headers, lines)
        except urllib3.exceptions.TimeoutError as exc:
            return WriteRetryable(f"timeout: {type(exc).__name__}")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return WriteRetryable(f"connection: {type(exc).__name__}: {exc}")
        return WriteOk()

    def _ping_blocking(self) -> bool:
        try:
            return bool(self._client.ping())
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return False

    async def _in_thread(self, fn: Callable[[], _T]) -> _T:
        # A thread cannot be cancelled: shield it, and let close() wait for it.
        future = asyncio.get_running_loop().run_in_executor(None, fn)
        self._busy = future
        return await asyncio.shield(future)

    async def prepare(self) -> bool:
        return await self.ping()

    async def write(self, lines: list[str]) -> WriteOutcome:
        return await self._in_thread(functools.partial(self._write_blocking, list(lines)))

    async def ping(self) -> bool:
        return await self._in_thread(self._ping_blocking)

    async def close(self) -> None:
        """Waits for a write in progress (at most the timeout); idempotent."""
        if self._closed:
            return
        if self._busy is not None and not self._busy.done():
            await asyncio.wait([self._busy], timeout=self._timeout_s + 1.0)
        self._closed = True
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def make_backend(
    config: InfluxV1Config | InfluxV2Config, *, timeout_s: float = 10.0
) -> V1Backend | V2Backend:
    """The backend ``config.backend`` names; ``timeout_s`` per HTTP request."""
    if isinstance(config, InfluxV1Config):
        return V1Backend(config, timeout_s=timeout_s)
    return V2Backend(config, timeout_s=timeout_s)


# --------------------------------------------------------------------------- writer


@dataclass
class WriterStats:
    """Counters and state of an :class:`InfluxWriter`."""

    points_written: int = 0
    """Lines InfluxDB accepted (a line written again after a timeout counts again)."""
    points_rejected: int = 0
    """Lines put in the reject log."""
    batches: int = 0
    """Successful write requests."""
    retries: int = 0
    """Write attempts that failed and will be retried (429, 5xx, timeouts, no connection)."""
    last_error: str | None = None
    """Latest failure or rejection, human-readable; kept after a recovery."""
    last_write_latency_s: float | None = None
    """Duration of the latest successful write request, by the injected clock."""
    write_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Durations of successful write requests, seconds."""
    influx_ok: bool = False
    """InfluxDB took our latest write (or answered at start). False after a retryable
    failure or an auth/not-found rejection of a whole batch, until a write succeeds."""
    backoff_s: float = 0.0
    """The current wait before retrying; 0 while writes succeed."""


Row = tuple[int, str]


class InfluxWriter:
    """Drains a :class:`LineQueue` into InfluxDB in batches until cancelled.

    A batch of up to ``batch_size`` lines is written when that many wait, or when the
    oldest waiting line has waited ``flush_interval_s`` (by the injected clock; lines
    found queued at start are due at once). Call :meth:`notify` after committing lines.
    The backend stays the caller's: close it after :meth:`close`.
    """

    def __init__(
        self,
        backend: InfluxBackend,
        write: InfluxWriteConfig,
        queue: LineQueue,
        *,
        clock: Clock,
    ) -> None:
        self._backend = backend
        self._config = write
        self._queue = queue
        self._clock = clock
        self.stats = WriterStats()
        self._wake = asyncio.Event()
        self._oldest_at: float | None = None
        self._failures = 0
        self._task: asyncio.Task[Any] | None = None
        self._closed = False
        # While idle and not ok, ask the backend whether InfluxDB is back; not after an
        # auth/not-found rejection, which only a successful write clears.
        self._probe_when_idle = True

    def notify(self) -> None:
        """Lines were committed to the queue. Cheap; call it from the event loop thread."""
        if self._oldest_at is None:
            self._oldest_at = self._clock.monotonic()
        self._wake.set()

    async def run(self) -> None:
        """Write until cancelled (or :meth:`close`)."""
        self._task = asyncio.current_task()
        self.stats.influx_ok = await self._backend.prepare()
        if self._queue.line_depth() > 0:
            # Spooled before we started: they have waited long enough.
            self._oldest_at = self._clock.monotonic() - self._config.flush_interval_s
        while True:
            await self._wait_until_due()
            await self._write_one_batch()

    async def _wait_until_due(self) -> None:
        interval = self._config.flush_interval_s
        while True:
            self._wake.clear()
            depth = self._queue.line_depth()
            now = self._clock.monotonic()
            if depth == 0:
                self._oldest_at = None
                timeout = interval
            else:
                if self._oldest_at is None:  # enqueued without notify()
                    self._oldest_at = now
                waited = now - self._oldest_at
                if depth >= self._config.batch_size or waited >= interval:
                    return
                timeout = min(interval, interval - waited)
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                if depth == 0 and not self.stats.influx_ok and self._probe_when_idle:
                    self.stats.influx_ok = await self._backend.prepare()

    async def _write_one_batch(self) -> None:
        """Write the oldest batch, retrying with backoff until it is done."""
        while True:
            rows = self._queue.pending_lines(self._config.batch_size)
            if len(rows) < self._config.batch_size:
                self._oldest_at = None  # all that waited is in this batch
            if not rows:
                return
            failure = await self._write_rows(rows)
            if failure is None:
                self._failures = 0
                self.stats.backoff_s = 0.0
                return
            self._failures += 1
            self.stats.retries += 1
            self.stats.influx_ok = False
            self.stats.last_error = failure.reason
            delay = min(
                self._config.retry_max_s,
                self._config.retry_initial_s * 2.0 ** min(self._failures - 1, 60),
            )
            self.stats.backoff_s = delay
            logger.warning(
                "InfluxDB write of %d lines failed (%s); retry %d in %.2f s, %d lines queued",
                len(rows),
                failure.reason,
                self._failures,
                delay,
                self._queue.line_depth(),
            )
            await asyncio.sleep(delay)

    async def _write_rows(self, rows: list[Row]) -> WriteRetryable | None:
        """Write rows, splitting on 413 and dropping named bad lines; None when all done."""
        work: deque[list[Row]] = deque([rows])
        while work:
            chunk = work.popleft()
            lines = [line for _, line in chunk]
            started = self._clock.monotonic()
            outcome = await self._backend.write(lines)
            if isinstance(outcome, WriteOk):
                self._queue.lines_done([seq for seq, _ in chunk])
                self.stats.points_written += len(chunk)
                self.stats.batches += 1
                latency = self._clock.monotonic() - started
                self.stats.last_write_latency_s = latency
                self.stats.write_latency.observe(latency)
                self.stats.influx_ok = True
                self._probe_when_idle = True
                continue
            if isinstance(outcome, WriteRetryable):
                return outcome
            if outcome.status == 413 and len(chunk) > 1:
                half = len(chunk) // 2
                work.appendleft(chunk[half:])
                work.appendleft(chunk[:half])
                continue
            rejected = chunk
            if outcome.lines:
                named = set(outcome.lines)
                bad = [row for row in chunk if row[1] in named]
                if bad and len(bad) < len(chunk):
                    rejected = bad
                    bad_seqs = {seq for seq, _ in bad}
                    work.appendleft([row for row in chunk if row[0] not in bad_seqs])
            elif outcome.status in (401, 403, 404):
                self.stats.influx_ok = False
                self._probe_when_idle = False
            failure = self._reject(rejected, outcome)
            if failure is not None:
                return failure
        return None

    def _reject(self, rows: list[Row], outcome: WriteRejected) -> WriteRetryable | None:
        """Log rejected rows durably, then drop them from the queue."""
        now = self._clock.now().isoformat()
        text = "".join(
            json.dumps(
                {
                    "time": now,
                    "status": outcome.status,
                    "reason": outcome.line_reasons.get(line, outcome.reason),
                    "line": line,
                },
                ensure_ascii=False,
            )
            + "\n"
            for _, line in rows
        )
        path = Path(self._config.reject_log)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as log:
                log.write(text)
                log.flush()
                os.fsync(log.fileno())
        except OSError as exc:
            # Keep the lines queued rather than lose them.
            return WriteRetryable(f"reject log {path}: {exc}")
        self._queue.lines_done([seq for seq, _ in rows])
        self.stats.points_rejected += len(rows)
        self.stats.last_error = outcome.reason
        logger.error(
            "InfluxDB rejected %d lines (%s); logged to %s", len(rows), outcome.reason, path
        )
        return None

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop :meth:`run` and write what is queued within ``timeout_s``.

        Lines not written in time stay queued for the next start. The backend is left
        open (its owner closes it).
        """
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    rows = self._queue.pending_lines(self._config.batch_size)
                    if not rows:
                        break
                    failure = await self._write_rows(rows)
                    if failure is not None:
                        self.stats.last_error = failure.reason
                        break
        except TimeoutError:
            logger.warning("final InfluxDB flush timed out after %.1f s", timeout_s)
        left = self._queue.line_depth()
        if left:
            logger.warning("%d lines stay queued for InfluxDB", left)


# ---------------------------------------------------------------------------- query

MOVEMENT_COLUMNS = (
    "site",
    "device",
    "reader",
    "zone",
    "kind",
    "epc",
    "item",
    "from_zone",
    "rssi_dbm",
    "read_count",
    "event_id",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware_ns(name: str, ts: datetime) -> int:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InfluxError(f"{name} must be a timezone-aware datetime")
    return time_ns(ts)


def movements_query(
    *,
    epc: str | None = None,
    zone: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> str:
    """The InfluxQL for :meth:`InfluxQuery.movements`; ``since`` inclusive, ``until`` not."""
    if limit < 1:
        raise InfluxError("limit must be at least 1")
    conditions: list[str] = []
    if since is not None:
        conditions.append(f"time >= {_aware_ns('since', since)}")
    if until is not None:
        conditions.append(f"time < {_aware_ns('until', until)}")
    if epc is not None:
        conditions.append(f"{quote_ident('epc')} = {quote_string(epc)}")
    if zone is not None:
        conditions.append(f"{quote_ident('zone')} = {quote_string(zone)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    columns = ",".join(quote_ident(c) for c in MOVEMENT_COLUMNS)
    # Every identifier and literal is quoted and escaped above: no injection.
    return (
        f"SELECT {columns} FROM {quote_ident('movement')}{where}"  # noqa: S608
        f" ORDER BY time DESC LIMIT {int(limit)}"
    )


class InfluxQuery:
    """InfluxQL through the v1 ``/query`` endpoint (1.x; 2.x with DBRP; 3.x).

    For a v2 config the bucket ``db/rp`` gives the database and retention policy and the
    token goes in an ``Authorization: Token`` header.
    """

    def __init__(self, config: InfluxV1Config | InfluxV2Config, *, timeout_s: float = 10.0) -> None:
        auth: httpx.BasicAuth | None = None
        headers: dict[str, str] = {}
        if isinstance(config, InfluxV1Config):
            database, rp = config.database, config.retention_policy
            if config.username:
                password = config.password.get_secret_value() if config.password else ""
                auth = httpx.BasicAuth(config.username, password)
        else:
            database, _, rp_text = config.bucket.partition("/")
            rp = rp_text or None
            if config.token is not None:
                headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        self.database = database
        self.retention_policy = rp
        self._client = httpx.AsyncClient(
            base_url=config.url, auth=auth, headers=headers, timeout=timeout_s
        )

    async def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; rows of every series as column -> value dicts."""
        params = {"db": self.database, "q": influxql, "epoch": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        try:
            resp = await self._client.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise InfluxError(f"InfluxDB query failed: {type(exc).__name__}: {exc}") from exc
        message, body = _error_text(resp.status_code, resp.text, resp.headers)
        if not resp.is_success or not isinstance(body, dict):
            raise InfluxError(f"InfluxDB query failed: HTTP {resp.status_code}: {message}")
        rows: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxDB query failed: {result['error']}")
            for series in result.get("series", []):
                columns = series["columns"]
                rows.extend(dict(zip(columns, values, strict=True)) for values in series["values"])
        return rows

    async def movements(
        self,
        *,
        epc: str | None = None,
        zone: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Movement points, newest first: ``time`` (aware datetime, UTC) and
        :data:`MOVEMENT_COLUMNS`; ``rssi_dbm`` float or None, ``read_count`` int."""
        raw = await self.query(
            movements_query(epc=epc, zone=zone, since=since, until=until, limit=limit)
        )
        out: list[dict[str, Any]] = []
        for row in raw:
            item: dict[str, Any] = {"time": _EPOCH + timedelta(microseconds=row["time"] // 1000)}
            for column in MOVEMENT_COLUMNS:
                item[column] = row.get(column)
            if item["rssi_dbm"] is not None:
                item["rssi_dbm"] = float(item["rssi_dbm"])
            if item["read_count"] is not None:
                item["read_count"] = int(item["read_count"])
            out.append(item)
        return out

    async def ping(self) -> bool:
        """True if InfluxDB answers ``/ping``."""
        try:
            resp = await self._client.get("/ping")
        except httpx.HTTPError:
            return False
        return resp.is_success

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> InfluxQuery:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = [
    "InfluxBackend",
    "InfluxError",
    "InfluxQuery",
    "InfluxWriter",
    "LineQueue",
    "V1Backend",
    "V2Backend",
    "WriteOk",
    "WriteOutcome",
    "WriteRejected",
    "WriteRetryable",
    "WriterStats",
    "classify",
    "make_backend",
    "movements_query",
    "offending_lines",
    "quote_ident",
    "quote_string",
]
