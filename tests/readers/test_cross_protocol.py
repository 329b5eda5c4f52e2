"""No false positives across protocols: each decoder over every other protocol's vectors
(and their concatenation) finds no tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagtrail.readers.registry import PROTOCOLS

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _foreign_streams(protocol: str) -> list[tuple[str, bytes]]:
    out = []
    for hex_file in sorted(VECTORS.glob("*/*.hex")):
        if hex_file.parent.name != protocol:
            out.append(
                (f"{hex_file.parent.name}/{hex_file.stem}", bytes.fromhex(hex_file.read_text()))
            )
    return out


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_decoder_finds_no_tag_in_other_protocols_bytes(protocol: str) -> None:
    info = PROTOCOLS[protocol]
    streams = _foreign_streams(protocol)
    if len(PROTOCOLS) > 1:
        assert streams, "other protocols have vectors"
    found = []
    for name, data in streams:
        tags = [t for t in map(info.tags_of, info.decode_stream(data)) if t is not None]
        if tags:
            found.append((name, tags))
    assert found == []
    joined = b"".join(data for _, data in streams)
    assert [t for t in map(info.tags_of, info.decode_stream(joined)) if t is not None] == []


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_own_vectors_do_hold_tags(protocol: str) -> None:
    """The check above means something: each protocol finds tags in its own vectors."""
    info = PROTOCOLS[protocol]
    own = b"".join(bytes.fromhex(p.read_text()) for p in sorted((VECTORS / protocol).glob("*.hex")))
    assert any(info.tags_of(r) is not None for r in info.decode_stream(own))
