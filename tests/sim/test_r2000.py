"""The simulator's R2000 encoder and command parser against the shared checked frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.sim import r2000
from tests.sim.helpers import command, frame_ok, split_frames

H = bytes.fromhex


def test_checked_host_commands_are_encoded_byte_for_byte() -> None:
    assert r2000.encode_frame(1, 0x89, b"\x01") == H("A0 04 01 89 01 D1")
    assert r2000.encode_frame(1, 0x72) == H("A0 03 01 72 EA")
    assert r2000.encode_frame(1, 0x74, b"\x00") == H("A0 04 01 74 00 E7")
    assert r2000.encode_frame(1, 0x8B, b"\x01\x00\x01") == H("A0 06 01 8B 01 00 01 CC")


def test_checked_replies_are_encoded_byte_for_byte() -> None:
    assert r2000.encode_frame(1, r2000.CMD_GET_FIRMWARE, bytes([1, 9])) == H("A0 05 01 72 01 09 DE")
    assert r2000.result_frame(1, r2000.CMD_SET_WORK_ANTENNA, r2000.SUCCESS) == H(
        "A0 04 01 74 10 D7"
    )


def test_checked_tag_frame_is_encoded_byte_for_byte() -> None:
    epc = H("E2 00 30 16 66 13 01 21 15 50 74 EF")
    frame = r2000.tag_frame(
        1,
        r2000.CMD_REAL_TIME_INVENTORY,
        freq_index=1,
        antenna_index=0,
        pc=r2000.pc_word(len(epc)),
        epc=epc,
        rssi_dbm=-60,
    )
    assert frame == H("A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF")


def test_field_encodings() -> None:
    assert r2000.pc_word(12) == 0x3000
    assert r2000.pc_word(16) == 0x4000
    assert r2000.rssi_raw(-60) == 0x45
    assert r2000.rssi_raw(-500) == 1
    assert r2000.rssi_raw(10) == 127
    assert r2000.freq_ant(1, 0) == 0x04
    assert r2000.freq_ant(49, 3) == (49 << 2) | 3
    with pytest.raises(ProtocolError):
        r2000.freq_ant(64, 0)
    with pytest.raises(ProtocolError):
        r2000.pc_word(3)
    with pytest.raises(ProtocolError):
        r2000.encode_frame(1, 0x89, bytes(253))


def test_end_of_round_and_error_frames() -> None:
    frame = r2000.end_of_round_frame(
        1, r2000.CMD_REAL_TIME_INVENTORY, antenna_index=2, read_rate=0x0102, total_reads=0x0A0B0C
    )
    assert frame_ok(frame)
    assert frame[1] == 0x0A
    assert frame[4:11] == bytes([2, 0x01, 0x02, 0x00, 0x0A, 0x0B, 0x0C])
    no_tag = r2000.result_frame(1, r2000.CMD_REAL_TIME_INVENTORY, r2000.NO_TAG)
    assert no_tag[:5] == H("A0 04 01 89 36")
    assert frame_ok(no_tag)


def test_parser_reads_the_checked_commands() -> None:
    parser = r2000.CommandParser()
    stream = H("A0 04 01 89 01 D1 A0 03 01 72 EA A0 04 01 74 00 E7 A0 06 01 8B 01 00 01 CC")
    cmds = parser.feed(stream)
    assert [(c.address, c.cmd, c.data) for c in cmds] == [
        (1, 0x89, b"\x01"),
        (1, 0x72, b""),
        (1, 0x74, b"\x00"),
        (1, 0x8B, b"\x01\x00\x01"),
    ]
    assert parser.errors == {}
    assert parser.pending == 0


def test_parser_skips_bad_checksums_and_junk_and_resynchronises() -> None:
    parser = r2000.CommandParser()
    bad = H("A0 03 01 72 EB")
    cmds = parser.feed(b"\x00\x55" + bad + H("A0 02") + H("A0 03 01 72 EA"))
    assert [c.cmd for c in cmds] == [0x72]
    assert parser.errors["bad_checksum"] == 1
    assert parser.errors["bad_length"] == 1
    assert parser.errors["junk_bytes"] >= 2


def test_parser_waits_for_the_rest_of_a_split_frame() -> None:
    parser = r2000.CommandParser()
    assert parser.feed(H("A0 04 01")) == []
    assert parser.pending == 3
    cmds = parser.feed(H("89 01 D1"))
    assert [(c.cmd, c.data) for c in cmds] == [(0x89, b"\x01")]


frames = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20)),
    min_size=1,
    max_size=8,
)


@given(frames, st.data())
def test_parser_round_trips_any_frames_in_any_chunks(
    spec: list[tuple[int, int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(r2000.encode_frame(a, c, d) for a, c, d in spec)
    for a, c, d in spec:
        frame = r2000.encode_frame(a, c, d)
        assert sum(frame) & 0xFF == 0
        assert frame[1] == len(frame) - 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = r2000.CommandParser()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got += parser.feed(stream[prev:cut])
        prev = cut
    assert [(c.address, c.cmd, c.data) for c in got] == spec


@given(st.binary(max_size=200))
def test_parser_never_fails_on_garbage_and_finds_a_frame_after_it(garbage: bytes) -> None:
    parser = r2000.CommandParser()
    parser.feed(garbage)
    # A header in the garbage may swallow up to 256 following bytes (and, rarely, pass
    # the checksum); the parser is aligned again after that, so the rest get through.
    got = parser.feed(command(0x72) * 60)
    assert len(got) >= 60 - 257 // 5 - 1
    assert (got[-1].address, got[-1].cmd, got[-1].data) == (1, 0x72, b"")


def test_helper_splitter_agrees_with_encoder() -> None:
    stream = r2000.encode_frame(1, 0x72, b"\x01\x09") + r2000.result_frame(1, 0x74, 0x10)
    frames_, rest = split_frames(stream)
    assert len(frames_) == 2
    assert rest == b""


VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "r2000"


def _reencode(record: dict[str, Any]) -> bytes | None:
    """The simulator's encoding of one shared-vector record, or None if it cannot send it."""
    kind = record["type"]
    if kind == "invalid":
        return None
    address, cmd = record["address"], int(record["command"], 16)
    if kind == "tag":
        if not 1 <= record["rssi_raw"] <= 127:
            return None  # the simulator clamps RSSI to 1-127
        epc = bytes.fromhex(record["epc"])
        assert int(record["pc"], 16) == r2000.pc_word(len(epc))
        return r2000.tag_frame(
            address,
            cmd,
            freq_index=record["freq_index"],
            antenna_index=record["antenna"] - 1,
            pc=r2000.pc_word(len(epc)),
            epc=epc,
            rssi_dbm=record["rssi_dbm"],
        )
    if kind == "round_end":
        return r2000.end_of_round_frame(
            address,
            cmd,
            antenna_index=record["antenna"] - 1,
            read_rate=record["read_rate"],
            total_reads=record["total_reads"],
        )
    if kind == "result":
        return r2000.result_frame(address, cmd, int(record["code"], 16))
    if kind == "reply":
        return r2000.encode_frame(address, cmd, bytes.fromhex(record["data"]))
    return None


def test_encoder_reproduces_every_clean_frame_of_the_shared_vectors() -> None:
    if not VECTORS.is_dir():
        pytest.fail(f"shared R2000 vectors missing at {VECTORS}")
    compared = 0
    for path in sorted(VECTORS.glob("*.json")):
        records = json.loads(path.read_text())
        lines = [line for line in path.with_suffix(".hex").read_text().splitlines() if line.strip()]
        assert len(lines) == len(records), path.name
        for line, record in zip(lines, records, strict=True):
            raw = bytes.fromhex(line)
            if not frame_ok(raw):
                continue  # garbage, truncated or bad-checksum lines
            expected = _reencode(record)
            if expected is None:
                continue
            assert expected == raw, f"{path.name}: {record}"
            compared += 1
    assert compared >= 90


def test_parser_reads_the_shared_checked_commands() -> None:
    stream = bytes.fromhex((VECTORS / "checked_commands.hex").read_text())
    parser = r2000.CommandParser()
    cmds = parser.feed(stream)
    assert [c.cmd for c in cmds] == [0x89, 0x72, 0x74, 0x8B, 0x70]
    assert parser.errors == {}
