"""The smoother on synthetic read sequences, driven by an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.clock import ManualClock
from tagtrail.edge.config import SmoothingConfig
from tagtrail.edge.smoothing import MovementEvent, Smoother
from tagtrail.events import Arrived, Departed, Moved
from tagtrail.readers.model import RawRead

EPC = "E200301666130121155074EF"
ZONES = {("r1", 1): "dock", ("r1", 2): "staging", ("r2", 1): "storage"}
CFG = SmoothingConfig(
    arrive_min_reads=3,
    arrive_window_s=2.0,
    arrive_settle_s=0.0,
    zone_window_s=2.0,
    move_hysteresis_db=3.0,
    move_min_reads=2,
    move_holdoff_s=1.0,
    depart_after_s=5.0,
)


class Harness:
    def __init__(self, cfg: SmoothingConfig = CFG) -> None:
        self.clock = ManualClock(datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
        ids = iter(range(1, 10**9))
        self.smoother = Smoother(
            cfg, site="wh1", device="door1", zones=ZONES, new_id=lambda: f"evt-{next(ids):06d}"
        )
        self.events: list[MovementEvent] = []

    def read(
        self,
        at: float,
        antenna: int = 1,
        rssi: float | None = -60,
        epc: str = EPC,
        reader: str = "r1",
    ) -> list[MovementEvent]:
        self.clock.set(at)
        read = RawRead(reader, antenna, epc, rssi, self.clock.monotonic(), self.clock.now())
        out = self.smoother.feed(read)
        self.events += out
        return out

    def tick(self, at: float) -> list[MovementEvent]:
        self.clock.set(at)
        out = self.smoother.tick(self.clock.monotonic(), self.clock.now())
        self.events += out
        return out


def test_arrival_needs_min_reads_within_window() -> None:
    h = Harness()
    assert h.read(0.0) == []
    assert h.read(0.5) == []
    out = h.read(1.0, rssi=-52)
    assert len(out) == 1
    ev = out[0]
    assert isinstance(ev, Arrived)
    assert (ev.zone, ev.reader, ev.antenna, ev.epc) == ("dock", "r1", 1, EPC)
    assert ev.read_count == 3
    assert ev.peak_rssi_dbm == -52
    assert ev.first_seen == h.clock.now() - timedelta(seconds=1.0)
    assert ev.last_seen == h.clock.now()
    assert ev.identity.scheme == "epc"
    # further reads in the same zone emit nothing
    assert h.read(1.2) == []


def test_arrival_waits_for_every_antenna_before_choosing_the_zone() -> None:
    h = Harness(CFG.model_copy(update={"arrive_settle_s": 0.5}))
    # a weak cross-read on staging comes first, three times in one antenna round
    for t in (0.00, 0.01, 0.02):
        assert h.read(t, antenna=2, rssi=-72) == []
    # then the dock antenna's turn: the item is really at the door
    assert h.read(0.30, antenna=1, rssi=-54) == []
    out = h.read(0.55, antenna=1, rssi=-53)
    assert [(e.kind, e.zone) for e in out] == [("arrived", "dock")]
    # and it stays there: the weak staging reads never make it move
    t = 0.6
    while t < 5.0:
        h.read(t, antenna=2, rssi=-72)
        h.read(t + 0.01, antenna=1, rssi=-54)
        h.tick(t + 0.02)
        t += 0.1
    assert [e.kind for e in h.events] == ["arrived"]


def test_settled_arrival_is_found_by_tick_when_reads_stop() -> None:
    h = Harness(CFG.model_copy(update={"arrive_settle_s": 0.5}))
    for t in (0.0, 0.1, 0.2):
        h.read(t, antenna=1)
    assert h.events == []
    out = h.tick(0.6)
    assert [(e.kind, e.zone) for e in out] == [("arrived", "dock")]


def test_sparse_reads_never_arrive() -> None:
    h = Harness()
    for i in range(10):
        h.read(i * 1.5)  # at most 2 reads in any 2 s window
    assert h.events == []
    # never arrived, so unseen for long produces no departure either
    assert h.tick(30.0) == []
    assert h.smoother.stats.candidates_dropped == 1


def test_move_needs_hysteresis_and_holdoff() -> None:
    h = Harness()
    for t in (0.0, 0.1, 0.2):
        h.read(t, antenna=1, rssi=-60)
    assert [e.kind for e in h.events] == ["arrived"]
    # staging reads only 1 dB stronger: within hysteresis, no move
    t = 0.3
    while t < 3.0:
        h.read(t, antenna=1, rssi=-60)
        h.read(t + 0.05, antenna=2, rssi=-59)
        t += 0.1
    assert [e.kind for e in h.events] == ["arrived"]
    # staging clearly stronger from t=3.0: the move waits for the hold-off
    moved_at = None
    while t < 6.0:
        h.read(t, antenna=1, rssi=-70)
        out = h.read(t + 0.05, antenna=2, rssi=-50)
        if out:
            moved_at = t + 0.05
            break
        t += 0.1
    assert moved_at is not None
    ev = h.events[-1]
    assert isinstance(ev, Moved)
    assert (ev.from_zone, ev.zone, ev.to_zone, ev.antenna) == ("dock", "staging", "staging", 2)
    # dominance starts once the window mean crosses the hysteresis, then the hold-off runs
    assert moved_at >= 3.0 + CFG.move_holdoff_s


def test_brief_flicker_shorter_than_holdoff_is_not_a_move() -> None:
    h = Harness()
    for t in (0.0, 0.1, 0.2, 0.3):
        h.read(t, antenna=1, rssi=-60)
    h.read(0.5, antenna=2, rssi=-40)
    h.read(0.6, antenna=2, rssi=-40)
    t = 0.7
    while t < 6.0:  # the dock dominates again long after the flicker
        h.read(t, antenna=1, rssi=-45)
        h.tick(t)
        t += 0.1
    assert [e.kind for e in h.events] == ["arrived"]


def test_move_when_old_zone_goes_silent() -> None:
    h = Harness()
    for t in (0.0, 0.2, 0.4):
        h.read(t, antenna=1, rssi=-50)
    # the tag is carried to storage (another reader); weaker RSSI there, but dock is silent
    t = 1.0
    while t < 5.0:
        h.read(t, antenna=1, reader="r2", rssi=-70)
        t += 0.2
    kinds = [(e.kind, e.zone) for e in h.events]
    assert kinds == [("arrived", "dock"), ("moved", "storage")]
    assert h.events[-1].reader == "r2"


def test_departure_after_timeout_only() -> None:
    h = Harness()
    for t in (0.0, 0.1, 0.2):
        h.read(t)
    assert h.tick(5.1) == []  # 4.9 s unseen
    out = h.tick(5.2)
    assert len(out) == 1
    assert isinstance(out[0], Departed)
    assert out[0].zone == "dock"
    assert out[0].read_count == 3
    assert h.smoother.present == {}
    # a new presence starts from scratch
    for t in (10.0, 10.1, 10.2):
        h.read(t, antenna=2)
    assert [e.kind for e in h.events] == ["arrived", "departed", "arrived"]
    assert h.events[-1].zone == "staging"
    assert h.events[-1].read_count == 3


def test_departure_detected_by_a_late_read_without_tick() -> None:
    h = Harness()
    for t in (0.0, 0.1, 0.2):
        h.read(t)
    out = h.read(20.0)
    assert [e.kind for e in out] == ["departed"]


def test_unmapped_antenna_and_missing_rssi() -> None:
    h = Harness()
    assert h.read(0.0, antenna=4) == []
    assert h.smoother.stats.unmapped_reads == 1
    for t in (0.1, 0.2, 0.3):
        h.read(t, antenna=2, rssi=None)
    assert len(h.events) == 1
    assert h.events[0].zone == "staging"
    assert h.events[0].peak_rssi_dbm is None


def test_event_ids_unique_and_times_ordered() -> None:
    h = Harness()
    for i in range(40):
        h.read(i * 0.1, antenna=1 if i < 20 else 2, rssi=-60 if i < 20 else -50)
    h.tick(20.0)
    ids = [e.event_id for e in h.events]
    assert len(ids) == len(set(ids)) == 3
    times = [e.event_time for e in h.events]
    assert times == sorted(times)


reads_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=0.8),  # gap to previous read
        st.sampled_from([("r1", 1), ("r1", 2), ("r2", 1), ("r2", 3)]),
        st.one_of(st.none(), st.floats(min_value=-90, max_value=-30)),
        st.sampled_from(["E2000000000000000000000A", "E2000000000000000000000B"]),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(reads=reads_strategy, final_gap=st.floats(min_value=0, max_value=10))
def test_event_sequences_are_well_formed(
    reads: list[tuple[float, tuple[str, int], float | None, str]], final_gap: float
) -> None:
    h = Harness()
    t = 0.0
    for gap, (reader, antenna), rssi, epc in reads:
        t += gap
        h.read(t, antenna=antenna, rssi=rssi, epc=epc, reader=reader)
        h.tick(t)
    h.tick(t + final_gap)
    per_epc: dict[str, list[MovementEvent]] = {}
    for ev in h.events:
        per_epc.setdefault(ev.epc or "", []).append(ev)
    for events in per_epc.values():
        zone: str | None = None
        for ev in events:
            if isinstance(ev, Arrived):
                assert zone is None
                zone = ev.zone
            elif isinstance(ev, Moved):
                assert zone is not None
                assert ev.from_zone == zone != ev.zone
                zone = ev.zone
            else:
                assert zone == ev.zone
                zone = None
        assert (zone is not None) == (events[-1].epc in h.smoother.present)
    if final_gap >= CFG.depart_after_s:
        assert h.smoother.present == {}


def test_restored_em4100_card_departs_as_a_card() -> None:
    h = Harness()
    h.clock.set(0.0)
    h.smoother.restore(
        epc="67003B51C6",
        zone="dock",
        reader="r1",
        antenna=1,
        first_seen=h.clock.now(),
        read_count=9,
        peak_rssi_dbm=None,
        now_mono=h.clock.monotonic(),
        now_time=h.clock.now(),
        scheme="em4100",
    )
    [gone] = h.tick(CFG.depart_after_s + 0.1)
    assert isinstance(gone, Departed)
    assert gone.item_key == "em4100:67003B51C6"
    assert gone.epc is None
    assert gone.read_count == 9
