"""The ``sim`` command: in-process through CliRunner and as ``python -m tagtrail.sim``."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tagtrail.sim import ground_truth, load_scenario
from tagtrail.sim.cli import sim_command
from tests.sim.helpers import SCENARIOS, command, frame_ok

PALLET = SCENARIOS / "pallet-50.yaml"


def test_runs_to_the_end_and_writes_ground_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    link = tmp_path / "reader0"
    result = CliRunner().invoke(
        sim_command,
        [
            str(PALLET),
            "--time-scale",
            "400",
            "--start-immediately",
            "--exit-at-end",
            "--grace",
            "1",
            "--ground-truth",
            str(truth),
            "--link",
            str(link),
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"LINK {link}"
    assert lines[1].startswith("READY /dev/")
    assert len(lines) == 2
    assert json.loads(truth.read_text()) == ground_truth(load_scenario(PALLET))
    assert not link.is_symlink()


def test_invalid_scenario_is_reported_with_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(PALLET.read_text())
    data["tags"][0]["visible"][0]["antenna"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(sim_command, [str(bad)])
    assert result.exit_code == 1
    assert "tags.0.visible.0.antenna" in result.output
    assert "READY" not in result.stdout


def read_line(proc: subprocess.Popen[bytes], within_s: float = 20.0) -> str:
    """One line of the child's stdout, waiting at most ``within_s`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + within_s
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no complete line in time, got {line!r}"
            if not sel.select(remaining):
                continue
            ch = os.read(proc.stdout.fileno(), 1)
            assert ch, f"stdout closed early; got {line!r}"
            line += ch
    return line.decode().rstrip("\n")


def read_frame(fd: int, within_s: float = 10.0) -> bytes:
    deadline = time.monotonic() + within_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while len(buf) < 2 or len(buf) < buf[1] + 2:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no complete frame in time, got {buf.hex(' ')}"
            if sel.select(remaining):
                buf += os.read(fd, 1)
    return buf


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_prints_ready_serves_and_stops_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    link = tmp_path / "reader0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagtrail.sim", str(PALLET), "--link", str(link)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert read_line(proc) == f"LINK {link}"
        ready = read_line(proc)
        assert ready.startswith("READY ")
        path = ready.removeprefix("READY ")
        assert os.readlink(link) == path
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, command(0x72))
            assert read_frame(fd) == bytes.fromhex("A0 05 01 72 01 09 DE")
            os.write(fd, command(0x89, 1))  # starts the clock; no tag is there at t=0
            reply = read_frame(fd)
            assert frame_ok(reply)
            assert reply[3:5] == bytes([0x89, 0x36])
        finally:
            os.close(fd)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"pallet-50" in err
    assert not link.is_symlink()
