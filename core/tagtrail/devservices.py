"""Private Mosquitto and InfluxDB processes for the demo and the tests.

Each runs on free loopback ports with its data in a given folder, and is stopped by PID.
Children get ``PR_SET_PDEATHSIG`` (Linux), so they die with the process that started
them even if it is killed with SIGKILL: a demo never leaves a broker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from tagtrail.errors import TagtrailError

PR_SET_PDEATHSIG = 1


class ServiceError(TagtrailError):
    """A helper service could not be found or started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def which(name: str, *candidates: str) -> str | None:
    for cand in (name, *candidates):
        found = shutil.which(cand)
        if found:
            return found
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc_name, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    own_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a child that dies with us; in its own session so a terminal's Ctrl-C
    reaches only us, and we stop the children in order."""
    return subprocess.Popen(  # noqa: S603 - our own programs, argument lists, no shell
        list(argv),
        stdout=stdout,
        stderr=stderr,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only ctypes.prctl, before exec
        start_new_session=own_session,
    )


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL if it would not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out waiting for {what}")
        time.sleep(0.05)


def mosquitto_config(port: int, workdir: Path, *, persistence: bool = False) -> str:
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        f"persistence {'true' if persistence else 'false'}",
        "max_inflight_messages 0",
        "max_queued_messages 0",
    ]
    if persistence:
        lines.append(f"persistence_location {workdir}/")
    return "\n".join(lines) + "\n"


def influxd_config(workdir: Path, http_port: int, bind_port: int) -> str:
    """An influxd 1.x config: loopback only, data under ``workdir``, no telemetry."""
    return "\n".join(
        [
            "reporting-disabled = true",
            f'bind-address = "127.0.0.1:{bind_port}"',
            "[meta]",
            f'  dir = "{workdir}/meta"',
            "[data]",
            f'  dir = "{workdir}/data"',
            f'  wal-dir = "{workdir}/wal"',
            '  index-version = "inmem"',
            "  query-log-enabled = false",
            "[http]",
            f'  bind-address = "127.0.0.1:{http_port}"',
            "  log-enabled = false",
            "[monitor]",
            "  store-enabled = false",
            "[continuous_queries]",
            "  enabled = false",
            "",
        ]
    )


def influx_ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=0.5) as resp:  # noqa: S310 - loopback
            return int(resp.status) == 204
    except OSError:
        return False


def start_mosquitto(workdir: Path, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    binary = which("mosquitto", "/usr/sbin/mosquitto")
    if binary is None:
        raise ServiceError("mosquitto is not installed (./demo.sh installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, workdir))
    proc = spawn([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_until(lambda: proc.poll() is not None or port_open(port), 10, "mosquitto")
    except ServiceError:
        stop(proc)
        raise
    if proc.poll() is not None:
        raise ServiceError("mosquitto exited at start")
    return proc, port


def start_influxd(workdir: Path, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    binary = which("influxd", "/usr/bin/influxd")
    if binary is None:
        raise ServiceError("influxd is not installed (./demo.sh installs Debian's influxdb)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(influxd_config(workdir, port, free_port()))
    proc = spawn([binary, "-config", str(conf)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or influx_ping(url), 30, "influxd")
    except ServiceError:
        stop(proc)
        raise
    if proc.poll() is not None:
        raise ServiceError("influxd exited at start")
    return proc, url
