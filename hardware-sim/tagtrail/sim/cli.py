"""``tagtrail sim``: serve a scenario as a simulated reader on a pseudo-terminal.

The scenario's ``reader.protocol`` (default ``r2000``) picks the device; ``--protocol``
overrides it (the scenario is then checked again for that device, e.g. EM4100 card codes).

Once the pty is ready the command prints ``LINK <path>`` (with ``--link``) and then
``READY <slave-device>`` on stdout, one line each; everything else goes to stderr as
logs. SIGTERM and SIGINT end it cleanly with exit code 0.
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
from tagtrail.sim.scenario import PROTOCOLS, Scenario, load_scenario
from tagtrail.sim.server import PtySimulator
from tagtrail.sim.truth import write_ground_truth

log = logging.getLogger(__name__)


async def _serve(
    scenario: Scenario,
    *,
    time_scale: float,
    seed: int | None,
    link: Path | None,
    start_immediately: bool,
    exit_at_end: bool,
    grace_s: float,
    loop_forever: bool = False,
) -> None:
    sim = PtySimulator(
        scenario,
        ScaledClock(time_scale),
        seed,
        time_scale,
        link=link,
        start_immediately=start_immediately,
        loop_s=scenario.end_s + grace_s if loop_forever else None,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        path = await sim.start()
        if link is not None:
            click.echo(f"LINK {link}")
        click.echo(f"READY {path}")
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


@click.command("sim")
@click.argument(
    "scenario_path",
    metavar="SCENARIO.yaml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
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
    "--link",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Create this symlink to the pty device, so configs can name a stable path.",
)
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
    help="Start the scenario clock now instead of at the first inventory command.",
)
@click.option(
    "--exit-at-end",
    is_flag=True,
    help="Exit 0 once the scenario clock passes end_s plus --grace.",
)
@click.option(
    "--loop",
    is_flag=True,
    help="Replay the scenario for ever, every end_s plus --grace scenario seconds.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Scenario seconds to keep answering after end_s with --exit-at-end.",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default=None,
    help="Device to play, overriding the scenario's reader.protocol (default r2000).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
    help="Log level (logs go to stderr).",
)
def sim_command(
    *,
    scenario_path: Path,
    time_scale: float,
    seed: int | None,
    link: Path | None,
    ground_truth_path: Path | None,
    start_immediately: bool,
    exit_at_end: bool,
    grace_s: float,
    loop: bool,
    protocol: str | None,
    log_level: str,
) -> None:
    """Simulate an RFID reader playing SCENARIO.yaml on a pseudo-terminal."""
    setup_logging(log_level)
    try:
        scenario = load_scenario(scenario_path)
        if protocol is not None:
            scenario = scenario.with_protocol(protocol, str(scenario_path))
        if ground_truth_path is not None:
            write_ground_truth(scenario, ground_truth_path)
        asyncio.run(
            _serve(
                scenario,
                time_scale=time_scale,
                seed=seed,
                link=link,
                start_immediately=start_immediately,
                exit_at_end=exit_at_end and not loop,
                grace_s=grace_s,
                loop_forever=loop,
            )
        )
    except TagtrailError as exc:
        raise click.ClickException(str(exc)) from exc
