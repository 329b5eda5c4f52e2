"""The durable outbox: order, idempotent appends, acks, reopening and surviving SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tagtrail.edge.outbox import Outbox
from tagtrail.errors import OutboxError
from tagtrail.events import (
    Arrived,
    Departed,
    EpcIdentity,
    Moved,
    ReaderStatus,
    parse_message,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def arrived(i: int, *, zone: str = "dock") -> Arrived:
    epc = f"E280{i:020X}"
    return Arrived(
        kind="arrived",
        event_id=f"evt-{i:08d}",
        event_time=T0 + timedelta(seconds=i),
        site="wh1",
        device="edge1",
        reader="r1",
        antenna=1 + i % 4,
        zone=zone,
        identity=EpcIdentity(scheme="epc", epc=epc),
        epc=epc,
        first_seen=T0,
        last_seen=T0 + timedelta(seconds=i),
        read_count=3 + i,
        peak_rssi_dbm=-50.0 - i % 10,
    )


def reader_status(i: int) -> ReaderStatus:
    return ReaderStatus(
        kind="reader_status",
        event_id=f"status-{i:08d}",
        event_time=T0,
        site="wh1",
        device="edge1",
        reader="r1",
        reader_type="r2000",
        state="online",
        read_rate_per_s=12.5,
        reads_total=100 + i,
    )


def test_append_pending_ack_depth(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "outbox.sqlite"
    events = [arrived(i) for i in range(10)] + [reader_status(0)]
    with Outbox(path) as outbox:
        assert path.exists()
        assert outbox.depth() == 0
        assert outbox.pending(0, 100) == []
        outbox.append(events)
        assert outbox.depth() == 11

        rows = outbox.pending(0, 100)
        assert [r.event_id for r in rows] == [e.event_id for e in events]
        assert [r.kind for r in rows] == [e.kind for e in events]
        seqs = [r.seq for r in rows]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        # The stored payload is the event's own JSON and parses back to the same event.
        assert parse_message(rows[3].payload) == [events[3]]
        assert parse_message(rows[-1].payload) == [events[-1]]

        # Paging by cursor and limit.
        first = outbox.pending(0, 4)
        assert [r.seq for r in first] == seqs[:4]
        assert [r.seq for r in outbox.pending(first[-1].seq, 4)] == seqs[4:8]
        assert outbox.pending(seqs[-1], 4) == []
        assert outbox.pending(0, 0) == []

        outbox.ack([seqs[0], seqs[2], seqs[5]])
        assert outbox.depth() == 8
        left = [r.seq for r in outbox.pending(0, 100)]
        assert left == [s for s in seqs if s not in {seqs[0], seqs[2], seqs[5]}]

        # Acking unknown or already acked seqs changes nothing.
        outbox.ack([seqs[0], 999_999])
        assert outbox.depth() == 8

        outbox.ack(left)
        assert outbox.depth() == 0
        assert outbox.pending(0, 100) == []

        # seq keeps growing after everything was deleted (AUTOINCREMENT): a publisher's
        # cursor past the old rows still sees new ones.
        outbox.append([arrived(100)])
        (new_row,) = outbox.pending(seqs[-1], 10)
        assert new_row.seq > seqs[-1]
        assert new_row.event_id == arrived(100).event_id


def test_duplicate_event_id_is_ignored(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.append([arrived(1), arrived(2)])
        # Same ids again (a retried append), mixed with one new event.
        outbox.append([arrived(2), arrived(1), arrived(3)])
        assert outbox.depth() == 3
        rows = outbox.pending(0, 10)
        assert [r.event_id for r in rows] == ["evt-00000001", "evt-00000002", "evt-00000003"]
        # The first stored version is kept.
        changed = arrived(1, zone="aisle-7")
        outbox.append([changed])
        assert outbox.depth() == 3
        assert parse_message(outbox.pending(0, 1)[0].payload) == [arrived(1)]


def test_append_is_one_transaction(tmp_path: Path) -> None:
    """A failing append stores nothing of its batch."""
    path = tmp_path / "o.sqlite"
    with Outbox(path) as outbox:
        outbox.append([arrived(1)])
        # Make the next insert fail half-way through the batch with a real constraint.
        raw = sqlite3.connect(path)
        raw.execute(
            "CREATE TRIGGER reject_5 BEFORE INSERT ON outbox WHEN NEW.event_id = 'evt-00000005' "
            "BEGIN SELECT RAISE(ABORT, 'rejected by test trigger'); END"
        )
        raw.commit()
        raw.close()
        with pytest.raises(OutboxError, match="rejected by test trigger"):
            outbox.append([arrived(i) for i in range(2, 8)])
        assert outbox.depth() == 1
        assert [r.event_id for r in outbox.pending(0, 10)] == ["evt-00000001"]


def test_reopen_keeps_rows_and_depth(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, synchronous="normal")
    outbox.append([arrived(i) for i in range(20)])
    rows = outbox.pending(0, 100)
    outbox.ack([r.seq for r in rows[:5]])
    outbox.close()
    outbox.close()  # closing twice is fine
    with pytest.raises(OutboxError, match="closed"):
        outbox.pending(0, 1)
    with pytest.raises(OutboxError, match="closed"):
        outbox.append([arrived(99)])

    with Outbox(path) as again:
        assert again.depth() == 15
        assert again.pending(0, 100) == rows[5:]
        mode = sqlite3.connect(path)
        try:
            assert mode.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            mode.close()


def test_errors_are_outbox_errors(tmp_path: Path) -> None:
    not_a_db = tmp_path / "garbage.sqlite"
    not_a_db.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(OutboxError, match=r"garbage\.sqlite"):
        Outbox(not_a_db)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot create folder"):
        Outbox(blocker / "sub" / "o.sqlite")


def test_presence_follows_movement_events(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    a1, a2 = arrived(1), arrived(2)
    moved = Moved(
        **{**a1.model_dump(exclude={"kind"}), "event_id": "evt-moved-1", "zone": "aisle-3"},
        kind="moved",
        from_zone="dock",
    )
    departed = Departed(
        **{**a2.model_dump(exclude={"kind"}), "event_id": "evt-departed-2"}, kind="departed"
    )
    with Outbox(path) as outbox:
        outbox.append([a1, a2], presence=[a1, a2])
        assert [p.epc for p in outbox.presence()] == sorted([a1.epc or "", a2.epc or ""])
        outbox.append([moved, departed], presence=[moved, departed])
    with Outbox(path) as outbox:
        (row,) = outbox.presence()
        assert row.epc == a1.epc
        assert row.zone == "aisle-3"
        assert row.reader == a1.reader
        assert row.antenna == a1.antenna
        assert row.first_seen == a1.first_seen
        assert row.read_count == a1.read_count
        assert row.peak_rssi_dbm == a1.peak_rssi_dbm
        assert outbox.depth() == 4


_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from tagtrail.edge.outbox import Outbox
    from tests.edge.test_outbox import arrived

    outbox = Outbox(Path(sys.argv[1]), synchronous=sys.argv[2])
    mode = sys.argv[4]
    n = 0
    for batch in range(1_000_000):
        outbox.append([arrived(batch * 50 + i) for i in range(50)])
        n += 50
        print(n, flush=True)
        if mode == "self" and n >= 2_000:
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_survives_sigkill_of_the_writer_after_commit(tmp_path: Path, synchronous: str) -> None:
    """A process appends, then SIGKILLs itself: every committed row is there on reopen."""
    path = tmp_path / "o.sqlite"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(path), synchronous, root, "self"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    committed = int(proc.stdout.split()[-1])
    assert committed == 2_000
    with Outbox(path) as outbox:
        assert outbox.depth() == committed
        rows = outbox.pending(0, committed + 10)
        assert [r.event_id for r in rows] == [arrived(i).event_id for i in range(committed)]


def test_survives_sigkill_while_writing(tmp_path: Path) -> None:
    """Killed from outside in the middle of appends: every reported commit survives,
    and what is stored is a whole number of batches in order (no torn transaction)."""
    path = tmp_path / "o.sqlite"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), "full", root, "forever"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    reported = 0
    try:
        for line in proc.stdout:
            reported = int(line)
            if reported >= 3_000:
                break
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    with Outbox(path) as outbox:
        stored = outbox.depth()
        assert stored >= reported
        assert stored % 50 == 0
        rows = outbox.pending(0, stored + 10)
        assert [r.event_id for r in rows] == [arrived(i).event_id for i in range(stored)]


def test_presence_keeps_em4100_cards_and_skips_barcodes(tmp_path: Path) -> None:
    card = Arrived(
        **{
            **arrived(7).model_dump(exclude={"kind", "identity", "epc"}),
            "identity": {"scheme": "em4100", "code": "67003B51C6"},
        },
        kind="arrived",
    )
    pallet = Arrived(
        **{
            **arrived(8).model_dump(exclude={"kind", "identity", "epc"}),
            "identity": {"scheme": "sscc", "sscc": "106141411234567897"},
        },
        kind="arrived",
    )
    path = tmp_path / "o.sqlite"
    with Outbox(path) as outbox:
        outbox.append([card, pallet], presence=[card, pallet])
    with Outbox(path) as outbox:
        (row,) = outbox.presence()
        assert (row.epc, row.scheme, row.zone) == ("67003B51C6", "em4100", card.zone)
        gone = Departed(
            **{**card.model_dump(exclude={"kind"}), "event_id": "evt-card-gone"}, kind="departed"
        )
        outbox.append([gone], presence=[gone])
        assert outbox.presence() == []
