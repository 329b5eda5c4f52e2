"""The read engine: which tags an antenna sees at scenario time ``t`` and what it reads.

All randomness comes from one seeded :class:`random.Random`, consumed in command order, so
the same seed and the same sequence of (antenna, time, repeat) queries give the same reads
and the same corrupted bytes.

Per round the work is a dictionary lookup of a one-second time bucket, a filter of the
intervals in it, and one or two random draws per visible tag; EPC bytes and PC words are
prepared once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tagtrail.sim.r2000 import FREQ_CHANNELS, pc_word
from tagtrail.sim.scenario import Scenario

HOP_CHANNELS = 50
"""Channels the simulated module hops over (FCC band, 902-928 MHz)."""


@dataclass(frozen=True, slots=True)
class ActiveInterval:
    """An interval in the engine's index: ``tag`` is an index into :attr:`Engine.epcs`."""

    tag: int
    start: float
    end: float
    rssi_dbm: float


@dataclass(frozen=True, slots=True)
class TagRead:
    """One read reported in a round."""

    tag: int
    rssi_dbm: int


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What one inventory round on one antenna produced."""

    port: int
    time_s: float
    freq_index: int
    duration_s: float
    reads: list[TagRead]

    @property
    def read_rate(self) -> int:
        """Reads per second over the round, as the end-of-round frame reports it."""
        return round(len(self.reads) / self.duration_s) if self.duration_s > 0 else 0


class Engine:
    """Read generation for one scenario. Not thread-safe; one per simulator."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.rng = random.Random(self.seed)
        tags = scenario.resolved_tags()
        self.epcs: list[str] = [t.epc for t in tags]
        self.epc_bytes: list[bytes] = [bytes.fromhex(e) for e in self.epcs]
        # an EM4100 code (5 bytes) has no PC word
        self.pcs: list[int] = [pc_word(len(b)) if len(b) % 2 == 0 else 0 for b in self.epc_bytes]
        self._connected = frozenset(scenario.connected_ports())
        self._bucket_s = max(1.0, scenario.end_s / 4000.0)
        self._index: dict[int, dict[int, list[ActiveInterval]]] = {}
        for n, tag in enumerate(tags):
            for iv in tag.intervals:
                buckets = self._index.setdefault(iv.antenna, {})
                active = ActiveInterval(n, iv.start, iv.end, iv.rssi_dbm)
                first = int(iv.start // self._bucket_s)
                last = math.ceil(iv.end / self._bucket_s)
                for b in range(first, last):
                    buckets.setdefault(b, []).append(active)
        rssi = scenario.reads.rssi
        self._jitter = rssi.jitter_db
        self._ramp_s = rssi.ramp_s
        self._ramp_db = rssi.ramp_db

    def connected(self, port: int) -> bool:
        """Whether the 1-based port has an antenna that answers."""
        return port in self._connected

    def visible(self, port: int, t: float) -> list[ActiveInterval]:
        """Intervals of tags the antenna on ``port`` sees at scenario time ``t``."""
        if port not in self._connected or t < 0:
            return []
        bucket = self._index.get(port, {}).get(int(t // self._bucket_s), [])
        return [iv for iv in bucket if iv.start <= t < iv.end]

    def base_rssi(self, iv: ActiveInterval, t: float) -> float:
        """RSSI without noise: the interval's base, weaker near its edges."""
        if self._ramp_s <= 0:
            return iv.rssi_dbm
        edge = min(t - iv.start, iv.end - t)
        if edge >= self._ramp_s:
            return iv.rssi_dbm
        return iv.rssi_dbm - self._ramp_db * (1.0 - edge / self._ramp_s)

    def inventory(
        self,
        port: int,
        t: float,
        repeat: int = 1,
        *,
        duration_s: float | None = None,
        reads_per_tag: float | None = None,
    ) -> RoundResult:
        """Run one inventory round of ``repeat`` repetitions on ``port`` at time ``t``.

        ``duration_s`` overrides the round's length (default ``round_period_s * repeat``)
        and ``reads_per_tag`` the expected reads of each visible tag (default
        ``reads_per_s`` times the length), e.g. one per repeat of an EM4100 reader.
        """
        reads_cfg = self.scenario.reads
        rng = self.rng
        duration = reads_cfg.round_period_s * max(repeat, 1) if duration_s is None else duration_s
        freq = rng.randrange(min(HOP_CHANNELS, FREQ_CHANNELS))
        expected = reads_cfg.reads_per_s * duration if reads_per_tag is None else reads_per_tag
        whole = int(expected)
        frac = expected - whole
        miss = reads_cfg.miss_probability
        dup = reads_cfg.duplicate_probability
        reads: list[TagRead] = []
        for iv in self.visible(port, t):
            n = whole + (1 if frac > 0 and rng.random() < frac else 0)
            for _ in range(n):
                if miss > 0 and rng.random() < miss:
                    continue
                level = self.base_rssi(iv, t)
                reads.append(TagRead(iv.tag, self._noisy(level)))
                if dup > 0 and rng.random() < dup:
                    reads.append(TagRead(iv.tag, self._noisy(level)))
        if len(reads) > 1:
            rng.shuffle(reads)
        return RoundResult(port, t, freq, duration, reads)

    def _noisy(self, level: float) -> int:
        if self._jitter > 0:
            level += self.rng.gauss(0.0, self._jitter)
        return round(level)

    def corrupt(self, buf: bytearray) -> int:
        """Corrupt bytes of ``buf`` in place at the scenario's byte rate; return how many."""
        p = self.scenario.reads.corrupt_byte_rate
        if p <= 0 or not buf:
            return 0
        rng = self.rng
        log_q = math.log1p(-p)
        count = 0
        pos = -1
        while True:
            # Geometric skip: bytes until the next corrupted one, one draw per corruption.
            pos += int(math.log(1.0 - rng.random()) / log_q) + 1
            if pos >= len(buf):
                return count
            buf[pos] ^= rng.randrange(1, 256)
            count += 1
