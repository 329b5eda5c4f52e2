"""The simulated R700 alone, through a plain HTTP client: auth, presets, the NDJSON stream,
keep-alives, a consumer that stops reading, and the command line."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagtrail.clock import ScaledClock
from tagtrail.demo import wait_ready_line
from tagtrail.sim.r700 import STALL_BYTES, R700Simulator
from tagtrail.sim.scenario import Scenario, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "hardware-sim" / "scenarios" / "r700-dock.yaml"
AUTH = ("root", "impinj")
START = "/api/v1/profiles/inventory/start"
STOP = "/api/v1/profiles/stop"
STATUS = "/api/v1/status"
STREAM = "/api/v1/data/stream"


def run_with_sim(
    body: Callable[[R700Simulator, httpx.AsyncClient], Awaitable[None]],
    *,
    scenario: Scenario | None = None,
    time_scale: float = 10.0,
    keepalive_s: float = 30.0,
) -> R700Simulator:
    async def main() -> R700Simulator:
        sim = R700Simulator(
            scenario or load_scenario(SCENARIO),
            ScaledClock(time_scale),
            keepalive_s=keepalive_s,
        )
        async with sim, httpx.AsyncClient(base_url=sim.url, auth=AUTH, timeout=10) as client:
            await body(sim, client)
        return sim

    return asyncio.run(main())


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def test_every_request_needs_the_right_basic_auth() -> None:
    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        async with httpx.AsyncClient(base_url=sim.url) as anon:
            resp = await anon.get(STATUS)
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"].startswith("Basic")
            assert resp.json()["message"]
            resp = await anon.get(STATUS, auth=("root", "wrong"))
            assert resp.status_code == 401
            resp = await anon.get(STREAM, auth=("admin", "impinj"))
            assert resp.status_code == 401
            resp = await anon.post(START, json={}, auth=("root", "wrong"))
            assert resp.status_code == 401
        resp = await client.get(STATUS)
        assert resp.status_code == 200
        assert resp.json()["status"] == "idle"
        assert not sim.running

    sim = run_with_sim(body)
    assert sim.counters.statuses[401] == 4
    assert sim.counters.rejected_presets == 0


def test_status_system_and_firmware() -> None:
    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        status = (await client.get(STATUS)).json()
        assert status["serialNumber"] == "370000000001"
        assert "activePreset" not in status
        assert (await client.get("/api/v1/system")).json()["productModel"] == "R700"
        image = (await client.get("/api/v1/system/image")).json()
        assert image["primaryFirmware"] == "8.4.1.240"
        assert (await client.get("/api/v1/nothing")).status_code == 404
        assert (await client.get(START)).status_code == 405

    run_with_sim(body)


def test_start_and_stop_semantics() -> None:
    preset = {"antennaConfigs": [{"antennaPort": 1}, {"antennaPort": 2}]}

    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        resp = await client.post(STOP)
        assert resp.status_code == 409  # nothing runs
        assert resp.json()["message"]
        assert (await client.post(START, json=preset)).status_code == 204
        assert sim.running
        status = (await client.get(STATUS)).json()
        assert status["status"] == "running"
        assert status["activePreset"]["profile"] == "inventory"
        again = await client.post(START, json=preset)
        assert again.status_code == 409  # already running
        assert (await client.post(STOP)).status_code == 204
        assert (await client.get(STATUS)).json()["status"] == "idle"
        assert (await client.post(START, json=preset)).status_code == 204
        assert sim.preset is not None
        assert [a.port for a in sim.preset.antennas] == [1, 2]

    run_with_sim(body)


@pytest.mark.parametrize(
    ("preset", "prop"),
    [
        ({"antennaConfigs": [{"antennaPort": 5}]}, "antennaConfigs[0].antennaPort"),
        ({"antennaConfigs": [{"antennaPort": 0}]}, "antennaConfigs[0].antennaPort"),
        ({"antennaConfigs": [{"antennaPort": "1"}]}, "antennaConfigs[0].antennaPort"),
        ({"antennaConfigs": [{"transmitPowerCdbm": 3000}]}, "antennaConfigs[0].antennaPort"),
        (
            {"antennaConfigs": [{"antennaPort": 1}, {"antennaPort": 2, "transmitPowerCdbm": 3400}]},
            "antennaConfigs[1].transmitPowerCdbm",
        ),
        (
            {"antennaConfigs": [{"antennaPort": 1, "transmitPowerCdbm": 900}]},
            "antennaConfigs[0].transmitPowerCdbm",
        ),
        (
            {"antennaConfigs": [{"antennaPort": 1, "inventorySession": 4}]},
            "antennaConfigs[0].inventorySession",
        ),
        (
            {"antennaConfigs": [{"antennaPort": 1, "rfMode": -1}]},
            "antennaConfigs[0].rfMode",
        ),
        (
            {"antennaConfigs": [{"antennaPort": 2}, {"antennaPort": 2}]},
            "antennaConfigs[1].antennaPort",
        ),
        ({"antennaConfigs": []}, "antennaConfigs"),
        ({}, "antennaConfigs"),
        (
            {
                "antennaConfigs": [{"antennaPort": 1}],
                "eventConfig": {"tagInventory": {"epcHex": "maybe"}},
            },
            "eventConfig.tagInventory.epcHex",
        ),
        ([1, 2], None),
    ],
)
def test_bad_presets_are_refused_with_a_json_error(preset: Any, prop: str | None) -> None:
    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        resp = await client.post(START, json=preset)
        assert resp.status_code == 400
        error = resp.json()
        assert error["message"]
        assert error.get("invalidPropertyId") == prop
        assert not sim.running

    sim = run_with_sim(body)
    assert sim.counters.rejected_presets == 1


def test_a_body_that_is_not_json_is_refused() -> None:
    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        resp = await client.post(START, content=b"{antennaConfigs", headers={"x": "y"})
        assert resp.status_code == 400
        assert "JSON" in resp.json()["message"]

    run_with_sim(body)


def _tags_by_antenna(scenario: Scenario) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for tag in scenario.resolved_tags():
        for iv in tag.intervals:
            out.setdefault(iv.antenna, set()).add(tag.epc)
    return out


def test_the_stream_carries_tag_events_of_the_preset_antennas_only() -> None:
    scenario = load_scenario(SCENARIO)
    on_antenna = _tags_by_antenna(scenario)
    events: list[dict[str, Any]] = []

    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", STREAM) as resp:
            assert resp.status_code == 200
            assert resp.headers["transfer-encoding"] == "chunked"
            await until(lambda: sim.stream_count == 1, 5, "the stream registered")
            preset = {"antennaConfigs": [{"antennaPort": 1, "transmitPowerCdbm": 2500}]}
            assert (await client.post(START, json=preset)).status_code == 204
            async for line in resp.aiter_lines():
                events.append(json.loads(line))
                if len(events) >= 150:
                    break

    run_with_sim(body, time_scale=20.0)
    assert events[0]["eventType"] == "inventoryStatus"
    assert events[0]["inventoryStatusEvent"] == {"inventoryStatus": "running"}
    tags = [e["tagInventoryEvent"] for e in events[1:]]
    assert all(e["eventType"] == "tagInventory" for e in events[1:])
    assert {t["antennaPort"] for t in tags} == {1}
    assert {t["epcHex"] for t in tags} <= on_antenna[1]
    for t in tags:
        assert base64.urlsafe_b64decode(t["epc"]).hex().upper() == t["epcHex"]
        assert t["transmitPowerCdbm"] == 2500
        assert -10000 < t["peakRssiCdbm"] < -2000
        assert 902_750 <= t["frequency"] <= 927_250
        assert t["antennaName"] == "Antenna 1"
        assert t["lastSeenTime"].endswith("Z")


def test_event_config_leaves_disabled_fields_out() -> None:
    tags: list[dict[str, Any]] = []

    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", STREAM) as resp:
            await until(lambda: sim.stream_count == 1, 5, "the stream registered")
            preset = {
                "antennaConfigs": [{"antennaPort": 2}],
                "eventConfig": {
                    "tagInventory": {"epc": "disabled", "frequency": "disabled", "pc": "enabled"}
                },
            }
            assert (await client.post(START, json=preset)).status_code == 204
            async for line in resp.aiter_lines():
                event = json.loads(line)
                if event["eventType"] == "tagInventory":
                    tags.append(event["tagInventoryEvent"])
                    if len(tags) >= 20:
                        break

    run_with_sim(body, time_scale=20.0)
    for tag in tags:
        assert "epc" not in tag
        assert "frequency" not in tag
        assert tag["antennaPort"] == 2
        assert len(tag["epcHex"]) == 24


def test_an_idle_stream_gets_keepalives() -> None:
    lines: list[str] = []

    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", STREAM) as resp:
            async for line in resp.aiter_lines():
                lines.append(line)
                if len(lines) >= 3:
                    break

    sim = run_with_sim(body, time_scale=1.0, keepalive_s=0.05)
    assert lines == ["", "", ""]
    assert sim.counters.keepalives >= 3


def _busy_scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "busy",
            "antennas": {1: "a"},
            "end_s": 600,
            "reads": {"reads_per_s": 200, "round_period_s": 0.05},
            "groups": [
                {
                    "name": "crowd",
                    "count": 200,
                    "epc_prefix": "3034",
                    "visible": [{"antenna": 1, "from_s": 0}],
                }
            ],
        }
    )


def test_a_consumer_that_stops_reading_pauses_inventory() -> None:
    async def body(sim: R700Simulator, client: httpx.AsyncClient) -> None:
        # a raw socket with a tiny receive buffer that never reads the stream
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", sim.port))
        token = base64.b64encode(b"root:impinj").decode()
        request = f"GET {STREAM} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n"
        await loop.sock_sendall(sock, request.encode())
        try:
            await until(lambda: sim.stream_count == 1, 5, "the stream registered")
            preset = {"antennaConfigs": [{"antennaPort": 1}]}
            assert (await client.post(START, json=preset)).status_code == 204
            await until(lambda: sim.counters.stalls >= 1, 30, "inventory paused")
            paused_rounds = sim.counters.rounds
            paused_at = sim.scenario_time() or 0.0
            await until(lambda: (sim.scenario_time() or 0) > paused_at + 2, 5, "2 s of scenario")
            assert sim.counters.rounds == paused_rounds  # no inventory while paused
            assert (await client.get(STATUS)).status_code == 200  # the REST API still answers
            # the consumer goes away: inventory resumes
            sock.close()
            await until(lambda: sim.stream_count == 0, 5, "the stream dropped")
            await until(lambda: sim.counters.rounds > paused_rounds, 5, "inventory resumed")
        finally:
            sock.close()

    sim = run_with_sim(body, scenario=_busy_scenario(), time_scale=5.0)
    assert sim.counters.stalls >= 1
    assert sim.counters.tag_events * 100 > STALL_BYTES  # it really sent that much


def test_the_command_line_prints_ready_and_serves(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tagtrail.sim.r700",
            str(SCENARIO),
            "--port",
            "0",
            "--time-scale",
            "10",
            "--password",
            "s3cret",
            "--ground-truth",
            str(truth),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = wait_ready_line(proc, 20.0)
        assert url.startswith("http://127.0.0.1:")
        assert json.loads(truth.read_text())["scenario"] == "r700-dock"
        assert httpx.get(url + STATUS, auth=AUTH, timeout=5).status_code == 401
        resp = httpx.get(url + STATUS, auth=("root", "s3cret"), timeout=5)
        assert resp.json()["status"] == "idle"
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_the_simulator_never_imports_the_drivers() -> None:
    code = (
        "import sys, tagtrail.sim.r700\n"
        "bad = sorted(m for m in sys.modules if m.startswith('tagtrail.readers'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
