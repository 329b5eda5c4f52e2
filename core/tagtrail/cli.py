"""The ``tagtrail`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import ClassVar

import click
import yaml

from tagtrail import __version__
from tagtrail.errors import ConfigError, TagtrailError
from tagtrail.logsetup import set_process_context, setup_logging


class _LazyGroup(click.Group):
    """A group whose component commands are imported only when named: ``tagtrail --help``
    and ``tagtrail edge run`` do not load OpenCV or the simulators."""

    lazy_help: ClassVar[dict[str, str]] = {
        "decode": "Decode reader bytes (HEX) or barcode images (--image).",
        "sim": "Simulate a serial RFID reader on a pseudo-terminal.",
        "sim-llrp": "Simulate an LLRP fixed reader on a TCP port.",
        "sim-r700": "Simulate an Impinj R700 (REST + NDJSON stream).",
        "sim-camera": "Render a camera scenario: video, frames or live MJPEG.",
        "epc": "Decode EPCs per the GS1 EPC Tag Data Standard.",
    }
    """Listed by ``tagtrail --help`` without importing the command's module."""

    lazy: ClassVar[dict[str, str]] = {
        "decode": "tagtrail.readers.cli:decode_command",
        "sim": "tagtrail.sim.cli:sim_command",
        "sim-llrp": "tagtrail.sim.llrp_main:llrp_sim_command",
        "sim-r700": "tagtrail.sim.r700:r700_command",
        "sim-camera": "tagtrail.sim.camera:camera_command",
        "epc": "tagtrail.readers.epc_cli:epc_command",
    }

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy_help[name]))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - a wiring mistake
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagtrail")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Log level (default: INFO, or the config file's).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or as one JSON object per line.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, log_format: str) -> None:
    """tagtrail: warehouse RFID and barcode tracking at the edge."""
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level
    ctx.obj["log_format"] = log_format
    setup_logging(log_level or "INFO", log_format)


def _config_kind(path: Path) -> str:
    """'gateway' for a file with an ``api`` or ``influx`` section, else 'edge'."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "edge"  # the loader reports the problem with its field path
    if isinstance(data, dict) and ({"api", "influx"} & set(data)) and "readers" not in data:
        return "gateway"
    return "edge"


def _report_config_error(exc: ConfigError, kind: str) -> None:
    click.echo(f"{exc.source}: invalid {kind} config", err=True)
    for path, reason in exc.problems:
        click.echo(f"  {path}: {reason}", err=True)


@main.command("check-config")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--service",
    type=click.Choice(["auto", "edge", "gateway"]),
    default="auto",
    show_default=True,
    help="Which service's config FILE is.",
)
def check_config(file: Path, service: str) -> None:
    """Validate a config FILE; print each failing field and exit 2 if invalid."""
    from tagtrail.edge.config import load_edge_config
    from tagtrail.gateway.config import load_gateway_config

    kind = _config_kind(file) if service == "auto" else service
    try:
        if kind == "edge":
            cfg = load_edge_config(file)
            summary = f"{len(cfg.readers)} reader(s), site {cfg.site}, device {cfg.device}"
        else:
            gw = load_gateway_config(file)
            summary = f"InfluxDB {gw.influx.backend} at {gw.influx.url}, API port {gw.api.port}"
    except ConfigError as exc:
        _report_config_error(exc, kind)
        sys.exit(2)
    click.echo(f"{file}: valid {kind} config ({summary})")


@main.group("edge")
def edge_group() -> None:
    """The edge agent."""


@edge_group.command("run")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="edge.yaml",
)
@click.pass_context
def edge_run(ctx: click.Context, config_path: Path) -> None:
    """Run the readers, smooth reads into events and publish them over MQTT."""
    from tagtrail.edge.agent import run_agent
    from tagtrail.edge.config import load_edge_config

    try:
        cfg = load_edge_config(config_path)
    except ConfigError as exc:
        _report_config_error(exc, "edge")
        sys.exit(2)
    if ctx.obj.get("log_level") is None:
        setup_logging(cfg.logging.level, ctx.obj.get("log_format", "text"))
    set_process_context(site=cfg.site, device=cfg.device)
    try:
        run_agent(cfg)
    except TagtrailError as exc:
        logging.getLogger("tagtrail").error("edge agent stopped: %s", exc)  # noqa: TRY400 - a clear line, no traceback
        sys.exit(1)


@main.group("gateway")
def gateway_group() -> None:
    """The gateway: MQTT -> positions and InfluxDB, and the API."""


@gateway_group.command("run")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="gateway.yaml",
)
@click.pass_context
def gateway_run(ctx: click.Context, config_path: Path) -> None:
    """Consume events, keep positions, write InfluxDB and serve the API."""
    from tagtrail.gateway.config import load_gateway_config
    from tagtrail.gateway.service import run_gateway

    try:
        cfg = load_gateway_config(config_path)
    except ConfigError as exc:
        _report_config_error(exc, "gateway")
        sys.exit(2)
    if ctx.obj.get("log_level") is None:
        setup_logging(cfg.log_level, ctx.obj.get("log_format", "text"))
    set_process_context(gateway=cfg.mqtt.client_id)
    try:
        run_gateway(cfg, on_ready=lambda url: click.echo(f"API {url}"))
    except TagtrailError as exc:
        logging.getLogger("tagtrail").error("gateway stopped: %s", exc)  # noqa: TRY400
        sys.exit(1)


@main.command("schema")
@click.option("--write", "mode", flag_value="write", help="Regenerate the files.")
@click.option("--check", "mode", flag_value="check", help="Exit 1 if the files drifted.")
@click.option("--print", "mode", flag_value="print", default=True, help="Print the schema.")
@click.option("--root", type=click.Path(path_type=Path), default=Path(), help="Repository root.")
def schema(mode: str, root: Path) -> None:
    """The event contract's JSON Schema and docs/DATA_FORMAT.md."""
    from tagtrail import docgen
    from tagtrail.events import json_schema

    if mode == "write":
        for rel in docgen.write_all(root):
            click.echo(f"wrote {rel}")
    elif mode == "check":
        stale = docgen.drifted(root)
        for rel in stale:
            click.echo(f"{rel} is out of date: run 'tagtrail schema --write'", err=True)
        sys.exit(1 if stale else 0)
    else:
        click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@main.command("demo")
@click.option(
    "--scenario",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Simulator scenario (default: the bundled demo-door scenario).",
)
@click.option(
    "--time-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Play the scenario this many times faster than real time. Above 1, events are "
    "stamped by the faster scenario clock (ahead of the wall clock), so dashboards showing "
    "'now' miss them; keep 1 when watching Grafana.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for configs, logs and data (default: a new temporary folder).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Play the scenario once; exit 0 when the API and InfluxDB match its ground truth.",
)
@click.option("--plain", is_flag=True, help="Print events as lines instead of a live table.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
def demo(  # noqa: PLR0917 - click passes every option as an argument
    scenario: Path | None,
    time_scale: float,
    workdir: Path | None,
    once: bool,
    plain: bool,
    duration: float | None,
) -> None:
    """Run the whole pipeline on this machine, driven by the simulator (Ctrl-C stops it)."""
    from tagtrail.demo import run_demo

    try:
        rc = run_demo(
            scenario=scenario,
            time_scale=time_scale,
            workdir=workdir,
            echo=click.echo,
            once=once,
            plain=plain,
            duration=duration,
        )
    except TagtrailError as exc:
        click.echo(f"demo failed: {exc}", err=True)
        sys.exit(1)
    sys.exit(rc)
