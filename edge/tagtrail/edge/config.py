"""``edge.yaml``: the edge agent's one validated configuration.

Environment overrides use the prefix ``TAGTRAIL_EDGE``, e.g.
``TAGTRAIL_EDGE__MQTT__PASSWORD``. See :mod:`tagtrail.configfile`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from tagtrail.configfile import load_config
from tagtrail.events import Name
from tagtrail.metrics import MetricsConfig
from tagtrail.readers.config import ReaderConfig

ENV_PREFIX = "TAGTRAIL_EDGE"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MqttConfig(_Strict):
    """Connection to the MQTT broker (MQTT 5, QoS 1)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(default=None, description="User name, if the broker wants one.")
    password: SecretStr | None = Field(
        default=None, description="Password; prefer TAGTRAIL_EDGE__MQTT__PASSWORD to the file."
    )
    client_id: str | None = Field(
        default=None,
        max_length=128,
        description="MQTT client id; default 'tagtrail-edge-<site>-<device>'.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive, seconds.")
    tls_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker with; enables TLS when set."
    )
    max_inflight: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Most unacknowledged QoS 1 messages at once. Bounded well below paho's "
        "65535 message ids, which wrap and overwrite queued messages.",
    )
    batch_max_events: int = Field(
        default=200, ge=1, le=5000, description="Most events in one MQTT message (JSON array)."
    )
    replay_rate_msgs_per_s: float = Field(
        default=200.0,
        gt=0,
        le=100_000,
        description="Rate limit for messages while replaying a backlog after an outage.",
    )
    reconnect_initial_s: float = Field(
        default=0.5, gt=0, le=60, description="First wait before reconnecting."
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between reconnect attempts."
    )


class OutboxConfig(_Strict):
    """The durable outbox: every event is committed here before it is published."""

    path: Path = Field(
        default=Path("/var/lib/tagtrail/edge-outbox.sqlite"),
        description="SQLite database file (WAL mode). Its folder is created if missing.",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite synchronous mode: 'full' survives power loss, 'normal' only "
        "process crashes, and is faster.",
    )
    warn_depth: int = Field(
        default=100_000, ge=1, description="Log a warning when more events than this wait."
    )


class SmoothingConfig(_Strict):
    """Turning raw reads into arrived / moved / departed events."""

    arrive_min_reads: int = Field(
        default=3, ge=1, le=1000, description="Reads needed within the window to arrive."
    )
    arrive_window_s: float = Field(
        default=2.0, gt=0, le=600, description="Window for counting arrival reads, seconds."
    )
    arrive_settle_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="Wait this long after an item's first read before choosing the zone it "
        "arrived in, so every antenna of a multiplexing reader has had its turn, seconds.",
    )
    zone_window_s: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="Window over which each zone's mean RSSI is computed, seconds.",
    )
    move_hysteresis_db: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="A new zone must beat the current one's mean RSSI by this much, dB.",
    )
    move_min_reads: int = Field(
        default=2, ge=1, le=1000, description="Reads needed in the new zone within the window."
    )
    move_holdoff_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="The new zone must stay dominant this long before a move, seconds.",
    )
    depart_after_s: float = Field(
        default=5.0, gt=0, le=86_400, description="Unseen this long means departed, seconds."
    )
    tick_s: float = Field(
        default=0.25, gt=0, le=60, description="How often departures are checked, seconds."
    )

    @model_validator(mode="after")
    def _check(self) -> SmoothingConfig:
        if self.depart_after_s <= self.move_holdoff_s:
            raise ValueError("depart_after_s must exceed move_holdoff_s")
        if self.arrive_settle_s >= self.arrive_window_s:
            raise ValueError("arrive_settle_s must be shorter than arrive_window_s")
        return self


class StatusConfig(_Strict):
    """Retained device status and heartbeats."""

    heartbeat_s: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds between heartbeats."
    )


class LoggingConfig(_Strict):
    """Logging of the agent."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )


class EdgeConfig(_Strict):
    """Configuration of one edge agent (one device)."""

    site: Name = Field(description="Site (warehouse) name, used in topics and events.")
    device: Name = Field(description="This device's name, used in topics and events.")
    readers: list[ReaderConfig] = Field(min_length=1, description="Readers this agent runs.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker connection.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Durable outbox.")
    smoothing: SmoothingConfig = Field(
        default_factory=SmoothingConfig, description="Read smoothing parameters."
    )
    status: StatusConfig = Field(default_factory=StatusConfig, description="Status messages.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Prometheus metrics endpoint (off by default)."
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Run the agent's clock this many times faster than real time. Only for "
        "simulator-driven demos and tests; keep 1.0 with real readers.",
    )

    @model_validator(mode="after")
    def _unique_readers(self) -> EdgeConfig:
        ids = [r.id for r in self.readers]
        if len(set(ids)) != len(ids):
            raise ValueError("readers: reader ids must be unique")
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"tagtrail-edge-{self.site}-{self.device}"


def load_edge_config(path: Path | str) -> EdgeConfig:
    """Load and validate ``edge.yaml``. Raises :class:`~tagtrail.errors.ConfigError`."""
    return load_config(path, EdgeConfig, ENV_PREFIX)
