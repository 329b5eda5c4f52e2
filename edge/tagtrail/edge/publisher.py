"""Publishing the outbox over MQTT 5 (paho-mqtt 2.x, QoS 1), driven by asyncio.

The publisher reads events from the durable :class:`~tagtrail.edge.outbox.Outbox` in
sequence order, sends them as JSON arrays of up to ``batch_max_events`` events per MQTT
message on ``tagtrail/v1/<site>/<device>/events`` and deletes them from the outbox only
when the broker acknowledges the message (PUBACK with a reason code below 0x80).

Design, and why:

* **asyncio, no paho threads.** :class:`tagtrail.mqttio.PahoLoop` drives the client from
  the event loop (socket callbacks, ``loop_read`` / ``loop_write`` / ``loop_misc``); only
  the blocking TCP (and TLS) connect runs in the default executor.
* **A fresh paho Client per connection, with clean_start.** paho keeps unacknowledged
  QoS 1 messages of a client and re-sends them itself after a reconnect. The outbox is the
  only source of truth here, so every connection gets a new Client (and a clean session
  at the broker); after a reconnect the publisher re-reads the outbox from its first
  unacknowledged row. A re-sent event always carries the same ``event_id``.
* **Bounded in flight.** At most ``max_inflight`` event messages wait for a PUBACK. paho's
  message ids wrap at 65535, and unthrottled publishing can overwrite still-queued
  messages (paho.mqtt.python issue 377); a small window makes that impossible and keeps
  memory flat however large the backlog is.
* **Rate limit.** Event messages pass a token bucket of ``replay_rate_msgs_per_s`` (burst
  up to the in-flight window), so replaying a large backlog after an outage does not
  flood the broker. The bucket runs on the event loop's clock, like the sleeps it causes.
* **Event-driven.** The sender sleeps on an :class:`asyncio.Event` that :meth:`notify`
  (events appended), PUBACKs (window space) and close set. It never polls the database.
* **Acks are batched.** PUBACKs are collected while paho parses a read and deleted from
  the outbox in one transaction per read, before any other outbox read can happen.

Status: the Last Will (``will_payload``, retained, QoS 1) is set on the status topic on
every connect; after each successful connect ``status_payload()`` is published retained;
:meth:`Publisher.publish_status` publishes heartbeats; :meth:`Publisher.close` publishes a
final status and disconnects cleanly (so the broker does not send the will).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tagtrail.clock import Clock
from tagtrail.edge.config import MqttConfig
from tagtrail.edge.outbox import Outbox, OutboxRow
from tagtrail.errors import OutboxError, PublishError
from tagtrail.events import encode_payloads, events_topic, status_topic
from tagtrail.metrics import LatencyHistogram
from tagtrail.mqttio import AUTH_REASONS, PahoLoop, TrackingSSLContext, make_ssl_context

logger = logging.getLogger(__name__)

_READ_AHEAD_MESSAGES = 16
"""At most this many messages' worth of rows are read from the outbox at once."""


class PublishObserver(Protocol):
    """Hook to watch what is sent and acknowledged (tests prove no resend after an ack)."""

    def on_sent(self, event_ids: Sequence[str]) -> None:
        """A message carrying these events was handed to the connection."""

    def on_acked(self, event_ids: Sequence[str]) -> None:
        """The broker acknowledged these events and they were deleted from the outbox."""


@dataclass
class PublisherStats:
    """Counters and state of a :class:`Publisher`, for status messages and tests."""

    connected: bool = False
    messages_published: int = 0
    """Event messages handed to a connection (re-sends after a reconnect count again)."""
    events_acked: int = 0
    """Events acknowledged by the broker and deleted from the outbox."""
    inflight: int = 0
    """Event messages sent and not yet acknowledged on the current connection."""
    reconnects: int = 0
    """Successful connections after the first one."""
    connect_failures: int = 0
    """Connection attempts that failed: unreachable broker, refused CONNACK, no CONNACK."""
    last_error: str | None = None
    """The latest connection or publish error, human-readable; kept after a recovery."""
    last_rtt_s: float | None = None
    """Latest publish -> PUBACK round trip of an event message, by the injected clock."""
    rtt: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Every publish -> PUBACK round trip of an event message, seconds."""


@dataclass(eq=False)
class _Batch:
    rows: list[OutboxRow]
    payload: bytes
    sent_at: float = 0.0
    attempts: int = 0

    @property
    def event_ids(self) -> list[str]:
        return [r.event_id for r in self.rows]

    @property
    def seqs(self) -> list[int]:
        return [r.seq for r in self.rows]


@dataclass(eq=False)
class _Connection:
    """State of one paho Client, from connect to socket close."""

    client: Client
    io: PahoLoop
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    refused: str | None = None
    cursor: int = 0
    inflight: dict[int, _Batch] = field(default_factory=dict)
    status_mids: set[int] = field(default_factory=set)
    retry: deque[_Batch] = field(default_factory=deque)
    timers: set[asyncio.TimerHandle] = field(default_factory=set)

    @property
    def open(self) -> bool:
        return self.io.open

    @property
    def closed(self) -> asyncio.Event:
        return self.io.closed


class _TokenBucket:
    def __init__(self, rate: float, burst: float, now: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.now = now
        self.tokens = self.burst
        self.last = now()

    async def take(self) -> None:
        while True:
            t = self.now()
            self.tokens = min(self.burst, self.tokens + (t - self.last) * self.rate)
            self.last = t
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class Publisher:
    """Publishes the outbox to one MQTT broker until cancelled or closed.

    ``client_id`` is the MQTT client id; ``will_payload`` is the retained Last Will set on
    the status topic; ``status_payload``, if given, is called after every successful
    connect and its result published retained on the status topic.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        site: str,
        device: str,
        client_id: str,
        outbox: Outbox,
        clock: Clock,
        will_payload: bytes,
        status_payload: Callable[[], bytes] | None = None,
        observer: PublishObserver | None = None,
    ) -> None:
        self.config = config
        self.site = site
        self.device = device
        self.client_id = client_id
        self.events_topic = events_topic(site, device)
        self.status_topic = status_topic(site, device)
        self.stats = PublisherStats()
        self._outbox = outbox
        self._clock = clock
        self._will_payload = will_payload
        self._status_payload = status_payload
        self._observer = observer
        self._broker = f"{config.host}:{config.port}"
        self._ssl_context = self._make_ssl_context(config)
        self._conn: _Connection | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._run_done = asyncio.Event()
        self._running = False
        self._closing = False
        self._closed = False
        self._ever_connected = False
        self._logged_error: str | None = None
        self._acked: list[_Batch] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # -- public API -----------------------------------------------------------------

    def notify(self) -> None:
        """Tell the sender that new events were appended to the outbox."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.open and conn.ready.is_set()

    async def run(self) -> None:
        """Connect, publish and reconnect until cancelled or :meth:`close` is called.

        Raises :class:`OutboxError` if the outbox fails; connection problems are retried.
        """
        if self._running:
            raise PublishError("Publisher.run() is already running")
        if self._closing:
            return
        self._running = True
        # Fresh events: a Publisher may be run again under another event loop.
        self._wake = asyncio.Event()
        self._wake.set()
        self._progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._run_done = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        delay = self.config.reconnect_initial_s
        try:
            while not self._closing:
                connected = await self._session()
                if self._closing:
                    break
                if connected:
                    delay = self.config.reconnect_initial_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2.0, self.config.reconnect_max_s)
        finally:
            self._running = False
            self._run_done.set()
            self._progress.set()

    async def publish_status(self, payload: bytes) -> bool:
        """Publish ``payload`` retained (QoS 1) on the status topic if connected.

        Returns whether it was handed to a connection.
        """
        conn = self._conn
        if conn is None or not conn.open or not conn.ready.is_set():
            return False
        return self._send_status(conn, payload)

    async def close(self, final_status: bytes | None = None, timeout_s: float = 5.0) -> None:
        """Stop publishing and disconnect cleanly.

        If connected: let the outbox drain for up to half of ``timeout_s``, publish
        ``final_status`` retained, wait up to ``timeout_s`` in all for
        outstanding PUBACKs, then send DISCONNECT (so the broker discards the will).
        Unacknowledged events stay in the outbox. Returns once :meth:`run` has ended.
        """
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = self._conn
        if conn is not None and conn.open and conn.ready.is_set() and self._outbox.depth():
            # Connected: give events committed just before the stop (the final reader
            # statuses, say) half the time to go out. What does not stays in the outbox.
            self.notify()
            await self._wait_for(
                lambda: not conn.open or self._outbox.depth() == 0, loop.time() + timeout_s / 2
            )
        self._closing = True
        self._stop.set()
        self._wake.set()
        self._progress.set()
        if conn is not None and conn.open and conn.ready.is_set():
            if final_status is not None:
                self._send_status(conn, final_status)
            await self._wait_for(
                lambda: not conn.open or (not conn.inflight and not conn.status_mids), deadline
            )
            if conn.open:
                conn.client.disconnect()
                await self._wait_for(lambda: not conn.open, deadline + 1.0)
            if conn.open:
                logger.warning("MQTT broker %s: clean disconnect timed out", self._broker)
        # Still connecting (or the disconnect timed out): nothing was published on this
        # connection that the outbox does not still hold, so just close the socket.
        current = self._conn
        if current is not None and current.open:
            self._drop(current)
        if self._running:
            await self._wait_for(self._run_done.is_set, loop.time() + 5.0)
        self._flush_acks()
        self._closed = True
        logger.info(
            "publisher closed: %d events acknowledged, %d left in the outbox",
            self.stats.events_acked,
            self._outbox.depth(),
        )

    # -- connection lifecycle ---------------------------------------------------------

    @staticmethod
    def _make_ssl_context(config: MqttConfig) -> TrackingSSLContext | None:
        if config.tls_ca_file is None:
            return None
        try:
            return make_ssl_context(str(config.tls_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(
                f"MQTT TLS: cannot load CA file {config.tls_ca_file}: {exc}"
            ) from exc

    def _make_client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        # Our own window bounds what is in flight; paho must not queue on its own.
        client.max_inflight_messages = 0
        if self.config.username is not None or self.config.password is not None:
            password = self.config.password
            client.username_pw_set(
                self.config.username or "",
                password.get_secret_value() if password is not None else None,
            )
        if self._ssl_context is not None:
            client.tls_set_context(self._ssl_context)
        client.will_set(self.status_topic, self._will_payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    async def _session(self) -> bool:
        """One connection: connect, publish until it closes. True if CONNACK succeeded."""
        loop = asyncio.get_running_loop()
        client = self._make_client()
        io = PahoLoop(
            client,
            name="tagtrail-mqtt",
            ssl_context=self._ssl_context,
            on_close=lambda: self._on_io_closed(conn),
        )
        conn = _Connection(client, io)
        client.user_data_set(conn)
        self._conn = conn
        try:
            try:
                await io.connect(
                    self.config.host,
                    self.config.port,
                    keepalive=self.config.keepalive_s,
                    clean_start=True,
                )
            except OSError as exc:
                self._connect_failed(f"cannot connect to MQTT broker {self._broker}: {exc}")
                return False
            if self._closing:
                return False
            await self._wait_for(
                lambda: conn.ready.is_set() or not conn.open or self._closing,
                loop.time() + float(self.config.keepalive_s),
            )
            if self._closing:
                return conn.ready.is_set()
            if not conn.ready.is_set():
                if conn.refused is None:
                    self._connect_failed(
                        f"MQTT broker {self._broker} accepted TCP but sent no CONNACK "
                        f"within {self.config.keepalive_s} s"
                    )
                return False
            sender = asyncio.create_task(self._sender(conn), name="tagtrail-mqtt-sender")
            closed = asyncio.create_task(conn.closed.wait())
            try:
                await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
                if sender.done():
                    failure = sender.exception()
                    if failure is not None:
                        raise failure
                await conn.closed.wait()
            finally:
                for task in (sender, closed):
                    task.cancel()
                for task in (sender, closed):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            return True
        finally:
            if conn.open:
                self._drop(conn)
            self._conn = None
            self.stats.connected = False
            self.stats.inflight = 0
            self._flush_acks(quiet=True)

    def _on_io_closed(self, conn: _Connection) -> None:
        """The connection's socket closed (either side): wake everything waiting on it."""
        for timer in conn.timers:
            timer.cancel()
        conn.timers.clear()
        self.stats.connected = False
        self._progress.set()
        self._wake.set()

    def _drop(self, conn: _Connection) -> None:
        """Close the connection without DISCONNECT: the broker will publish the will."""
        conn.io.drop()

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise PublishError("the publisher is not running")
        return self._loop

    def _in_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _current(self, conn: Any) -> _Connection | None:
        """The connection a paho callback belongs to, if it is still the live one."""
        if isinstance(conn, _Connection) and conn is self._conn and self._in_loop_thread():
            return conn
        return None

    # -- MQTT callbacks ---------------------------------------------------------------

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        conn = self._current(userdata)
        if conn is None:
            return
        if reason_code.is_failure:
            reason = str(reason_code)
            conn.refused = reason
            hint = (
                " (check mqtt.username and mqtt.password)"
                if reason_code.value in AUTH_REASONS
                else ""
            )
            self._connect_failed(
                f"MQTT broker {self._broker} refused the connection: {reason}{hint}"
            )
            return
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self.stats.connected = True
        self._logged_error = None
        conn.ready.set()
        self._progress.set()
        logger.info(
            "connected to MQTT broker %s as %r (%d events in the outbox)",
            self._broker,
            self.client_id,
            self._outbox.depth(),
        )

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        conn = self._current(userdata)
        if conn is None:
            return
        self.stats.connected = False
        if self._closing or not conn.ready.is_set():
            return
        who = "broker" if flags.is_disconnect_packet_from_server else "connection"
        message = f"MQTT broker {self._broker}: {who} closed: {reason_code!s}"
        self.stats.last_error = message
        logger.warning(
            "%s; %d messages unacknowledged stay in the outbox", message, len(conn.inflight)
        )

    def _on_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        conn = self._current(userdata)
        if conn is None:
            return
        self._progress.set()
        if mid in conn.status_mids:
            conn.status_mids.discard(mid)
            if reason_code.is_failure:
                logger.warning(
                    "MQTT broker %s refused the status message: %s", self._broker, reason_code
                )
            return
        batch = conn.inflight.pop(mid, None)
        if batch is None:
            return
        self.stats.inflight = len(conn.inflight)
        rtt = self._clock.monotonic() - batch.sent_at
        self.stats.last_rtt_s = rtt
        self.stats.rtt.observe(rtt)
        self._wake.set()
        if reason_code.is_failure:
            self._schedule_retry(conn, batch, reason_code)
            return
        self._acked.append(batch)

    # -- sending ----------------------------------------------------------------------

    async def _sender(self, conn: _Connection) -> None:
        cfg = self.config
        self._flush_acks()
        if self._status_payload is not None and not self._closing:
            self._send_status(conn, self._status_payload())
        loop = asyncio.get_running_loop()
        bucket = _TokenBucket(
            cfg.replay_rate_msgs_per_s,
            min(float(cfg.max_inflight), cfg.replay_rate_msgs_per_s),
            loop.time,
        )
        ready: deque[_Batch] = deque()
        while conn.open and not self._closing:
            self._wake.clear()
            if len(conn.inflight) >= cfg.max_inflight:
                await self._wake.wait()
                continue
            if conn.retry:
                batch = conn.retry.popleft()
            else:
                if not ready:
                    self._flush_acks()
                    window = cfg.max_inflight - len(conn.inflight)
                    limit = cfg.batch_max_events * min(window, _READ_AHEAD_MESSAGES)
                    rows = self._outbox.pending(conn.cursor, limit)
                    if not rows:
                        await self._wake.wait()
                        continue
                    conn.cursor = rows[-1].seq
                    for start in range(0, len(rows), cfg.batch_max_events):
                        chunk = rows[start : start + cfg.batch_max_events]
                        ready.append(_Batch(chunk, encode_payloads([r.payload for r in chunk])))
                batch = ready.popleft()
            await bucket.take()
            if not conn.open or self._closing:
                return
            self._send_batch(conn, batch)

    def _send_batch(self, conn: _Connection, batch: _Batch) -> None:
        info = conn.client.publish(self.events_topic, batch.payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # The rows stay in the outbox; a new connection re-reads them from its start.
            logger.warning(
                "MQTT broker %s: publish failed (%s); reconnecting",
                self._broker,
                MQTTErrorCode(info.rc).name,
            )
            if conn.open:
                self._drop(conn)
            return
        batch.sent_at = self._clock.monotonic()
        batch.attempts += 1
        conn.inflight[info.mid] = batch
        self.stats.messages_published += 1
        self.stats.inflight = len(conn.inflight)
        if self._observer is not None:
            self._observer.on_sent(batch.event_ids)

    def _send_status(self, conn: _Connection, payload: bytes) -> bool:
        info = conn.client.publish(self.status_topic, payload, qos=1, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        conn.status_mids.add(info.mid)
        return True

    def _schedule_retry(self, conn: _Connection, batch: _Batch, reason: ReasonCode) -> None:
        cfg = self.config
        delay = min(
            cfg.reconnect_initial_s * 2.0 ** max(batch.attempts - 1, 0), cfg.reconnect_max_s
        )
        message = f"MQTT broker {self._broker} refused an event message: {reason!s}"
        self.stats.last_error = message
        self._log_error_once(message, level=logging.WARNING)
        logger.debug("retrying %d events in %.1f s", len(batch.rows), delay)

        def requeue() -> None:
            conn.timers.discard(handle)
            if conn.open:
                conn.retry.append(batch)
                self._wake.set()

        handle = self._require_loop().call_later(delay, requeue)
        conn.timers.add(handle)

    def _flush_acks(self, *, quiet: bool = False) -> None:
        """Delete acknowledged rows from the outbox in one transaction."""
        if not self._acked:
            return
        batches = self._acked
        seqs = [seq for b in batches for seq in b.seqs]
        try:
            self._outbox.ack(seqs)
        except OutboxError:
            if not quiet:
                raise
            logger.exception("cannot delete acknowledged events; will retry")
            return
        self._acked = []
        self.stats.events_acked += len(seqs)
        if self._observer is not None:
            for b in batches:
                self._observer.on_acked(b.event_ids)

    # -- helpers ----------------------------------------------------------------------

    def _connect_failed(self, message: str) -> None:
        self.stats.connect_failures += 1
        self.stats.last_error = message
        self._log_error_once(message, level=logging.ERROR)

    def _log_error_once(self, message: str, *, level: int) -> None:
        if message != self._logged_error:
            self._logged_error = message
            logger.log(level, "%s; retrying, events stay in the outbox", message)
        else:
            logger.debug("%s (again)", message)

    async def _wait_for(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``condition()`` holds, re-checking on progress, up to ``deadline``."""
        loop = asyncio.get_running_loop()
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            if condition():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return True
