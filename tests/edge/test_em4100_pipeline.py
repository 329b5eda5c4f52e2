"""An EM4100 card reader -> the edge agent process -> a private mosquitto -> a subscriber.

The card reader is a real pseudo-terminal whose master end this test drives with frames
from the simulator's own encoder (:mod:`tagtrail.sim.em4100`), at the RDM6300's repeat
interval while the card is in the field, and nothing after it is taken away. The agent is
the real ``python -m tagtrail edge run`` with an ``em4100`` reader.
"""

from __future__ import annotations

import os
import time
import tty
from pathlib import Path
from typing import Any

import pytest
import yaml

from tagtrail.events import Arrived, Departed, ReaderStatus
from tagtrail.sim import em4100 as sim
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import Collector, EdgeProcess, wait_for

pytestmark = pytest.mark.slow

CARD = sim.code_text(0x67, 3887558)
PRESENT_S = 2.0
DEPART_AFTER_S = 1.5


def _edge_config(workdir: Path, link: Path, broker_port: int) -> Path:
    cfg: dict[str, Any] = {
        "site": "wh-test",
        "device": "desk-test",
        "readers": [{"type": "em4100", "id": "desk", "port": str(link), "zone": "packing"}],
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "outbox": {"path": str(workdir / "outbox.sqlite"), "synchronous": "normal"},
        "smoothing": {"depart_after_s": DEPART_AFTER_S},
        "status": {"heartbeat_s": 30},
    }
    path = workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _present_card(master: int) -> None:
    """Send the frames a reader sends while the card stays ``PRESENT_S`` in its field, at
    the reader's own pace (this is the simulated device's clock, not a wait)."""
    start = time.monotonic()
    for i, frame in enumerate(sim.presence_frames(CARD, PRESENT_S)):
        due = start + i * sim.REPEAT_INTERVAL_S
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        os.write(master, frame)


def test_card_present_then_removed_arrives_then_departs(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # no line discipline on the bytes, even before the agent opens it
    link = tmp_path / "ttyEM"
    os.symlink(os.ttyname(slave), link)
    collector = Collector(mosquitto.port)
    edge = EdgeProcess(_edge_config(tmp_path, link, mosquitto.port), tmp_path)
    try:
        edge.start()

        def reader_online() -> bool:
            with collector.lock:
                return any(
                    isinstance(e, ReaderStatus) and e.reader == "desk" and e.state == "online"
                    for e in collector.events
                )

        wait_for(reader_online, 30, f"em4100 reader online ({edge.logs()[-3000:]})")
        _present_card(master)
        wait_for(
            lambda: any(isinstance(e, Departed) for e in collector.movements()),
            DEPART_AFTER_S + 10,
            f"departure ({edge.logs()[-3000:]})",
        )
        assert edge.terminate() == 0
        movements = collector.movements()
        assert [(type(e), e.item_key, e.epc, e.zone, e.reader, e.antenna) for e in movements] == [
            (Arrived, f"em4100:{CARD}", None, "packing", "desk", 1),
            (Departed, f"em4100:{CARD}", None, "packing", "desk", 1),
        ]
        arrived, departed = movements
        assert arrived.peak_rssi_dbm is None
        assert departed.read_count >= 3
        with collector.lock:
            statuses = [e for e in collector.events if isinstance(e, ReaderStatus)]
        assert statuses[0].reader_type == "em4100"
        assert collector.invalid == []
    finally:
        if edge.proc is not None and edge.proc.poll() is None:
            edge.proc.kill()
            edge.proc.wait()
        collector.close()
        os.close(slave)
        os.close(master)
