"""deploy/compose: Docker can't run here, so check what can be checked without it.

The compose file's structure, that every path it mounts or builds from exists, that every
variable it needs is in .env.example, that the gateway config it mounts passes the same
validation as ``tagtrail check-config`` (with the secrets the compose file sets), that
Grafana gets the provisioning the dashboards tests validate, and that Mosquitto's ACL lets
each client use exactly the topics tagtrail uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from paho.mqtt.client import topic_matches_sub

from tagtrail.configfile import load_config
from tagtrail.events import deadletter_topic, events_topic, status_topic
from tagtrail.gateway.config import ENV_PREFIX, GatewayConfig

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _env_example() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value
    return out


def test_services_and_volumes() -> None:
    compose = _compose()
    assert set(compose["services"]) == {"mosquitto", "influxdb", "grafana", "gateway"}
    named = set(compose["volumes"])
    for name, service in compose["services"].items():
        assert service["restart"] == "unless-stopped", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in named, f"{name}: undeclared volume {source}"
    gateway = compose["services"]["gateway"]
    assert gateway["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    assert gateway["depends_on"]["influxdb"]["condition"] == "service_healthy"


def test_every_mounted_or_built_path_exists() -> None:
    compose = _compose()
    checked = 0
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} is missing"
                checked += 1
        build = service.get("build")
        if build:
            context = COMPOSE_DIR / build["context"]
            assert (context / build["dockerfile"]).is_file(), name
            assert (context / "pyproject.toml").is_file(), "the build context is the repository"
    assert checked >= 6


def test_every_variable_is_in_env_example_and_no_secret_is_inline() -> None:
    text = COMPOSE.read_text()
    wanted = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert wanted
    assert wanted <= set(_env_example()), wanted - set(_env_example())
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "TOKEN")):
                assert str(value).startswith("${"), f"{name}: {key} is inline"


def test_the_mounted_gateway_config_is_valid_with_the_compose_secrets() -> None:
    gateway = _compose()["services"]["gateway"]
    (mount,) = [v for v in gateway["volumes"] if v.endswith("/etc/tagtrail/gateway.yaml:ro")]
    config_path = COMPOSE_DIR / mount.split(":")[0]
    env = {
        key: _env_example()[value[2:-1].split(":")[0]]
        for key, value in gateway["environment"].items()
    }
    assert all(key.startswith(f"{ENV_PREFIX}__") for key in env)
    cfg = load_config(config_path, GatewayConfig, ENV_PREFIX, environ=env)
    assert cfg.mqtt.host == "mosquitto"
    assert cfg.influx.backend == "v2"
    assert cfg.influx.url == "http://influxdb:8086"
    assert cfg.api.tokens[0].token.get_secret_value() == _env_example()["API_TOKEN"]
    assert cfg.mqtt.password is not None
    assert cfg.metrics.port == 9465
    assert str(cfg.store.path).startswith("/var/lib/tagtrail-gateway/")
    assert gateway["command"][-4:] == ["gateway", "run", "-c", "/etc/tagtrail/gateway.yaml"]
    influx_env = _compose()["services"]["influxdb"]["environment"]
    assert influx_env["DOCKER_INFLUXDB_INIT_BUCKET"] == cfg.influx.bucket
    assert influx_env["DOCKER_INFLUXDB_INIT_ORG"] == cfg.influx.org


def test_grafana_gets_the_influxdb_2_datasource_and_the_dashboards() -> None:
    grafana = _compose()["services"]["grafana"]
    targets = {v.split(":")[1]: COMPOSE_DIR / v.split(":")[0] for v in grafana["volumes"]}
    datasource = yaml.safe_load(
        targets["/etc/grafana/provisioning/datasources/tagtrail.yaml"].read_text()
    )
    (source,) = datasource["datasources"]
    assert source["uid"] == "tagtrail-influxdb"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    provider = yaml.safe_load(
        targets["/etc/grafana/provisioning/dashboards/tagtrail.yaml"].read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert targets[path].is_dir()
    assert sorted(p.name for p in targets[path].glob("*.json")) != []
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", yaml.safe_dump(datasource)))
    assert needed <= set(grafana["environment"])


def test_mosquitto_requires_auth_and_the_acl_fits_the_topics() -> None:
    conf = (COMPOSE_DIR / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert "password_file /mosquitto/config/passwd" in conf
    acl: dict[str, list[tuple[str, str]]] = {}
    user = ""
    for line in (COMPOSE_DIR / "mosquitto" / "acl").read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "user":
            user = parts[1]
        else:
            acl.setdefault(user, []).append((parts[1], parts[2]))

    def allowed(who: str, access: str, topic: str) -> bool:
        return any(
            mode in (access, "readwrite") and topic_matches_sub(pattern, topic)
            for mode, pattern in acl[who]
        )

    events, status = events_topic("wh-1", "door-1"), status_topic("wh-1", "door-1")
    dead = deadletter_topic("wh-1")
    assert allowed("edge", "write", events)
    assert allowed("edge", "write", status)
    assert not allowed("edge", "write", dead)
    assert not allowed("edge", "read", events)
    assert allowed("gateway", "read", events)
    assert allowed("gateway", "read", status)
    assert allowed("gateway", "write", dead)
    assert not allowed("gateway", "write", events)
