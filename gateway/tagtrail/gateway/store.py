"""The gateway's positions store: where every item is now, and the InfluxDB spool.

:class:`PositionStore` is the small interface the gateway needs; :class:`SqliteStore`
implements it with one SQLite database in WAL mode. One :meth:`~SqliteStore.apply`
transaction holds everything an event changes:

* ``processed``: one row per applied ``event_id`` with the time it was processed. An
  event whose id is already there is a duplicate (an MQTT redelivery or an edge replay)
  and changes nothing at all, not even the spool. Rows older than
  ``dedupe_retention_s`` are removed by :meth:`~SqliteStore.prune_processed`.
* ``items``: one row per item, keyed by :func:`tagtrail.events.identity_key`
  (``epc:<HEX>``, ``sscc:<digits>`` ...): current zone (``NULL`` after a departure),
  site, present flag, first/last seen and the last event.
* ``stock``: the number of present items per ``(site, zone)``, kept incrementally.
  Zones stay listed with a count of 0 once they empty.
* ``spool``: InfluxDB line-protocol points waiting to be written (the
  :class:`LineQueue`), one per event, drained by :mod:`tagtrail.gateway.influx`.
* ``series_ts``: the last timestamp used per InfluxDB series (see below).

So a crash (even SIGKILL or power loss with ``synchronous="full"``) never applies an
event without its point or its dedupe record, or the other way round: the consumer
acknowledges an MQTT message only after ``apply`` returned, and a redelivery of a
message whose transaction committed is recognised as a duplicate.

**Ordering.** MQTT delivers at least once, and not necessarily in order (redeliveries,
edge replays, several devices). An item's position is the one given by its *latest*
event, ordered by ``(event_time, event_id)``: a late event older than the current one is
still recorded (its dedupe record and its InfluxDB point; it is history) but does not
move the item backwards. Two events of one item with the same ``event_time`` are ordered
by ``event_id`` (plain string comparison), so the final position depends only on the set
of events applied, never on the order they arrived in.

**Unique timestamps.** InfluxDB overwrites points with the same series and timestamp,
and many edge events share an ``event_time`` (all departures of one smoothing tick).
Every point therefore gets ``ts = max(event_time in ns, last_ts[series] + 1)``, with
``last_ts`` persisted in ``series_ts`` in the same transaction.

**Threading.** The store uses one connection and is meant for one thread, the gateway's
event loop (the consumer applies, the InfluxDB writer drains the spool and the API
queries, all between awaits). ``check_same_thread`` is off so the loop may run in a
thread other than the one that opened the store, but calls must never overlap.

**Tuning.** 64 MiB page cache; a WAL checkpoint every 10,000 pages (about 40 MB) rather
than SQLite's 1,000, which made random updates over 100,000 items about 1.5x faster here.

**Scale-out.** Gateways in one shared-subscription group each receive a share of the
events, but every one must answer for every item, so they need one shared store. The
interface allows it: ``apply`` is one atomic batch, which maps onto one PostgreSQL
transaction (``processed`` with ``INSERT ... ON CONFLICT DO NOTHING``, ``items`` with
``SELECT ... FOR UPDATE`` then an upsert, ``stock`` by delta, the spool and
``series_ts`` as tables) or onto one Redis Lua script per batch (a set of event ids with
expiry, a hash per item, a hash of counts per site, a list as the spool). The InfluxDB
spool can stay per gateway as long as each gateway's ``series_ts`` keeps its timestamps
apart (e.g. a ``gateway`` tag).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

from pydantic import TypeAdapter

from tagtrail.clock import Clock
from tagtrail.errors import TagtrailError
from tagtrail.events import (
    AnyEvent,
    AnyIdentity,
    Arrived,
    Departed,
    DeviceStatus,
    EpcIdentity,
    GtinQuantityIdentity,
    GtinSerialIdentity,
    Identity,
    Moved,
    ReaderStatus,
    identity_key,
)
from tagtrail.gateway import lineproto
from tagtrail.readers.epc import gtin_of

logger = logging.getLogger(__name__)

MovementEvent = Arrived | Moved | Departed

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# Deletes are sent in chunks of at most this many ids per statement (SQLite's default
# limit on bound parameters was 999 before 3.32).
_DELETE_CHUNK = 500

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS processed (
        event_id TEXT PRIMARY KEY,
        processed_us INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS processed_by_time ON processed (processed_us)",
    """
    CREATE TABLE IF NOT EXISTS items (
        item TEXT PRIMARY KEY,
        epc TEXT,
        identity TEXT NOT NULL,
        site TEXT NOT NULL,
        zone TEXT,
        present INTEGER NOT NULL,
        first_seen_us INTEGER NOT NULL,
        last_seen_us INTEGER NOT NULL,
        event_us INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        event_zone TEXT NOT NULL,
        from_zone TEXT,
        reader TEXT NOT NULL,
        device TEXT NOT NULL,
        antenna INTEGER NOT NULL,
        read_count INTEGER NOT NULL,
        peak_rssi_dbm REAL,
        updated_us INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    # Keyset pages of one zone walk this index in item order. Departed items (zone NULL)
    # are left out of it; 'zone = ?' implies 'zone IS NOT NULL', so SQLite uses it.
    "CREATE INDEX IF NOT EXISTS items_by_zone ON items (zone, item) WHERE zone IS NOT NULL",
    """
    CREATE TABLE IF NOT EXISTS sku_stock (
        site TEXT NOT NULL,
        zone TEXT NOT NULL,
        gtin TEXT NOT NULL,
        count INTEGER NOT NULL CHECK (count >= 0),
        PRIMARY KEY (site, zone, gtin)
    ) WITHOUT ROWID
    """,
    # When each present item entered its current zone, for dwell times.
    """
    CREATE TABLE IF NOT EXISTS zone_since (
        item TEXT PRIMARY KEY,
        since_us INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS stock (
        site TEXT NOT NULL,
        zone TEXT NOT NULL,
        count INTEGER NOT NULL CHECK (count >= 0),
        PRIMARY KEY (site, zone)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS spool (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        line TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS series_ts (
        series TEXT PRIMARY KEY,
        last_ts INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
)

_ITEM_COLUMNS = (
    "item, epc, identity, site, zone, present, first_seen_us, last_seen_us, event_us, "
    "event_id, kind, event_zone, from_zone, reader, device, antenna, read_count, "
    "peak_rssi_dbm, updated_us"
)

_UPSERT_ITEM = (
    f"INSERT INTO items ({_ITEM_COLUMNS}) "  # noqa: S608 - constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (item) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ITEM_COLUMNS.split(", ")[1:])
)

_GET_ITEM = f"SELECT {_ITEM_COLUMNS} FROM items WHERE item = ?"  # noqa: S608 - constant


IDENTITY: TypeAdapter[AnyIdentity] = TypeAdapter(Identity)


def sku_of(identity: AnyIdentity) -> tuple[str, int] | None:
    """The item's stock keeping unit as ``(GTIN-14, units)``, or None.

    GTIN + serial counts one unit; GTIN + quantity its quantity; an EPC counts one unit of
    its GTIN when it is an SGTIN (GS1 EPC Tag Data Standard); SSCCs (logistic units),
    EM4100 cards and other codes have no SKU.
    """
    match identity:
        case GtinSerialIdentity(gtin=gtin):
            return gtin, 1
        case GtinQuantityIdentity(gtin=gtin, quantity=quantity):
            return gtin, quantity
        case EpcIdentity(epc=epc):
            sgtin = gtin_of(epc)
            return None if sgtin is None else (sgtin, 1)
    return None


_SKU_STOCK_VERSION = 1


def _backfill_sku_stock(conn: sqlite3.Connection) -> None:
    """Fill ``sku_stock`` from the present items, once per database (``user_version`` 1
    marks it done): a store made before stock per SKU existed holds items the table does
    not count yet, and a move of one would take a count below zero."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if int(version) >= _SKU_STOCK_VERSION:
        return
    totals: dict[tuple[str, str, str], int] = {}
    for site, zone, identity in conn.execute(
        "SELECT site, zone, identity FROM items WHERE present = 1"
    ):
        sku = sku_of(IDENTITY.validate_json(identity))
        if sku is not None:
            key = (site, zone, sku[0])
            totals[key] = totals.get(key, 0) + sku[1]
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM sku_stock")
    conn.executemany(
        "INSERT INTO sku_stock (site, zone, gtin, count) VALUES (?, ?, ?, ?)",
        [(*k, n) for k, n in totals.items() if n],
    )
    conn.execute(f"PRAGMA user_version = {_SKU_STOCK_VERSION}")
    conn.execute("COMMIT")
    if totals:
        logger.info("stock per SKU rebuilt: %d (site, zone, GTIN) rows", len(totals))


class StoreError(TagtrailError):
    """The positions store could not be opened, written or read."""


class CursorError(TagtrailError):
    """A pagination cursor is malformed or belongs to a different query."""


def _stock_series(site: str, zone: str) -> str:
    """The series key of a ``stock`` point, as :func:`lineproto.stock_line` writes it."""
    return f"stock,site={lineproto.tag_value(site)},zone={lineproto.tag_value(zone)}"


def to_us(ts: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime, exact."""
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of microseconds since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=us)


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionChange:
    """An applied event that set an item's position (the item's newest event so far).

    ``from_zone`` is the zone the gateway had the item in before (``None`` if it was not
    present or unknown); ``to_zone`` the zone it is in now, ``None`` after a departure.
    They may be equal (an item seen again where it already was).
    """

    item: str
    epc: str | None
    site: str
    from_zone: str | None
    to_zone: str | None
    event: MovementEvent
    dwell_s: float | None = None
    """Seconds the item spent in the zone it left with this event (a move to another zone
    or a departure), by event times; None when it left no zone."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one :meth:`PositionStore.apply` call did.

    ``applied`` counts new events (all kinds), ``duplicates`` events already processed;
    ``out_of_order`` the new movement events older than their item's position (recorded
    as history, position unchanged); ``changes`` the position changes in apply order.
    """

    applied: int
    duplicates: int
    changes: list[PositionChange] = field(default_factory=list)
    out_of_order: int = 0


@dataclass(frozen=True, slots=True)
class LastEvent:
    """The event that set an item's current position."""

    event_id: str
    kind: Literal["arrived", "moved", "departed"]
    time: datetime
    site: str
    device: str
    reader: str
    antenna: int
    zone: str
    from_zone: str | None
    read_count: int
    peak_rssi_dbm: float | None


@dataclass(frozen=True, slots=True)
class ItemPosition:
    """Where an item is, by its newest event.

    ``zone`` is ``None`` once the item departed; ``last_zone`` is where it was last seen
    either way. ``first_seen`` and ``last_seen`` are the newest event's (first and latest
    read of the item in its current presence). ``updated_at`` is when the gateway applied
    that event.
    """

    item: str
    epc: str | None
    identity: dict[str, Any]
    site: str
    zone: str | None
    present: bool
    last_zone: str
    first_seen: datetime
    last_seen: datetime
    last_event: LastEvent
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ZoneStock:
    """The number of items present in one zone of one site."""

    site: str
    zone: str
    count: int


@dataclass(frozen=True, slots=True)
class SkuStock:
    """Units of one GTIN present in one zone of one site."""

    site: str
    zone: str
    gtin: str
    count: int


# -- interfaces -----------------------------------------------------------------------


class LineQueue(Protocol):
    """The InfluxDB writer's view of the store: a durable FIFO of line-protocol points."""

    def pending_lines(self, limit: int, *, after: int = 0) -> list[tuple[int, str]]:
        """Up to ``limit`` queued ``(seq, line)`` with ``seq > after``, oldest first."""
        ...

    def lines_done(self, seqs: Sequence[int]) -> None:
        """Remove these points (written, or rejected and logged). Unknown seqs are ignored."""
        ...

    def line_depth(self) -> int:
        """Number of queued points (kept in memory; no query)."""
        ...

    def enqueue_lines(self, lines: Sequence[str]) -> None:
        """Queue extra points (e.g. the periodic ``stock`` points) in one transaction."""
        ...


class PositionStore(LineQueue, Protocol):
    """Positions, stock per zone, dedupe records and the InfluxDB spool of a gateway.

    Implementations must apply a batch atomically: positions, stock, dedupe records and
    queued points commit together or not at all.
    """

    def apply(self, events: Sequence[AnyEvent]) -> ApplyResult:
        """Apply events at least once delivered, in one transaction (see module docs)."""
        ...

    def stock_lines(self, now: datetime) -> list[str]:
        """The current stock per ``(site, zone)`` as ``stock`` points at ``now``."""
        ...

    def get_item(self, key: str) -> ItemPosition | None:
        """The position of one item by its key (``epc:<HEX>``, ``sscc:...``)."""
        ...

    def list_items(
        self,
        *,
        zone: str | None = None,
        site: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[ItemPosition], str | None]:
        """A page of items in key order, and the cursor of the next page (None at the end)."""
        ...

    def zones(self) -> list[ZoneStock]:
        """Every zone ever seen, with its current count (0 when empty)."""
        ...

    def zone(self, zone: str, site: str | None = None) -> list[ZoneStock]:
        """The zone of that name in every site (or in ``site`` only); empty if unknown."""
        ...

    def sku_stock(
        self, *, site: str | None = None, zone: str | None = None, gtin: str | None = None
    ) -> list[SkuStock]:
        """Units present per ``(site, zone, GTIN)``, optionally filtered; zero rows omitted."""
        ...

    def stock(self) -> list[ZoneStock]:
        """The zones that hold items now, with their counts."""
        ...

    def prune_processed(self, now: datetime) -> int:
        """Forget dedupe records older than the retention; returns how many were removed."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


# -- cursors --------------------------------------------------------------------------


def _encode_cursor(after: str, query: list[Any]) -> str:
    raw = json.dumps([after, *query], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_cursor(cursor: str, query: list[Any]) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise CursorError("cursor is not one this API returned (cannot decode it)") from exc
    if not (isinstance(data, list) and len(data) == len(query) + 1 and isinstance(data[0], str)):
        raise CursorError("cursor is not one this API returned (unexpected content)")
    if data[1:] != query:
        raise CursorError(
            "cursor belongs to a different query: repeat zone, site and since unchanged"
        )
    return data[0]


# -- SQLite ---------------------------------------------------------------------------


class SqliteStore:
    """:class:`PositionStore` on one SQLite database in WAL mode.

    Raises :class:`StoreError` when the database cannot be opened, written or read.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        clock: Clock,
        dedupe_retention_s: float,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise StoreError(f"store {path}: synchronous must be 'full' or 'normal'")
        if dedupe_retention_s <= 0:
            raise StoreError(f"store {path}: dedupe_retention_s must be positive")
        self.path = Path(path)
        self.synchronous = synchronous
        self.clock = clock
        self.dedupe_retention_s = dedupe_retention_s
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store {self.path}: cannot create folder: {exc.strerror or exc}"
            ) from exc
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, timeout=10.0, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot open: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            for statement in _SCHEMA:
                conn.execute(statement)
            _backfill_sku_stock(conn)
            (depth,) = conn.execute("SELECT COUNT(*) FROM spool").fetchone()
            series = dict(conn.execute("SELECT series, last_ts FROM series_ts").fetchall())
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"store {self.path}: cannot initialise: {exc}") from exc
        if mode is None or str(mode[0]).lower() != "wal":
            conn.close()
            raise StoreError(f"store {self.path}: cannot switch to WAL mode (got {mode})")
        self._conn = conn
        self._depth = int(depth)
        self._series_ts: dict[str, int] = {str(k): int(v) for k, v in series.items()}
        logger.debug("store %s opened; %d points queued for InfluxDB", self.path, self._depth)

    # -- transactions -----------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot {what}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("store %s: rollback failed", self.path)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"store {self.path}: cannot {what}: {exc}") from exc
            raise

    def _read(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._db()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot {what}: {exc}") from exc

    def _stamp(self, series: str, ts_ns: int, pending: dict[str, int]) -> int:
        """A timestamp for a point of ``series``: ``ts_ns`` unless that one is taken."""
        last = pending.get(series)
        if last is None:
            last = self._series_ts.get(series)
        if last is not None and ts_ns <= last:
            ts_ns = last + 1
        pending[series] = ts_ns
        return ts_ns

    def _save_series(self, conn: sqlite3.Connection, pending: dict[str, int]) -> None:
        if pending:
            conn.executemany(
                "INSERT INTO series_ts (series, last_ts) VALUES (?, ?) "
                "ON CONFLICT (series) DO UPDATE SET last_ts = excluded.last_ts",
                list(pending.items()),
            )

    # -- apply ------------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent]) -> ApplyResult:
        """Apply a batch of events in one transaction; see the module docs for the rules.

        Events already processed (same ``event_id``, also within the batch) are counted
        as duplicates and change nothing.
        """
        if not events:
            return ApplyResult(applied=0, duplicates=0)
        now_us = to_us(self.clock.now())
        pending_ts: dict[str, int] = {}
        stock_delta: dict[tuple[str, str], int] = {}
        sku_delta: dict[tuple[str, str, str], int] = {}
        changes: list[PositionChange] = []
        lines: list[tuple[str]] = []
        applied = duplicates = out_of_order = 0
        with self._transaction("apply events") as conn:
            for event in events:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO processed (event_id, processed_us) VALUES (?, ?)",
                    (event.event_id, now_us),
                )
                if cur.rowcount != 1:
                    duplicates += 1
                    continue
                applied += 1
                ts = lineproto.time_ns(event.event_time)
                if isinstance(event, ReaderStatus):
                    series = lineproto.reader_status_series(event)
                    line = lineproto.reader_status_line(event, self._stamp(series, ts, pending_ts))
                elif isinstance(event, DeviceStatus):
                    series = lineproto.device_status_series(event)
                    line = lineproto.device_status_line(event, self._stamp(series, ts, pending_ts))
                else:
                    change = self._apply_movement(conn, event, now_us, stock_delta, sku_delta)
                    if change is None:
                        out_of_order += 1
                    else:
                        changes.append(change)
                    series = lineproto.movement_series(event)
                    line = lineproto.movement_line(
                        event,
                        self._stamp(series, ts, pending_ts),
                        dwell_s=None if change is None else change.dwell_s,
                    )
                lines.append((line,))
            if stock_delta:
                # Not an upsert: the CHECK (count >= 0) would test the proposed new row.
                conn.executemany(
                    "INSERT OR IGNORE INTO stock (site, zone, count) VALUES (?, ?, 0)",
                    list(stock_delta),
                )
                conn.executemany(
                    "UPDATE stock SET count = count + ? WHERE site = ? AND zone = ?",
                    [(d, site, zone) for (site, zone), d in stock_delta.items() if d],
                )
            if sku_delta:
                conn.executemany(
                    "INSERT OR IGNORE INTO sku_stock (site, zone, gtin, count) VALUES (?, ?, ?, 0)",
                    [k for k, d in sku_delta.items() if d],
                )
                changed = [(d, *k) for k, d in sku_delta.items() if d]
                conn.executemany(
                    "UPDATE sku_stock SET count = count + ? "
                    "WHERE site = ? AND zone = ? AND gtin = ?",
                    changed,
                )
                conn.executemany(
                    "DELETE FROM sku_stock WHERE site = ? AND zone = ? AND gtin = ? AND count = 0",
                    [k for _, *k in changed],
                )
            if lines:
                conn.executemany("INSERT INTO spool (line) VALUES (?)", lines)
            self._save_series(conn, pending_ts)
        self._series_ts.update(pending_ts)
        self._depth += len(lines)
        return ApplyResult(
            applied=applied, duplicates=duplicates, changes=changes, out_of_order=out_of_order
        )

    def _apply_movement(
        self,
        conn: sqlite3.Connection,
        event: MovementEvent,
        now_us: int,
        stock_delta: dict[tuple[str, str], int],
        sku_delta: dict[tuple[str, str, str], int],
    ) -> PositionChange | None:
        """Update the item's position if ``event`` is its newest; None if it is older."""
        key = identity_key(event.identity)
        event_us = to_us(event.event_time)
        pair = (event.site, event.zone)
        # Every zone an applied event names gets a stock row, even if it holds 0 items.
        stock_delta.setdefault(pair, 0)
        row = conn.execute(
            "SELECT event_us, event_id, present, site, zone, identity FROM items WHERE item = ?",
            (key,),
        ).fetchone()
        if row is not None:
            old_us, old_id, old_present, old_site, old_zone, old_identity = row
            if (old_us, old_id) > (event_us, event.event_id):
                return None
            if old_present:
                old_pair = (old_site, old_zone)
                stock_delta[old_pair] = stock_delta.get(old_pair, 0) - 1
                # The item key fixes the identity, except a GTIN + quantity's quantity.
                old_sku = (
                    sku_of(IDENTITY.validate_json(old_identity))
                    if isinstance(event.identity, GtinQuantityIdentity)
                    else sku_of(event.identity)
                )
                if old_sku is not None:
                    sku_key = (old_site, old_zone, old_sku[0])
                    sku_delta[sku_key] = sku_delta.get(sku_key, 0) - old_sku[1]
        else:
            old_zone = None
        present = not isinstance(event, Departed)
        if present:
            stock_delta[pair] += 1
            new_sku = sku_of(event.identity)
            if new_sku is not None:
                sku_key = (event.site, event.zone, new_sku[0])
                sku_delta[sku_key] = sku_delta.get(sku_key, 0) + new_sku[1]
        dwell_s = self._dwell(conn, key, event_us, row, present=present, zone=event.zone)
        conn.execute(
            _UPSERT_ITEM,
            (
                key,
                event.epc,
                event.identity.model_dump_json(),
                event.site,
                event.zone if present else None,
                1 if present else 0,
                to_us(event.first_seen),
                to_us(event.last_seen),
                event_us,
                event.event_id,
                event.kind,
                event.zone,
                event.from_zone if isinstance(event, Moved) else None,
                event.reader,
                event.device,
                event.antenna,
                event.read_count,
                event.peak_rssi_dbm,
                now_us,
            ),
        )
        return PositionChange(
            item=key,
            epc=event.epc,
            site=event.site,
            from_zone=old_zone if row is not None and row[2] else None,
            to_zone=event.zone if present else None,
            event=event,
            dwell_s=dwell_s,
        )

    @staticmethod
    def _dwell(
        conn: sqlite3.Connection,
        key: str,
        event_us: int,
        old: Sequence[Any] | None,
        *,
        present: bool,
        zone: str,
    ) -> float | None:
        """Update when the item entered its zone; the dwell in the zone it leaves, if any.

        At most two statements, none for an item seen again where it already was.
        """
        was_present = old is not None and bool(old[2])
        if was_present and present and old is not None and old[4] == zone:
            return None  # still in the same zone
        dwell = None
        if was_present:
            row = conn.execute(
                "DELETE FROM zone_since WHERE item = ? RETURNING since_us", (key,)
            ).fetchone()
            if row is not None:
                dwell = max(0.0, (event_us - int(row[0])) / 1e6)
        if present:
            conn.execute(
                "INSERT OR REPLACE INTO zone_since (item, since_us) VALUES (?, ?)", (key, event_us)
            )
        return dwell

    # -- InfluxDB spool ---------------------------------------------------------------

    def pending_lines(self, limit: int, *, after: int = 0) -> list[tuple[int, str]]:
        """Up to ``limit`` queued ``(seq, line)`` with ``seq > after``, oldest first."""
        if limit <= 0:
            return []
        rows = self._read(
            "read queued points",
            "SELECT seq, line FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(int(seq), str(line)) for seq, line in rows]

    def lines_done(self, seqs: Sequence[int]) -> None:
        """Delete these queued points (written or rejected). Unknown seqs are ignored."""
        if not seqs:
            return
        deleted = 0
        with self._transaction("delete written points") as conn:
            for start in range(0, len(seqs), _DELETE_CHUNK):
                chunk = tuple(seqs[start : start + _DELETE_CHUNK])
                marks = ",".join("?" * len(chunk))
                cur = conn.execute(
                    f"DELETE FROM spool WHERE seq IN ({marks})",  # noqa: S608 - only '?' marks
                    chunk,
                )
                deleted += max(cur.rowcount, 0)
        self._depth -= deleted

    def line_depth(self) -> int:
        """Number of queued points (kept in memory; no query)."""
        return self._depth

    def enqueue_lines(self, lines: Sequence[str]) -> None:
        """Queue extra points in one transaction, after everything queued so far."""
        if not lines:
            return
        with self._transaction("queue points") as conn:
            conn.executemany("INSERT INTO spool (line) VALUES (?)", [(line,) for line in lines])
        self._depth += len(lines)

    def stock_lines(self, now: datetime) -> list[str]:
        """One ``stock`` point per known ``(site, zone)``, empty zones included (count 0).

        Timestamps are unique per series like every other point (the last one used is
        stored). The points are returned, not queued: pass them to :meth:`enqueue_lines`.
        """
        ts = lineproto.time_ns(now)
        pending: dict[str, int] = {}
        out: list[str] = []
        with self._transaction("compute stock points") as conn:
            rows = conn.execute("SELECT site, zone, count FROM stock ORDER BY site, zone")
            for site, zone, count in rows.fetchall():
                stamp = self._stamp(_stock_series(site, zone), ts, pending)
                out.append(lineproto.stock_line(site, zone, int(count), stamp))
            self._save_series(conn, pending)
        self._series_ts.update(pending)
        return out

    # -- queries ----------------------------------------------------------------------

    @staticmethod
    def _position(row: Sequence[Any]) -> ItemPosition:
        (
            item,
            epc,
            identity,
            site,
            zone,
            present,
            first_seen_us,
            last_seen_us,
            event_us,
            event_id,
            kind,
            event_zone,
            from_zone,
            reader,
            device,
            antenna,
            read_count,
            peak_rssi_dbm,
            updated_us,
        ) = row
        return ItemPosition(
            item=item,
            epc=epc,
            identity=json.loads(identity),
            site=site,
            zone=zone,
            present=bool(present),
            last_zone=event_zone,
            first_seen=from_us(first_seen_us),
            last_seen=from_us(last_seen_us),
            last_event=LastEvent(
                event_id=event_id,
                kind=kind,
                time=from_us(event_us),
                site=site,
                device=device,
                reader=reader,
                antenna=antenna,
                zone=event_zone,
                from_zone=from_zone,
                read_count=read_count,
                peak_rssi_dbm=peak_rssi_dbm,
            ),
            updated_at=from_us(updated_us),
        )

    def get_item(self, key: str) -> ItemPosition | None:
        """The position of one item by key (one primary-key lookup)."""
        rows = self._read("read an item", _GET_ITEM, (key,))
        return self._position(rows[0]) if rows else None

    def list_items(
        self,
        *,
        zone: str | None = None,
        site: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[ItemPosition], str | None]:
        """A page of items in key order and the next page's cursor (None on the last page).

        ``zone`` selects the items present in that zone now (with ``site``: of that site
        only); ``site`` alone the items whose latest event was at that site, departed or
        not; ``since`` the items whose latest event is at or after that time. Pages are
        keyset-paginated on the item key, so items added or changed while a client pages
        neither shift nor repeat the rest. The cursor is opaque and bound to the filters:
        :class:`CursorError` if it is malformed or was issued for other filters.
        """
        if limit <= 0:
            raise StoreError("limit must be positive")
        since_us = None if since is None else to_us(since)
        query: list[Any] = [zone, site, since_us]
        where: list[str] = []
        params: list[Any] = []
        if zone is not None:
            where.append("zone = ?")
            params.append(zone)
        if site is not None:
            where.append("site = ?")
            params.append(site)
        if since_us is not None:
            where.append("event_us >= ?")
            params.append(since_us)
        if cursor is not None:
            where.append("item > ?")
            params.append(_decode_cursor(cursor, query))
        sql = f"SELECT {_ITEM_COLUMNS} FROM items"  # noqa: S608 - constant columns, '?' marks
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY item LIMIT ?"
        params.append(limit + 1)
        rows = self._read("list items", sql, params)
        items = [self._position(r) for r in rows[:limit]]
        next_cursor = _encode_cursor(items[-1].item, query) if len(rows) > limit else None
        return items, next_cursor

    def zones(self) -> list[ZoneStock]:
        """Every zone ever seen, by site and name, with its count (0 when empty)."""
        rows = self._read("list zones", "SELECT site, zone, count FROM stock ORDER BY site, zone")
        return [ZoneStock(site=s, zone=z, count=int(c)) for s, z, c in rows]

    def zone(self, zone: str, site: str | None = None) -> list[ZoneStock]:
        """The zone called ``zone`` in each site (or in ``site``); empty if never seen."""
        if site is None:
            rows = self._read(
                "read a zone",
                "SELECT site, zone, count FROM stock WHERE zone = ? ORDER BY site",
                (zone,),
            )
        else:
            rows = self._read(
                "read a zone",
                "SELECT site, zone, count FROM stock WHERE zone = ? AND site = ?",
                (zone, site),
            )
        return [ZoneStock(site=s, zone=z, count=int(c)) for s, z, c in rows]

    def stock(self) -> list[ZoneStock]:
        """The zones holding items now, by site and name."""
        rows = self._read(
            "read stock",
            "SELECT site, zone, count FROM stock WHERE count > 0 ORDER BY site, zone",
        )
        return [ZoneStock(site=s, zone=z, count=int(c)) for s, z, c in rows]

    def sku_stock(
        self, *, site: str | None = None, zone: str | None = None, gtin: str | None = None
    ) -> list[SkuStock]:
        where: list[str] = []
        params: list[str] = []
        for column, value in (("site", site), ("zone", zone), ("gtin", gtin)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT site, zone, gtin, count FROM sku_stock"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read("read stock per SKU", sql + " ORDER BY site, zone, gtin", params)
        return [SkuStock(site=a, zone=b, gtin=c, count=int(d)) for a, b, c, d in rows]

    def recount_skus(self) -> list[SkuStock]:
        """Stock per SKU counted from the items table (slow; for checks and tests)."""
        totals: dict[tuple[str, str, str], int] = {}
        rows = self._read(
            "recount stock per SKU", "SELECT site, zone, identity FROM items WHERE present = 1"
        )
        for site, zone, identity in rows:
            sku = sku_of(IDENTITY.validate_json(identity))
            if sku is not None:
                key = (site, zone, sku[0])
                totals[key] = totals.get(key, 0) + sku[1]
        return [SkuStock(*k, count=n) for k, n in sorted(totals.items()) if n]

    def recount(self) -> list[ZoneStock]:
        """Stock counted from the items table (slow; for checks and tests)."""
        rows = self._read(
            "recount stock",
            "SELECT site, zone, COUNT(*) FROM items WHERE present = 1 "
            "GROUP BY site, zone ORDER BY site, zone",
        )
        return [ZoneStock(site=s, zone=z, count=int(c)) for s, z, c in rows]

    def processed_count(self) -> int:
        """Number of remembered event ids (a full count; for metrics and tests)."""
        ((count,),) = self._read("count processed events", "SELECT COUNT(*) FROM processed")
        return int(count)

    def prune_processed(self, now: datetime, *, max_rows: int = 100_000) -> int:
        """Forget dedupe records processed more than ``dedupe_retention_s`` before ``now``.

        Deletes at most ``max_rows`` per call, so one call never holds the loop for long;
        call again while it returns ``max_rows``. Returns the number removed.
        """
        cutoff = to_us(now) - int(self.dedupe_retention_s * 1_000_000)
        with self._transaction("prune processed events") as conn:
            cur = conn.execute(
                "DELETE FROM processed WHERE event_id IN (SELECT event_id FROM processed "
                "WHERE processed_us < ? ORDER BY processed_us LIMIT ?)",
                (cutoff, max_rows),
            )
            removed = max(cur.rowcount, 0)
        if removed:
            logger.info("store %s: forgot %d processed event ids", self.path, removed)
        return removed

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Close the database. Further calls raise :class:`StoreError`; closing twice is fine."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot close: {exc}") from exc

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
