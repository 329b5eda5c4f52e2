"""EPC binary decoding per the GS1 EPC Tag Data Standard (TDS 1.x / 2.x): what an EPC *means*.

Readers report the EPC memory bank contents after the PC word as hex
(``3074257BF7194E4000001A85``). :func:`decode_epc` turns that into an :class:`EpcInfo`
(scheme, filter, GS1 Company Prefix, the GS1 key with its computed check digit, serial,
pure-identity URI, tag URI, GS1 element string) or, for anything that is not a decodable
GS1 EPC, an :class:`EpcNotGs1` carrying a :class:`NotGs1Reason`. It never raises on any
input and it never guesses: a value that breaks a rule of the standard is reported, not
"repaired". :func:`gtin_of` is the gateway's shortcut (SGTIN -> GTIN-14, else ``None``).

The module is pure: no I/O, no logging.

Sources: GS1 EPC Tag Data Standard 2.0 (2022), sections 14 (binary encodings: header
table 14-1, partition tables 14-2 .. 14-10, the Integer / String / Partition Table
coding methods of 14.3) and 10 (filter values); the normative GS1 Tag Data Translation
2.0 definition files (ref.gs1.org/standards/tdt/2.0.0/<SCHEME>.json), whose ``BINARY``
``prefixMatch`` and ``pattern`` give the headers and bit layouts quoted below.

Bit layout
==========
Bits are numbered from the most significant bit of the first hex digit. Every scheme
decoded here starts with::

    | header 8 | filter 3 | partition 3 | company prefix P bits | reference R bits | tail |

====== ====================== ============ =============================================
header scheme                 length(bits) tail after CP + reference
====== ====================== ============ =============================================
0x30   SGTIN-96               96           serial, 38-bit Integer
0x36   SGTIN-198              198          serial, 140-bit String (<= 20 chars)
0x31   SSCC-96                96           24 reserved bits, must be zero
0x32   SGLN-96                96           GLN extension, 41-bit Integer
0x39   SGLN-195               195          GLN extension, 140-bit String (<= 20 chars)
0x33   GRAI-96                96           serial, 38-bit Integer
0x37   GRAI-170               170          serial, 112-bit String (<= 16 chars)
0x34   GIAI-96                96           (none: the asset reference is the reference)
0x38   GIAI-202               202          (none: the asset reference is a String)
====== ====================== ============ =============================================

Partition tables (partition value -> company prefix bits/digits, reference bits/digits).
The reference of SGTIN holds the indicator digit first; that of SSCC the extension digit
first. Partition 7 is invalid everywhere.

=== ======= ========= ========= ========= ========= ========== =============
P   CP      SGTIN ref SSCC ref  SGLN ref  GRAI ref  GIAI-96    GIAI-202
=== ======= ========= ========= ========= ========= ========== =============
0   40/12   4/1       18/5      1/0       4/0       42/13      148 / 18 ch
1   37/11   7/2       21/6      4/1       7/1       45/14      151 / 19 ch
2   34/10   10/3      24/7      7/2       10/2      48/15      154 / 20 ch
3   30/9    14/4      28/8      11/3      14/3      52/16      158 / 21 ch
4   27/8    17/5      31/9      14/4      17/4      55/17      161 / 22 ch
5   24/7    20/6      34/10     17/5      20/5      58/18      164 / 23 ch
6   20/6    24/7      38/11     21/6      24/6      62/19      168 / 24 ch
=== ======= ========= ========= ========= ========= ========== =============

(SGLN uses the same rows for SGLN-96 and -195, GRAI for GRAI-96 and -170.)

Coding methods (TDS 14.3)
-------------------------
* Partition Table: the company prefix C and reference R are unsigned integers; each must
  be < 10^digits (and 0 when digits is 0), else the EPC is not decodable
  (``field_out_of_range``). They are printed left-padded to their digit count.
* Integer (the -96 serials and SGLN-96 extension, GIAI-96 asset reference): an unsigned
  integer printed in decimal without leading zeros. GS1 forbids leading zeros in these
  values, which the binary form cannot express, so every bit pattern is decodable (the
  GIAI-96 reference widths are chosen so that 2^bits - 1 fits the digit count).
* String, 7 bits per character (the -198/-195/-170/-202 variants): each 7-bit segment is
  an ISO/IEC 646 (ASCII) code of GS1 AI encodable character set 82::

      ! " % & ' ( ) * + , - . /  0-9  : ; < = > ?  A-Z  _  a-z

  The first all-zero segment ends the string; every bit after it must be zero, and so
  must the bits of a final partial segment. An empty string, a code outside set 82, a
  non-zero bit after the end or more characters than the scheme allows is
  ``bad_string``. In URIs the characters ``" % & / < > ?`` are written ``%22 %25 %26
  %2F %3C %3E %3F``; element strings (and :attr:`EpcInfo.serial`) keep the raw text.

Length: readers transfer whole 16-bit words, so an N-bit encoding arrives padded with
zero bits to the next word (SGTIN-198 as 52 hex digits). Any hex length from N bits up
to N + 15 bits is accepted if the extra bits are zero; anything shorter or longer is
``length_mismatch``, as are padding bits that are not zero (``nonzero_reserved``).

GS1 keys and check digits
-------------------------
Check digits use the GS1 mod-10 algorithm (weights 3, 1, 3, ... from the rightmost data
digit; check = (10 - sum mod 10) mod 10).

* SGTIN: GTIN-14 = indicator (1st reference digit) + CP + rest of reference + check;
  element string ``(01)GTIN(21)serial``.
* SSCC: SSCC-18 = extension digit + CP + rest of serial reference + check; ``(00)``.
* SGLN: GLN-13 = CP + location reference + check; ``(414)``, and ``(254)extension``
  unless the extension is ``0``, which TDS reserves for "no extension".
* GRAI: ``(8003)`` = ``0`` + CP + asset type + check + serial (:attr:`EpcInfo.grai`).
* GIAI: ``(8004)`` = CP + individual asset reference (:attr:`EpcInfo.giai`).

Filter values (TDS section 10)
------------------------------
SGTIN: 0 all others, 1 point of sale (POS) trade item, 2 full case for transport,
3 reserved, 4 inner pack trade item grouping for handling, 5 reserved, 6 unit load,
7 unit inside trade item or component inside a product not intended for individual sale.
SSCC: 0 all others, 2 full case for transport, 6 unit load, others reserved.
SGLN, GRAI: 0 all others, 1-7 reserved. GIAI: 0 all others, 1 rail vehicle, 2-7 reserved.

Recognised, not decoded
=======================
These headers are GS1 schemes, reported as ``scheme_not_decoded`` with the scheme name:
0x2C GDTI-96, 0x2D GSRN-96, 0x2E GSRNP-96, 0x2F USDOD-96, 0x35 GID-96, 0x3A GDTI-113,
0x3B ADI-var, 0x3C CPI-96, 0x3D CPI-var, 0x3E GDTI-174, 0x3F SGCN-96, 0x40 ITIP-110,
0x41 ITIP-212, and TDS 2.0's AI-based "+" schemes (TDT 2.0 prefixMatch): 0xF0 CPI+,
0xF1 GRAI+, 0xF2 SGLN+, 0xF3 ITIP+, 0xF4 GSRN+, 0xF5 GSRNP+, 0xF6 GDTI+, 0xF7 SGTIN+,
0xF8 SGCN+, 0xF9 SSCC+, 0xFA GIAI+, 0xFB DSGTIN+.

Header 0x00 is an unprogrammed tag (``unprogrammed``). Every other header is not
allocated to a GS1 scheme (``unknown_header``) -- notably the TID-derived default EPCs
of Impinj/NXP chips, which start with the TID class byte 0xE2.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "EpcInfo",
    "EpcNotGs1",
    "EpcScheme",
    "NotGs1Reason",
    "decode_epc",
    "filter_description",
    "gs1_check_digit",
    "gtin_of",
]


class EpcScheme(StrEnum):
    """The encodings this module decodes (the tag URI's scheme name)."""

    SGTIN_96 = "sgtin-96"
    SGTIN_198 = "sgtin-198"
    SSCC_96 = "sscc-96"
    SGLN_96 = "sgln-96"
    SGLN_195 = "sgln-195"
    GRAI_96 = "grai-96"
    GRAI_170 = "grai-170"
    GIAI_96 = "giai-96"
    GIAI_202 = "giai-202"

    @property
    def family(self) -> str:
        """The pure-identity scheme: ``sgtin``, ``sscc``, ``sgln``, ``grai``, ``giai``."""
        return self.value.split("-", 1)[0]


class NotGs1Reason(StrEnum):
    """Why a hex string is not a decodable GS1 EPC."""

    INVALID_HEX = "invalid_hex"  # not a string, empty, or a character that is not 0-9/A-F
    UNPROGRAMMED = "unprogrammed"  # header 0x00
    UNKNOWN_HEADER = "unknown_header"  # header allocated to no GS1 scheme (e.g. E2 TID-derived)
    SCHEME_NOT_DECODED = "scheme_not_decoded"  # a GS1 scheme this module does not decode
    LENGTH_MISMATCH = "length_mismatch"  # fewer bits than the scheme, or a whole word more
    BAD_PARTITION = "bad_partition"  # partition value 7
    FIELD_OUT_OF_RANGE = "field_out_of_range"  # a value needs more digits than allowed
    NONZERO_RESERVED = "nonzero_reserved"  # reserved or padding bits are not zero
    BAD_STRING = "bad_string"  # 7-bit string: bad character, empty, junk after the end


@dataclass(frozen=True, slots=True)
class EpcInfo:
    """A decoded GS1 EPC. Keys carry their computed check digit."""

    epc_hex: str
    scheme: EpcScheme
    filter: int
    partition: int
    company_prefix: str
    # Item reference with indicator (SGTIN), serial reference with extension digit (SSCC),
    # location reference (SGLN), asset type (GRAI); "" for GIAI.
    reference: str
    # SGTIN/GRAI serial, SGLN extension, GIAI individual asset reference (raw, unescaped);
    # None for SSCC.
    serial: str | None
    pure_uri: str
    tag_uri: str
    element_string: str
    gtin14: str | None = None
    sscc18: str | None = None
    gln13: str | None = None
    gln_extension: str | None = None
    grai: str | None = None
    giai: str | None = None

    @property
    def is_gs1(self) -> bool:
        return True

    @property
    def filter_description(self) -> str:
        return filter_description(self.scheme, self.filter)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's output and the test vectors' ``expect``)."""
        out: dict[str, Any] = {
            "epc": self.epc_hex,
            "gs1": True,
            "scheme": self.scheme.value,
            "filter": self.filter,
            "filter_description": self.filter_description,
            "partition": self.partition,
            "company_prefix": self.company_prefix,
            "reference": self.reference,
            "serial": self.serial,
            "pure_uri": self.pure_uri,
            "tag_uri": self.tag_uri,
            "element_string": self.element_string,
        }
        for key in ("gtin14", "sscc18", "gln13", "gln_extension", "grai", "giai"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class EpcNotGs1:
    """Not a decodable GS1 EPC: why, with a readable detail."""

    epc_hex: str
    reason: NotGs1Reason
    detail: str
    header: int | None = None
    # The scheme name when the header is a GS1 one (e.g. "sgtin-96", "sgtin+").
    scheme: str | None = None

    @property
    def is_gs1(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "epc": self.epc_hex,
            "gs1": False,
            "reason": self.reason.value,
            "detail": self.detail,
            "header": None if self.header is None else f"{self.header:02X}",
            "scheme": self.scheme,
        }


# --- tables -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    cp_bits: int
    cp_digits: int
    ref_bits: int
    ref_digits: int  # for a String reference (GIAI-202): maximum characters


_CP = ((40, 12), (37, 11), (34, 10), (30, 9), (27, 8), (24, 7), (20, 6))


def _table(refs: tuple[tuple[int, int], ...]) -> tuple[_Row, ...]:
    return tuple(_Row(cb, cd, rb, rd) for (cb, cd), (rb, rd) in zip(_CP, refs, strict=True))


_SGTIN = _table(((4, 1), (7, 2), (10, 3), (14, 4), (17, 5), (20, 6), (24, 7)))
_SSCC = _table(((18, 5), (21, 6), (24, 7), (28, 8), (31, 9), (34, 10), (38, 11)))
_SGLN = _table(((1, 0), (4, 1), (7, 2), (11, 3), (14, 4), (17, 5), (21, 6)))
_GRAI = _table(((4, 0), (7, 1), (10, 2), (14, 3), (17, 4), (20, 5), (24, 6)))
_GIAI96 = _table(((42, 13), (45, 14), (48, 15), (52, 16), (55, 17), (58, 18), (62, 19)))
_GIAI202 = _table(((148, 18), (151, 19), (154, 20), (158, 21), (161, 22), (164, 23), (168, 24)))

_FILTERS: dict[str, tuple[str, ...]] = {
    "sgtin": (
        "all others",
        "point of sale (POS) trade item",
        "full case for transport",
        "reserved",
        "inner pack trade item grouping for handling",
        "reserved",
        "unit load",
        "unit inside trade item or component inside a product not intended for individual sale",
    ),
    "sscc": (
        "all others",
        "reserved",
        "full case for transport",
        "reserved",
        "reserved",
        "reserved",
        "unit load",
        "reserved",
    ),
    "sgln": ("all others",) + ("reserved",) * 7,
    "grai": ("all others",) + ("reserved",) * 7,
    "giai": ("all others", "rail vehicle") + ("reserved",) * 6,
}

_NOT_DECODED: dict[int, str] = {
    0x2C: "gdti-96",
    0x2D: "gsrn-96",
    0x2E: "gsrnp-96",
    0x2F: "usdod-96",
    0x35: "gid-96",
    0x3A: "gdti-113",
    0x3B: "adi-var",
    0x3C: "cpi-96",
    0x3D: "cpi-var",
    0x3E: "gdti-174",
    0x3F: "sgcn-96",
    0x40: "itip-110",
    0x41: "itip-212",
    0xF0: "cpi+",
    0xF1: "grai+",
    0xF2: "sgln+",
    0xF3: "itip+",
    0xF4: "gsrn+",
    0xF5: "gsrnp+",
    0xF6: "gdti+",
    0xF7: "sgtin+",
    0xF8: "sgcn+",
    0xF9: "sscc+",
    0xFA: "giai+",
    0xFB: "dsgtin+",
}

# GS1 AI encodable character set 82, as ISO/IEC 646 codes.
_CSET82 = frozenset([0x21, 0x22, *range(0x25, 0x40), *range(0x41, 0x5B), 0x5F, *range(0x61, 0x7B)])
_URI_ESCAPES = {'"': "%22", "%": "%25", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"}
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")


def filter_description(scheme: EpcScheme, value: int) -> str:
    """The TDS meaning of a filter value for a scheme (``"reserved"`` when unassigned)."""
    names = _FILTERS[scheme.family]
    return names[value] if 0 <= value < len(names) else "invalid"


def gs1_check_digit(digits: str) -> str:
    """GS1 mod-10 check digit of a digit string (weights 3, 1, ... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


# --- bit reading --------------------------------------------------------------------------


class _DecodeError(Exception):
    """Internal control flow of the decoders; never escapes :func:`decode_epc`."""

    def __init__(self, reason: NotGs1Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Bits:
    """MSB-first reader over an integer of known bit length."""

    __slots__ = ("_left", "_value")

    def __init__(self, value: int, length: int) -> None:
        self._value = value
        self._left = length

    def take(self, n: int) -> int:
        self._left -= n
        return (self._value >> self._left) & ((1 << n) - 1)


def _digits(value: int, digits: int, what: str) -> str:
    if value >= 10**digits:
        raise _DecodeError(
            NotGs1Reason.FIELD_OUT_OF_RANGE,
            f"{what} {value} does not fit in {digits} digit(s)",
        )
    return str(value).zfill(digits) if digits else ""


def _string(value: int, bits: int, max_chars: int, what: str) -> str:
    chars: list[str] = []
    pos = bits
    while pos >= 7:
        code = (value >> (pos - 7)) & 0x7F
        if code == 0:
            break
        if code not in _CSET82:
            raise _DecodeError(
                NotGs1Reason.BAD_STRING, f"{what}: character 0x{code:02X} not allowed"
            )
        chars.append(chr(code))
        pos -= 7
    if value & ((1 << pos) - 1):
        raise _DecodeError(NotGs1Reason.BAD_STRING, f"{what}: non-zero bits after the end")
    if not chars:
        raise _DecodeError(NotGs1Reason.BAD_STRING, f"{what} is empty")
    if len(chars) > max_chars:
        raise _DecodeError(
            NotGs1Reason.BAD_STRING, f"{what} has {len(chars)} characters, at most {max_chars}"
        )
    return "".join(chars)


def _uri(text: str) -> str:
    return "".join(_URI_ESCAPES.get(c, c) for c in text)


def _partition(bits: _Bits, table: tuple[_Row, ...]) -> tuple[int, _Row]:
    p = bits.take(3)
    if p >= len(table):
        raise _DecodeError(NotGs1Reason.BAD_PARTITION, f"partition value {p} is not in the table")
    return p, table[p]


def _cp_and_ref(bits: _Bits, row: _Row, ref_name: str) -> tuple[str, str]:
    cp = _digits(bits.take(row.cp_bits), row.cp_digits, "company prefix")
    ref = _digits(bits.take(row.ref_bits), row.ref_digits, ref_name)
    return cp, ref


# --- per-scheme decoders ------------------------------------------------------------------


def _sgtin(bits: _Bits, scheme: EpcScheme, hexstr: str) -> EpcInfo:
    flt = bits.take(3)
    p, row = _partition(bits, _SGTIN)
    cp, ref = _cp_and_ref(bits, row, "item reference")
    if scheme is EpcScheme.SGTIN_96:
        serial = str(bits.take(38))
    else:
        serial = _string(bits.take(140), 140, 20, "serial")
    body = ref[0] + cp + ref[1:]
    gtin = body + gs1_check_digit(body)
    fields = f"{cp}.{ref}.{_uri(serial)}"
    return EpcInfo(
        epc_hex=hexstr,
        scheme=scheme,
        filter=flt,
        partition=p,
        company_prefix=cp,
        reference=ref,
        serial=serial,
        pure_uri=f"urn:epc:id:sgtin:{fields}",
        tag_uri=f"urn:epc:tag:{scheme.value}:{flt}.{fields}",
        element_string=f"(01){gtin}(21){serial}",
        gtin14=gtin,
    )


def _sscc(bits: _Bits, scheme: EpcScheme, hexstr: str) -> EpcInfo:
    flt = bits.take(3)
    p, row = _partition(bits, _SSCC)
    cp, ref = _cp_and_ref(bits, row, "serial reference")
    if bits.take(24):
        raise _DecodeError(NotGs1Reason.NONZERO_RESERVED, "SSCC-96 reserved 24 bits are not zero")
    body = ref[0] + cp + ref[1:]
    sscc = body + gs1_check_digit(body)
    return EpcInfo(
        epc_hex=hexstr,
        scheme=scheme,
        filter=flt,
        partition=p,
        company_prefix=cp,
        reference=ref,
        serial=None,
        pure_uri=f"urn:epc:id:sscc:{cp}.{ref}",
        tag_uri=f"urn:epc:tag:{scheme.value}:{flt}.{cp}.{ref}",
        element_string=f"(00){sscc}",
        sscc18=sscc,
    )


def _sgln(bits: _Bits, scheme: EpcScheme, hexstr: str) -> EpcInfo:
    flt = bits.take(3)
    p, row = _partition(bits, _SGLN)
    cp, ref = _cp_and_ref(bits, row, "location reference")
    if scheme is EpcScheme.SGLN_96:
        ext = str(bits.take(41))
    else:
        ext = _string(bits.take(140), 140, 20, "extension")
    gln = cp + ref + gs1_check_digit(cp + ref)
    extension = None if ext == "0" else ext
    fields = f"{cp}.{ref}.{_uri(ext)}"
    return EpcInfo(
        epc_hex=hexstr,
        scheme=scheme,
        filter=flt,
        partition=p,
        company_prefix=cp,
        reference=ref,
        serial=ext,
        pure_uri=f"urn:epc:id:sgln:{fields}",
        tag_uri=f"urn:epc:tag:{scheme.value}:{flt}.{fields}",
        element_string=f"(414){gln}" + ("" if extension is None else f"(254){extension}"),
        gln13=gln,
        gln_extension=extension,
    )


def _grai(bits: _Bits, scheme: EpcScheme, hexstr: str) -> EpcInfo:
    flt = bits.take(3)
    p, row = _partition(bits, _GRAI)
    cp, ref = _cp_and_ref(bits, row, "asset type")
    if scheme is EpcScheme.GRAI_96:
        serial = str(bits.take(38))
    else:
        serial = _string(bits.take(112), 112, 16, "serial")
    body = "0" + cp + ref
    grai = body + gs1_check_digit(body) + serial
    fields = f"{cp}.{ref}.{_uri(serial)}"
    return EpcInfo(
        epc_hex=hexstr,
        scheme=scheme,
        filter=flt,
        partition=p,
        company_prefix=cp,
        reference=ref,
        serial=serial,
        pure_uri=f"urn:epc:id:grai:{fields}",
        tag_uri=f"urn:epc:tag:{scheme.value}:{flt}.{fields}",
        element_string=f"(8003){grai}",
        grai=grai,
    )


def _giai(bits: _Bits, scheme: EpcScheme, hexstr: str) -> EpcInfo:
    flt = bits.take(3)
    if scheme is EpcScheme.GIAI_96:
        p, row = _partition(bits, _GIAI96)
        cp = _digits(bits.take(row.cp_bits), row.cp_digits, "company prefix")
        asset = str(bits.take(row.ref_bits))  # 2^bits - 1 always fits the digit count
    else:
        p, row = _partition(bits, _GIAI202)
        cp = _digits(bits.take(row.cp_bits), row.cp_digits, "company prefix")
        asset = _string(bits.take(row.ref_bits), row.ref_bits, row.ref_digits, "asset reference")
    fields = f"{cp}.{_uri(asset)}"
    return EpcInfo(
        epc_hex=hexstr,
        scheme=scheme,
        filter=flt,
        partition=p,
        company_prefix=cp,
        reference="",
        serial=asset,
        pure_uri=f"urn:epc:id:giai:{fields}",
        tag_uri=f"urn:epc:tag:{scheme.value}:{flt}.{fields}",
        element_string=f"(8004){cp}{asset}",
        giai=cp + asset,
    )


_Decoder = Callable[[_Bits, EpcScheme, str], EpcInfo]

_DECODED: dict[int, tuple[EpcScheme, int, _Decoder]] = {
    0x30: (EpcScheme.SGTIN_96, 96, _sgtin),
    0x36: (EpcScheme.SGTIN_198, 198, _sgtin),
    0x31: (EpcScheme.SSCC_96, 96, _sscc),
    0x32: (EpcScheme.SGLN_96, 96, _sgln),
    0x39: (EpcScheme.SGLN_195, 195, _sgln),
    0x33: (EpcScheme.GRAI_96, 96, _grai),
    0x37: (EpcScheme.GRAI_170, 170, _grai),
    0x34: (EpcScheme.GIAI_96, 96, _giai),
    0x38: (EpcScheme.GIAI_202, 202, _giai),
}


# --- API ----------------------------------------------------------------------------------


def decode_epc(hexstr: str) -> EpcInfo | EpcNotGs1:
    """Decode EPC hex (surrounding whitespace ignored, either case). Never raises."""
    if not isinstance(hexstr, str):
        return EpcNotGs1(repr(hexstr)[:64], NotGs1Reason.INVALID_HEX, "not a string")
    text = hexstr.strip()
    if not _HEX_RE.fullmatch(text):
        shown = text[:64]
        detail = "empty" if not text else "not hexadecimal"
        return EpcNotGs1(shown, NotGs1Reason.INVALID_HEX, detail)
    text = text.upper()
    if len(text) < 2:
        return EpcNotGs1(text, NotGs1Reason.LENGTH_MISMATCH, "shorter than the 8-bit header")
    header = int(text[:2], 16)
    entry = _DECODED.get(header)
    if entry is None:
        if header == 0:
            return EpcNotGs1(text, NotGs1Reason.UNPROGRAMMED, "header 00: unprogrammed", 0)
        name = _NOT_DECODED.get(header)
        if name is not None:
            return EpcNotGs1(
                text,
                NotGs1Reason.SCHEME_NOT_DECODED,
                f"header {header:02X} is GS1 {name.upper()}, not decoded here",
                header,
                name,
            )
        return EpcNotGs1(
            text,
            NotGs1Reason.UNKNOWN_HEADER,
            f"header {header:02X} is not a GS1 EPC scheme",
            header,
        )
    scheme, length, decoder = entry
    have = 4 * len(text)
    if not length <= have < length + 16:
        return EpcNotGs1(
            text,
            NotGs1Reason.LENGTH_MISMATCH,
            f"{scheme.value.upper()} needs {length} bits (up to {length + 15} with word "
            f"padding), got {have}",
            header,
            scheme.value,
        )
    value = int(text, 16)
    if value & ((1 << (have - length)) - 1):
        return EpcNotGs1(
            text,
            NotGs1Reason.NONZERO_RESERVED,
            f"padding bits after the {length}-bit {scheme.value.upper()} are not zero",
            header,
            scheme.value,
        )
    bits = _Bits(value >> (have - length), length)
    bits.take(8)
    try:
        return decoder(bits, scheme, text)
    except _DecodeError as fail:
        return EpcNotGs1(text, fail.reason, fail.detail, header, scheme.value)


def gtin_of(hexstr: str) -> str | None:
    """GTIN-14 of an SGTIN EPC; ``None`` for anything else. Never raises. Cached: the
    gateway asks for the same items' EPCs again and again."""
    if not isinstance(hexstr, str):
        return None
    return _gtin_of_text(hexstr)


@functools.lru_cache(maxsize=65536)
def _gtin_of_text(hexstr: str) -> str | None:
    info = decode_epc(hexstr)
    return info.gtin14 if isinstance(info, EpcInfo) else None
