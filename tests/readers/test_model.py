"""What every driver shares when it hands a read on: counts per antenna, callback failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tagtrail.readers.model import RawRead, ReaderSnapshot, deliver


def _read(antenna: int) -> RawRead:
    return RawRead("r1", antenna, "E2000000000000000000000A", -60.0, 0.0, datetime.now(UTC))


def test_reads_are_counted_per_antenna_and_passed_on() -> None:
    snap = ReaderSnapshot(reader="r1", reader_type="r2000")
    got: list[RawRead] = []
    for antenna in (1, 2, 2, 4):
        deliver(snap, got.append, _read(antenna))
    assert [r.antenna for r in got] == [1, 2, 2, 4]
    assert snap.antenna_reads == {1: 1, 2: 2, 4: 1}


def test_a_failing_callback_is_counted_and_logged_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = ReaderSnapshot(reader="r1", reader_type="r2000")

    def broken(read: RawRead) -> None:
        raise RuntimeError(f"cannot take read on {read.antenna}")

    with caplog.at_level("ERROR"):
        for _ in range(1000):
            deliver(snap, broken, _read(1))
    assert snap.callback_failures == 1000
    assert snap.antenna_reads == {1: 1000}
    logged = [r for r in caplog.records if "on_read callback failed" in r.getMessage()]
    assert [r.getMessage().split("(")[1] for r in logged] == [
        "1 times)",
        "10 times)",
        "100 times)",
        "1000 times)",
    ]


@pytest.mark.parametrize("antenna", [0, 65, 255])
def test_a_read_on_an_antenna_events_cannot_carry_is_counted_and_dropped(antenna: int) -> None:
    snap = ReaderSnapshot(reader="r1", reader_type="llrp")
    got: list[RawRead] = []
    deliver(snap, got.append, _read(antenna))
    deliver(snap, got.append, _read(64))
    assert [r.antenna for r in got] == [64]
    assert snap.error_counts == {"bad_antenna": 1}
    assert snap.antenna_reads == {64: 1}
    assert snap.last_error is not None
    assert str(antenna) in snap.last_error
