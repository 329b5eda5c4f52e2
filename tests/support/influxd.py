"""A private InfluxDB 1.x (Debian's influxd 1.6) per test: free ports, temporary dirs.

Stopped by PID; ``stop()`` then ``start()`` restarts it on the same port with the same
data, for outage tests.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagtrail.devservices import influx_ping, influxd_config
from tests.support.services import free_port, require_executable


class Influxd:
    """An influxd process the test controls, with a small InfluxQL helper."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.binary = require_executable("influxd", "/usr/bin/influxd")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.bind_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "influxd.log"
        self.conf = workdir / "influxdb.conf"
        self.conf.write_text(influxd_config(workdir, self.port, self.bind_port))

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited: {self.log_path.read_text()[-2000:]}")
            if self.ping():
                return
            time.sleep(0.1)
        raise RuntimeError("influxd did not answer /ping")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ping(self) -> bool:
        return influx_ping(self.url)

    def query(self, q: str, db: str | None = None, *, epoch: str = "ns") -> list[dict[str, Any]]:
        """Run InfluxQL; return the result list (each with optional 'series')."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(self.url + "/query", data=body, method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            data: dict[str, Any] = json.loads(resp.read())
        results: list[dict[str, Any]] = data.get("results", [])
        for r in results:
            if "error" in r:
                raise AssertionError(f"InfluxQL error: {r['error']} in {q}")
        return results

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The first series of the first result as a list of column->value dicts."""
        results = self.query(q, db)
        series = results[0].get("series", []) if results else []
        if not series:
            return []
        cols = series[0]["columns"]
        return [dict(zip(cols, values, strict=True)) for values in series[0]["values"]]

    def write(self, db: str, lines: str) -> None:
        url = f"{self.url}/write?db={urllib.parse.quote(db)}"
        req = urllib.request.Request(url, data=lines.encode(), method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=30):  # noqa: S310
            pass


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A fresh influxd 1.6 on free ports, with its data in the test's temporary folder."""
    server = Influxd(tmp_path / "influxd")
    server.start()
    try:
        yield server
    finally:
        server.stop()
