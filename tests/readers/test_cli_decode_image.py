"""``tagtrail decode --image FILE...``: one JSON object per symbol, exit 1 for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from click.testing import CliRunner

from tagtrail.cli import main
from tagtrail.readers.cli import decode_command
from tests.readers.test_barcodes import modules, render


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(decode_command, list(args))
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def write(path: Path, image: np.ndarray[Any, Any]) -> str:
    assert cv2.imwrite(str(path), image)
    return str(path)


def test_gs1_128_sscc_label(tmp_path: Path) -> None:
    label = write(tmp_path / "pallet.png", render(modules("gs1_128", "00106141411234567897")))
    code, records, _ = run("--image", label)
    assert code == 0
    (record,) = records
    assert record["file"] == label
    assert record["symbology"] == "Code 128"
    assert record["symbology_id"] == "]C1"
    assert record["text"] == "00106141411234567897"
    assert record["engine"] == "zxing-cpp"
    assert record["step"] == "gray"
    assert len(record["position"]) == 4
    assert record["gs1"]["is_gs1"] is True
    assert record["gs1"]["elements"] == {"00": "106141411234567897"}
    assert record["gs1"]["identity"] == {"scheme": "sscc", "sscc": "106141411234567897"}


def test_several_files_one_line_per_symbol_and_plain_code(tmp_path: Path) -> None:
    ean = write(tmp_path / "case.webp", render(modules("ean13", "590123412345")))
    loc = write(tmp_path / "loc.jpg", render(modules("code128", "LOC-A12")))
    code, records, _ = run("--image", ean, loc)
    assert code == 0
    assert [(r["file"], r["symbology"], r["symbology_id"], r["text"]) for r in records] == [
        (ean, "EAN-13", "]E0", "5901234123457"),
        (loc, "Code 128", "]C0", "LOC-A12"),
    ]
    assert records[0]["gs1"]["identity"] == {
        "scheme": "gtin_quantity",
        "gtin": "05901234123457",
        "quantity": 1,
        "batch": None,
    }
    assert "gs1" not in records[1]  # not GS1: symbology and raw text only


def test_group_separator_is_escaped_in_json(tmp_path: Path) -> None:
    data = "0109506000134352" + "10ABC123\xf1" + "17261231"
    path = write(tmp_path / "item.png", render(modules("gs1_128", data)))
    code, records, _ = run("--image", path)
    assert code == 0
    (record,) = records
    assert record["text"] == "010950600013435210ABC123\x1d17261231"
    assert record["gs1"]["elements"] == {"01": "09506000134352", "10": "ABC123", "17": "261231"}
    assert record["gs1"]["expiry"] == "2026-12-31"


def test_unreadable_file_exits_1_but_decodes_the_others(tmp_path: Path) -> None:
    good = write(tmp_path / "good.png", render(modules("ean8", "9638507")))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(Path(good).read_bytes()[:50])
    absent = str(tmp_path / "absent.png")
    code, records, err = run("--image", str(corrupt), good, absent)
    assert code == 1
    assert [r["text"] for r in records] == ["96385074"]
    assert f"{corrupt}: not a decodable image" in err
    assert f"{absent}: cannot read" in err


def test_image_without_barcode_is_not_an_error(tmp_path: Path) -> None:
    blank = write(tmp_path / "blank.png", np.full((120, 160), 255, dtype=np.uint8))
    code, records, err = run("--image", blank)
    assert code == 0
    assert records == []
    assert "no barcode found" in err


def test_engine_choice(tmp_path: Path) -> None:
    path = write(tmp_path / "ean.png", render(modules("ean13", "590123412345")))
    code, records, _ = run("--image", "--engine", "pyzbar", path)
    assert code == 0
    assert [(r["engine"], r["symbology_id"]) for r in records] == [("pyzbar", "]E0")]
    code, _, err = run("--engine", "pyzbar", "A0 04 01 74 10 D7")
    assert code == 2
    assert "--image" in err


def test_wired_into_tagtrail_main(tmp_path: Path) -> None:
    path = write(tmp_path / "ean.png", render(modules("ean13", "590123412345")))
    result = CliRunner().invoke(main, ["decode", "--image", path])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["text"] == "5901234123457"
    assert CliRunner().invoke(main, ["decode", "--image"]).exit_code == 2
