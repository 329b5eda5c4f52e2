"""The edge agent's durable outbox: every event is committed here before it is published.

One SQLite database in WAL mode holds one row per event, in the order the agent created
them. The publisher reads rows in sequence order, sends them, and deletes them only when
the broker acknowledges the MQTT message that carried them (PUBACK). A crash, a restart or
a broker outage therefore never loses an event: whatever was committed and not yet
acknowledged is still here and is sent again, with the same ``event_id``.

* ``seq`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``: it only ever grows, even after every
  row was deleted, so "rows after seq N" is a stable cursor for the publisher.
* ``event_id`` is ``UNIQUE``: appending an event that is already stored is ignored, so a
  retried append never duplicates an event.
* ``payload`` is the event's JSON (``model_dump_json()``), ready to be joined into a
  batch by :func:`tagtrail.events.encode_payloads` without re-serialising.

Durability: ``synchronous="full"`` (the default) syncs the WAL on every commit and
survives power loss; ``"normal"`` survives a killed process (SIGKILL) but may lose the
last transactions on power loss, and is faster.

Presence (optional): :meth:`Outbox.append` also takes the movement events whose item
state should survive a restart. In the same transaction as the events, an ``arrived`` or
``moved`` item is stored in the ``presence`` table (one row per EPC) and a ``departed``
item is removed, so the stored presence always matches the committed events.
:meth:`Outbox.presence` returns the items present at the last commit, which lets the
agent restart without re-announcing items that never left.

The outbox is used from one thread (the agent's event loop). Every operation is one short
transaction; the agent appends once per smoothing tick with all new events and the
publisher acknowledges whole MQTT messages at once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

from tagtrail.errors import OutboxError
from tagtrail.events import AnyEvent, Arrived, Departed, Em4100Identity, Moved

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
)
"""

_PRESENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS presence (
    epc TEXT PRIMARY KEY,
    zone TEXT NOT NULL,
    reader TEXT NOT NULL,
    antenna INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    read_count INTEGER NOT NULL,
    peak_rssi_dbm REAL
)
"""

# Deletes are sent in chunks of at most this many ids per statement (SQLite's default
# limit on bound parameters was 999 before 3.32).
_DELETE_CHUNK = 500


_EM4100_PREFIX = "em4100:"


def _presence_key(change: Arrived | Moved | Departed) -> str | None:
    """The presence table's key of an item: its EPC, ``em4100:<code>``, or None."""
    if change.epc is not None:
        return change.epc
    if isinstance(change.identity, Em4100Identity):
        return _EM4100_PREFIX + change.identity.code
    return None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored event: its sequence number, id, kind and JSON text."""

    seq: int
    event_id: str
    kind: str
    payload: str


@dataclass(frozen=True, slots=True)
class PresenceRow:
    """An RFID item that was present (arrived or moved, not departed) at the last commit.

    ``epc`` is the EPC of a UHF tag or the 10-hex code of an EM4100 card (``scheme``);
    the table stores EM4100 cards as ``em4100:<code>`` (an EPC never holds a colon).
    """

    epc: str
    scheme: Literal["epc", "em4100"]
    zone: str
    reader: str
    antenna: int
    first_seen: datetime
    read_count: int
    peak_rssi_dbm: float | None


class Outbox:
    """A durable FIFO of events in one SQLite file (WAL mode).

    Raises :class:`~tagtrail.errors.OutboxError` when the database cannot be opened,
    written or read.
    """

    def __init__(self, path: Path, synchronous: Literal["full", "normal"] = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise OutboxError(f"outbox {path}: synchronous must be 'full' or 'normal'")
        self.path = Path(path)
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(
                f"outbox {self.path}: cannot create folder: {exc.strerror or exc}"
            ) from exc
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            conn.execute(_SCHEMA)
            conn.execute(_PRESENCE_SCHEMA)
            (count,) = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            raise OutboxError(f"outbox {self.path}: cannot initialise: {exc}") from exc
        if mode is None or str(mode[0]).lower() != "wal":
            conn.close()
            raise OutboxError(f"outbox {self.path}: cannot switch to WAL mode (got {mode})")
        self._conn = conn
        self._depth = int(count)
        logger.debug("outbox %s opened with %d pending events", self.path, self._depth)

    # -- transactions ---------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot {what}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("outbox %s: rollback failed", self.path)
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"outbox {self.path}: cannot {what}: {exc}") from exc
            raise

    # -- public API -----------------------------------------------------------------

    def append(
        self,
        events: Sequence[AnyEvent],
        presence: Sequence[Arrived | Moved | Departed] = (),
    ) -> None:
        """Store events in one transaction, in the given order.

        An event whose ``event_id`` is already stored is ignored. ``presence`` (optional)
        updates the stored presence in the same transaction: ``arrived`` / ``moved``
        store the item, ``departed`` removes it; items other than UHF tags and EM4100
        cards (barcode identities) are not stored.
        """
        if not events and not presence:
            return
        rows = [(e.event_id, e.kind, e.model_dump_json()) for e in events]
        with self._transaction("append events") as conn:
            cur = conn.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, kind, payload) VALUES (?, ?, ?)", rows
            )
            inserted = max(cur.rowcount, 0)
            for change in presence:
                key = _presence_key(change)
                if key is None:
                    continue
                if isinstance(change, Departed):
                    conn.execute("DELETE FROM presence WHERE epc = ?", (key,))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO presence (epc, zone, reader, antenna, "
                        "first_seen, read_count, peak_rssi_dbm) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            key,
                            change.zone,
                            change.reader,
                            change.antenna,
                            change.first_seen.isoformat(),
                            change.read_count,
                            change.peak_rssi_dbm,
                        ),
                    )
        self._depth += inserted

    def presence(self) -> list[PresenceRow]:
        """Items present at the last commit, by EPC."""
        conn = self._db()
        try:
            rows = conn.execute(
                "SELECT epc, zone, reader, antenna, first_seen, read_count, peak_rssi_dbm "
                "FROM presence ORDER BY epc"
            ).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot read presence: {exc}") from exc
        return [
            PresenceRow(
                epc=epc.removeprefix(_EM4100_PREFIX),
                scheme="em4100" if epc.startswith(_EM4100_PREFIX) else "epc",
                zone=zone,
                reader=reader,
                antenna=int(antenna),
                first_seen=datetime.fromisoformat(first_seen),
                read_count=int(read_count),
                peak_rssi_dbm=None if peak is None else float(peak),
            )
            for epc, zone, reader, antenna, first_seen, read_count, peak in rows
        ]

    def pending(self, after_seq: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` stored rows with ``seq > after_seq``, oldest first."""
        if limit <= 0:
            return []
        conn = self._db()
        try:
            cur = conn.execute(
                "SELECT seq, event_id, kind, payload FROM outbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
            return [OutboxRow(*row) for row in cur.fetchall()]
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot read pending events: {exc}") from exc

    def ack(self, seqs: Sequence[int]) -> None:
        """Delete the rows with these sequence numbers (their events were acknowledged).

        Unknown sequence numbers are ignored.
        """
        if not seqs:
            return
        deleted = 0
        with self._transaction("delete acknowledged events") as conn:
            for start in range(0, len(seqs), _DELETE_CHUNK):
                chunk = seqs[start : start + _DELETE_CHUNK]
                marks = ",".join("?" * len(chunk))
                cur = conn.execute(
                    f"DELETE FROM outbox WHERE seq IN ({marks})",  # noqa: S608 - only '?' marks
                    tuple(chunk),
                )
                deleted += max(cur.rowcount, 0)
        self._depth -= deleted

    def depth(self) -> int:
        """Number of stored, unacknowledged events (kept in memory; no query)."""
        return self._depth

    def close(self) -> None:
        """Close the database. Further calls raise :class:`OutboxError`; closing twice is fine."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot close: {exc}") from exc

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
