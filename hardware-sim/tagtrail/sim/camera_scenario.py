"""Camera scenario files: a dock door seen by a camera, labelled boxes crossing it.

A scenario is YAML data validated by :class:`CameraScenario` (unknown keys are rejected,
every field is described). Environment overrides use the prefix ``TAGTRAIL_SIM_CAMERA``,
e.g. ``TAGTRAIL_SIM_CAMERA__CAMERA__FPS=30``.

Geometry is in *scene units*: one unit is the frame height, so a scenario looks the same
at 1280x720 and 1920x1080 (x runs from 0 to width/height, y from 0 at the top to 1). A box
face moves along its lane (``lane_y``: the face's centre) at ``speed`` units per second;
``entry_s`` is when it starts moving in from just outside the frame. An optional ``stop`` holds it
still for a while (a still barcode in view). The camera's keystone (``perspective``) and
the box's ``tilt_deg`` are applied on top, so labels are never perfectly frontal.

Example::

    name: camera-dock
    seed: 7
    end_s: 16
    camera: {device: cam-dock-1, zone: dock-door-1, width: 1280, height: 720, fps: 15}
    items:
      - name: pallet-1
        kind: pallet
        size: [0.55, 0.6]
        lane_y: 0.5
        entry_s: 1.0
        speed: 0.35
        labels:
          - {symbology: gs1_128, payload: "(00)106141411234567897", position: [0.5, 0.3]}
          - {symbology: ean13, payload: "5901234123457", position: [0.3, 0.75]}

Ground truth (:func:`ground_truth`) is computed on the frame grid: a label is *in view* in
frame ``i`` (time ``i / fps``) when its whole label card, quiet zones included, lies inside
the frame. Boxes must not overlap in any frame (no occlusion), every label must be fully
in view in at least one frame, and every box must have left the frame by ``end_s``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tagtrail.configfile import load_config
from tagtrail.errors import TagtrailError
from tagtrail.events import Name
from tagtrail.sim.camera_symbols import (
    Gray,
    PayloadError,
    Symbology,
    expected_of,
    render_label,
    render_symbol,
)

ENV_PREFIX = "TAGTRAIL_SIM_CAMERA"
REFERENCE_HEIGHT = 720
"""Label module sizes are given in pixels at this frame height and scale with it."""
BAR_HEIGHT_MODULES = 50
"""Bar height of linear symbols, in modules."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CameraSpec(_Strict):
    """The simulated camera and its image quality."""

    device: Name = Field(default="cam-dock-1", description="Camera device name.")
    zone: Name = Field(description="Zone (read point) the camera watches, e.g. dock-door-1.")
    width: int = Field(default=1280, ge=320, le=3840, description="Frame width, pixels.")
    height: int = Field(default=720, ge=240, le=2160, description="Frame height, pixels.")
    fps: float = Field(default=15.0, ge=1, le=60, description="Frames per scenario second.")
    noise_sigma: float = Field(
        default=3.0, ge=0, le=30, description="Sensor noise, standard deviation in grey levels."
    )
    exposure_s: float = Field(
        default=0.004,
        ge=0,
        le=0.1,
        description="Exposure time: motion blur length is speed x exposure (in pixels).",
    )
    jpeg_quality: int = Field(
        default=85, ge=10, le=100, description="JPEG quality of the frames (artefacts)."
    )
    vignette: float = Field(
        default=0.3, ge=0, le=0.9, description="Darkening at the frame corners, 0-0.9."
    )
    light_gradient: float = Field(
        default=0.25,
        ge=0,
        le=0.9,
        description="Brightness fall-off from the door (left) to the inside (right), 0-0.9.",
    )
    perspective: float = Field(
        default=0.12,
        ge=0,
        le=0.4,
        description="Keystone: the top of the frame's scene plane is this much narrower.",
    )

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


class LabelSpec(_Strict):
    """One label on a box face: one symbol, optionally a title line above it."""

    symbology: Symbology = Field(
        description="ean13, code128, gs1_128, gs1_datamatrix or gs1_qr "
        "(see tagtrail.sim.camera_symbols for the payload format of each)."
    )
    payload: str = Field(
        min_length=1,
        max_length=120,
        description="What the symbol encodes: digits for ean13, ASCII text for code128, "
        "a bracketed GS1 element string such as '(00)106141411234567897' for gs1_*.",
    )
    valid: bool = Field(
        default=True,
        description="false: the payload is deliberately wrong (a GS1 check digit or "
        "date) and a reader must reject it; its expected identity is null.",
    )
    module_px: float = Field(
        default=2.0,
        ge=1,
        le=8,
        description="Module (narrow bar / cell) size in pixels at 720 lines, scaled with "
        "the frame height and rounded down to whole pixels on the label.",
    )
    position: tuple[float, float] = Field(
        default=(0.5, 0.5),
        description="Centre of the label on the box face, as fractions of its width/height.",
    )
    title: str | None = Field(
        default=None, max_length=40, description="Text printed above the symbol."
    )

    @model_validator(mode="after")
    def _check(self) -> LabelSpec:
        try:
            expected_of(self.symbology, self.payload, valid=self.valid)
        except PayloadError as exc:
            raise ValueError(f"payload: {exc}") from exc
        if not all(0 <= p <= 1 for p in self.position):
            raise ValueError("position: fractions must be within 0-1")
        return self

    def module_at(self, height: int) -> int:
        """Whole pixels per module at frame height ``height``."""
        return max(1, math.floor(self.module_px * height / REFERENCE_HEIGHT + 1e-9))


class StopSpec(_Strict):
    """The box halts with its face centre at ``at_x`` for ``for_s`` seconds."""

    at_x: float = Field(
        ge=0, le=4, description="Scene x (before the keystone) of the face centre while stopped."
    )
    for_s: float = Field(gt=0, le=3600, description="Seconds it stands still.")


class ItemSpec(_Strict):
    """A box or pallet crossing the frame once."""

    name: Name = Field(description="Item name (unique), used in the ground truth.")
    kind: Literal["case", "pallet"] = Field(
        default="case", description="case: a cardboard box; pallet: boxes on a wooden pallet."
    )
    size: tuple[float, float] = Field(
        default=(0.35, 0.35), description="Face width and height, scene units."
    )
    lane_y: float = Field(default=0.5, ge=0, le=1, description="Scene y of the face centre.")
    direction: Literal["left_to_right", "right_to_left"] = Field(
        default="left_to_right", description="Direction of travel."
    )
    entry_s: float = Field(
        ge=0, description="Scenario second it starts moving in from just outside the frame."
    )
    speed: float = Field(gt=0, le=10, description="Speed, scene units per second.")
    stop: StopSpec | None = Field(default=None, description="Optional halt in view.")
    tilt_deg: float = Field(
        default=0.0, ge=-20, le=20, description="Rotation of the face in the image plane."
    )
    labels: list[LabelSpec] = Field(min_length=1, max_length=6, description="Its labels.")

    @model_validator(mode="after")
    def _check(self) -> ItemSpec:
        if not all(0.05 <= s <= 1.5 for s in self.size):
            raise ValueError("size: width and height must be 0.05-1.5 scene units")
        return self

    def centre_x(self, t: float, frame_w_units: float, perspective: float = 0.0) -> float:
        """Scene x of the face centre at scenario time ``t`` (may be off-frame).

        Before ``entry_s`` the face waits just outside the frame: half its diagonal (any
        tilt) plus the keystone's inset beyond the edge.
        """
        half = math.hypot(*self.size) / 2 + perspective * frame_w_units / 2
        sign = 1.0 if self.direction == "left_to_right" else -1.0
        start = -half if sign > 0 else frame_w_units + half
        travelled = max(0.0, t - self.entry_s) * self.speed
        if self.stop is not None:
            to_stop = (self.stop.at_x - start) * sign
            if travelled > to_stop:
                held = self.stop.for_s * self.speed
                travelled = to_stop if travelled <= to_stop + held else travelled - held
        return start + sign * travelled

    def moving_at(self, t: float, frame_w_units: float, perspective: float = 0.0) -> bool:
        """Whether the box moves at ``t`` (for motion blur)."""
        if t < self.entry_s:
            return False
        if self.stop is None:
            return True
        before = self.centre_x(t - 1e-3, frame_w_units, perspective)
        return abs(self.centre_x(t, frame_w_units, perspective) - before) > 1e-9


class CameraScenario(_Strict):
    """A camera scenario: the camera, the boxes crossing it, and how long it runs."""

    name: Name = Field(description="Scenario name, echoed in the ground truth.")
    description: str = Field(default="", description="What the scenario shows.")
    site: Name = Field(default="wh-1", description="Site the camera belongs to.")
    seed: int = Field(default=1, ge=0, description="Seed for noise and box textures.")
    end_s: float = Field(gt=0, le=3600, description="Scenario length, seconds.")
    camera: CameraSpec = Field(description="The camera.")
    items: list[ItemSpec] = Field(default_factory=list, description="Boxes, in any order.")

    @model_validator(mode="after")
    def _check(self) -> CameraScenario:
        names = [item.name for item in self.items]
        if len(set(names)) != len(names):
            raise ValueError("items: names must be unique")
        problems = scene_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def frame_count(self) -> int:
        return math.floor(self.end_s * self.camera.fps + 1e-9)

    def frame_time(self, index: int) -> float:
        return index / self.camera.fps

    def with_size(self, width: int, height: int) -> CameraScenario:
        """The same scenario at another frame size (geometry is in scene units)."""
        camera = self.camera.model_copy(update={"width": width, "height": height})
        return CameraScenario.model_validate({**self.model_dump(), "camera": camera.model_dump()})


# -- geometry -------------------------------------------------------------------------------

Matrix = npt.NDArray[np.float64]


def camera_homography(camera: CameraSpec) -> Matrix:
    """Scene plane (pixels) to image: the keystone of a camera looking down at the door."""
    return _keystone(camera.width, camera.height, camera.perspective).copy()


@functools.lru_cache(maxsize=32)
def _keystone(width: int, height: int, perspective: float) -> Matrix:
    w, h = float(width), float(height)
    inset = perspective * w / 2
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    dst = np.array([[inset, 0], [w - inset, 0], [w, h], [0, h]], dtype=np.float64)
    return _homography(src, dst)


def _homography(src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]) -> Matrix:
    rows = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.array(rows))
    m = vt[-1].reshape(3, 3)
    return np.asarray(m / m[2, 2], dtype=np.float64)


def face_to_scene(item: ItemSpec, t: float, camera: CameraSpec) -> Matrix:
    """Box face pixels (face texture, ``height`` px per unit) to scene-plane pixels."""
    scale = float(camera.height)
    cx = item.centre_x(t, camera.width / camera.height, camera.perspective) * scale
    cy = item.lane_y * scale
    fw, fh = item.size[0] * scale, item.size[1] * scale
    a = math.radians(item.tilt_deg)
    c, s = math.cos(a), math.sin(a)
    centre = np.array([[1, 0, -fw / 2], [0, 1, -fh / 2], [0, 0, 1]], dtype=np.float64)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
    move = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], dtype=np.float64)
    return np.asarray(move @ rot @ centre, dtype=np.float64)


def project(m: Matrix, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Apply homography ``m`` to an (n, 2) array of points."""
    ones = np.ones((points.shape[0], 1))
    p = np.hstack([points, ones]) @ m.T
    return np.asarray(p[:, :2] / p[:, 2:3], dtype=np.float64)


def face_px(item: ItemSpec, camera: CameraSpec) -> tuple[int, int]:
    """Face texture size in pixels (width, height)."""
    return (
        max(1, round(item.size[0] * camera.height)),
        max(1, round(item.size[1] * camera.height)),
    )


@functools.lru_cache(maxsize=256)
def _label_image(
    symbology: Symbology, payload: str, valid: bool, module: int, title: str | None
) -> Gray:
    symbol = render_symbol(
        symbology, payload, module, valid=valid, bar_height_modules=BAR_HEIGHT_MODULES
    )
    image = render_label(symbol, title)
    image.flags.writeable = False
    return image


def label_image(label: LabelSpec, camera: CameraSpec) -> Gray:
    """The label card as drawn on the face texture (read-only, cached)."""
    m = label.module_at(camera.height)
    return _label_image(label.symbology, label.payload, label.valid, m, label.title)


def label_px(label: LabelSpec, camera: CameraSpec) -> tuple[int, int]:
    """Label card size in texture pixels (width, height)."""
    h, w = label_image(label, camera).shape
    return (w, h)


def label_rect(label: LabelSpec, item: ItemSpec, camera: CameraSpec) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the label card on the face texture."""
    fw, fh = face_px(item, camera)
    lw, lh = label_px(label, camera)
    x = round(label.position[0] * fw - lw / 2)
    y = round(label.position[1] * fh - lh / 2)
    return (x, y, lw, lh)


def _corners(x: float, y: float, w: float, h: float) -> npt.NDArray[np.float64]:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def face_quad(item: ItemSpec, t: float, camera: CameraSpec) -> npt.NDArray[np.float64]:
    """The face's four image corners at ``t``."""
    fw, fh = face_px(item, camera)
    m = camera_homography(camera) @ face_to_scene(item, t, camera)
    return project(m, _corners(0, 0, fw, fh))


def label_quad(
    label: LabelSpec, item: ItemSpec, t: float, camera: CameraSpec
) -> npt.NDArray[np.float64]:
    """The label card's four image corners at ``t``."""
    m = camera_homography(camera) @ face_to_scene(item, t, camera)
    return project(m, _corners(*label_rect(label, item, camera)))


def _inside(quad: npt.NDArray[np.float64], camera: CameraSpec) -> bool:
    xs, ys = quad[:, 0], quad[:, 1]
    return bool(
        xs.min() >= 0 and ys.min() >= 0 and xs.max() <= camera.width and ys.max() <= camera.height
    )


def _touches(quad: npt.NDArray[np.float64], camera: CameraSpec) -> bool:
    xs, ys = quad[:, 0], quad[:, 1]
    return bool(
        xs.max() > 0 and ys.max() > 0 and xs.min() < camera.width and ys.min() < camera.height
    )


def _bbox_overlap(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
    return bool(
        a[:, 0].min() < b[:, 0].max()
        and b[:, 0].min() < a[:, 0].max()
        and a[:, 1].min() < b[:, 1].max()
        and b[:, 1].min() < a[:, 1].max()
    )


@dataclass(frozen=True, slots=True)
class Window:
    """Frames ``first``..``last`` (inclusive) and their times."""

    first: int
    last: int
    from_s: float
    to_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "from_s": round(self.from_s, 6),
            "to_s": round(self.to_s, 6),
            "first_frame": self.first,
            "last_frame": self.last,
        }


def _windows(flags: list[bool], fps: float) -> list[Window]:
    out: list[Window] = []
    start: int | None = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append(Window(start, i - 1, start / fps, (i - 1) / fps))
            start = None
    return out


def _face_label_problems(item: ItemSpec, index: int, camera: CameraSpec) -> list[str]:
    fw, fh = face_px(item, camera)
    problems = []
    for j, label in enumerate(item.labels):
        x, y, w, h = label_rect(label, item, camera)
        if x < 0 or y < 0 or x + w > fw or y + h > fh:
            problems.append(
                f"items.{index}.labels.{j}: the {w}x{h} px label does not fit on the "
                f"{fw}x{fh} px face at {camera.width}x{camera.height} (make the box larger, "
                "the module smaller or move the label)"
            )
    rects = [label_rect(label, item, camera) for label in item.labels]
    for a in range(len(rects)):
        for b in range(a + 1, len(rects)):
            ra, rb = _corners(*rects[a]), _corners(*rects[b])
            if _bbox_overlap(ra, rb):
                problems.append(f"items.{index}.labels.{b}: overlaps label {a}")
    return problems


def scene_problems(scenario: CameraScenario) -> list[str]:
    """Reasons the scenario has no clear ground truth (empty if fine)."""
    cam = scenario.camera
    problems: list[str] = []
    width_units = cam.width / cam.height
    for i, item in enumerate(scenario.items):
        problems += _face_label_problems(item, i, cam)
        if item.stop is not None and not 0 <= item.stop.at_x <= width_units:
            problems.append(f"items.{i}.stop.at_x: must lie within the frame, 0-{width_units:.2f}")
    if problems:
        return problems
    n = scenario.frame_count
    quads = [[face_quad(item, i / cam.fps, cam) for i in range(n)] for item in scenario.items]
    for i in range(n):
        shown = [k for k in range(len(scenario.items)) if _touches(quads[k][i], cam)]
        for a in range(len(shown)):
            for b in range(a + 1, len(shown)):
                if _bbox_overlap(quads[shown[a]][i], quads[shown[b]][i]):
                    names = (scenario.items[shown[a]].name, scenario.items[shown[b]].name)
                    return [f"items: {names[0]} and {names[1]} overlap at {i / cam.fps:.2f} s"]
    for k, item in enumerate(scenario.items):
        if _touches(quads[k][n - 1], cam) if n else False:
            problems.append(f"items.{k}: {item.name} is still in view at end_s")
        for j, label in enumerate(item.labels):
            if not any(_inside(label_quad(label, item, i / cam.fps, cam), cam) for i in range(n)):
                problems.append(f"items.{k}.labels.{j}: never fully in view")
    return problems


# -- ground truth ---------------------------------------------------------------------------


def ground_truth(scenario: CameraScenario) -> dict[str, Any]:
    """What crossed when, as JSON-ready data.

    ``labels``: one entry per label, ordered by when it comes into view, with the
    symbology identifier and plain text a decoder reports, the identity ``key`` (null for
    non-GS1 codes and deliberately invalid labels) and ``in_view`` (first/last frame with
    the whole label in the frame). ``items``: when any part of each box is in the frame.
    ``idle``: stretches with no box in the frame at all (for motion gating).
    ``identities``: each expected key with its in-view windows, ordered by first sight.
    """
    cam = scenario.camera
    n = scenario.frame_count
    labels: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    busy = [False] * n
    for item in scenario.items:
        seen = [_touches(face_quad(item, i / cam.fps, cam), cam) for i in range(n)]
        busy = [a or b for a, b in zip(busy, seen, strict=True)]
        visible = _windows(seen, cam.fps)
        items.append({"name": item.name, "kind": item.kind, "visible": visible[0].to_json()})
        for j, label in enumerate(item.labels):
            flags = [_inside(label_quad(label, item, i / cam.fps, cam), cam) for i in range(n)]
            window = _windows(flags, cam.fps)[0]
            expected = expected_of(label.symbology, label.payload, valid=label.valid)
            labels.append(
                {
                    "item": item.name,
                    "label": j,
                    "symbology": label.symbology,
                    "symbology_id": expected.symbology_id,
                    "text": expected.text,
                    "valid": label.valid,
                    "key": expected.key,
                    "module_px": label.module_at(cam.height),
                    "in_view": window.to_json(),
                }
            )
    labels.sort(key=lambda e: (e["in_view"]["first_frame"], e["item"], e["label"]))
    items.sort(key=lambda e: e["visible"]["first_frame"])
    identities: dict[str, list[dict[str, Any]]] = {}
    for entry in labels:
        if entry["key"] is not None:
            identities.setdefault(entry["key"], []).append(entry["in_view"])
    return {
        "scenario": scenario.name,
        "site": scenario.site,
        "device": cam.device,
        "zone": cam.zone,
        "width": cam.width,
        "height": cam.height,
        "fps": cam.fps,
        "end_s": scenario.end_s,
        "frames": n,
        "labels": labels,
        "items": items,
        "idle": [w.to_json() for w in _windows([not b for b in busy], cam.fps)],
        "identities": identities,
    }


def write_ground_truth(scenario: CameraScenario, path: Path | str) -> None:
    """Write :func:`ground_truth` as JSON (atomically). Raises :class:`TagtrailError`."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(json.dumps(ground_truth(scenario), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise TagtrailError(f"cannot write ground truth to {target}: {exc}") from exc


def load_camera_scenario(path: Path | str, environ: dict[str, str] | None = None) -> CameraScenario:
    """Read and validate a camera scenario (``TAGTRAIL_SIM_CAMERA__*`` overrides applied).

    Raises :class:`~tagtrail.errors.ConfigError` naming each failing field.
    """
    return load_config(path, CameraScenario, ENV_PREFIX, environ)


__all__ = [
    "CameraScenario",
    "CameraSpec",
    "ItemSpec",
    "LabelSpec",
    "StopSpec",
    "Window",
    "ground_truth",
    "load_camera_scenario",
    "write_ground_truth",
]
