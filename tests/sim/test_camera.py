"""The synthetic dock camera: symbols, scenarios, ground truth, frames, files and the
MJPEG server. zxing-cpp is the oracle that rendered symbols really decode (the renderer
itself uses python-barcode and pyStrich, never zxing-cpp or tagtrail.readers)."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp
from click.testing import CliRunner

from tagtrail.demo import wait_ready_line
from tagtrail.errors import ConfigError
from tagtrail.sim.camera import camera_command, write_frames, write_video
from tagtrail.sim.camera_render import CameraRenderer
from tagtrail.sim.camera_scenario import (
    CameraScenario,
    ground_truth,
    label_quad,
    load_camera_scenario,
)
from tagtrail.sim.camera_symbols import (
    GS,
    PayloadError,
    Symbology,
    expected_of,
    gs1_check_digit,
    render_label,
    render_symbol,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "hardware-sim" / "scenarios"
DOCK = SCENARIOS / "camera-dock.yaml"


def decode(image: np.ndarray[Any, Any]) -> list[tuple[str, str]]:
    """(symbology identifier, plain text) of every symbol zxing-cpp finds."""
    results = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    return [(r.symbology_identifier, r.text) for r in results]


def small_scenario(**camera: Any) -> CameraScenario:
    """Two boxes in 3.6 s at 720p: a case with an SSCC label, then one with a DataMatrix."""
    return CameraScenario.model_validate(
        {
            "name": "camera-small",
            "seed": 3,
            "end_s": 3.6,
            "camera": {"zone": "dock-door-1", "fps": 10, **camera},
            "items": [
                {
                    "name": "case-1",
                    "size": [0.6, 0.4],
                    "entry_s": 0.2,
                    "speed": 1.6,
                    "labels": [{"symbology": "gs1_128", "payload": "(00)106141411234567897"}],
                },
                {
                    "name": "case-2",
                    "size": [0.4, 0.4],
                    "entry_s": 1.8,
                    "speed": 1.6,
                    "direction": "right_to_left",
                    "labels": [
                        {
                            "symbology": "gs1_datamatrix",
                            "payload": "(01)09506000134352(21)S1",
                            "module_px": 4,
                        }
                    ],
                },
            ],
        }
    )


# -- symbols --------------------------------------------------------------------------------

CLEAN: list[tuple[Symbology, str, str, str, str | None]] = [
    ("gs1_128", "(00)106141411234567897", "]C1", "00106141411234567897", "sscc:106141411234567897"),
    (
        "gs1_128",
        "(01)09506000134352(10)AB12(21)X7",
        "]C1",
        f"010950600013435210AB12{GS}21X7",
        "gtin_serial:09506000134352:X7",
    ),
    ("ean13", "590123412345", "]E0", "5901234123457", "gtin_quantity:05901234123457:"),
    ("code128", "LOC-D7-03", "]C0", "LOC-D7-03", None),
    (
        "gs1_datamatrix",
        "(01)09506000134352(17)271231(10)LOT7(21)S123",
        "]d2",
        f"01095060001343521727123110LOT7{GS}21S123",
        "gtin_serial:09506000134352:S123",
    ),
    (
        "gs1_qr",
        "(01)09506000134369(10)AB12(37)6",
        "]Q3",
        f"010950600013436910AB12{GS}376",
        "gtin_quantity:09506000134369:AB12",
    ),
    ("gs1_qr", "(00)106141411234567897", "]Q3", "00106141411234567897", "sscc:106141411234567897"),
]


@pytest.mark.parametrize("case", CLEAN, ids=[f"{c[0]}-{c[1]}" for c in CLEAN])
@pytest.mark.parametrize("module_px", [2, 3])
def test_clean_label_decodes_to_the_exact_payload(
    case: tuple[Symbology, str, str, str, str | None], module_px: int
) -> None:
    symbology, payload, sid, text, key = case
    expected = expected_of(symbology, payload)
    assert (expected.symbology_id, expected.text, expected.key) == (sid, text, key)
    symbol = render_symbol(symbology, payload, module_px)
    assert symbol.module_px == module_px
    assert symbol.image.shape[1] == symbol.modules_wide * module_px  # known module size
    assert decode(render_label(symbol, title="ACME")) == [(sid, text)]


def test_a_label_meant_to_be_invalid_carries_the_wrong_digit() -> None:
    wrong = "(00)106141411234567890"  # check digit should be 7
    with pytest.raises(PayloadError, match="wrong check digit, expected 7"):
        expected_of("gs1_128", wrong)
    expected = expected_of("gs1_128", wrong, valid=False)
    assert expected.key is None
    assert decode(render_label(render_symbol("gs1_128", wrong, 2, valid=False))) == [
        ("]C1", "00106141411234567890")
    ]
    with pytest.raises(PayloadError, match="marked invalid"):
        expected_of("gs1_128", "(00)106141411234567897", valid=False)


@pytest.mark.parametrize(
    ("symbology", "payload", "reason"),
    [
        ("ean13", "5901234123450", "wrong check digit, expected 7"),
        ("ean13", "59012341234", "12 or 13 digits"),
        ("gs1_128", "00106141411234567897", "not a bracketed GS1 element string"),
        ("gs1_128", "(99)ABC", r"AI \(99\) is not supported"),
        ("gs1_datamatrix", "(01)0950600013435", r"AI \(01\) needs 14 characters"),
        ("gs1_qr", "(17)271331", "not a YYMMDD date"),
        ("gs1_qr", "(10)A%B", "must not contain '%'"),
        ("code128", "caf\u00e9", "printable ASCII"),
        ("gs1_128", "(10)A(10)B", "appears twice"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(
    symbology: Symbology, payload: str, reason: str
) -> None:
    with pytest.raises(PayloadError, match=reason):
        expected_of(symbology, payload)


def test_gs1_check_digit() -> None:
    assert gs1_check_digit("10614141123456789") == "7"
    assert gs1_check_digit("0950600013435") == "2"
    assert gs1_check_digit("590123412345") == "7"


# -- scenarios and ground truth ----------------------------------------------------------


def test_every_camera_scenario_file_loads() -> None:
    files = sorted(SCENARIOS.glob("camera-*.yaml"))
    assert files
    for path in files:
        scenario = load_camera_scenario(path)
        assert scenario.items, path


def test_scenario_problems_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "camera-bad.yaml"
    bad.write_text(
        "name: bad\nend_s: 5\ncamera: {zone: dock-door-1}\nitems:\n"
        "  - {name: a, entry_s: 0, speed: 1, size: [0.2, 0.2], labels: "
        "[{symbology: gs1_128, payload: '(00)106141411234567897', module_px: 3}]}\n"
        "  - {name: b, entry_s: 0, speed: 1, labels: "
        "[{symbology: gs1_qr, payload: '(00)106141411234567890'}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_camera_scenario(bad)
    text = str(info.value)
    assert "items.1.labels.0: payload: AI (00) 106141411234567890: wrong check digit" in text
    overlap = small_scenario().model_dump()
    overlap["items"][1]["entry_s"] = 0.2
    overlap["items"][1]["direction"] = "left_to_right"
    with pytest.raises(ValueError, match="case-1 and case-2 overlap"):
        CameraScenario.model_validate(overlap)
    small = small_scenario().model_dump()
    small["items"][0]["size"] = [0.2, 0.2]
    with pytest.raises(ValueError, match=r"items.0.labels.0: the \d+x\d+ px label does not fit"):
        CameraScenario.model_validate(small)
    stopped = small_scenario().model_dump()
    stopped["items"][0]["stop"] = {"at_x": 3.5, "for_s": 1.0}
    with pytest.raises(ValueError, match=r"items.0.stop.at_x: must lie within the frame"):
        CameraScenario.model_validate(stopped)
    late = small_scenario().model_dump()
    late["end_s"] = 2.5
    with pytest.raises(ValueError, match="case-2 is still in view at end_s"):
        CameraScenario.model_validate(late)


def test_ground_truth_is_consistent_with_the_scenario() -> None:
    scenario = load_camera_scenario(DOCK)
    truth = ground_truth(scenario)
    n, fps = truth["frames"], truth["fps"]
    assert n == round(scenario.end_s * fps)
    labels = truth["labels"]
    assert [(e["item"], e["symbology"]) for e in labels] == [
        ("pallet-in-1", "gs1_128"),
        ("pallet-in-1", "ean13"),
        ("pharma-case", "gs1_datamatrix"),
        ("qr-case", "gs1_qr"),
        ("location-tote", "code128"),
        ("pallet-out-1", "gs1_128"),
    ]
    assert list(truth["identities"]) == [
        "sscc:106141411234567897",
        "gtin_quantity:05901234123457:",
        "gtin_serial:09506000134352:S123",
        "gtin_quantity:09506000134369:AB12",
        "sscc:106141410000000019",
    ]
    visible = {i["name"]: i["visible"] for i in truth["items"]}
    firsts = [e["in_view"]["first_frame"] for e in labels]
    assert firsts == sorted(firsts)
    for entry in labels:
        window = entry["in_view"]
        assert 0 <= window["first_frame"] <= window["last_frame"] < n
        assert window["from_s"] == pytest.approx(window["first_frame"] / fps)
        assert 0 <= window["from_s"] <= window["to_s"] < scenario.end_s
        item = visible[entry["item"]]
        assert item["first_frame"] < window["first_frame"]
        assert window["last_frame"] < item["last_frame"]
    starts = [i["visible"]["first_frame"] for i in truth["items"]]
    assert starts == sorted(starts)
    # idle stretches exist and never overlap a box in view
    assert truth["idle"][0]["first_frame"] == 0
    assert len(truth["idle"]) >= 3
    for idle in truth["idle"]:
        for item in truth["items"]:
            seen = item["visible"]
            assert (
                idle["last_frame"] < seen["first_frame"] or seen["last_frame"] < idle["first_frame"]
            )
    # the QR case stands still for 2 s: its label is in view 2 s longer than without the stop
    data = scenario.model_dump()
    for item in data["items"]:
        item["stop"] = None
    moving = ground_truth(CameraScenario.model_validate(data))

    def span(t: dict[str, Any]) -> float:
        (entry,) = [e["in_view"] for e in t["labels"] if e["item"] == "qr-case"]
        return float(entry["to_s"] - entry["from_s"])

    assert span(truth) - span(moving) == pytest.approx(2.0, abs=1.01 / fps)


# -- frames ---------------------------------------------------------------------------------


def _digest(renderer: CameraRenderer, indices: list[int]) -> str:
    h = hashlib.sha256()
    for i in indices:
        h.update(renderer.frame(i).image.tobytes())
    return h.hexdigest()


def test_frames_are_deterministic_by_seed() -> None:
    scenario = small_scenario()
    indices = [0, 5, 9, 17]
    first = _digest(CameraRenderer(scenario), indices)
    assert _digest(CameraRenderer(scenario), indices) == first
    assert _digest(CameraRenderer(scenario, seed=4), indices) != first
    frames = list(CameraRenderer(scenario).frames(start=3, stop=6))
    assert [(f.index, f.t) for f in frames] == [(3, 0.3), (4, 0.4), (5, 0.5)]
    assert all(f.image.shape == (720, 1280, 3) for f in frames)
    big = CameraRenderer(scenario.with_size(1920, 1080)).frame(5)
    assert big.image.shape == (1080, 1920, 3)


def test_most_in_view_frames_of_the_dock_scene_decode() -> None:
    scenario = load_camera_scenario(DOCK)
    truth = ground_truth(scenario)
    renderer = CameraRenderer(scenario)
    wanted = {(e["symbology_id"], e["text"]) for e in truth["labels"]}
    misreads = reads = total_hits = total = 0
    for entry in truth["labels"]:
        window = entry["in_view"]
        indices = list(range(window["first_frame"], window["last_frame"] + 1, 4))
        hits = 0
        for i in indices:
            found = decode(renderer.frame(i).image)
            hits += (entry["symbology_id"], entry["text"]) in found
            misreads += sum(1 for f in found if f not in wanted)
            reads += len(found)
        # 3 px of motion blur on 2 px modules costs the fastest GS1-128 a few frames
        assert hits >= 0.6 * len(indices), (entry["item"], entry["symbology"], hits, indices)
        total_hits += hits
        total += len(indices)
    assert total_hits >= 0.85 * total
    # zxing-cpp alone does misread a tilted 2-pixel EAN-13 now and then (as on real photos)
    assert misreads <= 0.05 * reads
    idle = truth["idle"][0]
    for i in range(idle["first_frame"], idle["last_frame"] + 1, 8):
        assert decode(renderer.frame(i).image) == []


def test_motion_blur_follows_speed() -> None:
    """The same box, slow and fast: the fast one's label edges are softer."""

    def sharpness(speed: float) -> float:
        data = small_scenario(exposure_s=0.02).model_dump()
        data["items"] = data["items"][:1]
        data["items"][0]["speed"] = speed
        data["end_s"] = 3.0 / speed + 1
        scenario = CameraScenario.model_validate(data)
        entry = ground_truth(scenario)["labels"][0]["in_view"]
        middle = (entry["first_frame"] + entry["last_frame"]) // 2
        image = CameraRenderer(scenario).frame(middle, jpeg=False).image
        item = scenario.items[0]
        quad = label_quad(item.labels[0], item, scenario.frame_time(middle), scenario.camera)
        x0, y0 = quad.min(axis=0).astype(int) + 10
        x1, y1 = quad.max(axis=0).astype(int) - 10
        grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.int16)
        return float(np.abs(np.diff(grey, axis=1)).mean())

    assert sharpness(2.0) < 0.7 * sharpness(0.5)


# -- files and the MJPEG server ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_file_reads_back_frame_for_frame(tmp_path: Path, suffix: str) -> None:
    renderer = CameraRenderer(small_scenario())
    path = tmp_path / f"dock{suffix}"
    assert write_video(renderer, path) == renderer.frame_count == 36
    cap = cv2.VideoCapture(str(path))
    shapes = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        shapes.append(image.shape)
    cap.release()
    assert shapes == [(720, 1280, 3)] * 36


def test_frame_folder_and_cli(tmp_path: Path) -> None:
    renderer = CameraRenderer(small_scenario())
    assert write_frames(renderer, tmp_path / "frames") == 36
    files = sorted((tmp_path / "frames").glob("*.jpg"))
    assert [f.name for f in files[:2]] == ["000000.jpg", "000001.jpg"]
    image = cv2.imread(str(files[12]))
    assert image is not None
    assert image.shape == (720, 1280, 3)
    done = CliRunner().invoke(camera_command, [str(DOCK), "--frames", "x", "--serve", "0"])
    assert done.exit_code == 2
    assert "exactly one of --video, --frames and --serve" in done.output


def _http_get(port: int, path: str, limit: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: camera\r\n\r\n".encode())
        data = b""
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_mjpeg_server_is_read_like_an_ip_camera(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    log_path = tmp_path / "camera.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tagtrail.sim.camera",
                str(DOCK),
                "--serve",
                "0",
                "--time-scale",
                "2",
                "--loop",
                "--ground-truth",
                str(truth_path),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            url = wait_ready_line(proc, 30.0)
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith("/stream.mjpg")
            assert json.loads(truth_path.read_text())["zone"] == "dock-door-1"
            cap = cv2.VideoCapture(url)
            assert cap.isOpened()
            shapes = []
            for _ in range(20):
                ok, image = cap.read()
                assert ok
                shapes.append(image.shape)
            cap.release()
            assert shapes == [(720, 1280, 3)] * 20
            port = int(url.split(":")[2].split("/")[0])
            stream = _http_get(port, "/stream.mjpg", 1_000_000)
            head, _, body = stream.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200 OK")
            assert b"Content-Type: multipart/x-mixed-replace; boundary=frame" in head
            part_head, _, part = body.partition(b"\r\n\r\n")
            assert part_head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n")
            length = int(part_head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert len(part) >= length
            jpeg = cv2.imdecode(np.frombuffer(part[:length], np.uint8), cv2.IMREAD_COLOR)
            assert jpeg is not None
            assert jpeg.shape == (720, 1280, 3)
            assert _http_get(port, "/snapshot.jpg", 10**7).startswith(b"HTTP/1.0 200 OK")
            assert _http_get(port, "/nope", 10**6).startswith(b"HTTP/1.0 404")
        finally:
            proc.terminate()
            rc = proc.wait(timeout=20)
            assert proc.stdout is not None
            proc.stdout.close()
    assert rc == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()
