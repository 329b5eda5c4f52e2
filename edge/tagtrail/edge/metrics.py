"""The edge agent's Prometheus metrics, read from its live state at every scrape.

Per reader (labels ``reader``, and ``type`` on the first):

* ``tagtrail_reader_reads_total``: tag reads (or scans) reported;
* ``tagtrail_reader_read_rate_per_second``: reads per second over the last seconds;
* ``tagtrail_reader_errors_total`` (label ``reason``): decode failures by reason
  (``checksum``, ``length``, ``sanity``, ``garbage``, ``truncated``), link problems
  (``disconnects``, ``timeouts``) and reader error codes;
* ``tagtrail_reader_online``: 1 while online;
* ``tagtrail_reader_activity_total`` (label ``counter``): activity that is not an error
  (a camera's frames, decodes, frames dropped under load, each engine's symbols).

For the agent:

* ``tagtrail_edge_events_total`` (label ``kind``): movement events the smoother made;
* ``tagtrail_edge_events_published_total``: events the broker acknowledged;
* ``tagtrail_edge_messages_published_total``: event messages sent (re-sends count again);
* ``tagtrail_edge_outbox_depth``: events stored and not yet acknowledged;
* ``tagtrail_edge_mqtt_connected``: 1 while connected to the broker;
* ``tagtrail_edge_publish_rtt_seconds``: histogram of publish -> PUBACK round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from tagtrail.edge.agent import EdgeAgent


def edge_metrics(agent: EdgeAgent) -> Iterator[Metric]:
    """The agent's metrics now."""
    reads = CounterMetricFamily(
        "tagtrail_reader_reads",
        "Tag reads (or scans) a reader reported.",
        labels=["reader", "type"],
    )
    rate = GaugeMetricFamily(
        "tagtrail_reader_read_rate_per_second",
        "A reader's reads per second over the last few seconds.",
        labels=["reader"],
    )
    errors = CounterMetricFamily(
        "tagtrail_reader_errors",
        "A reader's decode failures and link problems, by reason.",
        labels=["reader", "reason"],
    )
    online = GaugeMetricFamily(
        "tagtrail_reader_online", "1 while the reader is online.", labels=["reader"]
    )
    activity = CounterMetricFamily(
        "tagtrail_reader_activity",
        "A reader's activity that is not an error (camera frames, decodes, engine symbols).",
        labels=["reader", "counter"],
    )
    for driver in agent.drivers:
        snap = driver.snapshot()
        reads.add_metric([snap.reader, snap.reader_type], snap.reads_total)
        rate.add_metric([snap.reader], snap.read_rate_per_s)
        online.add_metric([snap.reader], 1.0 if snap.state == "online" else 0.0)
        for reason, count in sorted(snap.error_counts.items()):
            errors.add_metric([snap.reader, reason], count)
        for name, count in sorted(snap.counters.items()):
            activity.add_metric([snap.reader, name], count)
    yield from (reads, rate, errors, online, activity)

    stats = agent.smoother.stats
    events = CounterMetricFamily(
        "tagtrail_edge_events", "Movement events the smoother made.", labels=["kind"]
    )
    events.add_metric(["arrived"], stats.arrived)
    events.add_metric(["moved"], stats.moved)
    events.add_metric(["departed"], stats.departed)
    yield events

    pub = agent.publisher.stats
    yield CounterMetricFamily(
        "tagtrail_edge_events_published",
        "Events the broker acknowledged (and the outbox deleted).",
        value=pub.events_acked,
    )
    yield CounterMetricFamily(
        "tagtrail_edge_messages_published",
        "Event messages sent to the broker (re-sends after a reconnect count again).",
        value=pub.messages_published,
    )
    yield GaugeMetricFamily(
        "tagtrail_edge_outbox_depth",
        "Events in the outbox not yet acknowledged by the broker.",
        value=agent.outbox.depth(),
    )
    yield GaugeMetricFamily(
        "tagtrail_edge_mqtt_connected",
        "1 while connected to the broker.",
        value=1.0 if pub.connected else 0.0,
    )
    yield pub.rtt.family(
        "tagtrail_edge_publish_rtt_seconds",
        "Round trip of an event message, publish to PUBACK.",
    )
