"""tagtrail.sim: simulated readers driven by scenario files with known ground truth.

Serial readers (R2000, Mercury, Chafon, M100, EM4100) on pseudo-terminals, an LLRP
reader on TCP and an Impinj R700 (REST + NDJSON) on HTTP; each encodes its protocol on
its own and never imports the decoders in :mod:`tagtrail.readers`.

* :mod:`tagtrail.sim.scenario`: the scenario file model and loader;
* :mod:`tagtrail.sim.r2000`, :mod:`~tagtrail.sim.mercury`, :mod:`~tagtrail.sim.chafon`,
  :mod:`~tagtrail.sim.m100`, :mod:`~tagtrail.sim.em4100`: reader-side frame encoders and
  command parsers;
* :mod:`tagtrail.sim.personalities`: what each simulated serial device answers;
* :mod:`tagtrail.sim.llrp`, :mod:`tagtrail.sim.r700`: the network readers;
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
