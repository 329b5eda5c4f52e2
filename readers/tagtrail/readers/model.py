"""Types shared by every reader driver and the edge agent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from tagtrail.events import AnyIdentity, ItemAttributes

logger = logging.getLogger(__name__)

MAX_ANTENNA = 64
"""Highest antenna number events carry (``antenna`` is 1-based)."""

ReaderState = Literal["connecting", "online", "offline", "error"]


@dataclass(frozen=True, slots=True)
class RawRead:
    """One raw tag observation as a driver reports it.

    ``mono`` is the injected clock's monotonic time at receipt (seconds) and ``time`` its
    wall-clock time; the edge smoother works on ``mono`` only.
    """

    reader: str
    antenna: int
    epc: str
    rssi_dbm: float | None
    mono: float
    time: datetime
    pc: int | None = None
    scheme: Literal["epc", "em4100"] = "epc"
    """What ``epc`` holds: a UHF EPC (hex words), or a 125 kHz EM4100 code (10 hex)."""
    identity: AnyIdentity | None = None
    """A barcode scan's GS1 identity (SSCC, GTIN + serial, GTIN + quantity). When set,
    ``epc`` holds its :func:`~tagtrail.events.identity_key` and ``scheme`` is ignored."""
    attributes: ItemAttributes | None = None
    """Batch and expiry a GS1 barcode carries beside its identity."""


@dataclass(slots=True)
class ReaderSnapshot:
    """A driver's health counters at one moment."""

    reader: str
    reader_type: str
    state: ReaderState = "connecting"
    reads_total: int = 0
    read_rate_per_s: float = 0.0
    error_counts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    firmware: str | None = None
    round_read_rate_per_s: int | None = None
    round_total_reads: int | None = None
    antenna_reads: dict[int, int] = field(default_factory=dict)
    """Reads per 1-based antenna since start."""
    counters: dict[str, int] = field(default_factory=dict)
    """Activity that is not an error, by name: a camera's frames and decodes, each
    decoder engine's symbols (``engine_zxing``), frames dropped under load."""
    callback_failures: int = 0
    """Reads whose ``on_read`` callback raised (logged at 1, 10, 100, then every 1000th)."""


ReadCallback = Callable[[RawRead], None]


def deliver(snap: ReaderSnapshot, on_read: ReadCallback, read: RawRead) -> None:
    """Count ``read`` on its antenna and hand it to ``on_read``; a callback that raises is
    counted and logged without flooding the log (1st, 10th, 100th, then every 1000th).

    A read on an antenna outside 1-64 (what events can carry; a reader reporting antenna 0
    or 255) is counted as ``bad_antenna`` and dropped."""
    if not 1 <= read.antenna <= MAX_ANTENNA:
        snap.error_counts["bad_antenna"] = snap.error_counts.get("bad_antenna", 0) + 1
        snap.last_error = f"read on antenna {read.antenna}, outside 1-{MAX_ANTENNA}: dropped"
        return
    snap.antenna_reads[read.antenna] = snap.antenna_reads.get(read.antenna, 0) + 1
    try:
        on_read(read)
    except Exception:
        snap.callback_failures += 1
        n = snap.callback_failures
        if n in (1, 10, 100) or n % 1000 == 0:
            logger.exception("reader %s: on_read callback failed (%d times)", snap.reader, n)


StateCallback = Callable[[ReaderSnapshot], None]


class ReaderDriver(Protocol):
    """What the edge agent needs of a driver.

    ``run`` keeps the reader going until cancelled, reconnecting on its own; it calls
    ``on_read`` (given at construction) for every tag read and ``on_state`` on every
    change of connection state. It never raises for device or data errors.
    """

    @property
    def reader_id(self) -> str: ...

    async def run(self) -> None: ...

    def snapshot(self) -> ReaderSnapshot: ...
