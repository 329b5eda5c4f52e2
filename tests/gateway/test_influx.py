"""The InfluxDB writer (both backends), its retry/reject/spool behaviour, and InfluxQuery.

Everything runs against a real influxd 1.6 (the ``influxd`` fixture). Faults InfluxDB
cannot be asked to produce (503, 429, 401, 413 ...) come from :class:`ScriptedProxy`,
a test-only HTTP server that answers scripted statuses and forwards the rest to influxd.
The v2 backend writes through :class:`~tests.support.v2proxy.V2CompatProxy`, an
emulation of InfluxDB 1.8's ``/api/v2/write`` compatibility endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tagtrail.clock import Clock, ManualClock, SystemClock
from tagtrail.events import Arrived, EpcIdentity, GtinSerialIdentity, Moved
from tagtrail.gateway import lineproto
from tagtrail.gateway.config import InfluxV1Config, InfluxV2Config, InfluxWriteConfig
from tagtrail.gateway.influx import (
    InfluxBackend,
    InfluxError,
    InfluxQuery,
    InfluxWriter,
    V1Backend,
    V2Backend,
    WriteOk,
    WriteRejected,
    WriteRetryable,
    classify,
    line_field_types,
    movements_query,
    offending_lines,
    quote_string,
)
from tests.support.influxd import Influxd
from tests.support.linequeue import SqliteLineQueue
from tests.support.v2proxy import Forwarded, ForwardingServer, V2CompatProxy

DB = "tagtrail"
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
EPC = "E200301666130121155074EF"


# -------------------------------------------------------------------------- helpers


class ScriptedProxy(ForwardingServer):
    """Test-only: answers ``/write`` with scripted statuses, then forwards to influxd.

    ``script`` statuses are used one per ``/write`` request, in order; ``rule(body)``
    may answer a status for a given body (checked first). Everything else is forwarded.
    """

    def __init__(
        self,
        upstream: str,
        script: list[int] | None = None,
        rule: Callable[[bytes], int | None] | None = None,
    ) -> None:
        self.script: deque[int] = deque(script or [])
        self.rule = rule
        self.answered: list[int] = []
        self._script_lock = threading.Lock()
        super().__init__(upstream)

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Forwarded | None:
        if urllib.parse.urlsplit(path).path == "/write":
            status = self.rule(body) if self.rule else None
            with self._script_lock:
                if status is None and self.script:
                    status = self.script.popleft()
                if status is not None:
                    self.answered.append(status)
            if status is not None:
                text = json.dumps({"error": f"scripted answer {status}"}).encode()
                return Forwarded(status, text, {"Content-Type": "application/json"})
        return self.forward(method, path, headers, body)

    def write_bodies(self) -> list[str]:
        return [
            body.decode()
            for _, path, _, body in list(self.requests)
            if urllib.parse.urlsplit(path).path == "/write"
        ]


async def wait_until(cond: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


def movement(
    n: int,
    *,
    epc: str | None = None,
    zone: str = "dock-1",
    rssi: float | None = -60.0,
    kind: str = "arrived",
    serial: str | None = None,
) -> Arrived | Moved:
    when = T0 + timedelta(milliseconds=n)
    identity: Any
    if serial is not None:
        identity = GtinSerialIdentity(scheme="gtin_serial", gtin="09506000134352", serial=serial)
        epc = None
    else:
        epc = epc or f"E200{n:020X}"
        identity = EpcIdentity(scheme="epc", epc=epc)
    common: dict[str, Any] = {
        "event_id": f"event-{n:08d}",
        "event_time": when,
        "site": "wh-1",
        "device": "edge-1",
        "reader": "door-a",
        "antenna": 1,
        "zone": zone,
        "identity": identity,
        "epc": epc,
        "first_seen": when - timedelta(seconds=1),
        "last_seen": when,
        "read_count": n % 50,
        "peak_rssi_dbm": rssi,
    }
    if kind == "moved":
        return Moved(kind="moved", from_zone="aisle-9", **common)
    return Arrived(kind="arrived", **common)


def lines_for(numbers: range, **kwargs: Any) -> list[str]:
    out = []
    for n in numbers:
        event = movement(n, **kwargs)
        out.append(lineproto.movement_line(event, lineproto.time_ns(event.event_time)))
    return out


def count_points(server: Influxd) -> int:
    rows = server.rows('SELECT count("read_count") FROM "movement"', DB)
    return int(rows[0]["count"]) if rows else 0


def event_ids(server: Influxd) -> set[str]:
    return {r["event_id"] for r in server.rows('SELECT "event_id" FROM "movement"', DB)}


def v1_config(url: str, **kwargs: Any) -> InfluxV1Config:
    return InfluxV1Config(backend="v1", url=url, database=DB, **kwargs)


def write_config(tmp_path: Path, **kwargs: Any) -> InfluxWriteConfig:
    values: dict[str, Any] = {
        "batch_size": 100,
        "flush_interval_s": 0.1,
        "timeout_s": 5.0,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.4,
        "reject_log": tmp_path / "rejects.jsonl",
    }
    values.update(kwargs)
    return InfluxWriteConfig(**values)


def rejects(config: InfluxWriteConfig) -> list[dict[str, Any]]:
    path = Path(config.reject_log)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteLineQueue]:
    with SqliteLineQueue(tmp_path / "queue.sqlite") as q:
        yield q


@contextlib.asynccontextmanager
async def running(
    backend: InfluxBackend,
    config: InfluxWriteConfig,
    queue: SqliteLineQueue,
    clock: Clock | None = None,
) -> AsyncIterator[InfluxWriter]:
    writer = InfluxWriter(backend, config, queue, clock=clock or SystemClock())
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        await writer.close(timeout_s=5.0)
        await backend.close()
        assert task.done()
        if not task.cancelled() and task.exception() is not None:
            raise AssertionError("writer.run() crashed") from task.exception()


# ------------------------------------------------------------ error text -> outcome


def test_line_field_types_reads_measurement_and_field_types() -> None:
    line = 'mov\\ e,zone=a\\,b epc="x,y=z \\"q\\"",n=3i,f=-1.5,u=7u,b=true,s\\ k="" 12'
    assert line_field_types(line) == (
        "mov e",
        {"epc": "string", "n": "integer", "f": "float", "u": "unsigned", "b": "boolean",
         "s k": "string"},
    )  # fmt: skip
    assert line_field_types("no-fields-here") is None


def test_offending_lines_from_influx_1_and_2_messages() -> None:
    good = lineproto.movement_line(movement(1), 1)
    conflict = lineproto.movement_series(movement(2)) + " rssi_dbm=-61i 2"
    other = "stock,site=a count=1.5 3"
    garbage = "this is not line protocol"
    lines = [good, conflict, other, garbage]
    # influxd 1.6, as observed: a type conflict hides parse errors in the same request
    msg = (
        'partial write: field type conflict: input field "rssi_dbm" on measurement '
        '"movement" is type integer, already exists as type float dropped=1'
    )
    found = offending_lines(msg, {"error": msg}, lines)
    assert found is not None
    assert found[0] == (conflict,)
    assert "rssi_dbm" in found[1][conflict]
    msg = f"partial write:\nunable to parse '{garbage}': invalid field format"
    found = offending_lines(msg, None, lines)
    assert found is not None
    assert found == ((garbage,), {garbage: "unable to parse: invalid field format"})
    assert (
        offending_lines("partial write: points beyond retention policy dropped=2", None, lines)
        is None
    )


def test_classify_maps_statuses() -> None:
    lines = ["m x=1 1", "bad"]
    assert isinstance(classify(204, "", {}, lines), WriteOk)
    for status in (429, 500, 502, 503, 504):
        out = classify(status, '{"error":"busy"}', {}, lines)
        assert isinstance(out, WriteRetryable)
        assert out.status == status
        assert "busy" in out.reason
    for status in (400, 401, 403, 404, 413, 422):
        out = classify(status, '{"code":"invalid","message":"nope"}', {}, lines)
        assert isinstance(out, WriteRejected)
        assert (out.status, out.lines) == (status, None)
        assert "nope" in out.reason  # 2.x error bodies carry "message"
    out = classify(400, json.dumps({"error": "unable to parse 'bad': missing fields"}), {}, lines)
    assert isinstance(out, WriteRejected)
    assert out.lines == ("bad",)
    out = classify(400, "", {"X-Influxdb-Error": "from header"}, lines)
    assert isinstance(out, WriteRejected)
    assert "from header" in out.reason


def test_influxql_literals_are_escaped() -> None:
    assert quote_string("a'b\\c\nd") == "'a\\'b\\\\c\\nd'"
    q = movements_query(epc="x' OR '1'='1", zone='z"', limit=5)
    assert "\"epc\" = 'x\\' OR \\'1\\'=\\'1'" in q
    assert q.endswith("ORDER BY time DESC LIMIT 5")
    with pytest.raises(InfluxError):
        movements_query(since=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InfluxError):
        movements_query(limit=0)


# --------------------------------------------------------------------- v1: batching


def test_batches_by_size_then_by_interval(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    clock = ManualClock()  # frozen: only the batch size can trigger a write
    config = write_config(tmp_path, batch_size=100, flush_interval_s=1.0)

    async def scenario() -> None:
        async with running(V1Backend(v1_config(influxd.url)), config, queue, clock) as writer:
            await wait_until(lambda: writer.stats.influx_ok, "database created")
            queue.enqueue_lines(lines_for(range(250)))
            writer.notify()
            await wait_until(lambda: writer.stats.batches == 2, "two full batches")
            assert writer.stats.points_written == 200
            assert queue.line_depth() == 50  # waits for the interval
            assert count_points(influxd) == 200
            clock.advance(1.0)
            writer.notify()
            await wait_until(lambda: queue.line_depth() == 0, "the rest after the interval")
            assert writer.stats.batches == 3
            assert writer.stats.points_written == 250
            assert writer.stats.last_write_latency_s is not None
            assert writer.stats.retries == 0

    asyncio.run(scenario())
    assert count_points(influxd) == 250


def test_interval_flush_by_the_timer_even_without_notify(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    config = write_config(tmp_path, batch_size=1000, flush_interval_s=0.2)

    async def scenario() -> None:
        async with running(V1Backend(v1_config(influxd.url)), config, queue) as writer:
            queue.enqueue_lines(lines_for(range(5)))  # no notify()
            await wait_until(lambda: queue.line_depth() == 0, "timer flush")
            assert writer.stats.batches == 1
            queue.enqueue_lines(lines_for(range(5, 12)))
            writer.notify()
            await wait_until(lambda: queue.line_depth() == 0, "interval flush")
            assert writer.stats.batches == 2
            assert writer.stats.points_written == 12

    asyncio.run(scenario())
    assert count_points(influxd) == 12


def test_lines_spooled_before_start_are_written_at_once(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    queue.enqueue_lines(lines_for(range(30)))
    config = write_config(tmp_path, batch_size=1000, flush_interval_s=60)

    async def scenario() -> None:
        clock = ManualClock()  # frozen: the interval never passes
        async with running(V1Backend(v1_config(influxd.url)), config, queue, clock) as writer:
            await wait_until(lambda: queue.line_depth() == 0, "spool drained")
            assert writer.stats.batches == 1

    asyncio.run(scenario())
    assert count_points(influxd) == 30


# ------------------------------------------------------------------- v1: outages


def test_influxd_outage_loses_nothing_and_backs_off(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    config = write_config(tmp_path, batch_size=50, retry_initial_s=0.1, retry_max_s=0.8)
    backoffs: list[float] = []

    async def sample(writer: InfluxWriter) -> None:
        while True:
            value = writer.stats.backoff_s
            if value and (not backoffs or backoffs[-1] != value):
                backoffs.append(value)
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        async with running(V1Backend(v1_config(influxd.url)), config, queue) as writer:
            sampler = asyncio.create_task(sample(writer))
            queue.enqueue_lines(lines_for(range(20)))
            writer.notify()
            await wait_until(lambda: queue.line_depth() == 0, "first points")
            await asyncio.to_thread(influxd.stop)
            outage_started = time.monotonic()
            queue.enqueue_lines(lines_for(range(20, 60)))
            writer.notify()
            await wait_until(lambda: writer.stats.retries >= 3, "retries")
            assert not writer.stats.influx_ok
            assert writer.stats.last_error is not None
            assert "connection" in writer.stats.last_error
            queue.enqueue_lines(lines_for(range(60, 130)))
            writer.notify()
            await wait_until(lambda: writer.stats.retries >= 6, "more retries")
            assert queue.line_depth() == 110  # the spool holds them all
            await asyncio.to_thread(influxd.start)
            outage_s = time.monotonic() - outage_started
            await wait_until(lambda: queue.line_depth() == 0, "spool drained after restart")
            assert writer.stats.influx_ok
            assert writer.stats.backoff_s == 0
            assert writer.stats.points_rejected == 0
            sampler.cancel()
            assert 2.5 < outage_s < 15  # a short outage, as intended
            retries = writer.stats.retries
        assert retries >= 6

    asyncio.run(scenario())
    assert event_ids(influxd) == {f"event-{n:08d}" for n in range(130)}
    assert count_points(influxd) == 130
    # exponential: 0.1, 0.2, 0.4, 0.8, then capped at 0.8
    assert backoffs[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(backoffs) == pytest.approx(0.8)


def test_readiness_recovers_while_idle(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    influxd.stop()
    config = write_config(tmp_path, flush_interval_s=0.1)

    async def scenario() -> None:
        async with running(V1Backend(v1_config(influxd.url)), config, queue) as writer:
            assert not writer.stats.influx_ok  # influxd is down: it cannot be
            await asyncio.to_thread(influxd.start)
            await wait_until(lambda: writer.stats.influx_ok, "ready again with nothing to write")
            assert writer.stats.batches == 0
        # the database was created by the idle check
        assert DB in {r["name"] for r in influxd.rows("SHOW DATABASES", DB)}

    asyncio.run(scenario())


def test_retries_503_and_429_then_writes(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    config = write_config(tmp_path)
    with ScriptedProxy(influxd.url, script=[503, 429]) as proxy:

        async def scenario() -> None:
            async with running(V1Backend(v1_config(proxy.url)), config, queue) as writer:
                queue.enqueue_lines(lines_for(range(10)))
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "written after retries")
                assert writer.stats.retries == 2
                assert writer.stats.last_error is not None
                assert "HTTP 429" in writer.stats.last_error
                assert writer.stats.points_rejected == 0

        asyncio.run(scenario())
        assert proxy.answered == [503, 429]
        bodies = proxy.write_bodies()
        assert len(bodies) == 3
        assert bodies[0] == bodies[1] == bodies[2]  # the same batch, in queue order
        assert bodies[0].splitlines() == lines_for(range(10))
    assert count_points(influxd) == 10
    assert rejects(config) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_rejected_never_retried(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path, status: int
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    config = write_config(tmp_path)
    refused = lines_for(range(10))
    with ScriptedProxy(influxd.url, script=[status]) as proxy:

        async def scenario() -> None:
            async with running(V1Backend(v1_config(proxy.url)), config, queue) as writer:
                queue.enqueue_lines(refused)
                writer.notify()
                await wait_until(lambda: writer.stats.points_rejected == 10, "rejected")
                assert queue.line_depth() == 0
                assert writer.stats.retries == 0
                assert len(proxy.write_bodies()) == 1
                if status != 400:
                    assert not writer.stats.influx_ok  # auth or URL problem
                # the writer goes on with the next lines
                queue.enqueue_lines(lines_for(range(10, 15)))
                writer.notify()
                await wait_until(lambda: writer.stats.points_written == 5, "later lines")
                assert writer.stats.influx_ok
                assert writer.stats.retries == 0

        asyncio.run(scenario())
        assert proxy.answered == [status]
        assert len(proxy.write_bodies()) == 2
    logged = rejects(config)
    assert [r["line"] for r in logged] == refused
    assert {r["status"] for r in logged} == {status}
    assert all(f"scripted answer {status}" in r["reason"] for r in logged)
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in logged)
    assert count_points(influxd) == 5


def test_bad_points_are_rejected_and_the_good_ones_in_the_batch_land(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    config = write_config(tmp_path, batch_size=100)
    # Same shard as the good points: 1.x checks field types per shard.
    stamp = lineproto.time_ns(movement(900).event_time)
    conflict = lineproto.movement_series(movement(900)) + f' rssi_dbm=-61i,event_id="bad" {stamp}'
    garbage = "this is not line protocol"
    good = lines_for(range(10, 20))
    batch = [*good[:4], conflict, *good[4:7], garbage, *good[7:]]
    with ScriptedProxy(influxd.url) as proxy:  # forwards everything; records requests

        async def scenario() -> None:
            async with running(V1Backend(v1_config(proxy.url)), config, queue) as writer:
                queue.enqueue_lines(lines_for(range(5)))  # rssi_dbm becomes a float field
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "first points")
                queue.enqueue_lines(batch)
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "bad batch handled")
                assert writer.stats.points_rejected == 2
                assert writer.stats.retries == 0
                assert writer.stats.influx_ok

        asyncio.run(scenario())
        bodies = proxy.write_bodies()
    logged = {r["line"]: r for r in rejects(config)}
    assert set(logged) == {conflict, garbage}
    assert logged[conflict]["status"] == 400
    assert "field type conflict" in logged[conflict]["reason"]
    assert "unable to parse" in logged[garbage]["reason"]
    # a rejected line is never sent again
    for bad in (conflict, garbage):
        last = max(i for i, body in enumerate(bodies) if bad in body.splitlines())
        assert all(bad not in body.splitlines() for body in bodies[last + 1 :])
    assert sum(conflict in body.splitlines() for body in bodies) == 1
    assert event_ids(influxd) == {f"event-{n:08d}" for n in [*range(5), *range(10, 20)]}


def test_413_splits_the_batch_and_rejects_only_a_point_too_large(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    config = write_config(tmp_path, batch_size=100)
    huge = lineproto.movement_series(movement(999)) + ' epc="HUGE",read_count=1i 99'

    def too_large(body: bytes) -> int | None:
        lines = body.decode().splitlines()
        return 413 if len(lines) > 4 or any("HUGE" in x for x in lines) else None

    lines = [*lines_for(range(6)), huge, *lines_for(range(6, 11))]
    with ScriptedProxy(influxd.url, rule=too_large) as proxy:

        async def scenario() -> None:
            async with running(V1Backend(v1_config(proxy.url)), config, queue) as writer:
                queue.enqueue_lines(lines)
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "split and written")
                assert writer.stats.points_written == 11
                assert writer.stats.points_rejected == 1
                assert writer.stats.batches >= 3
                assert writer.stats.retries == 0

        asyncio.run(scenario())
        assert all(len(b.splitlines()) <= 4 for b in proxy.write_bodies()[-3:])
    assert [(r["status"], r["line"]) for r in rejects(config)] == [(413, huge)]
    assert count_points(influxd) == 11


def test_a_dropped_database_is_created_again(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    config = write_config(tmp_path)

    async def scenario() -> None:
        async with running(V1Backend(v1_config(influxd.url)), config, queue) as writer:
            queue.enqueue_lines(lines_for(range(5)))
            writer.notify()
            await wait_until(lambda: queue.line_depth() == 0, "first points")
            await asyncio.to_thread(influxd.query, f"DROP DATABASE {DB}")
            queue.enqueue_lines(lines_for(range(5, 12)))
            writer.notify()
            await wait_until(lambda: queue.line_depth() == 0, "written again")
            assert writer.stats.points_rejected == 0
            assert writer.stats.retries >= 1

    asyncio.run(scenario())
    assert event_ids(influxd) == {f"event-{n:08d}" for n in range(5, 12)}


def test_unwritable_reject_log_keeps_the_lines_queued(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    config = write_config(tmp_path, reject_log=tmp_path)  # a directory: cannot append

    async def scenario() -> None:
        async with running(V1Backend(v1_config(influxd.url)), config, queue) as writer:
            queue.enqueue_lines(["this is not line protocol"])
            writer.notify()
            await wait_until(lambda: writer.stats.retries >= 2, "retries")
            assert queue.all_lines() == ["this is not line protocol"]
            assert writer.stats.points_rejected == 0
            assert writer.stats.last_error is not None
            assert "reject log" in writer.stats.last_error

    asyncio.run(scenario())
    assert queue.line_depth() == 1


def test_close_flushes_what_it_can_and_leaves_the_rest(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    config = write_config(tmp_path, batch_size=1000, flush_interval_s=60)

    async def scenario() -> None:
        clock = ManualClock()
        backend = V1Backend(v1_config(influxd.url))
        writer = InfluxWriter(backend, config, queue, clock=clock)
        task = asyncio.create_task(writer.run())
        await wait_until(lambda: writer.stats.influx_ok, "started")
        queue.enqueue_lines(lines_for(range(7)))
        writer.notify()
        assert queue.line_depth() == 7  # not due for a minute
        await writer.close(timeout_s=5.0)
        assert task.cancelled()
        assert queue.line_depth() == 0
        assert writer.stats.points_written == 7
        await backend.close()
        await backend.close()  # idempotent

        backend = V1Backend(v1_config(influxd.url))
        writer = InfluxWriter(backend, config, queue, clock=clock)
        task = asyncio.create_task(writer.run())
        await wait_until(lambda: writer.stats.influx_ok, "started again")
        await asyncio.to_thread(influxd.stop)
        queue.enqueue_lines(lines_for(range(7, 10)))
        writer.notify()
        await writer.close(timeout_s=1.0)
        assert task.cancelled()
        assert queue.line_depth() == 3  # left for the next start
        assert writer.stats.last_error is not None
        await backend.close()

    asyncio.run(scenario())
    influxd.start()
    assert count_points(influxd) == 7


# --------------------------------------------------------------------------- v2


def v2_config(url: str, bucket: str = f"{DB}/autogen") -> InfluxV2Config:
    return InfluxV2Config(
        backend="v2", url=url, org="tagtrail", bucket=bucket, token=SecretStr("writer:s3cret")
    )


def test_v2_backend_writes_through_the_1_8_compat_emulation(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    config = write_config(tmp_path, batch_size=25)
    garbage = "this is not line protocol"
    with V2CompatProxy(influxd.url) as proxy:

        async def scenario() -> None:
            backend = V2Backend(v2_config(proxy.url), timeout_s=5.0)
            async with running(backend, config, queue) as writer:
                await wait_until(lambda: writer.stats.influx_ok, "ping through the proxy")
                queue.enqueue_lines(lines_for(range(40), kind="moved"))
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "written through v2")
                assert writer.stats.batches == 2
                queue.enqueue_lines([*lines_for(range(40, 43)), garbage])
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "bad line handled")
                assert writer.stats.points_written == 43
                assert writer.stats.points_rejected == 1
                assert writer.stats.retries == 0
            await backend.close()  # again: idempotent

        asyncio.run(scenario())
        writes = [(p, h) for m, p, h, _ in proxy.requests if p.startswith("/api/v2/write")]
    assert len(writes) >= 4
    for path, headers in writes:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        assert query["bucket"] == [f"{DB}/autogen"]
        assert query["precision"] == ["ns"]
        assert query["org"] == ["tagtrail"]
        assert headers.get("Authorization") == "Token writer:s3cret"
    assert event_ids(influxd) == {f"event-{n:08d}" for n in range(43)}
    rows = influxd.rows('SHOW FIELD KEYS FROM "movement"', DB)
    types = {r["fieldKey"]: r["fieldType"] for r in rows}
    assert (types["rssi_dbm"], types["read_count"], types["from_zone"]) == (
        "float",
        "integer",
        "string",
    )
    assert [(r["line"], r["status"]) for r in rejects(config)] == [(garbage, 400)]


def test_v2_backend_keeps_lines_while_influxd_is_down(
    influxd: Influxd, queue: SqliteLineQueue, tmp_path: Path
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    config = write_config(tmp_path, retry_initial_s=0.1, retry_max_s=0.3)
    with V2CompatProxy(influxd.url) as proxy:

        async def scenario() -> None:
            backend = V2Backend(v2_config(proxy.url), timeout_s=5.0)
            async with running(backend, config, queue) as writer:
                await asyncio.to_thread(influxd.stop)
                queue.enqueue_lines(lines_for(range(15)))
                writer.notify()
                await wait_until(lambda: writer.stats.retries >= 3, "retries")
                assert queue.line_depth() == 15
                assert not writer.stats.influx_ok
                await asyncio.to_thread(influxd.start)
                await wait_until(lambda: queue.line_depth() == 0, "written after restart")
                assert writer.stats.points_rejected == 0

        asyncio.run(scenario())
    assert count_points(influxd) == 15


@pytest.mark.parametrize(("script", "retried"), [([503, 429], True), ([401], False)])
def test_v2_backend_maps_status_codes(
    influxd: Influxd,
    queue: SqliteLineQueue,
    tmp_path: Path,
    script: list[int],
    retried: bool,
) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    config = write_config(tmp_path)
    with (
        ScriptedProxy(influxd.url, script=script) as faults,
        V2CompatProxy(faults.url) as proxy,
    ):

        async def scenario() -> None:
            backend = V2Backend(v2_config(proxy.url), timeout_s=5.0)
            async with running(backend, config, queue) as writer:
                queue.enqueue_lines(lines_for(range(6)))
                writer.notify()
                await wait_until(lambda: queue.line_depth() == 0, "done")
                assert writer.stats.retries == (len(script) if retried else 0)
                assert writer.stats.points_rejected == (0 if retried else 6)

        asyncio.run(scenario())
        assert faults.answered == script
    assert count_points(influxd) == (6 if retried else 0)


# ------------------------------------------------------------------------- query


def _history() -> list[Arrived | Moved]:
    events: list[Arrived | Moved] = []
    for n in range(24):
        epc = ["E2000000000000000000000A", "E2000000000000000000000B"][n % 2]
        zone = ["dock-1", "dock-2", "aisle-3"][n % 3]
        rssi = None if n % 5 == 0 else -50.0 - n
        events.append(movement(n * 1000, epc=epc, zone=zone, rssi=rssi, kind="arrived"))
    events.append(movement(99_000, serial="O'Br\\ien\"1", zone="dock-1", kind="moved"))
    return events


def _write_history(server: Influxd) -> list[Arrived | Moved]:
    server.query(f"CREATE DATABASE {DB}")
    events = _history()
    lines = [lineproto.movement_line(e, lineproto.time_ns(e.event_time)) for e in events]
    server.write(DB, "\n".join(lines))
    return events


def _expected(events: list[Arrived | Moved], **filters: Any) -> list[dict[str, Any]]:
    since, until = filters.get("since"), filters.get("until")
    chosen = [
        e
        for e in events
        if (filters.get("epc") is None or (e.epc or e.item_key) == filters["epc"])
        and (filters.get("zone") is None or e.zone == filters["zone"])
        and (since is None or e.event_time >= since)
        and (until is None or e.event_time < until)
    ]
    chosen.sort(key=lambda e: e.event_time, reverse=True)
    return [
        {
            "time": e.event_time,
            "site": e.site,
            "device": e.device,
            "reader": e.reader,
            "zone": e.zone,
            "kind": e.kind,
            "epc": e.epc or e.item_key,
            "item": e.item_key,
            "from_zone": e.from_zone if isinstance(e, Moved) else None,
            "rssi_dbm": e.peak_rssi_dbm,
            "read_count": e.read_count,
            "event_id": e.event_id,
        }
        for e in chosen
    ][: filters.get("limit", 100)]


def test_movements_filter_sort_and_limit(influxd: Influxd) -> None:
    events = _write_history(influxd)
    since = T0 + timedelta(seconds=5)
    until = T0 + timedelta(seconds=17)
    cases: list[dict[str, Any]] = [
        {},
        {"epc": "E2000000000000000000000A"},
        {"zone": "dock-2"},
        {"since": since},
        {"until": until},
        {"since": since, "until": until},
        {"limit": 3},
        {"epc": "E2000000000000000000000B", "zone": "aisle-3", "limit": 2},
        {"epc": "E2000000000000000000000B", "since": since, "until": until, "zone": "dock-1"},
        {"epc": "E200FFFF"},
    ]

    async def scenario() -> list[list[dict[str, Any]]]:
        async with InfluxQuery(v1_config(influxd.url)) as query:
            return [await query.movements(**case) for case in cases]

    results = asyncio.run(scenario())
    for case, rows in zip(cases, results, strict=True):
        assert rows == _expected(events, **case), case
    everything = results[0]
    assert len(everything) == len(events)
    assert all(r["time"].tzinfo is not None for r in everything)
    assert all(isinstance(r["read_count"], int) for r in everything)
    assert all(r["rssi_dbm"] is None or isinstance(r["rssi_dbm"], float) for r in everything)
    assert [r["time"] for r in everything] == sorted((r["time"] for r in everything), reverse=True)


def test_movements_resist_injection(influxd: Influxd) -> None:
    events = _write_history(influxd)
    barcode = events[-1]
    attempts: list[dict[str, Any]] = [
        {"epc": "x' OR \"zone\" = 'dock-1"},
        {"epc": "x' OR 1=1 --"},
        {"zone": "dock-1' OR 'a'='a"},
        {"zone": 'dock-1" OR "zone" = "dock-2'},
        {"epc": "\\' OR \"kind\" = 'arrived"},
        {"epc": "a\nb\\"},
        {"epc": "'; DROP DATABASE tagtrail; SELECT '"},
    ]

    async def scenario() -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
        async with InfluxQuery(v1_config(influxd.url)) as query:
            found = [await query.movements(**a) for a in attempts]
            exact = await query.movements(epc=barcode.item_key)
            return found, exact

    found, exact = asyncio.run(scenario())
    assert found == [[] for _ in attempts]
    assert exact == _expected(events, epc=barcode.item_key)
    assert exact[0]["from_zone"] == "aisle-9"
    assert count_points(influxd) == len(events)  # nothing dropped


def test_query_with_a_v2_config_uses_the_bucket_and_a_token(influxd: Influxd) -> None:
    events = _write_history(influxd)

    async def scenario() -> list[dict[str, Any]]:
        async with InfluxQuery(v2_config(influxd.url, bucket=f"{DB}/autogen")) as query:
            assert (query.database, query.retention_policy) == (DB, "autogen")
            return await query.movements(zone="dock-1", limit=4)

    assert asyncio.run(scenario()) == _expected(events, zone="dock-1", limit=4)


def test_ping_and_query_errors(influxd: Influxd) -> None:
    async def scenario() -> None:
        async with InfluxQuery(v1_config(influxd.url)) as query:
            assert await query.ping()
            with pytest.raises(InfluxError, match="database not found"):
                await query.movements()
            await asyncio.to_thread(influxd.stop)
            assert not await query.ping()
            with pytest.raises(InfluxError):
                await query.movements(epc=EPC)

    asyncio.run(scenario())
