"""Every reader type: a minimal config loads; an unsupported setting fails, naming its field.

The checks run through the same loader as ``tagtrail edge run`` and ``tagtrail check-config``
(YAML -> EdgeConfig), so what fails here fails at start, before any port is opened.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tagtrail.cli import main
from tagtrail.configfile import load_config
from tagtrail.docgen import reader_models, reader_type
from tagtrail.edge.agent import DRIVERS
from tagtrail.edge.config import EdgeConfig
from tagtrail.errors import ConfigError

ONE_ZONE = {"zone": "dock"}
ANTENNAS = {"antennas": [{"port": 1, "zone": "dock"}, {"port": 2, "zone": "staging"}]}

MINIMAL: dict[str, dict[str, Any]] = {
    "r2000": {"port": "/dev/ttyUSB0", **ANTENNAS},
    "em4100": {"port": "/dev/ttyUSB1", **ONE_ZONE},
    "m100": {"port": "/dev/ttyUSB2", **ONE_ZONE},
    "chafon": {"port": "/dev/ttyUSB3", **ANTENNAS},
    "mercury": {"port": "/dev/ttyACM0", **ANTENNAS},
    "ascii": {"port": "/dev/ttyACM1", **ONE_ZONE},
    "hid": {"device": "/dev/input/by-id/usb-scanner-event-kbd", **ONE_ZONE},
    "llrp": {"host": "speedway-1.local", **ANTENNAS},
    "r700": {"url": "https://r700-1.local", "password": "impinj", **ANTENNAS},
    "camera": {"source": "/dev/video0", **ONE_ZONE},
}

# (reader type, settings to change, the field the error must name, words of the reason)
UNSUPPORTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("r2000", {"baudrate": 250000}, "baudrate", "Input should be"),
    ("r2000", {"antennas": [{"port": 5, "zone": "x"}]}, "antennas", "ports 1-4"),
    ("r2000", {"repeat": 0}, "repeat", "greater than or equal to 1"),
    ("em4100", {"baudrate": 1234}, "baudrate", "Input should be"),
    ("m100", {"poll_count": 0}, "poll_count", "greater than or equal to 1"),
    ("m100", {"antennas": [{"port": 1, "zone": "x"}]}, "antennas", "Extra inputs"),
    ("chafon", {"layout": "18"}, "<reader>", "one antenna"),
    ("chafon", {"scan_time": 50, "round_timeout_s": 2.0}, "<reader>", "must exceed scan_time"),
    ("chafon", {"session": 4}, "session", "Input should be"),
    ("mercury", {"region": 300}, "region", "less than or equal to 255"),
    ("mercury", {"read_power_cdbm": 4000}, "read_power_cdbm", "less than or equal to 3150"),
    ("mercury", {"baudrate": 1000000}, "baudrate", "Input should be"),
    ("ascii", {"suffix": "semicolon"}, "suffix", "Input should be"),
    ("ascii", {"prefix": "\x02"}, "prefix", "printable"),
    ("hid", {"suffix": "space"}, "suffix", "Input should be"),
    ("hid", {"layout": "de"}, "layout", "Input should be"),
    ("llrp", {"session": 4}, "session", "Input should be"),
    ("llrp", {"port": 70000}, "port", "less than or equal to 65535"),
    (
        "llrp",
        {"antennas": [{"port": 1, "zone": "a"}, {"port": 1, "zone": "b"}]},
        "antennas",
        "once",
    ),
    ("r700", {"transmit_power_cdbm": 4000}, "transmit_power_cdbm", "less than or equal to 3300"),
    ("r700", {"url": "ftp://r700.local"}, "url", "URL scheme"),
    ("r700", {"antennas": [{"port": 5, "zone": "x"}]}, "antennas", "ports 1-4"),
    ("camera", {"max_decode_fps": 0}, "max_decode_fps", "greater than 0"),
    ("camera", {"engines": ["zxing", "zxing"]}, "<reader>", "each engine may appear once"),
    ("camera", {"engines": ["opencv"]}, "engines", "Input should be"),
    ("camera", {"regions": [{"x": 0.5, "y": 0, "width": 0.6, "height": 1}]}, "regions", "inside"),
]


def _edge_yaml(tmp_path: Path, reader: dict[str, Any]) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"site": "wh1", "device": "door-1", "readers": [reader]}))
    return path


def _reader(kind: str, **changes: Any) -> dict[str, Any]:
    reader = {"type": kind, "id": f"{kind}-1", **copy.deepcopy(MINIMAL[kind])}
    reader.update(changes)
    return reader


def test_the_table_covers_every_reader_type_and_driver() -> None:
    kinds = {reader_type(m) for m in reader_models()}
    assert set(MINIMAL) == kinds
    assert {kind for kind, *_ in UNSUPPORTED} == kinds
    assert set(DRIVERS) == set(reader_models())


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_reader_config_loads(tmp_path: Path, kind: str) -> None:
    cfg = load_config(_edge_yaml(tmp_path, _reader(kind)), EdgeConfig, "T", environ={})
    reader = cfg.readers[0]
    assert reader.type == kind
    assert reader.zone_of(1) == "dock"


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_unknown_reader_setting_is_named(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_edge_yaml(tmp_path, _reader(kind, tx_gain=3)), EdgeConfig, "T", environ={})
    assert f"readers.0.{kind}.tx_gain" in [p for p, _ in info.value.problems]


@pytest.mark.parametrize(
    ("kind", "changes", "field", "reason"),
    UNSUPPORTED,
    ids=[f"{k}-{f}-{i}" for i, (k, _, f, _) in enumerate(UNSUPPORTED)],
)
def test_unsupported_setting_fails_naming_the_field(
    tmp_path: Path, kind: str, changes: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_edge_yaml(tmp_path, _reader(kind, **changes)), EdgeConfig, "T", environ={})
    paths = [p for p, _ in info.value.problems]
    want = f"readers.0.{kind}" if field == "<reader>" else f"readers.0.{kind}.{field}"
    assert any(p == want or p.startswith(want + ".") for p in paths), info.value.problems
    assert reason in str(info.value)


def test_check_config_prints_the_field_and_exits_2(tmp_path: Path) -> None:
    path = _edge_yaml(tmp_path, _reader("mercury", region=300))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "readers.0.mercury.region" in result.output
