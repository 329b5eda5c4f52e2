"""What the synthetic camera costs: frames/s rendered at 720p and 1080p, on one thread.

Run: ``.venv/bin/python bench/bench_camera_sim.py [--scenario FILE] [--frames N]``

Renders ``N`` frames spread evenly over the scenario (``hardware-sim/scenarios/
camera-dock.yaml`` by default: busy and idle stretches alike) at 1280x720 and
1920x1080, three ways: the raw frame (``render``), the frame as served over MJPEG
(``render`` + JPEG encode, what ``--serve`` and ``--frames`` do) and the frame as the
iterator API yields it (``frame()``: render + JPEG encode + decode). Reports the best of
``--repeats`` runs (``time.perf_counter``) and the process CPU time per frame, so the
camera reader's benchmark can tell whether the simulator keeps up with its 15 frames/s
target (it must stay well above, or run in its own process as ``--serve`` does).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from tagtrail.sim.camera_render import CameraRenderer
from tagtrail.sim.camera_scenario import load_camera_scenario

DEFAULT = Path(__file__).resolve().parents[1] / "hardware-sim" / "scenarios" / "camera-dock.yaml"
TARGET_FPS = 15.0


def measure(fn: Callable[[int], object], indices: list[int], repeats: int) -> tuple[float, float]:
    """(best frames/s, CPU ms per frame of that run)."""
    best_fps, best_cpu = 0.0, 0.0
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in indices:
            fn(i)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        fps = len(indices) / wall
        if fps > best_fps:
            best_fps, best_cpu = fps, cpu / len(indices) * 1000
    return best_fps, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT)
    parser.add_argument("--frames", type=int, default=90, help="Frames per measurement.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    base = load_camera_scenario(args.scenario)
    print(f"scenario {base.name}: {base.frame_count} frames at {base.camera.fps:g} fps")
    print(f"{'size':>10}  {'mode':<24} {'frames/s':>9} {'CPU ms/frame':>13} {'x 15 fps':>9}")
    for width, height in ((1280, 720), (1920, 1080)):
        scenario = base.with_size(width, height)
        t0 = time.perf_counter()
        renderer = CameraRenderer(scenario)
        setup = time.perf_counter() - t0
        step = max(1, scenario.frame_count // args.frames)
        indices = list(range(0, scenario.frame_count, step))[: args.frames]
        modes: list[tuple[str, Callable[[int], object]]] = [
            ("render", renderer.render_index),
            ("render + JPEG (served)", renderer.frame_jpeg),
            ("frame() (JPEG round trip)", renderer.frame),
        ]
        for name, fn in modes:
            fps, cpu = measure(fn, indices, args.repeats)
            print(f"{width}x{height:<5}  {name:<24} {fps:9.1f} {cpu:13.1f} {fps / TARGET_FPS:9.1f}")
        print(f"{'':>10}  (renderer set-up {setup * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
