"""Asyncio driver for 125 kHz EM4100 readers pushing ASCII frames (RDM6300, ID-12/ID-20).

Built on :class:`~tagtrail.readers.serial_base.SerialReader`, which owns the port, the
decoder's idle flush, reconnects and the health snapshot. The frames are decoded by
:mod:`tagtrail.readers.protocols.em4100` (14-byte RDM6300 and 16-byte ID-12/ID-20 forms).

These readers take no commands: there is nothing to send, so the driver opens the port,
reports ``online`` at once and listens. While a card stays in the field the reader sends
its frame again and again (the RDM6300 about every 50 ms); each frame becomes a
:class:`~tagtrail.readers.model.RawRead` with ``antenna=1`` (the one coil), ``epc`` the 10
upper-case hex digits of the 40-bit EM4100 code and no RSSI. Presence and departure are
the edge smoother's business, as for any reader.

Offline detection: a reader with no card in its field is silent, and so is a reader that
has died, so silence says nothing and there is no silence timeout. The driver reports
``offline`` only when the port itself fails or disappears (USB adapter unplugged: EIO,
hang-up, end of file, or the device node gone when reopening), and reopens it with the
usual backoff.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from tagtrail.clock import Clock
from tagtrail.readers.config import EM4100ReaderConfig
from tagtrail.readers.model import RawRead, ReadCallback, StateCallback
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.protocols.em4100 import StreamDecoder, TagRecord
from tagtrail.readers.serial_base import RATE_WINDOW_S, SerialReader


class EM4100Reader(SerialReader[TagRecord]):
    """One EM4100 reader on one serial port. Implements ``ReaderDriver``."""

    reader_type = "em4100"

    def __init__(
        self,
        config: EM4100ReaderConfig,
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

    def _new_decoder(self) -> StreamDecoderLike:
        return StreamDecoder()

    def _on_record(self, rec: TagRecord, mono: float, wall: datetime) -> RawRead | None:
        return RawRead(
            reader=self._cfg.id,
            antenna=1,
            epc=rec.code,
            rssi_dbm=None,
            mono=mono,
            time=wall,
            scheme="em4100",
        )

    async def _converse(self) -> NoReturn:
        # Nothing to ask: the port being open is all there is to know.
        self._set_state("online")
        await self._until_link_lost()
