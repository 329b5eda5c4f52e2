"""Asyncio driver for a camera reading barcodes: OpenCV capture, motion gating, decoding.

A camera is an *observer* reader like a handheld scanner: every symbol it decodes is a
sighting of an identity in its zone (antenna 1, no RSSI); the edge smoother suppresses
repeats within ``repeat_suppress_s``, so a label standing still in view is one read.

Threads
=======
Blocking work runs off the event loop in two daemon threads per session:

* *capture*: opens the source (:mod:`tagtrail.readers.camera_frames`), grabs every frame
  (files and folders paced at their frame rate, so they behave like a camera in time) and
  hands a frame over only when the decode thread is waiting for one and the decode rate
  allows it: a one-slot handoff. A frame the decoder cannot take is dropped (not even
  converted to an array) and counted ``frames_dropped``; nothing is ever queued.
* *decode*: takes at most ``max_decode_fps`` frames per second (``IDLE_ANALYSE_FPS`` while
  the scene is still; a token bucket on grab times, ``RATE_BURST``, absorbs jitter),
  runs motion gating and decodes regions of interest with
  :class:`~tagtrail.readers.barcodes.BarcodeDecoder` (engines in the configured order,
  steps ``CAMERA_STEPS``). A symbol is reported once it was decoded in ``confirm_frames``
  frames (config, default 2: one-frame misreads are dropped), then in every decoded frame
  while in view.

Results go back to the loop with ``loop.call_soon_threadsafe`` (never polled), where each
symbol is stamped with the injected clock and turned into a read by
:class:`~tagtrail.readers.scanner.ScanInterpreter`, the same path as scanner lines: GS1
identities (SSCC, GTIN + serial, GTIN + quantity), ``code`` identities for other
symbols, ``gs1_invalid`` and ``not_item`` counted and logged. Real time is used only
to pace capture and decoding.

Motion gating and regions
=========================
With ``motion_gating`` on, a frame is decoded when (a) it differs from the previous
analysed frame (:class:`~tagtrail.readers.camera_frames.MotionDetector`), (b) a symbol was
seen within ``RECENT_SYMBOL_S`` (a label standing still keeps being confirmed), or (c)
nothing was decoded for ``idle_decode_s`` (with the first engine only: pyzbar on a whole
1080p frame costs about 300 ms, and a label that moves is decoded by both anyway). Only
the configured ``regions`` are decoded (the whole frame when none); motion outside them
is ignored. Within them, when motion triggered the decode, the padded bounding boxes of
the motion are decoded instead if they cover less than ``MOTION_ROI_MAX_SHARE`` of the
regions; a still label is re-read in the padded box where it was seen. Periodic idle
decodes read the whole regions. On the synthetic dock video (720p) motion boxes cut the
decoded pixels to a quarter and the decode time per frame from 45 ms to about 13 ms,
with the same reads (``bench/bench_camera_reader.py``).

Counted in ``error_counts``: ``empty_frame``, ``corrupt_image`` (a folder file that is
not an image), ``decode_error``, ``gs1_invalid``, ``not_item``, ``disconnects`` (once per
outage), ``open_failures`` (each session that never got a frame source open;
:attr:`CameraReader.retry_delays` holds the backoff waits). Activity that is not an error
goes to ``counters`` (reader status ``counters``): ``frames_dropped`` (captured frames the
decode thread did not take: it was busy or paced by ``max_decode_fps``), the frame counters
of :attr:`CameraReader.frame_stats` (frames, analysed, decodes by reason, symbols), and
each engine's contribution ``engine_zxing`` / ``engine_pyzbar`` (symbols it decoded).

Failures
========
A source that cannot be opened (missing device, unreachable URL), a live source that
fails or delivers no frame for ``read_timeout_s``: ``offline`` with the reason, then
reopened after a backoff doubling from ``reconnect_initial_s`` to ``reconnect_max_s``
(reset after a session that got online). A file or folder at its end replays with
``loop``; otherwise the reader stays ``offline`` with "end of source". ``run`` only ends
by cancellation, which stops both threads (joined with a timeout) and releases the
capture.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tagtrail.clock import Clock
from tagtrail.readers.barcodes import BarcodeDecoder, BarcodeError, DecoderConfig, Symbol
from tagtrail.readers.camera_frames import (
    FrameSource,
    Grab,
    Image,
    Motion,
    MotionDetector,
    Rect,
    SourceError,
    empty_reason,
    merge_rects,
    now_s,
    open_source,
    redact,
)
from tagtrail.readers.config import CameraReaderConfig, CameraRegion
from tagtrail.readers.model import (
    ReadCallback,
    ReaderSnapshot,
    ReaderState,
    StateCallback,
    deliver,
)
from tagtrail.readers.protocols.ascii_lines import Scan
from tagtrail.readers.scanner import ScanInterpreter

__all__ = [
    "ENGINE_NAMES",
    "FALLBACK_FPS",
    "IDLE_ANALYSE_FPS",
    "CameraReader",
    "FramePlanner",
]

logger = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0
FALLBACK_FPS = 15.0
"""Frame rate of an image folder, or of a video file that states none."""
IDLE_ANALYSE_FPS = 5.0
"""Frames analysed per second while the scene is still (motion gating on)."""
RECENT_SYMBOL_S = 2.0
"""Keep decoding for this long after a symbol was seen, motion or not."""
MOTION_PAD = 0.06
"""Motion and symbol boxes are grown by this fraction of the frame's larger side."""
MOTION_ROI_MAX_SHARE = 0.8
"""Decode motion boxes instead of the regions when they cover less than this share."""
CAMERA_STEPS = ("gray", "upscale2x")
"""Preprocessing steps for video: a symbol missed in one frame gets more frames, so the
costly contrast step is left out (bench/bench_camera_reader.py: the full cascade made
decoding regions of interest 3.7x slower for no extra read)."""
MAX_UPSCALED_PIXELS = 400_000
"""``upscale2x`` only for crops up to 100 000 pixels (small, far labels)."""
RATE_BURST = 1.5
"""The decode rate limit is a token bucket on grab times holding at most this many frames'
worth: a frame grabbed late (capture jitter) does not make the next one be dropped, and
the average stays within the limit."""
CONFIRM_FRAMES = 2
"""A symbol is reported once decoded in this many frames in a row (one-frame misreads:
zxing-cpp read a valid but wrong EAN-13 off one blurred frame of the synthetic dock)."""
JOIN_TIMEOUT_S = 2.0
ENGINE_NAMES = {"zxing": "zxing-cpp", "pyzbar": "pyzbar"}
"""Config engine names -> :mod:`tagtrail.readers.barcodes` engine names."""
_COUNTER_OF_ENGINE = {v: f"engine_{k}" for k, v in ENGINE_NAMES.items()}


@dataclass(frozen=True, slots=True)
class _Sighting:
    """One decoded frame's symbols, handed to the loop."""

    symbols: tuple[Symbol, ...]
    frame: int


class FramePlanner:
    """Decides whether and where to decode each analysed frame (decode thread only).

    Pure apart from the real-time stamps it is given; the bench uses it too.
    """

    def __init__(self, config: CameraReaderConfig, *, confirm_frames: int = 2) -> None:
        self.config = config
        self.confirm_frames = confirm_frames
        self._seen: dict[tuple[str | None, str], tuple[int, float]] = {}
        self.motion = MotionDetector(config.motion_threshold)
        self.last_decode = -1e18
        self.last_symbol = -1e18
        self.symbol_boxes: list[Rect] = []
        self.last_motion: Motion | None = None

    def reset(self) -> None:
        self.motion.reset()
        self.symbol_boxes = []
        self._seen.clear()

    def confirmed(self, symbols: Sequence[Symbol], now: float) -> list[Symbol]:
        """The symbols decoded in at least ``confirm_frames`` frames in a row (each within
        ``RECENT_SYMBOL_S`` of the previous): a one-frame misread is never reported."""
        seen = self._seen
        for key in [k for k, (_, t) in seen.items() if now - t >= RECENT_SYMBOL_S]:
            del seen[key]
        out = []
        for s in symbols:
            key = (s.symbology_id, s.text)
            count = seen.get(key, (0, now))[0] + 1
            seen[key] = (count, now)
            if count >= self.confirm_frames:
                out.append(s)
        return out

    def regions(self, width: int, height: int) -> list[Rect]:
        return [_region_px(r, width, height) for r in self.config.regions] or [
            Rect(0, 0, width, height)
        ]

    def plan(self, frame: Image, now: float) -> tuple[str | None, list[Rect]]:
        """(reason, rectangles to decode); reason None means skip this frame."""
        h, w = frame.shape[:2]
        regions = self.regions(w, h)
        cfg = self.config
        if not cfg.motion_gating:
            return "always", regions
        motion = self.last_motion = self.motion.update(frame)
        pad = round(MOTION_PAD * max(w, h))
        boxes = [b.padded(pad, pad, w, h) for b in motion.boxes]
        if motion.moving and any(b.intersect(r) for b in boxes for r in regions):
            if now - self.last_symbol < RECENT_SYMBOL_S:
                boxes += self.symbol_boxes
            return "motion", _within(boxes, regions)
        if now - self.last_symbol < RECENT_SYMBOL_S and self.symbol_boxes:
            return "recent", _within(self.symbol_boxes, regions)
        if now - self.last_decode >= cfg.idle_decode_s:
            return "idle", regions
        return None, []

    def decoded(self, symbols: Sequence[Symbol], width: int, height: int, now: float) -> None:
        self.last_decode = now
        if symbols:
            self.last_symbol = now
            pad = round(MOTION_PAD * max(width, height))
            self.symbol_boxes = merge_rects(
                [_bbox(s.polygon).padded(pad, pad, width, height) for s in symbols]
            )


def _region_px(region: CameraRegion, width: int, height: int) -> Rect:
    x0, y0 = round(region.x * width), round(region.y * height)
    x1 = min(width, round((region.x + region.width) * width))
    y1 = min(height, round((region.y + region.height) * height))
    return Rect(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def _bbox(polygon: Sequence[tuple[int, int]]) -> Rect:
    xs = [p[0] for p in polygon] or [0]
    ys = [p[1] for p in polygon] or [0]
    return Rect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)


def _within(boxes: list[Rect], regions: list[Rect]) -> list[Rect]:
    """``boxes`` clipped to ``regions`` and merged, or the regions if that is not cheaper."""
    clipped = [c for b in boxes for r in regions if (c := b.intersect(r)) is not None]
    merged = merge_rects(clipped)
    total = sum(r.area for r in regions)
    if not merged or sum(r.area for r in merged) >= MOTION_ROI_MAX_SHARE * total:
        return regions
    return merged


def decode_rects(decoder: BarcodeDecoder, frame: Image, rects: Sequence[Rect]) -> list[Symbol]:
    """Decode each rectangle of ``frame``; symbols in frame coordinates, duplicates (same
    symbology and text from overlapping rectangles) once."""
    found: dict[tuple[str | None, str], Symbol] = {}
    for r in rects:
        crop = frame[r.y : r.y + r.h, r.x : r.x + r.w]
        for found_symbol in decoder.decode(crop):
            symbol = found_symbol
            if r.x or r.y:
                shifted = tuple((x + r.x, y + r.y) for x, y in symbol.polygon)
                symbol = dataclasses.replace(symbol, polygon=shifted)
            found.setdefault((symbol.symbology_id, symbol.text), symbol)
    return list(found.values())


def make_decoder(engines: Sequence[str]) -> BarcodeDecoder:
    """The decoding cascade for a camera: configured engines, default steps."""
    return BarcodeDecoder(
        DecoderConfig(
            engines=tuple(ENGINE_NAMES[e] for e in engines),
            steps=CAMERA_STEPS,
            max_upscaled_pixels=MAX_UPSCALED_PIXELS,
        )
    )


class _Session:
    """One opening of the source: its two threads and their handoff."""

    def __init__(self, reader: CameraReader, number: int) -> None:
        self.reader = reader
        self.number = number
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.want = False
        self.slot: tuple[Image, int] | None = None
        self.eos: str | None = None
        self.last_frame = now_s()
        self.live = True
        self.opened = False
        self.rate = reader.config.max_decode_fps
        """Frames per second the decoder takes at most now (set by it: active or idle)."""
        # Each thread runs in a copy of the current context, so its log records carry
        # the reader's id like the rest of the driver's (tagtrail.logsetup.bind).
        self.capture = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._capture,),
            name=f"camera-{reader.reader_id}-capture",
            daemon=True,
        )
        self.decode = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._decode,),
            name=f"camera-{reader.reader_id}-decode",
            daemon=True,
        )

    def start(self) -> None:
        self.capture.start()
        self.decode.start()

    def shutdown(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()

    def join(self, timeout: float) -> bool:
        deadline = now_s() + timeout
        for t in (self.decode, self.capture):
            if t.is_alive():
                t.join(max(0.0, deadline - now_s()))
        return not (self.decode.is_alive() or self.capture.is_alive())

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        self.reader._post(self.number, fn, *args)

    # -- capture thread --

    def _capture(self) -> None:
        reader = self.reader
        cfg = reader.config
        try:
            source = open_source(
                cfg.source, timeout_s=cfg.read_timeout_s, fallback_fps=reader.fallback_fps
            )
        except SourceError as exc:
            self._post(reader._session_ended, str(exc), False)
            return
        except Exception as exc:  # OpenCV may fail in ways of its own
            logger.exception("reader %s: opening %s", reader.reader_id, redact(cfg.source))
            self._post(reader._session_ended, f"{redact(cfg.source)}: {exc}", False)
            return
        self.live = source.live
        self.opened = True
        self.last_frame = now_s()
        self._post(reader._session_opened, source.description)
        try:
            self._capture_loop(source)
        except Exception as exc:
            logger.exception("reader %s: capture failed", reader.reader_id)
            self._post(reader._session_ended, f"capture failed: {exc}", False)
        finally:
            source.close()

    def _capture_loop(self, source: FrameSource) -> None:
        reader = self.reader
        period = 1.0 / source.fps
        start = now_s()
        index = 0
        n = 0
        credit, credit_at = 1.0, now_s()
        while not self.stop.is_set():
            corrupt: str | None = None
            try:
                grabbed = source.grab()
            except SourceError as exc:  # a folder's file that is not an image
                grabbed, corrupt = Grab.FRAME, str(exc)
            if grabbed is Grab.LOST:
                self._post(reader._session_ended, "source lost (no frame)", False)
                return
            if grabbed is Grab.END:
                if reader.config.loop and source.rewind():
                    reader._thread_count("replays", stat=True)
                    start, n = now_s(), 0
                    continue
                with self.cond:
                    self.eos = "end of source"
                    self.cond.notify_all()
                return
            if not source.live:
                due = start + n * period
                n += 1
                wait = due - now_s()
                if wait > 0:
                    if self.stop.wait(wait):
                        return
                elif wait < -1.0:
                    start, n = now_s(), 1  # far behind (suspended): catch up, don't rush
            grabbed_at = self.last_frame = now_s()
            if corrupt is not None:
                reader._thread_count("corrupt_image")
                reader._note_problem(corrupt)
                continue
            index += 1
            reader._thread_count("frames", stat=True)
            credit = min(RATE_BURST, credit + (grabbed_at - credit_at) * self.rate)
            credit_at = grabbed_at
            if not self.want or credit < 1.0:
                reader._thread_count("frames_dropped", stat=True)
                continue
            image = source.retrieve()
            reason = empty_reason(image)
            if image is None or reason is not None:
                reader._thread_count("empty_frame")
                reader._note_problem(f"empty frame: {reason or 'no image'}")
                continue
            with self.cond:
                if self.want:
                    self.slot = (image, index)
                    self.want = False
                    credit -= 1.0
                    self.cond.notify_all()
                else:
                    reader._thread_count("frames_dropped", stat=True)

    # -- decode thread --

    def _decode(self) -> None:
        try:
            self._decode_loop()
        except Exception as exc:  # a bug or an OpenCV failure: restart the session
            logger.exception("reader %s: decoding failed", self.reader.reader_id)
            self._post(self.reader._session_ended, f"decoding failed: {exc}", False)

    def _decode_loop(self) -> None:
        reader = self.reader
        cfg = reader.config
        try:
            decoder = make_decoder(cfg.engines)
            primary = make_decoder(cfg.engines[:1])
        except BarcodeError as exc:
            self._post(reader._session_ended, f"decoder: {exc}", False)
            return
        planner = reader.planner
        planner.reset()
        idle_rate = min(cfg.max_decode_fps, IDLE_ANALYSE_FPS)
        while not self.stop.is_set():
            with self.cond:
                self.want = True
                while self.slot is None and self.eos is None and not self.stop.is_set():
                    self.cond.wait(0.5)
                taken, self.slot = self.slot, None
                self.want = False
                eos = self.eos
            if taken is None:
                if eos is not None and not self.stop.is_set():
                    self._post(reader._session_ended, eos, True)
                return
            active = self._process((decoder, primary), planner, taken[0], taken[1], now_s())
            self.rate = cfg.max_decode_fps if active else idle_rate

    def _process(
        self,
        decoders: tuple[BarcodeDecoder, BarcodeDecoder],
        planner: FramePlanner,
        frame: Image,
        index: int,
        now: float,
    ) -> bool:
        reader = self.reader
        reader._thread_count("analysed", stat=True)
        why, rects = planner.plan(frame, now)
        if why is None:
            return False
        reader._thread_count(f"decodes_{why}", stat=True)
        reader._thread_count("decodes", stat=True)
        reader._thread_count("decoded_pixels", stat=True, n=sum(r.area for r in rects))
        try:
            # a periodic check of a still scene uses the first engine only: a label that
            # got there unseen is read by it, or by both once it moves again
            decoder = decoders[1] if why == "idle" else decoders[0]
            symbols = decode_rects(decoder, frame, rects)
        except BarcodeError as exc:
            reader._thread_count("decode_error")
            reader._note_problem(f"decode: {exc}")
            symbols = []
        h, w = frame.shape[:2]
        planner.decoded(symbols, w, h, now)
        if symbols:
            reader._thread_count("symbols", stat=True, n=len(symbols))
            confirmed = planner.confirmed(symbols, now)
            if confirmed:
                self._post(reader._on_sighting, _Sighting(tuple(confirmed), index))
        return why != "idle"


class CameraReader:
    """One camera decoding barcodes. Implements ``ReaderDriver``."""

    reader_type = "camera"

    def __init__(
        self,
        config: CameraReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
        fallback_fps: float | None = None,
        confirm_frames: int | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_read = on_read
        self._on_state = on_state
        self._idle_flush_s = idle_flush_s  # part of the driver signature; frames need none
        self._rate_window_s = rate_window_s
        self.fallback_fps = config.folder_fps if fallback_fps is None else fallback_fps
        self._snap = ReaderSnapshot(reader=config.id, reader_type=self.reader_type)
        self.interpreter = ScanInterpreter(
            config.id, gs_substitutes=config.gs_substitutes, count=self._count
        )
        self.planner = FramePlanner(
            config,
            confirm_frames=config.confirm_frames if confirm_frames is None else confirm_frames,
        )
        self._lock = threading.Lock()
        self._thread_errors: Counter[str] = Counter()
        self._stats: Counter[str] = Counter()
        self._problem: str | None = None
        self._rate: deque[tuple[float, int]] = deque(maxlen=4096)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: _Session | None = None
        self._session_number = 0
        self._ended: asyncio.Future[tuple[str, bool]] | None = None
        self._online = False
        self.retry_delays: deque[float] = deque(maxlen=32)
        """The latest waits before reopening the source, seconds (backoff, for status)."""

    # -- ReaderDriver --

    @property
    def reader_id(self) -> str:
        return self.config.id

    @property
    def frame_stats(self) -> dict[str, int]:
        """Frame counters: ``frames`` captured, ``analysed``, ``decodes`` (and by reason:
        ``decodes_motion``, ``decodes_recent``, ``decodes_idle``, ``decodes_always``),
        ``decoded_pixels``, ``symbols``, ``replays``."""
        with self._lock:
            return dict(self._stats)

    def snapshot(self) -> ReaderSnapshot:
        self._merge_thread_counts()
        self._snap.read_rate_per_s = self._read_rate()
        counters = dict(self._snap.counters)
        for key, n in self.frame_stats.items():
            counters[key] = n
        return dataclasses.replace(
            self._snap,
            error_counts=dict(self._snap.error_counts),
            antenna_reads=dict(self._snap.antenna_reads),
            counters=counters,
        )

    async def run(self) -> None:
        """Keep the camera going until cancelled."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        delay = cfg.reconnect_initial_s
        try:
            while True:
                reason, final, got_online = await self._run_session()
                self._link_down(reason, count=not final)
                if final:
                    logger.info("reader %s: %s; staying offline", cfg.id, reason)
                    await asyncio.Event().wait()  # until cancelled
                if got_online:
                    delay = cfg.reconnect_initial_s
                else:
                    self._count("open_failures")
                self.retry_delays.append(delay)
                logger.info("reader %s: reopening %s in %.2f s", cfg.id, redact(cfg.source), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.reconnect_max_s)
        finally:
            await self._stop_session()
            self._set_state("offline")

    # -- sessions --

    async def _run_session(self) -> tuple[str, bool, bool]:
        """Open the source and read it until it fails or ends: (reason, final, online)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._session_number += 1
        session = self._session = _Session(self, self._session_number)
        ended: asyncio.Future[tuple[str, bool]] = loop.create_future()
        self._ended = ended
        self._online = False
        session.start()
        check_s = min(1.0, cfg.read_timeout_s / 4)
        try:
            while not ended.done():
                await asyncio.wait({ended}, timeout=check_s)
                if ended.done():
                    break
                if session.live or not session.opened:
                    silent = now_s() - session.last_frame
                    if silent >= cfg.read_timeout_s + (0 if session.opened else 2.0):
                        what = "no frame" if session.opened else "open timed out"
                        ended.set_result((f"{what} for {silent:.1f} s", False))
            reason, final = ended.result()
        finally:
            await self._stop_session()
        return reason, final, self._online

    async def _stop_session(self) -> None:
        session, self._session = self._session, None
        self._ended = None
        if session is None:
            return
        session.shutdown()
        try:
            joined = await asyncio.shield(asyncio.to_thread(session.join, JOIN_TIMEOUT_S))
        except asyncio.CancelledError:
            joined = session.join(0.2)
            if not joined:
                logger.warning("reader %s: threads still busy at cancel", self.reader_id)
            raise
        if not joined:
            logger.warning(
                "reader %s: capture thread blocked; it releases the source when it returns",
                self.reader_id,
            )

    def _post(self, number: int, fn: Callable[..., None], *args: Any) -> None:
        """From a worker thread: run ``fn(*args)`` on the loop if session ``number`` is
        still the current one."""
        loop = self._loop
        if loop is None:
            return

        def call() -> None:
            if self._session is not None and self._session.number == number:
                fn(*args)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(call)

    def _session_opened(self, description: str) -> None:
        self._snap.firmware = description
        self._online = True
        logger.info("reader %s: opened %s", self.reader_id, description)
        self._set_state("online")

    def _session_ended(self, reason: str, final: bool) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result((reason, final))

    def _link_down(self, reason: str, *, count: bool = True) -> None:
        self._snap.last_error = reason
        if self._snap.state != "offline":
            logger.warning("reader %s: offline: %s", self.reader_id, reason)
            if count:
                self._count("disconnects")
            self._set_state("offline")

    # -- symbols --

    def _on_sighting(self, sighting: _Sighting) -> None:
        mono = self._clock.monotonic()
        wall = self._clock.now()
        reads = 0
        for symbol in sighting.symbols:
            counter = _COUNTER_OF_ENGINE.get(symbol.engine)
            if counter is not None:
                counters = self._snap.counters
                counters[counter] = counters.get(counter, 0) + 1
            scan = Scan(symbol.text, symbol.symbology_id, symbol.raw)
            read = self.interpreter.read_of(scan, mono, wall)
            if read is None:
                self._snap.last_error = self.interpreter.last_problem
                continue
            logger.debug(
                "reader %s: frame %d: %s by %s/%s",
                self.reader_id,
                sighting.frame,
                read.epc,
                symbol.engine,
                symbol.step,
            )
            reads += 1
            deliver(self._snap, self._on_read, read)
        if reads:
            self._snap.reads_total += reads
            self._rate.append((mono, reads))

    # -- bookkeeping --

    def _thread_count(self, key: str, *, stat: bool = False, n: int = 1) -> None:
        with self._lock:
            (self._stats if stat else self._thread_errors)[key] += n

    def _note_problem(self, problem: str) -> None:
        logger.info("reader %s: %s", self.reader_id, problem)
        with self._lock:
            self._problem = problem

    def _merge_thread_counts(self) -> None:
        with self._lock:
            errors, self._thread_errors = self._thread_errors, Counter()
            problem, self._problem = self._problem, None
        counts = self._snap.error_counts
        for key, n in errors.items():
            counts[key] = counts.get(key, 0) + n
        if problem is not None:
            self._snap.last_error = problem

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
        if self._snap.state == state:
            return
        self._snap.state = state
        logger.info("reader %s: %s", self.reader_id, state)
        if self._on_state is not None:
            try:
                self._on_state(self.snapshot())
            except Exception:
                logger.exception("reader %s: on_state callback failed", self.reader_id)
