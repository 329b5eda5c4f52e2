"""Every example configuration passes ``tagtrail check-config``, as a user would run it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tagtrail.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))


def test_there_are_examples_for_a_two_door_site() -> None:
    site = REPO / "examples" / "two-door-site"
    edges = [yaml.safe_load(p.read_text()) for p in sorted(site.glob("edge-*.yaml"))]
    assert len(edges) == 2
    types = {r["type"] for edge in edges for r in edge["readers"]}
    # fixed readers, a camera and handhelds, as the issue asks
    assert {"llrp", "r700"} <= types
    assert {"ascii", "hid"} <= types
    assert "camera" in types
    assert (site / "gateway.yaml").is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_example_passes_check_config(path: Path) -> None:
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    # secrets stay out of the examples: only placeholders the environment replaces
    text = path.read_text()
    for line in text.splitlines():
        if "password:" in line or "token:" in line:
            assert "set-from-the-environment" in line, line
