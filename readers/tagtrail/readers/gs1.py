"""GS1 payloads from barcode scans: the one parser handheld scanners and cameras share.

:func:`parse_scan` takes the text of one scan and, when known, its AIM symbology identifier
(ISO/IEC 15424, e.g. ``]C1``), and returns a :class:`ScanResult`: the raw text, the
symbology's name, whether it is a GS1 payload, its element strings (AI -> value) and the
best tagtrail identity (:mod:`tagtrail.events`). Element strings are parsed with biip
(https://biip.readthedocs.io); what biip leaves open is decided here.

Classification comes first, by symbology identifier
===================================================
biip will happily "parse" any digit string as element strings, so a plain Code 128
location label ``0012345678`` would become an SSCC-looking mess. The identifier decides:

* GS1 element strings: ``]C1`` GS1-128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR Code,
  ``]e0`` GS1 DataBar, ``]J1`` GS1 DotCode.
* A bare GTIN (no AIs): ``]E0`` EAN-13 / UPC-A (UPC-A arrives as 13 digits with a leading
  0; UPC-E as 8 digits, expanded to UPC-A), ``]E3`` EAN-13/UPC with an add-on (the add-on
  digits after the 13 are kept in :attr:`ScanResult.addon`), ``]E4`` EAN-8 and ``]I1``
  ITF-14 (14 digits). These are GS1 too (``is_gs1``), with the GTIN under AI ``01``,
  left-padded to 14 digits.
* Anything else (``]C0`` Code 128, ``]Q1`` QR Code, ``]A0`` Code 39, ``]d1`` DataMatrix,
  ...) is **not** GS1, whatever its text looks like: it is reported with its symbology and
  raw text, no elements, no identity, and never raises.
* No identifier (``None``, e.g. pyzbar or a scanner with AIM output off): GS1 only when the
  text holds a GS (0x1D) character, which no plain symbol carries; otherwise plain text.
  A GTIN-looking digit string without an identifier is *not* guessed to be an EAN.

Identities
==========
* AI (00) SSCC -> :class:`~tagtrail.events.SsccIdentity` (a pallet label's other AIs, such
  as (02) content and (37) count, stay in the element map);
* (01) GTIN + (21) serial -> :class:`~tagtrail.events.GtinSerialIdentity`;
* (01) or (02) GTIN, with the count (30) or (37) (1 if absent) and the batch (10) ->
  :class:`~tagtrail.events.GtinQuantityIdentity`;
* an EAN/UPC/ITF-14 -> :class:`~tagtrail.events.GtinQuantityIdentity` with quantity 1;
* a GS1 payload with none of these (e.g. only a (414) location GLN) -> identity ``None``.

Expiry (17), best-before (15), production date (11) and every other AI stay in
:attr:`ScanResult.elements`; the expiry date is also :attr:`ScanResult.expiry`.

Errors
======
A payload that is GS1 by its symbology but cannot be trusted raises :class:`Gs1Error` (a
:class:`~tagtrail.errors.TagtrailError`) with a readable reason, never a wrong identity:
a bad GTIN/SSCC check digit, an unknown AI, a value that does not match its AI's format,
an impossible date (month 13), a count of 0, a wrong-length EAN.

The missing-separator pitfall
=============================
A variable-length AI (10 batch, 21 serial, 30/37 count, ...) must be ended by FNC1,
which scanners transmit as GS (0x1D), unless it is the last field. Without it the next
field merges into the value: ``01...21ABC12310LOT`` reads as serial ``ABC12310LOT``. What
can be detected is:

* a variable-length field that does not end the payload yet is not followed by a
  separator. biip stops a field at its maximum length (20 for a serial) and goes on, so a
  serial "longer than 20 characters" shows up this way; so does any field whose
  following text happens to parse. This raises :class:`Gs1Error` ("missing GS separator
  after AI (21)");
* following text that is no valid element string ("an AI that cannot follow") raises too;
* a *last* variable-length field whose tail is itself a valid fixed-length element string
  with a check digit or date ((01) GTIN, (00) SSCC, (11)/(13)/(15)/(17) dates), as in
  ``21ABC12317261231``: this is reported in :attr:`ScanResult.warnings` and does not raise,
  because a legitimate serial can look like that. A merged batch or serial tail such as
  ``10LOT`` cannot be told from a real value and is not flagged.

Separators and keyboard-wedge substitutes
=========================================
GS (0x1D) is always a separator. Scanners in keyboard-wedge mode often cannot type it and
are configured to send a substitute instead; pass those as ``gs_substitutes``. A
one-character substitute must lie outside GS1's character set 82 (the characters allowed
in AI values), so it can never be confused with data: ``~``, ``|``, ``^``, ``#``, ``@``,
``$``, ``[``, ``]``, ``{``, ``}``, backtick or ``\\``; the common choices are ``~`` and
``|``. Longer substitutes (e.g. ``<GS>`` or ``{GS}``) are accepted as given; ``<GS>`` is
built from CSET 82 characters, so a value could in theory contain it. Substitutes apply to
GS1 payloads only (plain text is left alone) and only when the symbology identifier says
GS1; a text without identifier is classified by a real GS only.
Digital Link URIs (``https://id.gs1.org/01/...`` in a plain QR code) are plain text here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from biip import ParseConfig, ParseError
from biip.gs1_element_strings import GS1ElementString
from biip.gtin import Gtin
from biip.upc import Upc

from tagtrail.errors import TagtrailError
from tagtrail.events import GtinQuantityIdentity, GtinSerialIdentity, SsccIdentity

__all__ = [
    "GS",
    "GS1_MESSAGE_SYMBOLOGIES",
    "GTIN_SYMBOLOGIES",
    "BarcodeIdentity",
    "Gs1Error",
    "ScanResult",
    "parse_scan",
    "split_aim",
    "symbology_name",
]

GS = "\x1d"
"""ASCII group separator: how scanners transmit FNC1 between GS1 fields."""

GS1_MESSAGE_SYMBOLOGIES = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})
"""Identifiers whose data is GS1 element strings (FNC1 in first position)."""

GTIN_SYMBOLOGIES = frozenset({"]E0", "]E3", "]E4", "]I1"})
"""Identifiers whose data is a bare GTIN (EAN/UPC, ITF-14)."""

_CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)

_NAMES = {
    "A": "Code 39",
    "B": "Telepen",
    "C": "Code 128",
    "D": "Code One",
    "E": "EAN/UPC",
    "F": "Codabar",
    "G": "Code 93",
    "H": "Code 11",
    "I": "ITF",
    "K": "Code 16K",
    "L": "PDF417",
    "M": "MSI",
    "N": "Anker",
    "O": "Codablock",
    "P": "Plessey",
    "Q": "QR Code",
    "R": "Straight 2 of 5 (2-bar)",
    "S": "Straight 2 of 5 (3-bar)",
    "T": "Code 49",
    "U": "MaxiCode",
    "X": "other",
    "Y": "system expansion",
    "Z": "non-barcode",
    "c": "Channel Code",
    "d": "Data Matrix",
    "e": "GS1 DataBar / Composite",
    "o": "OCR",
    "p": "PosiCode",
    "s": "SuperCode",
    "z": "Aztec Code",
}
_SPECIFIC = {
    "]C1": "GS1-128",
    "]d2": "GS1 DataMatrix",
    "]Q3": "GS1 QR Code",
    "]e0": "GS1 DataBar",
    "]J1": "GS1 DotCode",
    "]E0": "EAN-13/UPC",
    "]E1": "EAN 2-digit add-on",
    "]E2": "EAN 5-digit add-on",
    "]E3": "EAN-13/UPC with add-on",
    "]E4": "EAN-8",
    "]I1": "ITF-14",
}

# Fixed-length AIs whose values validate themselves (check digit or date): a tail of a
# last variable-length value that parses as one of these is a likely merged field.
_SELF_CHECKING_AIS = ("00", "01", "02", "11", "13", "15", "17")

BarcodeIdentity = SsccIdentity | GtinSerialIdentity | GtinQuantityIdentity


class Gs1Error(TagtrailError):
    """A payload that is GS1 by its symbology cannot be parsed into trustworthy fields."""


@dataclass(frozen=True)
class ScanResult:
    """One scan, classified and, when GS1, parsed."""

    text: str
    """The scan's text as received (without the symbology identifier)."""
    symbology_id: str | None
    """The AIM identifier, e.g. ``]C1``, or None when unknown."""
    symbology: str
    """Human name of the symbology, e.g. ``GS1-128``, ``Code 128`` or ``unknown``."""
    is_gs1: bool
    """True for GS1 element strings and for bare GTINs (EAN/UPC/ITF-14)."""
    elements: dict[str, str] = field(default_factory=dict)
    """AI -> value, in scan order (a bare GTIN appears as ``01``)."""
    identity: BarcodeIdentity | None = None
    """The best tagtrail identity, or None (non-GS1, or GS1 without an item key)."""
    expiry: date | None = None
    """AI (17) as a date (day 00 means the month's last day), if present."""
    addon: str | None = None
    """The 2- or 5-digit EAN add-on (``]E3``), if present."""
    warnings: tuple[str, ...] = ()
    """Suspicions that did not justify an error (see the merged-field notes)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "text": self.text,
            "symbology_id": self.symbology_id,
            "symbology": self.symbology,
            "is_gs1": self.is_gs1,
            "elements": dict(self.elements),
            "identity": None if self.identity is None else self.identity.model_dump(),
            "expiry": None if self.expiry is None else self.expiry.isoformat(),
            "addon": self.addon,
            "warnings": list(self.warnings),
        }


def split_aim(text: str) -> tuple[str | None, str]:
    """Split a leading AIM identifier (``]`` + code letter + one modifier) off ``text``.

    Returns ``(None, text)`` when ``text`` does not start with a well-formed identifier.
    """
    if len(text) >= 3 and text[0] == "]" and text[1] in _NAMES and text[2].isalnum():
        return text[:3], text[3:]
    return None, text


def symbology_name(symbology_id: str | None) -> str:
    """A readable name for an AIM identifier (``unknown`` for None)."""
    if symbology_id is None:
        return "unknown"
    if symbology_id in _SPECIFIC:
        return _SPECIFIC[symbology_id]
    if len(symbology_id) == 3 and symbology_id[1] in _NAMES:
        return _NAMES[symbology_id[1]]
    return f"unrecognised identifier {symbology_id!r}"


def _check_substitutes(gs_substitutes: Sequence[str]) -> tuple[str, ...]:
    subs = tuple(gs_substitutes)
    for sub in subs:
        if not isinstance(sub, str) or not sub:
            raise Gs1Error(f"a GS substitute must be a non-empty string, got {sub!r}")
        if len(sub) == 1 and sub in _CSET82:
            raise Gs1Error(
                f"GS substitute {sub!r} is a character GS1 values may contain (CSET 82); "
                "use one outside it, such as '~' or '|'"
            )
    return subs


def parse_scan(
    text: str,
    symbology: str | None,
    *,
    gs_substitutes: Sequence[str] = (),
    verify_dates: bool = True,
) -> ScanResult:
    """Classify and parse one scan.

    ``symbology`` is the AIM identifier (``]C1``, ``]E0`` ...) if known. ``gs_substitutes``
    are extra separator strings a keyboard-wedge scanner sends instead of GS (see the
    module docstring). ``verify_dates=False`` accepts impossible dates (e.g. all zeros)
    some labels carry. Raises :class:`Gs1Error` for a GS1 payload that cannot be trusted;
    a non-GS1 scan never raises.
    """
    subs = _check_substitutes(gs_substitutes)
    name = symbology_name(symbology)
    if symbology in GTIN_SYMBOLOGIES:
        return _parse_gtin_symbol(text, symbology, name)
    if symbology in GS1_MESSAGE_SYMBOLOGIES:
        payload = text
        for sub in subs:
            payload = payload.replace(sub, GS)
        return _parse_message(text, payload, symbology, name, verify_dates)
    if symbology is None and GS in text:
        return _parse_message(text, text, symbology, name, verify_dates)
    return ScanResult(text=text, symbology_id=symbology, symbology=name, is_gs1=False)


# --- bare GTINs ----------------------------------------------------------------------------


def _parse_gtin_symbol(text: str, symbology: str, name: str) -> ScanResult:
    digits = text.strip()
    addon: str | None = None
    if symbology == "]E3":
        # EAN-13 (or UPC-A as 13 digits) followed by a 2- or 5-digit add-on.
        if len(digits) not in (15, 18):
            raise Gs1Error(f"{name}: expected 13 digits plus a 2/5-digit add-on, got {text!r}")
        digits, addon = digits[:13], digits[13:]
    expected = {"]E0": (8, 12, 13), "]E3": (13,), "]E4": (8,), "]I1": (14,)}[symbology]
    if not digits.isascii() or not digits.isdigit() or len(digits) not in expected:
        allowed = "/".join(map(str, expected))
        raise Gs1Error(f"{name}: expected {allowed} digits, got {text!r}")
    if addon is not None and not addon.isdigit():
        raise Gs1Error(f"{name}: add-on must be digits, got {addon!r}")
    try:
        if symbology == "]E0" and len(digits) == 8:
            digits = Upc.parse(digits).as_upc_a()  # UPC-E, expanded
        gtin = Gtin.parse(digits)
    except ParseError as exc:
        raise Gs1Error(f"{name}: {exc}") from exc
    gtin14 = gtin.as_gtin_14()
    return ScanResult(
        text=text,
        symbology_id=symbology,
        symbology=name,
        is_gs1=True,
        elements={"01": gtin14},
        identity=GtinQuantityIdentity(scheme="gtin_quantity", gtin=gtin14, quantity=1),
        addon=addon,
    )


# --- element strings -----------------------------------------------------------------------


def _extract_all(payload: str, config: ParseConfig) -> list[GS1ElementString]:
    """Every element string of ``payload``, insisting on separators after variable fields."""
    rest = payload.strip(GS)
    if not rest:
        raise Gs1Error("empty GS1 payload")
    out: list[GS1ElementString] = []
    while rest:
        try:
            element = GS1ElementString.extract(rest, config=config)
        except ParseError as exc:
            if not out:
                raise Gs1Error(f"not a GS1 element string: {exc}") from exc
            prev = out[-1]
            hint = ""
            if prev.ai.separator_required:
                hint = " (a missing GS separator merges fields)"
            raise Gs1Error(
                f"cannot parse {rest!r} after AI ({prev.ai.ai}) {prev.value!r}: {exc}{hint}"
            ) from exc
        out.append(element)
        rest = rest[len(element) :]
        if rest and not rest.startswith(GS) and element.ai.separator_required:
            raise Gs1Error(
                f"missing GS separator after AI ({element.ai.ai}) "
                f"{element.ai.data_title}: value {element.value!r} is followed by {rest!r}"
            )
        rest = rest.lstrip(GS)
    return out


def _merged_tail_warning(element: GS1ElementString, config: ParseConfig) -> str | None:
    """A warning if the last (variable-length) value ends with a self-checking field."""
    value = element.value
    for i in range(1, len(value) - 3):
        tail = value[i:]
        if not tail.startswith(_SELF_CHECKING_AIS):
            continue
        try:
            found = GS1ElementString.parse(tail, config=config)
        except ParseError:
            continue
        if found.gtin_error or found.sscc_error:
            continue
        return (
            f"value {value!r} of AI ({element.ai.ai}) ends with a valid "
            f"({found.ai.ai}) {found.ai.data_title} {found.value!r}: a missing GS separator?"
        )
    return None


def _parse_message(
    text: str, payload: str, symbology: str | None, name: str, verify_dates: bool
) -> ScanResult:
    config = ParseConfig(gs1_element_strings_verify_date=verify_dates)
    parsed = _extract_all(payload, config)
    elements: dict[str, str] = {}
    expiry: date | None = None
    for element in parsed:
        ai = element.ai.ai
        if element.gtin_error or element.sscc_error or element.gln_error:
            raise Gs1Error(
                f"AI ({ai}): {element.gtin_error or element.sscc_error or element.gln_error}"
            )
        if ai in elements and elements[ai] != element.value:
            raise Gs1Error(
                f"AI ({ai}) appears twice with different values "
                f"{elements[ai]!r} and {element.value!r}"
            )
        elements[ai] = element.value
        if ai == "17":
            expiry = element.date
    warnings: list[str] = []
    last = parsed[-1]
    if last.ai.separator_required:
        warning = _merged_tail_warning(last, config)
        if warning is not None:
            warnings.append(warning)
    return ScanResult(
        text=text,
        symbology_id=symbology,
        symbology=name,
        is_gs1=True,
        elements=elements,
        identity=_identity(elements),
        expiry=expiry,
        warnings=tuple(warnings),
    )


def _identity(elements: dict[str, str]) -> BarcodeIdentity | None:
    try:
        if "00" in elements:
            return SsccIdentity(scheme="sscc", sscc=elements["00"])
        if "01" in elements and "21" in elements:
            return GtinSerialIdentity(
                scheme="gtin_serial", gtin=elements["01"], serial=elements["21"]
            )
        gtin = elements.get("01") or elements.get("02")
        if gtin is None:
            return None
        count = elements.get("30") or elements.get("37") or "1"
        quantity = int(count)
        if quantity < 1:
            raise Gs1Error(f"count {count!r} (AI 30/37) must be at least 1")
        return GtinQuantityIdentity(
            scheme="gtin_quantity", gtin=gtin, quantity=quantity, batch=elements.get("10")
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise Gs1Error(f"fields do not form a valid identity: {exc}") from exc
