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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from tagtrail.events import AnyIdentity, CodeIdentity, ItemAttributes, identity_key
from tagtrail.readers.gs1 import Gs1Error, parse_scan
from tagtrail.readers.model import RawRead
from tagtrail.readers.protocols.ascii_lines import Scan, epc_of

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
