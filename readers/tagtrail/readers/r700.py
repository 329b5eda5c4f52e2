"""Asyncio driver for the Impinj R700 through its IoT device interface (HTTP REST + NDJSON).

The stream's lines are parsed by :mod:`tagtrail.readers.r700_events` (pure). One
:class:`httpx.AsyncClient` per connection attempt, HTTP basic auth from the config
(``username`` / ``password``), TLS checked unless ``verify_tls`` is off, against
``ca_file`` when given; every REST request gives up after ``request_timeout_s``.

Conversation (base ``<url>/api/v1``)
====================================
1. ``GET /status`` (``{"status": "idle"|"running", "serialNumber", ...}``) proves the
   reader is there (state ``connecting``, unless it is ``error``: see below); then, best
   effort, ``GET /system`` (``productModel``) and ``GET /system/image``
   (``primaryFirmware``) name it: the snapshot's ``firmware`` is e.g.
   ``"R700 8.4.1.240 (serial 370000000001)"``.
2. ``POST /profiles/stop``: whatever ran before is stopped. ``204`` or a 4xx meaning
   "nothing is running" (``409``/``403``/``404``) are both fine.
3. ``GET /data/stream`` is opened *before* inventory starts so no event is missed; a
   dedicated task drains it: it reads the body as it comes, splits lines, parses them and
   hands each tag read straight to ``on_read`` (synchronous, no queue to fill), so the
   stream never stalls on us (a stalled consumer makes the R700 pause inventory).
4. ``POST /profiles/inventory/start`` with a preset built from the config: one
   ``antennaConfigs`` entry per configured antenna (``antennaPort``,
   ``transmitPowerCdbm``, ``inventorySession``, ``rfMode`` when set,
   ``inventorySearchMode``, ``estimatedTagPopulation``) and an ``eventConfig`` that
   turns on ``epcHex``, ``antennaPort``, ``peakRssiCdbm`` and friends. ``204`` -> state
   ``online``.

Each ``tagInventory`` event becomes a :class:`~tagtrail.readers.model.RawRead` on its
``antennaPort``, EPC upper-case hex, ``rssi_dbm = peakRssiCdbm / 100``, ``mono``/``time``
from the injected clock at receipt. A read from a port not in the config is counted as
``unexpected_antenna`` and dropped. Bad lines are counted by reason (see
:mod:`~tagtrail.readers.r700_events`) and described in ``last_error``; keep-alives
(empty lines) and other event types only prove the link is alive.

Failures
========
* Nothing at all on the stream (no tag, no keep-alive) for ``stream_silence_s``: a
  ``timeouts`` is counted and the link is dropped. The R700 sends a keep-alive after 30 s
  without data, so keep ``stream_silence_s`` above 30 s for a real reader.
* The stream ends, a request fails at the transport (refused, reset, timeout) or answers
  an unexpected status: ``disconnects`` is counted once per outage, the state goes
  ``offline`` (until the reader answers again) and the whole conversation is retried
  after a backoff doubling from ``reconnect_initial_s`` to ``reconnect_max_s`` (reset
  after a session that got online). Inventory is started again on reconnect.
* ``401`` anywhere: state ``error`` with "wrong username or password" in ``last_error``
  (``auth`` counted) and the next try waits ``reconnect_max_s``; the state stays
  ``error`` (not ``connecting``) until a try gets further.
* ``400``/``422`` to the inventory start (the reader refuses the preset, e.g. a power out
  of its region's range): state ``error`` with the reader's ``message`` and
  ``invalidPropertyId`` (``rejected`` counted), retried at ``reconnect_max_s``.

On cancellation the driver POSTs ``/profiles/stop`` best effort (at most
:data:`STOP_TIMEOUT_S`) so the reader does not inventory for nobody, and closes its
connections.

Not checked against a device (chosen sensibly, the simulator does the same): the status
codes for "already running" / "not running" (409 assumed, 403/404 tolerated), the
``/system`` field names other than ``primaryFirmware``. ``idle_flush_s`` is taken for the
common driver signature only: HTTP delivers whole lines or ends the stream, and a line
cut by the end is reported as ``truncated`` then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import ssl
from collections import deque
from typing import Any

import httpx

from tagtrail.clock import Clock
from tagtrail.readers.config import R700ReaderConfig
from tagtrail.readers.model import (
    RawRead,
    ReadCallback,
    ReaderSnapshot,
    ReaderState,
    StateCallback,
    deliver,
)
from tagtrail.readers.r700_events import (
    KeepAlive,
    LineDecoder,
    LineFailure,
    OtherEvent,
    StreamEvent,
    TagInventory,
)

logger = logging.getLogger(__name__)

API = "api/v1"
STATUS = f"{API}/status"
SYSTEM = f"{API}/system"
IMAGE = f"{API}/system/image"
STOP = f"{API}/profiles/stop"
START = f"{API}/profiles/inventory/start"
STREAM = f"{API}/data/stream"

RATE_WINDOW_S = 5.0
STOP_TIMEOUT_S = 2.0
_RATE_BATCHES = 4096
_NOT_RUNNING = frozenset({403, 404, 409})


class _LinkLostError(Exception):
    """The reader is unreachable or misbehaved; carries a reason. Never leaves the driver."""


class _RefusedError(Exception):
    """The reader refused us in a way retrying soon will not fix (401, a rejected preset)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


class _Outcome(enum.Enum):
    ONLINE = "online"
    FAILED = "failed"
    REFUSED = "refused"


def build_preset(config: R700ReaderConfig) -> dict[str, Any]:
    """The inventory preset the driver starts, from the config."""
    antenna_configs: list[dict[str, Any]] = []
    for antenna in config.antennas:
        entry: dict[str, Any] = {
            "antennaPort": antenna.port,
            "transmitPowerCdbm": config.transmit_power_cdbm,
            "inventorySession": config.session,
            "inventorySearchMode": "dual-target" if config.session == 0 else "single-target",
            "estimatedTagPopulation": 16,
        }
        if config.rf_mode is not None:
            entry["rfMode"] = config.rf_mode
        antenna_configs.append(entry)
    enabled = "enabled"
    return {
        "antennaConfigs": antenna_configs,
        "eventConfig": {
            "common": {"hostname": "disabled"},
            "tagInventory": {
                "epc": "disabled",
                "epcHex": enabled,
                "antennaPort": enabled,
                "antennaName": enabled,
                "peakRssiCdbm": enabled,
                "frequency": enabled,
                "transmitPowerCdbm": enabled,
                "lastSeenTime": enabled,
            },
        },
    }


def _error_text(resp: httpx.Response) -> str:
    """The reader's ``{"message", "invalidPropertyId"}`` error body, as text."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or "").strip()
        prop = body.get("invalidPropertyId")
        if prop:
            message = f"{message} (property {prop})" if message else f"property {prop}"
        if message:
            return message[:300]
    return (resp.text or resp.reason_phrase or "").strip()[:300]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class R700Reader:
    """One Impinj R700 over its IoT device interface. Implements ``ReaderDriver``."""

    reader_type = "r700"

    def __init__(
        self,
        config: R700ReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._on_read = on_read
        self._on_state = on_state
        self._idle_flush_s = idle_flush_s
        self._rate_window_s = rate_window_s
        self._ports = frozenset(a.port for a in config.antennas)
        self._snap = ReaderSnapshot(reader=config.id, reader_type=self.reader_type)
        self._rate: deque[tuple[float, int]] = deque(maxlen=_RATE_BATCHES)
        self._last_heard = 0.0
        self._session_online = False

    # -- ReaderDriver --

    @property
    def reader_id(self) -> str:
        return self._cfg.id

    def snapshot(self) -> ReaderSnapshot:
        self._snap.read_rate_per_s = self._read_rate()
        return dataclasses.replace(
            self._snap,
            error_counts=dict(self._snap.error_counts),
            antenna_reads=dict(self._snap.antenna_reads),
            counters=dict(self._snap.counters),
        )

    async def run(self) -> None:
        """Keep the reader going until cancelled."""
        cfg = self._cfg
        delay = cfg.reconnect_initial_s
        try:
            while True:
                outcome = await self._session()
                if outcome is _Outcome.ONLINE:
                    delay = cfg.reconnect_initial_s
                elif outcome is _Outcome.REFUSED:
                    delay = cfg.reconnect_max_s
                logger.info("reader %s: retrying %s in %.2f s", cfg.id, cfg.url, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.reconnect_max_s)
        finally:
            self._set_state("offline")

    # -- one connection --

    def _client(self) -> httpx.AsyncClient:
        cfg = self._cfg
        verify: ssl.SSLContext | bool
        if cfg.ca_file is not None:
            verify = ssl.create_default_context(cafile=cfg.ca_file)
        else:
            verify = cfg.verify_tls
        return httpx.AsyncClient(
            base_url=str(cfg.url),
            auth=httpx.BasicAuth(cfg.username, cfg.password.get_secret_value()),
            verify=verify,
            timeout=httpx.Timeout(cfg.request_timeout_s),
            follow_redirects=False,
        )

    async def _session(self) -> _Outcome:
        """Connect, start inventory and drain the stream until the link fails."""
        self._session_online = False
        try:
            client = self._client()
        except (OSError, ssl.SSLError) as exc:
            return self._refused(_RefusedError("tls", f"TLS setup: {_describe(exc)}"))
        started = False
        try:
            async with client:
                try:
                    await self._identify(client)
                    if self._snap.state != "error":
                        self._set_state("connecting")  # the reader answers
                    await self._stop(client)
                    drain = await self._open_stream(client)
                    try:
                        started = True  # from here on, stop on the way out
                        await self._start(client)
                        self._set_state("online")
                        await self._watch(drain)
                    finally:
                        await _cancel(drain)
                except asyncio.CancelledError:
                    if started:
                        await self._stop_best_effort(client)
                    raise
        except _RefusedError as exc:
            return self._refused(exc)
        except _LinkLostError as exc:
            self._link_down(str(exc))
        except httpx.HTTPError as exc:
            self._link_down(_describe(exc))
        return _Outcome.ONLINE if self._session_online else _Outcome.FAILED

    async def _request(
        self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            resp = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _LinkLostError(f"{method} /{path}: {_describe(exc)}") from exc
        if resp.status_code == 401:
            raise _RefusedError(
                "auth",
                f"HTTP 401 from {method} /{path}: wrong username or password "
                f"for user {self._cfg.username!r}",
            )
        return resp

    async def _identify(self, client: httpx.AsyncClient) -> None:
        resp = await self._request(client, "GET", STATUS)
        if resp.status_code != 200:
            self._count(f"http_{resp.status_code}")
            raise _LinkLostError(f"HTTP {resp.status_code} from GET /{STATUS}: {_error_text(resp)}")
        status = _json_object(resp)
        serial = status.get("serialNumber")
        model = firmware = None
        for path in (SYSTEM, IMAGE):
            info = await self._request(client, "GET", path)
            if info.status_code == 200:
                body = _json_object(info)
                model = model or _text(body.get("productModel"))
                firmware = firmware or _text(body.get("primaryFirmware"))
        parts = [p for p in (model, firmware) if p]
        if isinstance(serial, str) and serial:
            parts.append(f"(serial {serial})")
        if parts:
            self._snap.firmware = " ".join(parts)
        logger.info(
            "reader %s: %s answers, status %s",
            self._cfg.id,
            self._snap.firmware or "reader",
            status.get("status"),
        )

    async def _stop(self, client: httpx.AsyncClient) -> None:
        resp = await self._request(client, "POST", STOP)
        if resp.status_code in (200, 202, 204) or resp.status_code in _NOT_RUNNING:
            return
        self._count(f"http_{resp.status_code}")
        raise _LinkLostError(f"HTTP {resp.status_code} from POST /{STOP}: {_error_text(resp)}")

    async def _start(self, client: httpx.AsyncClient) -> None:
        resp = await self._request(client, "POST", START, json=build_preset(self._cfg))
        if resp.status_code in (200, 202, 204):
            return
        text = _error_text(resp)
        if resp.status_code in (400, 422):
            raise _RefusedError(
                "rejected", f"the reader refused the inventory preset (HTTP 400): {text}"
            )
        self._count(f"http_{resp.status_code}")
        raise _LinkLostError(f"HTTP {resp.status_code} from POST /{START}: {text}")

    async def _stop_best_effort(self, client: httpx.AsyncClient) -> None:
        try:
            async with asyncio.timeout(min(STOP_TIMEOUT_S, self._cfg.request_timeout_s)):
                await client.post(STOP)
        except (httpx.HTTPError, TimeoutError) as exc:
            logger.debug("reader %s: stop on shutdown: %s", self._cfg.id, _describe(exc))

    # -- the stream --

    async def _open_stream(self, client: httpx.AsyncClient) -> asyncio.Task[None]:
        """Start the drain task; return it once the stream answered 200."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        drain = asyncio.create_task(self._drain(client, ready), name=f"r700-{self._cfg.id}")
        try:
            done, _ = await asyncio.wait(
                {ready, drain},
                timeout=self._cfg.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except BaseException:
            await _cancel(drain)
            raise
        finally:
            ready.cancel()
        if ready in done:
            return drain
        ended = drain.done()
        await _cancel(drain)
        exc = drain.exception() if ended and not drain.cancelled() else None
        if exc is not None:
            raise exc
        raise _LinkLostError(f"no answer to GET /{STREAM} in {self._cfg.request_timeout_s:g} s")

    async def _drain(self, client: httpx.AsyncClient, ready: asyncio.Future[None]) -> None:
        """Read the stream until it ends; deliver reads as they come. Never blocks on us."""
        loop = asyncio.get_running_loop()
        timeout = httpx.Timeout(self._cfg.request_timeout_s, read=None)
        decoder = LineDecoder()
        try:
            async with client.stream("GET", STREAM, timeout=timeout) as resp:
                if resp.status_code == 401:
                    raise _RefusedError(
                        "auth", f"HTTP 401 from GET /{STREAM}: wrong username or password"
                    )
                if resp.status_code != 200:
                    await resp.aread()
                    self._count(f"http_{resp.status_code}")
                    raise _LinkLostError(
                        f"HTTP {resp.status_code} from GET /{STREAM}: {_error_text(resp)}"
                    )
                self._last_heard = loop.time()
                if not ready.done():
                    ready.set_result(None)
                async for chunk in resp.aiter_bytes():
                    self._last_heard = loop.time()
                    self._dispatch(decoder.feed(chunk))
            raise _LinkLostError("the reader ended the data stream")
        except httpx.HTTPError as exc:
            raise _LinkLostError(f"data stream: {_describe(exc)}") from exc
        finally:
            self._dispatch(decoder.flush())

    async def _watch(self, drain: asyncio.Task[None]) -> None:
        """Wait while the stream lives; raise when it ends or falls silent."""
        loop = asyncio.get_running_loop()
        silence_s = self._cfg.stream_silence_s
        while True:
            remaining = self._last_heard + silence_s - loop.time()
            if remaining <= 0:
                self._count("timeouts")
                raise _LinkLostError(f"nothing on the data stream for {silence_s:g} s")
            await asyncio.wait({drain}, timeout=remaining)
            if drain.done():
                drain.result()  # raises why it ended
                raise _LinkLostError("the data stream ended")

    def _dispatch(self, records: list[StreamEvent | LineFailure]) -> None:
        if not records:
            return
        reads = 0
        mono = self._clock.monotonic()
        wall = self._clock.now()
        for rec in records:
            if isinstance(rec, TagInventory):
                if rec.antenna not in self._ports:
                    self._count("unexpected_antenna")
                    self._snap.last_error = f"read on antenna {rec.antenna}, not configured"
                    continue
                reads += 1
                self._deliver(
                    RawRead(
                        reader=self._cfg.id,
                        antenna=rec.antenna,
                        epc=rec.epc,
                        rssi_dbm=rec.rssi_dbm,
                        mono=mono,
                        time=wall,
                    )
                )
            elif isinstance(rec, LineFailure):
                self._count(rec.reason)
                self._snap.last_error = f"{rec.reason}: {rec.detail}"
            elif isinstance(rec, OtherEvent):
                logger.debug("reader %s: %s event %s", self._cfg.id, rec.event_type, rec.body)
            elif isinstance(rec, KeepAlive):
                pass
        if reads:
            self._snap.reads_total += reads
            self._rate.append((mono, reads))

    def _deliver(self, read: RawRead) -> None:
        deliver(self._snap, self._on_read, read)

    # -- bookkeeping --

    def _refused(self, exc: _RefusedError) -> _Outcome:
        self._count(exc.key)
        self._snap.last_error = exc.reason
        if self._snap.state != "error":
            logger.error("reader %s: %s", self._cfg.id, exc.reason)
        self._set_state("error")
        return _Outcome.REFUSED

    def _link_down(self, reason: str) -> None:
        self._snap.last_error = reason
        if self._snap.state != "offline":
            logger.warning("reader %s: offline: %s", self._cfg.id, reason)
            self._count("disconnects")
            self._set_state("offline")

    def _count(self, key: str) -> None:
        counts = self._snap.error_counts
        counts[key] = counts.get(key, 0) + 1

    def _read_rate(self) -> float:
        cutoff = self._clock.monotonic() - self._rate_window_s
        rate = self._rate
        while rate and rate[0][0] <= cutoff:
            rate.popleft()
        return sum(n for _, n in rate) / self._rate_window_s

    def _set_state(self, state: ReaderState) -> None:
        if state == "online":
            self._session_online = True
        if self._snap.state == state:
            return
        self._snap.state = state
        logger.info("reader %s: %s", self._cfg.id, state)
        if self._on_state is not None:
            try:
                self._on_state(self.snapshot())
            except Exception:
                logger.exception("reader %s: on_state callback failed", self._cfg.id)


def _json_object(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: object) -> str | None:
    return value.strip()[:80] if isinstance(value, str) and value.strip() else None


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end (an error it ended with is retrieved).

    A cancellation of the caller while waiting still propagates.
    """
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()
