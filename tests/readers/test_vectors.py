"""Every ``tests/vectors/<protocol>/*.hex`` stream decodes to its ``.json`` records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tagtrail.readers.registry import PROTOCOLS

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def decode_chunked(protocol: str, data: bytes, chunk: int) -> list[dict[str, Any]]:
    """Decode with the protocol's stream decoder, fed ``chunk`` bytes at a time."""
    info = PROTOCOLS[protocol]
    dec = info.new_decoder()
    records: list[Any] = []
    for i in range(0, len(data), chunk):
        records += dec.feed(data[i : i + chunk])
    records += dec.flush()
    return [info.record_to_dict(r) for r in records]


CASES = sorted(VECTORS.glob("*/*.hex"))


@pytest.mark.parametrize("hex_file", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_vector(hex_file: Path) -> None:
    data = bytes.fromhex(hex_file.read_text(encoding="utf-8"))
    expected = json.loads(hex_file.with_suffix(".json").read_text(encoding="utf-8"))
    protocol = hex_file.parent.name
    assert protocol in PROTOCOLS, f"no protocol registered for {protocol}"
    assert decode_chunked(protocol, data, len(data) or 1) == expected
    # the result must not depend on how the bytes arrive
    assert decode_chunked(protocol, data, 1) == expected
    assert decode_chunked(protocol, data, 7) == expected


def test_every_protocol_has_vectors() -> None:
    assert {p.parent.name for p in CASES} == set(PROTOCOLS)
