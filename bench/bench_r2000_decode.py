"""Throughput of the R2000 stream decoder on one core.

Run: ``.venv/bin/python bench/bench_r2000_decode.py [--rounds N] [--repeats N]``

Builds a realistic reader stream (inventory rounds of 12-byte-EPC tag frames, each
closed by a round-end frame) with its own frame builder, feeds it to
``StreamDecoder.feed`` in serial-sized chunks, and reports the best of several runs
(``time.perf_counter``) against: the 548 frames/s a 115200-baud line can carry
(21-byte tag frames, 10 bits per byte), the 200,000 frames/s target, and a naive
byte-at-a-time decoder written here as a baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from tagtrail.readers.protocols.r2000 import (
    Decoded,
    DecodeFailure,
    ResultCode,
    RoundEnd,
    StreamDecoder,
    TagRecord,
)

LINE_RATE_FRAMES_S = 548  # 115200 baud / 10 bits / 21 bytes
TARGET_FRAMES_S = 200_000


def frame(addr: int, cmd: int, data: bytes) -> bytes:
    body = bytes([0xA0, len(data) + 3, addr, cmd]) + data
    return body + bytes([(256 - sum(body) % 256) % 256])


def build_stream(rounds: int, tags_per_round: int, seed: int = 7) -> tuple[bytes, int]:
    rnd = random.Random(seed)
    population = [rnd.randbytes(12) for _ in range(200)]
    parts: list[bytes] = []
    for r in range(rounds):
        antenna = r % 4
        for _ in range(tags_per_round):
            epc = rnd.choice(population)
            fa = rnd.randrange(50) << 2 | antenna
            data = bytes([fa, 0x30, 0x00]) + epc + bytes([rnd.randrange(40, 100)])
            parts.append(frame(1, 0x89, data))
        tail = bytes([antenna]) + (tags_per_round * 10).to_bytes(2, "big")
        parts.append(frame(1, 0x89, tail + tags_per_round.to_bytes(4, "big")))
    return b"".join(parts), len(parts)


def naive_decode(data: bytes) -> list[Decoded]:
    """Baseline: a classic byte-at-a-time state machine with a running checksum."""
    out: list[Decoded] = []
    state = 0
    need = 0
    cur = bytearray()
    total = 0
    for b in data:
        if state == 0:
            if b == 0xA0:
                cur = bytearray([b])
                total = b
                state = 1
        elif state == 1:
            cur.append(b)
            total += b
            need = b
            state = 2 if need >= 3 else 0
        else:
            cur.append(b)
            total += b
            need -= 1
            if need == 0:
                state = 0
                if total & 0xFF:
                    out.append(DecodeFailure("checksum", bytes(cur)))
                    continue
                cmd = cur[3]
                ln = cur[1]
                if ln == 4:
                    out.append(ResultCode(cur[2], cmd, cur[4], f"0x{cur[4]:02X}", cur[4] == 0x10))
                elif ln == 10:
                    out.append(
                        RoundEnd(
                            cur[2],
                            cmd,
                            cur[4] + 1,
                            int.from_bytes(cur[5:7], "big"),
                            int.from_bytes(cur[7:11], "big"),
                        )
                    )
                else:
                    pc = int.from_bytes(cur[5:7], "big")
                    out.append(
                        TagRecord(
                            cur[2],
                            cmd,
                            (cur[4] & 3) + 1,
                            cur[4] >> 2,
                            pc,
                            bytes(cur[7:-2]).hex().upper(),
                            cur[-2],
                            cur[-2] - 129,
                        )
                    )
    return out


def stream_decode(data: bytes, chunk: int) -> list[Decoded]:
    dec = StreamDecoder()
    out: list[Decoded] = []
    for i in range(0, len(data), chunk):
        out += dec.feed(data[i : i + chunk])
    out += dec.flush()
    return out


def best_of(
    repeats: int, fn: Callable[..., list[Decoded]], *args: object
) -> tuple[float, list[Decoded]]:
    best = float("inf")
    result: list[Decoded] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--tags-per-round", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per feed() call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    data, frames = build_stream(args.rounds, args.tags_per_round)
    print(f"stream: {frames} frames, {len(data)} bytes, fed in {args.chunk}-byte chunks")

    t_fast, fast = best_of(args.repeats, stream_decode, data, args.chunk)
    t_whole, whole = best_of(args.repeats, stream_decode, data, len(data))
    t_naive, naive = best_of(max(1, args.repeats // 2), naive_decode, data)
    fast_tags = [r for r in fast if isinstance(r, TagRecord)]
    if (
        len(fast) != frames
        or fast != whole
        or fast_tags != [r for r in naive if isinstance(r, TagRecord)]
    ):
        raise SystemExit("decoders disagree: benchmark invalid")

    rate = frames / t_fast
    print(f"StreamDecoder.feed ({args.chunk} B chunks): {rate:12,.0f} frames/s")
    print(f"StreamDecoder.feed (one buffer):     {frames / t_whole:12,.0f} frames/s")
    print(f"naive byte-at-a-time baseline:       {frames / t_naive:12,.0f} frames/s")
    print(f"speed-up over baseline:              {t_naive / t_fast:12.1f} x")
    line = rate / LINE_RATE_FRAMES_S
    print(f"vs 115200-baud line ({LINE_RATE_FRAMES_S} frames/s):   {line:12.0f} x")
    print(f"vs target ({TARGET_FRAMES_S:,} frames/s):      {rate / TARGET_FRAMES_S:12.2f} x")


if __name__ == "__main__":
    main()
