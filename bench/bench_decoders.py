"""Decode throughput of every registered wire protocol, against its line-rate ceiling.

Run: ``.venv/bin/python bench/bench_decoders.py [--mb N] [--repeats N]``

For each protocol in :mod:`tagtrail.readers.registry`, the clean test vectors (those
whose expected records hold no failure) are concatenated and repeated to about ``--mb``
megabytes, then fed to the protocol's stream decoder in 4 KB chunks, as a serial port
delivers them. The best of ``--repeats`` runs (``time.perf_counter``, one core) is
compared with the most frames a port at the protocol's usual baud can carry
(baud / 10 bits / typical frame length). Target: >= 100x line rate for every protocol.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tagtrail.readers.registry import PROTOCOLS

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
TARGET_X = 100.0
CHUNK = 4096


def clean_stream(protocol: str, megabytes: float) -> tuple[bytes, int]:
    """Valid frames only, repeated; and how many records one copy decodes to."""
    parts = []
    records = 0
    for hex_file in sorted((VECTORS / protocol).glob("*.hex")):
        expected = json.loads(hex_file.with_suffix(".json").read_text())
        if any(r.get("type") == "invalid" for r in expected):
            continue
        parts.append(bytes.fromhex(hex_file.read_text()))
        records += len(expected)
    one = b"".join(parts)
    copies = max(1, int(megabytes * 1_000_000 / max(1, len(one))))
    return one * copies, records * copies


def measure(protocol: str, data: bytes, repeats: int) -> float:
    info = PROTOCOLS[protocol]
    best = float("inf")
    for _ in range(repeats):
        dec = info.new_decoder()
        start = time.perf_counter()
        for i in range(0, len(data), CHUNK):
            dec.feed(data[i : i + CHUNK])
        dec.flush()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    head = f"{'protocol':<10} {'frames/s':>12} {'line rate':>10} {'x line rate':>12}"
    print(f"{head}  target x{TARGET_X:g}")
    for name in sorted(PROTOCOLS):
        info = PROTOCOLS[name]
        data, frames = clean_stream(name, args.mb)
        if not frames:
            print(f"{name:<10} (no clean vectors)")
            continue
        seconds = measure(name, data, args.repeats)
        rate = frames / seconds
        line = info.line_rate_frames_s
        if line is None:
            print(f"{name:<10} {rate:>12,.0f} {'-':>10} {'-':>12}")
            continue
        ratio = rate / line
        verdict = "met" if ratio >= TARGET_X else "NOT met"
        print(f"{name:<10} {rate:>12,.0f} {line:>10,.0f} {ratio:>11,.0f}x  {verdict}")


if __name__ == "__main__":
    main()
