"""Config loading: YAML plus environment overrides; failures name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagtrail.configfile import load_config
from tagtrail.edge.config import EdgeConfig
from tagtrail.errors import ConfigError
from tagtrail.readers.config import R2000ReaderConfig

GOOD = """
site: wh1
device: door-1
readers:
  - type: r2000
    id: dock
    port: /dev/ttyUSB0
    antennas:
      - {port: 1, zone: dock-door-1}
      - {port: 2, zone: staging}
mqtt:
  host: broker.local
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


def test_valid_config_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD), EdgeConfig, "T", environ={})
    assert cfg.mqtt.port == 1883
    reader = cfg.readers[0]
    assert isinstance(reader, R2000ReaderConfig)
    assert reader.baudrate == 115200
    assert reader.zone_of(2) == "staging"
    assert cfg.client_id == "tagtrail-edge-wh1-door-1"


def test_environment_overrides_secrets_and_nested_items(tmp_path: Path) -> None:
    env = {
        "T__MQTT__PASSWORD": "s3cret",
        "T__MQTT__PORT": "8883",
        "T__READERS__0__PORT": "/dev/ttyUSB7",
        "OTHER": "x",
    }
    cfg = load_config(_write(tmp_path, GOOD), EdgeConfig, "T", environ=env)
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert cfg.mqtt.port == 8883
    reader = cfg.readers[0]
    assert isinstance(reader, R2000ReaderConfig)
    assert reader.port == "/dev/ttyUSB7"


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        (GOOD + "colour: red\n", "colour", "Extra inputs"),
        (GOOD.replace("port: 1,", "port: 9,"), "readers.0.r2000.antennas.0.port", "less than"),
        (GOOD.replace("type: r2000", "type: r9000"), "readers.0", "does not match"),
        (GOOD.replace("host: broker.local", "port: http"), "mqtt.port", "integer"),
        (GOOD.replace("site: wh1", "site: 'wh 1'"), "site", "letters"),
        ("site: [unclosed", "<yaml>", ""),
        ("- a\n- b\n", "<root>", "mapping"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, text: str, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), EdgeConfig, "T", environ={})
    paths = [p for p, _ in info.value.problems]
    assert path in paths, info.value.problems
    assert reason in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "nope.yaml", EdgeConfig, "T", environ={})


def test_env_override_of_missing_list_item(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such list item"):
        load_config(_write(tmp_path, GOOD), EdgeConfig, "T", environ={"T__READERS__5__PORT": "x"})
