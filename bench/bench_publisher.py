"""Benchmark: publishing a backlog from the outbox to a local mosquitto, by batch size.

Starts a private mosquitto on a free port (and a ``mosquitto_sub`` in its own process to
prove delivery), fills a fresh outbox with N events for each batch size, runs the
:class:`~tagtrail.edge.publisher.Publisher` until the broker has acknowledged every
event, and prints events/s, messages/s and the speed-up over one event per message.

    .venv/bin/python bench/bench_publisher.py [--events 100000] [--batches 1,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tagtrail.clock import SystemClock
from tagtrail.edge.config import MqttConfig
from tagtrail.edge.outbox import Outbox
from tagtrail.edge.publisher import Publisher
from tagtrail.events import Arrived, EpcIdentity, events_topic

SITE, DEVICE = "bench", "edge1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("mosquitto exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start listening")


def make_events(n: int) -> list[Arrived]:
    events = []
    for i in range(n):
        epc = f"E280{i:020X}"
        events.append(
            Arrived(
                kind="arrived",
                event_id=f"bench-{i:09d}",
                event_time=T0 + timedelta(milliseconds=i),
                site=SITE,
                device=DEVICE,
                reader="r1",
                antenna=1 + i % 4,
                zone="dock",
                identity=EpcIdentity(scheme="epc", epc=epc),
                epc=epc,
                first_seen=T0,
                last_seen=T0 + timedelta(milliseconds=i),
                read_count=3,
                peak_rssi_dbm=-52.5,
            )
        )
    return events


class AckCounter:
    """Observer that wakes the benchmark when every event was acknowledged."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.acked = 0
        self.done = asyncio.Event()

    def on_sent(self, event_ids: Sequence[str]) -> None:
        return

    def on_acked(self, event_ids: Sequence[str]) -> None:
        self.acked += len(event_ids)
        if self.acked >= self.total:
            self.done.set()


async def publish_all(publisher: Publisher, counter: AckCounter) -> float:
    start = time.perf_counter()
    task = asyncio.create_task(publisher.run())
    await counter.done.wait()
    elapsed = time.perf_counter() - start
    await publisher.close()
    await task
    return elapsed


def run_one(
    workdir: Path,
    port: int,
    events: list[Arrived],
    *,
    batch: int,
    args: argparse.Namespace,
    sub_bin: str,
) -> tuple[float, int, int]:
    """Seconds until every event was acknowledged, messages sent, events delivered."""
    path = workdir / f"outbox-{batch}.sqlite"
    outbox = Outbox(path, synchronous=args.synchronous)
    outbox.append(events)
    n_messages = -(-len(events) // batch)
    out_path = workdir / f"sub-{batch}.txt"
    with out_path.open("wb") as out:
        sub = subprocess.Popen(
            [
                *(sub_bin, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", "mqttv5"),
                *("-t", events_topic(SITE, DEVICE), "-C", str(n_messages)),
            ],
            stdout=out,
        )
        try:
            # mosquitto_sub has subscribed once the broker counts it (or after 1 s).
            time.sleep(0.5)
            config = MqttConfig(
                host="127.0.0.1",
                port=port,
                batch_max_events=batch,
                max_inflight=args.max_inflight,
                replay_rate_msgs_per_s=args.rate,
            )
            counter = AckCounter(len(events))
            publisher = Publisher(
                config,
                site=SITE,
                device=DEVICE,
                client_id=f"bench-{batch}",
                outbox=outbox,
                clock=SystemClock(),
                will_payload=b"offline",
                observer=counter,
            )
            elapsed = asyncio.run(publish_all(publisher, counter))
            sub.wait(timeout=120)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
    outbox.close()
    delivered = out_path.read_bytes().count(b'"event_id":')
    return elapsed, publisher.stats.messages_published, delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batches", default="1,50,200", help="comma-separated batch sizes")
    parser.add_argument("--max-inflight", type=int, default=32)
    parser.add_argument(
        "--rate", type=float, default=100_000.0, help="rate limit, messages/s (max 100000)"
    )
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    broker_bin = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    sub_bin = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    events = make_events(args.events)
    with tempfile.TemporaryDirectory(prefix="bench-publisher-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\npersistence false\nallow_anonymous true\n"
            "max_inflight_messages 0\nmax_queued_messages 0\n"
        )
        log = (workdir / "mosquitto.log").open("wb")
        broker = subprocess.Popen([broker_bin, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        try:
            wait_port(port, broker)
            print(
                f"{args.events} events, max_inflight={args.max_inflight}, "
                f"rate limit {args.rate:g} msg/s, synchronous={args.synchronous}"
            )
            print(f"{'batch':>6} {'seconds':>8} {'events/s':>10} {'msgs/s':>9} {'vs first':>10}")
            baseline: float | None = None  # events/s of the first batch size (1 by default)
            for batch in batches:
                elapsed, messages, delivered = run_one(
                    workdir, port, events, batch=batch, args=args, sub_bin=sub_bin
                )
                eps = args.events / elapsed
                baseline = baseline or eps
                print(
                    f"{batch:>6} {elapsed:>8.2f} {eps:>10.0f} {messages / elapsed:>9.0f} "
                    f"{eps / baseline:>9.1f}x"
                    + ("" if delivered == args.events else f"  DELIVERED ONLY {delivered}")
                )
        finally:
            broker.terminate()
            broker.wait(timeout=10)


if __name__ == "__main__":
    main()
