"""Run Grafana dashboard queries without Grafana: macros, template variables, InfluxQL.

Grafana cannot be installed on these machines, so the tests do what Grafana's InfluxDB
datasource does with a panel target before it reaches InfluxDB:

* macros, as the backend renders InfluxQL: ``$timeFilter`` becomes
  ``time >= {from}ms and time <= {to}ms``, ``$__interval`` / ``$interval`` a duration such as
  ``10s``, ``$__interval_ms`` an integer (``$__from``, ``$__to``, ``$__range_s`` too);
* template variables (``$var``, ``${var}``, ``${var:raw}``, ``[[var]]``): a variable that is
  multi-value or has "All" renders its values regex-escaped, one value alone and several as
  ``(a|b)``, for ``"tag" =~ /^$var$/``; any other variable renders its raw value. "All"
  without a custom all-value means every value of the variable's own query;
* a variable's query runs like a panel's (with the variables before it), its values come
  from the ``value`` column (``SHOW TAG VALUES``) or the first column, filtered by the
  variable's regex (a capture group picks the text), sorted when ``sort`` says so.

A reference to an undefined variable is an error here (Grafana would send ``$name``
through and InfluxDB would silently match nothing), as is any InfluxQL error.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tagtrail.errors import TagtrailError

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "dashboards" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
DATASOURCE_UID = "tagtrail-influxdb"
# Where dashboards/README.md tells you to mount the folders in the Grafana container.
MOUNTS = {
    "/etc/grafana/provisioning": PROVISIONING,
    "/var/lib/grafana/dashboards/tagtrail": DASHBOARDS,
}

Json = dict[str, Any]
Series = dict[str, Any]

_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}",
)
_REGEX_SPECIAL = re.compile(r"[\\^$.|?*+()\[\]{}/]")
_BUILTIN = {"timeFilter", "__interval", "interval", "__interval_ms", "__from", "__to"}
_BUILTIN |= {"__range_s", "__range_ms"}


class QueryError(TagtrailError):
    """A dashboard query that Grafana would show as an error (or as nothing, silently)."""


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range and the panel interval Grafana would pick for it."""

    from_ms: int
    to_ms: int
    interval_ms: int = 10_000

    @property
    def interval(self) -> str:
        ms = self.interval_ms
        for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if ms % size == 0:
                return f"{ms // size}{unit}"
        return f"{ms}ms"


@dataclass
class Context:
    """What a query is rendered with: the time range and the variables' selected values."""

    time: TimeRange
    values: dict[str, list[str]] = field(default_factory=dict)
    definitions: dict[str, Json] = field(default_factory=dict)


# -- dashboards --------------------------------------------------------------------------


def load_dashboards() -> dict[str, Json]:
    """Every dashboard JSON model in ``dashboards/grafana/dashboards``, by file name."""
    out: dict[str, Json] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        out[path.name] = json.loads(path.read_text())
    return out


def all_panels(dashboard: Json) -> Iterator[Json]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def is_influx(target: Json, panel: Json) -> bool:
    ds = target.get("datasource") or panel.get("datasource") or {}
    return bool(ds.get("type") == "influxdb")


def influx_targets(dashboard: Json) -> Iterator[tuple[Json, Json]]:
    """(panel, target) for every InfluxDB target of every panel."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if is_influx(target, panel):
                yield panel, target


def referenced_variables(text: str) -> set[str]:
    """Names of the variables and macros a query uses."""
    out = set()
    for m in _VARIABLE.finditer(text):
        out.add(m.group(1) or m.group(2) or m.group(4))
    return out


# -- rendering ---------------------------------------------------------------------------


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_values(values: list[str], definition: Json, fmt: str | None = None) -> str:
    """A variable's selection as Grafana's InfluxDB datasource writes it into a query."""
    if fmt == "raw":
        return ",".join(values)
    if fmt not in (None, "regex"):
        raise QueryError(f"variable format {fmt!r} is not supported here")
    if not definition.get("multi") and not definition.get("includeAll") and fmt is None:
        return values[0] if values else ""
    escaped = [regex_escape(v) for v in values]
    if len(escaped) == 1:
        return escaped[0]
    return "(" + "|".join(escaped) + ")"


def render(query: str, ctx: Context) -> str:
    """The query as Grafana sends it to InfluxDB; undefined variables raise."""
    t = ctx.time
    macros = {
        "timeFilter": f"time >= {t.from_ms}ms and time <= {t.to_ms}ms",
        "__interval": t.interval,
        "interval": t.interval,
        "__interval_ms": str(t.interval_ms),
        "__from": str(t.from_ms),
        "__to": str(t.to_ms),
        "__range_s": str((t.to_ms - t.from_ms) // 1000),
        "__range_ms": str(t.to_ms - t.from_ms),
    }
    undefined: list[str] = []

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name in macros:
            return macros[name]
        if name in ctx.values:
            return format_values(ctx.values[name], ctx.definitions.get(name, {}), fmt)
        undefined.append(name)
        return m.group(0)

    out = _VARIABLE.sub(substitute, query)
    if undefined:
        raise QueryError(f"undefined variable(s) {sorted(set(undefined))} in {query!r}")
    return out


# -- running -----------------------------------------------------------------------------


def run_influxql(url: str, db: str, query: str) -> list[Series]:
    """Run one InfluxQL statement through ``/query`` (GET, like the datasource's httpMode);
    return its series. Any error, HTTP or InfluxQL, raises :class:`QueryError`."""
    params = urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"})
    try:
        with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as resp:  # noqa: S310
            body: Json = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise QueryError(f"HTTP {exc.code}: {detail} in {query!r}") from exc
    except (urllib.error.URLError, ValueError) as exc:
        raise QueryError(f"{exc} in {query!r}") from exc
    if "error" in body:
        raise QueryError(f"{body['error']} in {query!r}")
    series: list[Series] = []
    for result in body.get("results", []):
        if "error" in result:
            raise QueryError(f"InfluxQL error: {result['error']} in {query!r}")
        series += result.get("series", [])
    return series


Runner = Callable[[str], list[Series]]


def influx_runner(url: str, db: str) -> Runner:
    return lambda q: run_influxql(url, db, q)


def run_target(target: Json, ctx: Context, run: Runner) -> list[Series]:
    """Render a panel target like Grafana and run it. Raw InfluxQL targets only."""
    if not target.get("rawQuery") or not target.get("query"):
        raise QueryError(f"target {target.get('refId')} is not a raw InfluxQL query")
    return run(render(str(target["query"]), ctx))


def rows(series: Series) -> list[Json]:
    cols: list[str] = series["columns"]
    return [dict(zip(cols, values, strict=True)) for values in series.get("values", [])]


def variable_values(definition: Json, ctx: Context, run: Runner) -> list[str]:
    """The options of a template variable, as Grafana lists them."""
    kind = definition.get("type")
    if kind == "custom":
        return [v.strip() for v in str(definition["query"]).split(",") if v.strip()]
    if kind == "constant":
        return [str(definition["query"])]
    if kind != "query":
        raise QueryError(f"variable type {kind!r} is not supported here")
    found: list[str] = []
    for s in run(render(str(definition["query"]), ctx)):
        for row in s.get("values", []):
            cols = s["columns"]
            found.append(str(row[cols.index("value")] if "value" in cols else row[0]))
    pattern = str(definition.get("regex") or "")
    if pattern:
        m = re.fullmatch(r"/(.*)/([a-z]*)", pattern, re.DOTALL)
        body, flags = (m.group(1), m.group(2)) if m else (pattern, "")
        rx = re.compile(body, re.IGNORECASE if "i" in flags else 0)
        picked = []
        for value in found:
            hit = rx.search(value)
            if hit:
                picked.append(hit.group(1) if rx.groups else value)
        found = picked
    unique = list(dict.fromkeys(found))
    if definition.get("sort") in (1, 5):
        unique.sort()
    elif definition.get("sort") in (2, 6):
        unique.sort(reverse=True)
    return unique


def resolve_variables(dashboard: Json, time: TimeRange, run: Runner) -> Context:
    """Every variable's options (its query run with those before it) and its current
    selection ("All" -> every option). A variable without options raises."""
    ctx = Context(time=time)
    for definition in dashboard.get("templating", {}).get("list", []):
        name = definition["name"]
        options = variable_values(definition, ctx, run)
        if not options:
            raise QueryError(f"variable {name!r} has no values: {definition.get('query')!r}")
        current = definition.get("current", {}).get("value", [])
        selected = current if isinstance(current, list) else [current]
        if "$__all" in selected:
            chosen = [definition["allValue"]] if definition.get("allValue") else options
        else:
            chosen = [v for v in selected if v in options] or options[:1]
        ctx.definitions[name] = definition
        ctx.values[name] = chosen
    return ctx


# -- provisioning ------------------------------------------------------------------------


def load_yaml(path: Path) -> Json:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise QueryError(f"{path} is not a YAML mapping")
    return data


def host_path(container_path: str) -> Path:
    """The repository folder mounted at a container path (see MOUNTS)."""
    for mount, folder in MOUNTS.items():
        if container_path == mount or container_path.startswith(mount + "/"):
            return folder / container_path[len(mount) :].lstrip("/")
    raise QueryError(f"{container_path} is not under a documented mount")


# -- panels with transformations ---------------------------------------------------------


@dataclass
class Frame:
    """A table as Grafana's panels see it after the datasource: named fields, rows."""

    fields: list[str]
    rows: list[list[Any]]
    ref_id: str = ""

    def records(self) -> list[Json]:
        return [dict(zip(self.fields, row, strict=True)) for row in self.rows]


def table_frames(series: list[Series], ref_id: str = "") -> list[Frame]:
    """The frames of a table-format InfluxQL target: one per series, the time column named
    ``Time`` as Grafana names it, a series' tags (GROUP BY) as extra columns."""
    out = []
    for s in series:
        tags: Json = s.get("tags") or {}
        fields = ["Time" if c == "time" else c for c in s["columns"]] + list(tags)
        rows = [[*row, *tags.values()] for row in s.get("values", [])]
        out.append(Frame(fields, rows, ref_id))
    return out


def _merge(frames: list[Frame]) -> list[Frame]:
    """Grafana's "merge" transformation: one table from several. Rows are keyed by the
    fields every frame has; a row whose values equal (or fill the nulls of) an earlier row
    with the same key is merged into it, so identical rows collapse into one."""
    if len(frames) <= 1:
        return frames
    names = list(dict.fromkeys(f for frame in frames for f in frame.fields))
    common = [n for n in names if all(n in frame.fields for frame in frames)]
    if not common:
        return frames
    by_key: dict[str, list[Json]] = {}
    order: list[tuple[str, int]] = []
    for frame in frames:
        for record in frame.records():
            key = json.dumps([record[n] for n in common])
            existing = by_key.setdefault(key, [])
            merged = False
            for i, old in enumerate(existing):
                if all(old.get(k) is None or old[k] == v for k, v in record.items()):
                    existing[i] = {**old, **record}
                    merged = True
            if not merged:
                existing.append(record)
                order.append((key, len(existing) - 1))
    rows = [[by_key[key][i].get(n) for n in names] for key, i in order]
    return [Frame(names, rows, frames[0].ref_id)]


def _reduce(values: list[Any], reducer: str) -> Any:
    present = [v for v in values if v is not None]
    if reducer == "count":
        return len(values)
    if reducer == "sum":
        return sum(present)
    if reducer == "mean":
        return sum(present) / len(present) if present else None
    if reducer in ("max", "min"):
        return (max if reducer == "max" else min)(present) if present else None
    if reducer in ("first", "last"):
        return (values[0] if reducer == "first" else values[-1]) if values else None
    raise QueryError(f"reducer {reducer!r} is not supported here")


def _group_by(frames: list[Frame], options: Json) -> list[Frame]:
    """Grafana's "groupBy" transformation, operations ``groupby`` and ``aggregate``; each
    aggregate becomes a field ``<name> (<reducer>)``, groups in order of appearance."""
    spec: dict[str, Json] = options.get("fields", {})
    keys = [n for n, o in spec.items() if o.get("operation") == "groupby"]
    if not keys:
        return frames
    out = []
    for frame in frames:
        if not any(k in frame.fields for k in keys):
            continue
        key_fields = [k for k in frame.fields if k in keys]
        groups: dict[tuple[Any, ...], list[Json]] = {}
        for record in frame.records():
            groups.setdefault(tuple(record[k] for k in key_fields), []).append(record)
        fields = list(key_fields)
        columns: list[list[Any]] = [[key[i] for key in groups] for i in range(len(key_fields))]
        for name in frame.fields:
            o = spec.get(name, {})
            if o.get("operation") not in ("aggregate", "count"):
                continue
            reducers = ["count"] if o["operation"] == "count" else list(o["aggregations"])
            for reducer in reducers:
                fields.append(f"{name} ({reducer})")
                columns.append([_reduce([r[name] for r in g], reducer) for g in groups.values()])
        out.append(Frame(fields, [list(r) for r in zip(*columns, strict=True)], frame.ref_id))
    return out


def _organize(frames: list[Frame], options: Json) -> list[Frame]:
    """Grafana's "organize" transformation: exclude and rename fields (not reorder)."""
    exclude = {n for n, hidden in options.get("excludeByName", {}).items() if hidden}
    rename: dict[str, str] = options.get("renameByName", {})
    out = []
    for frame in frames:
        keep = [i for i, n in enumerate(frame.fields) if n not in exclude]
        fields = [rename.get(frame.fields[i]) or frame.fields[i] for i in keep]
        out.append(Frame(fields, [[row[i] for i in keep] for row in frame.rows], frame.ref_id))
    return out


def _sort_by(frames: list[Frame], options: Json) -> list[Frame]:
    (spec,) = options["sort"]
    out = []
    for frame in frames:
        if spec["field"] not in frame.fields:
            out.append(frame)
            continue
        i = frame.fields.index(spec["field"])
        rows = sorted(
            frame.rows, key=lambda r: (r[i] is None, r[i]), reverse=bool(spec.get("desc"))
        )
        out.append(Frame(frame.fields, rows, frame.ref_id))
    return out


def rename_by_regex(name: str, options: Json) -> str:
    """Grafana's "renameByRegex" on one display name: a regex not written as ``/.../flags``
    must match the whole name (``stringToJsRegex`` anchors it), the pattern's ``$1`` is the
    first group (JavaScript ``String.replace``)."""
    pattern = str(options["regex"])
    m = re.fullmatch(r"/(.*?)/([gimys]*)", pattern, re.DOTALL)
    if m:
        rx = re.compile(m.group(1), re.IGNORECASE if "i" in m.group(2) else 0)
        count = 0 if "g" in m.group(2) else 1
    else:
        rx, count = re.compile(f"^(?:{pattern})$"), 1
    if not rx.search(name):
        return name
    template = str(options["renamePattern"])

    def expand(hit: re.Match[str]) -> str:
        def group(g: re.Match[str]) -> str:
            n = int(g.group(1))
            return (hit.group(n) or "") if 0 < n <= rx.groups else g.group(0)

        return re.sub(r"\$(\d+)", group, template)

    return rx.sub(expand, name, count=count)


def _rename_by_regex(frames: list[Frame], options: Json) -> list[Frame]:
    return [
        Frame([rename_by_regex(n, options) for n in f.fields], f.rows, f.ref_id) for f in frames
    ]


def transform(frames: list[Frame], transformations: list[Json]) -> list[Frame]:
    """Apply a panel's transformations (merge, groupBy, organize, sortBy, renameByRegex)
    like Grafana."""
    for t in transformations:
        if t.get("disabled"):
            continue
        kind, options = t["id"], t.get("options", {})
        if kind == "merge":
            frames = _merge(frames)
        elif kind == "groupBy":
            frames = _group_by(frames, options)
        elif kind == "organize":
            frames = _organize(frames, options)
        elif kind == "sortBy":
            frames = _sort_by(frames, options)
        elif kind == "renameByRegex":
            frames = _rename_by_regex(frames, options)
        else:
            raise QueryError(f"transformation {kind!r} is not supported here")
    return frames


def run_table_panel(panel: Json, ctx: Context, run: Runner) -> list[Frame]:
    """Run every table-format InfluxDB target of a panel and apply its transformations:
    the tables the panel shows."""
    frames: list[Frame] = []
    for target in panel.get("targets", []):
        if not is_influx(target, panel):
            continue
        if target.get("resultFormat") != "table":
            raise QueryError(f"target {target.get('refId')} is not table-format")
        frames += table_frames(run_target(target, ctx, run), str(target.get("refId", "")))
    return transform(frames, panel.get("transformations", []))


# -- time series panels ------------------------------------------------------------------

# Grafana's InfluxDB backend: the alias patterns it replaces in a target's alias
# (pkg/tsdb/influxdb/.../util.go, legendFormat).
_ALIAS = re.compile(r"\[\[([@/\w-]+)(\.[@/\w-]+)*\]\]*|\$([@\w-]+?)*")


def display_name(target: Json, series: Series, column: str) -> str:
    """The name Grafana gives the field of one value column of a time-series result (the
    legend): the target's alias with ``$col``, ``$m``/``$measurement``, ``$tag_<key>`` and
    ``$<n>`` (a segment of the measurement name) replaced; without an alias
    ``<measurement>.<column> { key: value, ... }``."""
    name = str(series.get("name", ""))
    tags: dict[str, str] = series.get("tags") or {}
    alias = str(target.get("alias") or "")
    if not alias:
        out = f"{name}.{column}"
        if tags:
            out += " { " + ", ".join(f"{k}: {v}" for k, v in tags.items()) + " }"
        return out
    segments = name.split(".")

    def substitute(m: re.Match[str]) -> str:
        text = m.group(0).replace("[[", "", 1).replace("]]", "", 1).replace("$", "", 1)
        if text in ("m", "measurement"):
            return name
        if text == "col":
            return column
        if text.isdigit() and int(text) < len(segments):
            return segments[int(text)]
        if text.startswith("tag_") and text[4:] in tags:
            return tags[text[4:]]
        return m.group(0)

    return _ALIAS.sub(substitute, alias)


def run_timeseries_panel(panel: Json, ctx: Context, run: Runner) -> dict[str, list[list[Any]]]:
    """Run every time-series InfluxDB target of a panel and name its fields as the panel
    shows them (alias, then the panel's renameByRegex transformations): display name ->
    ``[time_ms, value]`` rows. Two fields with one name raise (two legend entries that
    cannot be told apart)."""
    steps = [t for t in panel.get("transformations", []) if not t.get("disabled")]
    for t in steps:
        if t["id"] != "renameByRegex":
            raise QueryError(f"transformation {t['id']!r} is not supported on time series")
    out: dict[str, list[list[Any]]] = {}
    for target in panel.get("targets", []):
        if not is_influx(target, panel) or target.get("hide"):
            continue
        if target.get("resultFormat") == "table":
            raise QueryError(f"target {target.get('refId')} is table-format")
        for s in run_target(target, ctx, run):
            for i, column in enumerate(s["columns"][1:], start=1):
                name = display_name(target, s, column)
                for t in steps:
                    name = rename_by_regex(name, t.get("options", {}))
                if name in out:
                    raise QueryError(f"two fields named {name!r} in panel {panel.get('title')}")
                out[name] = [[row[0], row[i]] for row in s.get("values", [])]
    return out
