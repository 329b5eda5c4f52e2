"""The simulator's Chafon encoder and command parser: checked frames, shared vectors, and
agreement with the host-side decoder on random tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols import chafon as decoder
from tagtrail.sim import chafon as sim
from tagtrail.sim.chafon import SimTag

H = bytes.fromhex
EPC12 = H("30 39 60 63 03 C7 43 80 00 1A 05 59")
CHECKED = H("15 00 01 03 01 01 0C 30 39 60 63 03 C7 43 80 00 1A 05 59 40 F9 3E")
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "chafon"


def frame_ok(frame: bytes) -> bool:
    """Len and CRC agree; a bit-by-bit CRC, independent of both modules under test."""
    if len(frame) < 5 or frame[0] + 1 != len(frame):
        return False
    c = 0xFFFF
    for b in frame[:-2]:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
    return c == frame[-2] | frame[-1] << 8


def test_checked_reply_is_encoded_byte_for_byte() -> None:
    tag = SimTag(EPC12, rssi=0x40)
    assert sim.inventory_frames(0, [tag], final_status=sim.STATUS_MORE_DATA) == [CHECKED]
    data = bytes([sim.antenna_mask(1), 1]) + tag.block("288")
    assert sim.encode_reply(0, sim.CMD_INVENTORY, sim.STATUS_MORE_DATA, data) == CHECKED
    assert sim.crc16(CHECKED[:-2]) == 0x3EF9


def test_published_captures_are_encoded_byte_for_byte() -> None:
    zeros = H("000000000000000000000313")
    assert sim.inventory_frames(0, [SimTag(zeros, 0x6B)], final_status=3) == [
        H("1500010301010c0000000000000000000003136bb1a5")
    ]
    assert sim.inventory_frames(
        0, [SimTag(H("49440000000000000a000334"), 0x64)], antenna=3, final_status=3
    ) == [H("1500010304010c49440000000000000a0003346425c0")]
    assert sim.inventory_frames(0, [SimTag(H("00323038"), 0x6D)], final_status=3) == [
        H("0d000103010104003230386da3d2")
    ]
    two = [SimTag(zeros, 0x6B), SimTag(H("000000000000000000000314"), 0x6C)]
    assert sim.inventory_frames(0, two, final_status=3) == [
        H("2300010301020c0000000000000000000003136b0c0000000000000000000003146c70f2")
    ]
    assert sim.inventory_frames(0, []) == [H("0700010101001e4b")]
    # UHFReader18
    assert sim.inventory_frames(0, [SimTag(zeros)], layout="18", final_status=3) == [
        H("13000103010c0000000000000000000003133f39")
    ]
    assert sim.inventory_frames(
        0, [SimTag(H("E284361100001000094944AA"))], layout="18", cmd=sim.CMD_SINGLE_INVENTORY
    ) == [H("13 00 0F 01 01 0C E2 84 36 11 00 00 10 00 09 49 44 AA DA FF")]
    assert sim.inventory_frames(0, [], layout="18") == [H("05 00 01 FB F2 3D")]
    assert sim.encode_reply(0, sim.CMD_SET_SCAN_TIME, sim.STATUS_SUCCESS) == H("05 00 25 00 FD 30")
    assert sim.reader_info_frame(
        0,
        version=(0, 22),
        reader_type=sim.TYPE_UHFREADER288M,
        protocols=0x03,
        band=4,
        max_freq=14,
        min_freq=0,
        power_dbm=30,
        scan_time=10,
        extra=H("01 00 00 00"),
    ) == H("1100210000160c034e001e0a01000000e651")
    assert sim.reader_info_frame(
        0,
        version=(5, 2),
        reader_type=0x86,
        band=2,
        max_freq=49,
        min_freq=0,
        power_dbm=26,
        scan_time=20,
    ) == H("0D 00 21 00 05 02 86 02 31 80 1A 14 97 5C")


def test_published_commands_are_encoded_and_parsed() -> None:
    published = [
        (H("04 FF 21 19 95"), 0xFF, 0x21, b""),
        (H("04 00 01 DB 4B"), 0x00, 0x01, b""),
        (H("04 FF 01 1B B4"), 0xFF, 0x01, b""),
        (H("04 00 0F A5 A2"), 0x00, 0x0F, b""),
        (H("05 00 25 14 58 66"), 0x00, 0x25, b"\x14"),
        (H("09 00 01 01 00 00 80 0A 76 FC"), 0x00, 0x01, H("01 00 00 80 0A")),
    ]
    for frame, addr, cmd, data in published:
        assert sim.encode_command(addr, cmd, data) == frame
    parser = sim.CommandParser()
    cmds = parser.feed(b"".join(f for f, _, _, _ in published))
    assert [(c.address, c.cmd, c.data) for c in cmds] == [(a, c, d) for _, a, c, d in published]
    assert parser.errors == {}
    assert parser.pending == 0


def test_parse_inventory_forms() -> None:
    assert sim.parse_inventory(b"") == sim.InventoryRequest()
    # Q=1, S0, target A, antenna 1, 1 s (published, no mask fields)
    assert sim.parse_inventory(H("01 00 00 80 0A")) == sim.InventoryRequest(
        q=1, session=0, target=0, antenna=1, scan_time=10
    )
    # with mask group (MaskLen 0) and the three optional bytes, antenna 4
    req = sim.parse_inventory(H("AF 01 01 00 00 00 01 83 0A"))
    assert req == sim.InventoryRequest(
        q=15, session=1, fast_id=True, statistics=True, target=1, antenna=4, scan_time=10
    )
    # a 12-bit mask (2 data bytes) and a TID inventory of 6 words from word 0
    req = sim.parse_inventory(H("04 00 01 00 20 0C AB C0 00 06 00 81 14"))
    assert req is not None
    assert (req.mask_len_bits, req.tid, req.antenna) == (12, (0, 6), 2)
    assert sim.parse_inventory(H("04")) is None
    # MaskLen 4 announces a mask byte that is not there; 4 bytes after Q/S fit no form
    assert sim.parse_inventory(H("04 00 01 02 03 04")) is None
    assert sim.parse_inventory(H("04 00 00 7F 0A")) is None  # Ant byte not 0x80-0x87


@given(
    q=st.integers(0, 15),
    session=st.sampled_from([0, 1, 2, 3, 0xFF]),
    target=st.sampled_from(["A", "B"]),
    antenna=st.integers(1, 8),
    scan_time=st.integers(0, 255),
    fast_id=st.booleans(),
    statistics=st.booleans(),
)
def test_parser_reads_what_the_driver_sends(
    *,
    q: int,
    session: int,
    target: str,
    antenna: int,
    scan_time: int,
    fast_id: bool,
    statistics: bool,
) -> None:
    frame = decoder.cmd_inventory(
        0x00,
        q=q,
        session=session,
        target=target,
        antenna=antenna,
        scan_time=scan_time,
        fast_id=fast_id,
        statistics=statistics,
    )
    [cmd] = sim.CommandParser().feed(frame)
    assert cmd.cmd == sim.CMD_INVENTORY
    assert sim.parse_inventory(cmd.data) == sim.InventoryRequest(
        q=q,
        session=session,
        fast_id=fast_id,
        statistics=statistics,
        target=0 if target == "A" else 1,
        antenna=antenna,
        scan_time=scan_time,
    )


def test_parser_skips_bad_crc_and_junk_and_resynchronises() -> None:
    parser = sim.CommandParser()
    bad = H("04 00 01 00 00")  # inventory with a wrong CRC (DB 4B is right)
    cmds = parser.feed(b"\x00\x02" + bad + H("04 00 21 D9 6A"))
    assert [(c.address, c.cmd) for c in cmds] == [(0, 0x21)]
    # the bad frame's first byte is dropped, then its other four bytes are too short
    assert parser.errors == {"junk_bytes": 2 + 4, "bad_crc": 1}


def test_parser_waits_for_the_rest_of_a_split_frame() -> None:
    parser = sim.CommandParser()
    assert parser.feed(H("05 00 25")) == []
    assert parser.pending == 3
    cmds = parser.feed(H("14 58 66"))
    assert [(c.cmd, c.data) for c in cmds] == [(0x25, b"\x14")]


frames = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20)),
    min_size=1,
    max_size=8,
)


@given(frames, st.data())
def test_parser_round_trips_any_frames_in_any_chunks(
    spec: list[tuple[int, int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(sim.encode_command(a, c, d) for a, c, d in spec)
    for a, c, d in spec:
        assert frame_ok(sim.encode_command(a, c, d))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = sim.CommandParser()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got += parser.feed(stream[prev:cut])
        prev = cut
    assert [(c.address, c.cmd, c.data) for c in got] == spec


@given(st.binary(max_size=200))
def test_parser_never_fails_on_garbage_and_finds_frames_after_it(garbage: bytes) -> None:
    parser = sim.CommandParser()
    parser.feed(garbage)
    # A length byte in the garbage may swallow up to 255 following bytes (and, rarely,
    # pass the CRC); the parser is aligned again after that, so the rest get through.
    got = parser.feed(sim.encode_command(0, 0x21) * 70)
    assert len(got) >= 70 - 256 // 5 - 1
    assert (got[-1].address, got[-1].cmd, got[-1].data) == (0, 0x21, b"")


def test_field_encodings_and_errors() -> None:
    assert [sim.antenna_mask(a) for a in (1, 2, 3, 4, 8)] == [1, 2, 4, 8, 0x80]
    tid = bytes(range(12))
    assert SimTag(H("ABCD"), 0x30, tid).block("288") == H("8E ABCD") + tid + H("30")
    assert SimTag(H("ABCD"), 0x30).block("18") == H("02 ABCD")
    for call in (
        lambda: sim.antenna_mask(0),
        lambda: sim.antenna_mask(9),
        lambda: SimTag(H("ABC0DE")).block("288"),
        lambda: SimTag(b"").block("18"),
        lambda: SimTag(bytes(64)).block("288"),
        lambda: SimTag(H("ABCD"), 256).block("288"),
        lambda: SimTag(H("ABCD"), 1, b"\x00").block("288"),
        lambda: sim.inventory_frames(0, [], layout="86"),
        lambda: sim.encode_reply(0, 1, 0, bytes(251)),
        lambda: sim.encode_reply(0, 256, 0),
        lambda: sim.encode_command(0, 1, bytes(252)),
        lambda: sim.reader_info_frame(
            0,
            version=(1, 0),
            reader_type=9,
            band=16,
            max_freq=0,
            min_freq=0,
            power_dbm=30,
            scan_time=10,
        ),
        lambda: sim.heartbeat_frame(0, packet_no=1, total_count=1, ant_status=b"\x00"),
    ):
        with pytest.raises(ProtocolError):
            call()


def test_many_tags_are_split_over_frames_the_decoder_joins() -> None:
    tags = [SimTag(bytes([k]) * 62, rssi=k) for k in range(10)]
    out = sim.inventory_frames(5, tags, antenna=2)
    assert len(out) > 1
    assert all(frame_ok(f) and len(f) <= 256 for f in out)
    assert [f[3] for f in out] == [sim.STATUS_MORE_DATA] * (len(out) - 1) + [sim.STATUS_FINISHED]
    recs = decoder.decode_stream(b"".join(out))
    got = [(r.epc, r.rssi_raw, r.antenna) for r in recs if isinstance(r, decoder.TagRead)]
    assert got == [(t.epc.hex().upper(), t.rssi, 2) for t in tags]


def test_stats_realtime_and_heartbeat_decode() -> None:
    stats = sim.stats_frame(1, antenna=3, read_rate=70000, total_count=-5)
    assert decoder.decode_frame(stats) == [decoder.InventoryStats(1, 1, 4, 3, 0xFFFF, 0)]
    rt = sim.realtime_frame(2, antenna=8, tag=SimTag(EPC12, 0x55))
    assert decoder.decode_frame(rt) == [
        decoder.TagRead(2, 0xEE, 0, 0x80, 8, 0, 1, EPC12.hex().upper(), None, 0x55)
    ]
    [hb] = decoder.decode_frame(sim.heartbeat_frame(2, packet_no=9, total_count=1000))
    assert isinstance(hb, decoder.Reply)
    assert (hb.name, hb.data[:4], hb.data[-4:]) == ("heartbeat", H("00000009"), H("000003E8"))


sim_tags = st.builds(
    SimTag,
    epc=st.integers(1, 31).flatmap(lambda w: st.binary(min_size=2 * w, max_size=2 * w)),
    rssi=st.integers(0, 255),
    tid=st.none() | st.binary(min_size=12, max_size=12),
)


@given(
    address=st.integers(0, 254),
    tags=st.lists(sim_tags, max_size=12),
    antenna=st.integers(1, 8),
    layout=st.sampled_from(["288", "18"]),
    cmd=st.sampled_from([0x01, 0x0F, 0x1A, 0x1B]),
    final=st.sampled_from([1, 2, 4]),
)
def test_decoder_and_simulator_agree_on_random_tags(
    *, address: int, tags: list[SimTag], antenna: int, layout: str, cmd: int, final: int
) -> None:
    if layout == "18":
        tags = [SimTag(t.epc) for t in tags]
    out = sim.inventory_frames(
        address, tags, layout=layout, antenna=antenna, cmd=cmd, final_status=final
    )
    recs = decoder.decode_stream(b"".join(out), "288" if layout == "288" else "18")
    assert not [r for r in recs if isinstance(r, decoder.DecodeFailure)]
    got = [r for r in recs if isinstance(r, decoder.TagRead)]
    assert [(r.epc, r.tid, r.rssi_raw, r.antenna) for r in got] == [
        (
            t.epc.hex().upper(),
            t.tid.hex().upper() if t.tid is not None else None,
            t.rssi if layout == "288" else None,
            antenna if layout == "288" else None,
        )
        for t in tags
    ]
    assert all(r.address == address and r.command == cmd for r in got)
    if tags:
        assert got[-1].status == final
        assert sum(1 for r in got if r.index == 0) == len(out)
    else:
        [rec] = recs
        assert isinstance(rec, decoder.InventoryStatus | decoder.Reply)


# --- the shared vectors ------------------------------------------------------------------


def _reencode(records: list[dict[str, Any]]) -> bytes | None:
    """The simulator's encoding of one frame's records, or None if it cannot send it."""
    first = records[0]
    kind = first["type"]
    addr = first["address"]
    if kind == "tag":
        cmd = int(first["command"], 16)
        status = int(first["status"], 16)
        tags = [
            SimTag(
                bytes.fromhex(r["epc"]),
                r["rssi_raw"] if r["rssi_raw"] is not None else 0,
                bytes.fromhex(r["tid"]) if r["tid"] else None,
            )
            for r in records
        ]
        if first["antenna"] is None and first["antenna_mask"] is not None:
            return None  # several antennas at once: the simulator reads on one
        if cmd == sim.CMD_REALTIME:
            return sim.realtime_frame(addr, antenna=first["antenna"], tag=tags[0])
        layout = "18" if first["antenna_mask"] is None else "288"
        [frame] = sim.inventory_frames(
            addr, tags, layout=layout, antenna=first["antenna"] or 1, cmd=cmd, final_status=status
        )
        return frame
    if kind == "inventory_status" and first["antenna"] is not None:
        [frame] = sim.inventory_frames(
            addr,
            [],
            antenna=first["antenna"],
            cmd=int(first["command"], 16),
            final_status=int(first["status"], 16),
        )
        return frame
    if kind == "inventory_stats" and first["antenna"] is not None:
        return sim.stats_frame(
            addr,
            antenna=first["antenna"],
            read_rate=first["read_rate"],
            total_count=first["total_count"],
            cmd=int(first["command"], 16),
        )
    if kind == "reader_info":
        major, minor = (int(x) for x in first["firmware"].split("."))
        return sim.reader_info_frame(
            addr,
            version=(major, minor),
            reader_type=int(first["reader_type"], 16),
            protocols=int(first["protocols"], 16),
            band=first["band"],
            max_freq=first["max_freq"],
            min_freq=first["min_freq"],
            power_dbm=first["power_dbm"],
            scan_time=first["scan_time"],
            extra=bytes.fromhex(first["extra"]),
        )
    if kind == "reply":
        return sim.encode_reply(
            addr, int(first["command"], 16), int(first["status"], 16), bytes.fromhex(first["data"])
        )
    if kind == "command":
        return sim.encode_command(addr, int(first["command"], 16))
    return None


def test_encoder_reproduces_every_clean_frame_of_the_shared_vectors() -> None:
    if not VECTORS.is_dir():
        pytest.fail(f"shared Chafon vectors missing at {VECTORS}")
    compared = 0
    for path in sorted(VECTORS.glob("*.json")):
        records = json.loads(path.read_text())
        lines = [bytes.fromhex(x) for x in path.with_suffix(".hex").read_text().splitlines() if x]
        at = 0  # the frames must come in the order of the lines
        i = 0
        while i < len(records):
            first = records[i]
            n = first["count"] if first["type"] == "tag" else 1
            group = records[i : i + n]
            i += n
            if first["type"] == "invalid":
                continue
            expected = _reencode(group)
            if expected is None:
                continue
            assert expected in lines[at:], f"{path.name}: {group}"
            at = lines.index(expected, at) + 1
            assert frame_ok(expected)
            compared += 1
    assert compared >= 100
