"""Benchmark: freshness, from the edge's publish until the item shows in the API.

Starts a private mosquitto and influxd (``tagtrail.devservices``: free loopback ports,
temporary folders) and ``python -m tagtrail gateway run`` in its own process (production
defaults: ``synchronous=full`` unless ``--synchronous normal``). This process then plays
an edge publishing single movement events (one per MQTT message, QoS 1) at a steady
rate; 70 % arrivals of new EPCs, 30 % moves of an item that arrived at least 2 s earlier.

* **Polling** (``--seconds``): for every ``--sample``-th event a probe polls
  ``GET /v1/items/{epc}`` (httpx, async, keep-alive) until ``last_event.event_id`` is
  that event's; latency = publish call -> that response received. The resolution is
  one request round trip.
* **Baseline** (same phase): a bare paho subscriber (QoS 1, its own process) records
  publish -> delivery of every event (by ``event_time``, stamped just before the
  publish, against the same machine's clock): the broker's share of the latency.
* **SSE** (``--sse-seconds``): a client of ``GET /v1/stream`` times publish ->
  ``event: position`` for every event; no polling involved.

After a ``--warmup`` at the same rate, only events published in the measured window
count. Publisher, probes and SSE client share one asyncio loop here; its lag is printed,
so an overloaded load generator shows. The probes' GETs are load on the gateway too:
their number is printed.

    .venv/bin/python bench/bench_gateway_freshness.py [--rate 1000] [--seconds 20]
        [--sse-seconds 10] [--sample 20] [--poll-ms 2] [--synchronous full|normal]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tagtrail import devservices
from tagtrail.events import Arrived, EpcIdentity, Moved, events_topic
from tagtrail.mqttio import PahoLoop

SITE, DEVICE = "wh1", "dock-edge-1"
ARRIVAL_ZONES = ("dock-1", "dock-2", "inbound")
ZONES = ("dock-1", "dock-2", "inbound", "staging", *(f"aisle-{n}" for n in range(1, 9)))
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a private bench gateway
PROBE_TIMEOUT_S = 5.0


# -- the gateway process --------------------------------------------------------------


class GatewayProcess:
    """``python -m tagtrail gateway run -c FILE``; its output is read by threads."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.proc = devservices.spawn(
            [sys.executable, "-m", "tagtrail", "gateway", "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.url: str | None = None
        self.connected = False
        self.lines: list[str] = []
        self._log = log_path.open("a", encoding="utf-8")
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("API "):
                self.url = line.split()[1]

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self._log.write(line)
            self.lines.append(line)
            if "connected to MQTT broker" in line:
                self.connected = True

    def wait_ready(self, timeout: float = 60.0) -> None:
        devservices.wait_until(
            lambda: self.proc.poll() is not None or (self.url is not None and self.connected),
            timeout,
            "the gateway's API and MQTT connection",
        )
        if self.proc.poll() is not None:
            raise SystemExit("gateway exited at start:\n" + "".join(self.lines[-20:]))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self._log.close()
        return self.proc.returncode


def write_gateway_config(
    path: Path, workdir: Path, *, port: int, influx_url: str, synchronous: str
) -> None:
    cfg = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "bench-freshness"},
        "store": {"path": str(workdir / "gateway.sqlite"), "synchronous": synchronous},
        "influx": {"backend": "v1", "url": influx_url, "database": "bench_freshness"},
        "write": {"reject_log": str(workdir / "rejects.jsonl")},
        "api": {"host": "127.0.0.1", "port": 0, "tokens": [{"name": "bench", "token": TOKEN}]},
        "log_level": "INFO",
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


# -- the edge -------------------------------------------------------------------------


class EdgeStream:
    """Single movement events: arrivals of new EPCs and moves of items seen >= 2 s ago."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.n = 0
        self.settled: collections.deque[tuple[int, str, str, datetime]] = collections.deque()
        self.min_age = int(2 * rate)

    def next(self) -> Arrived | Moved:
        i = self.n
        self.n += 1
        now = datetime.now(UTC)
        common: dict[str, Any] = {
            "event_id": f"fresh-{self.seed}-{i:08d}",
            "event_time": now,
            "site": SITE,
            "device": DEVICE,
            "reader": "door-1",
            "antenna": 1 + i % 4,
            "last_seen": now,
            "read_count": self.rng.randint(3, 20),
            "peak_rssi_dbm": round(self.rng.uniform(-75.0, -40.0), 1),
        }
        oldest = self.settled[0] if self.settled else None
        if oldest is not None and i - oldest[0] >= self.min_age and self.rng.random() < 0.3:
            self.settled.popleft()
            _, epc, zone, first_seen = oldest
            new_zone = self.rng.choice([z for z in ZONES if z != zone])
            event: Arrived | Moved = Moved(
                kind="moved",
                zone=new_zone,
                from_zone=zone,
                identity=EpcIdentity(scheme="epc", epc=epc),
                epc=epc,
                first_seen=first_seen,
                **common,
            )
        else:
            epc = f"E280{self.seed:04X}{i:016X}"
            event = Arrived(
                kind="arrived",
                zone=self.rng.choice(ARRIVAL_ZONES),
                identity=EpcIdentity(scheme="epc", epc=epc),
                epc=epc,
                first_seen=now - timedelta(milliseconds=500),
                **common,
            )
        self.settled.append((i, epc, event.zone, event.first_seen))
        return event


@dataclass
class Phase:
    """Timings of one publishing phase."""

    published: dict[str, float] = field(default_factory=dict)
    """event_id -> perf_counter() at publish, for events in the measured window."""
    latencies: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    timeouts: int = 0
    polls: int = 0
    max_probes: int = 0
    lags: list[float] = field(default_factory=list)
    """Lateness of a 1 ms timer in this process's loop: the load generator's own lag."""
    publish_s: float = 0.0
    sent: int = 0


async def mqtt_client(port: int, client_id: str) -> PahoLoop:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    conn = PahoLoop(client, name=client_id)
    ready = asyncio.Event()
    client.on_connect = lambda *_a: ready.set()
    await conn.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    async with asyncio.timeout(10):
        await ready.wait()
    return conn


async def close_mqtt(conn: PahoLoop) -> None:
    if conn.open:
        conn.client.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await conn.closed.wait()
        if conn.open:
            conn.drop()


async def publish_steady(
    conn: PahoLoop,
    edge: EdgeStream,
    *,
    rate: float,
    warmup_s: float,
    seconds: float,
    phase: Phase,
    on_published: Callable[[Arrived | Moved, float, int], None] | None = None,
) -> None:
    """Publish at ``rate`` events/s; events after the warm-up are timed in ``phase``."""
    topic = events_topic(SITE, DEVICE)
    total = int(rate * (warmup_s + seconds))
    first_measured = int(rate * warmup_s)
    start = time.perf_counter()
    i = 0
    while i < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while i < due:
            event = edge.next()
            payload = event.model_dump_json().encode()
            now = time.perf_counter()
            conn.client.publish(topic, payload, qos=1)
            if i >= first_measured:
                phase.published[event.event_id] = now
                if on_published is not None:
                    on_published(event, now, i - first_measured)
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    phase.publish_s = time.perf_counter() - start - warmup_s
    phase.sent = total - first_measured


# -- phase A: polling the item --------------------------------------------------------


async def probe(
    http: httpx.AsyncClient,
    event: Arrived | Moved,
    published_at: float,
    phase: Phase,
    poll_s: float,
) -> None:
    path = f"/v1/items/{event.epc}"
    deadline = published_at + PROBE_TIMEOUT_S
    while time.perf_counter() < deadline:
        resp = await http.get(path)
        phase.polls += 1
        if resp.status_code == 200 and resp.json()["last_event"]["event_id"] == event.event_id:
            phase.latencies.append(time.perf_counter() - published_at)
            return
        await asyncio.sleep(poll_s)
    phase.timeouts += 1


async def polling_phase(
    port: int, url: str, edge: EdgeStream, args: argparse.Namespace, phase: Phase
) -> None:
    probes: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits, timeout=10
    ) as http:
        pub = await mqtt_client(port, "bench-freshness-edge")

        def on_published(event: Arrived | Moved, at: float, n: int) -> None:
            if n % args.sample == 0:
                task = asyncio.create_task(probe(http, event, at, phase, args.poll_ms / 1000))
                probes.add(task)
                phase.max_probes = max(phase.max_probes, len(probes))
                task.add_done_callback(probes.discard)

        try:
            await publish_steady(
                pub,
                edge,
                rate=args.rate,
                warmup_s=args.warmup,
                seconds=args.seconds,
                phase=phase,
                on_published=on_published,
            )
            if probes:
                await asyncio.wait(probes, timeout=PROBE_TIMEOUT_S + 5)
        finally:
            for task in probes:
                task.cancel()
            await close_mqtt(pub)


# -- phase B: the SSE stream ----------------------------------------------------------


@dataclass
class StreamState:
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    target: int | None = None
    """Measured events published; set when publishing is over."""


async def read_stream(http: httpx.AsyncClient, phase: Phase, state: StreamState) -> None:
    async with http.stream("GET", "/v1/stream") as resp:
        resp.raise_for_status()
        kind = ""
        async for line in resp.aiter_lines():
            if line == ": connected":
                state.connected.set()
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "position":
                arrived = time.perf_counter()
                sent = phase.published.get(json.loads(line[6:])["event_id"])
                if sent is not None:
                    phase.latencies.append(arrived - sent)
            if state.target is not None and len(phase.latencies) >= state.target:
                state.complete.set()


async def sse_phase(
    port: int, url: str, edge: EdgeStream, args: argparse.Namespace, phase: Phase
) -> None:
    state = StreamState()
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=httpx.Timeout(10.0, read=60.0),  # heartbeats come every 15 s
    ) as http:
        reader = asyncio.create_task(read_stream(http, phase, state))
        pub = await mqtt_client(port, "bench-freshness-edge-sse")
        try:
            async with asyncio.timeout(10):
                await state.connected.wait()
            await publish_steady(
                pub,
                edge,
                rate=args.rate,
                warmup_s=args.warmup,
                seconds=args.sse_seconds,
                phase=phase,
            )
            state.target = len(phase.published)
            if len(phase.latencies) < state.target:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PROBE_TIMEOUT_S):
                        await state.complete.wait()
            phase.timeouts = state.target - len(phase.latencies)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader
            await close_mqtt(pub)


# -- baseline: a bare subscriber in its own process ------------------------------------


def subscriber_role(args: argparse.Namespace) -> None:
    """Bare paho subscriber (its own process): publish -> delivery by ``event_time``.

    Prints ``ready`` once subscribed; on SIGTERM, after ``--expect`` events or after a
    timeout, writes ``{event_id: latency_s}`` to ``--out``.
    """
    latencies: dict[str, float] = {}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())

    def on_subscribe(*_a: Any) -> None:
        print("ready", flush=True)

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        event = json.loads(msg.payload)
        sent = datetime.fromisoformat(event["event_time"]).timestamp()
        latencies[event["event_id"]] = now - sent
        if len(latencies) >= args.expect:
            stop.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="bench-freshness-bare",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe(events_topic(SITE, DEVICE), qos=1)
    client.connect("127.0.0.1", args.port)
    deadline = time.monotonic() + 600
    while not stop.is_set() and time.monotonic() < deadline:
        client.loop(timeout=0.2)
    client.disconnect()
    args.out.write_text(json.dumps(latencies))


class BareSubscriber:
    """The baseline subscriber process."""

    def __init__(self, port: int, out: Path, expect: int) -> None:
        self.out = out
        self.proc = devservices.spawn(
            [
                *(sys.executable, __file__, "--role", "subscriber", "--port", str(port)),
                *("--out", str(out), "--expect", str(expect)),
            ],
            stdout=subprocess.PIPE,
        )

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit("the bare subscriber did not start")

    def finish(self) -> dict[str, float]:
        """Stop it (it stops by itself once it has every event) and read its figures."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not self.out.exists():
            return {}
        data: dict[str, float] = json.loads(self.out.read_text())
        return data


# -- report ---------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {k: float("nan") for k in ("p50", "p95", "p99", "max")}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def row(name: str, values: list[float]) -> str:
    p = percentiles(values)
    cells = " ".join(f"{1000 * p[k]:>8.1f}" for k in ("p50", "p95", "p99", "max"))
    return f"  {name:<52} {len(values):>7,} {cells}"


async def watch_lag(phase: Phase) -> None:
    """Record how late a 1 ms timer fires in this loop, until cancelled."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        phase.lags.append(time.perf_counter() - before - 0.001)


async def with_lag(phase: Phase, work: Any) -> None:
    watcher = asyncio.create_task(watch_lag(phase))
    try:
        await work
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def run(
    port: int, url: str, gateway: GatewayProcess, workdir: Path, args: argparse.Namespace
) -> None:
    edge = EdgeStream(args.seed, args.rate)
    polled, streamed = Phase(), Phase()
    bare = BareSubscriber(
        port, workdir / "bare.json", int(args.rate * (args.warmup + args.seconds))
    )
    try:
        await asyncio.to_thread(bare.wait_ready)
        cpu0, t0 = gateway.cpu_seconds(), time.perf_counter()
        await with_lag(polled, polling_phase(port, url, edge, args, polled))
        cpu1, t1 = gateway.cpu_seconds(), time.perf_counter()
    finally:
        delivered = await asyncio.to_thread(bare.finish)
    polled.baseline = [delivered[e] for e in polled.published if e in delivered]
    await with_lag(streamed, sse_phase(port, url, edge, args, streamed))
    cpu2, t2 = gateway.cpu_seconds(), time.perf_counter()

    print(
        f"\npolling phase: {polled.sent:,} events in {polled.publish_s:.1f} s "
        f"({polled.sent / polled.publish_s:,.0f} events/s after a {args.warmup:g} s warm-up); "
        f"{len(polled.latencies):,} probed (every {args.sample}th), {polled.polls:,} GETs "
        f"(one every {args.poll_ms:g} ms per probe, at most {polled.max_probes} probes at "
        f"once); gateway CPU {100 * (cpu1 - cpu0) / (t1 - t0):.0f} % of one core"
    )
    print(
        f"SSE phase:     {streamed.sent:,} events in {streamed.publish_s:.1f} s "
        f"({streamed.sent / streamed.publish_s:,.0f} events/s); gateway CPU "
        f"{100 * (cpu2 - cpu1) / (t2 - t1):.0f} % of one core"
    )
    for name, phase in (("polling", polled), ("SSE", streamed)):
        lag = percentiles(phase.lags)
        print(
            f"load generator loop lag ({name} phase): p99 {1000 * lag['p99']:.1f} ms, "
            f"max {1000 * lag['max']:.1f} ms"
        )
    print(f"\n  {'latency, ms':<52} {'samples':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    print(row("publish -> GET /v1/items/{epc} shows it (polled)", polled.latencies))
    print(row("publish -> SSE 'event: position' (/v1/stream)", streamed.latencies))
    print(row("publish -> bare paho subscriber (baseline)", polled.baseline))
    p_poll = percentiles(polled.latencies)["p99"]
    p_sse = percentiles(streamed.latencies)["p99"]
    p_base = percentiles(polled.baseline)["p99"]
    print(f"\n  polled p99 / target of 50 ms:            {1000 * p_poll / 50:.2f}")
    print(f"  polled p99 / bare subscriber p99:        {p_poll / p_base:.1f}")
    print(f"  SSE p99 / bare subscriber p99:           {p_sse / p_base:.1f}")
    for name, phase in (("polling", polled), ("SSE", streamed)):
        if phase.timeouts:
            print(f"  NOT SEEN within {PROBE_TIMEOUT_S:g} s ({name}): {phase.timeouts}")
    if len(polled.baseline) < len(polled.published):
        missing = len(polled.published) - len(polled.baseline)
        print(f"  bare subscriber missed {missing} events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="polling phase, measured")
    parser.add_argument("--sse-seconds", type=float, default=10.0, help="SSE phase, measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured start, seconds")
    parser.add_argument("--sample", type=int, default=20, help="probe every Nth event")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="wait between a probe's GETs")
    parser.add_argument(
        "--synchronous", choices=["full", "normal"], default="full", help="the store's"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--role", choices=["bench", "subscriber"], default="bench")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "subscriber":
        subscriber_role(args)
        return

    print(
        f"gateway freshness benchmark on {os.cpu_count()} cores, shared by the gateway, "
        "mosquitto, influxd, this load generator (publisher, probes, SSE client) and the "
        "bare subscriber"
    )
    with tempfile.TemporaryDirectory(prefix="bench-gateway-freshness-") as tmp:
        workdir = Path(tmp)
        log: IO[bytes] = (workdir / "services.log").open("ab")
        broker: subprocess.Popen[bytes] | None = None
        influxd: subprocess.Popen[bytes] | None = None
        gateway: GatewayProcess | None = None
        try:
            broker, port = devservices.start_mosquitto(workdir / "mosquitto", log)
            influxd, influx_url = devservices.start_influxd(workdir / "influxd", log)
            config = workdir / "gateway.yaml"
            write_gateway_config(
                config, workdir, port=port, influx_url=influx_url, synchronous=args.synchronous
            )
            gateway = GatewayProcess(config, workdir / "gateway.log")
            gateway.wait_ready()
            assert gateway.url is not None
            print(f"mosquitto on 127.0.0.1:{port}, influxd at {influx_url}, API {gateway.url}")
            asyncio.run(run(port, gateway.url, gateway, workdir, args))
        finally:
            if gateway is not None:
                code = gateway.stop()
                if code != 0:
                    print(f"gateway exit code {code}")
            devservices.stop(influxd)
            devservices.stop(broker)
            log.close()


if __name__ == "__main__":
    main()
