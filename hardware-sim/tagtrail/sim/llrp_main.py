"""``python -m tagtrail.sim.llrp SCENARIO.yaml --port N``: a simulated LLRP reader on TCP.

Once listening it prints ``READY <host:port>`` on stdout (one line); everything else goes
to stderr as logs. SIGTERM and SIGINT end it cleanly with exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import click

from tagtrail.clock import ScaledClock
from tagtrail.errors import TagtrailError
from tagtrail.logsetup import setup_logging
from tagtrail.sim.llrp import LlrpSimulator
from tagtrail.sim.scenario import Scenario, load_scenario
from tagtrail.sim.truth import write_ground_truth

log = logging.getLogger(__name__)


async def serve(
    scenario: Scenario,
    *,
    host: str,
    port: int,
    time_scale: float,
    seed: int | None,
    start_immediately: bool,
    exit_at_end: bool,
    grace_s: float,
    loop_forever: bool = False,
) -> None:
    """Serve ``scenario`` until a signal (or its end with ``exit_at_end``)."""
    sim = LlrpSimulator(
        scenario,
        ScaledClock(time_scale),
        seed,
        time_scale,
        host=host,
        port=port,
        start_immediately=start_immediately,
        loop_s=scenario.end_s + grace_s if loop_forever else None,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        address = await sim.start()
        click.echo(f"READY {address}")
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
        if exit_at_end:
            waits.append(asyncio.create_task(sim.wait_end(grace_s)))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("stopping: %s", "signal" if stop.is_set() else "scenario ended")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await sim.close()


@click.command("sim-llrp")
@click.argument(
    "scenario_path",
    metavar="SCENARIO.yaml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5084,
    show_default=True,
    help="TCP port to listen on (0: any free port, printed in the READY line).",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True, max=10_000),
    default=1.0,
    show_default=True,
    help="Run the scenario this many times faster than real time.",
)
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option(
    "--ground-truth",
    "ground_truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the scenario's expected movements per EPC to this JSON file.",
)
@click.option(
    "--start-immediately",
    is_flag=True,
    help="Start the scenario clock now instead of at the first ROSpec start.",
)
@click.option("--exit-at-end", is_flag=True, help="Exit 0 once end_s plus --grace has passed.")
@click.option("--loop", is_flag=True, help="Replay the scenario for ever.")
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Scenario seconds to keep going after end_s (--exit-at-end, --loop).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
    help="Log level (logs go to stderr).",
)
def llrp_sim_command(
    *,
    scenario_path: Path,
    host: str,
    port: int,
    time_scale: float,
    seed: int | None,
    ground_truth_path: Path | None,
    start_immediately: bool,
    exit_at_end: bool,
    loop: bool,
    grace_s: float,
    log_level: str,
) -> None:
    """Simulate an LLRP fixed RFID reader playing SCENARIO.yaml on a TCP port."""
    setup_logging(log_level)
    try:
        scenario = load_scenario(scenario_path)
        if ground_truth_path is not None:
            write_ground_truth(scenario, ground_truth_path)
        asyncio.run(
            serve(
                scenario,
                host=host,
                port=port,
                time_scale=time_scale,
                seed=seed,
                start_immediately=start_immediately,
                exit_at_end=exit_at_end and not loop,
                grace_s=grace_s,
                loop_forever=loop,
            )
        )
    except TagtrailError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc


if __name__ == "__main__":  # pragma: no cover
    llrp_sim_command(prog_name="python -m tagtrail.sim.llrp_main")
