"""Types shared by every reader driver and the edge agent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from tagtrail.events import AnyIdentity, ItemAttributes

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


ReadCallback = Callable[[RawRead], None]
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
