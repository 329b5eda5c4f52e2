"""The gateway's MQTT consumer against a real mosquitto: acks, dead letters, redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tagtrail import docgen
from tagtrail.events import AnyEvent, encode_batch
from tagtrail.gateway.config import GatewayMqttConfig
from tagtrail.gateway.consumer import Consumer, subscriptions
from tests.support.mosquitto import Mosquitto

EVENTS_TOPIC = "tagtrail/v1/wh1/door-1/events"


async def _until(cond: Any, limit_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-pub", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(10)


class Recorder:
    """The consumer's apply step: records events; can be told to fail."""

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []
        self.fail = False

    def __call__(self, events: Sequence[AnyEvent]) -> None:
        if self.fail:
            raise RuntimeError("disk full")
        self.events.extend(events)


def _config(broker: Mosquitto, **extra: Any) -> GatewayMqttConfig:
    return GatewayMqttConfig(
        port=broker.port, client_id="gw-test", reconnect_initial_s=0.1, reconnect_max_s=0.5, **extra
    )


def test_subscriptions_plain_and_shared() -> None:
    assert subscriptions(GatewayMqttConfig()) == [
        "tagtrail/v1/+/+/events",
        "tagtrail/v1/+/+/status",
    ]
    shared = GatewayMqttConfig(shared_group="gw", sites=["wh1", "wh2"])
    assert subscriptions(shared)[0] == "$share/gw/tagtrail/v1/wh1/+/events"
    assert len(subscriptions(shared)) == 4


def test_batches_single_events_and_dead_letters(mosquitto: Mosquitto) -> None:
    examples = docgen.example_events()
    good_single = examples[0].model_dump_json().encode()
    good_batch = encode_batch(examples[1:5])
    bad = {
        "truncated": good_single[:-7],
        "version": good_single.replace(b'"schema_version":1', b'"schema_version":2'),
        "missing": json.dumps(
            {k: v for k, v in json.loads(good_single).items() if k != "zone"}
        ).encode(),
    }

    async def main() -> tuple[Recorder, Consumer, list[dict[str, Any]]]:
        rec = Recorder()
        consumer = Consumer(_config(mosquitto), rec)
        task = asyncio.create_task(consumer.run())
        await _until(lambda: consumer.connected)
        dead: list[dict[str, Any]] = []
        watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dl", protocol=mqtt.MQTTv5)
        watcher.on_message = lambda c, u, m: dead.append(json.loads(m.payload))
        watcher.connect("127.0.0.1", mosquitto.port)
        watcher.subscribe("tagtrail/v1/+/deadletter", qos=1)
        watcher.loop_start()
        pub = _publisher(mosquitto.port)
        await asyncio.sleep(0.2)  # let the watcher's subscription settle
        for payload in (good_single, bad["truncated"], good_batch, bad["version"], bad["missing"]):
            await asyncio.to_thread(_publish, pub, EVENTS_TOPIC, payload)
        await _until(lambda: len(rec.events) == 5 and len(dead) == 3)
        await consumer.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for c in (pub, watcher):
            c.disconnect()
            c.loop_stop()
        return rec, consumer, dead

    rec, consumer, dead = asyncio.run(main())
    assert rec.events == examples[:5]
    assert consumer.stats.dead_letters == 3
    assert consumer.stats.messages == 5
    reasons = [d["reason"] for d in dead]
    assert any("Invalid JSON" in r or "EOF" in r for r in reasons), reasons
    assert any("schema_version" in r for r in reasons), reasons
    assert any("zone" in r and "Field required" in r for r in reasons), reasons
    assert all(d["topic"] == EVENTS_TOPIC for d in dead)
    assert dead[0]["payload"] == bad["truncated"].decode()


def test_unapplied_messages_are_delivered_again(mosquitto: Mosquitto) -> None:
    """A failing apply acknowledges nothing; after the reconnect the broker redelivers."""
    examples = docgen.example_events()

    async def main() -> tuple[Recorder, Consumer]:
        rec = Recorder()
        rec.fail = True
        consumer = Consumer(_config(mosquitto), rec)
        task = asyncio.create_task(consumer.run())
        await _until(lambda: consumer.connected)
        pub = _publisher(mosquitto.port)
        await asyncio.to_thread(_publish, pub, EVENTS_TOPIC, encode_batch(examples[:3]))
        await _until(lambda: consumer.stats.apply_failures >= 1)
        rec.fail = False
        await _until(lambda: len(rec.events) >= 3)
        await consumer.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pub.disconnect()
        pub.loop_stop()
        return rec, consumer

    rec, consumer = asyncio.run(main())
    assert rec.events[:3] == examples[:3]
    assert consumer.stats.connects >= 2
    assert consumer.stats.session_present  # the resumed session kept the message


def test_messages_queued_while_the_gateway_is_away_arrive(mosquitto: Mosquitto) -> None:
    examples = docgen.example_events()

    async def main() -> Recorder:
        rec = Recorder()
        first = Consumer(_config(mosquitto), rec)
        task = asyncio.create_task(first.run())
        await _until(lambda: first.connected)
        await first.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # the gateway is down: the edge keeps publishing
        pub = _publisher(mosquitto.port)
        for event in examples[:4]:
            await asyncio.to_thread(_publish, pub, EVENTS_TOPIC, event.model_dump_json().encode())
        second = Consumer(_config(mosquitto), rec)
        task = asyncio.create_task(second.run())
        await _until(lambda: len(rec.events) == 4)
        await second.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pub.disconnect()
        pub.loop_stop()
        return rec

    rec = asyncio.run(main())
    assert rec.events == examples[:4]


def test_shared_group_members_split_the_messages(mosquitto: Mosquitto) -> None:
    examples = docgen.example_events()[:3]

    async def main() -> tuple[Recorder, Recorder]:
        a, b = Recorder(), Recorder()
        first = Consumer(
            _config(mosquitto, shared_group="gw").model_copy(update={"client_id": "gw-a"}), a
        )
        second = Consumer(
            _config(mosquitto, shared_group="gw").model_copy(update={"client_id": "gw-b"}), b
        )
        tasks = [asyncio.create_task(c.run()) for c in (first, second)]
        await _until(lambda: first.connected and second.connected)
        await asyncio.sleep(0.2)  # both subscriptions in place
        pub = _publisher(mosquitto.port)
        sent = 40
        for i in range(sent):
            event = examples[i % 3].model_copy(update={"event_id": f"shared-{i:04d}-0000"})
            await asyncio.to_thread(_publish, pub, EVENTS_TOPIC, event.model_dump_json().encode())
        await _until(lambda: len(a.events) + len(b.events) >= sent)
        for c in (first, second):
            await c.close()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        pub.disconnect()
        pub.loop_stop()
        return a, b

    a, b = asyncio.run(main())
    ids_a = {e.event_id for e in a.events}
    ids_b = {e.event_id for e in b.events}
    assert ids_a
    assert ids_b
    assert not ids_a & ids_b  # each message went to one member
    assert len(ids_a | ids_b) == 40
