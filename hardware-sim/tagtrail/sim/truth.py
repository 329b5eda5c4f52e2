"""Ground truth: what a correct smoother should conclude from a scenario.

For each EPC: the ordered movements (``arrived`` in a zone, ``moved`` from one zone to
another, ``departed`` from a zone) and ``final_zone``, the zone the tag is in at ``end_s``
(``null`` if it has departed by then). The rules are those of
:mod:`tagtrail.sim.timeline`, under the scenario's ``expect`` assumptions; scenarios for
which they give no clear answer are rejected when loaded.

JSON form::

    {"scenario": "pallet-50", "site": "wh-1", "device": "dock-1", "end_s": 36.0,
     "protocol": "r2000", "scheme": "epc",
     "antennas": {"1": "dock-door-1", "2": "staging"},
     "tags": {"E200...": {"final_zone": null, "movements": [
         {"kind": "arrived", "zone": "dock-door-1"},
         {"kind": "moved", "from_zone": "dock-door-1", "zone": "staging"},
         {"kind": "departed", "zone": "staging"}]}}}

``protocol`` is the device the simulator plays. ``scheme`` says how the edge reports the
tags' identities: ``epc`` (the keys of ``tags`` are EPCs), or ``em4100`` for an EM4100
reader (the keys are 10-hex-digit card codes; the edge's item key is ``em4100:<code>``).

``final_zone`` is the state at ``end_s``: once the simulator stops, a smoother eventually
departs every tag, so compare at the end of the scenario, not long after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tagtrail.errors import TagtrailError
from tagtrail.sim.scenario import Scenario, truth_of


def ground_truth(scenario: Scenario) -> dict[str, Any]:
    """The scenario's ground truth as JSON-ready data."""
    tags: dict[str, Any] = {}
    for tag in scenario.resolved_tags():
        hist = truth_of(tag, scenario)
        tags[tag.epc] = {
            "final_zone": hist.final_zone,
            "movements": [m.to_json() for m in hist.movements],
        }
    return {
        "scenario": scenario.name,
        "site": scenario.site,
        "device": scenario.device,
        "end_s": scenario.end_s,
        "protocol": scenario.protocol,
        "scheme": scenario.id_scheme(),
        "antennas": {str(port): zone for port, zone in sorted(scenario.antennas.items())},
        "tags": tags,
    }


def write_ground_truth(scenario: Scenario, path: Path | str) -> None:
    """Write the ground truth JSON to ``path`` (atomically). Raises :class:`TagtrailError`."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    text = json.dumps(ground_truth(scenario), indent=2) + "\n"
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise TagtrailError(f"cannot write ground truth to {target}: {exc}") from exc
