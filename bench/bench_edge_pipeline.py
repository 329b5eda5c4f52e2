"""Edge pipeline throughput on one core: raw reads -> events -> outbox -> MQTT PUBACK.

Run: ``.venv/bin/python bench/bench_edge_pipeline.py [--tags N] [--reads N]``

Feeds synthetic raw reads (tags passing a dock door into staging, then leaving) through
the edge agent's own components in one asyncio loop, as the agent wires them: the
:class:`Smoother`, the SQLite :class:`Outbox` (WAL, synchronous=full) and the paho
:class:`Publisher` talking to a private mosquitto started here. The clock is the
reads' own (a manual clock), so the figure is pure processing cost, not waiting.

Prints raw reads/s (wall and CPU of this process, i.e. one core; the broker runs as its
own process), events/s, and two ratios measured in the same run: against the smoother
alone (no I/O, the ceiling), and against the 4 x 548 tag frames/s that four 115200-baud
readers can deliver at most. Target: >= 20,000 raw reads/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tagtrail.clock import ManualClock
from tagtrail.edge.config import MqttConfig, SmoothingConfig
from tagtrail.edge.outbox import Outbox
from tagtrail.edge.publisher import Publisher
from tagtrail.edge.smoothing import Smoother
from tagtrail.events import AnyEvent, Arrived, Departed, Moved
from tagtrail.readers.model import RawRead

TARGET_READS_S = 20_000
LINE_RATE_4_READERS = 4 * 548
ZONES = {("r1", 1): "dock-door-1", ("r1", 2): "staging", ("r1", 3): "storage"}


def make_reads(tags: int, total: int) -> list[RawRead]:
    """Tags cross dock -> staging -> gone in waves; ~20 reads/s per visible tag."""
    t0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    reads: list[RawRead] = []
    epcs = [f"3034257BF400B78{i:09X}" for i in range(tags)]
    wave = 50
    t = 0.0
    i = 0
    while len(reads) < total:
        group = epcs[(i * wave) % tags : (i * wave) % tags + wave]
        i += 1
        # 3 s at the door, 4 s in staging, at 50 reads per 0.05 s round per antenna
        for phase, (antenna, rssi, seconds) in enumerate(((1, -52.0, 3.0), (2, -58.0, 4.0))):
            steps = int(seconds / 0.05)
            for step in range(steps):
                for k, epc in enumerate(group):
                    if (step + k + phase) % 3:  # two of every three rounds read the tag
                        reads.append(
                            RawRead(
                                "r1", antenna, epc, rssi - (k % 5), t, t0 + timedelta(seconds=t)
                            )
                        )
                t += 0.05
        t += 6.0  # gone long enough to depart
    return reads[:total]


def smoother() -> Smoother:
    return Smoother(SmoothingConfig(), site="wh1", device="bench", zones=ZONES)


def smoother_only(reads: list[RawRead]) -> tuple[float, int]:
    s = smoother()
    events = 0
    start = time.perf_counter()
    last = 0.0
    for r in reads:
        events += len(s.feed(r))
        if r.mono - last >= 0.25:
            last = r.mono
            events += len(s.tick(r.mono, r.time))
    return time.perf_counter() - start, events


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, port
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


async def full_pipeline(reads: list[RawRead], port: int, workdir: Path) -> tuple[float, float, int]:
    clock = ManualClock()
    outbox = Outbox(workdir / "outbox.sqlite", synchronous="full")
    publisher = Publisher(
        MqttConfig(port=port, max_inflight=32, batch_max_events=200, replay_rate_msgs_per_s=10_000),
        site="wh1",
        device="bench",
        client_id="bench-edge",
        outbox=outbox,
        clock=clock,
        will_payload=b"{}",
    )
    task = asyncio.create_task(publisher.run())
    while not publisher.connected:  # noqa: ASYNC110 - the harness waits for a fact
        await asyncio.sleep(0.01)
    s = smoother()
    produced = 0
    chunk = 500  # what a driver hands over from one burst of serial input
    wall0, cpu0 = time.perf_counter(), time.process_time()
    last_tick = 0.0
    for start in range(0, len(reads), chunk):
        pending: list[AnyEvent] = []
        for r in reads[start : start + chunk]:
            pending += s.feed(r)
        r = reads[min(start + chunk, len(reads)) - 1]
        if r.mono - last_tick >= 0.25:
            last_tick = r.mono
            pending += s.tick(r.mono, r.time)
        if pending:
            moves = [e for e in pending if isinstance(e, Arrived | Moved | Departed)]
            outbox.append(pending, presence=moves)
            produced += len(pending)
            publisher.notify()
        await asyncio.sleep(0)  # let the publisher and the socket run, as in the agent
    while outbox.depth():  # noqa: ASYNC110 - the harness waits for the last PUBACK
        await asyncio.sleep(0.001)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await publisher.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    outbox.close()
    return wall, cpu, produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=300_000)
    args = parser.parse_args()
    reads = make_reads(args.tags, args.reads)
    base_s, base_events = min(smoother_only(reads) for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        try:
            wall, cpu, events = asyncio.run(full_pipeline(reads, port, Path(tmp)))
        finally:
            broker.terminate()
            broker.wait()
    n = len(reads)
    print(f"raw reads: {n:,} over {args.tags} tags; events published and acked: {events:,}")
    print(f"smoother alone (baseline, no I/O): {n / base_s:,.0f} reads/s ({base_events:,} events)")
    print(
        f"full pipeline to PUBACK: {n / wall:,.0f} reads/s wall, {n / cpu:,.0f} reads/s per CPU"
        f" second of this process; {events / wall:,.0f} events/s"
    )
    print(f"full pipeline / smoother alone: {base_s / wall:.2f}")
    print(f"vs target {TARGET_READS_S:,} reads/s: {n / wall / TARGET_READS_S:.2f}x")
    print(
        f"vs four 115200-baud readers at line rate ({LINE_RATE_4_READERS:,} reads/s):"
        f" {n / wall / LINE_RATE_4_READERS:.1f}x"
    )


if __name__ == "__main__":
    main()
