"""The gateway's MQTT consumer: at least once, acknowledged only after the write.

* **Persistent session.** MQTT 5 with a stable client id, ``clean_start=False`` and a
  session expiry: while the gateway is down the broker queues its QoS 1 messages, and
  delivers them after it comes back (Telegraf's persistent-session model).
* **Manual acknowledgement.** paho's ``manual_ack``: a message's PUBACK is sent only once
  its events are durably applied, i.e. the store transaction (positions, dedupe records
  and the InfluxDB points, which are spooled in the same SQLite) has committed. A crash
  before that makes the broker deliver the message again; the store deduplicates by
  ``event_id``, so redeliveries and edge replays apply once.
* **Batching.** Messages that arrive in one burst on the socket are applied in one
  transaction (at most :data:`MAX_BATCH_EVENTS` events), then acknowledged in order.
* **Dead letters.** A payload that is not JSON, or not the event contract, is published
  to ``tagtrail/v1/<site>/deadletter`` with the reason, counted, and acknowledged. It
  never stops the consumer.
* **Scale-out.** With ``shared_group`` set, the subscriptions are
  ``$share/<group>/tagtrail/v1/<site>/+/events`` (and ``/status``): the broker spreads
  messages over the group's members. On Mosquitto an offline member with a persistent
  session keeps receiving its share, so every member needs its own stable client id.

The paho client is driven by asyncio through :class:`tagtrail.mqttio.PahoLoop`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tagtrail.errors import ContractError, TagtrailError
from tagtrail.events import TOPIC_ROOT, AnyEvent, deadletter_topic, parse_message
from tagtrail.gateway.config import GatewayMqttConfig
from tagtrail.mqttio import AUTH_REASONS, PahoLoop, make_ssl_context

logger = logging.getLogger(__name__)

DEADLETTER_PAYLOAD_MAX = 64 * 1024
"""Dead letters keep at most this many bytes of the original payload."""

MAX_BATCH_EVENTS = 2000
"""Events applied in one store transaction at most; a bigger burst is split."""


class ConsumerError(TagtrailError):
    """The consumer could not connect or apply events."""


@dataclass
class ConsumerStats:
    """Counters of a :class:`Consumer`."""

    connected: bool = False
    messages: int = 0
    events: int = 0
    batches: int = 0
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    apply_failures: int = 0
    connects: int = 0
    connect_failures: int = 0
    session_present: bool = False
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One valid message's events."""

    mid: int
    topic: str
    events: list[AnyEvent]


ApplyFn = Callable[[Sequence[AnyEvent]], None]
"""Applies events durably; returns once committed. Raises to refuse (no ack)."""


def subscriptions(config: GatewayMqttConfig) -> list[str]:
    """The topic filters the gateway subscribes to."""
    prefix = f"$share/{config.shared_group}/" if config.shared_group else ""
    topics = []
    for site in config.sites:
        topics.append(f"{prefix}{TOPIC_ROOT}/{site}/+/events")
        topics.append(f"{prefix}{TOPIC_ROOT}/{site}/+/status")
    return topics


def site_of(topic: str) -> str:
    """The site level of a ``tagtrail/v1/<site>/...`` topic ('unknown' if none)."""
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 and parts[2] else "unknown"


def dead_letter(topic: str, payload: bytes, reason: str, now: datetime) -> bytes:
    """The dead-letter message for a rejected payload."""
    kept = payload[:DEADLETTER_PAYLOAD_MAX]
    body: dict[str, Any] = {
        "reason": reason,
        "topic": topic,
        "received_at": now.isoformat(),
        "payload_bytes": len(payload),
        "truncated": len(kept) < len(payload),
    }
    try:
        body["payload"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        body["payload_base64"] = base64.b64encode(kept).decode()
    return json.dumps(body).encode()


class Consumer:
    """Consumes tagtrail events from MQTT and hands them to ``apply``.

    ``apply`` is called in the event loop with all events of a batch of messages and must
    commit them before it returns; the messages are acknowledged right after. If it
    raises, nothing of the batch is acknowledged and the connection is dropped, so the
    broker delivers the messages again after a reconnect.
    """

    def __init__(
        self,
        config: GatewayMqttConfig,
        apply: ApplyFn,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._apply = apply
        self._now = now
        self.stats = ConsumerStats()
        self._broker = f"{config.host}:{config.port}"
        self._conn: PahoLoop | None = None
        self._ready = asyncio.Event()
        self._pending: list[tuple[int, Delivery | None]] = []
        """Received, not yet acknowledged, in arrival order; None for dead letters."""
        self._pending_events = 0
        self._flush_handle: asyncio.Handle | None = None
        self._closing = False
        self._logged_error: str | None = None
        self._ssl = make_ssl_context(str(config.tls_ca_file) if config.tls_ca_file else None)

    @property
    def connected(self) -> bool:
        return self.stats.connected

    async def run(self) -> None:
        """Connect, consume and reconnect with backoff until cancelled or closed."""
        delay = self.config.reconnect_initial_s
        while not self._closing:
            ok = await self._session()
            if self._closing:
                break
            delay = self.config.reconnect_initial_s if ok else delay
            await asyncio.sleep(delay)
            if not ok:
                delay = min(delay * 2, self.config.reconnect_max_s)

    async def close(self) -> None:
        """Apply and acknowledge what was received, then disconnect cleanly."""
        self._closing = True
        self._flush()
        conn = self._conn
        if conn is not None and conn.open:
            conn.client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.closed.wait(), 5.0)
            if conn.open:
                conn.drop()

    # -- connection ---------------------------------------------------------------------

    def _make_client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if self.config.username is not None or self.config.password is not None:
            password = self.config.password
            client.username_pw_set(
                self.config.username or "",
                password.get_secret_value() if password is not None else None,
            )
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    async def _session(self) -> bool:
        client = self._make_client()
        conn = PahoLoop(client, name="tagtrail-gateway-mqtt", ssl_context=self._ssl)
        self._conn = conn
        self._ready.clear()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        try:
            try:
                await conn.connect(
                    self.config.host,
                    self.config.port,
                    keepalive=self.config.keepalive_s,
                    clean_start=False,
                    properties=props,
                )
            except OSError as exc:
                self._failed(f"cannot connect to MQTT broker {self._broker}: {exc}")
                return False
            ready = asyncio.create_task(self._ready.wait())
            closed = asyncio.create_task(conn.closed.wait())
            try:
                await asyncio.wait(
                    {ready, closed},
                    timeout=float(self.config.keepalive_s),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                ready.cancel()
                closed.cancel()
            if not self._ready.is_set():
                if conn.open:
                    self._failed(f"MQTT broker {self._broker} sent no CONNACK")
                return False
            await conn.closed.wait()
            return True
        finally:
            self._flush()
            if conn.open:
                conn.drop()
            self._conn = None
            self.stats.connected = False

    def _failed(self, message: str) -> None:
        self.stats.connect_failures += 1
        self.stats.last_error = message
        if message != self._logged_error:
            logger.error("%s; retrying", message)
            self._logged_error = message

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            hint = (
                " (check mqtt.username and mqtt.password)"
                if reason_code.value in AUTH_REASONS
                else ""
            )
            self._failed(f"MQTT broker {self._broker} refused the connection: {reason_code}{hint}")
            return
        self.stats.connected = True
        self.stats.connects += 1
        self.stats.session_present = bool(flags.session_present)
        self._logged_error = None
        topics = subscriptions(self.config)
        client.subscribe([(t, 1) for t in topics])
        logger.info(
            "connected to MQTT broker %s as %r (session %s); subscribed to %s",
            self._broker,
            self.config.client_id,
            "resumed" if flags.session_present else "new",
            ", ".join(topics),
        )
        self._ready.set()

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.stats.connected = False
        if not self._closing:
            self.stats.last_error = f"MQTT broker {self._broker}: disconnected: {reason_code}"
            logger.warning("%s", self.stats.last_error)

    # -- messages -----------------------------------------------------------------------

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        self.stats.messages += 1
        payload = bytes(msg.payload)
        try:
            events = parse_message(payload)
        except ContractError as exc:
            self._dead_letter(client, msg.topic, payload, str(exc))
            self._pending.append((msg.mid, None))
        else:
            self._pending.append((msg.mid, Delivery(msg.mid, msg.topic, events)))
            self._pending_events += len(events)
        if self._pending_events >= MAX_BATCH_EVENTS:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush()
        else:
            self._schedule_flush()

    def _dead_letter(self, client: Client, topic: str, payload: bytes, reason: str) -> None:
        kind = reason.split(":", 1)[0] if ":" in reason else reason
        self.stats.dead_letters += 1
        self.stats.dead_letter_reasons[kind] = self.stats.dead_letter_reasons.get(kind, 0) + 1
        target = deadletter_topic(site_of(topic))
        logger.warning("dead letter from %s: %s", topic, reason)
        client.publish(target, dead_letter(topic, payload, reason, self._now()), qos=1)

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Apply pending messages in one transaction, then acknowledge them in order."""
        self._flush_handle = None
        pending, self._pending = self._pending, []
        self._pending_events = 0
        conn = self._conn
        events = [e for _, d in pending if d is not None for e in d.events]
        if events:
            try:
                self._apply(events)
            except Exception as exc:
                self.stats.apply_failures += 1
                self.stats.last_error = f"cannot apply events: {exc}"
                logger.exception("cannot apply %d events; they stay unacknowledged", len(events))
                # Redelivery comes after a reconnect: drop the connection now.
                if conn is not None and conn.open:
                    conn.drop()
                return
            self.stats.batches += 1
            self.stats.events += len(events)
        if conn is None or not conn.open:
            return  # not acknowledged: the broker will deliver them again
        for mid, _ in pending:
            conn.client.ack(mid, 1)
