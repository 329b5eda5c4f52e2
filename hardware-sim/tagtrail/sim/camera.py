"""The synthetic dock camera: a video file, a JPEG folder or a live MJPEG stream.

``python -m tagtrail.sim.camera SCENARIO.yaml (--video OUT | --frames DIR | --serve PORT)``
renders a camera scenario (:mod:`tagtrail.sim.camera_scenario`; frames by
:mod:`tagtrail.sim.camera_render`, symbols by :mod:`tagtrail.sim.camera_symbols`) and
prints ``READY <path-or-url>`` on stdout once the file is complete or the server listens.
Logs go to stderr; SIGTERM and SIGINT end the server cleanly with exit code 0.

Outputs
-------
- ``--video OUT``: ``.avi`` is Motion JPEG (``MJPG``, what opencv-python-headless writes
  and reads everywhere), ``.mp4`` is MPEG-4 Part 2 (``mp4v``). One frame per scenario
  frame, at the scenario's fps.
- ``--frames DIR``: ``DIR/000000.jpg`` ... at the camera's JPEG quality; frame ``i`` is
  scenario time ``i / fps``.
- ``--serve PORT``: an HTTP camera like an IP camera's MJPEG endpoint. ``GET /stream.mjpg``
  (or ``/``) answers ``multipart/x-mixed-replace; boundary=frame``; each part has
  ``Content-Type: image/jpeg``, ``Content-Length``, ``X-Frame`` (frame index) and
  ``X-Timestamp`` (scenario seconds). ``GET /snapshot.jpg`` returns the latest frame.
  ``cv2.VideoCapture("http://127.0.0.1:PORT/stream.mjpg")`` opens it (FFmpeg backend).
  Frames are paced at ``fps x time-scale`` per real second; a renderer or client that
  falls behind skips frames, as a real camera does, rather than queueing them. After
  ``end_s`` the scene stays empty (noise only), or restarts with ``--loop``.

In-process use: :class:`CameraRenderer` (``frames()`` yields :class:`Frame` with index,
time and BGR pixels) and :class:`MjpegServer` (``await start()`` returns the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import click
import cv2

from tagtrail.clock import Clock, SystemClock
from tagtrail.errors import TagtrailError
from tagtrail.logsetup import setup_logging
from tagtrail.sim.camera_render import CameraRenderer, Frame, RenderError
from tagtrail.sim.camera_scenario import (
    CameraScenario,
    ground_truth,
    load_camera_scenario,
    write_ground_truth,
)

__all__ = [
    "CameraRenderer",
    "CameraScenario",
    "Frame",
    "MjpegServer",
    "RenderError",
    "camera_command",
    "ground_truth",
    "load_camera_scenario",
    "write_frames",
    "write_video",
]

log = logging.getLogger(__name__)

BOUNDARY = "frame"
STREAM_PATHS = ("/stream.mjpg", "/", "/video", "/mjpg/video.mjpg")
SNAPSHOT_PATH = "/snapshot.jpg"
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT_S = 10.0

_FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}


# -- files ----------------------------------------------------------------------------------


def write_video(renderer: CameraRenderer, path: Path | str) -> int:
    """Write every frame to ``path`` (.avi: MJPG, .mp4: mp4v); returns the frame count.

    Frames go through the camera's JPEG first (its artefacts), then the video codec.
    Raises :class:`RenderError`.
    """
    target = Path(path)
    codec = _FOURCC.get(target.suffix.lower())
    if codec is None:
        raise RenderError(f"{target}: video files must end in .avi (MJPG) or .mp4 (mp4v)")
    cam = renderer.camera
    fourcc = cv2.VideoWriter.fourcc(*codec)
    writer = cv2.VideoWriter(str(target), fourcc, cam.fps, (cam.width, cam.height))
    if not writer.isOpened():
        raise RenderError(f"{target}: OpenCV cannot open a {codec} video writer")
    count = 0
    try:
        for frame in renderer.frames(jpeg=True):
            writer.write(frame.image)
            count += 1
    finally:
        writer.release()
    log.info("wrote %d frames to %s", count, target)
    return count


def write_frames(renderer: CameraRenderer, directory: Path | str) -> int:
    """Write every frame as ``NNNNNN.jpg`` into ``directory``; returns the frame count.

    Raises :class:`RenderError`.
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(renderer.frame_count):
            (folder / f"{index:06d}.jpg").write_bytes(renderer.frame_jpeg(index))
    except OSError as exc:
        raise RenderError(f"cannot write frames to {folder}: {exc}") from exc
    log.info("wrote %d frames to %s", renderer.frame_count, folder)
    return renderer.frame_count


# -- MJPEG over HTTP ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encoded:
    """A served frame."""

    index: int
    t: float
    jpeg: bytes


class MjpegServer:
    """Serves a scenario's frames live as an HTTP MJPEG camera.

    A producer thread renders the frame due now (scenario time = real time elapsed x
    ``time_scale``, measured on ``clock``), skipping frames when it falls behind; each
    client gets the latest frame whenever one is published.
    """

    def __init__(
        self,
        renderer: CameraRenderer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        loop_scenario: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.renderer = renderer
        self.host = host
        self.port = port
        self.time_scale = time_scale
        self.loop_scenario = loop_scenario
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.frames_rendered = 0
        self.frames_skipped = 0
        self.frames_sent = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._latest: Encoded | None = None
        self._published = asyncio.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/stream.mjpg"

    async def start(self) -> str:
        """Listen and start producing frames; returns the stream URL.

        Raises :class:`RenderError` if the port cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise RenderError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._publish(self._render(0, 0.0))  # a frame is there before the first client
        self._thread = threading.Thread(target=self._produce, name="camera-sim", daemon=True)
        self._thread.start()
        log.info("serving %s", self.url)
        return self.url

    async def close(self) -> None:
        """Stop producing, close the listener and every client."""
        self._stop.set()
        if self._server is not None:
            self._server.close()
        self._closing = True
        self._publish_wakeup()
        for writer in list(self._writers):
            writer.close()
        if self._clients:
            await asyncio.wait(set(self._clients), timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    def _render(self, index: int, t: float) -> Encoded:
        scenario = self.renderer.scenario
        scene_t = math.fmod(t, scenario.end_s) if self.loop_scenario else t
        jpeg = self.renderer.encode(self.renderer.render(scene_t, index))
        self.frames_rendered += 1
        return Encoded(index, scene_t, jpeg)

    def _produce(self) -> None:
        fps = self.renderer.camera.fps
        start = self.clock.monotonic()
        next_index = 1
        try:
            while not self._stop.is_set():
                scene_t = (self.clock.monotonic() - start) * self.time_scale
                due = math.floor(scene_t * fps + 1e-9)
                if due < next_index:
                    wait = (next_index / fps - scene_t) / self.time_scale
                    self._stop.wait(max(0.0, min(wait, 0.1)))
                    continue
                self.frames_skipped += due - next_index
                frame = self._render(due, due / fps)
                next_index = due + 1
                loop = self._loop
                if loop is None or loop.is_closed():
                    return
                loop.call_soon_threadsafe(self._publish, frame)
        except (TagtrailError, cv2.error, RuntimeError) as exc:
            self._error = exc
            log.exception("camera simulator: rendering failed")

    def _publish(self, frame: Encoded) -> None:
        self._latest = frame
        self._publish_wakeup()

    def _publish_wakeup(self) -> None:
        event, self._published = self._published, asyncio.Event()
        event.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        self._writers.add(writer)
        try:
            path = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT_S)
            if path is None:
                await _reply(writer, "400 Bad Request", "text/plain", b"bad request\n")
            elif path == SNAPSHOT_PATH and self._latest is not None:
                await _reply(writer, "200 OK", "image/jpeg", self._latest.jpeg)
            elif path in STREAM_PATHS:
                await self._stream(writer)
            else:
                await _reply(writer, "404 Not Found", "text/plain", b"not found\n")
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("client gone: %s", exc)
        finally:
            if task is not None:
                self._clients.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.0 200 OK\r\n"
            b"Server: tagtrail-camera-sim\r\n"
            b"Cache-Control: no-cache, no-store\r\n"
            b"Pragma: no-cache\r\n"
            b"Connection: close\r\n"
            + f"Content-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\r\n".encode()
        )
        sent = -1
        while not self._closing:
            frame = self._latest
            if frame is None or frame.index == sent:
                await self._published.wait()
                continue
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(frame.jpeg)}\r\n"
                f"X-Frame: {frame.index}\r\nX-Timestamp: {frame.t:.6f}\r\n\r\n"
            )
            writer.write(head.encode("ascii") + frame.jpeg + b"\r\n")
            await writer.drain()  # a slow client skips frames meanwhile
            sent = frame.index
            self.frames_sent += 1


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    """The path of a GET request (headers read and ignored), ``None`` if malformed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        return None
    if len(head) > MAX_REQUEST_BYTES:
        return None
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
        return None
    return parts[1].split("?", 1)[0]


async def _reply(writer: asyncio.StreamWriter, status: str, ctype: str, body: bytes) -> None:
    writer.write(
        f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode("ascii")
        + body
    )
    await writer.drain()


# -- command line ---------------------------------------------------------------------------


async def _serve(server: MjpegServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await server.start()
        click.echo(f"READY {url}")
        await stop.wait()
        log.info(
            "stopping: signal (rendered %d, skipped %d, sent %d)",
            server.frames_rendered,
            server.frames_skipped,
            server.frames_sent,
        )
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await server.close()


def _parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError as exc:
        raise click.BadParameter("expected WIDTHxHEIGHT, e.g. 1920x1080") from exc
    return (width, height)


@click.command("sim-camera")
@click.argument(
    "scenario_path",
    metavar="SCENARIO.yaml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--video",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a video file (.avi: MJPG, .mp4: mp4v).",
)
@click.option(
    "--frames",
    "frames_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the frames as NNNNNN.jpg into this folder.",
)
@click.option(
    "--serve",
    "port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve an HTTP MJPEG stream on this port (0: any free port, printed in READY).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True, max=1000),
    default=1.0,
    show_default=True,
    help="--serve: run the scenario this many times faster than real time.",
)
@click.option("--loop", "loop_scenario", is_flag=True, help="--serve: restart at end_s.")
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option("--size", default=None, help="Override the frame size, e.g. 1920x1080.")
@click.option(
    "--ground-truth",
    "ground_truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write which identity was in view when, as JSON, to this file.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
    help="Log level (logs go to stderr).",
)
def camera_command(  # noqa: PLR0917 - click passes every option as an argument
    scenario_path: Path,
    video: Path | None,
    frames_dir: Path | None,
    port: int | None,
    host: str,
    time_scale: float,
    loop_scenario: bool,
    seed: int | None,
    size: str | None,
    ground_truth_path: Path | None,
    log_level: str,
) -> None:
    """Render a camera scenario to a video, a JPEG folder or a live MJPEG stream."""
    setup_logging(log_level)
    chosen = [o for o in (video, frames_dir, port) if o is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --video, --frames and --serve")
    dims = _parse_size(size)
    try:
        scenario = load_camera_scenario(scenario_path)
        if dims is not None:
            scenario = scenario.with_size(*dims)
        if ground_truth_path is not None:
            write_ground_truth(scenario, ground_truth_path)
        renderer = CameraRenderer(scenario, seed=seed)
        if video is not None:
            write_video(renderer, video)
            click.echo(f"READY {video}")
        elif frames_dir is not None:
            write_frames(renderer, frames_dir)
            click.echo(f"READY {frames_dir}")
        else:
            server = MjpegServer(
                renderer,
                host=host,
                port=port or 0,
                time_scale=time_scale,
                loop_scenario=loop_scenario,
            )
            asyncio.run(_serve(server))
    except TagtrailError as exc:
        click.echo(f"sim-camera: {exc}", err=True)
        sys.exit(1)
    except ValueError as exc:  # pydantic ValidationError from with_size
        click.echo(f"sim-camera: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    camera_command()
