"""``tagtrail decode``: decode reader wire bytes given as hex on the command line."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from tagtrail.readers.registry import PROTOCOLS

_SEPARATORS = re.compile(r"[\s:,]+")
_HEX = re.compile(r"^[0-9A-Fa-f]*$")


def decode_to_dicts(protocol: str, data: bytes) -> list[dict[str, Any]]:
    """Decode ``data`` with the named protocol; one JSON-ready dict per record."""
    info = PROTOCOLS[protocol]
    return [info.record_to_dict(r) for r in info.decode_stream(data)]


def parse_hex(parts: tuple[str, ...] | list[str]) -> bytes:
    """Bytes from hex text: spaces, colons and commas separate; ``0x`` prefixes allowed.

    Each separated token must hold whole bytes. Raises ``ValueError`` with a clear
    message otherwise.
    """
    out = bytearray()
    for part in parts:
        for token in _SEPARATORS.split(part):
            if not token:
                continue
            digits = token[2:] if token[:2] in ("0x", "0X") else token
            if not digits or not _HEX.match(digits):
                raise ValueError(f"not hex: {token!r}")
            if len(digits) % 2:
                raise ValueError(f"odd number of hex digits in {token!r}")
            out += bytes.fromhex(digits)
    if not out:
        raise ValueError("no hex bytes given")
    return bytes(out)


@click.command("decode")
@click.option(
    "--protocol",
    type=click.Choice(sorted(PROTOCOLS)),
    default="r2000",
    show_default=True,
    help="Wire protocol of the bytes.",
)
@click.argument("hex_text", nargs=-1, required=True, metavar="HEX...")
def decode_command(protocol: str, hex_text: tuple[str, ...]) -> None:
    """Decode reader bytes given as HEX: print one JSON object per record.

    HEX may be split over several arguments, with spaces, colons or 0x prefixes, and
    may hold several frames and garbage. Exit status: 0 all records valid, 1 some
    invalid, 2 input not hex.
    """
    try:
        data = parse_hex(hex_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HEX") from exc
    records = decode_to_dicts(protocol, data)
    for rec in records:
        click.echo(json.dumps(rec, separators=(",", ":")))
    if any(rec["type"] == "invalid" for rec in records):
        sys.exit(1)
