"""``tagtrail epc HEX...``: what EPCs mean, one JSON object per EPC on stdout.

Each argument is one EPC as readers report it (hex of the EPC bank after the PC word);
with no arguments, EPCs are read from standard input, one per line (blank lines skipped).
Decoding is :func:`tagtrail.readers.epc.decode_epc`: a GS1 EPC prints its scheme, keys
and URIs (``"gs1": true``), anything else its reason (``"gs1": false``). Exit status is
0, or 1 with ``--strict`` when any EPC was not a decodable GS1 EPC.
"""

from __future__ import annotations

import json
import sys

import click

from tagtrail.readers.epc import decode_epc


@click.command("epc")
@click.argument("epcs", nargs=-1)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit with status 1 if any EPC is not a decodable GS1 EPC.",
)
def epc_command(epcs: tuple[str, ...], strict: bool) -> None:
    """Decode EPC hex per the GS1 EPC Tag Data Standard."""
    items = list(epcs) if epcs else [line for line in sys.stdin if line.strip()]
    failed = False
    for item in items:
        result = decode_epc(item)
        failed = failed or not result.is_gs1
        click.echo(json.dumps(result.to_dict(), sort_keys=False))
    if strict and failed:
        raise SystemExit(1)
