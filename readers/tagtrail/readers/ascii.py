"""Asyncio driver for handheld scanners in serial line mode (USB CDC-ACM or RS-232).

Built on :class:`~tagtrail.readers.scanner.ScannerReader`, a
:class:`~tagtrail.readers.serial_base.SerialReader` (port, idle flush,
reconnects, health snapshot). Lines are framed by
:mod:`tagtrail.readers.protocols.ascii_lines` with the prefix, suffix and AIM setting the
scanner is configured with, and each scan is interpreted by
:class:`~tagtrail.readers.scanner.ScanInterpreter` (EPC line, GS1 identity, or counted and
logged as naming no item).

A scanner takes no commands and is silent between scans, so silence says nothing: it is
reported ``online`` as soon as its port opens and ``offline`` only when the port fails or
disappears (a USB scanner unplugged: hang-up, EIO, or the device node gone when
reopening). Reads carry antenna 1 and no RSSI; the edge smoother treats this reader as an
observation reader (every scan a sighting in its zone, repeats suppressed for
``repeat_suppress_s``).

Counted in ``error_counts``: decode failures by reason (``length``, ``sanity``,
``garbage``, ``truncated``), ``gs1_invalid`` and ``not_item`` scans, and ``disconnects``.
"""

from __future__ import annotations

from tagtrail.clock import Clock
from tagtrail.readers.config import AsciiScannerConfig
from tagtrail.readers.model import ReadCallback, StateCallback
from tagtrail.readers.protocols.ascii_lines import SUFFIXES, LineDecoder
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.scanner import ScannerReader
from tagtrail.readers.serial_base import RATE_WINDOW_S


class AsciiScanner(ScannerReader):
    """One line-mode scanner on one serial port. Implements ``ReaderDriver``."""

    reader_type = "ascii"

    def __init__(
        self,
        config: AsciiScannerConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config  # the decoder, made in the base's __init__, reads it
        super().__init__(
            config,
            clock,
            on_read,
            on_state,
            idle_flush_s=idle_flush_s,
            rate_window_s=rate_window_s,
        )

    def _new_decoder(self) -> StreamDecoderLike:
        cfg = self._cfg
        return LineDecoder(
            prefix=cfg.prefix.encode("ascii"), suffix=SUFFIXES[cfg.suffix], aim=cfg.aim
        )
