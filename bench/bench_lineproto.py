"""Line protocol for movement events: hand-built strings vs influxdb_client.Point.

Run: ``.venv/bin/python bench/bench_lineproto.py [--events N] [--repeats N]``

Builds N movement events (arrived / moved / departed, EPC and barcode items, RSSI known
or not), then times, best of several runs (``time.perf_counter``):

* ``lineproto.movement_line`` (the gateway's hot path);
* the baseline, measured in the same run: an ``influxdb_client.Point`` with the same
  measurement, tags, fields and nanosecond timestamp, serialised with
  ``to_line_protocol()``.

Both produce the same points (checked on every event: same series, fields, values and
types once parsed), so the ratio compares like with like.

With ``--influxd`` it also starts a private influxd (Debian's 1.6, temporary directory,
free port) and measures how fast :class:`~tagtrail.gateway.influx.InfluxWriter` with the
v1 backend drains the same lines from an in-memory queue in ``--batch`` line batches,
against a bare httpx loop posting the same batches (baseline, same run; rounds alternate,
a fresh database each, best of ``--rounds``), and checks that influxd holds every point.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from tagtrail.clock import SystemClock
from tagtrail.events import Arrived, Departed, EpcIdentity, Moved, SsccIdentity
from tagtrail.gateway.config import InfluxV1Config, InfluxWriteConfig
from tagtrail.gateway.influx import InfluxWriter, V1Backend, line_field_types
from tagtrail.gateway.lineproto import movement_line, time_ns

Movement = Arrived | Moved | Departed
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def build_events(n: int, seed: int = 11) -> list[tuple[Movement, int]]:
    rnd = random.Random(seed)
    zones = [f"zone-{i}" for i in range(12)]
    out: list[tuple[Movement, int]] = []
    for i in range(n):
        when = T0 + timedelta(microseconds=i * 250)
        identity: Any
        if i % 10 == 9:
            identity = SsccIdentity(scheme="sscc", sscc="106141411234567897")
            epc = None
        else:
            epc = f"E200{rnd.getrandbits(80):020X}"
            identity = EpcIdentity(scheme="epc", epc=epc)
        common: dict[str, Any] = {
            "event_id": f"{i:08x}-5d07-4c8e-9a53-2f0e8d9b1a11",
            "event_time": when,
            "site": "wh-1",
            "device": f"edge-{i % 3}",
            "reader": f"door-{i % 4}",
            "antenna": 1 + i % 4,
            "zone": rnd.choice(zones),
            "identity": identity,
            "epc": epc,
            "first_seen": when - timedelta(seconds=3),
            "last_seen": when,
            "read_count": rnd.randrange(1, 500),
            "peak_rssi_dbm": None if i % 7 == 0 else float(rnd.randrange(-80, -30)),
        }
        event: Movement
        kind = i % 3
        if kind == 0:
            event = Arrived(kind="arrived", **common)
        elif kind == 1:
            from_zone = next(z for z in zones if z != common["zone"])
            event = Moved(kind="moved", from_zone=from_zone, **common)
        else:
            event = Departed(kind="departed", **common)
        out.append((event, time_ns(when)))
    return out


def point_line(event: Movement, ts: int) -> str:
    """The baseline: the same point through influxdb_client.Point."""
    item = event.item_key
    point: Any = Point("movement")  # type: ignore[no-untyped-call]
    point = (
        point.tag("site", event.site)
        .tag("device", event.device)
        .tag("reader", event.reader)
        .tag("zone", event.zone)
        .tag("kind", event.kind)
        .field("epc", event.epc if event.epc is not None else item)
        .field("item", item)
        .field("event_id", event.event_id)
        .field("read_count", event.read_count)
        .field("antenna", event.antenna)
        .time(ts, WritePrecision.NS)
    )
    if isinstance(event, Moved):
        point.field("from_zone", event.from_zone)
    if event.peak_rssi_dbm is not None:
        point.field("rssi_dbm", float(event.peak_rssi_dbm))
    text: str = point.to_line_protocol()
    return text


def parsed(line: str) -> tuple[str, str, dict[str, tuple[str, Any]], str]:
    """Series key (tags sorted), fields with their InfluxDB type and value, timestamp."""
    head, fields_text, ts = line.rsplit(" ", 2) if line.count(" ") >= 2 else ("", "", "")
    parts = head.split(",")
    key = ",".join([parts[0], *sorted(parts[1:])])
    info = line_field_types(line)
    assert info is not None
    measurement, types = info
    values: dict[str, tuple[str, Any]] = {}
    for pair in fields_text.split(","):
        name, _, raw = pair.partition("=")
        kind = types[name]
        value: Any = raw
        if kind == "float":
            value = float(raw)
        elif kind == "integer":
            value = int(raw[:-1])
        values[name] = (kind, value)
    return measurement, key, values, ts


def best_rate(fn: Callable[[], int], repeats: int) -> float:
    best = float("inf")
    count = 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - start)
    return count / best


class MemoryQueue:
    """A LineQueue in memory, so the figure is the writer and InfluxDB, not a database."""

    def __init__(self, lines: Sequence[str]) -> None:
        self._rows: deque[tuple[int, str]] = deque(enumerate(lines, 1))
        self.drained = asyncio.Event()

    def pending_lines(self, limit: int) -> list[tuple[int, str]]:
        return list(itertools.islice(self._rows, limit))

    def lines_done(self, seqs: Sequence[int]) -> None:
        done = set(seqs)
        while self._rows and self._rows[0][0] in done:
            self._rows.popleft()
        if not self._rows:
            self.drained.set()

    def line_depth(self) -> int:
        return len(self._rows)

    def enqueue_lines(self, lines: Sequence[str]) -> None:
        start = self._rows[-1][0] + 1 if self._rows else 1
        self._rows.extend(enumerate(lines, start))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def private_influxd() -> Iterator[str]:
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    with tempfile.TemporaryDirectory(prefix="bench-influxd-") as tmp:
        port = _free_port()
        conf = Path(tmp) / "influxdb.conf"
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{_free_port()}"\n'
            f'[meta]\n  dir = "{tmp}/meta"\n[data]\n  dir = "{tmp}/data"\n'
            f'  wal-dir = "{tmp}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )
        with (Path(tmp) / "influxd.log").open("wb") as log:
            proc = subprocess.Popen(
                [binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(url + "/ping", timeout=0.5):  # noqa: S310
                        break
                except OSError:
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def influx_count(url: str, db: str) -> int:
    query = urllib.parse.urlencode({"db": db, "q": 'SELECT count("read_count") FROM movement'})
    with urllib.request.urlopen(f"{url}/query?{query}", timeout=30) as resp:  # noqa: S310
        body = json.loads(resp.read())
    series = body["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


async def drain_with_writer(url: str, db: str, lines: list[str], batch: int) -> float:
    backend = V1Backend(InfluxV1Config(backend="v1", url=url, database=db))
    config = InfluxWriteConfig(
        batch_size=batch,
        flush_interval_s=0.05,
        reject_log=Path(tempfile.gettempdir()) / "bench-rejects.jsonl",
    )
    assert await backend.prepare()  # creates the database
    queue = MemoryQueue(lines)  # spooled before start: due at once
    writer = InfluxWriter(backend, config, queue, clock=SystemClock())
    start = time.perf_counter()
    task = asyncio.create_task(writer.run())
    await queue.drained.wait()
    elapsed = time.perf_counter() - start
    await writer.close(timeout_s=5)
    await backend.close()
    task.cancel()
    assert writer.stats.points_written == len(lines), writer.stats
    return len(lines) / elapsed


async def drain_bare(url: str, db: str, lines: list[str], batch: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await client.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        start = time.perf_counter()
        for i in range(0, len(lines), batch):
            body = "\n".join(lines[i : i + batch]).encode()
            resp = await client.post("/write", params={"db": db, "precision": "ns"}, content=body)
            assert resp.status_code == 204, resp.text
        return len(lines) / (time.perf_counter() - start)


def bench_influxd(events: list[tuple[Movement, int]], batch: int, rounds: int) -> None:
    """Alternate writer and bare rounds (a fresh database each) and keep the best of each."""
    lines = [movement_line(e, ts) for e, ts in events]
    ours = bare = 0.0
    with private_influxd() as url:
        for i in range(rounds):
            ours = max(ours, asyncio.run(drain_with_writer(url, f"writer{i}", lines, batch)))
            bare = max(bare, asyncio.run(drain_bare(url, f"bare{i}", lines, batch)))
            assert influx_count(url, f"writer{i}") == len(lines)
            assert influx_count(url, f"bare{i}") == len(lines)
    print(f"influxd 1.6, {len(lines):,} lines in batches of {batch:,}, best of {rounds}:")
    print(f"  InfluxWriter + V1Backend: {ours:,.0f} lines/s")
    print(f"  bare httpx POST loop (baseline, same run): {bare:,.0f} lines/s")
    print(f"  writer / bare: {ours / bare:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--influxd", action="store_true", help="also time writes to influxd")
    parser.add_argument("--batch", type=int, default=5000, help="lines per write (--influxd)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds each (--influxd)")
    args = parser.parse_args()

    events = build_events(args.events)
    # Same points both ways (the values in these events contain no spaces or commas, so
    # the simple split in parsed() is exact).
    for event, ts in events:
        mine, theirs = movement_line(event, ts), point_line(event, ts)
        assert parsed(mine) == parsed(theirs), (mine, theirs)

    def ours_run() -> int:
        out = [movement_line(e, ts) for e, ts in events]
        return len(out)

    def point_run() -> int:
        out = [point_line(e, ts) for e, ts in events]
        return len(out)

    ours = best_rate(ours_run, args.repeats)
    baseline = best_rate(point_run, args.repeats)
    print(f"events: {len(events):,} (best of {args.repeats} runs)")
    print(f"lineproto.movement_line: {ours:,.0f} lines/s ({1e6 / ours:.2f} µs a line)")
    print(
        f"influxdb_client.Point (baseline, same run): {baseline:,.0f} lines/s "
        f"({1e6 / baseline:.2f} µs a line)"
    )
    print(f"speed-up over Point: {ours / baseline:.1f}x")
    print(f"example: {movement_line(*events[1])}")
    if args.influxd:
        bench_influxd(events, args.batch, args.rounds)


if __name__ == "__main__":
    main()
