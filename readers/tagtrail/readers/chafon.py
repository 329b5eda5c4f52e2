"""Asyncio driver for Chafon UHFReader18 / UHFReader288-protocol readers.

Built on :class:`~tagtrail.readers.serial_base.SerialReader`, which owns the port (pyserial,
non-blocking, watched with ``loop.add_reader``; no threads, no polling), the decoder's idle
flush, reconnects and the health snapshot. Frames are decoded by
:mod:`tagtrail.readers.protocols.chafon` with the configured ``layout`` pinned (nothing on
the wire tells the two generations apart). This module holds the conversation:

1. on connect, ask for the reader information (``0x21``) until the reader answers (each
   unanswered query counts a ``timeouts``); the state is ``connecting`` until then,
   ``online`` after. The answer's version (``major.minor``) is kept as the snapshot's
   ``firmware``. An error reply to ``0x21`` also proves the reader is there (the
   firmware then stays unknown).
2. then forever, for each configured antenna in turn, one inventory round: layout
   ``'288'`` sends the UHFReader288 inventory (``0x01`` with the configured Q, session,
   antenna and scan time), layout ``'18'`` the parameterless UHFReader18 inventory.
   Every tag is delivered as a :class:`~tagtrail.readers.model.RawRead` with the antenna
   the reply's ``Ant`` mask names (one bit set), else the polled antenna (the UHFReader18
   layout carries no antenna), the EPC, no RSSI in dBm (the protocol's RSSI byte has no
   documented unit) and no PC word.

How a round ends: an inventory reply with status 0x03 says more frames follow; any other
inventory reply ends the round. 0x01 (finished), 0x02 (scan time ran out) and 0x04 (reader
memory full) are ordinary ends, as is 0xFB (no tag: an empty round, not an error). Any
other status that is not ``ok`` in the protocol's table (e.g. 0xF8 antenna error) ends the
round too and is counted as ``reader_0xNN`` with ``last_error``. A round that has not
ended after ``round_timeout_s`` counts a ``timeouts`` and the next antenna is polled; so
does a round whose answer was lost to a decode failure (the line went quiet for
``idle_flush_s`` after a failure, see :meth:`SerialReader._request`). ``round_timeout_s``
must therefore exceed the configured ``scan_time``, which the reader may use in full.

With address 0xFF (broadcast) any reader address is accepted in replies; otherwise only
the configured one. The inventory command cannot be stopped, so cancellation only closes
the port (the reader finishes its scan time on its own).

Decoder failures are counted by reason; if the port cannot be opened, or reading or
writing fails, the port is closed, ``disconnects`` counted once per outage, the state set
``offline`` and the port reopened with a doubling backoff, forever (all from the base
class).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NoReturn

from tagtrail.clock import Clock
from tagtrail.readers.config import ChafonReaderConfig
from tagtrail.readers.model import RawRead, ReadCallback, StateCallback
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.protocols.chafon import (
    BROADCAST,
    CMD_GET_READER_INFO,
    CMD_INVENTORY,
    STATUS_MORE_DATA,
    STATUS_NO_TAG,
    InventoryStats,
    InventoryStatus,
    ReaderInfo,
    Record,
    Reply,
    StreamDecoder,
    TagRead,
    cmd_get_reader_info,
    cmd_inventory,
    cmd_inventory_18,
    status_name,
)
from tagtrail.readers.serial_base import RATE_WINDOW_S, SerialReader

logger = logging.getLogger(__name__)


def _ends_round(rec: Record) -> bool:
    """Whether an inventory record closes its round (for a tag: the last of its frame)."""
    if isinstance(rec, TagRead):
        return (
            rec.command == CMD_INVENTORY
            and rec.status != STATUS_MORE_DATA
            and rec.index == rec.count - 1
        )
    if isinstance(rec, InventoryStatus | Reply):
        return rec.command == CMD_INVENTORY and rec.status != STATUS_MORE_DATA
    return False


def _is_info_answer(rec: Record) -> bool:
    return isinstance(rec, ReaderInfo) or (
        isinstance(rec, Reply) and rec.command == CMD_GET_READER_INFO
    )


class ChafonReader(SerialReader[Record]):
    """One Chafon UHFReader18/288 reader on one serial port. Implements ``ReaderDriver``."""

    reader_type = "chafon"

    def __init__(
        self,
        config: ChafonReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config
        self._polled = config.antennas[0].port
        super().__init__(
            config,
            clock,
            on_read,
            on_state,
            idle_flush_s=idle_flush_s,
            rate_window_s=rate_window_s,
        )

    # -- SerialReader hooks --

    def _new_decoder(self) -> StreamDecoderLike:
        return StreamDecoder(layout=self._cfg.layout)

    def _ours(self, rec: Record) -> bool:
        return self._cfg.address in {BROADCAST, rec.address}

    def _on_record(self, rec: Record, mono: float, wall: datetime) -> RawRead | None:
        if isinstance(rec, TagRead):
            if _ends_round(rec) and self._ours(rec):
                # a tag record is delivered, not offered to the request: end the round here
                waiter = self._waiter
                if waiter is not None and not waiter[1].done() and waiter[0](rec):
                    waiter[1].set_result(rec)
            return RawRead(
                reader=self._cfg.id,
                antenna=rec.antenna if rec.antenna is not None else self._polled,
                epc=rec.epc,
                rssi_dbm=None,
                mono=mono,
                time=wall,
            )
        if isinstance(rec, InventoryStats):
            self._snap.round_read_rate_per_s = rec.read_rate
            self._snap.round_total_reads = rec.total_count
        elif isinstance(rec, Reply) and not rec.ok and rec.status != STATUS_NO_TAG:
            self._count(f"reader_0x{rec.status:02X}")
            self._snap.last_error = (
                f"reader status {status_name(rec.status)} (0x{rec.status:02X}) "
                f"on command 0x{rec.command:02X}"
            )
        return None

    async def _converse(self) -> NoReturn:
        await self._query_reader_info()
        self._set_state("online")
        await self._inventory_forever()

    # -- conversation --

    async def _query_reader_info(self) -> None:
        while True:
            rec = await self._request(
                cmd_get_reader_info(self._cfg.address),
                lambda r: _is_info_answer(r) and self._ours(r),
                self._cfg.round_timeout_s,
            )
            if rec is None:
                self._count("timeouts")
                self._snap.last_error = "no answer to get reader information"
                continue
            if isinstance(rec, ReaderInfo):
                self._snap.firmware = rec.firmware
            return

    def _inventory_command(self, port: int) -> bytes:
        cfg = self._cfg
        if cfg.layout == "18":
            return cmd_inventory_18(cfg.address)
        return cmd_inventory(
            cfg.address, q=cfg.q, session=cfg.session, antenna=port, scan_time=cfg.scan_time
        )

    async def _inventory_forever(self) -> NoReturn:
        while True:
            for antenna in self._cfg.antennas:
                self._polled = antenna.port
                end = await self._request(
                    self._inventory_command(antenna.port),
                    lambda r: _ends_round(r) and self._ours(r),
                    self._cfg.round_timeout_s,
                )
                if end is None:
                    self._count("timeouts")
                    self._snap.last_error = f"inventory round on antenna {antenna.port} timed out"
