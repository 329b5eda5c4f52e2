"""``python -m tagtrail.sim SCENARIO.yaml ...``: the same as ``tagtrail sim``."""

from tagtrail.sim.cli import sim_command

if __name__ == "__main__":
    sim_command(prog_name="python -m tagtrail.sim")
