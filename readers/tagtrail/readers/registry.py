"""Every wire protocol tagtrail decodes, by name.

``tagtrail decode --protocol NAME``, the vector and cross-decoder tests, the benchmarks
and ``docs/readers.md`` all read this one table.
"""

from __future__ import annotations

from tagtrail.readers.protocols import (
    ascii_lines,
    chafon,
    em4100,
    hid,
    llrp,
    m100,
    mercury,
    r2000,
)
from tagtrail.readers.protocols.base import ProtocolInfo

PROTOCOLS: dict[str, ProtocolInfo] = {
    p.name: p
    for p in (
        r2000.PROTOCOL,
        mercury.PROTOCOL,
        chafon.PROTOCOL,
        m100.PROTOCOL,
        em4100.PROTOCOL,
        ascii_lines.PROTOCOL,
        hid.PROTOCOL,
        llrp.PROTOCOL,
    )
}


def protocol(name: str) -> ProtocolInfo:
    """The protocol called ``name``; ``KeyError`` names the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise KeyError(
            f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}"
        ) from None
