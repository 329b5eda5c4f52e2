"""Asyncio driver for UHF readers speaking the R2000 serial protocol.

Built on :class:`~tagtrail.readers.serial_base.SerialReader`, which owns the port (pyserial,
non-blocking, watched with ``loop.add_reader``; no threads, no polling), the decoder's idle
flush, reconnects and the health snapshot. This module holds the R2000 conversation:

1. on connect, ask for the firmware version until the reader answers (each
   unanswered query counts a ``timeouts``); the state is ``connecting`` until then,
   ``online`` after;
2. then forever, for each configured antenna: set the work antenna and await its
   result (an error code such as 0x22 antenna missing is counted as ``reader_0x22``
   and the antenna skipped), start a real-time inventory with the configured
   ``repeat`` and deliver every tag frame as a :class:`~tagtrail.readers.model.RawRead`
   until the round-end frame, an error frame or ``round_timeout_s`` (``timeouts``).
   A round that found no tag ends with result code 0x36 (``no_tag_error``): that is an
   empty round, counted in ``counters`` as ``empty_rounds`` and reported as a round of 0
   reads, not an error.
   If a frame fails to decode during a request and the line then stays quiet for
   ``idle_flush_s``, the lost frame was most likely the awaited answer: the request
   ends early (also counted as ``timeouts``) instead of stalling the whole round.

Tags are delivered whenever they arrive, with the antenna the reader reported in the
frame (1-based), independent of the configured zones. Decoder failures are counted by
reason. When the line goes quiet for ``idle_flush_s`` with a partial frame or garbage
held, the decoder is flushed, so a frame cut short is reported as ``truncated``
without waiting for more bytes.

If the port cannot be opened, or reading or writing fails (EIO, hang-up, end of
file), the port is closed, the held partial frame flushed, ``disconnects`` counted
once per outage, the state set ``offline`` and the port reopened after a backoff
doubling from ``reconnect_initial_s`` to ``reconnect_max_s``, forever. ``run`` only
ends by cancellation, which closes the port.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NoReturn

from tagtrail.clock import Clock
from tagtrail.readers.config import R2000ReaderConfig
from tagtrail.readers.model import RawRead, ReadCallback, StateCallback
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.protocols.r2000 import (
    CMD_GET_FIRMWARE,
    CMD_REALTIME_INVENTORY,
    CMD_SESSION_INVENTORY,
    CMD_SET_WORK_ANTENNA,
    Record,
    Reply,
    ResultCode,
    RoundEnd,
    StreamDecoder,
    TagRecord,
    cmd_get_firmware,
    cmd_realtime_inventory,
    cmd_set_work_antenna,
)
from tagtrail.readers.serial_base import RATE_WINDOW_S, SerialReader

NO_TAG = 0x36
"""Result code of an inventory round that found no tag (``no_tag_error``)."""
_INVENTORY = frozenset({CMD_REALTIME_INVENTORY, CMD_SESSION_INVENTORY})

logger = logging.getLogger(__name__)


def _is_firmware_answer(rec: Record) -> bool:
    return rec.command == CMD_GET_FIRMWARE and isinstance(rec, Reply | ResultCode)


def _is_antenna_answer(rec: Record) -> bool:
    return rec.command == CMD_SET_WORK_ANTENNA and isinstance(rec, ResultCode)


def _is_round_end(rec: Record) -> bool:
    return rec.command == CMD_REALTIME_INVENTORY and isinstance(rec, RoundEnd | ResultCode)


class R2000Reader(SerialReader[Record]):
    """One R2000 reader on one serial port. Implements ``ReaderDriver``."""

    reader_type = "r2000"

    def __init__(
        self,
        config: R2000ReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config
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
        return StreamDecoder()

    def _on_record(self, rec: Record, mono: float, wall: datetime) -> RawRead | None:
        if isinstance(rec, TagRecord):
            return RawRead(
                reader=self._cfg.id,
                antenna=rec.antenna,
                epc=rec.epc,
                rssi_dbm=float(rec.rssi_dbm),
                mono=mono,
                time=wall,
                pc=rec.pc,
            )
        if isinstance(rec, RoundEnd):
            self._snap.round_read_rate_per_s = rec.read_rate
            self._snap.round_total_reads = rec.total_reads
        elif isinstance(rec, ResultCode) and rec.code == NO_TAG and rec.command in _INVENTORY:
            # A round that found no tag: normal at an empty door, not an error.
            self._snap.round_read_rate_per_s = 0
            self._snap.round_total_reads = 0
            counters = self._snap.counters
            counters["empty_rounds"] = counters.get("empty_rounds", 0) + 1
        elif isinstance(rec, ResultCode) and not rec.ok:
            self._count(f"reader_0x{rec.code:02X}")
            self._snap.last_error = f"reader error {rec.name} on command 0x{rec.command:02X}"
        return None

    async def _converse(self) -> NoReturn:
        await self._query_firmware()
        self._set_state("online")
        await self._inventory_forever()

    # -- conversation --

    async def _query_firmware(self) -> None:
        while True:
            rec = await self._request(
                cmd_get_firmware(self._cfg.address), _is_firmware_answer, self._cfg.round_timeout_s
            )
            if rec is None:
                self._count("timeouts")
                self._snap.last_error = "no answer to get-firmware"
                continue
            if isinstance(rec, Reply):
                self._snap.firmware = rec.firmware() or rec.data.hex().upper()
            return

    async def _inventory_forever(self) -> NoReturn:
        addr = self._cfg.address
        timeout_s = self._cfg.round_timeout_s
        while True:
            for antenna in self._cfg.antennas:
                res = await self._request(
                    cmd_set_work_antenna(addr, antenna.port), _is_antenna_answer, timeout_s
                )
                if res is None:
                    self._count("timeouts")
                    self._snap.last_error = f"no answer to set antenna {antenna.port}"
                    continue
                if not isinstance(res, ResultCode) or not res.ok:
                    continue  # counted when it arrived
                end = await self._request(
                    cmd_realtime_inventory(addr, self._cfg.repeat), _is_round_end, timeout_s
                )
                if end is None:
                    self._count("timeouts")
                    self._snap.last_error = f"inventory round on antenna {antenna.port} timed out"
