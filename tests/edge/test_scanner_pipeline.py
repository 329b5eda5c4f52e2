"""Handheld scans end to end: two scanners -> the edge agent -> mosquitto -> the gateway.

A line-mode scanner at dock A and a keyboard-wedge scanner at dock B are real
pseudo-terminals written by this test (lines, and recorded key events typed by
tests/support/keyboard.py; the wedge's grab is off because a pty is not an evdev device).
The agent, broker, gateway and influxd are the real programs. A pallet label scanned at
dock A arrives there, a repeat is suppressed, scanned at dock B it moves; a case label
(GTIN + serial, with its batch and expiry) and an RFID handheld's EPC line arrive; a
location label arrives as a ``code`` identity; a label with a bad check digit is refused.
The gateway's API then holds the scanned positions and stock, and InfluxDB the movements
with the case's batch and expiry.
"""

from __future__ import annotations

import os
import tty
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tagtrail.devservices import free_port
from tagtrail.events import Arrived, Moved, ReaderStatus
from tests.support import keyboard as kb
from tests.support.influxd import Influxd
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    Collector,
    EdgeProcess,
    GatewayProcess,
    gateway_config,
    wait_for,
)

pytestmark = pytest.mark.slow

PALLET = "sscc:106141411234567897"
CASE = "gtin_serial:09501101020917:10"
EPC = "E200301666130121155074EF"
LOCATION = "code:]C0:LOC-A-01"


class Pty:
    def __init__(self, link: Path) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.symlink(os.ttyname(self.slave), link)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)


def _edge_config(
    workdir: Path, gun: Path, wedge: Path, broker_port: int, metrics_port: int
) -> Path:
    cfg: dict[str, Any] = {
        "site": "wh-test",
        "device": "docks",
        "readers": [
            {"type": "ascii", "id": "gun-a", "port": str(gun), "zone": "dock-a"},
            {
                "type": "hid",
                "id": "wedge-b",
                "device": str(wedge),
                "zone": "dock-b",
                "grab": False,
                "repeat_suppress_s": 60,
            },
        ],
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "outbox": {"path": str(workdir / "outbox.sqlite"), "synchronous": "normal"},
        "status": {"heartbeat_s": 30},
        "metrics": {"port": metrics_port},
    }
    path = workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample at ``http://127.0.0.1:port/metrics`` by (name, sorted labels)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_scans_become_positions(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd) -> None:
    edge_metrics, gateway_metrics = free_port(), free_port()
    gun, wedge = Pty(tmp_path / "ttyACM0"), Pty(tmp_path / "event-kbd")
    collector = Collector(mosquitto.port)
    edge = EdgeProcess(
        _edge_config(
            tmp_path, tmp_path / "ttyACM0", tmp_path / "event-kbd", mosquitto.port, edge_metrics
        ),
        tmp_path,
    )
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    gateway = GatewayProcess(
        gateway_config(
            gw_dir,
            broker_port=mosquitto.port,
            influx_url=influxd.url,
            extra={"metrics": {"port": gateway_metrics}},
        ),
        gw_dir,
    )
    try:
        gateway.start()
        edge.start()

        def online(reader: str) -> bool:
            with collector.lock:
                return any(
                    isinstance(e, ReaderStatus) and e.reader == reader and e.state == "online"
                    for e in collector.events
                )

        wait_for(lambda: online("gun-a") and online("wedge-b"), 30, "scanners online")

        def keys() -> list[tuple[str, str, str]]:
            return [(e.kind, e.item_key, e.zone) for e in collector.movements()]

        gun.write(b"]C100106141411234567897\r")  # pallet at dock A
        gun.write(b"]C100106141411234567897\r")  # trigger pulled twice: suppressed
        gun.write(b"]C0LOC-A-01\r]C100106141411234567898\r")  # location label, bad check
        gun.write(EPC.encode() + b"\r")  # an RFID handheld's EPC line
        wait_for(lambda: len(keys()) == 3, 20, f"three arrivals ({edge.logs()[-2000:]})")
        wedge.write(kb.type_scan("]C100106141411234567897"))  # the pallet at dock B
        wedge.write(kb.type_scan("]d201095011010209171719050810ABCD1234\x1d2110", gs="alt"))
        wait_for(lambda: len(keys()) == 5, 20, f"move and case ({edge.logs()[-2000:]})")

        assert keys() == [
            ("arrived", PALLET, "dock-a"),
            ("arrived", LOCATION, "dock-a"),
            ("arrived", f"epc:{EPC}", "dock-a"),
            ("moved", PALLET, "dock-b"),
            ("arrived", CASE, "dock-b"),
        ]
        case_event = collector.movements()[4]
        assert case_event.attributes is not None
        assert case_event.attributes.batch == "ABCD1234"
        assert case_event.attributes.expiry == date(2019, 5, 8)
        moved = collector.movements()[3]
        assert isinstance(moved, Moved)
        assert (moved.from_zone, moved.reader, moved.read_count) == ("dock-a", "wedge-b", 3)
        assert moved.epc is None
        assert isinstance(collector.movements()[2], Arrived)
        assert collector.movements()[2].epc == EPC

        def gateway_has_all() -> bool:
            items = gateway.get("/v1/items", limit=100)["items"]
            return len(items) == 4

        wait_for(gateway_has_all, 20, f"gateway positions ({gateway.logs()[-2000:]})")
        pallet = gateway.get(f"/v1/items/{PALLET}")
        assert pallet["zone"] == "dock-b"
        assert pallet["identity"] == {"scheme": "sscc", "sscc": "106141411234567897"}
        case = gateway.get(f"/v1/items/{CASE}")
        assert case["identity"]["serial"] == "10"
        stock = {z["zone"]: z["count"] for z in gateway.get("/v1/zones")["zones"]}
        assert stock == {"dock-a": 2, "dock-b": 2}

        edge_scrape = scrape(edge_metrics)
        assert (
            edge_scrape[("tagtrail_reader_reads_total", (("reader", "gun-a"), ("type", "ascii")))]
            == 4
        )
        assert (
            edge_scrape[("tagtrail_reader_reads_total", (("reader", "wedge-b"), ("type", "hid")))]
            == 2
        )
        assert (
            edge_scrape[
                ("tagtrail_reader_errors_total", (("reader", "gun-a"), ("reason", "gs1_invalid")))
            ]
            == 1
        )
        assert edge_scrape[("tagtrail_edge_events_total", (("kind", "moved"),))] == 1
        assert edge_scrape[("tagtrail_edge_events_total", (("kind", "arrived"),))] == 4
        assert edge_scrape[("tagtrail_edge_publish_rtt_seconds_count", ())] >= 1
        assert edge_scrape[("tagtrail_edge_mqtt_connected", ())] == 1
        assert ("tagtrail_edge_outbox_depth", ()) in edge_scrape
        assert edge_scrape[("tagtrail_reader_online", (("reader", "gun-a"),))] == 1

        gateway.get("/v1/zones")
        gw_scrape = scrape(gateway_metrics)
        assert gw_scrape[("tagtrail_gateway_events_total", ())] >= 5
        assert gw_scrape[("tagtrail_gateway_influx_write_seconds_count", ())] >= 1
        assert gw_scrape[("tagtrail_gateway_mqtt_connected", ())] == 1
        zones_ok = (("method", "GET"), ("route", "/v1/zones"), ("status", "2xx"))
        assert gw_scrape[("tagtrail_gateway_api_request_seconds_count", zones_ok)] >= 2

        assert edge.terminate() == 0
        with collector.lock:
            final = [e for e in collector.events if isinstance(e, ReaderStatus)]
        gun_status = [s for s in final if s.reader == "gun-a"]
        assert gun_status[0].antenna_reads == {1: 0}  # configured antennas from the start
        assert gun_status[-1].antenna_reads == {1: 4}
        gun_counts = gun_status[-1].error_counts
        assert "not_item" not in gun_counts
        assert gun_counts.get("gs1_invalid") == 1
        assert collector.invalid == []

        def influx_items() -> list[str]:
            rows = influxd.rows("SELECT item FROM movement", db="tagtrail")
            return sorted(str(r["item"]) for r in rows)

        wait_for(lambda: len(influx_items()) == 5, 20, "movements in InfluxDB")
        assert influx_items() == sorted([PALLET, PALLET, CASE, LOCATION, f"epc:{EPC}"])
        rows = influxd.rows("SELECT item, batch, expiry FROM movement", db="tagtrail")
        attrs = [(r["batch"], r["expiry"]) for r in rows if r["item"] == CASE]
        assert attrs == [("ABCD1234", "2019-05-08")]

        def gateway_stats() -> dict[str, object]:
            rows = influxd.rows(
                "SELECT last(events) AS events, last(dead_letters) AS dead_letters "
                "FROM gateway_stats WHERE gateway = 'gateway-test'",
                db="tagtrail",
            )
            return rows[0] if rows else {}

        # every movement and every reader status the edge sent is counted
        wait_for(lambda: int(str(gateway_stats().get("events", 0))) >= 5, 20, "gateway stats")
        assert gateway_stats()["dead_letters"] == 0
    finally:
        if edge.proc is not None and edge.proc.poll() is None:
            edge.proc.kill()
            edge.proc.wait()
        if gateway.proc is not None:
            gateway.terminate()
        collector.close()
        gun.close()
        wedge.close()
