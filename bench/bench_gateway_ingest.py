"""Benchmark: sustained gateway ingest, MQTT -> positions + InfluxDB, with acknowledgement.

Starts a private mosquitto and influxd (``tagtrail.devservices``: free loopback ports,
temporary folders) and, per case (events per MQTT message):

1. creates two persistent MQTT sessions subscribed to ``tagtrail/v1/+/+/events``: the
   gateway's (``tagtrail gateway run`` started once, then stopped with SIGTERM) and a
   bare paho subscriber's (QoS 1, same Receive Maximum as the gateway);
2. pre-loads the broker while both are offline: N valid movement events (built with the
   ``tagtrail.events`` models; arrived/moved/departed mix over many distinct EPCs, four
   edge devices), as JSON arrays of ``batch`` events per message, QoS 1. The broker
   queues the same stream for both sessions;
3. baseline: the bare subscriber (its own process) reconnects and drains its queue,
   acknowledging every message. Its rate is the broker's delivery rate;
4. the gateway (``python -m tagtrail gateway run`` in its own process, production
   defaults: ``synchronous=full`` unless ``--synchronous normal``, InfluxDB batches of
   5,000 every 1 s) reconnects and drains its queue. It acknowledges a message only
   after the store transaction committed. Done when every event is applied (the
   gateway's SQLite, read-only) AND every point is in InfluxDB (InfluxQL ``count``).

Both rates are timed from the consumer's CONNACK (the gateway's "connected" log record,
the subscriber's ``on_connect``) to done, so the gateway's start-up is not counted.
Pre-loading keeps the publisher off the two cores while the consumers run.

    .venv/bin/python bench/bench_gateway_ingest.py [--events 200000] [--batch 100]
        [--batch1-events 20000] [--synchronous full|normal] [--profile DIR]

``--profile DIR`` samples the gateway with py-spy (if installed) during the drain of the
main case and prints the hottest functions; the raw stacks stay in DIR.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tagtrail import devservices
from tagtrail.events import (
    Arrived,
    Departed,
    EpcIdentity,
    Moved,
    encode_batch,
    events_topic,
)

SITE = "wh1"
DEVICES = ("dock-edge-1", "dock-edge-2", "aisle-edge-1", "aisle-edge-2")
ARRIVAL_ZONES = ("dock-1", "dock-2", "inbound")
ZONES = (
    "dock-1",
    "dock-2",
    "inbound",
    "staging",
    *(f"aisle-{n}" for n in range(1, 9)),
    "shipping",
)
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a private bench gateway
TOPIC_FILTER = "tagtrail/v1/+/+/events"
RECEIVE_MAXIMUM = 200  # the gateway's default; the bare subscriber asks for the same
SESSION_EXPIRY_S = 3600
MovementEvent = Arrived | Moved | Departed


# -- the event stream -----------------------------------------------------------------


@dataclass
class Stream:
    payloads: list[tuple[str, bytes]]
    events: int
    kinds: collections.Counter[str]
    distinct_epcs: int
    present_at_end: int


def build_stream(n: int, batch: int, *, seed: int, id_prefix: str) -> Stream:
    """``n`` movement events as a smoothing edge would emit them, in messages of ``batch``.

    40 % arrivals of new EPCs, 45 % moves of a present item to another zone, 15 %
    departures; event times 1 ms apart. Message ``m`` comes from device ``m % 4``.
    """
    rng = random.Random(seed)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(milliseconds=n + 60_000)
    present: list[tuple[str, str, datetime, int]] = []  # epc, zone, first_seen, reads
    next_epc = 0
    kinds: collections.Counter[str] = collections.Counter()
    payloads: list[tuple[str, bytes]] = []
    current: list[MovementEvent] = []
    for i in range(n):
        device = DEVICES[(i // batch) % len(DEVICES)]
        now = t0 + timedelta(milliseconds=i)
        common: dict[str, Any] = {
            "event_id": f"{id_prefix}-{i:09d}",
            "event_time": now,
            "site": SITE,
            "device": device,
            "reader": f"reader-{1 + i % 3}",
            "antenna": 1 + i % 4,
            "last_seen": now,
            "peak_rssi_dbm": round(rng.uniform(-75.0, -40.0), 1),
        }
        r = rng.random()
        event: MovementEvent
        if len(present) < 100 or r < 0.40:
            epc = f"E280{seed:04X}{next_epc:016X}"
            next_epc += 1
            zone = rng.choice(ARRIVAL_ZONES)
            reads = rng.randint(3, 12)
            ident = EpcIdentity(scheme="epc", epc=epc)
            event = Arrived(
                kind="arrived",
                zone=zone,
                identity=ident,
                epc=epc,
                first_seen=now - timedelta(milliseconds=rng.randint(200, 2000)),
                read_count=reads,
                **common,
            )
            present.append((epc, zone, event.first_seen, reads))
        else:
            k = rng.randrange(len(present))
            epc, zone, first_seen, reads = present[k]
            reads += rng.randint(1, 30)
            ident = EpcIdentity(scheme="epc", epc=epc)
            if r < 0.85:
                new_zone = rng.choice([z for z in ZONES if z != zone])
                event = Moved(
                    kind="moved",
                    zone=new_zone,
                    from_zone=zone,
                    identity=ident,
                    epc=epc,
                    first_seen=first_seen,
                    read_count=reads,
                    **common,
                )
                present[k] = (epc, new_zone, first_seen, reads)
            else:
                event = Departed(
                    kind="departed",
                    zone=zone,
                    identity=ident,
                    epc=epc,
                    first_seen=first_seen,
                    read_count=reads,
                    **common,
                )
                present[k] = present[-1]
                present.pop()
        kinds[event.kind] += 1
        current.append(event)
        if len(current) == batch or i == n - 1:
            payloads.append((events_topic(SITE, device), encode_batch(current)))
            current = []
    return Stream(payloads, n, kinds, next_epc, len(present))


# -- MQTT helpers ---------------------------------------------------------------------


def _connect_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def publish_all(port: int, payloads: list[tuple[str, bytes]], timeout: float) -> float:
    """Publish every payload with QoS 1 and wait for every PUBACK; returns seconds."""
    acked = 0
    done = threading.Event()
    total = len(payloads)

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == total:
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="bench-edge-preload",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        start = time.perf_counter()
        for topic, payload in payloads:
            client.publish(topic, payload, qos=1)
        if not done.wait(timeout):
            raise SystemExit(f"pre-load: only {acked} of {total} messages acknowledged")
        return time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()


def subscriber_role(args: argparse.Namespace) -> None:
    """The bare paho subscriber (run as its own process). Prints one JSON line."""
    state: dict[str, Any] = {"connected_at": None, "done_at": None, "messages": 0, "bytes": 0}

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        state["connected_at"] = time.time()
        if args.mode == "create":
            client.subscribe(TOPIC_FILTER, qos=1)

    def on_subscribe(client: mqtt.Client, *_args: Any) -> None:
        state["done_at"] = time.time()

    def on_message(client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        state["messages"] += 1
        state["bytes"] += len(msg.payload)
        if state["messages"] >= args.expect:
            state["done_at"] = time.time()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=args.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", args.port, clean_start=False, properties=_connect_props())
    deadline = time.monotonic() + args.timeout
    while state["done_at"] is None and time.monotonic() < deadline:
        client.loop(timeout=0.5)
    client.disconnect()
    client.loop(timeout=0.5)
    print(json.dumps(state), flush=True)


def run_subscriber(
    port: int, client_id: str, mode: str, expect: int, timeout: float
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--role",
            "subscriber",
            *("--port", str(port), "--client-id", client_id, "--mode", mode),
            *("--expect", str(expect), "--timeout", str(timeout)),
        ],
        capture_output=True,
        check=True,
        timeout=timeout + 30,
    )
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    if result["done_at"] is None:
        raise SystemExit(f"bare subscriber ({mode}) did not finish: {result}")
    return result


# -- the gateway process --------------------------------------------------------------


class GatewayProcess:
    """``python -m tagtrail --log-format json gateway run -c FILE``; logs read by a thread."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.proc = devservices.spawn(
            [
                *(sys.executable, "-m", "tagtrail", "--log-format", "json"),
                *("gateway", "run", "-c", str(config)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.url: str | None = None
        self.connected_at: float | None = None
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
            if self.connected_at is None and "connected to MQTT broker" in line:
                with contextlib.suppress(ValueError, KeyError):
                    record = json.loads(line)
                    self.connected_at = datetime.fromisoformat(record["time"]).timestamp()

    def wait_ready(self, timeout: float = 60.0) -> None:
        devservices.wait_until(
            lambda: (
                self.proc.poll() is not None
                or (self.url is not None and self.connected_at is not None)
            ),
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
    path: Path,
    workdir: Path,
    *,
    port: int,
    influx_url: str,
    database: str,
    client_id: str,
    synchronous: str = "full",
) -> None:
    cfg = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "client_id": client_id,
            "session_expiry_s": SESSION_EXPIRY_S,
            "receive_maximum": RECEIVE_MAXIMUM,
        },
        "store": {"path": str(workdir / f"{database}.sqlite"), "synchronous": synchronous},
        "influx": {"backend": "v1", "url": influx_url, "database": database},
        "write": {"reject_log": str(workdir / f"{database}-rejects.jsonl")},
        "api": {"host": "127.0.0.1", "port": 0, "tokens": [{"name": "bench", "token": TOKEN}]},
        "log_level": "INFO",
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


# -- watching the results -------------------------------------------------------------


def influx_count(url: str, database: str) -> int:
    query = urllib.parse.urlencode({"db": database, "q": 'SELECT count("epc") FROM "movement"'})
    with urllib.request.urlopen(f"{url}/query?{query}", timeout=30) as resp:  # noqa: S310
        body = json.loads(resp.read())
    series = body["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def api_get(url: str, path: str) -> Any:
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


class StoreWatcher:
    """The gateway's SQLite, read-only: events applied and points still spooled."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def applied(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM processed").fetchone()[0])

    def spooled(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


# -- profiling ------------------------------------------------------------------------


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("  (py-spy not found: no profile; pip install py-spy)")
        return None
    return devservices.spawn(
        [
            *(pyspy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking"),
            *("--format", "raw", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise_profile(path: Path, top: int = 18) -> None:
    """Self and inclusive sample shares from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        print("  (no samples)")
        return
    print(f"  py-spy: {total} samples of the gateway; stacks in {path}")
    print("  self time (top):")
    for frame, count in own.most_common(top):
        print(f"    {100 * count / total:5.1f} %  {frame}")
    print("  inclusive time (top):")
    for frame, count in inclusive.most_common(top + 12):
        if "<module>" in frame or frame.startswith(("run (", "_run_once", "main (")):
            continue
        print(f"    {100 * count / total:5.1f} %  {frame}")


# -- one case -------------------------------------------------------------------------


@dataclass
class Result:
    batch: int
    events: int
    messages: int
    preload_s: float
    bare_s: float
    store_s: float
    influx_s: float
    gateway_cpu_s: float
    exit_code: int | None
    checks: list[str]


def run_case(
    workdir: Path,
    port: int,
    influx_url: str,
    *,
    events: int,
    batch: int,
    seed: int,
    timeout: float,
    profile: Path | None,
    synchronous: str,
) -> Result:
    tag = f"b{batch}"
    database = f"bench_ingest_{tag}"
    config = workdir / f"gateway-{tag}.yaml"
    gw_client, bare_client = f"bench-gateway-{tag}", f"bench-bare-{tag}"
    write_gateway_config(
        config,
        workdir,
        port=port,
        influx_url=influx_url,
        database=database,
        client_id=gw_client,
        synchronous=synchronous,
    )
    print(f"\n== {events:,} events, {batch} per message ==", flush=True)
    started = time.perf_counter()
    stream = build_stream(events, batch, seed=seed, id_prefix=f"ingest-{tag}")
    kinds = ", ".join(f"{k} {v / events:.0%}" for k, v in sorted(stream.kinds.items()))
    print(
        f"  built {len(stream.payloads):,} messages in {time.perf_counter() - started:.1f} s "
        f"({kinds}; {stream.distinct_epcs:,} distinct EPCs; "
        f"{sum(len(p) for _, p in stream.payloads) / 1e6:.0f} MB)",
        flush=True,
    )

    # 1. both persistent sessions exist, then go offline
    gateway = GatewayProcess(config, workdir / f"gateway-{tag}.log")
    try:
        gateway.wait_ready()
    finally:
        code = gateway.stop()
    if code != 0:
        raise SystemExit(f"gateway (session set-up) exited with {code}")
    run_subscriber(port, bare_client, "create", 0, 30)

    # 2. pre-load the broker: the same queued stream for both sessions
    preload_s = publish_all(port, stream.payloads, timeout)
    print(
        f"  pre-loaded the broker in {preload_s:.1f} s "
        f"({events / preload_s:,.0f} events/s, queued for both sessions)",
        flush=True,
    )

    # 3. baseline: the bare subscriber drains its queue
    bare = run_subscriber(port, bare_client, "drain", len(stream.payloads), timeout)
    bare_s = bare["done_at"] - bare["connected_at"]
    print(f"  bare subscriber drained {bare['messages']:,} messages in {bare_s:.2f} s", flush=True)

    # 4. the gateway drains its queue
    gateway = GatewayProcess(config, workdir / f"gateway-{tag}.log")
    profiler: subprocess.Popen[bytes] | None = None
    checks: list[str] = []
    store_s = influx_s = cpu = 0.0
    try:
        if profile is not None:
            profiler = start_profiler(gateway.proc.pid, profile / f"gateway-{tag}.txt")
        watcher_path = workdir / f"{database}.sqlite"
        devservices.wait_until(
            lambda: gateway.proc.poll() is not None or gateway.connected_at is not None,
            60,
            "the gateway's MQTT connection",
        )
        watcher = StoreWatcher(watcher_path)
        try:
            deadline = time.monotonic() + timeout
            store_done: float | None = None
            while time.monotonic() < deadline and gateway.proc.poll() is None:
                if store_done is None and watcher.applied() >= events:
                    store_done = time.time()
                if (
                    store_done is not None
                    and watcher.spooled() == 0
                    and influx_count(influx_url, database) >= events
                ):
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(
                    f"gateway did not finish in {timeout:.0f} s: {watcher.applied()} applied, "
                    f"{watcher.spooled()} spooled\n" + "".join(gateway.lines[-10:])
                )
            done = time.time()
        finally:
            watcher.close()
        cpu = gateway.cpu_seconds()
        assert gateway.connected_at is not None
        store_s = store_done - gateway.connected_at
        influx_s = done - gateway.connected_at
        # sanity: the positions and InfluxDB hold what was sent
        assert gateway.url is not None
        stock = api_get(gateway.url, "/v1/stock")
        if stock["total"] != stream.present_at_end:
            checks.append(f"stock total {stock['total']} != expected {stream.present_at_end}")
        points = influx_count(influx_url, database)
        if points != events:
            checks.append(f"InfluxDB holds {points} movement points, expected {events}")
        if "dead letter" in "".join(gateway.lines):
            checks.append("dead letters were logged")
    finally:
        code = gateway.stop()
        if profiler is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(timeout=30)
            devservices.stop(profiler)
    return Result(
        batch=batch,
        events=events,
        messages=len(stream.payloads),
        preload_s=preload_s,
        bare_s=bare_s,
        store_s=store_s,
        influx_s=influx_s,
        gateway_cpu_s=cpu,
        exit_code=code,
        checks=checks,
    )


def print_result(r: Result) -> None:
    bare = r.events / r.bare_s
    store = r.events / r.store_s
    full = r.events / r.influx_s
    print(f"  {'measure':<58} {'seconds':>8} {'events/s':>10} {'msgs/s':>8}")
    rows = [
        ("bare paho subscriber, QoS 1, acks (baseline)", r.bare_s, bare),
        ("gateway: every event applied in the store (acked)", r.store_s, store),
        ("gateway: applied AND every point in InfluxDB", r.influx_s, full),
    ]
    for name, secs, eps in rows:
        print(f"  {name:<58} {secs:>8.2f} {eps:>10,.0f} {eps / (r.events / r.messages):>8,.0f}")
    print(f"  gateway / bare subscriber (end to end): {full / bare:.2f}")
    print(f"  gateway / target of 10,000 events/s:    {full / 10_000:.2f}")
    print(
        f"  gateway CPU: {r.gateway_cpu_s:.1f} s over its whole run "
        f"({r.events / max(r.gateway_cpu_s, 1e-9):,.0f} events per CPU second); "
        f"exit code {r.exit_code}"
    )
    for check in r.checks:
        print(f"  CHECK FAILED: {check}")
    if not r.checks:
        print("  checks: stock total, InfluxDB point count and no dead letters all as expected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events of the main case")
    parser.add_argument("--batch", type=int, default=100, help="events per message (main case)")
    parser.add_argument(
        "--batch1-events", type=int, default=20_000, help="events at 1 per message (0: skip)"
    )
    parser.add_argument(
        "--synchronous", choices=["full", "normal"], default="full", help="the store's"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300.0, help="per drain, seconds")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the gateway; DIR")
    parser.add_argument("--role", choices=["bench", "subscriber"], default="bench")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--mode", choices=["create", "drain"], default="drain", help=argparse.SUPPRESS
    )
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "subscriber":
        subscriber_role(args)
        return

    print(
        f"gateway ingest benchmark on {os.cpu_count()} cores, shared by the gateway, "
        "mosquitto, influxd and the bare subscriber (one of them busy at a time, plus the "
        "broker and influxd)"
    )
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    cases = [(args.events, args.batch)]
    if args.batch1_events > 0 and args.batch != 1:
        cases.append((args.batch1_events, 1))
    with tempfile.TemporaryDirectory(prefix="bench-gateway-ingest-") as tmp:
        workdir = Path(tmp)
        log: IO[bytes] = (workdir / "services.log").open("ab")
        broker: subprocess.Popen[bytes] | None = None
        influxd: subprocess.Popen[bytes] | None = None
        try:
            broker, port = devservices.start_mosquitto(workdir / "mosquitto", log)
            influxd, influx_url = devservices.start_influxd(workdir / "influxd", log)
            print(f"mosquitto on 127.0.0.1:{port}, influxd at {influx_url}")
            results = []
            for n, (events, batch) in enumerate(cases):
                result = run_case(
                    workdir,
                    port,
                    influx_url,
                    events=events,
                    batch=batch,
                    seed=args.seed + n,
                    timeout=args.timeout,
                    profile=args.profile if n == 0 else None,
                    synchronous=args.synchronous,
                )
                print_result(result)
                results.append(result)
            if args.profile is not None:
                print()
                summarise_profile(args.profile / f"gateway-b{args.batch}.txt")
        finally:
            devservices.stop(influxd)
            devservices.stop(broker)
            log.close()


if __name__ == "__main__":
    main()
