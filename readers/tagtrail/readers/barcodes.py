"""Barcode decoding of still images: two engines, a small preprocessing cascade, GS1 on top.

One module for turning an image (a numpy array from OpenCV, or a file) into typed
:class:`Symbol` records. Camera capture, motion gating and events live elsewhere; they
call :meth:`BarcodeDecoder.decode` per frame or region of interest.

Engines
=======
* ``zxing-cpp`` (primary): reads every common 1D and 2D symbology, reports the AIM
  symbology identifier (``]C1`` GS1-128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR, ``]e0``
  DataBar ...) and validates check characters. It runs in ``TextMode.Plain``: the default
  HRI mode writes GS1 element strings with parentheses, which the GS1 parser rejects;
  Plain gives the data with FNC1 separators as GS (0x1D). Binary payloads keep their
  bytes in :attr:`Symbol.raw`. On the corpus it misreads least (3 of 462 photos).
* ``pyzbar`` (second, only where zxing-cpp found nothing, see below): the zbar library.
  It beats zxing-cpp on hard, blurred EAN/UPC photos, but it cannot read DataMatrix, it
  misreads more (19 of 462 on its own), and it reports no symbology identifier. The
  identifier is derived here, honestly: EAN-13 and UPC-A/E ``]E0``, EAN-8 ``]E4``,
  Interleaved 2 of 5 ``]I0`` (zbar does not say whether a check digit was validated),
  Code 39 ``]A0``, Code 93 ``]G0``, Codabar ``]F0``, DataBar (both kinds) ``]e0``, which is
  always GS1. zbar drops a leading FNC1, so it returns the same text for GS1-128 and
  plain Code 128 (zbar records the GS1 flag but pyzbar does not expose it): a Code 128 is
  ``]C0`` unless its payload *proves* GS1, that is, it holds a GS separator and parses
  completely as GS1 element strings with valid check digits, then ``]C1``. The same rule
  gives QR Code ``]Q1`` or ``]Q3``. A single-field GS1-128 such as a bare SSCC label thus
  stays ``]C0`` through pyzbar: only zxing-cpp can tell. PDF417, ISBN-10 and SQ codes get
  no identifier.
* UPC-A comes back from both engines as EAN-13 with a leading 0 (13 digits, ``]E0``); it
  is reported as such: the GTIN is the same.

The cascade
===========
Each engine is tried on each preprocessing step, the engine order outermost:
``zxing-cpp`` on ``gray``, ``upscale2x``, ``upscale2x_clahe``, then ``pyzbar`` on the
same three. The first (engine, step) that returns any symbol ends the cascade; its
symbols are the result. The steps, in order of cost:

1. ``gray``: the image as given, converted to 8-bit grayscale (both engines binarise
   grayscale internally; colour adds nothing).
2. ``upscale2x``: bicubic 2x. The commonest failure on camera crops is modules only
   1-2 pixels wide: the binariser then cannot place edges. Interpolating gives it
   sub-pixel edges. zxing-cpp downscales on its own but never upscales.
3. ``upscale2x_clahe``: contrast-limited adaptive histogram equalisation (clip 2, 8x8
   tiles) of the upscaled image, for glare and uneven light across a label. It runs
   after the upscale so that each tile covers several modules and the equalisation does
   not amplify compression blocks at native scale.

Why engine-major (all zxing-cpp steps before any pyzbar step) rather than trying both
engines per step: zxing-cpp on a preprocessed image is still more trustworthy than zbar
on the original. Measured on the corpus, engine-major read 440/462 with 5 answers that
differ from the labels (3 without two mislabelled photos, see
``bench/bench_camera_corpus.py``), step-major 437/462 with 8. Steps whose upscaled image
would exceed ``max_upscaled_pixels`` are skipped (a full 1080p frame is not upscaled; crop first).
Several symbols per image are normal and all are returned, but only from the first
(engine, step) that finds any: later steps are not run to look for more.

Counters
========
:attr:`BarcodeDecoder.counters` counts images, images with symbols, symbols, and for each
engine and each step the images it decoded (``engine:zxing-cpp``, ``step:upscale2x``,
and per pair ``hit:pyzbar/gray``), so a status page can show what each contributes.

Errors
======
An empty (0x0) or blank image gives no symbols. An unreadable or corrupt file raises
:class:`ImageError`; an array that is not an 8-bit image raises :class:`ImageError`; an
engine that cannot be loaded (pyzbar without the zbar library) raises
:class:`EngineUnavailableError` when the decoder is built. All derive from
:class:`BarcodeError`, a :class:`~tagtrail.errors.TagtrailError`. A GS1 payload that
cannot be trusted (bad check digit, missing separator) still yields a :class:`Symbol`,
with :attr:`Symbol.scan` None and the reason in :attr:`Symbol.scan_error`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from tagtrail.errors import ConfigError, TagtrailError
from tagtrail.readers.gs1 import GS, Gs1Error, ScanResult, parse_scan

__all__ = [
    "DEFAULT_ENGINES",
    "DEFAULT_STEPS",
    "STEPS",
    "BarcodeDecoder",
    "BarcodeError",
    "DecoderConfig",
    "Engine",
    "EngineSymbol",
    "EngineUnavailableError",
    "ImageError",
    "PyzbarEngine",
    "Symbol",
    "ZxingEngine",
    "load_image",
    "make_engine",
    "preprocess",
    "to_gray",
]

logger = logging.getLogger(__name__)

GrayImage = npt.NDArray[np.uint8]
Point = tuple[int, int]


class BarcodeError(TagtrailError):
    """Root of the errors of image barcode decoding."""


class ImageError(BarcodeError):
    """An image file cannot be read or decoded, or an array is not an 8-bit image."""


class EngineUnavailableError(BarcodeError):
    """A decoding engine cannot be loaded (package or system library missing)."""


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineSymbol:
    """One symbol as an engine reports it, in the coordinates of the image it was given."""

    symbology: str
    """Name, as zxing-cpp spells it: ``EAN-13``, ``Code 128``, ``QR Code``, ``Data Matrix``."""
    symbology_id: str | None
    """AIM identifier (``]C1``), or None when the engine cannot tell."""
    text: str
    """The data as text, GS1 separators as GS (0x1D)."""
    raw: bytes
    """The data as bytes (binary payloads)."""
    polygon: tuple[Point, ...]
    """Outline: zxing-cpp's four corners (top left, top right, bottom right, bottom left),
    or zbar's outline points (several, in zbar's order)."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """One decoded symbol, with where and how it was found and its GS1 meaning."""

    symbology: str
    symbology_id: str | None
    text: str
    raw: bytes
    polygon: tuple[Point, ...]
    """Corners in the coordinates of the image passed to :meth:`BarcodeDecoder.decode`."""
    engine: str
    """The engine that decoded it: ``zxing-cpp`` or ``pyzbar``."""
    step: str
    """The preprocessing step that found it (see :data:`STEPS`)."""
    scan: ScanResult | None
    """:func:`tagtrail.readers.gs1.parse_scan` of the text, None if that raised."""
    scan_error: str | None = None
    """Why a GS1 payload could not be trusted (the :class:`Gs1Error` message)."""

    @property
    def is_gs1(self) -> bool:
        return self.scan is not None and self.scan.is_gs1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``tagtrail decode --image``)."""
        out: dict[str, Any] = {
            "symbology": self.symbology,
            "symbology_id": self.symbology_id,
            "text": self.text,
            "engine": self.engine,
            "step": self.step,
            "position": [list(p) for p in self.polygon],
        }
        if self.text.encode("utf-8", "surrogatepass") != self.raw:
            out["raw_hex"] = self.raw.hex().upper()
        if self.scan is not None and self.scan.is_gs1:
            out["gs1"] = self.scan.to_dict()
        if self.scan_error is not None:
            out["gs1_error"] = self.scan_error
        return out


# --- images ----------------------------------------------------------------------------------


def load_image(path: str | Path) -> GrayImage:
    """Read an image file (PNG, JPEG, WebP, ...) as 8-bit grayscale.

    Raises :class:`ImageError` when the file cannot be opened or is not a decodable image.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not data:
        raise ImageError(f"{path}: empty file")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        raise ImageError(f"{path}: not a decodable image: {exc}") from exc
    if img is None:
        raise ImageError(f"{path}: not a decodable image (corrupt or unknown format)")
    return np.asarray(img, dtype=np.uint8)


def to_gray(image: npt.NDArray[Any]) -> GrayImage:
    """An 8-bit grayscale view of ``image`` (gray, BGR or BGRA as OpenCV gives them).

    Raises :class:`ImageError` for other dtypes or shapes. A 0-sized image is returned as is.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        if image.size == 0:
            return np.zeros(image.shape[:2], dtype=np.uint8)
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)
    raise ImageError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def _upscale2x(gray: GrayImage) -> GrayImage:
    h, w = gray.shape
    return np.asarray(
        cv2.resize(gray, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC), dtype=np.uint8
    )


def _clahe(gray: GrayImage) -> GrayImage:
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    return np.asarray(clahe.apply(gray), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class _Step:
    scale: int
    """Linear factor of the step's output over its input (to map positions back)."""
    apply: Callable[[GrayImage], GrayImage]


STEPS: dict[str, _Step] = {
    "gray": _Step(1, lambda g: g),
    "upscale2x": _Step(2, _upscale2x),
    "upscale2x_clahe": _Step(2, lambda g: _clahe(_upscale2x(g))),
    "clahe": _Step(1, _clahe),
}
"""Preprocessing steps by name. ``clahe`` (native scale) is available but not default."""

DEFAULT_STEPS: tuple[str, ...] = ("gray", "upscale2x", "upscale2x_clahe")
DEFAULT_ENGINES: tuple[str, ...] = ("zxing-cpp", "pyzbar")


def preprocess(gray: GrayImage, step: str) -> GrayImage:
    """Apply the named step to a grayscale image (pure; raises KeyError for unknown names)."""
    return STEPS[step].apply(gray)


# --- engines ---------------------------------------------------------------------------------


class Engine(Protocol):
    """A barcode decoding engine: grayscale image in, symbols out."""

    name: str

    def decode(self, gray: GrayImage) -> list[EngineSymbol]: ...


class ZxingEngine:
    """zxing-cpp in Plain text mode, all formats, its own rotate/downscale/invert tries on."""

    name = "zxing-cpp"

    def __init__(self) -> None:
        try:
            import zxingcpp  # noqa: PLC0415 - optional engine, loaded when configured
        except ImportError as exc:
            raise EngineUnavailableError(f"zxing-cpp is not installed: {exc}") from exc
        self._zx = zxingcpp

    def decode(self, gray: GrayImage) -> list[EngineSymbol]:
        zx = self._zx
        results = zx.read_barcodes(gray, text_mode=zx.TextMode.Plain)
        out = []
        for r in results:
            pos = r.position
            corners = (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
            out.append(
                EngineSymbol(
                    symbology=str(r.format),
                    symbology_id=r.symbology_identifier or None,
                    text=r.text,
                    raw=r.bytes,
                    polygon=tuple((int(p.x), int(p.y)) for p in corners),
                )
            )
        return out


# pyzbar type -> (zxing-cpp style name, AIM identifier or None)
_ZBAR_TYPES: dict[str, tuple[str, str | None]] = {
    "EAN13": ("EAN-13", "]E0"),
    "ISBN13": ("EAN-13", "]E0"),
    "UPCA": ("UPC-A", "]E0"),
    "UPCE": ("UPC-E", "]E0"),
    "EAN8": ("EAN-8", "]E4"),
    "EAN5": ("EAN-5", "]E2"),
    "EAN2": ("EAN-2", "]E1"),
    "I25": ("ITF", "]I0"),
    "CODE39": ("Code 39", "]A0"),
    "CODE93": ("Code 93", "]G0"),
    "CODE128": ("Code 128", "]C0"),
    "CODABAR": ("Codabar", "]F0"),
    "DATABAR": ("DataBar", "]e0"),
    "DATABAR_EXP": ("DataBar Expanded", "]e0"),
    "QRCODE": ("QR Code", "]Q1"),
    "PDF417": ("PDF417", None),
    "ISBN10": ("ISBN-10", None),
    "SQCODE": ("SQ Code", None),
}
# Identifiers upgraded to their GS1 variant when the payload proves GS1.
_GS1_UPGRADE = {"]C0": "]C1", "]Q1": "]Q3"}


def pyzbar_identifier(zbar_type: str, text: str) -> tuple[str, str | None]:
    """Name and AIM identifier for a pyzbar result (see the module docstring).

    A Code 128 or QR Code is GS1 only when its text holds a GS separator and parses
    completely as GS1 element strings; otherwise the plain identifier is kept.
    """
    name, aim = _ZBAR_TYPES.get(zbar_type, (zbar_type, None))
    upgraded = _GS1_UPGRADE.get(aim or "")
    if upgraded is not None and GS in text:
        try:
            parse_scan(text, upgraded)
        except Gs1Error:
            return name, aim
        return name, upgraded
    return name, aim


class PyzbarEngine:
    """pyzbar over the system zbar library, all symbologies zbar enables by default."""

    name = "pyzbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar  # type: ignore[import-untyped]  # noqa: PLC0415
        except ImportError as exc:  # pyzbar raises ImportError when libzbar is missing
            raise EngineUnavailableError(
                f"pyzbar cannot be loaded (install the zbar library, Debian libzbar0 or "
                f"libzbar0t64): {exc}"
            ) from exc
        self._decode: Callable[[GrayImage], list[Any]] = pyzbar.decode

    def decode(self, gray: GrayImage) -> list[EngineSymbol]:
        out = []
        for r in self._decode(gray):
            raw = bytes(r.data)
            text = raw.decode("utf-8", errors="replace")
            name, aim = pyzbar_identifier(str(r.type), text)
            out.append(
                EngineSymbol(
                    symbology=name,
                    symbology_id=aim,
                    text=text,
                    raw=raw,
                    polygon=tuple((int(p.x), int(p.y)) for p in r.polygon),
                )
            )
        return out


_ENGINES: dict[str, Callable[[], Engine]] = {
    "zxing-cpp": ZxingEngine,
    "pyzbar": PyzbarEngine,
}


def make_engine(name: str) -> Engine:
    """Build the engine of that name; :class:`EngineUnavailableError` if it cannot load."""
    try:
        factory = _ENGINES[name]
    except KeyError:
        raise ConfigError(
            "barcode decoder", [("engines", f"unknown engine {name!r}; known: {sorted(_ENGINES)}")]
        ) from None
    return factory()


# --- the cascade -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    """Which engines and preprocessing steps, in which order."""

    engines: tuple[str, ...] = DEFAULT_ENGINES
    """Engines, tried in this order; each runs over all steps before the next one."""
    steps: tuple[str, ...] = DEFAULT_STEPS
    """Preprocessing steps (names in :data:`STEPS`), tried in this order per engine."""
    max_upscaled_pixels: int = 4_000_000
    """Steps that upscale are skipped when their output would have more pixels."""

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        if not self.engines:
            problems.append(("engines", "at least one engine is needed"))
        for name in self.engines:
            if name not in _ENGINES:
                problems.append(("engines", f"unknown engine {name!r}; known: {sorted(_ENGINES)}"))
        if len(set(self.engines)) != len(self.engines):
            problems.append(("engines", "an engine is listed twice"))
        if not self.steps:
            problems.append(("steps", "at least one step is needed"))
        for step in self.steps:
            if step not in STEPS:
                problems.append(("steps", f"unknown step {step!r}; known: {sorted(STEPS)}"))
        if len(set(self.steps)) != len(self.steps):
            problems.append(("steps", "a step is listed twice"))
        if self.max_upscaled_pixels < 1:
            problems.append(("max_upscaled_pixels", "must be positive"))
        if problems:
            raise ConfigError("barcode decoder", problems)


def _symbol(found: EngineSymbol, engine: str, step: str, scale: int) -> Symbol:
    polygon = found.polygon
    if scale != 1:
        polygon = tuple((x // scale, y // scale) for x, y in polygon)
    scan: ScanResult | None
    error: str | None = None
    try:
        scan = parse_scan(found.text, found.symbology_id)
    except Gs1Error as exc:
        scan, error = None, str(exc)
    return Symbol(
        symbology=found.symbology,
        symbology_id=found.symbology_id,
        text=found.text,
        raw=found.raw,
        polygon=polygon,
        engine=engine,
        step=step,
        scan=scan,
        scan_error=error,
    )


@dataclass
class BarcodeDecoder:
    """The decoding cascade over configured engines and steps, with contribution counters.

    Not thread-safe (counters); use one per frame loop.
    """

    config: DecoderConfig = field(default_factory=DecoderConfig)
    engines: Sequence[Engine] | None = None
    """Engine objects to use instead of building them from ``config.engines``."""
    counters: Counter[str] = field(default_factory=Counter, init=False)

    def __post_init__(self) -> None:
        if self.engines is None:
            self.engines = [make_engine(name) for name in self.config.engines]

    def decode(self, image: npt.NDArray[Any]) -> list[Symbol]:
        """Decode every symbol the cascade finds in ``image`` (gray, BGR or BGRA, uint8)."""
        gray = to_gray(image)
        self.counters["images"] += 1
        if gray.size == 0:
            return []
        found = self._cascade(gray)
        if found:
            self.counters["images_with_symbols"] += 1
            self.counters["symbols"] += len(found)
            self.counters[f"engine:{found[0].engine}"] += 1
            self.counters[f"step:{found[0].step}"] += 1
            self.counters[f"hit:{found[0].engine}/{found[0].step}"] += 1
        return found

    def decode_file(self, path: str | Path) -> list[Symbol]:
        """:func:`load_image` then :meth:`decode`."""
        return self.decode(load_image(path))

    def _cascade(self, gray: GrayImage) -> list[Symbol]:
        assert self.engines is not None  # noqa: S101 - set in __post_init__
        cache: dict[str, GrayImage] = {}
        pixels = gray.shape[0] * gray.shape[1]
        for engine in self.engines:
            for step_name in self.config.steps:
                step = STEPS[step_name]
                if step.scale > 1 and pixels * step.scale**2 > self.config.max_upscaled_pixels:
                    continue
                view = cache.get(step_name)
                if view is None:
                    view = cache[step_name] = step.apply(gray)
                try:
                    symbols = engine.decode(view)
                except (RuntimeError, ValueError, TypeError) as exc:
                    raise BarcodeError(f"{engine.name} failed on step {step_name}: {exc}") from exc
                if symbols:
                    logger.debug("%d symbol(s) by %s on %s", len(symbols), engine.name, step_name)
                    return [_symbol(s, engine.name, step_name, step.scale) for s in symbols]
        return []
