"""The real pipeline as processes: simulator -> edge agent -> broker -> a subscriber.

Every piece is the real program: ``python -m tagtrail sim`` on a pseudo-terminal,
``python -m tagtrail edge run`` reading it, a private mosquitto, and a paho subscriber
that records what the broker delivered.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tagtrail.demo import wait_ready_line
from tagtrail.errors import TagtrailError
from tagtrail.events import AnyEvent, Arrived, Departed, Moved, parse_message
from tagtrail.sim import ground_truth, load_scenario

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "hardware-sim" / "scenarios"


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``condition`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class SimProcess:
    """``tagtrail sim`` as a subprocess; ready once it printed ``READY <path>``.

    ``protocol`` is passed as ``--protocol`` (None: the scenario's own). With
    ``start=False`` nothing runs until :meth:`start`; the ground truth and scenario are
    then computed in this process, so an edge config can be written first (an EM4100
    reader starts its scenario clock with the simulator, so its reader should be waiting).
    """

    def __init__(
        self,
        scenario: Path,
        workdir: Path,
        *,
        time_scale: float,
        name: str = "reader0",
        protocol: str | None = None,
        start: bool = True,
    ) -> None:
        self.scenario_path = scenario
        self.time_scale = time_scale
        self.protocol_option = protocol
        self.link = workdir / name
        self.truth_path = workdir / f"{name}-truth.json"
        self.log_path = workdir / f"{name}-sim.log"
        self.scenario: dict[str, Any] = yaml.safe_load(scenario.read_text())
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.truth: dict[str, Any] = {}
        if start:
            self.start()
        else:
            loaded = load_scenario(scenario)
            if protocol is not None:
                loaded = loaded.with_protocol(protocol)
            self.truth = ground_truth(loaded)

    @property
    def protocol(self) -> str:
        """The device the simulator plays, as its ground truth says."""
        return str(self.truth.get("protocol", "r2000"))

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        args = [
            sys.executable,
            "-m",
            "tagtrail.sim",
            str(self.scenario_path),
            "--time-scale",
            str(self.time_scale),
            "--link",
            str(self.link),
            "--ground-truth",
            str(self.truth_path),
        ]
        if self.protocol_option is not None:
            args += ["--protocol", self.protocol_option]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log)
        try:
            wait_ready_line(self.proc, 20.0)
        except TagtrailError as exc:
            log = self.log_path.read_text(errors="replace")
            raise AssertionError(f"simulator not ready: {log}") from exc
        self.truth = json.loads(self.truth_path.read_text())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()


def reader_config(sim: SimProcess, reader_id: str) -> dict[str, Any]:
    """The edge's ``readers[]`` entry for a simulator, of the type of the device it plays."""
    antennas = [{"port": int(port), "zone": zone} for port, zone in sim.truth["antennas"].items()]
    protocol = sim.protocol
    entry: dict[str, Any] = {"type": protocol, "id": reader_id, "port": str(sim.link)}
    if protocol in ("m100", "em4100"):
        entry["zone"] = antennas[0]["zone"]
    else:
        entry["antennas"] = antennas
    if protocol == "chafon":
        entry["layout"] = str((sim.scenario.get("reader") or {}).get("layout", "288"))
    if protocol == "m100":
        entry["poll_count"] = 65535  # one poll run for the whole scenario: no stop gap
    return entry


def edge_config(
    sims: list[SimProcess],
    workdir: Path,
    *,
    broker_port: int,
    time_scale: float,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write an edge.yaml that reads every simulator, with zones from their ground truth."""
    truth = sims[0].truth
    readers = [reader_config(sim, f"r{i}") for i, sim in enumerate(sims)]
    cfg: dict[str, Any] = {
        "site": truth.get("site") or "wh-test",
        "device": truth.get("device") or "edge-test",
        "readers": readers,
        "time_scale": time_scale,
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "outbox": {"path": str(workdir / "outbox.sqlite"), "synchronous": "normal"},
        "smoothing": {"depart_after_s": sims[0].scenario["expect"]["depart_after_s"]},
        "status": {"heartbeat_s": 10},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class EdgeProcess:
    """``tagtrail edge run -c edge.yaml`` as a subprocess."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.workdir / f"edge-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tagtrail", "edge", "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("edge-*.log"))
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


class Collector:
    """A persistent-session MQTT subscriber recording every delivered event.

    With a persistent session (clean_start=False and a session expiry) on a broker with
    persistence, messages published while the collector or the broker was away are still
    delivered after both are back.
    """

    def __init__(self, port: int, topic: str = "tagtrail/v1/#", client_id: str = "collector"):
        self.lock = threading.Lock()
        self.events: list[AnyEvent] = []
        self.status: list[tuple[str, bytes, bool]] = []
        self.messages = 0
        self.invalid: list[bytes] = []
        self.topic = topic
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        wait_for(self.connected.is_set, 10, "collector connected")

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)
            self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages += 1
            if msg.topic.endswith("/status"):
                self.status.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
                return
            try:
                self.events.extend(parse_message(bytes(msg.payload)))
            except Exception:  # noqa: BLE001 - recorded and asserted on by the tests
                self.invalid.append(bytes(msg.payload))

    def movements(self) -> list[Arrived | Moved | Departed]:
        with self.lock:
            return [e for e in self.events if isinstance(e, Arrived | Moved | Departed)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def unique_by_id(events: list[Arrived | Moved | Departed]) -> list[Arrived | Moved | Departed]:
    """Drop redeliveries: a duplicate must carry the same event_id, so keep the first."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


def sequences(events: list[Arrived | Moved | Departed]) -> dict[str, list[dict[str, str]]]:
    """Per EPC (per item key for items without one, e.g. ``em4100:<code>``), the movements
    as ground truth writes them, in event-time order."""
    out: dict[str, list[dict[str, str]]] = {}
    for e in sorted(events, key=lambda e: e.event_time):
        step = {"kind": e.kind, "zone": e.zone}
        if isinstance(e, Moved):
            step["from_zone"] = e.from_zone
        out.setdefault(e.epc or e.item_key, []).append(step)
    return out


def expected_sequences(truth: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """The ground truth's movements keyed like :func:`sequences` (EPC, or ``em4100:<code>``)."""
    em4100 = truth.get("scheme") == "em4100"
    return {
        f"em4100:{tag_id}" if em4100 else tag_id: list(tag["movements"])
        for tag_id, tag in truth["tags"].items()
        if tag["movements"]
    }


def expected_count(truth: dict[str, Any]) -> int:
    return sum(len(tag["movements"]) for tag in truth["tags"].values())


API_TOKEN = "test-token-0123456789abcdef"


def gateway_config(
    workdir: Path,
    *,
    broker_port: int,
    influx_url: str,
    database: str = "tagtrail",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a gateway.yaml for a private broker and influxd; the API on a free port."""
    cfg: dict[str, Any] = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "client_id": "gateway-test",
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "store": {"path": str(workdir / "gateway.sqlite"), "synchronous": "normal"},
        "influx": {"backend": "v1", "url": influx_url, "database": database},
        "write": {
            "flush_interval_s": 0.2,
            "retry_initial_s": 0.2,
            "retry_max_s": 1.0,
            "reject_log": str(workdir / "rejects.jsonl"),
            "stock_interval_s": 1.0,
        },
        "api": {"host": "127.0.0.1", "port": 0, "tokens": [{"name": "test", "token": API_TOKEN}]},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class GatewayProcess:
    """``tagtrail gateway run -c gateway.yaml`` as a subprocess; knows its API URL."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.url = ""

    def start(self, timeout: float = 30.0) -> None:
        self.runs += 1
        log = (self.workdir / f"gateway-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tagtrail", "gateway", "run", "-c", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.startswith(b"API "):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"gateway did not start: {self.logs()[-3000:]}")
            line = self.proc.stdout.readline()
        self.url = line.decode().split()[1]

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("gateway-*.log"))
        )

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path with the test token; returns the decoded JSON."""
        import httpx

        resp = httpx.get(
            self.url + path,
            params=params,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        resp.raise_for_status()
        return resp.json()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_pipe()

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self._close_pipe()
        return self.proc.returncode

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
