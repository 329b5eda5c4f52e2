"""The metrics endpoint and histogram, on a real socket."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from tagtrail.errors import ConfigError
from tagtrail.metrics import LatencyHistogram, MetricsServer, new_registry


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    hist = LatencyHistogram(buckets=(0.01, 0.1, 1.0))
    for value in (0.005, 0.01, 0.05, 0.5, 3.0):
        hist.observe(value)
    family = hist.family("x_seconds", "test", {"route": "/a"})
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("x_seconds_bucket", "0.01")] == 2  # le is inclusive
    assert samples[("x_seconds_bucket", "0.1")] == 3
    assert samples[("x_seconds_bucket", "1.0")] == 4
    assert samples[("x_seconds_bucket", "+Inf")] == 5
    assert samples[("x_seconds_count", None)] == 5
    assert samples[("x_seconds_sum", None)] == pytest.approx(3.565)
    with pytest.raises(ValueError, match="ascending"):
        LatencyHistogram(buckets=(1.0, 0.5))


def test_server_serves_metrics_and_refuses_the_rest() -> None:
    calls = 0
    hist = LatencyHistogram()
    hist.observe(0.02)

    def collect() -> list[object]:
        nonlocal calls
        calls += 1
        return [
            CounterMetricFamily("demo_things", "Things.", value=calls),
            hist.family("demo_latency_seconds", "Latency."),
        ]

    async def main_() -> tuple[list[httpx.Response], bytes]:
        server = MetricsServer(new_registry(collect), "127.0.0.1", 0)  # type: ignore[arg-type]
        port = await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answers = [
                    await client.get("/metrics"),
                    await client.get("/metrics?x=1"),
                    await client.get("/"),
                    await client.post("/metrics"),
                    await client.head("/metrics"),
                ]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NONSENSE\r\n\r\n")
            await writer.drain()
            raw = await reader.read()
            writer.close()
            await writer.wait_closed()
        finally:
            await server.close()
        return answers, raw

    answers, raw = asyncio.run(main_())
    first, second, root, post, head = answers
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(first.text)}
    assert families["demo_things"].samples[0].value == 1
    counts = [s for s in families["demo_latency_seconds"].samples if s.name.endswith("_count")]
    assert counts[0].value == 1
    # collected at every scrape, not cached
    second_families = {f.name: f for f in text_string_to_metric_families(second.text)}
    assert second_families["demo_things"].samples[0].value == 2
    assert root.status_code == 404
    assert post.status_code == 405
    assert head.status_code == 200
    assert head.content == b""
    assert raw.startswith(b"HTTP/1.1 400")


def test_a_taken_port_is_a_config_error_naming_the_field() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main_() -> None:
            await MetricsServer(new_registry(list), "127.0.0.1", port).start()

        with pytest.raises(ConfigError) as info:
            asyncio.run(main_())
    assert info.value.problems[0][0] == "metrics.port"
