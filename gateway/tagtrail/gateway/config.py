"""``gateway.yaml``: the gateway's one validated configuration.

Environment overrides use the prefix ``TAGTRAIL_GATEWAY``, e.g.
``TAGTRAIL_GATEWAY__INFLUX__TOKEN`` or ``TAGTRAIL_GATEWAY__API__TOKENS__0__TOKEN``.
See :mod:`tagtrail.configfile`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from tagtrail.configfile import load_config
from tagtrail.metrics import MetricsConfig

ENV_PREFIX = "TAGTRAIL_GATEWAY"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewayMqttConfig(_Strict):
    """The MQTT consumer (MQTT 5, persistent session, manual acknowledgement)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(default=None, description="User name, if the broker wants one.")
    password: SecretStr | None = Field(
        default=None, description="Password; prefer TAGTRAIL_GATEWAY__MQTT__PASSWORD."
    )
    client_id: str = Field(
        default="tagtrail-gateway-1",
        min_length=1,
        max_length=128,
        description="Stable MQTT client id: the broker keeps this session's queued messages "
        "while the gateway is down. Give each gateway its own.",
    )
    session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        le=4_294_967_295,
        description="How long the broker keeps the session (and queues events) while the "
        "gateway is away, seconds.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive, seconds.")
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Subscribe as a member of this shared-subscription group "
        "($share/<group>/...) to spread sites over several gateways.",
    )
    sites: list[str] = Field(
        default_factory=lambda: ["+"],
        min_length=1,
        description="Sites to consume ('+' for all).",
    )
    receive_maximum: int = Field(
        default=200,
        ge=1,
        le=65535,
        description="Most unacknowledged QoS 1 messages the broker may send at once.",
    )
    tls_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker with; enables TLS when set."
    )
    reconnect_initial_s: float = Field(
        default=0.5, gt=0, le=60, description="First wait before reconnecting."
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between reconnect attempts."
    )


class StoreConfig(_Strict):
    """The positions store: SQLite in WAL mode."""

    path: Path = Field(
        default=Path("/var/lib/tagtrail/gateway.sqlite"),
        description="SQLite database of positions, processed event ids and the InfluxDB "
        "spool. Its folder is created if missing.",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="SQLite synchronous mode ('full' survives power loss)."
    )
    dedupe_retention_s: float = Field(
        default=7 * 86_400,
        gt=0,
        description="How long processed event ids are remembered for deduplication, seconds.",
    )


class InfluxV1Config(_Strict):
    """InfluxDB through the 1.x HTTP API (/write and /query). 2.x and 3.x accept it too."""

    backend: Literal["v1"] = Field(description="Write backend discriminator.")
    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    database: str = Field(default="tagtrail", min_length=1, description="Database name (db).")
    retention_policy: str | None = Field(
        default=None, description="Retention policy (rp); the database default if unset."
    )
    username: str | None = Field(default=None, description="User name, if auth is enabled.")
    password: SecretStr | None = Field(
        default=None, description="Password; prefer TAGTRAIL_GATEWAY__INFLUX__PASSWORD."
    )
    create_database: bool = Field(
        default=True, description="Create the database at start if missing (1.x only)."
    )


class InfluxV2Config(_Strict):
    """InfluxDB through influxdb-client's v2 write API (1.8+, 2.x, 3.x).

    Queries for /v1/movements still use InfluxQL through /query, which 2.x serves for a
    bucket with a DBRP mapping and 3.x serves natively.
    """

    backend: Literal["v2"] = Field(description="Write backend discriminator.")
    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    org: str = Field(default="tagtrail", description="Organisation (ignored by 1.8).")
    bucket: str = Field(
        default="tagtrail/autogen",
        min_length=1,
        description="Bucket; on 1.8 'database/retention_policy'. Name 2.x buckets the same "
        "way, with a DBRP mapping, so InfluxQL queries find them.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="API token (on 1.8 'username:password'); prefer "
        "TAGTRAIL_GATEWAY__INFLUX__TOKEN.",
    )


class InfluxWriteConfig(_Strict):
    """How points are written: batching, retries, reject log."""

    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Most points per write.")
    flush_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="Write at least this often when points wait."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="HTTP timeout per write.")
    retry_initial_s: float = Field(
        default=0.5, gt=0, le=60, description="First wait before retrying a failed write."
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between retries."
    )
    reject_log: Path = Field(
        default=Path("/var/lib/tagtrail/influx-rejects.jsonl"),
        description="Points InfluxDB refused with a 4xx go here, one JSON line each, with "
        "the reason. They are never retried.",
    )
    stock_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="How often the stock measurement (count per zone) is written, seconds.",
    )


InfluxBackendConfig = Annotated[InfluxV1Config | InfluxV2Config, Field(discriminator="backend")]


Scope = Literal["read", "stream"]
ALL_SCOPES: tuple[Scope, ...] = ("read", "stream")


class ApiToken(_Strict):
    """A bearer token and what it may do."""

    name: str = Field(min_length=1, max_length=64, description="Who holds it (for logs).")
    token: SecretStr = Field(description="The bearer token; at least 16 characters.")
    scopes: list[Scope] = Field(
        default_factory=lambda: list(ALL_SCOPES),
        min_length=1,
        description="'read' for the REST endpoints, 'stream' for /v1/stream.",
    )

    @model_validator(mode="after")
    def _long_enough(self) -> ApiToken:
        if len(self.token.get_secret_value()) < 16:
            raise ValueError("token must be at least 16 characters")
        return self


class ApiConfig(_Strict):
    """The HTTP API (FastAPI + uvicorn)."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: any free port).")
    tokens: list[ApiToken] = Field(
        min_length=1, description="Bearer tokens; every endpoint but health needs one."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS."
    )
    page_max: int = Field(
        default=1000, ge=1, le=100_000, description="Largest page /v1/items returns."
    )
    stream_queue: int = Field(
        default=1000,
        ge=10,
        le=1_000_000,
        description="Events buffered per /v1/stream client; a client that falls further "
        "behind is disconnected (it can resume from the REST endpoints).",
    )


class GatewayConfig(_Strict):
    """Configuration of one gateway."""

    mqtt: GatewayMqttConfig = Field(default_factory=GatewayMqttConfig, description="MQTT consumer.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Positions store.")
    influx: InfluxBackendConfig = Field(
        default_factory=lambda: InfluxV1Config(backend="v1"),
        description="InfluxDB connection; 'backend' picks v1 or v2.",
    )
    write: InfluxWriteConfig = Field(
        default_factory=InfluxWriteConfig, description="InfluxDB write behaviour."
    )
    api: ApiConfig = Field(description="HTTP API.")
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Prometheus metrics endpoint (off by default)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )


def load_gateway_config(path: Path | str) -> GatewayConfig:
    """Load and validate ``gateway.yaml``. Raises :class:`~tagtrail.errors.ConfigError`."""
    return load_config(path, GatewayConfig, ENV_PREFIX)
