"""Generating ``docs/DATA_FORMAT.md`` and ``docs/schema/events-v1.json`` from the models.

``tagtrail schema --write`` regenerates both; ``tagtrail schema --check`` (and a test)
fails when the committed files differ from what the models say.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tagtrail import events as ev
from tagtrail.edge.config import ENV_PREFIX, EdgeConfig
from tagtrail.gateway.config import ENV_PREFIX as GATEWAY_ENV_PREFIX
from tagtrail.gateway.config import ApiToken, GatewayConfig, InfluxV1Config, InfluxV2Config
from tagtrail.readers.config import AntennaConfig, ReaderConfig
from tagtrail.readers.registry import PROTOCOLS

SCHEMA_PATH = Path("docs/schema/events-v1.json")
DATA_FORMAT_PATH = Path("docs/DATA_FORMAT.md")

_T0 = datetime(2026, 11, 29, 8, 15, 2, 250000, tzinfo=UTC)


def example_events() -> list[ev.AnyEvent]:
    """A fixed example of each kind, used in the docs and checked by the tests."""
    epc = "E200301666130121155074EF"
    movement: dict[str, Any] = {
        "event_time": _T0,
        "site": "wh1",
        "device": "door-1",
        "reader": "dock-r2000",
        "antenna": 1,
        "zone": "dock-door-1",
        "identity": {"scheme": "epc", "epc": epc},
        "epc": epc,
        "first_seen": _T0,
        "last_seen": _T0,
        "read_count": 3,
        "peak_rssi_dbm": -57.0,
    }
    reader = ev.ReaderStatus(
        kind="reader_status",
        event_id="9a1d2c1e-0f77-4a53-8c55-5b8f0e0b7c31",
        event_time=_T0,
        site="wh1",
        device="door-1",
        reader="dock-r2000",
        reader_type="r2000",
        state="online",
        read_rate_per_s=212.5,
        reads_total=120431,
        error_counts={"checksum": 2, "garbage": 1},
        firmware="1.9",
        round_read_rate_per_s=230,
        round_total_reads=12,
    )
    return [
        ev.Arrived.model_validate(
            {**movement, "kind": "arrived", "event_id": "0b6f4c1e-5d07-4c8e-9a53-2f0e8d9b1a11"}
        ),
        ev.Moved.model_validate(
            {
                **movement,
                "kind": "moved",
                "event_id": "5c0e7f0a-3b1d-4e8e-8f9e-6a2b1c3d4e5f",
                "from_zone": "dock-door-1",
                "zone": "staging",
                "antenna": 2,
                "read_count": 41,
            }
        ),
        ev.Departed.model_validate(
            {
                **movement,
                "kind": "departed",
                "event_id": "7d3c2b1a-9e8f-4a6b-b5c4-d3e2f1a0b9c8",
                "zone": "staging",
                "antenna": 2,
                "read_count": 97,
            }
        ),
        ev.Arrived.model_validate(
            {
                **movement,
                "kind": "arrived",
                "event_id": "1e2d3c4b-5a69-4788-9706-a5b4c3d2e1f0",
                "identity": {"scheme": "sscc", "sscc": "106141411234567897"},
                "epc": None,
                "reader": "dock-camera",
                "peak_rssi_dbm": None,
                "attributes": {"batch": "L2611A", "expiry": "2027-06-30"},
            }
        ),
        reader,
        ev.DeviceStatus(
            kind="device_status",
            event_id="3f2e1d0c-b9a8-4765-8432-10fedcba9876",
            event_time=_T0,
            site="wh1",
            device="door-1",
            state="online",
            reason="heartbeat",
            software_version="0.1.0",
            uptime_s=3600.0,
            heartbeat_interval_s=30.0,
            outbox_depth=0,
            readers=[reader],
        ),
    ]


def _type_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type_text(s, defs) for s in schema["anyOf"])
    if "oneOf" in schema:
        return " or ".join(_type_text(s, defs) for s in schema["oneOf"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " / ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type_text(schema.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {_type_text(schema['additionalProperties'], defs)}"
    if kind == "string" and schema.get("format") == "date-time":
        return "string (RFC 3339 date-time with offset)"
    return str(kind)


def _model_table(model: type[BaseModel], defs: dict[str, Any]) -> list[str]:
    schema = defs[model.__name__]
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, prop in schema["properties"].items():
        desc = str(prop.get("description", "")).replace("|", "\\|").replace("\n", " ")
        req = "yes" if name in required else "no"
        rows.append(f"| `{name}` | {_type_text(prop, defs)} | {req} | {desc} |")
    return rows


def data_format_markdown() -> str:
    schema = ev.json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    out = [
        "# tagtrail data format (event contract, schema version 1)",
        "",
        "<!-- Generated by `tagtrail schema --write` from core/tagtrail/events.py."
        " Do not edit by hand: a test fails when this file drifts from the models. -->",
        "",
        (ev.__doc__ or "").strip(),
        "",
        "## Messages",
        "",
        "An MQTT payload is UTF-8 JSON: one event object, or an array of event objects"
        " (a batch). Consumers must accept both. Every event carries `kind` (the"
        " discriminator) and `schema_version` (1). Unknown fields are rejected. Times are"
        " RFC 3339 with an offset; the edge sends UTC.",
        "",
        "The JSON Schema of one message is `docs/schema/events-v1.json`.",
        "",
        "| topic | QoS | retained | carries |",
        "| --- | --- | --- | --- |",
        "| `tagtrail/v1/<site>/<device>/events` | 1 | no | `arrived`, `moved`, `departed`,"
        " `reader_status` (one event or an array) |",
        "| `tagtrail/v1/<site>/<device>/status` | 1 | yes | `device_status`: online with"
        " heartbeats, offline from the Last Will or a clean shutdown |",
        "| `tagtrail/v1/<site>/deadletter` | 1 | no | payloads the gateway rejected, with"
        " the reason |",
        "",
        "## Event kinds",
        "",
    ]
    for model in (ev.Arrived, ev.Moved, ev.Departed, ev.ReaderStatus, ev.DeviceStatus):
        out += [f"### `{model.model_fields['kind'].annotation.__args__[0]}`", ""]  # type: ignore[union-attr]
        out += [(model.__doc__ or "").strip(), ""]
        out += _model_table(model, defs)
        out.append("")
    out += ["## Identities", "", "`identity` is one of these, chosen by `scheme`:", ""]
    for ident in (
        ev.EpcIdentity,
        ev.Em4100Identity,
        ev.SsccIdentity,
        ev.GtinSerialIdentity,
        ev.GtinQuantityIdentity,
        ev.CodeIdentity,
    ):
        scheme = ident.model_fields["scheme"].annotation.__args__[0]  # type: ignore[union-attr]
        out += [f"### `{scheme}`", "", (ident.__doc__ or "").strip(), ""]
        out += _model_table(ident, defs)
        out.append("")
    out += ["## Item attributes", "", (ev.ItemAttributes.__doc__ or "").strip(), ""]
    out += _model_table(ev.ItemAttributes, defs)
    out.append("")
    examples = example_events()
    out += [
        "## Example: a batch on the events topic",
        "",
        "```json",
        json.dumps([ev.dump_event(e) for e in examples[:5]], indent=2),
        "```",
        "",
        "## Example: a retained device status",
        "",
        "```json",
        json.dumps(ev.dump_event(examples[5]), indent=2),
        "```",
        "",
    ]
    return "\n".join(out)


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        made = field.default_factory()
        if isinstance(made, BaseModel):
            return (
                "see below"
                if isinstance(field.default_factory, type)
                else f"`{made.__class__.__name__}` defaults"
            )
        return f"`{json.dumps(made)}`"
    value = field.default
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`"


def _config_sections(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    doc = (model.__doc__ or "").strip().splitlines()[0]
    out += [f"### `{prefix or '(top level)'}`", "", doc, "", "| field | default | description |"]
    out.append("| --- | --- | --- |")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        out.append(f"| `{name}` | {_default_text(field)} | {desc} |")
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((f"{prefix}.{name}" if prefix else name, ann))
    out.append("")
    for path, sub in nested:
        _config_sections(sub, path, out)


def edge_config_markdown() -> str:
    out = [
        "# Edge agent configuration (`edge.yaml`)",
        "",
        "<!-- Generated by `tagtrail schema --write` from edge/tagtrail/edge/config.py and"
        " readers/tagtrail/readers/config.py. Do not edit by hand. -->",
        "",
        "Validate a file with `tagtrail check-config edge.yaml`: it prints each failing field"
        " by its path and exits 2. Unknown fields are errors.",
        "",
        f"Any field can be set from the environment as `{ENV_PREFIX}__<PATH>`, levels joined"
        f" by `__` and list items by their index: `{ENV_PREFIX}__MQTT__PASSWORD`,"
        f" `{ENV_PREFIX}__READERS__0__PORT`. Keep secrets there rather than in the file.",
        "",
        "## Sections",
        "",
    ]
    _config_sections(EdgeConfig, "", out)
    out += ["## Readers", "", "`readers` is a list; each item's `type` picks its driver.", ""]
    for model in reader_models():
        _config_sections(model, f"readers[] (type: {reader_type(model)})", out)
        if model is reader_models()[0]:
            _config_sections(AntennaConfig, "readers[].antennas[]", out)
    return "\n".join(out)


def reader_models() -> list[type[BaseModel]]:
    """Every reader config model, in the order of the ``ReaderConfig`` union."""
    union = typing.get_args(ReaderConfig)[0]
    return [m for m in typing.get_args(union) if isinstance(m, type)]


def reader_type(model: type[BaseModel]) -> str:
    """The ``type`` discriminator value of a reader config model."""
    (value,) = typing.get_args(model.model_fields["type"].annotation)
    return str(value)


EDGE_CONFIG_PATH = Path("docs/edge.md")
GATEWAY_CONFIG_PATH = Path("docs/gateway-config.md")
READERS_PATH = Path("docs/readers.md")


def readers_markdown() -> str:
    out = [
        "# Reader protocols",
        "",
        "<!-- Generated by `tagtrail schema --write` from readers/tagtrail/readers/registry.py."
        " Do not edit by hand. -->",
        "",
        "Every wire protocol tagtrail decodes. Each lives in one file under"
        " `readers/tagtrail/readers/protocols/`, whose docstring holds the frame diagram, the"
        " checksum and the source of the spec. Decode bytes by hand with"
        " `tagtrail decode --protocol NAME HEX...`. The line rate is the most tag frames a port"
        " at the usual baud carries (baud / 10 bits / typical frame length).",
        "",
        "| protocol | what | usual baud | typical tag frame | line rate | a tag read reports |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in sorted(PROTOCOLS):
        p = PROTOCOLS[name]
        baud = f"{p.default_baud}" if p.default_baud else "-"
        rate = f"{p.line_rate_frames_s:,.0f} frames/s" if p.line_rate_frames_s else "-"
        out.append(
            f"| `{name}` | {p.title} | {baud} | {p.typical_frame_bytes} bytes | {rate}"
            f" | {', '.join(p.reports)} |"
        )
    out.append("")
    for name in sorted(PROTOCOLS):
        p = PROTOCOLS[name]
        out += [f"## `{name}`: {p.title}", "", f"Source: {p.spec}.", "", "Known to speak it:", ""]
        out += [f"- {m}" for m in p.models]
        out.append("")
    out += [
        "## Reader types in `edge.yaml`",
        "",
        "Each item of `readers` names its driver with `type`; every option is in"
        " [edge.md](edge.md). The protocol column names the decoder above the driver uses.",
        "",
        "| type | reader | protocol | default speed |",
        "| --- | --- | --- | --- |",
    ]
    for model in reader_models():
        kind = reader_type(model)
        doc = " ".join((model.__doc__ or "").split("\n\n")[0].split())
        baud_field = model.model_fields.get("baudrate")
        baud = f"{baud_field.default} baud" if baud_field is not None else "-"
        proto = f"`{kind}`" if kind in PROTOCOLS else "-"
        out.append(f"| `{kind}` | {doc} | {proto} | {baud} |")
    out += [
        "",
        "## Why tagtrail has its own LLRP client",
        "",
        "sllurp, the maintained Python LLRP client, is GPL-3.0; tagtrail is Apache-2.0 and is"
        " embedded in integrators' products, so it does not depend on it. The LLRP subset"
        " tagtrail needs (connection event, capabilities, reader config with keep-alives,"
        " ROSpec add/enable/start/stop/delete, events and reports, RO_ACCESS_REPORT tag data)"
        " is implemented in `readers/tagtrail/readers/protocols/llrp.py` and"
        " `readers/tagtrail/readers/llrp.py`. It is tested against tagtrail's own LLRP"
        " simulator (`tagtrail sim-llrp`) and against the reader emulator of the MIT-licensed"
        " llrpkit (a test-only dependency), and its encoders reproduce llrpkit's bytes for the"
        " setup messages. Like real readers, both peers accept ENABLE_EVENTS_AND_REPORTS"
        " (message type 64); the driver correlates every response by message id.",
        "",
    ]
    return "\n".join(out)


def gateway_config_markdown() -> str:
    out = [
        "# Gateway configuration (`gateway.yaml`)",
        "",
        "<!-- Generated by `tagtrail schema --write` from gateway/tagtrail/gateway/config.py."
        " Do not edit by hand. -->",
        "",
        "Validate a file with `tagtrail check-config gateway.yaml`: it prints each failing"
        " field by its path and exits 2. Unknown fields are errors. How the gateway works:"
        " [gateway.md](gateway.md).",
        "",
        f"Any field can be set from the environment as `{GATEWAY_ENV_PREFIX}__<PATH>`:"
        f" `{GATEWAY_ENV_PREFIX}__INFLUX__TOKEN`, `{GATEWAY_ENV_PREFIX}__MQTT__PASSWORD`,"
        f" `{GATEWAY_ENV_PREFIX}__API__TOKENS__0__TOKEN`. Keep secrets there.",
        "",
        "A minimal file:",
        "",
        "```yaml",
        "influx: {backend: v1, url: http://127.0.0.1:8086, database: tagtrail}",
        "api:",
        "  tokens:",
        "    - {name: dashboards, token: change-me-to-16-chars-or-more, scopes: [read, stream]}",
        "```",
        "",
        "## Sections",
        "",
    ]
    _config_sections(GatewayConfig, "", out)
    out += ["## InfluxDB backends", "", "`influx.backend` picks one of these.", ""]
    _config_sections(InfluxV1Config, "influx (backend: v1)", out)
    _config_sections(InfluxV2Config, "influx (backend: v2)", out)
    _config_sections(ApiToken, "api.tokens[]", out)
    return "\n".join(out)


def generated_files() -> dict[Path, str]:
    return {
        SCHEMA_PATH: ev.json_schema_text(),
        DATA_FORMAT_PATH: data_format_markdown(),
        EDGE_CONFIG_PATH: edge_config_markdown(),
        GATEWAY_CONFIG_PATH: gateway_config_markdown(),
        READERS_PATH: readers_markdown(),
    }


def drifted(root: Path) -> list[Path]:
    """The generated files under ``root`` whose content differs from the models."""
    stale = []
    for rel, text in generated_files().items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
    return stale


def write_all(root: Path) -> list[Path]:
    written = []
    for rel, text in generated_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(rel)
    return written
