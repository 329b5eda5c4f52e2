"""The simulated LLRP reader alone, driven over a raw TCP socket.

Requests are built here with ``struct``; the simulator's messages are split by their
``Length`` and parsed with llrpkit's decoder (MIT, a dev dependency), which is
independent of both the simulator and tagtrail's client codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from llrpkit.protocol import LLRPMessage, decode_message, messages, params

from tagtrail.clock import ScaledClock
from tagtrail.demo import wait_ready_line
from tagtrail.sim.llrp import LlrpSimulator
from tagtrail.sim.scenario import Scenario, parse_scenario
from tests.sim.helpers import SCENARIOS

TIMEOUT_S = 10.0
EPC_1 = "E2801170000002AA00000001"
EPC_2 = "E2801170000002AA00000002"
EPC_LONG = "E2801170000002AA0000000000000003"


def scenario() -> Scenario:
    """Tags always visible: EPC_1 and EPC_LONG on antenna 1, EPC_2 on antenna 2."""
    return parse_scenario(
        {
            "name": "llrp-unit",
            "antennas": {1: "door", 2: "staging", 3: "yard"},
            "end_s": 600,
            "reads": {"reads_per_s": 40, "miss_probability": 0, "duplicate_probability": 0},
            "tags": [
                {"epc": EPC_1, "visible": [{"antenna": 1, "from_s": 0}]},
                {"epc": EPC_2, "visible": [{"antenna": 2, "from_s": 0}]},
                {"epc": EPC_LONG, "visible": [{"antenna": 1, "from_s": 0}]},
            ],
        }
    )


def msg(msg_type: int, mid: int, body: bytes = b"", version: int = 1) -> bytes:
    return struct.pack(">HII", version << 10 | msg_type, 10 + len(body), mid) + body


def tlv(ptype: int, body: bytes) -> bytes:
    return struct.pack(">HH", ptype, 4 + len(body)) + body


def rospec(rospec_id: int, antennas: list[int], duration_ms: int, content: int = 0x1F80) -> bytes:
    boundary = tlv(178, tlv(179, b"\x00") + tlv(182, b"\x00\x00\x00\x00\x00"))
    ai = tlv(
        183,
        struct.pack(">H", len(antennas))
        + b"".join(struct.pack(">H", a) for a in antennas)
        + tlv(184, struct.pack(">BI", 1, duration_ms))
        + tlv(186, struct.pack(">HB", 1, 1)),
    )
    report = tlv(237, struct.pack(">BH", 1, 0) + tlv(238, struct.pack(">H", content)))
    return tlv(177, struct.pack(">IBB", rospec_id, 0, 0) + boundary + ai + report)


class Client:
    """A raw LLRP client: sends bytes, reads whole messages (decoded by llrpkit)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, sim: LlrpSimulator) -> Client:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> Any:
        async with asyncio.timeout(TIMEOUT_S):
            header = await self.reader.readexactly(10)
            length = struct.unpack_from(">I", header, 2)[0]
            body = await self.reader.readexactly(length - 10)
        return decode_message(header + body)

    async def until(self, kind: type[LLRPMessage]) -> Any:
        """The next message of ``kind``, answering keep-alives on the way."""
        while True:
            m = await self.recv()
            if isinstance(m, messages.KEEPALIVE):
                await self.send(msg(72, m.message_id))
            if isinstance(m, kind):
                return m

    async def request(self, data: bytes) -> Any:
        """Send a request; return the response with its message id."""
        mid = struct.unpack_from(">I", data, 6)[0]
        await self.send(data)
        while True:
            m = await self.recv()
            if m.message_id == mid and not isinstance(m, messages.KEEPALIVE):
                return m

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def run_with_sim(
    body: Callable[[LlrpSimulator], Awaitable[None]], *, time_scale: float = 20.0
) -> None:
    async def main() -> None:
        async with LlrpSimulator(scenario(), ScaledClock(time_scale), seed=3) as sim:
            await body(sim)

    asyncio.run(main())


def is_a(m: Any, cls: type[LLRPMessage]) -> bool:
    """``isinstance`` without narrowing: llrpkit's optional fields stay ``Any`` here."""
    return isinstance(m, cls)


def status_code(m: Any) -> int:
    return int(m.llrp_status.status_code)


def test_connection_event_then_second_client_refused() -> None:
    async def body(sim: LlrpSimulator) -> None:
        first = await Client.connect(sim)
        event = await first.recv()
        assert is_a(event, messages.READER_EVENT_NOTIFICATION)
        data = event.reader_event_notification_data
        assert int(data.connection_attempt_event.status) == 0
        assert data.timestamp.microseconds > 0
        second = await Client.connect(sim)
        refused = await second.recv()
        assert int(refused.reader_event_notification_data.connection_attempt_event.status) == 2
        assert await second.reader.read() == b""  # closed by the reader
        await second.close()
        assert sim.counters.refused == 1
        await first.close()

    run_with_sim(body)


def test_capabilities_and_config() -> None:
    async def body(sim: LlrpSimulator) -> None:
        c = await Client.connect(sim)
        await c.until(messages.READER_EVENT_NOTIFICATION)
        caps = await c.request(msg(1, 11, b"\x00"))
        assert is_a(caps, messages.GET_READER_CAPABILITIES_RESPONSE)
        assert status_code(caps) == 0
        general = caps.general_device_capabilities
        assert (general.max_number_of_antenna_supported, general.device_manufacturer_name) == (
            4,
            25882,
        )
        assert general.reader_firmware_version == "tagtrail-sim 1.9"
        uhf = caps.regulatory_capabilities.uhf_band_capabilities
        assert len(uhf.transmit_power_level_table_entrys) == 81
        config = await c.request(msg(3, 12, b"\x00" + tlv(220, struct.pack(">BI", 1, 40))))
        assert is_a(config, messages.SET_READER_CONFIG_RESPONSE)
        assert status_code(config) == 0
        got = await c.request(msg(2, 13, b"\x00" * 7))
        assert got.keepalive_spec.periodic_trigger_value == 40
        for _ in range(3):
            await c.until(messages.KEEPALIVE)  # acked by until()
        await c.request(msg(3, 14, b"\x00" + tlv(220, struct.pack(">BI", 0, 0))))
        assert sim.keepalive_s is None
        assert sim.counters.keepalives >= 3
        await c.close()

    run_with_sim(body)


def test_rospec_lifecycle_reports_tags_per_antenna() -> None:
    async def body(sim: LlrpSimulator) -> None:
        c = await Client.connect(sim)
        await c.until(messages.READER_EVENT_NOTIFICATION)
        assert status_code(await c.request(msg(21, 1, b"\x00\x00\x00\x00"))) == 0  # delete all
        added = await c.request(msg(20, 2, rospec(5, [1, 2, 3], 300)))
        assert is_a(added, messages.ADD_ROSPEC_RESPONSE)
        assert status_code(added) == 0
        assert status_code(await c.request(msg(20, 3, rospec(5, [1], 300)))) == 104  # duplicate
        assert status_code(await c.request(msg(22, 4, b"\x00\x00\x00\x05"))) == 100  # not enabled
        assert status_code(await c.request(msg(24, 5, b"\x00\x00\x00\x05"))) == 0
        await c.send(msg(64, 6))  # ENABLE_EVENTS_AND_REPORTS: no response
        started = await c.request(msg(22, 7, b"\x00\x00\x00\x05"))
        assert status_code(started) == 0  # the next response is START's: 64 had none
        seen: dict[tuple[int, str], Any] = {}
        while len(seen) < 3:
            report = await c.until(messages.RO_ACCESS_REPORT)
            for trd in report.tag_report_datas:
                epc = trd.epc_parameter
                raw = epc.epc if isinstance(epc, params.EPC_96) else epc.epc.data
                seen[(trd.antenna_id.antenna_id, raw.hex().upper())] = trd
        assert set(seen) == {(1, EPC_1), (1, EPC_LONG), (2, EPC_2)}
        trd = seen[(1, EPC_1)]
        assert isinstance(trd.epc_parameter, params.EPC_96)
        assert isinstance(seen[(1, EPC_LONG)].epc_parameter, params.EPCData)
        assert trd.tag_seen_count.tag_count >= 1
        assert trd.last_seen_timestamp_utc.microseconds >= trd.first_seen_timestamp_utc.microseconds
        assert -70 <= trd.peak_rssi.peak_rssi <= -50
        assert status_code(await c.request(msg(23, 8, b"\x00\x00\x00\x05"))) == 0
        assert status_code(await c.request(msg(23, 9, b"\x00\x00\x00\x05"))) == 100  # stopped
        listed = await c.request(msg(26, 10))
        assert [int(s.current_state) for s in listed.ro_specs] == [1]  # inactive
        assert status_code(await c.request(msg(21, 11, b"\x00\x00\x00\x05"))) == 0
        assert status_code(await c.request(msg(21, 12, b"\x00\x00\x00\x05"))) == 100
        assert sim.rospecs == {}
        assert sim.counters.by_type[64] == 1
        await c.close()

    run_with_sim(body)


def test_rejects_malformed_and_unsupported_messages() -> None:
    async def body(sim: LlrpSimulator) -> None:
        c = await Client.connect(sim)
        await c.until(messages.READER_EVENT_NOTIFICATION)
        unknown = await c.request(msg(40, 1, b"\x00\x00"))  # ADD_ACCESSSPEC: unsupported here
        assert is_a(unknown, messages.ERROR_MESSAGE)
        assert status_code(unknown) == 109
        v2 = await c.request(msg(62, 2, version=2))
        assert is_a(v2, messages.ERROR_MESSAGE)
        assert status_code(v2) == 110
        short = await c.request(msg(21, 3, b"\x00\x01"))
        assert is_a(short, messages.DELETE_ROSPEC_RESPONSE)
        assert status_code(short) == 101
        bad_param = await c.request(msg(20, 4, b"\x00\xb1\x00\x50\x00"))
        assert is_a(bad_param, messages.ADD_ROSPEC_RESPONSE)
        assert status_code(bad_param) == 100
        assert "length" in bad_param.llrp_status.error_description
        no_ai = tlv(
            177, struct.pack(">IBB", 9, 0, 0) + tlv(178, tlv(179, b"\x00") + tlv(182, b"\x00" * 5))
        )
        missing = await c.request(msg(20, 5, no_ai))
        assert status_code(missing) == 103
        antenna = await c.request(msg(20, 6, rospec(9, [7], 100)))
        assert status_code(antenna) == 101
        assert "antenna" in antenna.llrp_status.error_description
        sim.fail_next(20, 401, "injected device error")
        injected = await c.request(msg(20, 7, rospec(9, [1], 100)))
        assert (status_code(injected), injected.llrp_status.error_description) == (
            401,
            "injected device error",
        )
        assert status_code(await c.request(msg(20, 8, rospec(9, [1], 100)))) == 0
        # an impossible length cannot be re-framed: ERROR_MESSAGE, then the reader hangs up
        await c.send(struct.pack(">HII", 1 << 10 | 62, 4, 9))
        fatal = await c.recv()
        assert is_a(fatal, messages.ERROR_MESSAGE)
        assert await c.reader.read() == b""
        await c.close()
        assert sim.counters.errors["bad_header"] == 1

    run_with_sim(body)


def test_close_connection_and_reconnect_keeps_rospecs() -> None:
    async def body(sim: LlrpSimulator) -> None:
        c = await Client.connect(sim)
        await c.until(messages.READER_EVENT_NOTIFICATION)
        assert status_code(await c.request(msg(20, 1, rospec(3, [2], 100)))) == 0
        closed = await c.request(msg(14, 2))
        assert is_a(closed, messages.CLOSE_CONNECTION_RESPONSE)
        assert await c.reader.read() == b""
        await c.close()
        again = await Client.connect(sim)
        event = await again.until(messages.READER_EVENT_NOTIFICATION)
        assert int(event.reader_event_notification_data.connection_attempt_event.status) == 0
        assert list(sim.rospecs) == [3]
        await again.close()

    run_with_sim(body)


def test_mute_stops_everything_but_keeps_the_connection() -> None:
    async def body(sim: LlrpSimulator) -> None:
        c = await Client.connect(sim)
        await c.until(messages.READER_EVENT_NOTIFICATION)
        await c.request(msg(3, 1, b"\x00" + tlv(220, struct.pack(">BI", 1, 20))))
        await c.until(messages.KEEPALIVE)
        sim.mute()
        await c.send(msg(1, 2, b"\x00"))
        done, _ = await asyncio.wait({asyncio.ensure_future(c.reader.read(1))}, timeout=0.3)
        assert not done  # nothing came, and the socket is still open
        assert sim.connected
        await c.close()

    run_with_sim(body)


def test_command_line_prints_ready_and_writes_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tagtrail.sim.llrp",
            str(SCENARIOS / "llrp-dock.yaml"),
            "--port",
            "0",
            "--time-scale",
            "10",
            "--ground-truth",
            str(truth),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        address = wait_ready_line(proc, 20.0)
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0

        async def connect() -> int:
            reader, writer = await asyncio.open_connection(host, int(port))
            header = await asyncio.wait_for(reader.readexactly(10), TIMEOUT_S)
            writer.close()
            return int(struct.unpack(">H", header[:2])[0] & 0x3FF)

        assert asyncio.run(connect()) == 63
        data = json.loads(truth.read_text())
        assert data["scenario"] == "llrp-dock"
        assert data["tags"]["E2801170000002AA00000002"]["final_zone"] == "staging"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode(errors="replace")
