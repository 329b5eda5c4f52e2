"""Peak memory of the edge agent running 4 simulated R2000 readers.

Run: ``.venv/bin/python bench/bench_edge_rss.py [--seconds S] [--time-scale F]``

Starts a private mosquitto, four ``tagtrail sim`` processes playing
``hardware-sim/scenarios/bench-200.yaml`` (200 tags on 4 antennas each), and one
``tagtrail edge run`` with the four readers. After ``--seconds`` it reads the agent's
peak resident set (``VmHWM`` in ``/proc/<pid>/status``) and prints it against the 80 MB
target and against a baseline measured in the same run: a bare Python process that only
imports the agent's modules.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "hardware-sim" / "scenarios" / "bench-200.yaml"
TARGET_MB = 80.0


def vm(pid: int, key: str) -> float:
    """A /proc/<pid>/status memory figure in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    while b"READY" not in buf:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("simulator did not start")
        if sel.select(0.2):
            buf += os.read(proc.stdout.fileno(), 4096)
    sel.close()


def baseline_mb() -> float:
    code = (
        "import tagtrail.edge.agent, sys, time; "
        "sys.stdout.write('x\\n'); sys.stdout.flush(); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return vm(proc.pid, "VmHWM")
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--time-scale", type=float, default=10.0)
    args = parser.parse_args()
    base = baseline_mb()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        port = free_port()
        (wd / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        try:
            procs.append(
                subprocess.Popen([mosq, "-c", str(wd / "m.conf")], stderr=subprocess.DEVNULL)
            )
            spec = yaml.safe_load(SCENARIO.read_text())
            readers = []
            for i in range(4):
                link = wd / f"reader{i}"
                sim = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tagtrail.sim",
                        str(SCENARIO),
                        "--time-scale",
                        str(args.time_scale),
                        "--link",
                        str(link),
                        "--seed",
                        str(i + 1),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(sim)
                wait_ready(sim)
                readers.append(
                    {
                        "type": "r2000",
                        "id": f"r{i}",
                        "port": str(link),
                        "antennas": [
                            {"port": int(p), "zone": f"{z}-{i}"}
                            for p, z in spec["antennas"].items()
                        ],
                    }
                )
            cfg = {
                "site": "bench",
                "device": "edge-4",
                "time_scale": args.time_scale,
                "readers": readers,
                "mqtt": {"port": port},
                "outbox": {"path": str(wd / "outbox.sqlite")},
            }
            (wd / "edge.yaml").write_text(yaml.safe_dump(cfg))
            log = (wd / "edge.log").open("wb")
            edge = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tagtrail",
                    "--log-level",
                    "WARNING",
                    "edge",
                    "run",
                    "-c",
                    str(wd / "edge.yaml"),
                ],
                stdout=log,
                stderr=log,
            )
            log.close()
            procs.append(edge)
            peak_rss = 0.0
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline and edge.poll() is None:
                peak_rss = max(peak_rss, vm(edge.pid, "VmRSS"))
                time.sleep(0.5)
            hwm = vm(edge.pid, "VmHWM")
            ticks = os.sysconf("SC_CLK_TCK")
            stat = Path(f"/proc/{edge.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu_s = (int(stat[11]) + int(stat[12])) / ticks
            print(
                f"edge agent with 4 simulated R2000 readers (bench-200, {args.time_scale:g}x) "
                f"for {args.seconds:g} s"
            )
            print(
                f"peak RSS (VmHWM): {hwm:.1f} MB; target <= {TARGET_MB:.0f} MB: "
                f"{'met' if hwm <= TARGET_MB else 'NOT met'} ({hwm / TARGET_MB:.2f} of target)"
            )
            print(
                f"baseline, bare import of the agent's modules: {base:.1f} MB; "
                f"agent / baseline: {hwm / base:.2f}"
            )
            print(
                f"agent CPU: {cpu_s:.1f} s in {args.seconds:g} s"
                f" ({100 * cpu_s / args.seconds:.0f}% of one core)"
            )
            print(f"outbox left: {(wd / 'outbox.sqlite').stat().st_size / 1e6:.1f} MB file")
        finally:
            for proc in reversed(procs):
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()


if __name__ == "__main__":
    main()
