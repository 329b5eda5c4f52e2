"""The camera reader driver: real OpenCV capture of files, folders and URLs, real decoding.

Frames are made in the test: a dock scene (noisy grey floor) that labelled boxes cross,
the labels drawn from python-barcode's module patterns; written as an MJPG video or a
JPEG folder with OpenCV. The driver plays them at their frame rate, as a camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tagtrail.clock import ManualClock
from tagtrail.events import GtinQuantityIdentity, GtinSerialIdentity, SsccIdentity, identity_key
from tagtrail.readers.camera import CameraReader, FramePlanner
from tagtrail.readers.camera_frames import (
    MotionDetector,
    Rect,
    empty_reason,
    merge_rects,
    redact,
)
from tagtrail.readers.config import CameraReaderConfig
from tagtrail.readers.model import RawRead, ReaderSnapshot
from tests.support.services import missing

Image = npt.NDArray[np.uint8]

SSCC = identity_key(SsccIdentity(scheme="sscc", sscc="106141411234567897"))
CASE = identity_key(GtinSerialIdentity(scheme="gtin_serial", gtin="09501101020917", serial="10"))
EAN = identity_key(GtinQuantityIdentity(scheme="gtin_quantity", gtin="05901234123457", quantity=1))

W, H = 800, 450
FPS = 30.0
STEP_PX = 40


def python_barcode() -> ModuleType:
    try:
        import barcode  # type: ignore[import-untyped]
    except ImportError:
        missing("python-barcode is not installed (pip install python-barcode)")
    module: ModuleType = barcode
    return module


def label(kind: str, data: str, px: int = 2, bar_h: int = 70) -> Image:
    """A white label card (BGR) with the symbol's bars, quiet zones included."""
    pattern: str = python_barcode().get_barcode_class(kind)(data).build()[0]
    row = np.array([0 if c == "1" else 255 for c in "0" * 12 + pattern + "0" * 12], np.uint8)
    row = np.repeat(row, px)
    card = np.full((bar_h + 30, row.size, 3), 250, dtype=np.uint8)
    card[15 : 15 + bar_h] = row[None, :, None]
    return card


LABELS = {
    SSCC: ("gs1_128", "00106141411234567897"),
    CASE: ("gs1_128", "01095011010209172110"),
    EAN: ("ean13", "590123412345"),
}


@dataclass
class Pass:
    """A box crossing the frame left to right; ``key`` None is a box without a label."""

    key: str | None
    first_frame: int
    frames: int


class Scene:
    """Boxes crossing a dock floor, one at a time, separated by empty frames."""

    def __init__(self, keys: list[str | None], gap: int = 10, lead: int = 6) -> None:
        self.cards = {k: label(*LABELS[k]) for k in LABELS}
        self.box_w, self.box_h = 380, 200
        rng = np.random.default_rng(5)
        floor = np.full((H, W, 3), 110, dtype=np.uint8)
        floor[:, :, 0] = 95
        noise = rng.normal(0, 3, (H, W, 1))
        self.floor = np.clip(floor + noise, 0, 255).astype(np.uint8)
        self.passes: list[Pass] = []
        frame = lead
        span = (W + self.box_w) // STEP_PX + 1
        for key in keys:
            self.passes.append(Pass(key, frame, span))
            frame += span + gap
        self.total = frame

    def frame(self, index: int) -> Image:
        img = self.floor.copy()
        for p in self.passes:
            if p.first_frame <= index < p.first_frame + p.frames:
                x = -self.box_w + (index - p.first_frame) * STEP_PX
                self._box(img, x, p.key)
        return img

    def _box(self, img: Image, x: int, key: str | None) -> None:
        y = (H - self.box_h) // 2
        box = np.zeros((self.box_h, self.box_w, 3), dtype=np.uint8)
        box[:] = (60, 120, 170)
        if key is not None:
            card = self.cards[key]
            ch, cw = card.shape[:2]
            cy, cx = (self.box_h - ch) // 2, (self.box_w - cw) // 2
            box[cy : cy + ch, cx : cx + cw] = card
        x0, x1 = max(0, x), min(W, x + self.box_w)
        if x1 > x0:
            img[y : y + self.box_h, x0:x1] = box[:, x0 - x : x1 - x]

    def frames(self) -> Iterator[Image]:
        for i in range(self.total):
            yield self.frame(i)

    def write_video(self, path: Path, fps: float = FPS) -> Path:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
        assert writer.isOpened()
        for img in self.frames():
            writer.write(img)
        writer.release()
        return path

    def write_folder(self, folder: Path) -> Path:
        folder.mkdir()
        for i, img in enumerate(self.frames()):
            ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            (folder / f"{i:05d}.jpg").write_bytes(data.tobytes())
        return folder


def camera_config(source: Path | str, **kw: Any) -> CameraReaderConfig:
    base: dict[str, Any] = {
        "type": "camera",
        "id": "cam-1",
        "source": str(source),
        "zone": "dock-1",
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.4,
    }
    base.update(kw)
    return CameraReaderConfig.model_validate(base)


class Run:
    """A camera reader running on this test's event loop, collecting reads and states."""

    def __init__(self, config: CameraReaderConfig, **kw: Any) -> None:
        self.clock = ManualClock()
        self.reads: list[RawRead] = []
        self.states: list[ReaderSnapshot] = []
        self.reader = CameraReader(
            config, self.clock, self.reads.append, self.states.append, idle_flush_s=0.2, **kw
        )

    def state_seq(self) -> list[str]:
        return [s.state for s in self.states]

    async def until(self, cond: Callable[[], bool], within: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not cond():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.reader.snapshot()}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(run: Run) -> Any:
    task = asyncio.create_task(run.reader.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # cancellation stopped the capture and decode threads (the capture released with them)
    assert [t.name for t in threading.enumerate() if t.name.startswith("camera-")] == []


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def groups(reads: list[RawRead]) -> list[str]:
    """Identity keys in order of reading, consecutive repeats collapsed."""
    out: list[str] = []
    for r in reads:
        if not out or out[-1] != r.epc:
            out.append(r.epc)
    return out


# --- tests ---------------------------------------------------------------------------------


@sync
async def test_video_labels_become_identities_while_in_view(tmp_path: Path) -> None:
    scene = Scene([SSCC, None, CASE, EAN])
    video = scene.write_video(tmp_path / "dock.avi")
    run = Run(camera_config(video))
    async with running(run):
        await run.until(lambda: run.reader.snapshot().state == "offline", 30, "end of video")
    snap = run.reader.snapshot()
    assert snap.last_error == "end of source"
    assert run.state_seq() == ["online", "offline"]
    # each label read while its box crossed, in the order they passed, none in between
    assert groups(run.reads) == [SSCC, CASE, EAN]
    for key in (SSCC, CASE, EAN):
        assert sum(r.epc == key for r in run.reads) >= 2, key
    assert {r.antenna for r in run.reads} == {1}
    assert {r.rssi_dbm for r in run.reads} == {None}
    ean = next(r for r in run.reads if r.epc == EAN)
    assert isinstance(ean.identity, GtinQuantityIdentity)
    assert ean.identity.quantity == 1
    assert snap.reads_total == len(run.reads)
    assert snap.counters.get("engine_zxing", 0) >= len(run.reads)
    assert "not_item" not in snap.error_counts
    assert snap.firmware is not None
    assert "video file" in snap.firmware
    stats = run.reader.frame_stats
    assert stats["frames"] == scene.total
    assert stats["decodes_motion"] > 0


@sync
async def test_image_folder_skips_a_corrupt_file_engines_in_config_order(tmp_path: Path) -> None:
    scene = Scene([EAN], gap=2, lead=2)
    folder = scene.write_folder(tmp_path / "frames")
    files = sorted(folder.iterdir())
    files[1].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # while the scene is empty
    (folder / "notes.txt").write_text("not an image: ignored")
    run = Run(camera_config(folder, engines=["pyzbar", "zxing"]), fallback_fps=FPS)
    async with running(run):
        await run.until(lambda: run.reader.snapshot().state == "offline", 30, "end of folder")
    snap = run.reader.snapshot()
    assert snap.error_counts["corrupt_image"] == 1
    assert snap.last_error == "end of source"
    assert run.reader.frame_stats["frames"] == scene.total - 1
    assert groups(run.reads) == [EAN]
    # the engines run in the configured order: pyzbar first read every symbol here
    assert snap.counters["engine_pyzbar"] >= len(run.reads)
    assert "engine_zxing" not in snap.counters
    assert snap.firmware is not None
    assert f"{scene.total} images" in snap.firmware


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@sync
async def test_unreachable_url_goes_offline_and_retries_with_backoff() -> None:
    url = f"http://127.0.0.1:{closed_port()}/x.mjpg"
    run = Run(camera_config(url, reconnect_initial_s=0.05, reconnect_max_s=0.2))
    async with running(run):
        await run.until(
            lambda: run.reader.snapshot().error_counts.get("open_failures", 0) >= 5, 30, "retries"
        )
        snap = run.reader.snapshot()
    assert run.state_seq() == ["offline"]  # once, not once per attempt
    assert snap.error_counts["disconnects"] == 1
    assert snap.last_error is not None
    assert url in snap.last_error
    assert list(run.reader.retry_delays)[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert run.reads == []


@sync
async def test_missing_device_goes_offline_with_the_reason(tmp_path: Path) -> None:
    run = Run(camera_config("/dev/video-does-not-exist-77"))
    async with running(run):
        await run.until(lambda: run.reader.snapshot().state == "offline", 10, "offline")
        snap = run.reader.snapshot()
    assert snap.last_error == "/dev/video-does-not-exist-77: no such device"
    missing_file = Run(camera_config(tmp_path / "nope.avi"))
    async with running(missing_file):
        await missing_file.until(lambda: missing_file.reader.snapshot().state == "offline", 10, "x")
    assert "no such file" in str(missing_file.reader.snapshot().last_error)


@sync
async def test_frames_beyond_the_decode_rate_are_dropped_not_queued(tmp_path: Path) -> None:
    scene = Scene([SSCC], gap=4, lead=4)
    video = scene.write_video(tmp_path / "dock.avi")
    run = Run(camera_config(video, max_decode_fps=3, motion_gating=False))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(run):
        await run.until(lambda: run.reader.snapshot().state == "offline", 30, "end of video")
    elapsed = loop.time() - started
    snap = run.reader.snapshot()
    stats = run.reader.frame_stats
    # every frame was either handed to the decoder or dropped
    assert stats["frames"] == scene.total
    assert snap.counters["frames_dropped"] == scene.total - stats["analysed"]
    # the cap held: at most 3 frames per second of real time (plus the first)
    assert stats["analysed"] <= 3 * elapsed + 1
    assert stats["decodes_always"] == stats["analysed"]
    assert snap.counters["frames_dropped"] > scene.total // 2


@sync
async def test_idle_scene_decodes_only_every_idle_decode_s(tmp_path: Path) -> None:
    scene = Scene([], lead=75)  # 2.5 s of an empty dock, sensor noise in every frame
    rng = np.random.default_rng(9)
    video = tmp_path / "idle.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (W, H))
    noisy = [
        np.clip(scene.floor + rng.normal(0, 3, (H, W, 3)), 0, 255).astype(np.uint8)
        for _ in range(4)
    ]
    for i in range(scene.total):
        writer.write(noisy[i % len(noisy)])
    writer.release()
    run = Run(camera_config(video, idle_decode_s=0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(run):
        await run.until(lambda: run.reader.snapshot().state == "offline", 30, "end of video")
    elapsed = loop.time() - started
    stats = run.reader.frame_stats
    assert stats.get("decodes_motion", 0) == 1  # the first frame, nothing to compare with
    assert stats.get("decodes_recent", 0) == 0
    assert 2 <= stats["decodes_idle"] <= elapsed / 0.5 + 1
    assert stats["decodes"] == stats["decodes_motion"] + stats["decodes_idle"]
    # still frames are analysed at the idle rate, not the decode rate
    assert stats["analysed"] <= 5 * elapsed + 2
    assert run.reads == []


class MjpegStream:
    """A tiny HTTP MJPEG camera (``multipart/x-mixed-replace``) serving the scene's frames
    in a loop at ``fps``; it can stall (connection open, no frames) and go away."""

    def __init__(self, frames: list[bytes], fps: float = FPS) -> None:
        self.frames = frames
        self.fps = fps
        self.stalled = False
        self.port = 0
        self.clients = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.clients += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame"
                b"\r\nCache-Control: no-cache\r\n\r\n"
            )
            index = 0
            while True:
                if not self.stalled:
                    jpeg = self.frames[index % len(self.frames)]
                    index += 1
                    writer.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        % len(jpeg)
                        + jpeg
                        + b"\r\n"
                    )
                    await writer.drain()
                await asyncio.sleep(1 / self.fps)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@sync
async def test_stream_url_reads_stalls_goes_away_and_comes_back() -> None:
    scene = Scene([SSCC], gap=4, lead=4)
    jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in scene.frames()]
    camera = MjpegStream(jpegs)
    await camera.start()
    run = Run(camera_config(camera.url, read_timeout_s=1.5, reconnect_max_s=0.2))

    def count(key: str) -> int:
        return run.reader.snapshot().error_counts.get(key, 0)

    async with running(run):
        await run.until(lambda: len(run.reads) > 0, 30, "a read from the stream")
        assert {r.epc for r in run.reads} == {SSCC}
        snap = run.reader.snapshot()
        assert snap.state == "online"
        assert snap.firmware is not None
        assert snap.firmware.startswith("stream http://")

        camera.stalled = True  # connection open, no more frames
        await run.until(lambda: run.reader.snapshot().state == "offline", 30, "stall noticed")
        assert count("disconnects") == 1
        camera.stalled = False
        await run.until(lambda: run.reader.snapshot().state == "online", 30, "back online")

        await camera.stop()  # the camera goes away: connection reset, then refused
        await run.until(lambda: count("open_failures") >= 2, 30, "reopen attempts")
        assert run.reader.snapshot().state == "offline"
        assert count("disconnects") == 2
        await camera.start()  # same port
        try:
            reads_before = len(run.reads)
            await run.until(lambda: len(run.reads) > reads_before, 30, "reads after coming back")
        finally:
            await camera.stop()
    assert run.state_seq()[:5] == ["online", "offline", "online", "offline", "online"]
    assert run.state_seq()[-1] == "offline"  # cancelled
    assert camera.clients >= 3


def test_empty_frames_are_recognised() -> None:
    assert empty_reason(None) == "no image"
    assert empty_reason(np.zeros((0, 0, 3), dtype=np.uint8)) == "empty (0x0x3)"
    assert empty_reason(np.zeros((4, 0), dtype=np.uint8)) == "empty (4x0)"
    assert empty_reason(np.zeros((4, 4), dtype=np.float32)) == "not 8-bit (float32)"
    assert empty_reason(np.zeros((4, 4, 3), dtype=np.uint8)) is None


def test_motion_boxes_follow_the_moving_box() -> None:
    scene = Scene([SSCC])
    detector = MotionDetector(0.002)
    first = scene.passes[0].first_frame
    assert detector.update(scene.frame(first + 8)).moving  # nothing to compare with yet
    still = detector.update(scene.frame(first + 8))
    assert not still.moving
    assert still.boxes == ()
    moved = detector.update(scene.frame(first + 9))
    assert moved.moving
    x = -scene.box_w + 9 * STEP_PX
    union = moved.boxes[0]
    for b in moved.boxes[1:]:
        union = union.union(b)
    box_rows = ((H - scene.box_h) // 2, (H + scene.box_h) // 2)
    assert union.y >= box_rows[0] - 12
    assert union.y + union.h <= box_rows[1] + 12
    assert union.x >= x - STEP_PX - 12
    assert union.x + union.w <= x + scene.box_w + 12


def test_planner_decodes_motion_boxes_inside_regions() -> None:
    config = camera_config("/dev/null", regions=[{"x": 0.0, "y": 0.0, "width": 0.5, "height": 1.0}])
    planner = FramePlanner(config)
    blank = np.full((H, W, 3), 100, dtype=np.uint8)
    why, rects = planner.plan(blank, 0.0)
    assert (why, rects) == ("motion", [Rect(0, 0, W // 2, H)])
    planner.decoded([], W, H, 0.0)
    assert planner.plan(blank, 0.1) == (None, [])
    spot = blank.copy()
    spot[200:240, 100:140] = 255
    why, rects = planner.plan(spot, 0.2)
    assert why == "motion"
    assert len(rects) == 1
    assert rects[0].area < (W // 2) * H * 0.25
    assert rects[0].x <= 100
    assert rects[0].x + rects[0].w >= 140
    spot_right = blank.copy()
    spot_right[200:240, 600:640] = 255  # motion outside the region is no reason to decode
    assert planner.plan(blank, 0.3)[0] == "motion"
    planner.decoded([], W, H, 0.3)
    assert planner.plan(spot_right, 0.4) == (None, [])
    assert planner.plan(blank, 1.0) == (None, [])
    assert planner.plan(blank, 2.5) == ("idle", [Rect(0, 0, W // 2, H)])
    assert merge_rects([Rect(0, 0, 10, 10), Rect(5, 5, 10, 10), Rect(50, 50, 2, 2)]) == [
        Rect(0, 0, 15, 15),
        Rect(50, 50, 2, 2),
    ]


def test_passwords_in_source_urls_stay_out_of_status() -> None:
    assert (
        redact("rtsp://admin:s3cret@10.0.0.7:554/stream1")
        == "rtsp://admin:***@10.0.0.7:554/stream1"
    )
    assert redact("http://cam.local/video.mjpg") == "http://cam.local/video.mjpg"
    assert redact("/dev/video0") == "/dev/video0"
