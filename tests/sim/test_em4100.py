"""The simulator's EM4100 encoder: checked frames byte for byte, the shared vectors, and
agreement with the host-side decoder on random cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import em4100 as decoder
from tagtrail.sim import em4100

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "em4100"


def test_checked_frame_is_encoded_byte_for_byte() -> None:
    assert em4100.tag_frame("67003B51C6") == bytes.fromhex(
        "02 36 37 30 30 33 42 35 31 43 36 43 42 03"
    )
    assert em4100.tag_frame("67003B51C6", crlf=True) == bytes.fromhex(
        "02 36 37 30 30 33 42 35 31 43 36 43 42 0D 0A 03"
    )
    assert em4100.card_frame(0x67, 3887558) == b"\x0267003B51C6CB\x03"


def test_datasheet_examples_are_encoded_byte_for_byte() -> None:
    # RDM630 specification: 62E3086CED -> checksum 08
    assert em4100.tag_frame("62E3086CED") == b"\x0262E3086CED08\x03"
    # ID-12/ID-20 datasheet: output 0C000621A58E, with CR LF before ETX
    assert em4100.tag_frame("0C000621A5", crlf=True) == b"\x020C000621A58E\r\n\x03"
    # a card printed 0013530444 with version byte 3C
    assert em4100.card_frame(0x3C, 13530444) == b"\x023C00CE754CCB\x03"


def test_lower_case_input_is_sent_upper_case() -> None:
    assert em4100.tag_frame("67003b51c6") == b"\x0267003B51C6CB\x03"
    assert em4100.check_digits("67003b51c6") == "CB"


@pytest.mark.parametrize(
    "call",
    [
        lambda: em4100.tag_frame("67003B51C"),
        lambda: em4100.tag_frame("67003B51C6CB"),
        lambda: em4100.tag_frame("67003B51G6"),
        lambda: em4100.tag_frame("67003B51 6"),
        lambda: em4100.code_text(256, 0),
        lambda: em4100.code_text(-1, 0),
        lambda: em4100.code_text(0, 2**32),
        lambda: em4100.code_text(True, 0),
        lambda: em4100.card_frame(0, -1),
        lambda: em4100.presence_frames("67003B51C6", -0.1),
    ],
)
def test_bad_arguments_raise_protocol_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(ProtocolError):
        call()


def test_presence_repeats_every_interval() -> None:
    frame = em4100.tag_frame("0F0012AB34")
    assert em4100.presence_frames("0F0012AB34", 0.0) == [frame]
    # 0.5 s at one frame per 50 ms: the first at once, then ten more
    assert em4100.presence_frames("0F0012AB34", 0.5) == [frame] * 11
    assert (
        em4100.presence_frames("0F0012AB34", 0.149, crlf=True)
        == [em4100.tag_frame("0F0012AB34", crlf=True)] * 3
    )


def test_encoder_reproduces_every_good_frame_of_the_shared_vectors() -> None:
    if not VECTORS.is_dir():
        pytest.fail(f"shared EM4100 vectors missing at {VECTORS}")
    compared = 0
    for path in sorted(VECTORS.glob("*.json")):
        records = json.loads(path.read_text())
        lines = [line for line in path.with_suffix(".hex").read_text().splitlines() if line]
        assert len(lines) == len(records), path.name
        for line, record in zip(lines, records, strict=True):
            if record["type"] != "tag":
                continue
            raw = bytes.fromhex(line)
            assert em4100.tag_frame(record["code"], crlf=record["crlf"]) == raw, path.name
            assert em4100.card_frame(record["version"], record["card"], crlf=record["crlf"]) == raw
            assert em4100.check_digits(record["code"]) == record["checksum"]
            compared += 1
    assert compared >= 40


cards = st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1), st.booleans())


@given(cards)
def test_decoder_agrees_with_simulator_on_random_cards(card: tuple[int, int, bool]) -> None:
    version, number, crlf = card
    frame = em4100.card_frame(version, number, crlf=crlf)
    rec = decoder.decode_frame(frame)
    assert isinstance(rec, decoder.TagRecord)
    assert (rec.version, rec.card, rec.crlf) == (version, number, crlf)
    assert rec.code == em4100.code_text(version, number)
    assert f"{rec.checksum:02X}" == em4100.check_digits(rec.code)


@given(st.lists(cards, min_size=1, max_size=20), st.data())
def test_decoder_reads_a_simulated_line_in_any_chunks(
    spec: list[tuple[int, int, bool]], data: st.DataObject
) -> None:
    stream = b"".join(em4100.card_frame(v, n, crlf=c) for v, n, c in spec)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    dec = decoder.StreamDecoder()
    got: list[decoder.Decoded] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got += dec.feed(stream[prev:cut])
        prev = cut
    got += dec.flush()
    assert [(r.version, r.card, r.crlf) for r in got if isinstance(r, decoder.TagRecord)] == spec
    assert len(got) == len(spec)
    assert dec.counters["ok"] == len(spec)
