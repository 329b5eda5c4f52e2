"""A simulated Impinj R700 serving the IoT device interface (HTTP REST + NDJSON stream).

``python -m tagtrail.sim.r700 SCENARIO.yaml --port N`` serves the scenario on
``http://127.0.0.1:N`` and prints ``READY http://127.0.0.1:N`` on stdout once it
listens; logs go to stderr. SIGTERM and SIGINT end it cleanly with exit code 0.

The server is a small asyncio HTTP/1.1 server (keep-alive, ``Content-Length`` request
bodies, a chunked response body for the stream), HTTPS with ``--tls-cert``/``--tls-key``:
it owns its sockets, so it can see a client that stops reading the stream. Every request
needs HTTP basic auth (``401`` with ``WWW-Authenticate: Basic`` otherwise).

Endpoints (base ``/api/v1``)
============================
==============================  =====================================================
``GET /status``                 ``{"status": "running"|"idle", "time", "serialNumber",
                                "mdnsName", "activePreset"?}``
``GET /system``                 ``{"productModel": "R700", "productDescription",
                                "serialNumber"}``
``GET /system/image``           ``{"primaryFirmware": "8.4.1.240"}``
``POST /profiles/inventory/     body: an inventory preset (below). ``204`` started;
start``                         ``400`` bad preset; ``409`` a profile is running.
``POST /profiles/stop``         ``204`` stopped; ``409`` nothing was running.
``GET /data/stream``            ``200``, chunked NDJSON events for as long as the client
                                stays (several clients may stream at once).
==============================  =====================================================

Errors answer JSON ``{"message": "...", "invalidPropertyId": "..."}`` (the property only
where one is at fault), as the device does.

The inventory preset: ``{"antennaConfigs": [{"antennaPort": 1-4, "transmitPowerCdbm":
1000-3300, "inventorySession": 0-3, "rfMode": int >= 0, "estimatedTagPopulation": int >=
1, ...}], "eventConfig": {"tagInventory": {"epc": "enabled"|"disabled", ...}}}``. Other
keys are accepted and ignored. Ports must be unique; a port with no antenna in the
scenario is accepted and reads nothing.

While inventory runs, the antennas of the preset are inventoried in turn, one round of
``reads.round_period_s`` scenario seconds each, through :class:`tagtrail.sim.engine.Engine`
(the same read model as the serial simulators); each read becomes one ``tagInventory``
event with ``epc`` (URL-safe base64), ``epcHex``, ``antennaPort``, ``antennaName``,
``peakRssiCdbm``, ``frequency`` (kHz, FCC channels), ``transmitPowerCdbm`` and
``lastSeenTime`` (fields the preset's ``eventConfig`` disables are left out). Start and
stop send an ``inventoryStatus`` event; with nothing sent to a stream for
``keepalive_s`` scenario seconds, it gets a keep-alive ``CR LF``.

A client that does not read fills its socket and the server's buffer; once more than
:data:`STALL_BYTES` wait for a stream, inventory pauses (``counters.stalls`` counts each
pause) until it drains, as the device pauses inventory for a lagging consumer: reads of
the pause are lost, the scenario clock runs on.

Time: the injected clock measures scenario seconds (a :class:`~tagtrail.clock.ScaledClock`
for real runs); the scenario clock starts at the first inventory start.

What was not checked against a device: the exact ``409`` answers (a real reader may use
another 4xx for "already running" / "not running"), the ``/system`` field names besides
``primaryFirmware``, the default set of tag event fields and ``antennaName`` values.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import signal
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from tagtrail.clock import Clock, ScaledClock
from tagtrail.errors import TagtrailError
from tagtrail.logsetup import setup_logging
from tagtrail.sim.engine import Engine
from tagtrail.sim.scenario import Scenario, load_scenario
from tagtrail.sim.truth import write_ground_truth

log = logging.getLogger(__name__)

API = "/api/v1"
STALL_BYTES = 256 * 1024
"""Bytes waiting for one stream client beyond which inventory pauses."""
MAX_BODY = 1 << 20
MAX_PORT = 4
MIN_POWER_CDBM = 1000
MAX_POWER_CDBM = 3300
FCC_FIRST_KHZ = 902_750
FCC_STEP_KHZ = 500
DEFAULT_FIRMWARE = "8.4.1.240"
TAG_FIELDS = (
    "epc",
    "epcHex",
    "antennaPort",
    "antennaName",
    "peakRssiCdbm",
    "frequency",
    "transmitPowerCdbm",
    "lastSeenTime",
)
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
}


class SimulatorError(TagtrailError):
    """The simulator could not listen on its port."""


@dataclass(slots=True)
class R700SimCounters:
    """What the simulator has done so far."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    streams_opened: int = 0
    rounds: int = 0
    tag_events: int = 0
    keepalives: int = 0
    stalls: int = 0
    """Times inventory paused because a stream client did not read."""
    rejected_presets: int = 0
    raw_injected: int = 0


@dataclass(frozen=True, slots=True)
class AntennaSetting:
    port: int
    power_cdbm: int
    session: int
    rf_mode: int | None


@dataclass(frozen=True, slots=True)
class Preset:
    """A validated inventory preset."""

    antennas: tuple[AntennaSetting, ...]
    fields: frozenset[str]


class PresetError(ValueError):
    """A preset the device refuses: a message and the property at fault."""

    def __init__(self, message: str, prop: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.prop = prop


def _int_field(
    cfg: dict[str, Any],
    key: str,
    *,
    default: int | None,
    low: int,
    high: int,
    where: str,
    what: str,
) -> int | None:
    """``cfg[key]`` as an int in ``low..high`` (``default`` if absent)."""
    value = cfg.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PresetError(f"{key} must be {what}", f"{where}.{key}")
    return value


def validate_preset(body: object, max_power_cdbm: int = MAX_POWER_CDBM) -> Preset:
    """Check an inventory preset as the device does; raises :class:`PresetError`.

    ``max_power_cdbm`` is the region's limit (a real reader's depends on its region).
    """
    if not isinstance(body, dict):
        raise PresetError("The preset must be a JSON object")
    configs = body.get("antennaConfigs")
    if not isinstance(configs, list) or not configs:
        raise PresetError("antennaConfigs must be a non-empty array", "antennaConfigs")
    antennas: list[AntennaSetting] = []
    for i, cfg in enumerate(configs):
        where = f"antennaConfigs[{i}]"
        if not isinstance(cfg, dict):
            raise PresetError("Each antenna config must be an object", where)
        port = _int_field(
            cfg, "antennaPort", default=None, low=1, high=MAX_PORT, where=where, what="a port"
        )
        if port is None:
            raise PresetError("antennaPort is required", f"{where}.antennaPort")
        if any(a.port == port for a in antennas):
            raise PresetError(f"antennaPort {port} appears twice", f"{where}.antennaPort")
        power = _int_field(
            cfg,
            "transmitPowerCdbm",
            default=3000,
            low=MIN_POWER_CDBM,
            high=max_power_cdbm,
            where=where,
            what=f"from {MIN_POWER_CDBM} to {max_power_cdbm} centi-dBm",
        )
        session = _int_field(
            cfg, "inventorySession", default=1, low=0, high=3, where=where, what="0-3"
        )
        rf_mode = _int_field(
            cfg, "rfMode", default=None, low=0, high=65535, where=where, what="a mode number"
        )
        _int_field(
            cfg,
            "estimatedTagPopulation",
            default=16,
            low=1,
            high=65535,
            where=where,
            what="a positive integer",
        )
        antennas.append(AntennaSetting(port, power or 3000, session or 0, rf_mode))
    return Preset(tuple(antennas), _fields(body.get("eventConfig")))


def _fields(event_config: object) -> frozenset[str]:
    wanted = set(TAG_FIELDS)
    if event_config is None:
        return frozenset(wanted)
    if not isinstance(event_config, dict):
        raise PresetError("eventConfig must be an object", "eventConfig")
    tag = event_config.get("tagInventory", {})
    if not isinstance(tag, dict):
        raise PresetError("eventConfig.tagInventory must be an object", "eventConfig.tagInventory")
    for key, value in tag.items():
        if key not in TAG_FIELDS or not isinstance(value, str):
            continue
        if value not in ("enabled", "disabled"):
            raise PresetError("must be 'enabled' or 'disabled'", f"eventConfig.tagInventory.{key}")
        if value == "disabled":
            wanted.discard(key)
    wanted.add("antennaPort")
    if "epc" not in wanted and "epcHex" not in wanted:
        wanted.add("epcHex")
    return frozenset(wanted)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Stream:
    """One client of ``/data/stream``."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.last_write = loop.time()
        self._loop = loop

    @property
    def backlog(self) -> int:
        transport = self.writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    def send(self, data: bytes) -> None:
        if not data or self.writer.transport.is_closing():
            return
        self.writer.write(b"%X\r\n%b\r\n" % (len(data), data))
        self.last_write = self._loop.time()


class R700Simulator:
    """An R700 playing ``scenario`` behind the IoT device interface."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        seed: int | None = None,
        time_scale: float | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "root",
        password: str = "impinj",  # noqa: S107 - the R700's factory default
        firmware: str = DEFAULT_FIRMWARE,
        serial: str = "370000000001",
        keepalive_s: float = 30.0,
        max_power_cdbm: int = MAX_POWER_CDBM,
        ssl_context: ssl.SSLContext | None = None,
        start_immediately: bool = False,
    ) -> None:
        if time_scale is None:
            time_scale = clock.scale if isinstance(clock, ScaledClock) else 1.0
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if keepalive_s <= 0:
            raise ValueError("keepalive_s must be positive")
        self.scenario = scenario
        self.clock = clock
        self.time_scale = time_scale
        self.engine = Engine(scenario, seed)
        self.host = host
        self.port = port
        self.firmware = firmware
        self.serial = serial
        self.keepalive_s = keepalive_s
        self.max_power_cdbm = max_power_cdbm
        self.ssl_context = ssl_context
        self.start_immediately = start_immediately
        self.counters = R700SimCounters()
        self.preset: Preset | None = None
        self._credentials = f"{username}:{password}".encode()
        self._server: asyncio.Server | None = None
        self._streams: set[_Stream] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._inventory: asyncio.Task[None] | None = None
        self._t0: float | None = None

    # -- public API -------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._inventory is not None

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def scenario_time(self) -> float | None:
        """Scenario seconds since the scenario clock started, or None before that."""
        return None if self._t0 is None else self.clock.monotonic() - self._t0

    def start_scenario(self) -> float:
        if self._t0 is None:
            self._t0 = self.clock.monotonic()
            log.info("scenario %r started", self.scenario.name)
        return self._t0

    async def start(self) -> str:
        """Listen and return the base URL."""
        if self._server is not None:
            return self.url
        try:
            self._server = await asyncio.start_server(
                self._on_connection,
                self.host,
                self.port,
                reuse_address=True,
                ssl=self.ssl_context,
            )
        except OSError as exc:
            raise SimulatorError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        if self.start_immediately:
            self.start_scenario()
        log.info("simulating an R700 for scenario %r on %s", self.scenario.name, self.url)
        return self.url

    async def close(self) -> None:
        """Stop inventory, drop every connection (no clean end) and stop listening."""
        await self._stop_inventory()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # the handlers then see the end of their connection
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            c = self.counters
            log.info(
                "R700 simulator closing: %d requests, %d rounds, %d tag events, %d stalls",
                c.requests,
                c.rounds,
                c.tag_events,
                c.stalls,
            )

    def inject_raw(self, data: bytes) -> None:
        """Send ``data`` as is to every stream client (tests: malformed lines)."""
        self.counters.raw_injected += 1
        for stream in list(self._streams):
            stream.send(data)

    async def __aenter__(self) -> R700Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- HTTP -------------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:
            log.exception("serving a connection failed")
        finally:
            if task is not None:
                self._handlers.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                req = await _read_request(reader)
            except _HttpError as exc:
                self._respond(writer, exc.status, {"message": exc.message}, close=True)
                await writer.drain()
                return
            if req is None:
                return
            self.counters.requests += 1
            if not self._authorized(req):
                self._respond(
                    writer,
                    401,
                    {"message": "Authentication required"},
                    extra={"WWW-Authenticate": 'Basic realm="Impinj R700"'},
                )
                await writer.drain()
                continue
            if req.method == "GET" and req.path == f"{API}/data/stream":
                await self._stream(reader, writer)
                return
            status, payload = self._route(req)
            close = req.headers.get("connection", "").lower() == "close"
            self._respond(writer, status, payload, close=close)
            await writer.drain()
            if close:
                return

    def _authorized(self, req: _Request) -> bool:
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._credentials)

    def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: dict[str, Any] | None,
        *,
        close: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.counters.statuses[status] = self.counters.statuses.get(status, 0) + 1
        body = b"" if payload is None else json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        if payload is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        for name, value in (extra or {}).items():
            head.append(f"{name}: {value}")
        if close:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def _route(self, req: _Request) -> tuple[int, dict[str, Any] | None]:
        routes = {
            f"{API}/status": ("GET", self._get_status),
            f"{API}/system": ("GET", self._get_system),
            f"{API}/system/image": ("GET", self._get_image),
            f"{API}/profiles/inventory/start": ("POST", self._post_start),
            f"{API}/profiles/stop": ("POST", self._post_stop),
        }
        route = routes.get(req.path)
        if route is None:
            return 404, {"message": f"No resource at {req.path}"}
        method, handler = route
        if req.method != method:
            return 405, {"message": f"{req.method} is not allowed on {req.path}"}
        return handler(req)

    def _get_status(self, req: _Request) -> tuple[int, dict[str, Any] | None]:
        status: dict[str, Any] = {
            "status": "running" if self.running else "idle",
            "time": _iso(self.clock.now()),
            "serialNumber": self.serial,
            "mdnsName": f"impinj-{self.serial[-6:-4]}-{self.serial[-4:-2]}-{self.serial[-2:]}",
        }
        if self.running:
            status["activePreset"] = {"profile": "inventory"}
        return 200, status

    def _get_system(self, req: _Request) -> tuple[int, dict[str, Any] | None]:
        return 200, {
            "productModel": "R700",
            "productDescription": "Impinj R700 RAIN RFID reader (simulated)",
            "serialNumber": self.serial,
        }

    def _get_image(self, req: _Request) -> tuple[int, dict[str, Any] | None]:
        return 200, {"primaryFirmware": self.firmware}

    def _post_start(self, req: _Request) -> tuple[int, dict[str, Any] | None]:
        if self.running:
            return 409, {"message": "A profile is already running; stop it first"}
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.counters.rejected_presets += 1
            return 400, {"message": "The request body is not valid JSON"}
        try:
            preset = validate_preset(body, self.max_power_cdbm)
        except PresetError as exc:
            self.counters.rejected_presets += 1
            payload: dict[str, Any] = {"message": exc.message}
            if exc.prop is not None:
                payload["invalidPropertyId"] = exc.prop
            return 400, payload
        self.preset = preset
        t0 = self.start_scenario()
        self._inventory = asyncio.create_task(self._run_inventory(preset, t0), name="r700-inv")
        self._broadcast_event("inventoryStatus", {"inventoryStatus": "running"})
        log.info("inventory started on ports %s", [a.port for a in preset.antennas])
        return 204, None

    def _post_stop(self, req: _Request) -> tuple[int, dict[str, Any] | None]:
        if not self.running:
            return 409, {"message": "No profile is running"}
        task, self._inventory = self._inventory, None
        if task is not None:
            task.cancel()
        self._broadcast_event("inventoryStatus", {"inventoryStatus": "idle"})
        log.info("inventory stopped")
        return 204, None

    async def _stop_inventory(self) -> None:
        task, self._inventory = self._inventory, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the stream -------------------------------------------------------------------

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.streams_opened += 1
        self.counters.statuses[200] = self.counters.statuses.get(200, 0) + 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
        )
        writer.transport.set_write_buffer_limits(high=STALL_BYTES, low=STALL_BYTES // 4)
        loop = asyncio.get_running_loop()
        stream = _Stream(writer, loop)
        self._streams.add(stream)
        keepalive = asyncio.create_task(self._keepalive(stream), name="r700-keepalive")
        try:
            while await reader.read(4096):
                pass  # the client has nothing to say on a stream; EOF ends it
        finally:
            self._streams.discard(stream)
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive

    async def _keepalive(self, stream: _Stream) -> None:
        period = self.keepalive_s / self.time_scale
        loop = asyncio.get_running_loop()
        while True:
            due = stream.last_write + period
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self.counters.keepalives += 1
            stream.send(b"\r\n")

    def _broadcast(self, data: bytes) -> None:
        for stream in list(self._streams):
            stream.send(data)

    def _broadcast_event(self, event_type: str, body: dict[str, Any]) -> None:
        event = {
            "timestamp": _iso(self.clock.now()),
            "eventType": event_type,
            f"{event_type}Event": body,
        }
        self._broadcast(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    async def _wait_for_readers(self) -> None:
        """Pause while a stream client leaves more than :data:`STALL_BYTES` unread."""
        while True:
            stalled = [s for s in self._streams if s.backlog > STALL_BYTES]
            if not stalled:
                return
            self.counters.stalls += 1
            log.warning("a stream client does not read; inventory paused")
            for stream in stalled:
                with contextlib.suppress(ConnectionError):
                    await stream.writer.drain()

    async def _run_inventory(self, preset: Preset, t0: float) -> None:
        period = self.scenario.reads.round_period_s
        engine = self.engine
        clock = self.clock
        settings = preset.antennas
        n = 0
        next_t = clock.monotonic()
        while True:
            await self._wait_for_readers()
            antenna = settings[n % len(settings)]
            n += 1
            t = clock.monotonic() - t0
            if engine.connected(antenna.port):
                result = engine.inventory(antenna.port, t, 1)
                self.counters.rounds += 1
                if result.reads and self._streams:
                    now = _iso(clock.now())
                    freq = FCC_FIRST_KHZ + FCC_STEP_KHZ * result.freq_index
                    lines = [
                        self._tag_line(
                            preset,
                            antenna,
                            epc=engine.epc_bytes[r.tag],
                            rssi_dbm=r.rssi_dbm,
                            freq_khz=freq,
                            now=now,
                        )
                        for r in result.reads
                    ]
                    self.counters.tag_events += len(lines)
                    self._broadcast(b"".join(lines))
            next_t += period
            delay = (next_t - clock.monotonic()) / self.time_scale
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_t = clock.monotonic()  # behind (a pause): no burst to catch up
                await asyncio.sleep(0)

    @staticmethod
    def _tag_line(
        preset: Preset,
        antenna: AntennaSetting,
        *,
        epc: bytes,
        rssi_dbm: float,
        freq_khz: int,
        now: str,
    ) -> bytes:
        want = preset.fields
        tag: dict[str, Any] = {}
        if "epc" in want:
            tag["epc"] = base64.urlsafe_b64encode(epc).decode()
        if "epcHex" in want:
            tag["epcHex"] = epc.hex().upper()
        tag["antennaPort"] = antenna.port
        if "antennaName" in want:
            tag["antennaName"] = f"Antenna {antenna.port}"
        if "peakRssiCdbm" in want:
            tag["peakRssiCdbm"] = round(rssi_dbm * 100)
        if "frequency" in want:
            tag["frequency"] = freq_khz
        if "transmitPowerCdbm" in want:
            tag["transmitPowerCdbm"] = antenna.power_cdbm
        if "lastSeenTime" in want:
            tag["lastSeenTime"] = now
        event = {"timestamp": now, "eventType": "tagInventory", "tagInventoryEvent": tag}
        return json.dumps(event, separators=(",", ":")).encode() + b"\n"


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """One request, or None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _HttpError(400, "incomplete request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise _HttpError(431, "request head too large") from exc
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _HttpError(400, "bad request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _HttpError(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _HttpError(411, "send a Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _HttpError(400, "bad Content-Length") from exc
    if length < 0 or length > MAX_BODY:
        raise _HttpError(413, "request body too large")
    body = await reader.readexactly(length) if length else b""
    return _Request(method, target.split("?", 1)[0], headers, body)


# -- command line ---------------------------------------------------------------------


def server_tls_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """A server TLS context for the simulator. Raises :class:`SimulatorError`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise SimulatorError(f"cannot load the TLS certificate {cert}: {exc}") from exc
    return context


async def _serve(sim: R700Simulator) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await sim.start()
        click.echo(f"READY {url}")
        await stop.wait()
        log.info("stopping: signal")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await sim.close()


@click.command("r700")
@click.argument(
    "scenario_path",
    metavar="SCENARIO.yaml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="TCP port to listen on (0: any free port, printed in READY).",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True, max=10_000),
    default=1.0,
    show_default=True,
    help="Run the scenario this many times faster than real time.",
)
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option(
    "--ground-truth",
    "ground_truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the scenario's expected movements per EPC to this JSON file.",
)
@click.option("--username", default="root", show_default=True, help="Basic-auth user.")
@click.option("--password", default="impinj", show_default=True, help="Basic-auth password.")
@click.option("--firmware", default=DEFAULT_FIRMWARE, show_default=True, help="Reported firmware.")
@click.option(
    "--keepalive-s",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Scenario seconds of stream silence before a keep-alive CR LF.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve HTTPS with this certificate (PEM); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Private key (PEM) of --tls-cert.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
    help="Log level (logs go to stderr).",
)
def r700_command(
    *,
    scenario_path: Path,
    host: str,
    port: int,
    time_scale: float,
    seed: int | None,
    ground_truth_path: Path | None,
    username: str,
    password: str,
    firmware: str,
    keepalive_s: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_level: str,
) -> None:
    """Simulate an Impinj R700 (IoT device interface) playing SCENARIO.yaml over HTTP."""
    setup_logging(log_level)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        context = None
        if tls_cert is not None and tls_key is not None:
            context = server_tls_context(tls_cert, tls_key)
        scenario = load_scenario(scenario_path)
        if ground_truth_path is not None:
            write_ground_truth(scenario, ground_truth_path)
        sim = R700Simulator(
            scenario,
            ScaledClock(time_scale),
            seed,
            time_scale,
            host=host,
            port=port,
            username=username,
            password=password,
            firmware=firmware,
            keepalive_s=keepalive_s,
            ssl_context=context,
        )
        asyncio.run(_serve(sim))
    except TagtrailError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    r700_command(prog_name="python -m tagtrail.sim.r700")
