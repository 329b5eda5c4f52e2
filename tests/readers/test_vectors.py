"""Every ``tests/vectors/<protocol>/*.hex`` stream decodes to its ``.json`` records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tagtrail.readers.protocols import r2000

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _r2000(data: bytes, chunk: int) -> list[dict[str, Any]]:
    dec = r2000.StreamDecoder()
    records: list[r2000.Decoded] = []
    for i in range(0, len(data), chunk):
        records += dec.feed(data[i : i + chunk])
    records += dec.flush()
    return [r2000.record_to_dict(r) for r in records]


DECODERS: dict[str, Callable[[bytes, int], list[dict[str, Any]]]] = {"r2000": _r2000}

CASES = sorted(VECTORS.glob("*/*.hex"))


@pytest.mark.parametrize("hex_file", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_vector(hex_file: Path) -> None:
    data = bytes.fromhex(hex_file.read_text(encoding="utf-8"))
    expected = json.loads(hex_file.with_suffix(".json").read_text(encoding="utf-8"))
    assert hex_file.parent.name in DECODERS, f"no decoder mapped for {hex_file.parent.name}"
    decode = DECODERS[hex_file.parent.name]
    assert decode(data, len(data) or 1) == expected
    # the result must not depend on how the bytes arrive
    assert decode(data, 1) == expected
    assert decode(data, 7) == expected
