"""Scanner reads in the smoother: sightings, repeat suppression, moves, no departures."""

from __future__ import annotations

from datetime import UTC, datetime

from tagtrail.clock import ManualClock
from tagtrail.edge.config import SmoothingConfig
from tagtrail.edge.smoothing import MovementEvent, Smoother
from tagtrail.events import (
    AnyIdentity,
    Arrived,
    EpcIdentity,
    GtinSerialIdentity,
    Moved,
    SsccIdentity,
    identity_key,
)
from tagtrail.readers.model import RawRead

ZONES = {("gun-a", 1): "dock-a", ("gun-b", 1): "dock-b", ("rfid", 1): "dock-a"}
OBSERVERS = {"gun-a": 2.0, "gun-b": 2.0}
PALLET = SsccIdentity(scheme="sscc", sscc="106141411234567897")
CASE = GtinSerialIdentity(scheme="gtin_serial", gtin="09501101020917", serial="10")
EPC = "E200301666130121155074EF"


class Scans:
    def __init__(self, max_sightings: int = 1000) -> None:
        self.clock = ManualClock(datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
        ids = iter(range(1, 10**9))
        self.smoother = Smoother(
            SmoothingConfig(depart_after_s=5.0),
            site="wh1",
            device="door1",
            zones=ZONES,
            observers=OBSERVERS,
            max_sightings=max_sightings,
            new_id=lambda: f"evt-{next(ids):06d}",
        )
        self.events: list[MovementEvent] = []

    def scan(
        self, at: float, identity: AnyIdentity | None = PALLET, reader: str = "gun-a"
    ) -> list[MovementEvent]:
        self.clock.set(at)
        if identity is None:
            read = RawRead(reader, 1, EPC, None, self.clock.monotonic(), self.clock.now())
        else:
            read = RawRead(
                reader,
                1,
                identity_key(identity),
                None,
                self.clock.monotonic(),
                self.clock.now(),
                identity=identity,
            )
        out = self.smoother.feed(read)
        self.events += out
        return out

    def tick(self, at: float) -> list[MovementEvent]:
        self.clock.set(at)
        return self.smoother.tick(self.clock.monotonic(), self.clock.now())


def test_first_scan_arrives_at_once_with_the_identity() -> None:
    s = Scans()
    [event] = s.scan(0.0)
    assert isinstance(event, Arrived)
    assert event.identity == PALLET
    assert event.epc is None
    assert (event.zone, event.reader, event.antenna, event.read_count) == ("dock-a", "gun-a", 1, 1)
    assert event.first_seen == event.last_seen == s.clock.now()


def test_repeats_within_the_suppression_window_are_one_sighting() -> None:
    s = Scans()
    s.scan(0.0)
    for t in (0.5, 1.4, 2.3, 3.9):  # each within 2 s of the previous one
        assert s.scan(t) == []
    assert s.smoother.stats.scans_suppressed == 4
    # 2 s after the last repeat it is reported again, as a fresh presence
    [again] = s.scan(6.0)
    assert isinstance(again, Arrived)
    assert again.read_count == 1
    assert again.first_seen == s.clock.now()


def test_scan_in_another_zone_is_a_move_even_within_the_window() -> None:
    s = Scans()
    s.scan(0.0)
    s.scan(0.5)
    [moved] = s.scan(1.0, reader="gun-b")
    assert isinstance(moved, Moved)
    assert (moved.from_zone, moved.zone, moved.reader) == ("dock-a", "dock-b", "gun-b")
    assert moved.read_count == 3
    [back] = s.scan(1.5)
    assert isinstance(back, Moved)
    assert back.zone == "dock-a"


def test_scanned_items_never_depart() -> None:
    s = Scans()
    s.scan(0.0)
    s.scan(0.0, CASE)
    assert s.tick(3600.0) == []
    assert s.smoother.stats.departed == 0


def test_identities_are_tracked_apart() -> None:
    s = Scans()
    assert [e.identity for e in s.scan(0.0)] == [PALLET]
    assert [e.identity for e in s.scan(0.1, CASE)] == [CASE]
    assert s.scan(0.2) == []
    assert s.scan(0.3, CASE) == []


def test_an_epc_scanned_by_a_handheld_is_a_sighting() -> None:
    s = Scans()
    [event] = s.scan(0.0, None)
    assert event.identity == EpcIdentity(scheme="epc", epc=EPC)
    assert event.epc == EPC
    assert s.tick(100.0) == []


def test_rfid_reads_of_the_same_zone_still_smooth_as_before() -> None:
    s = Scans()
    s.clock.set(0.0)
    read = RawRead("rfid", 1, EPC, -60.0, s.clock.monotonic(), s.clock.now())
    assert s.smoother.feed(read) == []  # one read is not an arrival for a fixed reader
    assert s.smoother.stats.scans == 0


def test_oldest_sightings_are_forgotten_beyond_the_bound() -> None:
    s = Scans(max_sightings=2)
    s.scan(0.0)
    s.scan(0.1, CASE)
    s.scan(0.2, None)
    assert s.smoother.stats.sightings_forgotten == 1
    assert identity_key(PALLET) not in s.smoother.sightings
    # forgotten: its next scan, even in the window, reads as an arrival
    [event] = s.scan(0.3)
    assert isinstance(event, Arrived)
