"""Structured logs of a real edge agent: one JSON object per line, context, no secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tagtrail.devservices import free_port
from tests.support.pipeline import wait_for

SECRET = "pa55-Very-Secret-7d1c"


def _records(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_json_logs_carry_device_and_reader_and_never_the_password(tmp_path: Path) -> None:
    closed_port = free_port()  # nothing listens there: the agent keeps retrying
    cfg = {
        "site": "wh-log",
        "device": "door-log",
        "readers": [
            {
                "type": "r2000",
                "id": "dock-log",
                "port": str(tmp_path / "no-such-tty"),
                "antennas": [{"port": 1, "zone": "dock"}],
            }
        ],
        "mqtt": {
            "host": "127.0.0.1",
            "port": closed_port,
            "username": "edge",
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
        },
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
    }
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(cfg))
    stderr = tmp_path / "edge.log"
    env = {**os.environ, "TAGTRAIL_EDGE__MQTT__PASSWORD": SECRET}
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tagtrail",
                "--log-format",
                "json",
                "edge",
                "run",
                "-c",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:

        def reader_offline_logged() -> bool:
            try:
                return any(
                    r.get("reader") == "dock-log" and "offline" in r["message"]
                    for r in _records(stderr)
                )
            except json.JSONDecodeError:
                return False  # a line being written

        wait_for(reader_offline_logged, 30, f"reader offline in the log: {stderr.read_text()}")
        wait_for(
            lambda: "MQTT" in stderr.read_text() or "broker" in stderr.read_text(),
            30,
            "a broker connection failure in the log",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stderr.read_text()
    assert SECRET not in text
    records = _records(stderr)
    assert len(records) >= 3
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert record["site"] == "wh-log"
        assert record["device"] == "door-log"
    offline = [r for r in records if "offline" in r["message"] and r.get("reader")]
    assert offline
    assert offline[0]["level"] == "WARNING"
    assert offline[0]["reader"] == "dock-log"
