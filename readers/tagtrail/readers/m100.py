"""Asyncio driver for M100 / QM100 / E710-class UHF modules (``0xBB ... 0x7E`` frames).

Built on :class:`~tagtrail.readers.serial_base.SerialReader`, which owns the port (pyserial,
non-blocking, watched with ``loop.add_reader``; no threads, no polling), the decoder's idle
flush, reconnects and the health snapshot. Frames are decoded by
:mod:`tagtrail.readers.protocols.m100`. This module holds the conversation:

1. on connect, ask for the module information, kind 0 (hardware version, ``0x03``),
   until the module answers (each unanswered query counts a ``timeouts``); the state is
   ``connecting`` until then, ``online`` after. The answer's text is kept as the
   snapshot's ``firmware``. A ``command_error`` (0x17) reply also proves the module is
   there (the firmware then stays unknown).
2. then forever: send a multiple poll (``0x27``) for ``poll_count`` rounds and deliver
   every tag notice as a :class:`~tagtrail.readers.model.RawRead` on antenna 1 (the
   modules have one antenna port) with the EPC, the RSSI in dBm and the PC word. An
   error reply ``0x15`` (inventory fail: a round found no tag) is an ordinary empty
   round, not an error; any other error code is counted as ``reader_0xNN``.

How the driver knows a multiple poll has ended: the module sends nothing special after
its last round (the user protocol defines no end-of-run frame; a run ends silently after
``poll_count`` rounds or when stopped with ``0x28``). While a run is going, every round
sends something: a notice per tag read, or the ``0x15`` error when the round found no
tag. So the run is taken as over when the line has been quiet for ``round_timeout_s``.
The driver then sends stop (``0x28``) and awaits its one-byte status answer (documented
as ``BB 01 28 00 01 00 2A 7E``), which both confirms the module is still there and
guarantees no run is left going (a module that reports no empty rounds is stopped
rather than doubled up), and issues the next multiple poll. A multiple poll that
brought no frame at all before the quiet gap, and a stop left unanswered for
``round_timeout_s``, each count a ``timeouts``. Readers lose at most
``round_timeout_s`` (plus one round trip) of reading every ``poll_count`` rounds: raise
``poll_count`` to make the gap rarer.

On cancellation the driver writes a stop (``0x28``) best effort, so the module does not
keep polling into a closed port, and closes the port.

Decoder failures are counted by reason; when the line goes quiet for ``idle_flush_s``
with a partial frame or garbage held, the decoder is flushed. If the port cannot be
opened, or reading or writing fails, the port is closed, ``disconnects`` counted once per
outage, the state set ``offline`` and the port reopened with a doubling backoff, forever
(all from the base class).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import datetime
from typing import NoReturn

from tagtrail.clock import Clock
from tagtrail.readers.config import M100ReaderConfig
from tagtrail.readers.model import RawRead, ReadCallback, StateCallback
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.protocols.m100 import (
    ANTENNA,
    CMD_STOP_MULTIPLE_POLL,
    ErrorReply,
    ModuleInfo,
    Record,
    Response,
    StreamDecoder,
    TagNotice,
    cmd_module_info,
    cmd_multiple_poll,
    cmd_stop_multiple_poll,
)
from tagtrail.readers.serial_base import RATE_WINDOW_S, LinkLostError, SerialReader

logger = logging.getLogger(__name__)

INFO_HARDWARE = 0
"""Module-information kind asked for on connect (hardware version)."""

ERROR_NO_TAG = 0x15
"""Inventory fail: a poll round found no tag. An ordinary empty round."""

ERROR_COMMAND = 0x17
"""Command error: the module did not understand or accept the command."""


def _is_module_info_answer(rec: Record) -> bool:
    return isinstance(rec, ModuleInfo) or (
        isinstance(rec, ErrorReply) and rec.code == ERROR_COMMAND
    )


def _is_stop_answer(rec: Record) -> bool:
    return isinstance(rec, Response) and rec.command == CMD_STOP_MULTIPLE_POLL


class M100Reader(SerialReader[Record]):
    """One M100/QM100/E710-class module on one serial port. Implements ``ReaderDriver``."""

    reader_type = "m100"

    def __init__(
        self,
        config: M100ReaderConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config
        self._poll_frames = 0
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
        if isinstance(rec, TagNotice):
            self._poll_frames += 1
            return RawRead(
                reader=self._cfg.id,
                antenna=ANTENNA,
                epc=rec.epc,
                rssi_dbm=float(rec.rssi_dbm),
                mono=mono,
                time=wall,
                pc=rec.pc,
                scheme="epc",
            )
        if isinstance(rec, ErrorReply):
            self._poll_frames += 1
            if rec.code != ERROR_NO_TAG:
                self._count(f"reader_0x{rec.code:02X}")
                self._snap.last_error = f"reader error {rec.name} (0x{rec.code:02X})"
        elif isinstance(rec, Response):
            ok = rec.ok()
            if ok is False:
                self._count(f"reader_0x{rec.data[0]:02X}")
                self._snap.last_error = (
                    f"reader status 0x{rec.data[0]:02X} on command 0x{rec.command:02X}"
                )
        return None

    async def _converse(self) -> NoReturn:
        try:
            await self._query_module_info()
            self._set_state("online")
            await self._poll_forever()
        except asyncio.CancelledError:
            self._stop_best_effort()
            raise

    # -- conversation --

    async def _query_module_info(self) -> None:
        while True:
            rec = await self._request(
                cmd_module_info(INFO_HARDWARE), _is_module_info_answer, self._cfg.round_timeout_s
            )
            if rec is None:
                self._count("timeouts")
                self._snap.last_error = "no answer to get module information"
                continue
            if isinstance(rec, ModuleInfo):
                text = rec.text.replace("\x00", "").strip()
                self._snap.firmware = text or rec.data.hex().upper()
            return

    async def _poll_forever(self) -> NoReturn:
        lost = asyncio.ensure_future(self._until_link_lost())
        try:
            while True:
                await self._poll_run(lost)
                answer = await self._request(
                    cmd_stop_multiple_poll(), _is_stop_answer, self._cfg.round_timeout_s
                )
                if answer is None:
                    self._count("timeouts")
                    self._snap.last_error = "no answer to stop multiple poll"
        finally:
            if lost.done():
                if not lost.cancelled():
                    lost.exception()  # mark retrieved
            else:
                lost.cancel()
                with contextlib.suppress(asyncio.CancelledError, LinkLostError):
                    await lost

    async def _poll_run(self, lost: asyncio.Future[NoReturn]) -> None:
        """Send one multiple poll and wait until the line has been quiet for the timeout."""
        loop = asyncio.get_running_loop()
        quiet_s = self._cfg.round_timeout_s
        self._poll_frames = 0
        await self._write(cmd_multiple_poll(self._cfg.poll_count))
        sent = loop.time()
        while True:
            remaining = max(self._last_rx, sent) + quiet_s - loop.time()
            if remaining <= 0:
                break
            # sleeps until the quiet deadline (re-armed only if bytes came meanwhile)
            await asyncio.wait({lost}, timeout=remaining)
            if lost.done():
                lost.result()  # raises LinkLostError
        if not self._poll_frames:
            self._count("timeouts")
            self._snap.last_error = "multiple poll brought no tag notice or no-tag reply"

    def _stop_best_effort(self) -> None:
        """Write a stop without waiting (the task is being cancelled)."""
        if self._fd < 0 or self._lost is not None:
            return
        try:
            os.write(self._fd, cmd_stop_multiple_poll())
        except OSError as exc:
            logger.debug("reader %s: stop on cancel: %s", self._cfg.id, exc)
