"""The MQTT publisher against a real mosquitto: order, batching, outages, credentials, will.

Every test starts a private broker (tests/support/mosquitto.py) and watches it with a
plain paho subscriber on its own network thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tagtrail.clock import SystemClock
from tagtrail.edge.config import MqttConfig
from tagtrail.edge.outbox import Outbox
from tagtrail.edge.publisher import Publisher
from tagtrail.events import events_topic, parse_message, status_topic
from tests.edge.test_outbox import arrived
from tests.support.mosquitto import Mosquitto, make_test_certificates

SITE, DEVICE = "wh1", "edge1"
EVENTS = events_topic(SITE, DEVICE)
STATUS = status_topic(SITE, DEVICE)
ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """A paho subscriber (loop_start thread) that records every message it gets."""

    def __init__(
        self,
        broker: Mosquitto,
        topics: Sequence[str],
        *,
        client_id: str = "",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        parse_events: bool = True,
        tls_ca: Path | None = None,
    ) -> None:
        self.broker = broker
        self.topics = list(topics)
        self.persistent = persistent
        self.parse_events = parse_events
        self.cond = threading.Condition()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.event_ids: list[str] = []
        self.suback_count = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, *args: Any) -> None:
        with self.cond:
            self.suback_count += 1
            self.cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ids: list[str] = []
        if self.parse_events and msg.topic.endswith("/events"):
            data = json.loads(msg.payload)
            ids = [e["event_id"] for e in (data if isinstance(data, list) else [data])]
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.event_ids.extend(ids)
            self.cond.notify_all()

    def start(self) -> Collector:
        props = None
        if self.persistent:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
        self.client.connect(
            self.broker.host,
            self.broker.port,
            clean_start=not self.persistent,
            properties=props,
        )
        self.client.loop_start()
        assert self.wait_for(lambda c: c.suback_count >= 1, 10), "subscriber never subscribed"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, predicate: Callable[[Collector], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def payloads(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def count(self) -> int:
        with self.cond:
            return len(self.event_ids)

    def unique(self) -> int:
        with self.cond:
            return len(set(self.event_ids))


class RecordingObserver:
    """Checks that no event id is sent again after the broker acknowledged it."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.acked: set[str] = set()
        self.sent_after_ack: list[str] = []
        self.acked_twice: list[str] = []

    def on_sent(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            if event_id in self.acked:
                self.sent_after_ack.append(event_id)
            self.sent[event_id] += 1

    def on_acked(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            if event_id in self.acked:
                self.acked_twice.append(event_id)
            self.acked.add(event_id)


async def eventually(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll a condition from the event loop until it holds; fail after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def poll_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll a condition (e.g. a log file) until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def make_publisher(
    broker: Mosquitto,
    outbox: Outbox,
    *,
    observer: RecordingObserver | None = None,
    client_id: str = "tagtrail-edge-test",
    status: Callable[[], bytes] | None = None,
    will: bytes = b"offline-will",
    **mqtt_options: Any,
) -> Publisher:
    config = MqttConfig(host=broker.host, port=broker.port, **mqtt_options)
    return Publisher(
        config,
        site=SITE,
        device=DEVICE,
        client_id=client_id,
        outbox=outbox,
        clock=SystemClock(),
        will_payload=will,
        status_payload=status,
        observer=observer,
    )


def first_occurrences(ids: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for event_id in ids:
        if event_id not in seen:
            seen.add(event_id)
            out.append(event_id)
    return out


def test_delivers_every_event_once_in_order_as_arrays(mosquitto: Mosquitto, tmp_path: Path) -> None:
    events = [arrived(i) for i in range(5_000)]
    first, later = events[:3_000], events[3_000:]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append(first)
    collector = Collector(mosquitto, [EVENTS]).start()
    observer = RecordingObserver()
    publisher = make_publisher(
        mosquitto, outbox, observer=observer, batch_max_events=200, replay_rate_msgs_per_s=5_000
    )
    assert not asyncio.run(publisher.publish_status(b"not connected"))

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(lambda: collector.count() >= len(first), 30, "the first events")
        # Appending while connected: notify() wakes the sender, no polling involved.
        outbox.append(later)
        publisher.notify()
        await eventually(
            lambda: collector.count() >= len(events) and outbox.depth() == 0, 30, "all events"
        )
        await publisher.close()
        await task

    try:
        asyncio.run(scenario())
    finally:
        collector.stop()

    expected_ids = [e.event_id for e in events]
    assert collector.event_ids == expected_ids  # in order, exactly once

    payloads = collector.payloads(EVENTS)
    assert all(p.startswith(b"[") for p in payloads)  # every message is a JSON array
    batches = [parse_message(p) for p in payloads]
    assert [e for batch in batches for e in batch] == events  # full fidelity
    assert max(len(b) for b in batches) == 200
    assert len(payloads) == -(-len(first) // 200) + -(-len(later) // 200)

    stats = publisher.stats
    assert stats.messages_published == len(payloads)
    assert stats.events_acked == len(events)
    assert stats.inflight == 0
    assert stats.connect_failures == 0
    assert stats.reconnects == 0
    assert stats.last_rtt_s is not None
    assert stats.last_rtt_s > 0
    assert not stats.connected

    assert observer.sent == Counter(expected_ids)  # each sent once
    assert observer.acked == set(expected_ids)
    assert observer.sent_after_ack == []
    assert outbox.depth() == 0
    outbox.close()
    with Outbox(tmp_path / "outbox.sqlite") as reopened:
        assert reopened.depth() == 0
        assert reopened.pending(0, 10) == []


def test_broker_outage_mid_stream_loses_nothing(
    mosquitto_persistent: Mosquitto, tmp_path: Path
) -> None:
    broker = mosquitto_persistent
    events = [arrived(i) for i in range(5_000)]
    before, during = events[:4_000], events[4_000:]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append(before)
    # A persistent session: the broker keeps the subscription and queues messages for it
    # across its own restart, so the subscriber sees everything the broker acknowledged.
    collector = Collector(broker, [EVENTS], client_id="collector", persistent=True).start()
    observer = RecordingObserver()
    publisher = make_publisher(
        broker,
        outbox,
        observer=observer,
        batch_max_events=10,
        max_inflight=8,
        replay_rate_msgs_per_s=200,
        reconnect_initial_s=0.2,
        reconnect_max_s=0.8,
    )

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(lambda: collector.count() >= 800, 30, "the stream to start")
        broker.stop()
        await eventually(lambda: not publisher.stats.connected, 10, "the publisher to notice")
        assert outbox.depth() > 0
        # Events keep coming during the outage: committed, not published.
        outbox.append(during)
        publisher.notify()
        failures = publisher.stats.connect_failures
        await eventually(
            lambda: publisher.stats.connect_failures >= failures + 3, 20, "failed reconnects"
        )
        assert outbox.depth() >= len(during)
        broker.start()
        await eventually(
            lambda: collector.unique() >= len(events) and outbox.depth() == 0,
            60,
            "every event after the restart",
        )
        await publisher.close()
        await task

    try:
        asyncio.run(scenario())
    finally:
        collector.stop()

    expected_ids = [e.event_id for e in events]
    # Everything arrived; duplicates (unacknowledged messages re-sent after the outage)
    # only ever repeat an id, and the first time each id was seen follows the outbox order.
    assert set(collector.event_ids) == set(expected_ids)
    assert first_occurrences(collector.event_ids) == expected_ids
    assert observer.sent_after_ack == []
    assert observer.acked_twice == []
    assert observer.acked == set(expected_ids)
    stats = publisher.stats
    assert stats.reconnects >= 1
    assert stats.connect_failures >= 3
    assert stats.last_error is not None
    assert f"{broker.host}:{broker.port}" in stats.last_error
    assert stats.events_acked == len(events)
    assert outbox.depth() == 0
    outbox.close()


def test_hundred_thousand_single_event_messages_survive_the_mid_wrap(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """More QoS 1 messages than paho has message ids: nothing is overwritten or lost."""
    total = 100_000
    outbox = Outbox(tmp_path / "outbox.sqlite", synchronous="normal")
    outbox.append([arrived(i) for i in range(total)])
    collector = Collector(mosquitto, [EVENTS]).start()
    publisher = make_publisher(
        mosquitto, outbox, batch_max_events=1, replay_rate_msgs_per_s=100_000
    )

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(
            lambda: collector.count() >= total and outbox.depth() == 0, 240, "100k events"
        )
        await publisher.close()
        await task

    try:
        asyncio.run(scenario())
    finally:
        collector.stop()

    assert publisher.stats.messages_published == total > 65_535
    assert collector.event_ids == [f"evt-{i:08d}" for i in range(total)]
    assert publisher.stats.events_acked == total
    assert outbox.depth() == 0
    outbox.close()


def test_wrong_credentials_clear_error_retry_and_nothing_lost(
    mosquitto_auth: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_auth
    events = [arrived(i) for i in range(300)]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append(events)
    wrong = make_publisher(
        broker,
        outbox,
        username="edge",
        password="wrong-password",
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    )

    async def refused() -> None:
        task = asyncio.create_task(wrong.run())
        await eventually(lambda: wrong.stats.connect_failures >= 4, 20, "repeated refusals")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="tagtrail.edge.publisher"):
        asyncio.run(refused())

    error = wrong.stats.last_error
    assert error is not None
    assert f"{broker.host}:{broker.port}" in error
    assert "Not authorized" in error or "Bad user name or password" in error
    assert "mqtt.password" in error
    assert not wrong.stats.connected
    assert wrong.stats.messages_published == 0
    assert wrong.stats.events_acked == 0
    assert outbox.depth() == len(events)
    # One clear error line, not one per attempt.
    errors = [
        r
        for r in caplog.records
        if r.name == "tagtrail.edge.publisher" and r.levelno >= logging.ERROR
    ]
    assert len(errors) == 1
    assert "refused the connection" in errors[0].getMessage()

    collector = Collector(
        broker,
        [EVENTS],
        username="edge",
        password="right-password",
    ).start()
    right = make_publisher(
        broker,
        outbox,
        username="edge",
        password="right-password",
    )

    async def accepted() -> None:
        task = asyncio.create_task(right.run())
        await eventually(
            lambda: collector.count() >= len(events) and outbox.depth() == 0, 30, "delivery"
        )
        await right.close()
        await task

    try:
        asyncio.run(accepted())
    finally:
        collector.stop()
    assert collector.event_ids == [e.event_id for e in events]
    assert right.stats.connect_failures == 0
    outbox.close()


def _retained_status(broker: Mosquitto) -> tuple[bytes, bool]:
    """What a new subscriber gets on the status topic: the retained message."""
    fresh = Collector(broker, [STATUS]).start()
    try:
        assert fresh.wait_for(lambda c: bool(c.messages), 10), "no retained status"
        _, payload, retain = fresh.messages[0]
        return payload, retain
    finally:
        fresh.stop()


def test_cancel_without_disconnect_fires_the_retained_will(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append([arrived(i) for i in range(50)])
    collector = Collector(mosquitto, [STATUS]).start()
    publisher = make_publisher(mosquitto, outbox, status=lambda: b"online", will=b"offline-will")

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(lambda: outbox.depth() == 0, 20, "the events to be acknowledged")
        await eventually(lambda: b"online" in collector.payloads(STATUS), 10, "online status")
        # Cancelling run() closes the socket without an MQTT DISCONNECT, as a crash would.
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
        assert collector.wait_for(lambda c: b"offline-will" in c.payloads(STATUS), 10)
    finally:
        collector.stop()
    assert collector.payloads(STATUS) == [b"online", b"offline-will"]
    assert _retained_status(mosquitto) == (b"offline-will", True)
    assert not publisher.stats.connected
    outbox.close()


_KILLED_PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tagtrail.clock import SystemClock
    from tagtrail.edge.config import MqttConfig
    from tagtrail.edge.outbox import Outbox
    from tagtrail.edge.publisher import Publisher

    async def main() -> None:
        publisher = Publisher(
            MqttConfig(host=sys.argv[2], port=int(sys.argv[3])),
            site="wh1", device="edge1", client_id="tagtrail-edge-killed",
            outbox=Outbox(Path(sys.argv[4])), clock=SystemClock(),
            will_payload=b"offline-will", status_payload=lambda: b"online",
        )
        task = asyncio.create_task(publisher.run())
        while not publisher.stats.connected:
            await asyncio.sleep(0.01)
        print("connected", flush=True)
        await task

    asyncio.run(main())
    """
)


def test_sigkilled_process_fires_the_retained_will(mosquitto: Mosquitto, tmp_path: Path) -> None:
    collector = Collector(mosquitto, [STATUS]).start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_PUBLISHER,
            str(ROOT),
            mosquitto.host,
            str(mosquitto.port),
            str(tmp_path / "outbox.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "connected"
        assert collector.wait_for(lambda c: b"online" in c.payloads(STATUS), 10)
        proc.kill()
        proc.wait(timeout=10)
        assert collector.wait_for(lambda c: b"offline-will" in c.payloads(STATUS), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
        collector.stop()
    assert _retained_status(mosquitto) == (b"offline-will", True)


def test_clean_close_publishes_final_status_and_no_will(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    marker_topic = "tagtrail/test/marker"
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append([arrived(i) for i in range(20)])
    collector = Collector(mosquitto, [STATUS, marker_topic]).start()
    client_id = "tagtrail-edge-clean"
    publisher = make_publisher(
        mosquitto, outbox, client_id=client_id, status=lambda: b"online", will=b"offline-will"
    )

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(lambda: b"online" in collector.payloads(STATUS), 10, "online status")
        assert await publisher.publish_status(b"heartbeat-1")
        await eventually(lambda: b"heartbeat-1" in collector.payloads(STATUS), 10, "heartbeat")
        await eventually(lambda: outbox.depth() == 0, 10, "events acknowledged")
        await publisher.close(b"offline-shutdown")
        await task  # run() returns by itself after close()

    try:
        asyncio.run(scenario())
        assert collector.wait_for(lambda c: b"offline-shutdown" in c.payloads(STATUS), 10)
        # The broker saw a clean DISCONNECT ...
        assert poll_until(
            lambda: f"Client {client_id} disconnected." in mosquitto.log_path.read_text(), 10
        ), mosquitto.log_path.read_text()[-2000:]
        # ... and anything it published because of it reached the collector before a
        # marker sent afterwards on the same broker.
        collector.client.publish(marker_topic, b"marker", qos=1)
        assert collector.wait_for(lambda c: c.payloads(marker_topic) == [b"marker"], 10)
    finally:
        collector.stop()
    assert collector.payloads(STATUS) == [b"online", b"heartbeat-1", b"offline-shutdown"]
    assert _retained_status(mosquitto) == (b"offline-shutdown", True)
    assert not publisher.stats.connected
    outbox.close()


def test_tls_with_the_brokers_ca(mosquitto_tls: Mosquitto, tmp_path: Path) -> None:
    broker = mosquitto_tls
    assert broker.ca_file is not None
    events = [arrived(i) for i in range(1_000)]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append(events)
    collector = Collector(broker, [EVENTS], tls_ca=broker.ca_file).start()
    publisher = make_publisher(broker, outbox, tls_ca_file=broker.ca_file, batch_max_events=7)

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(
            lambda: collector.count() >= len(events) and outbox.depth() == 0, 30, "delivery"
        )
        await publisher.close()
        await task

    try:
        asyncio.run(scenario())
    finally:
        collector.stop()
    assert collector.event_ids == [e.event_id for e in events]
    assert publisher.stats.messages_published == -(-len(events) // 7)
    outbox.close()


def test_tls_with_an_untrusted_ca_is_a_clear_retried_error(
    mosquitto_tls: Mosquitto, tmp_path: Path
) -> None:
    other_ca, _, _ = make_test_certificates(tmp_path / "other-ca", "127.0.0.1")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.append([arrived(i) for i in range(10)])
    publisher = make_publisher(
        mosquitto_tls,
        outbox,
        tls_ca_file=other_ca,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.1,
    )

    async def scenario() -> None:
        task = asyncio.create_task(publisher.run())
        await eventually(lambda: publisher.stats.connect_failures >= 2, 20, "refusals")
        await publisher.close()
        await task

    asyncio.run(scenario())
    error = publisher.stats.last_error
    assert error is not None
    assert f"{mosquitto_tls.host}:{mosquitto_tls.port}" in error
    assert "CERTIFICATE_VERIFY_FAILED" in error or "certificate verify failed" in error
    assert publisher.stats.messages_published == 0
    assert outbox.depth() == 10
    outbox.close()
