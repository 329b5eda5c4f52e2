"""The gateway's Prometheus metrics, read from its live state at every scrape.

* ``tagtrail_gateway_messages_total``, ``tagtrail_gateway_events_total``: MQTT messages
  and events received;
* ``tagtrail_gateway_dead_letters_total`` (label ``reason``): invalid messages sent to the
  dead-letter topic;
* ``tagtrail_gateway_apply_failures_total``: store commits that failed (messages left
  unacknowledged for redelivery);
* ``tagtrail_gateway_mqtt_connected``: 1 while connected to the broker;
* ``tagtrail_gateway_influx_points_written_total``, ``..._points_rejected_total``,
  ``..._write_retries_total``: InfluxDB writes (retries are the write errors that will be
  tried again; rejected points went to the reject log);
* ``tagtrail_gateway_influx_ok``: 1 while InfluxDB takes writes;
* ``tagtrail_gateway_influx_spool_depth``: points waiting for InfluxDB;
* ``tagtrail_gateway_influx_write_seconds``: histogram of successful write requests;
* ``tagtrail_gateway_api_request_seconds`` (labels ``method``, ``route``, ``status``):
  histogram of API time to response headers;
* ``tagtrail_gateway_stream_clients``: connected ``/v1/stream`` clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from tagtrail.gateway.service import Gateway


def gateway_metrics(gateway: Gateway) -> Iterator[Metric]:
    """The gateway's metrics now."""
    consumer = gateway.consumer.stats
    yield CounterMetricFamily(
        "tagtrail_gateway_messages", "MQTT messages received.", value=consumer.messages
    )
    yield CounterMetricFamily(
        "tagtrail_gateway_events", "Events received in valid messages.", value=consumer.events
    )
    dead = CounterMetricFamily(
        "tagtrail_gateway_dead_letters",
        "Invalid messages sent to the dead-letter topic, by reason.",
        labels=["reason"],
    )
    for reason, count in sorted(consumer.dead_letter_reasons.items()):
        dead.add_metric([reason], count)
    yield dead
    yield CounterMetricFamily(
        "tagtrail_gateway_apply_failures",
        "Store commits that failed; their messages stay unacknowledged.",
        value=consumer.apply_failures,
    )
    yield GaugeMetricFamily(
        "tagtrail_gateway_mqtt_connected",
        "1 while connected to the broker.",
        value=1.0 if consumer.connected else 0.0,
    )
    writer = gateway.writer.stats
    yield CounterMetricFamily(
        "tagtrail_gateway_influx_points_written",
        "Points InfluxDB accepted.",
        value=writer.points_written,
    )
    yield CounterMetricFamily(
        "tagtrail_gateway_influx_points_rejected",
        "Points InfluxDB refused (written to the reject log).",
        value=writer.points_rejected,
    )
    yield CounterMetricFamily(
        "tagtrail_gateway_influx_write_retries",
        "Write requests that failed and will be retried (429, 5xx, timeouts, no connection).",
        value=writer.retries,
    )
    yield GaugeMetricFamily(
        "tagtrail_gateway_influx_ok",
        "1 while InfluxDB takes writes.",
        value=1.0 if writer.influx_ok else 0.0,
    )
    yield GaugeMetricFamily(
        "tagtrail_gateway_influx_spool_depth",
        "Points waiting to be written to InfluxDB.",
        value=gateway.store.line_depth(),
    )
    yield writer.write_latency.family(
        "tagtrail_gateway_influx_write_seconds", "Duration of successful InfluxDB writes."
    )
    requests = HistogramMetricFamily(
        "tagtrail_gateway_api_request_seconds",
        "API time to response headers, by method, route and status class.",
        labels=["method", "route", "status"],
    )
    for (method, route, status), hist in sorted(gateway.app.state.request_latency.items()):
        hist.add_to(requests, {"method": method, "route": route, "status": status})
    yield requests
    yield GaugeMetricFamily(
        "tagtrail_gateway_stream_clients",
        "Clients connected to /v1/stream.",
        value=gateway.stream.clients,
    )
