"""``tagtrail decode``: decode reader wire bytes given as hex, or barcodes in image files.

``tagtrail decode [--protocol P] HEX...`` decodes reader frames;
``tagtrail decode --image FILE...`` decodes the barcodes in each image with
:class:`tagtrail.readers.barcodes.BarcodeDecoder` and prints one JSON object per symbol.
"""

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
@click.option(
    "--image",
    "image",
    is_flag=True,
    help="The arguments are image files: print one JSON object per barcode found.",
)
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(["zxing-cpp", "pyzbar"]),
    help="With --image: decoding engine, repeat for a cascade in that order "
    "(default zxing-cpp then pyzbar).",
)
@click.argument("hex_text", nargs=-1, metavar="HEX...|FILE...")
def decode_command(
    protocol: str, image: bool, engines: tuple[str, ...], hex_text: tuple[str, ...]
) -> None:
    """Decode reader bytes given as HEX, or with --image the barcodes in image FILEs.

    HEX may be split over several arguments, with spaces, colons or 0x prefixes, and
    may hold several frames and garbage. Exit status: 0 all records valid, 1 some
    invalid, 2 input not hex.

    With --image, each symbol is one JSON object: file, symbology, symbology_id (AIM,
    null when unknown), text, engine, step, position and, for GS1 payloads, gs1 (the
    parsed element strings and identity) or gs1_error. Exit status: 0 every file read
    (even without symbols), 1 some file unreadable, 2 usage error.
    """
    if not hex_text:
        raise click.UsageError("give HEX bytes, or --image and image FILEs")
    if image:
        sys.exit(decode_images(hex_text, engines))
    if engines:
        raise click.UsageError("--engine applies to --image only")
    try:
        data = parse_hex(hex_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HEX") from exc
    records = decode_to_dicts(protocol, data)
    for rec in records:
        click.echo(json.dumps(rec, separators=(",", ":")))
    if any(rec["type"] == "invalid" for rec in records):
        sys.exit(1)


def decode_images(paths: tuple[str, ...] | list[str], engines: tuple[str, ...] = ()) -> int:
    """Print one JSON line per symbol of each image; 1 if some file was unreadable."""
    from tagtrail.readers.barcodes import (  # noqa: PLC0415 - OpenCV only when asked for
        BarcodeDecoder,
        BarcodeError,
        DecoderConfig,
    )

    try:
        decoder = BarcodeDecoder(DecoderConfig(engines=engines) if engines else DecoderConfig())
    except BarcodeError as exc:
        click.echo(f"decode: {exc}", err=True)
        return 1
    status = 0
    for path in paths:
        try:
            symbols = decoder.decode_file(path)
        except BarcodeError as exc:
            click.echo(f"decode: {exc}", err=True)
            status = 1
            continue
        if not symbols:
            click.echo(f"decode: {path}: no barcode found", err=True)
        for symbol in symbols:
            record = {"file": path, **symbol.to_dict()}
            click.echo(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    return status
