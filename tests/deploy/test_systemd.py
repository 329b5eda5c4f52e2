"""deploy/systemd units and deploy/udev rules: what can be checked without booting them.

``systemd-analyze verify`` loads each unit as systemd would (syntax, directives, the
executable) — with ExecStart pointed at this checkout's ``tagtrail``, since /opt/tagtrail
does not exist here. The command line in ExecStart must be one the CLI accepts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import require_executable

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
RULES = REPO / "deploy" / "udev" / "70-tagtrail-readers.rules"
INSTALLED = "/opt/tagtrail/bin/tagtrail"


def _directives(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_there_is_a_unit_for_the_edge_and_the_gateway() -> None:
    assert [u.name for u in UNITS] == ["tagtrail-edge.service", "tagtrail-gateway.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies_with_systemd(unit: Path, tmp_path: Path) -> None:
    analyze = require_executable("systemd-analyze", "/usr/bin/systemd-analyze")
    tagtrail = shutil.which("tagtrail", path=str(Path(sys.executable).parent))
    assert tagtrail is not None
    local = tmp_path / unit.name
    local.write_text(unit.read_text().replace(INSTALLED, tagtrail))
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_hardened_and_keeps_state(unit: Path) -> None:
    d = _directives(unit)
    assert d["DynamicUser"] == ["yes"] or "User" in d
    assert d["ProtectSystem"] == ["strict"]
    assert d["NoNewPrivileges"] == ["yes"]
    assert d["Restart"] == ["on-failure"]
    assert d["RestartPreventExitStatus"] == ["2"]  # config errors exit 2
    assert d["CapabilityBoundingSet"] == [""]
    state = d["StateDirectory"][0]
    assert state == unit.stem  # /var/lib/tagtrail-edge, /var/lib/tagtrail-gateway
    assert d["WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exec_start_is_a_command_the_cli_accepts(unit: Path) -> None:
    (exec_start,) = _directives(unit)["ExecStart"]
    argv = exec_start.split()
    assert argv[0] == INSTALLED
    component = unit.stem.removeprefix("tagtrail-")
    assert argv[1:] == [
        "--log-format",
        "json",
        component,
        "run",
        "-c",
        f"/etc/tagtrail/{component}.yaml",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "tagtrail", *argv[1:-2], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout


def test_edge_unit_reaches_reader_devices_and_the_gateway_none() -> None:
    edge = _directives(REPO / "deploy/systemd/tagtrail-edge.service")
    assert set(edge["SupplementaryGroups"][0].split()) == {"dialout", "input", "video"}
    allowed = {rule.split()[0] for rule in edge["DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyACM", "char-ttyS", "char-input"} <= allowed
    gateway = _directives(REPO / "deploy/systemd/tagtrail-gateway.service")
    assert gateway["PrivateDevices"] == ["yes"]


def test_udev_rules_give_every_reader_a_unique_stable_name() -> None:
    text = RULES.read_text().replace("\\\n", " ")
    rules = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(rules) >= 5
    names = []
    for rule in rules:
        pairs = [p.strip() for p in rule.split(",")]
        for pair in pairs:
            assert re.fullmatch(r'[A-Za-z]+(\{[A-Za-z_]+\})?(==|\+=|=|!=)"[^"]*"', pair), pair
        assert any(p.startswith("SUBSYSTEM==") for p in pairs)
        (symlink,) = [p for p in pairs if p.startswith("SYMLINK+=")]
        names.append(symlink.split('"')[1])
    assert all(n.startswith("tagtrail/") for n in names)
    assert len(set(names)) == len(names)
