"""``tagtrail demo``: the whole pipeline on one machine, driven by the simulator.

It starts, as child processes on free loopback ports with a temporary data folder:
Mosquitto, influxd (Debian's 1.6), the R2000 simulator on a pseudo-terminal playing a
dock-door scenario (looping by default), the edge agent reading it, and the gateway. It
prints the API URL and token, then a live terminal table of recent movements (from the
API's ``/v1/stream``) and stock per zone (from ``/v1/stock``).

Ctrl-C (or SIGTERM) stops everything in order — edge, gateway, simulator, influxd,
broker — and every child dies with the demo even if it is killed.

``--once`` plays the scenario once and exits 0 when the API's positions equal the
scenario's ground truth and InfluxDB holds exactly the expected movement points; the
tests run it that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from tagtrail.devservices import ServiceError, spawn, start_influxd, start_mosquitto, stop
from tagtrail.errors import TagtrailError

Echo = Callable[[str], None]
SCENARIOS = Path(__file__).resolve().parents[2] / "hardware-sim" / "scenarios"
BUNDLED = SCENARIOS / "demo-door.yaml"


@dataclass
class DemoState:
    """What the live view shows."""

    movements: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=14))
    stock: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def _read_line_prefix(proc: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> str:
    """Read the child's stdout until a line starts with ``prefix``; return the rest."""
    if proc.stdout is None:
        raise TagtrailError("child output is not a pipe")
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            for line in buf.split(b"\n")[:-1]:
                if line.startswith(prefix):
                    return line[len(prefix) :].decode().strip()
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                break
            if sel.select(min(left, 0.5)):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
    raise TagtrailError(f"a child process did not print {prefix.decode().strip()!r}")


def wait_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Wait until ``tagtrail sim`` printed ``READY <pty>``; return the pty path."""
    return _read_line_prefix(proc, b"READY ", timeout)


def compare_positions(items: list[dict[str, Any]], truth: dict[str, Any]) -> tuple[int, int]:
    """(EPCs whose API zone equals the ground truth's final zone, EPCs in the truth)."""
    zones = {i["epc"]: i["zone"] for i in items if i.get("epc")}
    ok = sum(
        1 for epc, tag in truth["tags"].items() if epc in zones and zones[epc] == tag["final_zone"]
    )
    return ok, len(truth["tags"])


class Demo:
    """The child processes and their configuration."""

    def __init__(self, scenario: Path, time_scale: float, workdir: Path, echo: Echo) -> None:
        self.scenario = scenario
        self.time_scale = time_scale
        self.wd = workdir
        self.echo = echo
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs: list[IO[bytes]] = []
        self.token = secrets.token_urlsafe(24)
        self.api_url = ""
        self.influx_url = ""
        self.truth: dict[str, Any] = {}

    def _log(self, name: str) -> IO[bytes]:
        handle = (self.wd / f"{name}.log").open("wb")
        self.logs.append(handle)
        return handle

    def start(self, *, loop: bool) -> None:
        self.wd.mkdir(parents=True, exist_ok=True)
        broker, mqtt_port = start_mosquitto(self.wd / "mosquitto", self._log("mosquitto"))
        self.procs.append(("mosquitto", broker))
        influxd, self.influx_url = start_influxd(self.wd / "influxd", self._log("influxd"))
        self.procs.append(("influxd", influxd))
        self.echo(f"mosquitto on 127.0.0.1:{mqtt_port}, influxd on {self.influx_url}")

        spec: dict[str, Any] = yaml.safe_load(self.scenario.read_text())
        depart_after = float(spec.get("expect", {}).get("depart_after_s", 5.0))
        link = self.wd / "reader0"
        truth_path = self.wd / "ground-truth.json"
        sim_cmd = [sys.executable, "-m", "tagtrail.sim", str(self.scenario), "--link", str(link)]
        sim_cmd += ["--time-scale", str(self.time_scale), "--ground-truth", str(truth_path)]
        if loop:
            sim_cmd += ["--loop", "--grace", str(depart_after + 5.0)]
        sim = spawn(sim_cmd, stdout=subprocess.PIPE, stderr=self._log("sim"))
        self.procs.append(("simulator", sim))
        wait_ready_line(sim, 20)
        self.truth = json.loads(truth_path.read_text())
        self.echo(
            f"simulated R2000 reader on {link}: '{self.truth['scenario']}', "
            f"{len(self.truth['tags'])} tags, {self.truth['end_s']:g} s at {self.time_scale:g}x"
            + (", looping" if loop else "")
        )

        site = self.truth.get("site") or "demo"
        device = self.truth.get("device") or "edge-1"
        gateway_cfg = {
            "mqtt": {"port": mqtt_port, "client_id": "tagtrail-demo-gateway"},
            "store": {"path": str(self.wd / "gateway.sqlite")},
            "influx": {"backend": "v1", "url": self.influx_url, "database": "tagtrail"},
            "write": {
                "flush_interval_s": 0.5,
                "reject_log": str(self.wd / "influx-rejects.jsonl"),
                "stock_interval_s": 5.0,
            },
            "api": {"port": 0, "tokens": [{"name": "demo", "token": self.token}]},
        }
        (self.wd / "gateway.yaml").write_text(yaml.safe_dump(gateway_cfg, sort_keys=False))
        gateway = spawn(
            [
                sys.executable,
                "-m",
                "tagtrail",
                "gateway",
                "run",
                "-c",
                str(self.wd / "gateway.yaml"),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log("gateway"),
        )
        self.procs.append(("gateway", gateway))
        self.api_url = _read_line_prefix(gateway, b"API ", 60)

        edge_cfg = {
            "site": site,
            "device": device,
            "time_scale": self.time_scale,
            "readers": [
                {
                    "type": "r2000",
                    "id": "door-reader",
                    "port": str(link),
                    "antennas": [
                        {"port": int(p), "zone": z} for p, z in self.truth["antennas"].items()
                    ],
                }
            ],
            "mqtt": {"port": mqtt_port},
            "outbox": {"path": str(self.wd / "edge-outbox.sqlite")},
            "smoothing": {"depart_after_s": depart_after},
            "status": {"heartbeat_s": 10.0},
        }
        (self.wd / "edge.yaml").write_text(yaml.safe_dump(edge_cfg, sort_keys=False))
        edge = spawn(
            [sys.executable, "-m", "tagtrail", "edge", "run", "-c", str(self.wd / "edge.yaml")],
            stdout=self._log("edge"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(("edge", edge))
        self.echo(f"API {self.api_url}  (Authorization: Bearer {self.token})")
        self.echo(f"web view {self.api_url}/#token={self.token}")
        self.echo(f"work folder (configs, logs, data): {self.wd}")

    def failed(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return f"{name} exited with {proc.returncode}; see {self.wd / (name + '.log')}"
        return None

    def close(self) -> None:
        order = ["edge", "gateway", "simulator", "influxd", "mosquitto"]
        for name in order:
            for pname, proc in self.procs:
                if pname == name:
                    stop(proc)
        for _, proc in self.procs:
            stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        for handle in self.logs:
            handle.close()


def _render(state: DemoState, demo: Demo) -> Group:
    moves = Table(title="Latest movements (live from /v1/stream)", expand=True)
    for col in ("time", "kind", "item", "from", "to", "reader"):
        moves.add_column(col)
    for m in reversed(state.movements):
        moves.add_row(
            m["event_time"][11:23],
            m["kind"],
            m.get("epc") or m["identity"].get("scheme", ""),
            m.get("from_zone", "") or "",
            m["zone"] if m["kind"] != "departed" else "(departed)",
            f"{m['reader']}/{m['antenna']}",
        )
    stock = Table(title="Stock per zone (/v1/stock)", expand=True)
    for col in ("site", "zone", "items"):
        stock.add_column(col)
    for row in state.stock:
        stock.add_row(row["site"], row["zone"], str(row["count"]))
    elapsed = time.monotonic() - state.started
    counts = ", ".join(f"{k} {v}" for k, v in sorted(state.counts.items())) or "waiting"
    header = Table.grid()
    header.add_row(f"API {demo.api_url}   elapsed {elapsed:5.0f} s   events: {counts}")
    header.add_row("Ctrl-C stops everything.")
    return Group(header, moves, stock)


async def _follow_stream(demo: Demo, state: DemoState, echo: Echo | None) -> None:
    headers = {"Authorization": f"Bearer {demo.token}"}
    # the stream stays open for as long as the demo runs: no read timeout
    forever = httpx.Timeout(10.0, read=None)
    async with httpx.AsyncClient(base_url=demo.api_url, headers=headers, timeout=forever) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                async with client.stream("GET", "/v1/stream") as resp:
                    kind = ""
                    async for line in resp.aiter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind == "movement":
                            event = json.loads(line[6:])
                            state.movements.append(event)
                            state.counts[event["kind"]] = state.counts.get(event["kind"], 0) + 1
                            if echo is not None:
                                echo(
                                    f"{event['event_time'][11:23]}  {event['kind']:<8}  "
                                    f"{event.get('epc')}  {event.get('from_zone') or ''}"
                                    f"{' -> ' if event.get('from_zone') else ''}{event['zone']}"
                                )
            await asyncio.sleep(0.5)


async def _poll_stock(demo: Demo, state: DemoState) -> None:
    headers = {"Authorization": f"Bearer {demo.token}"}
    async with httpx.AsyncClient(base_url=demo.api_url, headers=headers, timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                resp = await client.get("/v1/stock")
                if resp.status_code == 200:
                    body = resp.json()
                    state.stock = body["zones"] if isinstance(body, dict) else body
            await asyncio.sleep(1.0)


async def _all_items(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/v1/items", params=params)
        resp.raise_for_status()
        body = resp.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


async def _influx_movements(url: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(
            url + "/query", params={"db": "tagtrail", "q": 'SELECT count("epc") FROM "movement"'}
        )
        series = resp.json()["results"][0].get("series", [])
        return int(series[0]["values"][0][1]) if series else 0


async def _check_once(demo: Demo, echo: Echo, budget_s: float) -> bool:
    headers = {"Authorization": f"Bearer {demo.token}"}
    expected_points = sum(len(t["movements"]) for t in demo.truth["tags"].values())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    ok = total = points = 0
    async with httpx.AsyncClient(base_url=demo.api_url, headers=headers, timeout=10) as client:
        while loop.time() < deadline:
            await asyncio.sleep(0.25)
            with contextlib.suppress(httpx.HTTPError):
                ok, total = compare_positions(await _all_items(client), demo.truth)
                points = await _influx_movements(demo.influx_url)
                if ok == total and points == expected_points:
                    break
    echo(f"positions matching the scenario's ground truth: {ok}/{total}")
    echo(f"InfluxDB movement points: {points} (expected {expected_points})")
    return ok == total and points == expected_points


async def _main(demo: Demo, *, once: bool, plain: bool, duration: float | None, echo: Echo) -> int:
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    state = DemoState()
    tasks = [
        asyncio.create_task(_follow_stream(demo, state, echo if (plain or once) else None)),
        asyncio.create_task(_poll_stock(demo, state)),
    ]
    try:
        if once:
            budget = float(demo.truth["end_s"]) / demo.time_scale + 60.0
            check = asyncio.create_task(_check_once(demo, echo, budget))
            stopper = asyncio.create_task(stop_event.wait())
            await asyncio.wait({check, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not check.done():
                check.cancel()
                return 130
            return 0 if check.result() else 1
        end = None if duration is None else loop.time() + duration
        live = None if plain else Live(_render(state, demo), console=Console(), auto_refresh=False)
        with live if live is not None else contextlib.nullcontext():
            while not stop_event.is_set():
                if end is not None and loop.time() >= end:
                    break
                problem = demo.failed()
                if problem:
                    echo(problem)
                    return 1
                if live is not None:
                    live.update(_render(state, demo), refresh=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), 0.5)
        return 0
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def run_demo(
    *,
    scenario: Path | None,
    time_scale: float,
    workdir: Path | None,
    echo: Echo,
    once: bool = False,
    plain: bool = False,
    duration: float | None = None,
) -> int:
    """Run the demo; returns the exit code."""
    scenario = scenario or BUNDLED
    if not scenario.exists():
        raise TagtrailError(f"scenario {scenario} not found")
    wd = workdir or Path(tempfile.mkdtemp(prefix="tagtrail-demo-"))
    demo = Demo(scenario, time_scale, wd, echo)
    try:
        demo.start(loop=not once)
        return asyncio.run(_main(demo, once=once, plain=plain, duration=duration, echo=echo))
    except ServiceError as exc:
        raise TagtrailError(str(exc)) from exc
    finally:
        echo("stopping: edge, gateway, simulator, influxd, mosquitto")
        demo.close()
