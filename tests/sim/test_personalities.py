"""The simulator's personalities over a real pseudo-terminal: Mercury, Chafon, M100, EM4100.

Each test sends the bytes our driver sends (the driver's own command encoders from
:mod:`tagtrail.readers.protocols`) and checks the answers byte for byte against the
simulator's encoders, whose output is itself pinned to checked and captured frames in
``test_mercury.py``, ``test_chafon.py``, ``test_m100.py`` and ``test_em4100.py`` (some of
those frames are repeated here literally). Fields the simulator draws at random (a
Mercury record's hop frequency, the order of a Chafon round's tags) are read back with
the driver's decoder, so the two independent implementations also check each other.
The clock is a :class:`ManualClock`: streams advance only when the test moves it.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from click.testing import CliRunner

from tagtrail.clock import ManualClock
from tagtrail.errors import ConfigError
from tagtrail.readers.mercury import METADATA_FLAGS
from tagtrail.readers.protocols import chafon as chafon_host
from tagtrail.readers.protocols import m100 as m100_host
from tagtrail.readers.protocols import mercury as mercury_host
from tagtrail.readers.protocols.base import DecodeFailure
from tagtrail.sim import PtySimulator, chafon, em4100, ground_truth, m100, mercury, parse_scenario
from tagtrail.sim.cli import sim_command
from tagtrail.sim.scenario import Scenario
from tests.sim.helpers import SCENARIOS, PtyClient, command, until

H = bytes.fromhex
A = "E200301666130121155074EF"
B = "E200301666130121155074F0"
CARD_A = "67003B51C6"
CARD_B = "0C000621A5"

EXACT = {
    "reads_per_s": 20,
    "round_period_s": 0.05,
    "miss_probability": 0,
    "duplicate_probability": 0,
    "corrupt_byte_rate": 0,
    "rssi": {"jitter_db": 0, "ramp_s": 0, "ramp_db": 0},
}


def make(
    protocol: str, antennas: dict[int, str], tags: list[dict[str, Any]], **more: Any
) -> Scenario:
    data: dict[str, Any] = {
        "name": f"sim-{protocol}",
        "reader": {"protocol": protocol, **more.pop("reader", {})},
        "antennas": antennas,
        "end_s": 30,
        "reads": copy.deepcopy(EXACT),
        "tags": tags,
    }
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return parse_scenario(data)


def tag(epc: str, antenna: int, from_s: float, to_s: float | None, rssi: float) -> dict[str, Any]:
    return {
        "epc": epc,
        "visible": [{"antenna": antenna, "from_s": from_s, "to_s": to_s, "rssi_dbm": rssi}],
    }


Body = Callable[[PtySimulator, PtyClient, ManualClock], Awaitable[None]]


def run(scenario: Scenario, body: Body, **options: Any) -> PtySimulator:
    out: list[PtySimulator] = []

    async def main() -> None:
        clock = ManualClock()
        options.setdefault("pace", False)
        sim = PtySimulator(scenario, clock, **options)
        out.append(sim)
        path = await sim.start()
        try:
            with PtyClient(path) as client:
                await body(sim, client, clock)
        finally:
            await sim.close()

    asyncio.run(main())
    return out[0]


async def take_all(sim: PtySimulator, client: PtyClient) -> bytes:
    """Every byte the simulator has sent so far and the client has not consumed yet."""
    await sim.wait_idle()
    await until(lambda: len(client.received) == sim.counters.bytes_sent)
    data = bytes(client.buf)
    client.buf.clear()
    return data


async def answer(sim: PtySimulator, client: PtyClient, frame: bytes) -> bytes:
    client.send(frame)
    before = sim.counters.frames_sent
    await until(lambda: sim.counters.frames_sent > before)
    return await take_all(sim, client)


def rounds_reach(sim: PtySimulator, n: int) -> Callable[[], bool]:
    return lambda: sim.counters.rounds == n


def records(decoder: Any, data: bytes) -> list[Any]:
    recs = list(decoder.feed(data)) + list(decoder.flush())
    assert not [r for r in recs if isinstance(r, DecodeFailure)], recs
    return recs


# -- Mercury --------------------------------------------------------------------------


def test_mercury_answers_the_driver_setup_and_streams_tag_records() -> None:
    scenario = make(
        "mercury",
        {1: "dock", 2: "staging"},
        [tag(A, 1, 0, 10, -50), tag(B, 2, 0, 10, -60)],
        reader={"firmware": "1.3"},
    )

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        got = await answer(sim, client, mercury_host.cmd_get_version())
        assert got == mercury.version_reply(firmware=H("01 03 00 00"))
        (reply,) = records(mercury_host.StreamDecoder(), got)
        assert reply.version()["firmware"] == "01.03.00.00"
        steps = [
            (mercury_host.cmd_set_tag_protocol(), mercury.encode_response(0x93)),
            (mercury_host.cmd_set_region(2), H("FF 00 97 00 00 77 9E")),  # captured
            (mercury_host.cmd_set_antenna_ports([1, 2]), mercury.encode_response(0x91)),
            (mercury_host.cmd_set_read_power(2000), mercury.encode_response(0x92)),
        ]
        for frame, want in steps:
            assert await answer(sim, client, frame) == want
        assert sim.scenario_time() is None  # set-up does not start the scenario clock
        clock.set(100.0)
        start = mercury_host.cmd_start_continuous_read(METADATA_FLAGS, 1000)
        assert await answer(sim, client, start) == H("FF 04 2F 00 00 01 22 00 00 6D C3")
        assert sim.scenario_time() == 0.0
        # four rounds of 50 ms, on the two antennas in turn: A, B, A, B
        clock.set(100.21)
        await until(lambda: sim.counters.rounds == 4)
        data = await take_all(sim, client)
        recs = records(mercury_host.StreamDecoder(), data)
        assert [(r.epc, r.antenna, r.rssi_dbm, r.timestamp_ms) for r in recs] == [
            (A, 1, -50, 0),
            (B, 2, -60, 50),
            (A, 1, -50, 100),
            (B, 2, -60, 150),
        ]
        assert all(r.tag_crc_ok and r.metadata_flags == METADATA_FLAGS for r in recs)
        assert all(902_750 <= (r.frequency_khz or 0) <= 927_250 for r in recs)
        rebuilt = b"".join(
            mercury.tag_record(
                H(r.epc),
                metadata_flags=METADATA_FLAGS,
                rssi_dbm=r.rssi_dbm,
                antenna=r.antenna,
                frequency_khz=r.frequency_khz,
                timestamp_ms=r.timestamp_ms,
            )
            for r in recs
        )
        assert data == rebuilt
        # stop: acknowledged after the last record; nothing streams after it
        stop = mercury_host.cmd_stop_continuous_read()
        assert stop == H("FF 03 2F 00 00 02 5E 86")  # checked frame
        assert await answer(sim, client, stop) == H("FF 01 2F 00 00 02 30 E6")
        rounds = sim.counters.rounds
        clock.set(105.0)
        assert await answer(sim, client, mercury_host.cmd_get_version()) == (
            mercury.version_reply(firmware=H("01 03 00 00"))
        )
        assert sim.counters.rounds == rounds
        assert sim.counters.bad_commands == 0
        assert sim.counters.commands == 8

    run(scenario, body)


def test_mercury_sends_a_keep_alive_after_each_cycle_without_tags() -> None:
    scenario = make("mercury", {1: "dock"}, [tag(A, 1, 19.98, None, -50)])

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        start = mercury_host.cmd_start_continuous_read(METADATA_FLAGS, 250)
        assert await answer(sim, client, start) == mercury.reading_started()
        clock.set(0.51)  # two cycles of 250 ms (five rounds each), no tag
        await until(lambda: sim.counters.rounds == 10)
        assert await take_all(sim, client) == H("FF 00 22 04 00 84 E0") * 2  # captured
        # in steps: a stream more than 10 s behind the clock would skip ahead
        for step in range(1, 5):
            clock.set(step * 5 + 0.01)
            await until(rounds_reach(sim, step * 100))
        clock.set(20.26)  # the tag is there from round 400: that cycle sends no keep-alive
        await until(lambda: sim.counters.rounds == 405)
        recs = records(mercury_host.StreamDecoder(), await take_all(sim, client))
        kinds = [type(r).__name__ for r in recs]
        assert kinds.count("KeepAlive") == 78  # cycles 2..79 empty; cycle 80 has reads
        assert kinds[-5:] == ["TagRead"] * 5

    run(scenario, body)


def test_mercury_rejects_what_it_cannot_do() -> None:
    scenario = make("mercury", {1: "dock"}, [tag(A, 1, 0, 10, -50)])

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        unknown = mercury.encode_command(0x55)
        assert await answer(sim, client, unknown) == mercury.encode_response(0x55, 0x0101)
        bad_ports = mercury.encode_command(0x91, H("02 01 02"))  # TX 1, RX 2
        assert await answer(sim, client, bad_ports) == mercury.encode_response(0x91, 0x0105)
        client.send(H("FF 00 03 1D 0D"))  # bad CRC: no answer
        assert await answer(sim, client, mercury_host.cmd_get_version()) == (
            mercury.version_reply(firmware=H("01 09 00 00"))
        )
        reasons = sim.counters.bad_command_reasons
        assert (reasons["unknown_command"], reasons["bad_parameter"], reasons["bad_crc"]) == (
            1,
            1,
            1,
        )

    run(scenario, body)


# -- Chafon ---------------------------------------------------------------------------


def chafon_scenario(layout: str = "288") -> Scenario:
    if layout == "18":
        return make("chafon", {1: "dock"}, [tag(A, 1, 2, 10, -55)], reader={"layout": "18"})
    return make(
        "chafon",
        {1: "dock", 2: "staging", 3: "yard"},
        [],
        disconnected=[3],
        reader={"firmware": "2.1"},
        groups=[
            {
                "name": "pallet",
                "count": 20,
                "epc_prefix": "3034257BF400B781",
                "visible": [{"antenna": 1, "from_s": 0, "to_s": 10, "rssi_dbm": -55}],
            }
        ],
    )


def test_chafon_answers_reader_info_and_inventories_with_more_data_frames() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        got = await answer(sim, client, chafon_host.cmd_get_reader_info(0xFF))
        assert got == chafon.reader_info_frame(
            1,
            version=(2, 1),
            reader_type=0x0C,
            band=2,
            max_freq=49,
            min_freq=0,
            power_dbm=30,
            scan_time=10,
        )
        (info,) = records(chafon_host.StreamDecoder(layout="288"), got)
        assert info.firmware == "2.1"
        # 20 tags do not fit one frame: 17 with status 0x03 (more data), 3 with 0x01
        client.send(chafon_host.cmd_inventory(0xFF, antenna=1))
        await until(lambda: sim.counters.rounds == 1)
        data = await take_all(sim, client)
        recs = records(chafon_host.StreamDecoder(layout="288"), data)
        assert [r.status for r in recs] == [0x03] * 17 + [0x01] * 3
        assert sorted(r.epc for r in recs) == [f"3034257BF400B781{n:08X}" for n in range(1, 21)]
        assert {(r.antenna, r.rssi_raw) for r in recs} == {(1, -55 + 128)}
        tags = [chafon.SimTag(H(r.epc), rssi=r.rssi_raw) for r in recs]
        assert data == b"".join(chafon.inventory_frames(1, tags, antenna=1))
        assert sim.counters.tag_frames == 20
        # nothing at staging: Ant | 00, finished; the disconnected port: antenna error
        inventory_2 = chafon_host.cmd_inventory(0xFF, antenna=2)
        empty = chafon.encode_reply(1, 0x01, 0x01, H("02 00"))
        assert empty == chafon.inventory_frames(1, [], antenna=2)[0]
        assert await answer(sim, client, inventory_2) == empty
        inventory_3 = chafon_host.cmd_inventory(0xFF, antenna=3)
        assert await answer(sim, client, inventory_3) == chafon.encode_reply(1, 0x01, 0xF8)
        # another reader's address is not answered; an unknown command is refused
        client.send(chafon.encode_command(0x05, 0x21))
        assert await answer(sim, client, chafon.encode_command(1, 0x99)) == (
            chafon.encode_reply(1, 0x99, 0xFE)
        )
        reasons = sim.counters.bad_command_reasons
        assert (reasons["other_address"], reasons["unknown_command"]) == (1, 1)

    run(chafon_scenario(), body)


def test_chafon_uhfreader18_layout_answers_no_tag_then_the_tag() -> None:
    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        got = await answer(sim, client, chafon_host.cmd_get_reader_info(0xFF))
        assert got[3:7] == H("00 01 09 09")  # ok, version 1.9, type UHFReader18
        inventory = chafon_host.cmd_inventory_18(0xFF)
        assert await answer(sim, client, inventory) == chafon.encode_reply(1, 0x01, 0xFB)
        clock.set(3.0)
        got = await answer(sim, client, inventory)
        assert got == chafon.encode_reply(1, 0x01, 0x01, H("01 0C") + H(A))
        (rec,) = records(chafon_host.StreamDecoder(layout="18"), got)
        assert (rec.epc, rec.antenna) == (A, None)
        # a UHFReader18 takes the inventory without parameters only
        refused = chafon_host.cmd_inventory(0xFF, antenna=1)
        assert await answer(sim, client, refused) == chafon.encode_reply(1, 0x01, 0xFF)

    run(chafon_scenario("18"), body)


# -- M100 -----------------------------------------------------------------------------


def test_m100_answers_module_info_polls_and_stop() -> None:
    scenario = make("m100", {1: "desk"}, [tag(A, 1, 0, 10, -50)])

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        got = await answer(sim, client, m100_host.cmd_module_info(0))
        assert got == m100.module_info_frame(0, "M100 26dBm V1.9")
        (info,) = records(m100_host.StreamDecoder(), got)
        assert info.text == "M100 26dBm V1.9"
        notice = m100.tag_notice(epc=H(A), rssi_dbm=-50)
        assert await answer(sim, client, m100_host.cmd_single_poll()) == notice
        # a multiple poll of 3 rounds: three notices, then silence
        client.send(m100_host.cmd_multiple_poll(3))
        await until(lambda: sim.counters.commands == 3)
        clock.set(1.0)
        await until(lambda: sim.counters.rounds == 4)
        data = await take_all(sim, client)
        assert data == notice * 3
        recs = records(m100_host.StreamDecoder(), data)
        assert [(r.epc, r.rssi_dbm, r.pc, r.crc_ok) for r in recs] == [(A, -50, 0x3000, True)] * 3
        # no tag any more: every round answers "inventory fail" 0x15
        clock.set(20.0)
        client.send(m100_host.cmd_multiple_poll(2))
        await until(lambda: sim.counters.commands == 4)
        clock.set(21.0)
        await until(lambda: sim.counters.rounds == 6)
        assert await take_all(sim, client) == H("BB 01 FF 00 01 15 16 7E") * 2
        # a long run is stopped: the documented answer, and no round after it
        client.send(m100_host.cmd_multiple_poll(1000))
        stop = m100_host.cmd_stop_multiple_poll()
        assert await answer(sim, client, stop) == H("BB 01 28 00 01 00 2A 7E")
        clock.set(30.0)
        assert await answer(sim, client, m100_host.cmd_get_region()) == m100.region_frame(2)
        assert sim.counters.rounds == 6
        assert await answer(sim, client, m100.encode_frame(0, 0x99)) == H("BB 01 FF 00 01 17 18 7E")
        assert sim.counters.bad_command_reasons == {"unknown_command": 1}

    run(scenario, body)


# -- EM4100 ---------------------------------------------------------------------------


def test_em4100_repeats_a_card_every_50_ms_while_it_is_in_the_field() -> None:
    scenario = make(
        "em4100",
        {1: "desk"},
        [
            {"epc": CARD_A, "visible": [{"antenna": 1, "from_s": 0.52, "to_s": 1.02}]},
            {"epc": CARD_B, "visible": [{"antenna": 1, "from_s": 1.52, "to_s": 1.77}]},
        ],
        expect={"min_dwell_s": 0.2, "depart_after_s": 0.6, "margin_s": 0.1},
    )

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        assert sim.scenario_time() == 0.0  # no command starts it: it runs from start()
        client.send(b"\x01\x02 anything")  # the reader takes no commands
        await until(lambda: sim.counters.bad_command_reasons.get("junk_bytes") == 11)
        clock.set(3.0)
        await until(lambda: sim.counters.rounds == 61)  # ticks at 0, 0.05 ... 3.0
        data = await take_all(sim, client)
        # A at 0.55 ... 1.0 (10 ticks), B at 1.55 ... 1.75 (5 ticks), silence otherwise
        assert data == em4100.tag_frame(CARD_A) * 10 + em4100.tag_frame(CARD_B) * 5
        assert em4100.tag_frame(CARD_A) == H("02 36 37 30 30 33 42 35 31 43 36 43 42 03")
        assert sim.counters.tag_frames == 15
        assert sim.counters.bad_command_reasons == {"junk_bytes": 11}
        assert sim.counters.bad_commands == 0

    run(scenario, body)


def test_em4100_corruption_is_counted_byte_for_byte() -> None:
    scenario = make(
        "em4100",
        {1: "desk"},
        [{"epc": CARD_A, "visible": [{"antenna": 1, "from_s": 0}]}],
        reads={"corrupt_byte_rate": 0.02},
    )

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        clock.set(5.01)
        await until(lambda: sim.counters.rounds == 101)
        data = await take_all(sim, client)
        clean = em4100.tag_frame(CARD_A) * 101
        assert len(data) == len(clean)
        changed = sum(a != b for a, b in zip(data, clean, strict=True))
        assert changed == sim.counters.corrupted_bytes
        assert changed > 0

    run(scenario, body)


# -- choosing and checking the personality ---------------------------------------------


def test_protocol_argument_overrides_the_scenario() -> None:
    scenario = make("mercury", {1: "dock"}, [tag(A, 1, 0, 10, -50)], reader={"firmware": "1.3"})

    async def body(sim: PtySimulator, client: PtyClient, clock: ManualClock) -> None:
        assert sim.protocol == "r2000"
        client.send(command(0x72))
        assert await client.frames(1) == [command(0x72, 1, 3)]

    run(scenario, body, protocol="r2000")
    with pytest.raises(ConfigError) as info:
        PtySimulator(scenario, ManualClock(), protocol="em4100")
    assert "tags.0.epc" in dict(info.value.problems)


def test_scenarios_are_checked_for_their_reader() -> None:
    def problems(
        protocol: str, antennas: dict[int, str], epc: str, **reader: Any
    ) -> dict[str, str]:
        with pytest.raises(ConfigError) as info:
            make(protocol, antennas, [tag(epc, 1, 0, 5, -50)], reader=reader)
        return dict(info.value.problems)

    found = problems("em4100", {1: "desk"}, A)
    assert "10 hex digits" in found["tags.0.epc"]
    assert "got 24 digits" in found["tags.0.epc"]
    assert "whole 16-bit words" in problems("r2000", {1: "dock"}, CARD_A)["tags.0.epc"]
    assert "one antenna, port 1" in problems("m100", {1: "a", 2: "b"}, A)["antennas"]
    assert "one antenna, port 1" in problems("em4100", {2: "a"}, CARD_A)["antennas"]
    assert "UHFReader18" in problems("chafon", {1: "a", 2: "b"}, A, layout="18")["antennas"]
    # EM4100 groups fill 10 hex digits; the ground truth says how the edge names them
    cards = make(
        "em4100",
        {1: "desk"},
        [],
        groups=[
            {
                "name": "badges",
                "count": 2,
                "epc_prefix": "67",
                "visible": [{"antenna": 1, "from_s": 1, "to_s": 5}],
            }
        ],
    )
    truth = ground_truth(cards)
    assert sorted(truth["tags"]) == ["6700000001", "6700000002"]
    assert (truth["protocol"], truth["scheme"]) == ("em4100", "em4100")
    assert ground_truth(chafon_scenario())["scheme"] == "epc"


def test_cli_protocol_option_checks_the_scenario_again() -> None:
    result = CliRunner().invoke(
        sim_command, [str(SCENARIOS / "door-mercury.yaml"), "--protocol", "em4100"]
    )
    assert result.exit_code != 0
    assert "tags.0.epc" in result.output
    assert "10 hex digits" in result.output
