"""A simulated LLRP fixed reader (Impinj Speedway/R700-like) on TCP, playing a scenario.

Written independently of :mod:`tagtrail.readers.protocols.llrp` (the client side): its own
encoder and parser, sharing only test vectors, so a misreading of the protocol in one
shows up as a failing test instead of cancelling out. Layout (EPCglobal LLRP 1.0.1,
section 15): a message is ``Rsvd(3)|Ver(3)|Type(10)``, ``Length`` u32 (whole message),
``MessageID`` u32, then fixed fields and parameters; a TLV parameter is
``Rsvd(6)|Type(10)``, ``Length`` u16, fields and sub-parameters; a TV parameter is one
byte ``1|Type(7)`` and a value whose size the type fixes.

What the simulated reader does:

* on TCP connect it sends ``READER_EVENT_NOTIFICATION`` with a ``ConnectionAttemptEvent``
  (status Success); a second client while one is connected gets status 2
  (a client-initiated connection already exists) and is closed;
* it answers ``GET_READER_CAPABILITIES`` (general device, LLRP, regulatory capabilities:
  power table 1-81 = 10.00-30.00 dBm, 50 hop channels, four RF modes),
  ``GET_READER_CONFIG``, ``SET_READER_CONFIG`` (``KeepaliveSpec``,
  ``ResetToFactoryDefault``), ``ADD_ROSPEC``, ``DELETE_ROSPEC`` (0 = all),
  ``ENABLE_ROSPEC``, ``DISABLE_ROSPEC``, ``START_ROSPEC``, ``STOP_ROSPEC``,
  ``GET_ROSPECS`` and ``CLOSE_CONNECTION`` with their responses and an ``LLRPStatus``;
  takes ``ENABLE_EVENTS_AND_REPORTS`` (64), ``KEEPALIVE_ACK`` and ``GET_REPORT`` (which
  have no response); any other message gets ``ERROR_MESSAGE`` with
  ``M_UnsupportedMessage``, a version other than 1 ``M_UnsupportedVersion``;
* a malformed request (fixed fields cut short, bad parameter lengths, a missing or
  impossible parameter, a ROSpec state change that is not allowed) is answered with its
  response carrying ``M_ParameterError`` / ``M_FieldError`` and a description; a header
  whose length is impossible (below 10 or above 1 MiB) gets ``ERROR_MESSAGE`` and the
  connection is closed (the stream cannot be re-framed);
* keep-alives: ``KEEPALIVE`` every ``KeepaliveSpec`` period, in real time (a link
  property, not scenario time);
* while a ROSpec is active, each AISpec runs for its duration stop trigger (scenario
  time, paced by ``time_scale``), inventorying its antennas in turn through
  :meth:`Engine.inventory` (rounds of ``reads.round_period_s``), then sends one
  ``RO_ACCESS_REPORT`` with a ``TagReportData`` per (EPC, antenna) seen: EPC-96 (or
  ``EPCData`` for other lengths), and as the ROSpec's ``TagReportContentSelector`` asks,
  ``AntennaID``, ``PeakRSSI``, ``ChannelIndex``, first/last seen UTC and ``TagSeenCount``;
  ``ROReportSpec`` N > 0 splits the tags into reports of at most N. No tags, no report.
  An AISpec with a null or tag-observation stop trigger runs for one scenario second.

ROSpecs persist across connections, as on real readers (a client deletes them); the
scenario clock starts at the first ROSpec start (or with ``start_immediately``).
``mute()`` and ``fail_next()`` are test hooks: stop sending anything while keeping the
connection open, and answer the next request of a type with an error status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from tagtrail.clock import Clock, ScaledClock
from tagtrail.sim.engine import Engine
from tagtrail.sim.scenario import Scenario

log = logging.getLogger(__name__)

# message types
GET_READER_CAPABILITIES = 1
GET_READER_CONFIG = 2
SET_READER_CONFIG = 3
CLOSE_CONNECTION_RESPONSE = 4
GET_READER_CAPABILITIES_RESPONSE = 11
GET_READER_CONFIG_RESPONSE = 12
SET_READER_CONFIG_RESPONSE = 13
CLOSE_CONNECTION = 14
ADD_ROSPEC = 20
DELETE_ROSPEC = 21
START_ROSPEC = 22
STOP_ROSPEC = 23
ENABLE_ROSPEC = 24
DISABLE_ROSPEC = 25
GET_ROSPECS = 26
GET_REPORT = 60
RO_ACCESS_REPORT = 61
KEEPALIVE = 62
READER_EVENT_NOTIFICATION = 63
ENABLE_EVENTS_AND_REPORTS = 64
KEEPALIVE_ACK = 72
ERROR_MESSAGE = 100

RESPONSE_TO = {
    GET_READER_CAPABILITIES: GET_READER_CAPABILITIES_RESPONSE,
    GET_READER_CONFIG: GET_READER_CONFIG_RESPONSE,
    SET_READER_CONFIG: SET_READER_CONFIG_RESPONSE,
    CLOSE_CONNECTION: CLOSE_CONNECTION_RESPONSE,
    ADD_ROSPEC: 30,
    DELETE_ROSPEC: 31,
    START_ROSPEC: 32,
    STOP_ROSPEC: 33,
    ENABLE_ROSPEC: 34,
    DISABLE_ROSPEC: 35,
    GET_ROSPECS: 36,
}

# status codes
SUCCESS = 0
PARAMETER_ERROR = 100
FIELD_ERROR = 101
MISSING_PARAMETER = 103
DUPLICATE_PARAMETER = 104
UNSUPPORTED_MESSAGE = 109
UNSUPPORTED_VERSION = 110
UNSUPPORTED_PARAMETER = 111

IMPINJ_PEN = 25882
MODEL = 2001002
"""ModelName of a Speedway R420-class reader."""
ANTENNAS = 4
MAX_MESSAGE = 1 << 20
TV_LEN = {
    1: 3,
    2: 9,
    3: 9,
    4: 9,
    5: 9,
    6: 2,
    7: 3,
    8: 3,
    9: 5,
    10: 3,
    11: 3,
    12: 3,
    13: 13,
    14: 3,
    15: 3,
    16: 5,
    17: 3,
    18: 5,
    19: 3,
    20: 3,
}

SEL_ROSPEC_ID = 0x8000
SEL_ANTENNA = 0x1000
SEL_CHANNEL = 0x0800
SEL_RSSI = 0x0400
SEL_FIRST = 0x0200
SEL_LAST = 0x0100
SEL_COUNT = 0x0080


class BadRequestError(Exception):
    """A request the reader rejects: status code and description."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


# --- encoding ------------------------------------------------------------------------


def message(msg_type: int, msg_id: int, body: bytes = b"") -> bytes:
    return struct.pack(">HII", 1 << 10 | msg_type, 10 + len(body), msg_id) + body


def param(ptype: int, body: bytes = b"") -> bytes:
    return struct.pack(">HH", ptype, 4 + len(body)) + body


def status_param(code: int = SUCCESS, description: str = "") -> bytes:
    text = description.encode()
    return param(287, struct.pack(">HH", code, len(text)) + text)


def connection_event(msg_id: int, status: int, now_us: int) -> bytes:
    data = param(128, struct.pack(">Q", now_us)) + param(256, struct.pack(">H", status))
    return message(READER_EVENT_NOTIFICATION, msg_id, param(246, data))


def capabilities_body(firmware: str) -> bytes:
    fw = firmware.encode()
    general = param(
        137,
        struct.pack(">HHII", ANTENNAS, 0x4000, IMPINJ_PEN, MODEL)
        + struct.pack(">H", len(fw))
        + fw
        + param(139, struct.pack(">Hh", 1, 0))
        + b"".join(param(140, struct.pack(">HHB", a, 1, 1)) for a in range(1, ANTENNAS + 1))
        + param(141, struct.pack(">HH", 4, 4)),
    )
    llrp_caps = param(142, struct.pack(">BBHIIIII", 0x48, 1, 0, 1, 1, 1, 0, 0))
    powers = b"".join(param(145, struct.pack(">Hh", i, 1000 + (i - 1) * 25)) for i in range(1, 82))
    hops = param(
        147,
        struct.pack(">BBH", 1, 0, 50)
        + b"".join(struct.pack(">I", 902_750 + 500 * i) for i in range(50)),
    )
    modes = param(
        328,
        b"".join(
            param(329, struct.pack(">IBBBBIIIII", mode, 0x80, m, 0, 2, bdr, 1500, 6250, 25000, 0))
            for mode, m, bdr in ((0, 0, 640000), (1, 1, 640000), (2, 2, 274000), (1002, 2, 274000))
        ),
    )
    regulatory = param(
        143, struct.pack(">HH", 840, 1) + param(144, powers + param(146, b"\x80" + hops) + modes)
    )
    return status_param() + general + llrp_caps + regulatory


# --- parsing -------------------------------------------------------------------------


def walk(b: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of each parameter in ``b[start:end]``."""
    out = []
    p = start
    while p < end:
        if b[p] & 0x80:
            t = b[p] & 0x7F
            n = TV_LEN.get(t)
            if n is None or p + n > end:
                raise BadRequestError(PARAMETER_ERROR, f"bad TV parameter {t} at byte {p}")
            out.append((t, p, p + n))
            p += n
            continue
        if p + 4 > end:
            raise BadRequestError(PARAMETER_ERROR, f"parameter header cut short at byte {p}")
        t, n = struct.unpack_from(">HH", b, p)
        if t >> 10 or n < 4 or p + n > end:
            raise BadRequestError(PARAMETER_ERROR, f"bad length {n} of parameter {t & 0x3FF}")
        out.append((t, p, p + n))
        p += n
    return out


def _one(params: list[tuple[int, int, int]], ptype: int, what: str) -> tuple[int, int]:
    found = [(s, e) for t, s, e in params if t == ptype]
    if len(found) != 1:
        raise BadRequestError(MISSING_PARAMETER, f"{what} needs exactly one parameter {ptype}")
    return found[0]


@dataclass(slots=True)
class AiSpec:
    antennas: tuple[int, ...]
    duration_s: float


@dataclass(slots=True)
class RoSpec:
    rospec_id: int
    raw: bytes
    start_immediate: bool
    aispecs: list[AiSpec]
    content: int
    report_n: int
    state: str = "disabled"


def parse_rospec(b: bytes, s: int, e: int) -> RoSpec:
    if e - s < 10:
        raise BadRequestError(FIELD_ERROR, "ROSpec fields cut short")
    rospec_id, _priority, state = struct.unpack_from(">IBB", b, s + 4)
    if rospec_id == 0:
        raise BadRequestError(FIELD_ERROR, "ROSpecID 0 is reserved")
    if state != 0:
        raise BadRequestError(FIELD_ERROR, "a new ROSpec must be in the Disabled state")
    params = walk(b, s + 10, e)
    bs, be = _one(params, 178, "ROSpec")
    boundary = walk(b, bs + 4, be)
    ss, se = _one(boundary, 179, "ROBoundarySpec")
    _one(boundary, 182, "ROBoundarySpec")
    if se - ss < 5:
        raise BadRequestError(FIELD_ERROR, "ROSpecStartTrigger cut short")
    start_type = b[ss + 4]
    if start_type not in (0, 1):
        raise BadRequestError(UNSUPPORTED_PARAMETER, f"ROSpec start trigger {start_type}")
    aispecs = [parse_aispec(b, ps, pe) for t, ps, pe in params if t == 183]
    if not aispecs:
        raise BadRequestError(MISSING_PARAMETER, "ROSpec has no AISpec")
    content = SEL_ANTENNA | SEL_RSSI
    report_n = 0
    for t, ps, pe in params:
        if t == 237:
            if pe - ps < 7:
                raise BadRequestError(FIELD_ERROR, "ROReportSpec cut short")
            report_n = struct.unpack_from(">H", b, ps + 5)[0]
            sel = [(x, y) for u, x, y in walk(b, ps + 7, pe) if u == 238]
            if sel and sel[0][1] - sel[0][0] >= 6:
                content = struct.unpack_from(">H", b, sel[0][0] + 4)[0]
    return RoSpec(rospec_id, b[s:e], start_type == 1, aispecs, content, report_n)


def parse_aispec(b: bytes, s: int, e: int) -> AiSpec:
    if e - s < 6:
        raise BadRequestError(FIELD_ERROR, "AISpec cut short")
    count = struct.unpack_from(">H", b, s + 4)[0]
    p = s + 6 + 2 * count
    if p > e:
        raise BadRequestError(FIELD_ERROR, "AISpec antenna list runs past the parameter")
    ids = struct.unpack_from(f">{count}H", b, s + 6)
    if not ids:
        raise BadRequestError(FIELD_ERROR, "AISpec has no antenna")
    if any(a > ANTENNAS for a in ids):
        raise BadRequestError(FIELD_ERROR, f"antenna ids {list(ids)}: this reader has 1-{ANTENNAS}")
    antennas = tuple(range(1, ANTENNAS + 1)) if 0 in ids else tuple(ids)
    params = walk(b, p, e)
    ts, te = _one(params, 184, "AISpec")
    if te - ts < 9:
        raise BadRequestError(FIELD_ERROR, "AISpecStopTrigger cut short")
    stop_type, duration_ms = struct.unpack_from(">BI", b, ts + 4)
    if stop_type == 2:
        raise BadRequestError(UNSUPPORTED_PARAMETER, "GPI AISpec stop trigger")
    if stop_type == 1 and duration_ms == 0:
        raise BadRequestError(FIELD_ERROR, "AISpec duration 0")
    if not [1 for t, _, _ in params if t == 186]:
        raise BadRequestError(MISSING_PARAMETER, "AISpec has no InventoryParameterSpec")
    for t, ps, pe in params:
        if t == 186 and (pe - ps < 7 or b[ps + 6] != 1):
            raise BadRequestError(UNSUPPORTED_PARAMETER, "only EPCGlobalClass1Gen2 inventory")
    duration_s = duration_ms / 1000 if stop_type == 1 else 1.0
    return AiSpec(antennas, duration_s)


# --- the reader ----------------------------------------------------------------------


@dataclass(slots=True)
class LlrpSimCounters:
    connections: int = 0
    refused: int = 0
    messages: int = 0
    reports: int = 0
    tag_reports: int = 0
    keepalives: int = 0
    keepalive_acks: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    by_type: dict[int, int] = field(default_factory=dict)


class LlrpSimulator:
    """One simulated LLRP reader on a TCP port, playing ``scenario``."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        seed: int | None = None,
        time_scale: float | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_immediately: bool = False,
        loop_s: float | None = None,
    ) -> None:
        if time_scale is None:
            time_scale = clock.scale if isinstance(clock, ScaledClock) else 1.0
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.scenario = scenario
        self.clock = clock
        self.time_scale = time_scale
        self.engine = Engine(scenario, seed)
        self.host = host
        self.port = port
        self.loop_s = loop_s
        self.firmware = f"tagtrail-sim {scenario.reader.firmware}"
        self.counters = LlrpSimCounters()
        self.rospecs: dict[int, RoSpec] = {}
        self.keepalive_s: float | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._conn_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._report_task: asyncio.Task[None] | None = None
        self._next_id = 1
        self._t0: float | None = None
        self._started = asyncio.Event()
        self._muted = False
        self._fail: dict[int, tuple[int, str]] = {}
        if start_immediately:
            self.start_scenario()

    # -- public API --

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def scenario_time(self) -> float | None:
        if self._t0 is None:
            return None
        t = self.clock.monotonic() - self._t0
        return t % self.loop_s if self.loop_s is not None else t

    def start_scenario(self) -> float:
        if self._t0 is None:
            self._t0 = self.clock.monotonic()
            self._started.set()
            log.info("scenario %r started", self.scenario.name)
        return self._t0

    def mute(self, muted: bool = True) -> None:
        """Test hook: send nothing (keep-alives, reports, responses) while muted."""
        self._muted = muted

    def fail_next(self, msg_type: int, code: int, description: str) -> None:
        """Test hook: answer the next request of ``msg_type`` with this error status."""
        self._fail[msg_type] = (code, description)

    async def start(self) -> str:
        """Listen; return ``host:port``."""
        if self._server is None:
            self._server = await asyncio.start_server(self._on_client, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            log.info(
                "simulating LLRP reader for scenario %r on %s", self.scenario.name, self.address
            )
        return self.address

    async def close(self) -> None:
        """Stop listening and drop the client. Safe to call twice."""
        if self._server is not None:
            self._server.close()
        self._drop_client()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            c = self.counters
            log.info(
                "LLRP simulator closing: %d connections, %d messages, %d reports "
                "(%d tag reports), %d keep-alives, errors %s",
                c.connections,
                c.messages,
                c.reports,
                c.tag_reports,
                c.keepalives,
                c.errors or "none",
            )

    async def wait_end(self, grace_s: float = 0.0) -> None:
        await self._started.wait()
        t0 = self.start_scenario()
        while True:
            remaining = t0 + self.scenario.end_s + grace_s - self.clock.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining / self.time_scale)

    async def __aenter__(self) -> LlrpSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connections --

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _new_id(self) -> int:
        mid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        return mid

    def _now_us(self) -> int:
        return int(self.clock.now().timestamp() * 1_000_000)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._writer is not None:
            self.counters.refused += 1
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(connection_event(self._new_id(), 2, self._now_us()))
                await writer.drain()
            writer.close()
            return
        self._writer = writer
        self.counters.connections += 1
        log.info("client connected from %s", writer.get_extra_info("peername"))
        try:
            self._send(connection_event(self._new_id(), 0, self._now_us()))
            self._restart_keepalive()
            self._sync_reporting()
            while True:
                header = await reader.readexactly(10)
                head, length, msg_id = struct.unpack(">HII", header)
                if length < 10 or length > MAX_MESSAGE or head >> 13:
                    self._count_error("bad_header")
                    self._send(
                        message(
                            ERROR_MESSAGE,
                            msg_id,
                            status_param(FIELD_ERROR, f"message length {length} is impossible"),
                        )
                    )
                    with contextlib.suppress(ConnectionError, OSError):
                        await writer.drain()
                    return
                body = await reader.readexactly(length - 10)
                if not await self._handle(head >> 10 & 7, head & 0x3FF, msg_id, body):
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            log.info("client disconnected")
            if self._writer is writer:
                self._drop_client()
            with contextlib.suppress(Exception):
                writer.close()

    def _drop_client(self) -> None:
        for task in (self._keepalive_task, self._report_task):
            if task is not None:
                task.cancel()
        self._keepalive_task = self._report_task = None
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None

    def _send(self, data: bytes) -> None:
        if self._writer is None or self._muted:
            return
        try:
            self._writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            log.debug("write to the client failed")

    def _count_error(self, key: str) -> None:
        self.counters.errors[key] = self.counters.errors.get(key, 0) + 1

    # -- requests --

    async def _handle(self, version: int, msg_type: int, msg_id: int, body: bytes) -> bool:
        """Answer one message; False ends the connection."""
        c = self.counters
        c.messages += 1
        c.by_type[msg_type] = c.by_type.get(msg_type, 0) + 1
        if version != 1:
            self._count_error("unsupported_version")
            self._send(
                message(
                    ERROR_MESSAGE,
                    msg_id,
                    status_param(
                        UNSUPPORTED_VERSION, f"LLRP version {version}; this reader speaks 1"
                    ),
                )
            )
            return True
        if msg_type == KEEPALIVE_ACK:
            c.keepalive_acks += 1
            return True
        if msg_type in (ENABLE_EVENTS_AND_REPORTS, GET_REPORT):
            return True  # no response by the specification; events are never held here
        response = RESPONSE_TO.get(msg_type)
        if response is None:
            self._count_error("unsupported_message")
            self._send(
                message(
                    ERROR_MESSAGE,
                    msg_id,
                    status_param(UNSUPPORTED_MESSAGE, f"message type {msg_type} is not supported"),
                )
            )
            return True
        try:
            extra = self._answer(msg_type, body)
        except BadRequestError as exc:
            self._count_error(f"status_{exc.code}")
            log.info("rejecting message type %d: %s", msg_type, exc.description)
            self._send(message(response, msg_id, status_param(exc.code, exc.description)))
            return True
        self._send(message(response, msg_id, extra))
        if msg_type == CLOSE_CONNECTION:
            if self._writer is not None:
                with contextlib.suppress(ConnectionError, OSError):
                    await self._writer.drain()
            return False
        return True

    def _rospec_id(self, body: bytes) -> int:
        if len(body) < 4:
            raise BadRequestError(FIELD_ERROR, "ROSpecID cut short")
        walk(body, 4, len(body))
        return int(struct.unpack_from(">I", body)[0])

    def _answer(self, msg_type: int, body: bytes) -> bytes:
        """The parameters of a success response; raises :class:`BadRequestError`."""
        injected = self._fail.pop(msg_type, None)
        if injected is not None:
            raise BadRequestError(*injected)
        if msg_type == GET_READER_CAPABILITIES:
            if len(body) < 1:
                raise BadRequestError(FIELD_ERROR, "RequestedData cut short")
            walk(body, 1, len(body))
            if body[0] > 4:
                raise BadRequestError(FIELD_ERROR, f"RequestedData {body[0]}")
            return capabilities_body(self.firmware)
        if msg_type == GET_READER_CONFIG:
            if len(body) < 7:
                raise BadRequestError(FIELD_ERROR, "GET_READER_CONFIG fields cut short")
            walk(body, 7, len(body))
            period = round((self.keepalive_s or 0) * 1000)
            return status_param() + param(220, struct.pack(">BI", 1 if period else 0, period))
        if msg_type == SET_READER_CONFIG:
            return self._set_config(body)
        if msg_type == CLOSE_CONNECTION:
            walk(body, 0, len(body))
            return status_param()
        if msg_type == ADD_ROSPEC:
            params = walk(body, 0, len(body))
            s, e = _one(params, 177, "ADD_ROSPEC")
            spec = parse_rospec(body, s, e)
            if spec.rospec_id in self.rospecs:
                raise BadRequestError(DUPLICATE_PARAMETER, f"ROSpec {spec.rospec_id} exists")
            self.rospecs[spec.rospec_id] = spec
            return status_param()
        if msg_type == GET_ROSPECS:
            walk(body, 0, len(body))
            states = {"disabled": 0, "inactive": 1, "active": 2}
            return status_param() + b"".join(
                r.raw[:9] + bytes((states[r.state],)) + r.raw[10:] for r in self.rospecs.values()
            )
        rid = self._rospec_id(body)
        if msg_type == DELETE_ROSPEC:
            if rid == 0:
                self.rospecs.clear()
            elif self.rospecs.pop(rid, None) is None:
                raise BadRequestError(PARAMETER_ERROR, f"no ROSpec {rid}")
        elif msg_type == ENABLE_ROSPEC:
            for spec in self._specs(rid):
                if spec.state == "disabled":
                    spec.state = "active" if spec.start_immediate else "inactive"
        elif msg_type == DISABLE_ROSPEC:
            for spec in self._specs(rid):
                spec.state = "disabled"
        elif msg_type == START_ROSPEC:
            spec = self._specs(rid, allow_all=False)[0]
            if spec.state != "inactive":
                raise BadRequestError(PARAMETER_ERROR, f"ROSpec {rid} is {spec.state}, not enabled")
            spec.state = "active"
        elif msg_type == STOP_ROSPEC:
            spec = self._specs(rid, allow_all=False)[0]
            if spec.state != "active":
                raise BadRequestError(PARAMETER_ERROR, f"ROSpec {rid} is {spec.state}, not active")
            spec.state = "inactive"
        self._sync_reporting()
        return status_param()

    def _specs(self, rid: int, *, allow_all: bool = True) -> list[RoSpec]:
        if rid == 0 and allow_all:
            return list(self.rospecs.values())
        spec = self.rospecs.get(rid)
        if spec is None:
            raise BadRequestError(PARAMETER_ERROR, f"no ROSpec {rid}")
        return [spec]

    def _set_config(self, body: bytes) -> bytes:
        if len(body) < 1:
            raise BadRequestError(FIELD_ERROR, "ResetToFactoryDefault cut short")
        params = walk(body, 1, len(body))
        if body[0] & 0x80:
            self.rospecs.clear()
            self.keepalive_s = None
            self._sync_reporting()
        for t, s, e in params:
            if t == 220:
                if e - s < 9:
                    raise BadRequestError(FIELD_ERROR, "KeepaliveSpec cut short")
                kind, period_ms = struct.unpack_from(">BI", body, s + 4)
                if kind not in (0, 1):
                    raise BadRequestError(FIELD_ERROR, f"KeepaliveTriggerType {kind}")
                self.keepalive_s = period_ms / 1000 if kind == 1 and period_ms else None
                self._restart_keepalive()
        return status_param()

    # -- keep-alives and reports --

    def _restart_keepalive(self) -> None:
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        if self.keepalive_s is not None and self._writer is not None:
            self._keepalive_task = self._spawn(self._keepalives(self.keepalive_s), "llrp-keepalive")

    async def _keepalives(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            if not self._muted:
                self.counters.keepalives += 1
            self._send(message(KEEPALIVE, self._new_id()))

    def _sync_reporting(self) -> None:
        active = any(r.state == "active" for r in self.rospecs.values())
        running = self._report_task is not None and not self._report_task.done()
        if active and self._writer is not None:
            self.start_scenario()
            if not running:
                self._report_task = self._spawn(self._report_loop(), "llrp-reports")
        elif running and self._report_task is not None:
            self._report_task.cancel()
            self._report_task = None

    async def _report_loop(self) -> None:
        while True:
            specs = [r for r in self.rospecs.values() if r.state == "active"]
            if not specs:
                return
            for spec in specs:
                for ai in spec.aispecs:
                    if spec.state != "active":
                        break
                    t_start = self.scenario_time() or 0.0
                    await asyncio.sleep(ai.duration_s / self.time_scale)
                    if spec.state == "active":
                        self._report(spec, ai, t_start)

    def _report(self, spec: RoSpec, ai: AiSpec, t_start: float) -> None:
        engine = self.engine
        period = self.scenario.reads.round_period_s
        slice_s = ai.duration_s / len(ai.antennas)
        rounds = max(1, round(slice_s / period))
        seen: dict[tuple[int, int], list[int]] = {}
        now_us = self._now_us()
        start_us = now_us - round(ai.duration_s * 1_000_000)
        for k, port in enumerate(ai.antennas):
            if not engine.connected(port):
                continue
            for r in range(rounds):
                t = t_start + k * slice_s + r * period
                if self.loop_s is not None:
                    t %= self.loop_s
                result = engine.inventory(port, t, 1)
                at_us = start_us + round((k * slice_s + r * period) * 1_000_000)
                for read in result.reads:
                    entry = seen.get((read.tag, port))
                    if entry is None:
                        seen[(read.tag, port)] = [
                            read.rssi_dbm,
                            result.freq_index + 1,
                            at_us,
                            at_us,
                            1,
                        ]
                    else:
                        entry[0] = max(entry[0], read.rssi_dbm)
                        entry[3] = at_us
                        entry[4] += 1
        if not seen:
            return
        datas = [
            self._tag_report_data(spec, engine.epc_bytes[tag], port, entry)
            for (tag, port), entry in seen.items()
        ]
        n = spec.report_n or len(datas)
        for i in range(0, len(datas), n):
            chunk = datas[i : i + n]
            self.counters.reports += 1
            self.counters.tag_reports += len(chunk)
            self._send(message(RO_ACCESS_REPORT, self._new_id(), b"".join(chunk)))

    @staticmethod
    def _tag_report_data(spec: RoSpec, epc: bytes, port: int, entry: list[int]) -> bytes:
        """One TagReportData; ``entry`` is [peak RSSI, channel, first us, last us, count]."""
        rssi, channel, first, last, count = entry
        sel = spec.content
        if len(epc) == 12:
            out = bytes((0x80 | 13,)) + epc
        else:
            out = param(241, struct.pack(">H", len(epc) * 8) + epc)
        if sel & SEL_ROSPEC_ID:
            out += struct.pack(">BI", 0x80 | 9, spec.rospec_id)
        if sel & SEL_ANTENNA:
            out += struct.pack(">BH", 0x80 | 1, port)
        if sel & SEL_RSSI:
            out += struct.pack(">Bb", 0x80 | 6, max(-128, min(127, rssi)))
        if sel & SEL_CHANNEL:
            out += struct.pack(">BH", 0x80 | 7, channel)
        if sel & SEL_FIRST:
            out += struct.pack(">BQ", 0x80 | 2, first)
        if sel & SEL_LAST:
            out += struct.pack(">BQ", 0x80 | 4, last)
        if sel & SEL_COUNT:
            out += struct.pack(">BH", 0x80 | 8, min(count, 0xFFFF))
        return param(240, out)


if __name__ == "__main__":  # pragma: no cover - the command line lives in llrp_main
    from tagtrail.sim.llrp_main import llrp_sim_command

    llrp_sim_command(prog_name="python -m tagtrail.sim.llrp")
