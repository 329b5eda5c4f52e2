"""The ``tagtrail`` command line as a user runs it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from click.testing import CliRunner

from tagtrail.cli import _LazyGroup, main
from tests.support.pipeline import SCENARIOS
from tests.support.services import require_executable

VALID = """
site: wh1
device: door-1
readers:
  - type: r2000
    id: dock
    port: /dev/ttyUSB0
    antennas: [{port: 1, zone: dock-door-1}]
"""


def test_check_config_valid(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(VALID)
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid edge config (1 reader(s), site wh1, device door-1)" in result.output


def test_check_config_names_each_failing_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        VALID.replace("port: 1,", "port: 7,").replace("device: door-1", "device: 'door 1'")
        + "mqtt: {port: 0, colour: red}\n"
    )
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    for field in (
        "device:",
        "readers.0.r2000.antennas: R2000 readers have antenna ports 1-4",
        "mqtt.port:",
        "mqtt.colour: Extra inputs are not permitted",
    ):
        assert field in result.output, result.output
    assert "Traceback" not in result.output


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check-config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "No such file" in result.output


def test_edge_run_refuses_an_invalid_config_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(VALID + "smoothing: {depart_after_s: -1}\n")
    result = CliRunner().invoke(main, ["edge", "run", "-c", str(path)])
    assert result.exit_code == 2
    assert "smoothing.depart_after_s" in result.output


def test_schema_check_detects_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["schema", "--check", "--root", str(tmp_path)]).exit_code == 1
    wrote = runner.invoke(main, ["schema", "--write", "--root", str(tmp_path)])
    assert wrote.exit_code == 0
    assert "docs/DATA_FORMAT.md" in wrote.output
    assert runner.invoke(main, ["schema", "--check", "--root", str(tmp_path)]).exit_code == 0


def test_decode_is_a_subcommand() -> None:
    result = CliRunner().invoke(main, ["decode", "--protocol", "r2000", "A0 03 01 72 EA"])
    assert result.exit_code == 0, result.output
    assert '"command"' in result.output or '"cmd"' in result.output


def test_demo_runs_the_whole_pipeline_and_matches_ground_truth(tmp_path: Path) -> None:
    require_executable("mosquitto", "/usr/sbin/mosquitto")
    require_executable("influxd", "/usr/bin/influxd")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tagtrail",
            "demo",
            "--scenario",
            str(SCENARIOS / "pallet-50.yaml"),
            "--time-scale",
            "10",
            "--once",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "positions matching the scenario's ground truth: 50/50" in proc.stdout
    found = re.search(r"InfluxDB movement points: (\d+) \(expected (\d+)\)", proc.stdout)
    assert found is not None
    assert found.group(1) == found.group(2)
    assert int(found.group(1)) > 100
    assert " arrived " in proc.stdout
    assert " moved " in proc.stdout
    assert "API http://127.0.0.1:" in proc.stdout
    for name in ("edge", "gateway", "sim", "influxd", "mosquitto"):
        assert (tmp_path / "demo" / f"{name}.log").exists()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_demo_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    require_executable("mosquitto", "/usr/sbin/mosquitto")
    require_executable("influxd", "/usr/bin/influxd")
    workdir = tmp_path / "demo-loop"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tagtrail",
            "demo",
            "--plain",
            "--time-scale",
            "10",
            "--workdir",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while b" arrived " not in seen:  # the looping scenario is flowing through the API
            assert time.monotonic() < deadline, seen.decode(errors="replace")[-3000:]
            line = proc.stdout.readline()
            assert line, seen.decode(errors="replace")[-3000:]
            seen += line
        assert len(_processes_mentioning(str(workdir))) >= 5  # broker, influxd, sim, edge, gw
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0, rest.decode(errors="replace")[-3000:]
    assert b"stopping: edge, gateway, simulator, influxd, mosquitto" in rest
    assert _processes_mentioning(str(workdir)) == []


def test_check_config_knows_gateway_configs(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "influx: {backend: v1, url: 'http://127.0.0.1:8086'}\n"
        "api: {tokens: [{name: ops, token: 0123456789abcdef0123}]}\n"
    )
    ok = CliRunner().invoke(main, ["check-config", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "valid gateway config (InfluxDB v1" in ok.output
    path.write_text(
        "influx: {backend: v3}\napi: {tokens: [{name: ops, token: short}], port: 99999}\n"
    )
    bad = CliRunner().invoke(main, ["check-config", str(path)])
    assert bad.exit_code == 2
    assert "influx:" in bad.output
    assert "api.tokens.0: token must be at least 16 characters" in bad.output
    assert "api.port:" in bad.output


def test_lazy_commands_load_when_named_and_list_without_loading() -> None:
    group = main
    assert isinstance(group, _LazyGroup)
    lazy = group.lazy
    assert set(group.lazy_help) == set(lazy)
    ctx = click.Context(group)
    for name in lazy:
        command = group.get_command(ctx, name)
        assert isinstance(command, click.Command), name
    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0
    for name in lazy:
        assert f"  {name} " in listing.output
