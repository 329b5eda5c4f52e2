"""Rendering the synthetic camera's frames: a dock door, boxes with labels crossing it.

Per frame: the lit background (wall, door opening, floor, safety line; vignette and a
light gradient baked in) is copied; each box in view is warped (``cv2.warpPerspective``,
camera keystone and box tilt) into its region of interest over the unlit background,
motion-blurred along its travel (box filter of ``speed x exposure`` pixels), lit with the
same light map, and pasted; sensor noise is added from a seeded noise bank at a per-frame
random offset; and the frame goes through JPEG at the camera's quality. Everything is a
function of ``(scenario, seed, frame index)``: the same scenario renders the same frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from tagtrail.errors import TagtrailError
from tagtrail.sim.camera_scenario import (
    CameraScenario,
    CameraSpec,
    ItemSpec,
    camera_homography,
    face_px,
    face_to_scene,
    label_image,
    label_rect,
    project,
)

log = logging.getLogger(__name__)

Bgr = npt.NDArray[np.uint8]
NOISE_PAD = 64
"""Extra rows/columns of the noise bank; each frame takes a window at a random offset."""


class RenderError(TagtrailError):
    """A frame could not be rendered or encoded."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: its index, scenario time and BGR pixels."""

    index: int
    t: float
    image: Bgr


def _light_map(cam: CameraSpec) -> npt.NDArray[np.float32]:
    h, w = cam.height, cam.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
    vignette = 1.0 - cam.vignette * np.clip(r2 / 2.0, 0, 1)
    gradient = 1.0 - cam.light_gradient * (xs / w)
    gain = (vignette * gradient).astype(np.float32)
    return np.repeat(gain[:, :, np.newaxis], 3, axis=2)


def _background(cam: CameraSpec, rng: np.random.Generator) -> Bgr:
    h, w = cam.height, cam.width
    img = np.zeros((h, w, 3), dtype=np.float32)
    floor_y = int(h * 0.72)
    # wall: grey-blue with vertical panel seams
    wall = np.linspace(150, 130, floor_y, dtype=np.float32)[:, np.newaxis]
    img[:floor_y] = np.stack([wall + 12, wall + 4, wall], axis=2)
    for x in range(0, w, max(8, w // 9)):
        img[:floor_y, x : x + max(1, w // 400)] *= 0.8
    # floor: concrete with a gradient towards the camera
    floor = np.linspace(105, 140, h - floor_y, dtype=np.float32)[:, np.newaxis]
    img[floor_y:] = np.stack([floor, floor + 2, floor + 5], axis=2)
    # door opening (the dark yard/trailer), yellow-black bumpers around it
    x0, x1, y0 = int(w * 0.08), int(w * 0.62), int(h * 0.06)
    img[y0:floor_y, x0:x1] = (48, 52, 58)
    img[y0:floor_y, x0 + (x1 - x0) // 3 : x1 - (x1 - x0) // 3] = (36, 40, 44)
    edge = max(4, w // 100)
    for x in (x0 - edge, x1):
        img[y0:floor_y, x : x + edge] = (30, 190, 230)
        for y in range(y0, floor_y, 4 * edge):
            img[y : y + 2 * edge, x : x + edge] = (25, 25, 25)
    img[y0 - edge : y0, x0 - edge : x1 + edge] = (30, 190, 230)
    # safety line on the floor
    line_y = floor_y + (h - floor_y) // 3
    img[line_y : line_y + max(3, h // 90), :] = (30, 200, 235)
    # low-frequency texture (stains, uneven paint)
    coarse = rng.normal(0, 6, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    texture = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img += texture[:, :, np.newaxis]
    return np.asarray(np.clip(img, 0, 255), dtype=np.uint8)


def _face_texture(item: ItemSpec, cam: CameraSpec, rng: np.random.Generator) -> Bgr:
    fw, fh = face_px(item, cam)
    base = np.array([95, 150, 195], dtype=np.float32)  # cardboard, BGR
    coarse = rng.normal(0, 5, (fh // 4 + 1, fw // 4 + 1)).astype(np.float32)
    grain = cv2.resize(coarse, (fw, fh), interpolation=cv2.INTER_LINEAR)
    face = base[np.newaxis, np.newaxis, :] + grain[:, :, np.newaxis]
    tape = max(2, fh // 12)
    face[fh // 2 - tape // 2 : fh // 2 + tape // 2] += 18
    if item.kind == "pallet":
        deck = max(4, fh // 6)
        face[fh - deck :] = (60, 110, 150)
        for x in range(0, fw, max(6, fw // 5)):
            face[fh - deck + deck // 3 : fh, x + fw // 12 : x + fw // 6] = (25, 30, 35)
        face[fh - deck - max(1, deck // 8) : fh - deck] = (40, 60, 80)
    edge = max(1, fh // 100)
    face[:edge] *= 0.7
    face[-edge:] *= 0.7
    face[:, :edge] *= 0.7
    face[:, -edge:] *= 0.7
    out = np.asarray(np.clip(face, 0, 255), dtype=np.uint8)
    for label in item.labels:
        x, y, lw, lh = label_rect(label, item, cam)
        card = label_image(label, cam)
        out[y : y + lh, x : x + lw] = card[:, :, np.newaxis]
    return out


class CameraRenderer:
    """Frames of a :class:`CameraScenario`; deterministic for a given scenario and seed."""

    def __init__(self, scenario: CameraScenario, *, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        cam = scenario.camera
        self.camera = cam
        rng = np.random.default_rng([self.seed, 0])
        self._gain = _light_map(cam)
        self._bg_raw = _background(cam, rng)
        self._bg_lit = self._light(self._bg_raw, 0, 0)
        self._homography = camera_homography(cam)
        self._textures = [
            _face_texture(item, cam, np.random.default_rng([self.seed, 1, k]))
            for k, item in enumerate(scenario.items)
        ]
        shape = (cam.height + NOISE_PAD, cam.width + NOISE_PAD, 3)
        noise = np.random.default_rng([self.seed, 2]).normal(0, cam.noise_sigma, shape)
        noise = np.rint(noise).clip(-255, 255)
        self._noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_neg = np.clip(-noise, 0, 255).astype(np.uint8)
        self._encode_params = [cv2.IMWRITE_JPEG_QUALITY, cam.jpeg_quality]

    @property
    def frame_count(self) -> int:
        return self.scenario.frame_count

    def _light(self, region: Bgr, x0: int, y0: int) -> Bgr:
        h, w = region.shape[:2]
        lit = region.astype(np.float32) * self._gain[y0 : y0 + h, x0 : x0 + w]
        return np.asarray(np.clip(lit, 0, 255), dtype=np.uint8)

    def render(self, t: float, index: int = 0) -> Bgr:
        """The frame at scenario time ``t`` before JPEG; ``index`` picks the noise."""
        cam = self.camera
        frame = self._bg_lit.copy()
        width_units = cam.width / cam.height
        for item, texture in zip(self.scenario.items, self._textures, strict=True):
            m = self._homography @ face_to_scene(item, t, cam)
            fh, fw = texture.shape[:2]
            corners = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], dtype=np.float64)
            quad = project(m, corners)
            blur = 0
            if item.moving_at(t, width_units, cam.perspective):
                blur = round(item.speed * cam.height * cam.exposure_s)
            margin = blur + 2
            x0 = max(0, int(np.floor(quad[:, 0].min())) - margin)
            y0 = max(0, int(np.floor(quad[:, 1].min())) - 2)
            x1 = min(cam.width, int(np.ceil(quad[:, 0].max())) + margin)
            y1 = min(cam.height, int(np.ceil(quad[:, 1].max())) + 2)
            if x1 <= x0 or y1 <= y0:
                continue
            shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
            roi = self._bg_raw[y0:y1, x0:x1].copy()
            cv2.warpPerspective(
                texture,
                shift @ m,
                (x1 - x0, y1 - y0),
                dst=roi,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_TRANSPARENT,
            )
            if blur >= 2:
                cv2.blur(roi, (blur, 1), dst=roi)
            frame[y0:y1, x0:x1] = self._light(roi, x0, y0)
        if cam.noise_sigma > 0:
            rng = np.random.default_rng([self.seed, 3, index])
            dy, dx = (int(v) for v in rng.integers(0, NOISE_PAD, 2))
            window = (slice(dy, dy + cam.height), slice(dx, dx + cam.width))
            cv2.add(frame, self._noise_pos[window], dst=frame)
            cv2.subtract(frame, self._noise_neg[window], dst=frame)
        return frame

    def render_index(self, index: int) -> Bgr:
        """Frame ``index`` at ``index / fps``, before JPEG."""
        return self.render(self.scenario.frame_time(index), index)

    def encode(self, image: Bgr) -> bytes:
        """JPEG bytes of a frame at the camera's quality. Raises :class:`RenderError`."""
        ok, buf = cv2.imencode(".jpg", image, self._encode_params)
        if not ok:
            raise RenderError("JPEG encoding failed")
        return bytes(buf.tobytes())

    def frame_jpeg(self, index: int, t: float | None = None) -> bytes:
        """Frame ``index`` (at ``t``, default ``index / fps``) as JPEG bytes."""
        when = self.scenario.frame_time(index) if t is None else t
        return self.encode(self.render(when, index))

    def frame(self, index: int, *, jpeg: bool = True) -> Frame:
        """Frame ``index`` at time ``index / fps``; with ``jpeg``, after a JPEG round trip."""
        t = self.scenario.frame_time(index)
        image = self.render(t, index)
        if jpeg:
            data = np.frombuffer(self.encode(image), dtype=np.uint8)
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if decoded is None:
                raise RenderError("JPEG decoding failed")
            image = np.asarray(decoded, dtype=np.uint8)
        return Frame(index, t, image)

    def frames(
        self, *, jpeg: bool = True, start: int = 0, stop: int | None = None
    ) -> Iterator[Frame]:
        """Frames ``start``..``stop`` (default: the whole scenario), in order."""
        end = self.frame_count if stop is None else min(stop, self.frame_count)
        for index in range(start, end):
            yield self.frame(index, jpeg=jpeg)
