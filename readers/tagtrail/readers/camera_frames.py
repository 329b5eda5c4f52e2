"""Frame sources and motion analysis for the camera reader (:mod:`tagtrail.readers.camera`).

Everything here is blocking and runs in the camera reader's worker threads, never on the
event loop.

Sources
=======
:func:`open_source` opens what a camera config's ``source`` names:

* ``/dev/video0`` or an index such as ``0``: a V4L2 device (OpenCV's V4L2 backend). A
  missing device node is reported as such before OpenCV is asked.
* ``rtsp://``, ``rtsps://``, ``http://``, ``https://``: a network stream through
  OpenCV's FFmpeg backend, with its open and read timeouts set (so a dead camera makes
  ``grab`` fail instead of blocking for ever).
* a video file: FFmpeg backend, played at the file's own frame rate (or the fallback).
* a folder: its image files (by extension, sorted by name), one frame each at the
  fallback frame rate. A file that does not decode as an image is reported
  ``corrupt`` and skipped.

Live sources (devices and streams) are paced by the camera itself; files and folders are
paced by :class:`FrameSource` users at :attr:`FrameSource.fps`, so that they behave like
a camera in time. A source *grabs* every frame (keeping a live stream current) and
*retrieves* (converts into an array) only the frames someone wants: the rest are dropped
cheaply.

Motion
======
:class:`MotionDetector` compares each analysed frame with the previous one on a
grayscale copy downscaled to :data:`MOTION_WIDTH` pixels wide (area interpolation averages
sensor noise and JPEG artefacts away), blurred 3x3, thresholded at
:data:`PIXEL_THRESHOLD` grey levels. The fraction of changed pixels decides motion; the
bounding boxes of the changed areas (dilated, connected components) are returned in
full-frame pixels for region-of-interest decoding.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import numpy.typing as npt

from tagtrail.errors import TransportError

__all__ = [
    "IMAGE_SUFFIXES",
    "MOTION_WIDTH",
    "PIXEL_THRESHOLD",
    "CaptureSource",
    "FolderSource",
    "FrameSource",
    "Grab",
    "Motion",
    "MotionDetector",
    "Rect",
    "SourceError",
    "empty_reason",
    "merge_rects",
    "open_source",
    "redact",
]

Image = npt.NDArray[np.uint8]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm"}
)
"""File name endings a folder source plays; other files are ignored."""

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")

MOTION_WIDTH = 160
PIXEL_THRESHOLD = 18
_DILATE = np.ones((3, 3), dtype=np.uint8)


class SourceError(TransportError):
    """A frame source cannot be opened (missing device, unreachable URL, unreadable file)."""


class Grab(enum.Enum):
    """What one :meth:`FrameSource.grab` found."""

    FRAME = "frame"
    """A frame is there; :meth:`FrameSource.retrieve` gives it."""
    END = "end"
    """A file or folder is at its end (:meth:`FrameSource.rewind` starts it again)."""
    LOST = "lost"
    """A live source failed (device gone, stream closed or timed out)."""


class FrameSource(Protocol):
    """Where frames come from; used by one thread at a time."""

    description: str
    live: bool
    fps: float
    """Frames per second to pace a file or folder at (live sources pace themselves)."""

    def grab(self) -> Grab:
        """Take the next frame. A folder raises :class:`SourceError` for a file that is
        not an image (and moves past it)."""
        ...

    def retrieve(self) -> Image | None:
        """The grabbed frame (BGR or gray), or None when it is empty."""
        ...

    def rewind(self) -> bool: ...

    def close(self) -> None: ...


def empty_reason(image: Any) -> str | None:
    """Why ``image`` is not a usable frame (None, not an array, 0x0, wrong type), or None."""
    if image is None:
        return "no image"
    if not isinstance(image, np.ndarray):
        return f"not an array ({type(image).__name__})"
    if image.size == 0 or image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        return f"empty ({'x'.join(map(str, image.shape))})"
    if image.dtype != np.uint8:
        return f"not 8-bit ({image.dtype})"
    return None


class CaptureSource:
    """A device, stream or video file through ``cv2.VideoCapture``."""

    def __init__(self, source: str, *, timeout_s: float, fallback_fps: float) -> None:
        self._source = source
        self._timeout_s = timeout_s
        self._fallback_fps = fallback_fps
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(timeout_s * 1000),
        ]
        kind: str
        target: str | int
        shown = redact(source)
        if source.isdigit():
            kind, target, api = "V4L2 device", int(source), cv2.CAP_V4L2
            self.live = True
        elif source.startswith("/dev/"):
            if not os.path.exists(source):
                raise SourceError(f"{shown}: no such device")
            kind, target, api = "V4L2 device", source, cv2.CAP_V4L2
            self.live = True
        elif source.lower().startswith(STREAM_SCHEMES):
            kind, target, api = "stream", source, cv2.CAP_FFMPEG
            self.live = True
        else:
            path = Path(source)
            if not path.is_file():
                raise SourceError(f"{shown}: no such file, folder or device")
            kind, target, api = "video file", source, cv2.CAP_FFMPEG
            self.live = False
        try:
            cap = cv2.VideoCapture(target, api, params)
        except cv2.error as exc:
            raise SourceError(f"{shown}: cannot open: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            what = "unreachable or not a video stream" if kind == "stream" else "cannot open"
            raise SourceError(f"{shown}: {what} ({kind})")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.5 <= fps <= 240 else fallback_fps
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.description = (
            f"{kind} {shown} (OpenCV {cv2.__version__} {cap.getBackendName()}, "
            f"{width}x{height} @ {self.fps:g} fps)"
        )

    def grab(self) -> Grab:
        try:
            ok = self._cap.grab()
        except cv2.error:
            ok = False
        if ok:
            return Grab.FRAME
        return Grab.LOST if self.live else Grab.END

    def retrieve(self) -> Image | None:
        try:
            ok, image = self._cap.retrieve()
        except cv2.error:
            return None
        if not ok or empty_reason(image) is not None:
            return None
        return np.asarray(image, dtype=np.uint8)

    def rewind(self) -> bool:
        if self.live:
            return False
        cap = cv2.VideoCapture(self._source, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap.release()
        self._cap = cap
        return True

    def close(self) -> None:
        self._cap.release()


class FolderSource:
    """The image files of a folder, sorted by name, one frame each."""

    live = False

    def __init__(self, folder: Path, *, fps: float) -> None:
        try:
            names = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        except OSError as exc:
            raise SourceError(f"{folder}: cannot list: {exc.strerror or exc}") from exc
        if not names:
            raise SourceError(f"{folder}: no image files")
        self._files = names
        self._next = 0
        self._image: Image | None = None
        self.fps = fps
        self.description = f"image folder {folder} ({len(names)} images @ {fps:g} fps)"

    def grab(self) -> Grab:
        """Read and decode the next file; :class:`SourceError` if it is not an image (the
        folder moves on past it)."""
        self._image = None
        if self._next >= len(self._files):
            return Grab.END
        path = self._files[self._next]
        self._next += 1
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc
        image = None
        if data:
            try:
                image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            except cv2.error:
                image = None
        if image is None:
            raise SourceError(f"{path.name}: not a decodable image")
        self._image = np.asarray(image, dtype=np.uint8)
        return Grab.FRAME

    def retrieve(self) -> Image | None:
        return self._image

    def rewind(self) -> bool:
        self._next = 0
        return True

    def close(self) -> None:
        self._image = None


def redact(source: str) -> str:
    """``source`` fit for logs and status: a URL's password replaced by ``***``."""
    parts = urlsplit(source)
    if not parts.scheme or parts.password is None:
        return source
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_source(source: str, *, timeout_s: float, fallback_fps: float) -> FrameSource:
    """Open ``source`` (see the module docstring). Raises :class:`SourceError`."""
    if not source.isdigit() and not source.startswith("/dev/"):
        path = Path(source)
        if path.is_dir():
            return FolderSource(path, fps=fallback_fps)
    return CaptureSource(source, timeout_s=timeout_s, fallback_fps=fallback_fps)


# --- motion ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle in pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def padded(self, pad_x: int, pad_y: int, width: int, height: int) -> Rect:
        """Grown by the pads on every side, clipped to a ``width`` x ``height`` frame."""
        x0, y0 = max(0, self.x - pad_x), max(0, self.y - pad_y)
        x1, y1 = min(width, self.x + self.w + pad_x), min(height, self.y + self.h + pad_y)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def intersect(self, other: Rect) -> Rect | None:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.w, other.x + other.w)
        y1 = min(self.y + self.h, other.y + other.h)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def union(self, other: Rect) -> Rect:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1 = max(self.x + self.w, other.x + other.w)
        y1 = max(self.y + self.h, other.y + other.h)
        return Rect(x0, y0, x1 - x0, y1 - y0)


def merge_rects(rects: list[Rect]) -> list[Rect]:
    """Replace overlapping rectangles by their unions until none overlap."""
    out = list(rects)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                if out[i].intersect(out[j]) is not None:
                    out[i] = out[i].union(out[j])
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


@dataclass(frozen=True, slots=True)
class Motion:
    """One frame's motion against the previous analysed frame."""

    fraction: float
    """Fraction of (downscaled) pixels that changed."""
    moving: bool
    """``fraction`` reached the threshold."""
    boxes: tuple[Rect, ...]
    """Bounding boxes of the changed areas, full-frame pixels (empty when not moving)."""


class MotionDetector:
    """Frame differencing on downscaled grayscale copies (see the module docstring)."""

    def __init__(self, threshold: float, *, width: int = MOTION_WIDTH) -> None:
        self.threshold = threshold
        self.width = width
        self._prev: Image | None = None

    def reset(self) -> None:
        self._prev = None

    def update(self, frame: Image) -> Motion:
        h, w = frame.shape[:2]
        sw = min(self.width, w)
        sh = max(1, round(h * sw / w))
        resized = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
        if resized.ndim == 3:
            code = cv2.COLOR_BGR2GRAY if resized.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
            resized = cv2.cvtColor(resized, code)
        small: Image = np.asarray(cv2.GaussianBlur(resized, (3, 3), 0), dtype=np.uint8)
        prev, self._prev = self._prev, small
        if prev is None or prev.shape != small.shape:
            full = Rect(0, 0, w, h)
            return Motion(1.0, True, (full,))
        diff = cv2.absdiff(small, prev)
        _, mask = cv2.threshold(diff, PIXEL_THRESHOLD, 255, cv2.THRESH_BINARY)
        changed = int(cv2.countNonZero(mask))
        fraction = changed / mask.size
        if fraction < self.threshold:
            return Motion(fraction, False, ())
        mask = cv2.dilate(mask, _DILATE, iterations=2)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        sx, sy = w / sw, h / sh
        boxes = [
            Rect(
                int(stats[i, cv2.CC_STAT_LEFT] * sx),
                int(stats[i, cv2.CC_STAT_TOP] * sy),
                int(np.ceil(stats[i, cv2.CC_STAT_WIDTH] * sx)),
                int(np.ceil(stats[i, cv2.CC_STAT_HEIGHT] * sy)),
            )
            for i in range(1, count)
            if stats[i, cv2.CC_STAT_AREA] >= 4
        ]
        return Motion(fraction, True, tuple(boxes))


def now_s() -> float:
    """Real monotonic seconds (pacing of capture and decoding only, never read stamps)."""
    return time.monotonic()
