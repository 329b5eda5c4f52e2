"""The simulator's Mercury encoder and command parser against the checked frames, a real
transport log, the shared vectors and the host-side decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import mercury as decoder
from tagtrail.sim import mercury

H = bytes.fromhex
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "mercury"


def test_checked_host_commands_are_encoded_byte_for_byte() -> None:
    assert mercury.encode_command(mercury.OP_VERSION) == H("FF 00 03 1D 0C")
    assert mercury.encode_command(mercury.OP_BOOT_FIRMWARE) == H("FF 00 04 1D 0B")
    assert mercury.encode_command(mercury.OP_SET_REGION, b"\x02") == H("FF 01 97 02 4B BF")
    assert mercury.encode_command(mercury.OP_MULTI_PROTOCOL_TAG_OP, H("00 00 02")) == H(
        "FF 03 2F 00 00 02 5E 86"
    )


def test_nibble_table_is_the_multiples_of_the_polynomial() -> None:
    assert mercury.NIBBLE_TABLE[:4] == (0x0000, 0x1021, 0x2042, 0x3063)
    assert mercury.NIBBLE_TABLE[15] == 0xF1EF


# Module responses from SparkFun's public M6e Nano transport log.
CAPTURED_TAGS = [
    (
        "FF 28 22 00 00 10 00 1B 01 FF 01 01 C4 11 0E 16 40 00 00 01 27 00 00 05 00 00 0F 00"
        " 80 30 00 00 00 00 00 00 00 00 00 00 00 15 45 E9 4A 56 1D",
        {"rssi_dbm": -60, "frequency_khz": 923200, "timestamp_ms": 295},
        "000000000000000000001545",
    ),
    (
        "FF 20 22 00 00 10 00 1B 01 FF 01 01 C7 11 0E 08 30 00 00 00 0F 00 00 05 00 00 0F 00"
        " 40 10 00 59 6F 59 6F F3 13 89 90",
        {"rssi_dbm": -57, "frequency_khz": 919600, "timestamp_ms": 15},
        "596F596F",
    ),
    (
        "FF 28 22 00 00 10 00 1B 01 FF 01 01 C9 11 0E 08 30 00 00 00 13 00 00 05 00 00 0F 00"
        " 80 30 00 E2 00 10 26 76 0E 01 79 15 90 71 25 19 85 57 97",
        {"rssi_dbm": -55, "frequency_khz": 919600, "timestamp_ms": 19},
        "E2001026760E017915907125",
    ),
]


@pytest.mark.parametrize(("frame", "fields", "epc"), CAPTURED_TAGS)
def test_captured_tag_records_are_encoded_byte_for_byte(
    frame: str, fields: dict[str, Any], epc: str
) -> None:
    # the module computed the tag CRC (Gen2) and the frame CRC; the simulator must agree
    assert mercury.tag_record(H(epc), gpio=0x0F, **fields) == H(frame)


def test_captured_status_and_acknowledgements() -> None:
    assert mercury.keep_alive() == H("FF 00 22 04 00 84 E0")
    assert mercury.reading_started() == H("FF 04 2F 00 00 01 22 00 00 6D C3")
    assert mercury.reading_stopped() == H("FF 01 2F 00 00 02 30 E6")
    assert mercury.encode_response(mercury.OP_SET_REGION) == H("FF 00 97 00 00 77 9E")
    assert mercury.version_reply() == H(
        "FF 14 03 00 00 14 12 08 00 30 00 00 02 20 15 03 10 01 03 01 47 00 00 00 10 EB FF"
    )


def test_encoder_arguments() -> None:
    assert mercury.pc_for(H("E200")) == 0x0800
    assert mercury.pc_for(bytes(62)) == 0xF800
    for bad in (b"", b"\x01", bytes(64)):
        with pytest.raises(ProtocolError):
            mercury.pc_for(bad)
    with pytest.raises(ProtocolError):
        mercury.tag_record(H("E200"), antenna=17)
    with pytest.raises(ProtocolError):
        mercury.tag_record(H("E200"), metadata_flags=0x0200)
    with pytest.raises(ProtocolError):
        mercury.tag_record(H("E200"), metadata_flags=0x0080, data=b"\x01", data_bits=9)
    with pytest.raises(ProtocolError):
        mercury.encode_response(0x22, 0x10000)
    with pytest.raises(ProtocolError):
        mercury.encode_command(0x03, bytes(256))
    with pytest.raises(ProtocolError):
        mercury.version_reply(firmware=b"\x01")
    # RSSI clamps to a signed byte; port 16 is nibble 0
    frame = mercury.tag_record(H("E200"), metadata_flags=0x0006, rssi_dbm=-300, antenna=16)
    assert frame[11:13] == H("80 00")


def test_temperature_throttle_frame() -> None:
    frame = mercury.temperature_throttle()
    assert frame[:5] == H("FF 00 22 05 04")
    assert decoder.decode_frame(frame) == decoder.TemperatureThrottle(0x22, b"")


# --- command parser ----------------------------------------------------------------------


def test_parser_reads_the_checked_and_captured_commands() -> None:
    stream = H(
        "FF 00 03 1D 0C FF 00 04 1D 0B FF 01 97 02 4B BF FF 03 2F 00 00 02 5E 86"
        " FF 10 2F 00 00 01 22 00 00 05 07 22 10 00 1B 03 E8 01 FF DD 2B FF 03 91 02 01 01 42 C5"
    )
    parser = mercury.CommandParser()
    cmds = parser.feed(stream)
    assert [(c.opcode, c.data.hex()) for c in cmds] == [
        (0x03, ""),
        (0x04, ""),
        (0x97, "02"),
        (0x2F, "000002"),
        (0x2F, "00000122000005072210001b03e801ff"),
        (0x91, "020101"),
    ]
    assert parser.errors == {}
    assert parser.pending == 0
    assert mercury.is_stop_reading(cmds[3])
    assert mercury.parse_start_reading(cmds[3].data) is None
    assert mercury.parse_start_reading(cmds[4].data) == mercury.StartReading(
        metadata_flags=0x01FF, on_time_ms=1000, search_flags=0x001B, protocol=0x05
    )


def test_parser_understands_the_drivers_start_command() -> None:
    frame = decoder.cmd_start_continuous_read(0x0017, 250)
    [cmd] = mercury.CommandParser().feed(frame)
    assert mercury.parse_start_reading(cmd.data) == mercury.StartReading(0x0017, 250, 0x001B, 5)
    with pytest.raises(ProtocolError):
        mercury.parse_start_reading(H("00 00 01 21 00 00 05"))
    with pytest.raises(ProtocolError):
        mercury.parse_start_reading(H("00 00 01 22 00 00 05 07 22 00 00 1B 03 E8 01 FF"))


def test_parser_skips_bad_crcs_and_junk_and_resynchronises() -> None:
    parser = mercury.CommandParser()
    bad = H("FF 00 03 1D 0D")
    cmds = parser.feed(b"\x00\x55" + bad + H("FF 00 03 1D 0C"))
    assert [c.opcode for c in cmds] == [0x03]
    assert parser.errors["bad_crc"] == 1
    assert parser.errors["junk_bytes"] >= 2


def test_parser_waits_for_the_rest_of_a_split_frame() -> None:
    parser = mercury.CommandParser()
    assert parser.feed(H("FF 01 97")) == []
    assert parser.pending == 3
    assert [(c.opcode, c.data) for c in parser.feed(H("02 4B BF"))] == [(0x97, b"\x02")]


def test_wake_up_preamble_does_not_hold_up_the_command() -> None:
    parser = mercury.CommandParser()
    cmds = parser.feed(b"\xff" * 16 + H("FF 00 03 1D 0C"))
    assert [c.opcode for c in cmds] == [0x03]
    assert parser.pending == 0


commands = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=30)), min_size=1, max_size=8)


@given(commands, st.data())
def test_parser_round_trips_any_frames_in_any_chunks(
    spec: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(decoder.encode_command(op, d) for op, d in spec)
    assert stream == b"".join(mercury.encode_command(op, d) for op, d in spec)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = mercury.CommandParser()
    got: list[mercury.Command] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got += parser.feed(stream[prev:cut])
        prev = cut
    assert [(c.opcode, c.data) for c in got] == spec


# --- shared vectors ----------------------------------------------------------------------


def _reencode(record: dict[str, Any]) -> bytes | None:
    """The simulator's encoding of one shared-vector record, or None if it cannot send it."""
    kind = record["type"]
    if kind == "invalid":
        return None
    if kind == "tag":
        flags = int(record["metadata_flags"], 16)
        kwargs: dict[str, Any] = {
            "metadata_flags": flags,
            "option": int(record["option"], 16),
            "search_flags": int(record["search_flags"], 16),
            "xpc": bytes.fromhex(record["xpc"]),
        }
        for name in ("read_count", "rssi_dbm", "antenna", "rx_antenna", "frequency_khz"):
            if record[name] is not None:
                kwargs[name] = record[name]
        for name in ("timestamp_ms", "phase", "protocol", "data_bits", "gpio"):
            if record[name] is not None:
                kwargs[name] = record[name]
        if record["data"] is not None:
            kwargs["data"] = bytes.fromhex(record["data"])
        if record["pc"] is not None:
            kwargs["pc"] = int(record["pc"], 16)
        if record["tag_crc"] is not None:
            kwargs["tag_crc"] = int(record["tag_crc"], 16)
        return mercury.tag_record(bytes.fromhex(record["epc"]), **kwargs)
    op = int(record["opcode"], 16)
    data = bytes.fromhex(record["data"])
    if kind == "keep_alive":
        return mercury.encode_response(op, mercury.STATUS_NO_TAGS_FOUND, data)
    if kind == "temperature_throttle":
        return mercury.encode_response(op, mercury.STATUS_TEMPERATURE, data)
    if kind == "error":
        return mercury.encode_response(op, int(record["status"], 16), data)
    if kind == "reply":
        return mercury.encode_response(op, mercury.STATUS_OK, data)
    return None


def test_encoder_reproduces_every_clean_frame_of_the_shared_vectors() -> None:
    if not VECTORS.is_dir():
        pytest.fail(f"shared Mercury vectors missing at {VECTORS}")
    compared = 0
    for path in sorted(VECTORS.glob("*.json")):
        records = json.loads(path.read_text())
        lines = [line for line in path.with_suffix(".hex").read_text().splitlines() if line]
        if len(lines) != len(records):
            continue  # failure vectors: lines and records do not pair up
        for line, record in zip(lines, records, strict=True):
            expected = _reencode(record)
            if expected is not None:
                assert expected == bytes.fromhex(line), f"{path.name}: {record}"
                compared += 1
    assert compared >= 90


# --- agreement with the host-side decoder ------------------------------------------------


@st.composite
def tag_fields(draw: st.DrawFn) -> dict[str, Any]:
    words = draw(st.integers(1, 31))
    return {
        "epc": draw(st.binary(min_size=2 * words, max_size=2 * words)),
        "metadata_flags": draw(st.integers(0, 0x01FF)),
        "read_count": draw(st.integers(0, 255)),
        "rssi_dbm": draw(st.integers(-128, 127)),
        "antenna": draw(st.integers(1, 16)),
        "rx_antenna": draw(st.integers(1, 16)),
        "frequency_khz": draw(st.integers(860000, 960000)),
        "timestamp_ms": draw(st.integers(0, 0xFFFFFFFF)),
        "phase": draw(st.integers(0, 180)),
        "data": draw(st.binary(max_size=16)),
        "gpio": draw(st.integers(0, 15)),
    }


@settings(max_examples=300)
@given(st.lists(tag_fields(), min_size=1, max_size=6), st.integers(1, 64))
def test_decoder_reads_what_the_simulator_sends(fields: list[dict[str, Any]], chunk: int) -> None:
    stream = b"".join(
        mercury.tag_record(f["epc"], **{k: v for k, v in f.items() if k != "epc"})
        + mercury.keep_alive()
        for f in fields
    )
    dec = decoder.StreamDecoder()
    out: list[decoder.Decoded] = []
    for i in range(0, len(stream), chunk):
        out += dec.feed(stream[i : i + chunk])
    out += dec.flush()
    assert dec.counters["ok"] == 2 * len(fields)
    tags = out[0::2]
    assert out[1::2] == [decoder.KeepAlive(0x22, b"")] * len(fields)
    for f, rec in zip(fields, tags, strict=True):
        assert isinstance(rec, decoder.TagRead)
        flags = f["metadata_flags"]

        def want(name: str, bit: int, fields_: dict[str, Any] = f, flags_: int = flags) -> Any:
            return fields_[name] if flags_ & bit else None

        assert rec.epc == f["epc"].hex().upper()
        assert rec.pc == len(f["epc"]) // 2 << 11
        assert rec.tag_crc_ok is True
        assert rec.read_count == want("read_count", 0x0001)
        assert rec.rssi_dbm == want("rssi_dbm", 0x0002)
        assert rec.antenna == want("antenna", 0x0004)
        assert rec.rx_antenna == want("rx_antenna", 0x0004)
        assert rec.frequency_khz == want("frequency_khz", 0x0008)
        assert rec.timestamp_ms == want("timestamp_ms", 0x0010)
        assert rec.phase == want("phase", 0x0020)
        assert rec.protocol == (5 if flags & 0x0040 else None)
        assert rec.data == want("data", 0x0080)
        assert rec.gpio == want("gpio", 0x0100)
        assert decoder.tag_of(rec) == decoder.PROTOCOL.tags_of(rec)
