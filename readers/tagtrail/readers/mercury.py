"""Asyncio driver for ThingMagic/JADAK Mercury modules (M6e, M7e, Nano, Micro; ``0xFF`` frames).

Built on :class:`~tagtrail.readers.serial_base.SerialReader`, which owns the port (pyserial,
non-blocking, watched with ``loop.add_reader``; no threads, no polling), the decoder's idle
flush, reconnects and the health snapshot. Frames are decoded by
:mod:`tagtrail.readers.protocols.mercury`. This module holds the conversation:

1. on connect, ask for the version (``0x03``) until the module answers (each unanswered
   query counts a ``timeouts``); the state is ``connecting`` until then, ``online``
   after. The reply's firmware version, firmware date and hardware version are kept as
   the snapshot's ``firmware``. An error status to ``0x03`` also proves the module is
   there (the firmware then stays unknown).
2. set the tag protocol to Gen2 (``0x93``), the configured region (``0x97``), the
   configured antenna ports (``0x91``, each port transmitting and receiving on itself)
   and the read power (``0x92``). Each is awaited for ``round_timeout_s``; an unanswered
   one counts a ``timeouts``, a failing status a ``reader_0xNNNN`` with ``last_error``,
   and the setup goes on either way (the module keeps its previous setting).
3. start continuous reading (``0x2F`` / ``0x22``) with tag streaming, cycle
   ``on_time_ms`` and the metadata :data:`METADATA_FLAGS` (read count, RSSI, antenna,
   frequency, timestamp, protocol). Every streamed tag record is delivered as a
   :class:`~tagtrail.readers.model.RawRead` on its TX antenna port with the EPC, the RSSI
   in dBm and the Gen2 PC word. A record whose tag CRC does not match its PC and EPC is
   counted as ``tag_crc`` and dropped.

While reading, the module sends a keep-alive (status ``0x0400`` on ``0x22``) after every
search cycle that found no tag; keep-alives are not reads. A temperature throttle
(status ``0x0504``) is counted as ``throttled`` and noted in ``last_error``; any other
failing status as ``reader_0xNNNN``. If no record at all (tag, keep-alive or reply)
arrives for ``silence_timeout_s``, the module is taken as gone: a ``timeouts`` is
counted, a stop is written best effort and the link is dropped, so the base class
counts a ``disconnects``, goes ``offline`` and reopens the port (setting the module up
again).

On cancellation the driver writes a stop of continuous reading (``2F 00 00 02``) best
effort, so the module does not keep streaming into a closed port, and closes the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

from tagtrail.clock import Clock
from tagtrail.readers.config import MercuryReaderConfig
from tagtrail.readers.model import RawRead, ReadCallback, StateCallback
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.protocols.mercury import (
    META_ANTENNA,
    META_FREQUENCY,
    META_PROTOCOL,
    META_READ_COUNT,
    META_RSSI,
    META_TIMESTAMP,
    OP_MULTI_PROTOCOL_TAG_OP,
    OP_SET_ANTENNA_PORT,
    OP_SET_READ_TX_POWER,
    OP_SET_REGION,
    OP_SET_TAG_PROTOCOL,
    OP_VERSION,
    PROTOCOL_GEN2,
    KeepAlive,
    Record,
    Reply,
    StatusError,
    StreamDecoder,
    TagRead,
    TemperatureThrottle,
    cmd_get_version,
    cmd_set_antenna_ports,
    cmd_set_read_power,
    cmd_set_region,
    cmd_set_tag_protocol,
    cmd_start_continuous_read,
    cmd_stop_continuous_read,
)
from tagtrail.readers.serial_base import RATE_WINDOW_S, LinkLostError, SerialReader

logger = logging.getLogger(__name__)

METADATA_FLAGS = (
    META_READ_COUNT | META_RSSI | META_ANTENNA | META_FREQUENCY | META_TIMESTAMP | META_PROTOCOL
)
"""Metadata asked for in every streamed tag record."""


def _answers(opcode: int) -> Callable[[Record], bool]:
    """A matcher for the response to a command with ``opcode`` (any status)."""

    def match(rec: Record) -> bool:
        return rec.opcode == opcode and not isinstance(rec, TagRead | KeepAlive)

    return match


def _firmware_text(rec: Reply) -> str:
    version = rec.version()
    if version is None:
        return rec.data.hex().upper()
    return (
        f"firmware {version['firmware']} ({version['firmware_date']}), "
        f"hardware {version['hardware']}"
    )


class MercuryReader(SerialReader[Record]):
    """One Mercury module on one serial port. Implements ``ReaderDriver``."""

    reader_type = "mercury"

    def __init__(
        self,
        config: MercuryReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config
        self._last_heard = 0.0
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
        self._last_heard = asyncio.get_running_loop().time()
        if isinstance(rec, TagRead):
            if rec.tag_crc_ok is False:
                self._count("tag_crc")
                self._snap.last_error = f"tag CRC mismatch on EPC {rec.epc}"
                return None
            antenna = rec.antenna if rec.antenna is not None else self._cfg.antennas[0].port
            return RawRead(
                reader=self._cfg.id,
                antenna=antenna,
                epc=rec.epc,
                rssi_dbm=None if rec.rssi_dbm is None else float(rec.rssi_dbm),
                mono=mono,
                time=wall,
                pc=rec.pc,
                scheme="epc",
            )
        if isinstance(rec, TemperatureThrottle):
            self._count("throttled")
            self._snap.last_error = (
                f"temperature exceeds limits (status 0x0504) on opcode 0x{rec.opcode:02X}"
            )
        elif isinstance(rec, StatusError):
            self._count(f"reader_0x{rec.status:04X}")
            self._snap.last_error = (
                f"reader status {rec.name} (0x{rec.status:04X}) on opcode 0x{rec.opcode:02X}"
            )
        return None

    async def _converse(self) -> NoReturn:
        try:
            await self._query_version()
            self._set_state("online")
            await self._set_up()
            await self._stream()
        except asyncio.CancelledError:
            self._stop_best_effort()
            raise

    # -- conversation --

    async def _query_version(self) -> None:
        while True:
            rec = await self._request(
                cmd_get_version(), _answers(OP_VERSION), self._cfg.round_timeout_s
            )
            if rec is None:
                self._count("timeouts")
                self._snap.last_error = "no answer to get version"
                continue
            if isinstance(rec, Reply):
                self._snap.firmware = _firmware_text(rec)
            return

    async def _set_up(self) -> None:
        cfg = self._cfg
        steps = (
            ("set tag protocol", OP_SET_TAG_PROTOCOL, cmd_set_tag_protocol(PROTOCOL_GEN2)),
            ("set region", OP_SET_REGION, cmd_set_region(cfg.region)),
            (
                "set antenna ports",
                OP_SET_ANTENNA_PORT,
                cmd_set_antenna_ports([a.port for a in cfg.antennas]),
            ),
            ("set read power", OP_SET_READ_TX_POWER, cmd_set_read_power(cfg.read_power_cdbm)),
            (
                "start continuous reading",
                OP_MULTI_PROTOCOL_TAG_OP,
                cmd_start_continuous_read(METADATA_FLAGS, cfg.on_time_ms),
            ),
        )
        for name, opcode, frame in steps:
            rec = await self._request(frame, _answers(opcode), cfg.round_timeout_s)
            if rec is None:
                self._count("timeouts")
                self._snap.last_error = f"no answer to {name}"
            # a failing status was counted by _on_record; the setup goes on regardless

    async def _stream(self) -> NoReturn:
        """Watch the stream until the link fails or the module falls silent."""
        loop = asyncio.get_running_loop()
        silence_s = self._cfg.silence_timeout_s
        self._last_heard = loop.time()
        lost = asyncio.ensure_future(self._until_link_lost())
        try:
            while True:
                remaining = self._last_heard + silence_s - loop.time()
                if remaining <= 0:
                    reason = f"nothing from the module for {silence_s:g} s while reading"
                    self._count("timeouts")
                    self._snap.last_error = reason
                    self._stop_best_effort()
                    raise LinkLostError(reason)
                await asyncio.wait({lost}, timeout=remaining)
                if lost.done():
                    lost.result()  # raises LinkLostError
        finally:
            if lost.done():
                if not lost.cancelled():
                    lost.exception()  # mark retrieved
            else:
                lost.cancel()
                with contextlib.suppress(asyncio.CancelledError, LinkLostError):
                    await lost

    def _stop_best_effort(self) -> None:
        """Write a stop of continuous reading without waiting."""
        if self._fd < 0 or self._lost is not None:
            return
        try:
            os.write(self._fd, cmd_stop_continuous_read())
        except OSError as exc:
            logger.debug("reader %s: stop continuous reading: %s", self._cfg.id, exc)
