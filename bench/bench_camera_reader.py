"""Camera reader throughput and CPU on the synthetic dock video, one core.

Run: ``.venv/bin/python bench/bench_camera_reader.py [--sizes 720p,1080p] [--idle-s 10]
[--workdir DIR] [--skip-live]``

The scene (built here, rendered by :mod:`tagtrail.sim.camera`): a dock door at 15
frames/s; a pallet with an SSCC (GS1-128) and an EAN-13 label crosses, then a case with a
GS1 DataMatrix, then a case with a GS1-128 GTIN + serial label, with idle stretches
(sensor noise only) in between. The process is pinned to one CPU core
(``os.sched_setaffinity``), so every thread (capture, decode, OpenCV's own) shares it.

Measured, per frame size:

* ``capacity``: every frame of the video, as fast as the core allows, CPU seconds of the
  decoding side only (``time.process_time``; reading the video is reported apart):
  ``full-frame`` decodes every whole frame (the baseline), ``reader`` runs the reader's
  :class:`~tagtrail.readers.camera.FramePlanner` (motion gating + regions of interest)
  before decoding. Frames/s = frames / CPU seconds.
* ``live``: the real :class:`~tagtrail.readers.camera.CameraReader` playing the file at
  its 15 frames/s in real time: frames analysed per second, frames dropped, CPU % of one
  core (process CPU time / wall time, capture included), and whether exactly the expected
  identities were read.
* ``idle``: the reader on an empty dock (the scene's first second, replayed with
  ``loop``) for ``--idle-s`` seconds: CPU %.

Target (issue 5): 720p at >= 15 frames/s on one core for a typical dock scene.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from tagtrail.clock import SystemClock
from tagtrail.readers.camera import CameraReader, FramePlanner, decode_rects, make_decoder
from tagtrail.readers.camera_frames import Rect
from tagtrail.readers.config import CameraReaderConfig
from tagtrail.readers.model import RawRead, ReaderSnapshot
from tagtrail.sim.camera import CameraRenderer, ground_truth, load_camera_scenario, write_video

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
TARGET_FPS = 15.0
IDLE_VIDEO_S = 20.0

SCENE: dict[str, Any] = {
    "name": "bench-dock",
    "seed": 11,
    "end_s": 17,
    "camera": {"zone": "dock-door-1", "width": 1280, "height": 720, "fps": 15},
    "items": [
        {
            "name": "pallet",
            "kind": "pallet",
            "size": [0.9, 0.62],
            "lane_y": 0.55,
            "entry_s": 1.0,
            "speed": 0.55,
            "tilt_deg": 2,
            "labels": [
                {
                    "symbology": "gs1_128",
                    "payload": "(00)106141411234567897",
                    "position": [0.5, 0.25],
                },
                {"symbology": "ean13", "payload": "5901234123457", "position": [0.35, 0.63]},
            ],
        },
        {
            "name": "pharma-case",
            "size": [0.36, 0.32],
            "lane_y": 0.5,
            "entry_s": 7.0,
            "speed": 0.5,
            "tilt_deg": -3,
            "labels": [
                {
                    "symbology": "gs1_datamatrix",
                    "payload": "(01)09506000134352(17)271231(10)LOT7(21)S123",
                    "module_px": 4,
                }
            ],
        },
        {
            "name": "serial-case",
            "size": [0.6, 0.34],
            "lane_y": 0.5,
            "entry_s": 11.5,
            "speed": 0.6,
            "labels": [{"symbology": "gs1_128", "payload": "(01)09501101020917(21)10"}],
        },
    ],
}


def render(workdir: Path, size: str) -> tuple[Path, Path, set[str]]:
    """The scene's video, an idle video (its first second) and the expected identities."""
    width, height = SIZES[size]
    spec = workdir / "bench-dock.yaml"
    spec.write_text(yaml.safe_dump(SCENE, sort_keys=False))
    scenario = load_camera_scenario(spec).with_size(width, height)
    truth = ground_truth(scenario)
    expected = set(truth["identities"])
    video = workdir / f"dock-{size}.avi"
    idle = workdir / f"idle-{size}.avi"
    renderer = CameraRenderer(scenario)
    if not video.exists():
        write_video(renderer, video)
    if not idle.exists():  # the empty dock before the pallet, fresh sensor noise each frame
        fps = scenario.camera.fps
        writer = cv2.VideoWriter(str(idle), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
        for index in range(int(IDLE_VIDEO_S * fps)):
            writer.write(renderer.render(0.3, index))
        writer.release()
    return video, idle, expected


def capacity(video: Path) -> dict[str, float]:
    """Frames/s of decoding per CPU second: full frames vs the reader's planner."""
    config = CameraReaderConfig(type="camera", id="bench", source=str(video), zone="z")
    out: dict[str, float] = {}
    for mode in ("full-frame", "reader"):
        decoder = make_decoder(config.engines)
        planner = FramePlanner(config)
        cap = cv2.VideoCapture(str(video))
        fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
        frames = decodes = 0
        cpu_decode = cpu_read = 0.0
        while True:
            t0 = time.process_time()
            ok, image = cap.read()
            cpu_read += time.process_time() - t0
            if not ok:
                break
            frame = np.asarray(image, dtype=np.uint8)
            t0 = time.process_time()
            now = frames / fps
            h, w = frame.shape[:2]
            rects: list[Rect] = [Rect(0, 0, w, h)]
            if mode == "reader":
                _why, rects = planner.plan(frame, now)
            if rects:
                decodes += 1
                symbols = decode_rects(decoder, frame, rects)
                planner.decoded(symbols, w, h, now)
            cpu_decode += time.process_time() - t0
            frames += 1
        cap.release()
        out[f"{mode}_fps"] = frames / cpu_decode
        out[f"{mode}_ms"] = 1000 * cpu_decode / frames
        out[f"{mode}_decodes"] = decodes
        out["read_ms"] = 1000 * cpu_read / frames
        out["frames"] = frames
    return out


async def live(video: Path, *, loop: bool, seconds: float | None) -> dict[str, Any]:
    """The reader in real time on ``video``: CPU %, analysed/s, drops, identities read."""
    reads: list[RawRead] = []
    config = CameraReaderConfig(type="camera", id="bench", source=str(video), zone="z", loop=loop)
    ended = asyncio.Event()

    def on_state(snap: ReaderSnapshot) -> None:
        if snap.state == "offline":
            ended.set()

    reader = CameraReader(config, SystemClock(), reads.append, on_state, idle_flush_s=0.2)
    task = asyncio.create_task(reader.run())
    wall0, cpu0 = time.monotonic(), time.process_time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ended.wait(), seconds)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stats = reader.frame_stats
    snap = reader.snapshot()
    return {
        "cpu_pct": 100 * cpu / wall,
        "wall_s": wall,
        "analysed_per_s": stats.get("analysed", 0) / wall,
        "frames": stats.get("frames", 0),
        "decodes": stats.get("decodes", 0),
        "dropped": snap.counters.get("frames_dropped", 0),
        "identities": Counter(r.epc for r in reads),
        "engines": {k: v for k, v in snap.counters.items() if k.startswith("engine_")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-camera-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    ok = True
    for size in args.sizes.split(","):
        print(f"{size}: rendering into {workdir} ...", file=sys.stderr)
        video, idle, expected = render(workdir, size)
        print(f"{size}: capacity ...", file=sys.stderr)
        cap = capacity(video)
        row: dict[str, Any] = {"size": size, **cap}
        if not args.skip_live:
            print(f"{size}: live ...", file=sys.stderr)
            busy = asyncio.run(live(video, loop=False, seconds=None))
            quiet = asyncio.run(live(idle, loop=True, seconds=args.idle_s))
            row.update(
                live_cpu=busy["cpu_pct"],
                live_analysed=busy["analysed_per_s"],
                live_dropped=busy["dropped"],
                live_frames=busy["frames"],
                live_exact=set(busy["identities"]) == expected,
                live_reads=dict(busy["identities"]),
                engines=busy["engines"],
                idle_cpu=quiet["cpu_pct"],
                idle_decodes=quiet["decodes"],
                idle_wall=quiet["wall_s"],
            )
            ok = ok and bool(row["live_exact"])
        ok = ok and (size != "720p" or cap["reader_fps"] >= TARGET_FPS)
        rows.append(row)

    print(f"\nCamera reader on the synthetic dock video, one core ({workdir})\n")
    print(
        "| size | frames | read ms/frame | full-frame ms | full-frame fps | reader ms "
        "| reader fps | reader decodes |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['size']} | {r['frames']:.0f} | {r['read_ms']:.1f} | {r['full-frame_ms']:.1f} "
            f"| {r['full-frame_fps']:.1f} | {r['reader_ms']:.1f} | {r['reader_fps']:.1f} "
            f"| {r['reader_decodes']:.0f} |"
        )
    if not args.skip_live:
        print(
            "\n| size | live CPU % (15 fps, capture incl.) | analysed/s | dropped/frames "
            "| exact identities | idle CPU % | idle decodes |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(
                f"| {r['size']} | {r['live_cpu']:.1f} | {r['live_analysed']:.1f} "
                f"| {r['live_dropped']}/{r['live_frames']} | {r['live_exact']} "
                f"| {r['idle_cpu']:.1f} | {r['idle_decodes']} in {r['idle_wall']:.0f} s |"
            )
        for r in rows:
            print(f"{r['size']} reads: {r['live_reads']} engines: {r['engines']}")
    print(
        f"\ntarget 720p reader >= {TARGET_FPS:g} frames/s on one core: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
