"""Barcode symbols for the synthetic camera: GS1 payloads, encoders and label rendering.

The simulator encodes on its own and never imports ``tagtrail.readers``: GS1 check digits,
element strings and the expected identity keys are computed here, independently of the
reader's GS1 module, so a test can compare the two.

Payloads in scenario files
--------------------------
- ``ean13``: 12 digits (check digit computed) or 13 digits (check digit verified).
  Decodes as ``]E0`` with 13 digits; identity ``gtin_quantity:<0 + 13 digits>:``.
- ``code128``: printable ASCII, e.g. a location label ``LOC-D7-03``. Decodes as ``]C0``;
  no GS1 identity (the reader reports symbology and raw text).
- ``gs1_128``, ``gs1_datamatrix``, ``gs1_qr``: a GS1 element string in bracketed AI
  notation, e.g. ``(01)09506000134352(10)AB12(21)X7``. Each symbol starts with FNC1 and
  has an FNC1 separator after every variable-length field but the last; a decoder in
  plain-text mode returns the AIs and values concatenated with ASCII GS (0x1D) for those
  separators. Symbology identifiers: ``]C1``, ``]d2``, ``]Q3``.

Identity keys (the event contract's ``identity_key``): AI (00) gives ``sscc:<18 digits>``;
(01) with (21) gives ``gtin_serial:<gtin14>:<serial>``; otherwise (01) or (02) gives
``gtin_quantity:<gtin14>:<batch (10) or empty>``; a GS1 string without those has none.

Encoders
--------
- 1D (EAN-13, Code 128, GS1-128): python-barcode's bar patterns (``Barcode.build()``, one
  character per module; ``Gs1_128`` prefixes FNC1 and maps ``\\xf1`` to FNC1, which we use
  for the separators). Rasterised here at an integer module size; no Pillow writer.
- DataMatrix (ECC 200, GS1 with FNC1 first): pyStrich's ``DataMatrixEncoder`` with
  ``DataMatrixData.gs1``.
- GS1 QR Code: pyStrich's QR encoder (matrix, Reed-Solomon, masking) fed a bit stream that
  starts with the FNC1-in-first-position mode indicator ``0101`` (ISO/IEC 18004 7.4.8.2),
  which pyStrich does not offer itself (:class:`_Gs1QrTextEncoder`). GS separators are sent
  as the byte 0x1D; a ``%`` is rejected in GS1 QR payloads because in FNC1 mode an
  alphanumeric-mode ``%`` means the separator.

None of these is zxing-cpp, which the decoding side uses: an encoder bug cannot cancel a
matching decoder bug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from barcode.codex import Code128, Gs1_128  # type: ignore[import-untyped]
from barcode.ean import EAN13  # type: ignore[import-untyped]
from pystrich.datamatrix import DataMatrixData, DataMatrixEncoder
from pystrich.gs1 import GS1Fixed, GS1Variable
from pystrich.qrcode import QRCodeData
from pystrich.qrcode.dpencoder import encode_high_level
from pystrich.qrcode.isodata import MAX_DATA_BITS
from pystrich.qrcode.modes import bracket_for_version
from pystrich.qrcode.textencoder import TextEncoder

GS = "\x1d"
"""ASCII group separator: how a decoder in plain-text mode shows an FNC1 separator."""

Symbology = Literal["ean13", "code128", "gs1_128", "gs1_datamatrix", "gs1_qr"]
SYMBOLOGIES: tuple[Symbology, ...] = ("ean13", "code128", "gs1_128", "gs1_datamatrix", "gs1_qr")
SYMBOLOGY_IDS: dict[Symbology, str] = {
    "ean13": "]E0",
    "code128": "]C0",
    "gs1_128": "]C1",
    "gs1_datamatrix": "]d2",
    "gs1_qr": "]Q3",
}
"""ISO/IEC 15424 symbology identifier a decoder reports for each symbology we render."""

GS1_SYMBOLOGIES: frozenset[Symbology] = frozenset({"gs1_128", "gs1_datamatrix", "gs1_qr"})
LINEAR: frozenset[Symbology] = frozenset({"ean13", "code128", "gs1_128"})

GS1_128_MAX_DATA = 48
"""GS1-128 holds at most 48 data characters (AIs, values and separators, no leading FNC1)."""


class PayloadError(ValueError):
    """A label payload cannot be encoded, or is not what its symbology needs."""


# -- GS1 ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AiSpec:
    """One GS1 Application Identifier we can encode: its value's length and format."""

    min_len: int
    max_len: int
    numeric: bool
    check_digit: bool = False
    date: bool = False

    @property
    def fixed(self) -> bool:
        return self.min_len == self.max_len


AI_SPECS: dict[str, AiSpec] = {
    "00": AiSpec(18, 18, numeric=True, check_digit=True),  # SSCC
    "01": AiSpec(14, 14, numeric=True, check_digit=True),  # GTIN
    "02": AiSpec(14, 14, numeric=True, check_digit=True),  # GTIN of contained items
    "10": AiSpec(1, 20, numeric=False),  # batch/lot
    "11": AiSpec(6, 6, numeric=True, date=True),  # production date
    "13": AiSpec(6, 6, numeric=True, date=True),  # packaging date
    "15": AiSpec(6, 6, numeric=True, date=True),  # best before
    "17": AiSpec(6, 6, numeric=True, date=True),  # expiry
    "21": AiSpec(1, 20, numeric=False),  # serial
    "30": AiSpec(1, 8, numeric=True),  # variable count
    "37": AiSpec(1, 8, numeric=True),  # count of trade items
    "400": AiSpec(1, 30, numeric=False),  # customer's purchase order
    "410": AiSpec(13, 13, numeric=True, check_digit=True),  # ship to GLN
    "414": AiSpec(13, 13, numeric=True, check_digit=True),  # location GLN
}
"""The AIs scenario payloads may use (a subset of the GS1 General Specifications 3.2)."""

_GS1_CHARSET_82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+$")
_BRACKETED = re.compile(r"\((\d{2,4})\)([^()]*)")


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit for ``digits`` (all digits but the check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class Gs1Element:
    """One AI and its value."""

    ai: str
    value: str


def _element_problem(ai: str, value: str) -> str | None:
    spec = AI_SPECS.get(ai)
    if spec is None:
        return f"AI ({ai}) is not supported here (known: {', '.join(AI_SPECS)})"
    if not spec.min_len <= len(value) <= spec.max_len:
        span = str(spec.max_len) if spec.fixed else f"{spec.min_len}-{spec.max_len}"
        return f"AI ({ai}) needs {span} characters, got {len(value)}"
    if spec.numeric and not (value.isascii() and value.isdigit()):
        return f"AI ({ai}) needs digits, got {value!r}"
    if not _GS1_CHARSET_82.match(value):
        return f"AI ({ai}) value {value!r} has characters outside GS1's character set 82"
    if spec.check_digit and gs1_check_digit(value[:-1]) != value[-1]:
        return f"AI ({ai}) {value}: wrong check digit, expected {gs1_check_digit(value[:-1])}"
    if spec.date:
        month, day = int(value[2:4]), int(value[4:6])
        if not 1 <= month <= 12 or day > 31:
            return f"AI ({ai}) {value}: not a YYMMDD date"
    return None


def parse_bracketed(text: str, *, check: bool = True) -> list[Gs1Element]:
    """``(01)0950...(21)X7`` as elements. Raises :class:`PayloadError`.

    With ``check=False`` a wrong check digit or date passes (for labels that are meant to
    be invalid); unknown AIs, lengths and characters are still refused, since those could
    not be encoded unambiguously.
    """
    pos = 0
    elements: list[Gs1Element] = []
    for match in _BRACKETED.finditer(text):
        if match.start() != pos:
            raise PayloadError(f"expected '(AI)' at position {pos} of {text!r}")
        elements.append(Gs1Element(match.group(1), match.group(2)))
        pos = match.end()
    if pos != len(text) or not elements:
        raise PayloadError(f"not a bracketed GS1 element string: {text!r}")
    for element in elements:
        problem = _element_problem(element.ai, element.value)
        if problem is None:
            continue
        spec = AI_SPECS.get(element.ai)
        soft = spec is not None and ("check digit" in problem or "date" in problem)
        if check or not soft:
            raise PayloadError(problem)
    seen = [e.ai for e in elements]
    if len(set(seen)) != len(seen):
        raise PayloadError(f"an AI appears twice in {text!r}")
    return elements


def element_string(elements: list[Gs1Element], separator: str = GS) -> str:
    """AIs and values concatenated, ``separator`` after each variable-length field but the
    last (what a decoder returns in plain-text mode with ``separator`` = GS)."""
    parts: list[str] = []
    for i, element in enumerate(elements):
        parts.append(element.ai + element.value)
        if not AI_SPECS[element.ai].fixed and i < len(elements) - 1:
            parts.append(separator)
    return "".join(parts)


def gs1_identity_key(elements: list[Gs1Element]) -> str | None:
    """The event contract's item key for these elements, or ``None`` if they name none."""
    values = {e.ai: e.value for e in elements}
    if "00" in values:
        return f"sscc:{values['00']}"
    if "01" in values and "21" in values:
        return f"gtin_serial:{values['01']}:{values['21']}"
    gtin = values.get("01") or values.get("02")
    if gtin is None:
        return None
    return f"gtin_quantity:{gtin}:{values.get('10', '')}"


# -- what a label decodes to ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    """What a correct decoder reports for a label."""

    symbology_id: str
    text: str
    """Decoded text in plain mode (GS1 separators as GS)."""
    key: str | None
    """Identity key, ``None`` for non-GS1 codes and for labels meant to be invalid."""
    hri: str
    """Human-readable interpretation printed under the bars."""


def _ean13_digits(payload: str) -> str:
    if not (payload.isascii() and payload.isdigit()) or len(payload) not in (12, 13):
        raise PayloadError(f"EAN-13 needs 12 or 13 digits, got {payload!r}")
    check = gs1_check_digit(payload[:12])
    if len(payload) == 13 and payload[12] != check:
        raise PayloadError(f"EAN-13 {payload}: wrong check digit, expected {check}")
    return payload[:12] + check


def expected_of(symbology: Symbology, payload: str, *, valid: bool = True) -> Expected:
    """What a decoder should report for ``payload``. Raises :class:`PayloadError`.

    ``valid=False`` marks a label meant to be rejected (a wrong GS1 check digit or date):
    it must then actually be wrong, and its key is ``None``.
    """
    sid = SYMBOLOGY_IDS[symbology]
    if symbology == "ean13":
        if not valid:
            raise PayloadError("an EAN-13 cannot carry a wrong check digit (the encoder adds it)")
        digits = _ean13_digits(payload)
        return Expected(sid, digits, f"gtin_quantity:0{digits}:", digits)
    if symbology == "code128":
        if not valid:
            raise PayloadError("only GS1 labels can be meant to be invalid")
        if not payload or not all(" " <= c <= "~" for c in payload):
            raise PayloadError(f"Code 128 payload must be printable ASCII, got {payload!r}")
        return Expected(sid, payload, None, payload)
    elements = parse_bracketed(payload, check=valid)
    if not valid:
        try:
            parse_bracketed(payload, check=True)
        except PayloadError:
            pass
        else:
            raise PayloadError(f"{payload!r} is valid GS1 but the label is marked invalid")
    text = element_string(elements)
    if symbology == "gs1_128" and len(text) > GS1_128_MAX_DATA:
        raise PayloadError(f"GS1-128 holds at most {GS1_128_MAX_DATA} characters: {payload!r}")
    if symbology == "gs1_qr" and "%" in text:
        raise PayloadError("a GS1 QR payload here must not contain '%'")
    key = gs1_identity_key(elements) if valid else None
    hri = "".join(f"({e.ai}){e.value}" for e in elements)
    return Expected(sid, text, key, hri)


# -- encoders -------------------------------------------------------------------------------

Modules = npt.NDArray[np.bool_]
"""A symbol's module grid including its quiet zone: True is dark. 1D symbols have one row."""


class _Gs1QrTextEncoder(TextEncoder):
    """pyStrich's QR text encoder with the FNC1-in-first-position mode indicator in front."""

    def encode_text(self, data: QRCodeData) -> None:
        text, charset = data.as_plain_text()
        payload = text.encode(charset)
        for version in range(1, 41):
            max_bits = MAX_DATA_BITS[version - 1 + 40 * self.ecl]
            stream = encode_high_level(
                payload, version_bracket=bracket_for_version(version), eci=None
            )
            bits = [0, 1, 0, 1, *stream]
            if len(bits) <= max_bits:
                break
        else:
            raise PayloadError(f"GS1 QR payload too long: {text!r}")
        bits += [0] * min(4, max_bits - len(bits))  # terminator
        bits += [0] * (-len(bits) % 8)
        self.version = version
        self.max_data_codewords = max_bits // 8
        self.codewords = [
            int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)
        ]


QR_QUIET = 4
DM_QUIET = 2
LINEAR_QUIET = 11


def _as_modules(matrix: list[list[int | None]] | list[list[int]]) -> Modules:
    return np.array([[bool(c) for c in row] for row in matrix], dtype=np.bool_)


def encode_modules(symbology: Symbology, payload: str, *, valid: bool = True) -> Modules:
    """The module grid (quiet zone included) of ``payload``. Raises :class:`PayloadError`."""
    expected = expected_of(symbology, payload, valid=valid)
    try:
        if symbology in LINEAR:
            if symbology == "ean13":
                pattern = EAN13(expected.text[:12]).build()[0]
            elif symbology == "code128":
                pattern = Code128(payload).build()[0]
            else:
                pattern = Gs1_128(element_string(parse_bracketed(payload, check=valid), "\xf1"))
                pattern = pattern.build()[0]
            row = np.array([c == "1" for c in pattern], dtype=np.bool_)
            quiet = np.zeros(LINEAR_QUIET, dtype=np.bool_)
            return np.concatenate([quiet, row, quiet])[np.newaxis, :]
        elements = parse_bracketed(payload, check=valid)
        if symbology == "gs1_datamatrix":
            fields = [
                GS1Fixed(e.ai, e.value) if AI_SPECS[e.ai].fixed else GS1Variable(e.ai, e.value)
                for e in elements
            ]
            encoder = DataMatrixEncoder(DataMatrixData.gs1(*fields), quiet_zone=DM_QUIET)
            return _as_modules(encoder.init_renderer().matrix)
        qr = _Gs1QrTextEncoder()
        matrix = qr.encode(QRCodeData(expected.text, encoding="ascii"), "M")
        grid = _as_modules(matrix)
        return np.pad(grid, QR_QUIET, constant_values=False)
    except PayloadError:
        raise
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise PayloadError(f"cannot encode {payload!r} as {symbology}: {exc}") from exc


# -- rasterising ----------------------------------------------------------------------------

Gray = npt.NDArray[np.uint8]

DARK = 20
LIGHT = 245


@dataclass(frozen=True, slots=True)
class RenderedSymbol:
    """A symbol as a grey image (white quiet zone included)."""

    image: Gray
    module_px: int
    modules_wide: int
    symbology: Symbology


def rasterise(
    modules: Modules, module_px: int, *, bar_height_modules: int = 50, hri: str | None = None
) -> Gray:
    """Modules to a grey image, ``module_px`` pixels per module; linear symbols get
    ``bar_height_modules`` of bar height and, with ``hri``, the text under the bars."""
    if module_px < 1:
        raise PayloadError("module size must be at least 1 pixel")
    grid = modules
    if grid.shape[0] == 1:
        grid = np.repeat(grid, bar_height_modules, axis=0)
        grid = np.pad(grid, ((3, 3), (0, 0)), constant_values=False)
    image = np.where(grid, np.uint8(DARK), np.uint8(LIGHT)).astype(np.uint8)
    image = np.repeat(np.repeat(image, module_px, axis=0), module_px, axis=1)
    if hri and modules.shape[0] == 1:
        image = np.vstack([image, _text_strip(hri, image.shape[1], module_px)])
    return image


def _text_strip(text: str, width: int, module_px: int) -> Gray:
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, module_px // 2)
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min((width * 0.9) / max(tw, 1), (module_px * 8) / max(th, 1))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    strip = np.full((th + base + 2 * module_px, width), LIGHT, dtype=np.uint8)
    origin = ((width - tw) // 2, th + module_px)
    cv2.putText(strip, text, origin, font, scale, DARK, thickness, cv2.LINE_AA)
    return strip


def render_symbol(
    symbology: Symbology,
    payload: str,
    module_px: int,
    *,
    valid: bool = True,
    hri: bool = True,
    bar_height_modules: int = 50,
) -> RenderedSymbol:
    """A clean image of one symbol with a known module size. Raises :class:`PayloadError`."""
    modules = encode_modules(symbology, payload, valid=valid)
    text = expected_of(symbology, payload, valid=valid).hri if hri else None
    image = rasterise(modules, module_px, bar_height_modules=bar_height_modules, hri=text)
    return RenderedSymbol(image, module_px, int(modules.shape[1]), symbology)


def render_label(symbol: RenderedSymbol, title: str | None = None) -> Gray:
    """A white label card around ``symbol``: margin, thin border and an optional title."""
    m = symbol.module_px
    body = symbol.image
    if title:
        body = np.vstack([_text_strip(title, body.shape[1], max(1, m // 2 + 1)), body])
    pad = 3 * m
    card = np.pad(body, pad, constant_values=LIGHT)
    card[:m, :] = 90
    card[-m:, :] = 90
    card[:, :m] = 90
    card[:, -m:] = 90
    return card
