"""The read engine: visibility, read counts, RSSI, misses, duplicates, corruption, seeds."""

from __future__ import annotations

import copy
from typing import Any

from tagtrail.sim.engine import Engine
from tagtrail.sim.scenario import parse_scenario

A = "E200301666130121155074EF"
B = "E200301666130121155074F0"

BASE: dict[str, Any] = {
    "name": "engine",
    "antennas": {1: "dock", 2: "staging", 3: "yard"},
    "disconnected": [3],
    "end_s": 30,
    "reads": {
        "reads_per_s": 20,
        "round_period_s": 0.05,
        "miss_probability": 0,
        "duplicate_probability": 0,
        "rssi": {"jitter_db": 0, "ramp_s": 0, "ramp_db": 0},
    },
    "tags": [
        {"epc": A, "visible": [{"antenna": 1, "from_s": 2, "to_s": 10, "rssi_dbm": -50}]},
        {
            "epc": B,
            "visible": [
                {"antenna": 1, "from_s": 0, "to_s": 10, "rssi_dbm": -58},
                {"antenna": 2, "from_s": 11, "rssi_dbm": -61},
            ],
        },
    ],
}


def engine(seed: int = 1, **reads: Any) -> Engine:
    data = copy.deepcopy(BASE)
    data["reads"].update(reads)
    return Engine(parse_scenario(data), seed)


def epcs(e: Engine, port: int, t: float, repeat: int = 1) -> list[str]:
    return sorted(e.epcs[r.tag] for r in e.inventory(port, t, repeat).reads)


def test_visibility_is_half_open_per_antenna() -> None:
    e = engine()
    assert epcs(e, 1, 1.99) == [B]
    assert epcs(e, 1, 2.0) == [A, B]
    assert epcs(e, 1, 9.999) == [A, B]
    assert epcs(e, 1, 10.0) == []
    assert epcs(e, 2, 10.5) == []
    assert epcs(e, 2, 11.0) == [B]
    assert epcs(e, 2, 29.99) == [B]
    assert epcs(e, 2, 30.0) == []
    assert epcs(e, 1, -1.0) == []


def test_disconnected_and_unconfigured_ports_read_nothing() -> None:
    e = engine()
    assert e.connected(1)
    assert not e.connected(3)
    assert not e.connected(4)
    assert e.inventory(3, 5.0).reads == []
    assert e.inventory(4, 5.0).reads == []


def test_read_count_follows_rate_round_period_and_repeat() -> None:
    e = engine()  # 20 reads/s * 0.05 s = exactly one read per tag per repetition
    result = e.inventory(1, 5.0, repeat=3)
    assert sorted(e.epcs[r.tag] for r in result.reads) == sorted([A, B] * 3)
    assert abs(result.duration_s - 0.15) < 1e-12
    assert result.read_rate == round(6 / 0.15)
    assert 0 <= result.freq_index < 50


def test_fractional_rate_reads_on_average() -> None:
    e = engine(reads_per_s=5)  # 0.25 expected reads per round
    total = sum(len(e.inventory(2, 20.0).reads) for _ in range(4000))
    assert 0.22 * 4000 < total < 0.28 * 4000


def test_rssi_is_the_base_without_noise_and_ramps_at_edges() -> None:
    e = engine()
    levels = {e.epcs[r.tag]: r.rssi_dbm for r in e.inventory(1, 5.0).reads}
    assert levels == {A: -50, B: -58}
    ramped = engine(rssi={"jitter_db": 0, "ramp_s": 1.0, "ramp_db": 10})
    at_edge = {ramped.epcs[r.tag]: r.rssi_dbm for r in ramped.inventory(1, 2.0).reads}
    assert at_edge[A] == -60  # entering: the full ramp below base
    mid_ramp = {ramped.epcs[r.tag]: r.rssi_dbm for r in ramped.inventory(1, 9.5).reads}
    assert mid_ramp[A] == -55  # half a second before leaving: half the ramp
    assert mid_ramp[B] == -63


def test_jitter_spreads_rssi_around_the_base() -> None:
    e = engine(rssi={"jitter_db": 2.0, "ramp_s": 0, "ramp_db": 0})
    levels = [r.rssi_dbm for _ in range(500) for r in e.inventory(2, 20.0).reads]
    mean = sum(levels) / len(levels)
    assert -61.5 < mean < -60.5
    assert len(set(levels)) > 4


def test_misses_and_duplicates_change_counts() -> None:
    e = engine(miss_probability=0.3)
    total = sum(len(e.inventory(1, 5.0).reads) for _ in range(2000))
    assert 0.65 * 4000 < total < 0.75 * 4000
    d = engine(duplicate_probability=0.2)
    total = sum(len(d.inventory(1, 5.0).reads) for _ in range(2000))
    assert 1.15 * 4000 < total < 1.25 * 4000


def test_same_seed_same_reads_other_seed_other_reads() -> None:
    noisy: dict[str, Any] = {
        "miss_probability": 0.2,
        "duplicate_probability": 0.1,
        "reads_per_s": 13,
        "rssi": {"jitter_db": 2, "ramp_s": 0.5, "ramp_db": 6},
    }

    def run(seed: int) -> list[tuple[int, list[tuple[int, int]]]]:
        e = engine(seed, **noisy)
        rounds = []
        for i in range(300):
            result = e.inventory(1 + i % 2, i * 0.1, 1 + i % 3)
            rounds.append((result.freq_index, [(r.tag, r.rssi_dbm) for r in result.reads]))
        return rounds

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_corruption_rate_zero_changes_nothing() -> None:
    e = engine()
    buf = bytearray(range(256)) * 10
    assert e.corrupt(buf) == 0
    assert buf == bytearray(range(256)) * 10


def test_corruption_changes_the_counted_number_of_bytes() -> None:
    e = engine(corrupt_byte_rate=0.01)
    original = bytes(100_000)
    buf = bytearray(original)
    n = e.corrupt(buf)
    changed = sum(1 for x, y in zip(buf, original, strict=True) if x != y)
    assert changed == n
    assert 800 < n < 1200
