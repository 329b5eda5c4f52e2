"""The simulator's M100 encoder and command parser against the checked frames and the decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import m100 as driver
from tagtrail.readers.protocols.base import TagView
from tagtrail.sim import m100

H = bytes.fromhex
NOTICE = H("BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E")
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "m100"


def frame_ok(frame: bytes) -> bool:
    """A complete frame with good length, tail and check (this test's own reading)."""
    return (
        len(frame) >= 7
        and frame[0] == 0xBB
        and frame[1] <= 2
        and frame[3] * 256 + frame[4] + 7 == len(frame)
        and frame[-1] == 0x7E
        and sum(frame[1:-2]) % 256 == frame[-2]
    )


def test_checked_frames_are_encoded_byte_for_byte() -> None:
    assert m100.encode_frame(m100.COMMAND, m100.CMD_SINGLE_POLL) == H("BB 00 22 00 00 22 7E")
    assert m100.encode_frame(m100.COMMAND, m100.CMD_STOP) == H("BB 00 28 00 00 28 7E")
    epc = H("30 75 1F EB 70 5C 59 04 E3 D5 0D 70")
    assert m100.tag_notice(epc=epc, rssi_dbm=-55, pc=0x3400) == NOTICE


def test_published_replies_are_encoded_byte_for_byte() -> None:
    assert m100.error_frame(m100.NO_TAG) == H("BB 01 FF 00 01 15 16 7E")
    assert m100.error_frame(0x09) == H("BB 01 FF 00 01 09 0A 7E")
    assert m100.error_frame(m100.COMMAND_ERROR) == H("BB 01 FF 00 01 17 18 7E")
    assert m100.status_frame(m100.CMD_STOP) == H("BB 01 28 00 01 00 2A 7E")
    assert m100.status_frame(m100.CMD_SET_REGION) == H("BB 01 07 00 01 00 09 7E")
    assert m100.status_frame(m100.CMD_SET_POWER) == H("BB 01 B6 00 01 00 B8 7E")
    assert m100.module_info_frame(2, "MagicRf") == H("BB 01 03 00 08 02 4D 61 67 69 63 52 66 A7 7E")
    assert m100.module_info_frame(0, "M100 26dBm V1.0") == H(
        "BB 01 03 00 10 00 4D 31 30 30 20 32 36 64 42 6D 20 56 31 2E 30 92 7E"
    )
    assert m100.region_frame(0x01) == H("BB 01 08 00 01 01 0B 7E")
    assert m100.power_frame(2600) == H("BB 01 B7 00 02 0A 28 EC 7E")
    # two more published notices (plain PC 3000 and UMI PC 3400)
    assert m100.tag_notice(epc=H("340833B2DDD9014000000000"), rssi_dbm=-61) == H(
        "BB 02 22 00 11 C3 30 00 34 08 33 B2 DD D9 01 40 00 00 00 00 34 6F E3 7E"
    )
    assert m100.tag_notice(epc=H("E28011704000021D35AE4008"), rssi_dbm=-42, pc=0x3400) == H(
        "BB 02 22 00 11 D6 34 00 E2 80 11 70 40 00 02 1D 35 AE 40 08 D4 44 C4 7E"
    )


def test_field_encodings() -> None:
    assert m100.pc_word(12) == 0x3000
    assert m100.pc_word(62) == 0xF800
    assert m100.rssi_byte(-55) == 0xC9
    assert m100.rssi_byte(-500) == 0x80
    assert m100.rssi_byte(300) == 0x7F
    assert m100.rssi_byte(0) == 0x00
    assert m100.epc_crc(b"123456789") == 0xD64E  # the catalogued CRC-16/GENIBUS check
    assert m100.power_frame(-5)[5:7] == b"\x00\x00"
    with pytest.raises(ProtocolError):
        m100.pc_word(3)
    with pytest.raises(ProtocolError):
        m100.pc_word(64)
    with pytest.raises(ProtocolError):
        m100.encode_frame(3, 0x22)
    with pytest.raises(ProtocolError):
        m100.encode_frame(0, 0x22, bytes(0x10000))
    with pytest.raises(ProtocolError):
        m100.tag_notice(epc=b"\x00\x01", rssi_dbm=-50, pc=0x10000)


def test_parser_reads_the_drivers_commands() -> None:
    parser = m100.CommandParser()
    stream = (
        driver.cmd_module_info(0)
        + driver.cmd_set_region(0x03)
        + driver.cmd_set_tx_power(2600)
        + driver.cmd_single_poll()
        + driver.cmd_multiple_poll(10000)
        + driver.cmd_stop_multiple_poll()
        + driver.cmd_get_tx_power()
    )
    cmds = parser.feed(stream)
    assert [(c.cmd, c.data) for c in cmds] == [
        (m100.CMD_MODULE_INFO, b"\x00"),
        (m100.CMD_SET_REGION, b"\x03"),
        (m100.CMD_SET_POWER, H("0A28")),
        (m100.CMD_SINGLE_POLL, b""),
        (m100.CMD_MULTIPLE_POLL, H("222710")),
        (m100.CMD_STOP, b""),
        (m100.CMD_GET_POWER, b""),
    ]
    assert cmds[4].poll_count == 10000
    assert cmds[3].poll_count is None
    assert parser.errors == {}
    assert parser.pending == 0


def test_parser_skips_bad_frames_and_junk_and_resynchronises() -> None:
    parser = m100.CommandParser()
    bad_check = H("BB 00 22 00 00 23 7E")
    bad_tail = H("BB 00 22 00 00 22 7F")
    not_command = m100.status_frame(m100.CMD_STOP)
    too_long = H("BB 00 22 7F 00")
    cmds = parser.feed(
        b"\x00\x55" + bad_check + bad_tail + not_command + too_long + H("BB 00 28 00 00 28 7E")
    )
    assert [c.cmd for c in cmds] == [m100.CMD_STOP]
    assert parser.errors["bad_checksum"] == 1
    assert parser.errors["bad_tail"] == 1
    assert parser.errors["not_a_command"] == 2
    assert parser.errors["junk_bytes"] >= 2


def test_parser_waits_for_the_rest_of_a_split_frame() -> None:
    parser = m100.CommandParser()
    assert parser.feed(H("BB 00 27 00")) == []
    assert parser.pending == 4
    assert parser.feed(H("03 22 00")) == []
    cmds = parser.feed(H("64 B0 7E"))
    assert [(c.cmd, c.poll_count) for c in cmds] == [(m100.CMD_MULTIPLE_POLL, 100)]


commands = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=30)), min_size=1, max_size=8)


@given(commands, st.data())
def test_parser_round_trips_any_commands_in_any_chunks(
    spec: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(m100.encode_frame(m100.COMMAND, c, d) for c, d in spec)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = m100.CommandParser()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got += parser.feed(stream[prev:cut])
        prev = cut
    assert [(c.cmd, c.data) for c in got] == spec
    # the driver's decoder reads the same frames as commands
    assert [driver.record_to_dict(r) for r in driver.decode_stream(stream)] == [
        {"type": "command", "command": f"0x{c:02X}", "data": d.hex().upper()} for c, d in spec
    ]


@given(st.binary(max_size=200))
def test_parser_never_fails_on_garbage_and_finds_commands_after_it(garbage: bytes) -> None:
    parser = m100.CommandParser()
    parser.feed(garbage)
    # A header in the garbage may hold up to 1031 following bytes before it is rejected
    # (and, rarely, pass the checks); the parser is aligned again after that.
    got = parser.feed(m100.encode_frame(m100.COMMAND, m100.CMD_SINGLE_POLL) * 200)
    assert len(got) >= 200 - 1031 // 7 - 1
    assert (got[-1].cmd, got[-1].data) == (m100.CMD_SINGLE_POLL, b"")


@given(
    words=st.integers(1, 31),
    data=st.data(),
    rssi=st.integers(-128, 127),
    flags=st.integers(0, 0x7FF),
)
def test_decoder_and_simulator_agree_on_random_tags(
    words: int, data: st.DataObject, rssi: int, flags: int
) -> None:
    epc = data.draw(st.binary(min_size=2 * words, max_size=2 * words))
    pc = m100.pc_word(len(epc)) | flags
    frame = m100.tag_notice(epc=epc, rssi_dbm=rssi, pc=pc)
    assert frame_ok(frame)
    [rec] = driver.decode_stream(b"\x00" + frame)[1:]
    assert isinstance(rec, driver.TagNotice)
    assert (rec.epc, rec.rssi_dbm, rec.pc, rec.crc_ok) == (epc.hex().upper(), rssi, pc, True)
    assert rec.crc == m100.epc_crc(pc.to_bytes(2, "big") + epc)
    assert driver.tag_of(rec) == TagView(epc.hex().upper(), 1, float(rssi))


@given(code=st.integers(0, 255), extra=st.binary(max_size=10), status=st.integers(0, 255))
def test_decoder_reads_the_simulators_replies(code: int, extra: bytes, status: int) -> None:
    recs = driver.decode_stream(
        m100.error_frame(code, extra)
        + m100.status_frame(m100.CMD_SET_POWER, status)
        + m100.module_info_frame(1, "V1.2")
        + m100.power_frame(2000)
        + m100.region_frame(3)
    )
    assert recs[0] == driver.ErrorReply(code, driver.error_name(code), extra)
    assert isinstance(recs[1], driver.Response)
    assert recs[1].ok() is (status == 0)
    assert recs[2] == driver.ModuleInfo(1, b"V1.2")
    assert isinstance(recs[3], driver.Response)
    assert recs[3].tx_power_dbm() == 20.0
    assert isinstance(recs[4], driver.Response)
    assert recs[4].region() == 3


KINDS = {"hardware": 0, "software": 1, "manufacturer": 2}


def _reencode(record: dict[str, Any]) -> bytes | None:
    """The simulator's encoding of one shared-vector record, or None if it cannot send it."""
    kind = record["type"]
    if kind == "tag":
        if not record["crc_ok"]:
            return None  # the simulator only sends tags with their true CRC
        return m100.tag_notice(
            epc=bytes.fromhex(record["epc"]), rssi_dbm=record["rssi_dbm"], pc=int(record["pc"], 16)
        )
    if kind == "error":
        return m100.error_frame(int(record["code"], 16), bytes.fromhex(record["data"]))
    if kind == "module_info":
        name = record["kind"]
        info_kind = KINDS[name] if name in KINDS else int(name, 16)
        data = bytes.fromhex(record["data"])
        if not data.isascii():
            return None
        return m100.module_info_frame(info_kind, data.decode("ascii"))
    if kind in ("response", "notice", "command"):
        ftype = {"command": m100.COMMAND, "response": m100.RESPONSE, "notice": m100.NOTICE}[kind]
        return m100.encode_frame(ftype, int(record["command"], 16), bytes.fromhex(record["data"]))
    return None


def test_encoder_reproduces_every_clean_frame_of_the_shared_vectors() -> None:
    if not VECTORS.is_dir():
        pytest.fail(f"shared M100 vectors missing at {VECTORS}")
    compared = 0
    for path in sorted(VECTORS.glob("*.json")):
        records = json.loads(path.read_text())
        lines = [line for line in path.with_suffix(".hex").read_text().splitlines() if line]
        assert len(lines) == len(records), path.name
        for line, record in zip(lines, records, strict=True):
            raw = bytes.fromhex(line)
            if not frame_ok(raw):
                continue  # garbage, truncated, bad-length or bad-checksum lines
            expected = _reencode(record)
            if expected is None:
                continue
            assert expected == raw, f"{path.name}: {record}"
            compared += 1
    assert compared >= 100


def test_parser_reads_the_shared_command_vectors() -> None:
    stream = bytes.fromhex((VECTORS / "commands.hex").read_text())
    parser = m100.CommandParser()
    cmds = parser.feed(stream)
    expected = json.loads((VECTORS / "commands.json").read_text())
    assert [(f"0x{c.cmd:02X}", c.data.hex().upper()) for c in cmds] == [
        (r["command"], r["data"]) for r in expected
    ]
    assert parser.errors == {}
