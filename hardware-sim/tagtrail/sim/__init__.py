"""tagtrail.sim: a hardware simulator for R2000 UHF RFID readers, driven by scenario files.

* :mod:`tagtrail.sim.scenario`: the scenario file model and loader;
* :mod:`tagtrail.sim.r2000`: the reader-side R2000 frame encoder and command parser;
* :mod:`tagtrail.sim.engine`: which tags each antenna sees when, and the reads it makes;
* :mod:`tagtrail.sim.server`: :class:`PtySimulator`, the reader on a pseudo-terminal;
* :mod:`tagtrail.sim.truth`: the expected movements of every tag (ground truth);
* :mod:`tagtrail.sim.cli`: the ``tagtrail sim`` command.
"""

from tagtrail.sim.scenario import Scenario, load_scenario, parse_scenario
from tagtrail.sim.server import PtySimulator, SimCounters, SimulatorError
from tagtrail.sim.truth import ground_truth, write_ground_truth

__all__ = [
    "PtySimulator",
    "Scenario",
    "SimCounters",
    "SimulatorError",
    "ground_truth",
    "load_scenario",
    "parse_scenario",
    "write_ground_truth",
]
