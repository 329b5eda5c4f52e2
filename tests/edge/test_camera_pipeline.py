"""Camera barcodes end to end: synthetic dock camera -> edge agent -> mosquitto -> subscriber.

The synthetic camera (``python -m tagtrail.sim.camera``) renders a dock scene in which a
pallet (SSCC on GS1-128 and an EAN-13), a serialised case (GS1-128 GTIN + serial), a tote
with a location label (plain Code 128) and a case with a wrong SSCC check digit cross the
frame, and writes it as an MJPG video with its ground truth. ``tagtrail edge run`` reads
the video with a ``type: camera`` reader at its own frame rate, as a camera; the broker
is a private mosquitto. Exactly the ground truth's identities must arrive in the camera's
zone, each once for its pass, plus the location label as a ``code`` identity; the label
with a wrong check digit is counted, never turned into an identity.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tagtrail.events import Arrived, CodeIdentity, ReaderStatus, identity_key
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import Collector, EdgeProcess, wait_for

pytestmark = pytest.mark.slow

ZONE = "dock-door-1"
PALLET = "sscc:106141411234567897"
PALLET_EAN = "gtin_quantity:05901234123457:"
CASE = "gtin_serial:09501101020917:10"
LOCATION = identity_key(
    CodeIdentity(scheme="code", symbology="Code 128", symbology_id="]C0", text="LOC-D7-03")
)

SCENE: dict[str, Any] = {
    "name": "camera-pipeline",
    "seed": 3,
    "end_s": 10.0,
    "camera": {"zone": ZONE, "width": 960, "height": 540, "fps": 15},
    "items": [
        {
            "name": "pallet",
            "kind": "pallet",
            "size": [0.9, 0.62],
            "lane_y": 0.55,
            "entry_s": 0.3,
            "speed": 1.2,
            "labels": [
                {
                    "symbology": "gs1_128",
                    "payload": "(00)106141411234567897",
                    "module_px": 3,
                    "position": [0.5, 0.25],
                },
                {
                    "symbology": "ean13",
                    "payload": "5901234123457",
                    "module_px": 3,
                    "position": [0.4, 0.7],
                },
            ],
        },
        {
            "name": "case",
            "size": [0.7, 0.34],
            "lane_y": 0.5,
            "entry_s": 2.8,
            "speed": 1.2,
            "labels": [
                {"symbology": "gs1_128", "payload": "(01)09501101020917(21)10", "module_px": 3}
            ],
        },
        {
            "name": "tote",
            "size": [0.6, 0.3],
            "lane_y": 0.5,
            "entry_s": 5.2,
            "speed": 1.2,
            "labels": [{"symbology": "code128", "payload": "LOC-D7-03", "module_px": 3}],
        },
        {
            "name": "bad-label",
            "size": [0.7, 0.34],
            "lane_y": 0.5,
            "entry_s": 7.5,
            "speed": 1.2,
            "labels": [
                {
                    "symbology": "gs1_128",
                    "payload": "(00)106141411234567898",
                    "valid": False,
                    "module_px": 3,
                }
            ],
        },
    ],
}


def render(workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Run the synthetic camera: the video and its ground truth."""
    spec = workdir / "scene.yaml"
    spec.write_text(yaml.safe_dump(SCENE, sort_keys=False))
    video, truth = workdir / "dock.avi", workdir / "truth.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tagtrail.sim.camera", str(spec)),
            *("--video", str(video), "--ground-truth", str(truth)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"READY {video}"
    return video, json.loads(truth.read_text())


def edge_yaml(workdir: Path, video: Path, broker_port: int) -> Path:
    cfg: dict[str, Any] = {
        "site": "wh-test",
        "device": "dock-cam",
        "readers": [
            {
                "type": "camera",
                "id": "cam-1",
                "source": str(video),
                "zone": ZONE,
                "regions": [{"x": 0.0, "y": 0.1, "width": 1.0, "height": 0.9}],
            }
        ],
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "outbox": {"path": str(workdir / "outbox.sqlite"), "synchronous": "normal"},
        "status": {"heartbeat_s": 30},
    }
    path = workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_camera_labels_arrive_once_each(tmp_path: Path, mosquitto: Mosquitto) -> None:
    video, truth = render(tmp_path)
    # the pallet's two labels, the case, and the location label as a ``code`` identity
    expected = set(truth["identities"]) | {LOCATION}
    assert len(expected) == 4
    collector = Collector(mosquitto.port)
    edge = EdgeProcess(edge_yaml(tmp_path, video, mosquitto.port), tmp_path)
    try:
        edge.start()

        def statuses() -> list[ReaderStatus]:
            with collector.lock:
                return [e for e in collector.events if isinstance(e, ReaderStatus)]

        # the reader goes offline with "end of source" once the whole video has played
        wait_for(
            lambda: any(s.state == "offline" for s in statuses()),
            60,
            f"end of the video ({edge.logs()[-3000:]})",
        )
        assert [s.state for s in statuses()][:2] == ["online", "offline"]
        wait_for(lambda: len(collector.movements()) >= len(expected), 10, "movements")
        movements = collector.movements()
        assert sorted(e.item_key for e in movements) == sorted(expected)
        assert all(isinstance(e, Arrived) for e in movements)
        assert {(e.zone, e.reader, e.epc) for e in movements} == {(ZONE, "cam-1", None)}
        order = [e.item_key for e in sorted(movements, key=lambda e: e.event_time)]
        assert set(order[:2]) == {PALLET, PALLET_EAN}  # in the order the boxes passed
        assert order[2:] == [CASE, LOCATION]

        offline = next(s for s in statuses() if s.state == "offline")
        assert offline.last_error == "end of source"
        counts = offline.error_counts
        assert counts.get("gs1_invalid", 0) > 0  # the bad label, never an identity
        assert offline.counters.get("engine_zxing", 0) > 0
        assert offline.counters.get("frames", 0) > 0
        assert edge.terminate() == 0
        assert collector.invalid == []
    finally:
        if edge.proc is not None and edge.proc.poll() is None:
            edge.proc.kill()
            edge.proc.wait()
        collector.close()
