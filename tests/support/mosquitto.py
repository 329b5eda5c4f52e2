"""A private Mosquitto broker per test: free port, temporary directory, stopped by PID."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import free_port, port_open, require_executable


def make_test_certificates(folder: Path, ip: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for ``ip``: (ca.crt, server.crt, server.key)."""
    openssl = require_executable("openssl", "/usr/bin/openssl")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "server.ext"
    ext.write_text(f"subjectAltName=IP:{ip}\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=tagtrail test CA", "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ip}",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return ca_crt, crt, key


class Mosquitto:
    """A mosquitto process the test controls: start, stop (SIGTERM by PID), restart."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        users: dict[str, str] | None = None,
        persistence: bool = False,
        tls: bool = False,
    ) -> None:
        self.binary = require_executable("mosquitto", "/usr/sbin/mosquitto")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.ca_file: Path | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            # persistence=True keeps sessions and queued messages across stop()/start().
            f"persistence {'true' if persistence else 'false'}",
            "max_inflight_messages 0",
            "max_queued_messages 0",
        ]
        if persistence:
            lines.append(f"persistence_location {workdir}/")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Started as root, mosquitto drops to user 'mosquitto', which cannot read the
            # password file or write the persistence file in a private temporary folder.
            lines.append("user root")
        if users:
            pwfile = workdir / "passwd"
            pwfile.write_text("")
            pwbin = require_executable("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
            for user, password in users.items():
                subprocess.run([pwbin, "-b", str(pwfile), user, password], check=True)
            pwfile.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines += ["allow_anonymous true"]
        if tls:
            # tls=True: the listener speaks TLS only, with a server certificate for
            # 127.0.0.1 signed by a throw-away CA (self.ca_file).
            self.ca_file, cert, key = make_test_certificates(workdir / "tls", self.host)
            lines += [f"certfile {cert}", f"keyfile {key}"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
            if port_open(self.host, self.port, 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh anonymous broker on a free port."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_auth(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that accepts only user 'edge' with password 'right-password'."""
    broker = Mosquitto(tmp_path / "mosquitto-auth", users={"edge": "right-password"})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_persistent(tmp_path: Path) -> Iterator[Mosquitto]:
    """An anonymous broker that saves sessions and queued messages across stop()/start()."""
    broker = Mosquitto(tmp_path / "mosquitto-persistent", persistence=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_tls(tmp_path: Path) -> Iterator[Mosquitto]:
    """An anonymous broker whose listener speaks TLS only; trust ``broker.ca_file``."""
    broker = Mosquitto(tmp_path / "mosquitto-tls", tls=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
