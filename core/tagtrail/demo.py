"""``tagtrail demo``: the whole pipeline on one machine, driven by the simulator.

It starts a private Mosquitto on a free port, the R2000 simulator on a pseudo-terminal
playing a scenario, and the edge agent reading it; it subscribes to the events and prints
each one as it arrives, then compares what was published with the scenario's ground truth.
Everything runs as separate processes, exactly as in production; all files live in a
temporary work folder.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tagtrail.errors import ContractError, TagtrailError
from tagtrail.events import AnyEvent, Arrived, Departed, DeviceStatus, Moved, parse_message

Echo = Callable[[str], None]
BUNDLED = Path(__file__).resolve().parents[2] / "hardware-sim" / "scenarios" / "demo-door.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _which(name: str, *extra: str) -> str:
    for cand in (name, *extra):
        found = shutil.which(cand)
        if found:
            return found
    raise TagtrailError(f"{name} is not installed: run ./demo.sh, or apt-get install mosquitto")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TagtrailError("mosquitto exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TagtrailError("mosquitto did not start listening")


def wait_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until ``tagtrail sim`` printed its ``READY`` line on stdout."""
    if proc.stdout is None:
        raise TagtrailError("the simulator's output is not a pipe")
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"READY" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise TagtrailError("the simulator did not start")
            if sel.select(left):
                buf += os.read(proc.stdout.fileno(), 4096)
    finally:
        sel.close()


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def format_event(event: AnyEvent) -> str:
    """One line per event, for people."""
    t = event.event_time.strftime("%H:%M:%S.%f")[:-3]
    if isinstance(event, Arrived | Moved | Departed):
        where = f"{event.from_zone} -> {event.zone}" if isinstance(event, Moved) else event.zone
        rssi = "" if event.peak_rssi_dbm is None else f", peak {event.peak_rssi_dbm:.0f} dBm"
        return (
            f"{t}  {event.kind:<8}  {event.epc or event.item_key}  {where}"
            f"  ({event.reader}/ant {event.antenna}, {event.read_count} reads{rssi})"
        )
    if isinstance(event, DeviceStatus):
        return f"{t}  status    device {event.device} {event.state} ({event.reason})"
    errors = sum(event.error_counts.values())
    return (
        f"{t}  reader    {event.reader} {event.state}, {event.read_rate_per_s:.0f} reads/s,"
        f" {event.reads_total} reads, {errors} errors"
    )


def compare_with_truth(
    events: list[Arrived | Moved | Departed], truth: dict[str, Any]
) -> tuple[int, int]:
    """(items whose movements match the ground truth, items in the ground truth).

    The demo's simulator stops at the end of the scenario, so an item that stays may
    also have departed after it: that trailing departure is not held against it.
    """
    seen: set[str] = set()
    got: dict[str, list[dict[str, str]]] = {}
    for e in sorted(events, key=lambda e: e.event_time):
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        step = {"kind": e.kind, "zone": e.zone}
        if isinstance(e, Moved):
            step["from_zone"] = e.from_zone
        got.setdefault(e.epc or "", []).append(step)
    ok = 0
    for epc, tag in truth["tags"].items():
        mine = got.get(epc, [])
        want = list(tag["movements"])
        if tag["final_zone"] and mine[len(want) :] == [
            {"kind": "departed", "zone": tag["final_zone"]}
        ]:
            mine = mine[: len(want)]
        ok += mine == want
    return ok, len(truth["tags"])


def run_demo(
    *,
    scenario: Path | None,
    time_scale: float,
    workdir: Path | None,
    echo: Echo,
) -> int:
    """Run the demo; returns the exit code (0 when the events match the ground truth)."""
    scenario = scenario or BUNDLED
    if not scenario.exists():
        raise TagtrailError(f"scenario {scenario} not found")
    mosquitto = _which("mosquitto", "/usr/sbin/mosquitto")
    mosquitto_sub = _which("mosquitto_sub")
    wd = workdir or Path(tempfile.mkdtemp(prefix="tagtrail-demo-"))
    wd.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = wd / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        broker_log = (wd / "mosquitto.log").open("wb")
        logs.append(broker_log)
        broker = subprocess.Popen(
            [mosquitto, "-c", str(conf)], stdout=broker_log, stderr=broker_log
        )
        procs.append(broker)
        _wait_port(port, broker, 10)
        echo(f"mosquitto listening on 127.0.0.1:{port}")

        link = wd / "reader0"
        truth_path = wd / "ground-truth.json"
        sim_log = (wd / "sim.log").open("wb")
        logs.append(sim_log)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tagtrail.sim",
                str(scenario),
                "--time-scale",
                str(time_scale),
                "--link",
                str(link),
                "--ground-truth",
                str(truth_path),
                "--exit-at-end",
            ],
            stdout=subprocess.PIPE,
            stderr=sim_log,
        )
        procs.append(sim)
        wait_ready_line(sim, 20)
        truth: dict[str, Any] = json.loads(truth_path.read_text())
        spec: dict[str, Any] = yaml.safe_load(scenario.read_text())
        depart_after = float(spec.get("expect", {}).get("depart_after_s", 5.0))
        echo(
            f"simulated R2000 reader on {link} playing '{truth['scenario']}'"
            f" ({truth['end_s']:g} s at {time_scale:g}x, {len(truth['tags'])} tags)"
        )

        site = truth.get("site") or "demo"
        device = truth.get("device") or "edge-1"
        edge_cfg = {
            "site": site,
            "device": device,
            "time_scale": time_scale,
            "readers": [
                {
                    "type": "r2000",
                    "id": "door-reader",
                    "port": str(link),
                    "antennas": [{"port": int(p), "zone": z} for p, z in truth["antennas"].items()],
                }
            ],
            "mqtt": {"host": "127.0.0.1", "port": port},
            "outbox": {"path": str(wd / "outbox.sqlite")},
            "smoothing": {"depart_after_s": depart_after},
        }
        cfg_path = wd / "edge.yaml"
        cfg_path.write_text(yaml.safe_dump(edge_cfg, sort_keys=False))

        sub = subprocess.Popen(
            [
                *(mosquitto_sub, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-v"),
                *("-t", f"tagtrail/v1/{site}/{device}/#"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        procs.append(sub)
        edge_log = (wd / "edge.log").open("wb")
        logs.append(edge_log)
        edge = subprocess.Popen(
            [sys.executable, "-m", "tagtrail", "edge", "run", "-c", str(cfg_path)],
            stdout=edge_log,
            stderr=edge_log,
        )
        procs.append(edge)
        echo(f"edge agent running (config {cfg_path}); events as the broker delivers them:")
        echo("")

        movements: list[Arrived | Moved | Departed] = []
        counts: dict[str, int] = {}
        if sub.stdout is None:
            raise TagtrailError("mosquitto_sub's output is not a pipe")
        sel = selectors.DefaultSelector()
        sel.register(sub.stdout, selectors.EVENT_READ)
        buf = b""
        sim_done_at: float | None = None
        linger = depart_after / time_scale + 1.5
        try:
            while True:
                if sim_done_at is None and sim.poll() is not None:
                    sim_done_at = time.monotonic()
                if sim_done_at is not None and time.monotonic() - sim_done_at > linger:
                    break
                if edge.poll() is not None:
                    echo(f"the edge agent exited with {edge.returncode}; see {wd / 'edge.log'}")
                    return 1
                if not sel.select(0.2):
                    continue
                chunk = os.read(sub.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    topic, _, payload = line.partition(b" ")
                    try:
                        events = parse_message(payload)
                    except ContractError as exc:
                        echo(f"invalid payload on {topic.decode(errors='replace')}: {exc}")
                        continue
                    for event in events:
                        counts[event.kind] = counts.get(event.kind, 0) + 1
                        if isinstance(event, Arrived | Moved | Departed):
                            movements.append(event)
                        echo(format_event(event))
        finally:
            sel.close()
        _stop(edge)
        ok, total = compare_with_truth(movements, truth)
        echo("")
        echo("events: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        echo(f"items whose movements match the scenario's ground truth: {ok}/{total}")
        echo(f"work folder (configs, logs, outbox): {wd}")
        return 0 if ok == total else 1
    finally:
        for proc in reversed(procs):
            _stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        for log in logs:
            log.close()
