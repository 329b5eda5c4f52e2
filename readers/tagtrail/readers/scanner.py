"""What a scan means: the one place that turns a scanner's line into a tagtrail read.

Both handheld-scanner drivers (serial line mode, :mod:`tagtrail.readers.ascii`, and
keyboard wedge, :mod:`tagtrail.readers.hid`) decode their bytes into
:class:`~tagtrail.readers.protocols.ascii_lines.Scan` records (text plus AIM symbology
identifier) and hand them to :class:`ScanInterpreter`:

* an RFID handheld's EPC line (no AIM identifier, 24-124 hex digits in whole words) is an
  EPC read, ``RawRead(epc=HEX)``;
* a GS1 payload is parsed by :func:`tagtrail.readers.gs1.parse_scan` (classified by its
  symbology identifier first, check digits validated) into an SSCC, GTIN + serial or GTIN
  + quantity identity, ``RawRead(identity=...)`` with ``epc`` holding its identity key;
* a GS1 payload that cannot be trusted (bad check digit, merged fields after a missing GS,
  impossible date) is counted as ``gs1_invalid`` and logged with the reason; it is never
  turned into a wrong identity;
* GS1 batch (10) and expiry (17) travel with the identity as
  :class:`~tagtrail.events.ItemAttributes`;
* any other symbol (a location label in Code 128, a URL in a QR code) is a ``code``
  identity: its symbology name, AIM identifier when known, and text;
* GS1 data without an item key (a bare batch label) is counted as ``not_item`` and
  logged with its text.

Every scan is read from antenna 1 (the scanner is its own read point) without RSSI.

:class:`ScannerReader` is what both scanner drivers share on top of
:class:`~tagtrail.readers.serial_base.SerialReader`: a device that takes no commands and
is silent between scans (online as soon as it is open), and scans interpreted here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NoReturn, Protocol

from tagtrail.clock import Clock
from tagtrail.events import AnyIdentity, CodeIdentity, ItemAttributes, identity_key
from tagtrail.readers.gs1 import Gs1Error, parse_scan
from tagtrail.readers.model import RawRead, ReadCallback, StateCallback
from tagtrail.readers.protocols.ascii_lines import Scan, epc_of
from tagtrail.readers.serial_base import RATE_WINDOW_S, LinkSettings, SerialReader

logger = logging.getLogger(__name__)

SCAN_OUTCOMES = ("epc", "gs1", "code", "gs1_invalid", "not_item")
MAX_CODE_TEXT = 1024


class ScanInterpreter:
    """Turns scans of one reader into reads; ``count`` receives outcome names to count
    (``gs1_invalid``, ``not_item``)."""

    def __init__(
        self,
        reader: str,
        *,
        gs_substitutes: Sequence[str] = (),
        count: Callable[[str], None] | None = None,
    ) -> None:
        self.reader = reader
        self.gs_substitutes = tuple(gs_substitutes)
        self._count = count
        self.outcomes: dict[str, int] = dict.fromkeys(SCAN_OUTCOMES, 0)
        self.last_problem: str | None = None

    def read_of(self, scan: Scan, mono: float, wall: datetime) -> RawRead | None:
        """The read ``scan`` stands for, or None (counted and logged) if it names no item."""
        if scan.symbology is None:
            epc = epc_of(scan.text)
            if epc is not None:
                self._note("epc")
                return RawRead(self.reader, 1, epc, None, mono, wall)
        try:
            result = parse_scan(scan.text, scan.symbology, gs_substitutes=self.gs_substitutes)
        except Gs1Error as exc:
            self._note("gs1_invalid", f"GS1 scan rejected ({exc}): {scan.text!r}")
            return None
        identity: AnyIdentity
        attributes: ItemAttributes | None = None
        if result.identity is not None:
            self._note("gs1")
            identity = result.identity
            batch = result.elements.get("10")
            if batch is not None or result.expiry is not None:
                attributes = ItemAttributes(batch=batch, expiry=result.expiry)
        elif not result.is_gs1 and len(scan.text) <= MAX_CODE_TEXT:
            self._note("code")
            identity = CodeIdentity(
                scheme="code",
                symbology=result.symbology[:64],
                symbology_id=scan.symbology,
                text=scan.text,
            )
        else:
            self._note("not_item", f"scan names no item ({result.symbology}): {scan.text!r}")
            return None
        return RawRead(
            self.reader,
            1,
            identity_key(identity),
            None,
            mono,
            wall,
            identity=identity,
            attributes=attributes,
        )

    def _note(self, outcome: str, problem: str | None = None) -> None:
        self.outcomes[outcome] += 1
        if problem is not None:
            self.last_problem = problem
            logger.info("reader %s: %s", self.reader, problem, extra={"reader": self.reader})
            if self._count is not None:
                self._count(outcome)


class ScannerSettings(LinkSettings, Protocol):
    """The part of a scanner's config the shared driver needs."""

    @property
    def gs_substitutes(self) -> list[str]: ...


class ScannerReader(SerialReader[Scan]):
    """A handheld scanner: silent between scans, each scan interpreted by
    :class:`ScanInterpreter`. Subclasses supply the decoder (and how to open the device)."""

    def __init__(
        self,
        config: ScannerSettings,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        super().__init__(
            config,
            clock,
            on_read,
            on_state,
            idle_flush_s=idle_flush_s,
            rate_window_s=rate_window_s,
        )
        self.interpreter = ScanInterpreter(
            config.id, gs_substitutes=config.gs_substitutes, count=self._count
        )

    def _on_record(self, rec: Scan, mono: float, wall: datetime) -> RawRead | None:
        read = self.interpreter.read_of(rec, mono, wall)
        if read is None:
            self._snap.last_error = self.interpreter.last_problem
        return read

    async def _converse(self) -> NoReturn:
        # Nothing to ask: the device being open is all there is to know.
        self._set_state("online")
        await self._until_link_lost()
