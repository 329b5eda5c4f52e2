"""A small SQLite-backed LineQueue for the InfluxDB writer's tests.

The gateway's positions store is the real queue; this one has the same contract
(:class:`tagtrail.gateway.influx.LineQueue`) so the writer can be tested on its own, with
a real database file that survives the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class SqliteLineQueue:
    """Lines in a table ``lines(seq, line)``; every call commits on its own."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS lines (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "line TEXT NOT NULL)"
        )
        self.done_calls = 0

    def pending_lines(self, limit: int) -> list[tuple[int, str]]:
        rows = self._db.execute(
            "SELECT seq, line FROM lines ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [(int(seq), str(line)) for seq, line in rows]

    def lines_done(self, seqs: Sequence[int]) -> None:
        self.done_calls += 1
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM lines WHERE seq = ?", [(s,) for s in seqs])

    def line_depth(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM lines").fetchone()
        return int(count)

    def enqueue_lines(self, lines: Sequence[str]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO lines (line) VALUES (?)", [(x,) for x in lines])

    def all_lines(self) -> list[str]:
        return [line for _, line in self.pending_lines(1_000_000_000)]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteLineQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
