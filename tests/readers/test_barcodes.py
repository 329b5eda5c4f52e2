"""Image barcode decoding: engines, the cascade, GS1 on top, bad input.

Symbols are rendered in the test from python-barcode's module patterns (``build()``:
one character per module, ``1`` a bar), so no image library beyond numpy is needed.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from tagtrail.errors import ConfigError, TagtrailError
from tagtrail.events import GtinQuantityIdentity, SsccIdentity
from tagtrail.readers.barcodes import (
    STEPS,
    BarcodeDecoder,
    DecoderConfig,
    EngineSymbol,
    ImageError,
    PyzbarEngine,
    ZxingEngine,
    load_image,
    pyzbar_identifier,
    to_gray,
)
from tagtrail.readers.gs1 import GS
from tests.support.services import missing

Image = npt.NDArray[np.uint8]


def python_barcode() -> ModuleType:
    try:
        import barcode  # type: ignore[import-untyped]
    except ImportError:
        missing("python-barcode is not installed (pip install python-barcode)")
    module: ModuleType = barcode
    return module


def modules(kind: str, data: str, **options: Any) -> str:
    """The bar/space module pattern python-barcode builds for ``data``."""
    symbol = python_barcode().get_barcode_class(kind)(data, **options)
    pattern: str = symbol.build()[0]
    return pattern


def render(pattern: str, px: int = 3, height: int = 80, quiet: int = 12) -> Image:
    """A clean grayscale picture of a 1D pattern: ``px`` pixels per module, white margins."""
    row = np.array([0 if c == "1" else 255 for c in "0" * quiet + pattern + "0" * quiet])
    row = np.repeat(row.astype(np.uint8), px)
    img = np.full((height + 40, row.size), 255, dtype=np.uint8)
    img[20 : 20 + height] = row
    return img


def degrade(img: Image, factor: float, blur: float) -> Image:
    """Squeeze horizontally (modules become fractional pixels) and blur, like a far camera."""
    small = cv2.resize(img, None, fx=factor, fy=1.0, interpolation=cv2.INTER_AREA)
    if blur:
        small = cv2.GaussianBlur(small, (0, 0), blur)
    return np.asarray(small, dtype=np.uint8)


@pytest.fixture(scope="module")
def decoder() -> BarcodeDecoder:
    return BarcodeDecoder()


@pytest.fixture(scope="module")
def zxing() -> ZxingEngine:
    return ZxingEngine()


@pytest.fixture(scope="module")
def pyzbar() -> PyzbarEngine:
    return PyzbarEngine()


# --- engines ---------------------------------------------------------------------------------


def test_ean13_both_engines(zxing: ZxingEngine, pyzbar: PyzbarEngine) -> None:
    img = render(modules("ean13", "590123412345"))
    for engine in (zxing, pyzbar):
        found = engine.decode(img)
        assert [(s.symbology, s.symbology_id, s.text) for s in found] == [
            ("EAN-13", "]E0", "5901234123457")
        ], engine.name
        (symbol,) = found
        assert symbol.raw == b"5901234123457"
        xs = [x for x, _ in symbol.polygon]
        assert len(symbol.polygon) >= (4 if engine is zxing else 3)
        assert 0 <= min(xs) < max(xs) <= img.shape[1]


def test_upca_arrives_as_ean13_with_leading_zero(
    zxing: ZxingEngine, pyzbar: PyzbarEngine, decoder: BarcodeDecoder
) -> None:
    img = render(modules("upca", "03600029145"))
    for engine in (zxing, pyzbar):
        assert [(s.symbology, s.text) for s in engine.decode(img)] == [
            ("EAN-13", "0036000291452")
        ], engine.name
    (symbol,) = decoder.decode(img)
    assert symbol.scan is not None
    assert symbol.is_gs1
    assert symbol.scan.identity == GtinQuantityIdentity(
        scheme="gtin_quantity", gtin="00036000291452", quantity=1
    )


def test_code39_check_character_of_python_barcode(zxing: ZxingEngine) -> None:
    # python-barcode appends a mod-43 check character unless told not to; it is data
    # to a reader that does not verify it, so synthetic tests must expect it.
    with_check = zxing.decode(render(modules("code39", "ABC-123")))
    without = zxing.decode(render(modules("code39", "ABC-123", add_checksum=False)))
    assert [s.text for s in with_check] == ["ABC-123W"]
    assert [s.text for s in without] == ["ABC-123"]
    assert all(s.symbology == "Code 39" for s in with_check + without)


def test_gs1_128_sscc_through_zxing(decoder: BarcodeDecoder) -> None:
    img = render(modules("gs1_128", "00106141411234567897"))
    (symbol,) = decoder.decode(img)
    assert (symbol.engine, symbol.step) == ("zxing-cpp", "gray")
    assert symbol.symbology_id == "]C1"
    assert symbol.text == "00106141411234567897"
    assert symbol.scan is not None
    assert symbol.scan.elements == {"00": "106141411234567897"}
    assert symbol.scan.identity == SsccIdentity(scheme="sscc", sscc="106141411234567897")
    record = symbol.to_dict()
    assert record["gs1"]["identity"] == {"scheme": "sscc", "sscc": "106141411234567897"}


def test_gs1_128_with_separator_keeps_gs_in_plain_text(decoder: BarcodeDecoder) -> None:
    data = "0109506000134352" + "10ABC123\xf1" + "17261231"  # \xf1: FNC1 for python-barcode
    (symbol,) = decoder.decode(render(modules("gs1_128", data)))
    assert symbol.symbology_id == "]C1"
    assert symbol.text == f"010950600013435210ABC123{GS}17261231"
    assert symbol.scan is not None
    assert symbol.scan.elements == {"01": "09506000134352", "10": "ABC123", "17": "261231"}
    assert symbol.scan.identity == GtinQuantityIdentity(
        scheme="gtin_quantity", gtin="09506000134352", quantity=1, batch="ABC123"
    )


def test_gs1_128_bad_check_digit_gives_reason_not_identity(decoder: BarcodeDecoder) -> None:
    (symbol,) = decoder.decode(render(modules("gs1_128", "00106141411234567890")))
    assert symbol.symbology_id == "]C1"
    assert symbol.scan is None
    assert symbol.scan_error is not None
    assert "check digit" in symbol.scan_error.lower()
    assert symbol.to_dict()["gs1_error"] == symbol.scan_error


def test_pyzbar_cannot_tell_single_field_gs1_128(pyzbar: PyzbarEngine) -> None:
    # zbar drops the leading FNC1: a bare SSCC label looks like plain Code 128.
    (sscc,) = pyzbar.decode(render(modules("gs1_128", "00106141411234567897")))
    assert (sscc.symbology, sscc.symbology_id) == ("Code 128", "]C0")
    # A GS between fields, and a payload that parses completely, proves GS1.
    data = "0109506000134352" + "10ABC123\xf1" + "17261231"
    (multi,) = pyzbar.decode(render(modules("gs1_128", data)))
    assert (multi.symbology, multi.symbology_id) == ("Code 128", "]C1")
    # A plain location label stays plain.
    (plain,) = pyzbar.decode(render(modules("code128", "LOC-A12")))
    assert (plain.symbology_id, plain.text) == ("]C0", "LOC-A12")


def test_pyzbar_identifier_rules() -> None:
    assert pyzbar_identifier("CODE128", f"0109506000134352{GS}10X") == ("Code 128", "]C1")
    # a wrong GTIN check digit, or no GS at all, leaves it plain
    assert pyzbar_identifier("CODE128", f"0109506000134353{GS}10X") == ("Code 128", "]C0")
    assert pyzbar_identifier("CODE128", "00106141411234567897") == ("Code 128", "]C0")
    assert pyzbar_identifier("CODE128", f"10ABC{GS}17261231") == ("Code 128", "]C1")
    assert pyzbar_identifier("CODE128", f"10ABC{GS}17261331") == ("Code 128", "]C0")
    assert pyzbar_identifier("QRCODE", f"10ABC{GS}17261231") == ("QR Code", "]Q3")
    assert pyzbar_identifier("QRCODE", "https://example.com") == ("QR Code", "]Q1")
    assert pyzbar_identifier("EAN8", "96385074") == ("EAN-8", "]E4")
    assert pyzbar_identifier("I25", "01234567890123") == ("ITF", "]I0")
    assert pyzbar_identifier("DATABAR_EXP", "0100012345678905") == ("DataBar Expanded", "]e0")
    assert pyzbar_identifier("PDF417", "x") == ("PDF417", None)
    assert pyzbar_identifier("SOMETHING_NEW", "x") == ("SOMETHING_NEW", None)


# --- the cascade -----------------------------------------------------------------------------


def test_upscale_step_reads_what_plain_zxing_misses() -> None:
    # 2 px modules squeezed to 1.5 px: zxing-cpp alone cannot place the edges.
    img = degrade(render(modules("ean13", "590123412345"), px=2), factor=0.75, blur=0.5)
    assert BarcodeDecoder(DecoderConfig(engines=("zxing-cpp",), steps=("gray",))).decode(img) == []
    cascade = BarcodeDecoder()
    (symbol,) = cascade.decode(img)
    assert symbol.text == "5901234123457"
    assert (symbol.engine, symbol.step) == ("zxing-cpp", "upscale2x")
    # positions are mapped back to the caller's image
    assert all(0 <= x <= img.shape[1] and 0 <= y <= img.shape[0] for x, y in symbol.polygon)
    assert cascade.counters == {
        "images": 1,
        "images_with_symbols": 1,
        "symbols": 1,
        "engine:zxing-cpp": 1,
        "step:upscale2x": 1,
        "hit:zxing-cpp/upscale2x": 1,
    }


def test_pyzbar_contributes_where_zxing_finds_nothing() -> None:
    img = degrade(render(modules("ean13", "590123412345"), px=2), factor=0.9, blur=1.0)
    zx_only = BarcodeDecoder(DecoderConfig(engines=("zxing-cpp",)))
    assert zx_only.decode(img) == []
    cascade = BarcodeDecoder()
    (symbol,) = cascade.decode(img)
    assert (symbol.engine, symbol.text) == ("pyzbar", "5901234123457")
    assert cascade.counters["engine:pyzbar"] == 1
    assert cascade.counters["engine:zxing-cpp"] == 0


def test_engine_order_is_configurable() -> None:
    img = render(modules("ean8", "9638507"))
    (first,) = BarcodeDecoder(DecoderConfig(engines=("pyzbar", "zxing-cpp"))).decode(img)
    assert (first.engine, first.symbology, first.symbology_id) == ("pyzbar", "EAN-8", "]E4")
    (only,) = BarcodeDecoder(DecoderConfig(engines=("zxing-cpp",))).decode(img)
    assert only.engine == "zxing-cpp"


def test_several_symbols_in_one_image_and_colour_input(decoder: BarcodeDecoder) -> None:
    a = render(modules("ean13", "590123412345"))
    b = render(modules("code128", "LOC-A12"))
    canvas = np.full((a.shape[0] + b.shape[0] + 40, max(a.shape[1], b.shape[1])), 255, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[a.shape[0] + 40 :, : b.shape[1]] = b
    bgr = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    found = decoder.decode(bgr)
    assert sorted((s.symbology, s.text) for s in found) == [
        ("Code 128", "LOC-A12"),
        ("EAN-13", "5901234123457"),
    ]
    loc = next(s for s in found if s.symbology == "Code 128")
    assert loc.scan is not None
    assert not loc.is_gs1
    assert "gs1" not in loc.to_dict()


def test_config_rejects_unknown_and_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'zbarx'"):
        DecoderConfig(engines=("zbarx",))
    with pytest.raises(ConfigError, match="unknown step 'sharpen'"):
        DecoderConfig(steps=("gray", "sharpen"))
    with pytest.raises(ConfigError, match="listed twice"):
        DecoderConfig(engines=("pyzbar", "pyzbar"))
    with pytest.raises(ConfigError, match="at least one"):
        DecoderConfig(steps=())


def test_large_images_skip_upscaling() -> None:
    seen: list[tuple[int, ...]] = []

    class Recorder:
        name = "recorder"

        def decode(self, gray: Image) -> list[EngineSymbol]:
            seen.append(gray.shape)
            return []

    small_cap = DecoderConfig(max_upscaled_pixels=100 * 100)
    capped = BarcodeDecoder(small_cap, engines=[Recorder()])
    assert capped.decode(np.zeros((80, 80), np.uint8)) == []
    assert seen == [(80, 80)]  # the 2x steps would exceed 10,000 pixels
    seen.clear()
    BarcodeDecoder(engines=[Recorder()]).decode(np.zeros((80, 80), np.uint8))
    assert seen == [(80, 80), (160, 160), (160, 160)]
    assert set(STEPS) >= {"gray", "upscale2x", "upscale2x_clahe"}


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(0, 0), (0, 640), (0, 0, 3), (480, 0, 3)], ids=["0x0", "0xW", "0x0x3", "Hx0x3"]
)
def test_empty_frame_gives_no_symbols(decoder: BarcodeDecoder, shape: tuple[int, ...]) -> None:
    assert decoder.decode(np.zeros(shape, dtype=np.uint8)) == []


@pytest.mark.parametrize("value", [0, 255])
def test_blank_frames_give_no_symbols(value: int) -> None:
    cascade = BarcodeDecoder()
    for shape in [(720, 1280), (720, 1280, 3), (1, 1), (3, 2)]:
        assert cascade.decode(np.full(shape, value, dtype=np.uint8)) == []
    assert cascade.counters["images"] == 4
    assert cascade.counters["images_with_symbols"] == 0


def test_wrong_arrays_raise_typed_error(decoder: BarcodeDecoder) -> None:
    with pytest.raises(ImageError, match="8-bit"):
        decoder.decode(np.zeros((10, 10), dtype=np.float32))
    with pytest.raises(ImageError, match="shape"):
        decoder.decode(np.zeros((10, 10, 2), dtype=np.uint8))
    with pytest.raises(ImageError, match="numpy array"):
        to_gray([[0, 1]])  # type: ignore[arg-type]


def test_corrupt_missing_and_empty_files(tmp_path: Path, decoder: BarcodeDecoder) -> None:
    good = tmp_path / "ok.png"
    assert cv2.imwrite(str(good), render(modules("ean13", "590123412345")))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])  # header survives, data cut off
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all" * 10)
    empty = tmp_path / "empty.webp"
    empty.write_bytes(b"")
    for path, reason in [
        (corrupt, "not a decodable image"),
        (garbage, "not a decodable image"),
        (empty, "empty file"),
        (tmp_path / "absent.png", "cannot read"),
        (tmp_path, "cannot read"),
    ]:
        with pytest.raises(ImageError, match=reason) as info:
            decoder.decode_file(path)
        assert isinstance(info.value, TagtrailError)
    assert [s.text for s in decoder.decode_file(good)] == ["5901234123457"]
    assert load_image(good).ndim == 2
