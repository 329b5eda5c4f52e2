# The queries are constant InfluxQL templates built from constants here, never from input.
# ruff: noqa: S608
"""Write tagtrail's Grafana dashboards (JSON models) from one description.

    .venv/bin/python dashboards/generate.py           # rewrite dashboards/grafana/dashboards/
    .venv/bin/python dashboards/generate.py --check   # exit 1 if a JSON file is out of date

The JSON files are what Grafana loads (``provisioning/dashboards/tagtrail.yaml``); this
script keeps the three dashboards consistent: one datasource uid, the same template
variables, InfluxQL raw queries only (Flux is absent from InfluxDB 3.x). The schema of the
data is in ``docs/influxdb.md``; every query here is run against a real influxd 1.6 by
``tests/dashboards/test_queries.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE = {"type": "influxdb", "uid": "tagtrail-influxdb"}
SCHEMA_VERSION = 39

Json = dict[str, Any]

# -- filters shared by the queries --------------------------------------------------------

SITE = '"site" =~ /^$site$/'
ZONE = '"zone" =~ /^$zone$/'
DEVICE = '"device" =~ /^$device$/'
READER = '"reader" =~ /^$reader$/'
DOOR = '"zone" =~ /^$door$/'
GATEWAY = '"gateway" =~ /^$gateway$/'
# Items leaving the staging zone(s): a "moved" point names the zone it leaves in the
# from_zone field (its zone tag is where the item went), a "departed" point in its zone tag.
LEFT_STAGING = (
    '(("kind" = \'moved\' AND "from_zone" =~ /^$staging$/) OR '
    '("kind" = \'departed\' AND "zone" =~ /^$staging$/))'
)
# dwell_s is written on moved/departed points only, and only when the gateway knew when the
# item entered the zone it leaves; the condition also drops points without it.
HAS_DWELL = '"dwell_s" >= 0'


def where(*conditions: str) -> str:
    return "WHERE " + " AND ".join([*conditions, "$timeFilter"])


# -- template variables -------------------------------------------------------------------


def query_var(name: str, label: str, query: str, *, regex: str = "") -> Json:
    """A multi-value InfluxQL ``SHOW TAG VALUES`` variable with "All" selected."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "regex": regex,
        "refresh": 1,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def custom_var(name: str, label: str, values: list[str], *, multi: bool = False) -> Json:
    """A custom variable (a fixed list, edited in the dashboard's settings), the first
    value selected. A multi-value one renders as a regex alternation: use ``=~ /^$name$/``."""
    current: Json = {"selected": True, "text": values[0], "value": values[0]}
    if multi:
        current = {"selected": True, "text": [values[0]], "value": [values[0]]}
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "multi": multi,
        "includeAll": False,
        "current": current,
        "options": [{"selected": i == 0, "text": v, "value": v} for i, v in enumerate(values)],
        "hide": 0,
    }


SITE_VAR = query_var("site", "Site", 'SHOW TAG VALUES WITH KEY = "site"')
ZONE_VAR = query_var(
    "zone", "Zone", 'SHOW TAG VALUES FROM "stock" WITH KEY = "zone" WHERE "site" =~ /^$site$/'
)
DEVICE_VAR = query_var(
    "device",
    "Device",
    'SHOW TAG VALUES FROM "device_status" WITH KEY = "device" WHERE "site" =~ /^$site$/',
)
READER_VAR = query_var(
    "reader",
    "Reader",
    'SHOW TAG VALUES FROM "reader_status" WITH KEY = "reader" '
    'WHERE "site" =~ /^$site$/ AND "device" =~ /^$device$/',
)
# A dock door is a zone whose name says so (the variable's regex filters the zone names;
# edit it to suit a site's naming). Inbound = "arrived" there, outbound = "departed" there.
DOOR_VAR = query_var(
    "door",
    "Dock door",
    'SHOW TAG VALUES FROM "movement" WITH KEY = "zone" WHERE "site" =~ /^$site$/',
    regex="/door|dock|gate/",
)
# The staging zone(s): a custom list (one value, "staging", by default; add a site's own
# names in the dashboard settings), multi-value so several lanes can be picked at once.
STAGING_VAR = custom_var("staging", "Staging zone(s)", ["staging"], multi=True)
GATEWAY_VAR = query_var(
    "gateway", "Gateway", 'SHOW TAG VALUES FROM "gateway_stats" WITH KEY = "gateway"'
)

# -- panels -------------------------------------------------------------------------------


def target(
    query: str, ref: str = "A", *, alias: str = "", table: bool = False, hide: bool = False
) -> Json:
    out: Json = {
        "refId": ref,
        "datasource": DATASOURCE,
        "query": query,
        "rawQuery": True,
        "resultFormat": "table" if table else "time_series",
    }
    if hide:  # only an input of an expression (Grafana still runs it for the expression)
        out["hide"] = True
    if alias:
        out["alias"] = alias
    return out


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))


def panel(
    kind: str,
    title: str,
    targets: list[Json],
    *,
    w: int = 12,
    h: int = 8,
    unit: str = "short",
    description: str = "",
    steps: Json | None = None,
    custom: Json | None = None,
    options: Json | None = None,
    overrides: list[Json] | None = None,
    mappings: list[Json] | None = None,
    decimals: int | None = None,
    transformations: list[Json] | None = None,
) -> Json:
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "thresholds" if kind in ("stat", "bargauge") else "palette-classic"},
        "thresholds": steps or GREEN,
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if custom is not None:
        defaults["custom"] = custom
    out: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": targets,
    }
    if transformations:
        out["transformations"] = transformations
    return out


def timeseries(
    title: str,
    targets: list[Json],
    *,
    bars: bool = False,
    stack: bool = False,
    steps_line: bool = False,
    points: bool = False,
    **kw: Any,
) -> Json:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineInterpolation": "stepAfter" if steps_line else "linear",
        "fillOpacity": 60 if bars else (30 if stack else 10),
        "lineWidth": 1 if bars else 2,
        "showPoints": "always" if points else ("auto" if bars else "never"),
        "spanNulls": True,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisSoftMin": 0,
    }
    options = {
        "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, targets, custom=custom, options=options, **kw)


def stat(title: str, targets: list[Json], *, text_mode: str = "value_and_name", **kw: Any) -> Json:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "textMode": text_mode,
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return panel("stat", title, targets, options=options, **kw)


def bargauge(title: str, targets: list[Json], **kw: Any) -> Json:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
    }
    return panel("bargauge", title, targets, options=options, **kw)


ONLINE_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "offline", "color": "red", "index": 0},
            "1": {"text": "online", "color": "green", "index": 1},
        },
    }
]
OK_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "down", "color": "red", "index": 0},
            "1": {"text": "ok", "color": "green", "index": 1},
        },
    }
]


def color_override(pattern: str, color: str) -> Json:
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


IN_OUT_COLOURS = [color_override(".*inbound", "green"), color_override(".*outbound", "orange")]


def rename_by_regex(regex: str, pattern: str) -> Json:
    """Grafana's "rename fields by regex": the whole display name must match (Grafana
    anchors a regex not written as ``/.../``), ``$1`` in the pattern is the first group."""
    return {"id": "renameByRegex", "options": {"regex": regex, "renamePattern": pattern}}


# InfluxQL names the columns of a regex field selection ``<alias>_<field>`` (``AS "rate"``
# on /^reads_ant/ gives rate_reads_ant1, rate_reads_ant2, ...): the legend and table names
# are made readable by renaming, "<device>/<reader> antenna <N>".
ANTENNA_LEGEND = rename_by_regex(r"(.*) rate_reads_ant(\d+)", "$1 antenna $2")
ANTENNA_COLUMN = rename_by_regex(r"sum_reads_reads_ant(\d+)", "antenna $1")
ACTIVITY_LEGEND = rename_by_regex(r"(.*) activity_n_(.*)", "$1 $2")


# -- the dashboards -----------------------------------------------------------------------


def stock_movement() -> Json:
    movement_where = where(SITE, ZONE, DEVICE)
    panels = [
        timeseries(
            "Stock per zone",
            [
                target(
                    'SELECT last("count") FROM "stock" '
                    + where(SITE, ZONE)
                    + ' GROUP BY time($__interval), "zone" fill(previous)',
                    alias="$tag_zone",
                )
            ],
            stack=True,
            steps_line=True,
            unit="none",
            decimals=0,
            description="Items per zone, from the gateway's periodic stock points "
            "(write.stock_interval_s).",
        ),
        bargauge(
            "Stock now",
            [
                target(
                    'SELECT last("count") FROM "stock" ' + where(SITE, ZONE) + ' GROUP BY "zone"',
                    alias="$tag_zone",
                )
            ],
            w=6,
            unit="none",
            decimals=0,
            steps=thresholds((None, "blue")),
        ),
        stat(
            "Movements in range",
            [
                target(
                    'SELECT count("event_id") FROM "movement" '
                    + movement_where
                    + ' GROUP BY "kind"',
                    alias="$tag_kind",
                )
            ],
            w=6,
            unit="none",
            steps=thresholds((None, "blue")),
        ),
        timeseries(
            "Movements per zone",
            [
                target(
                    'SELECT count("event_id") FROM "movement" '
                    + movement_where
                    + ' GROUP BY time($__interval), "zone" fill(0)',
                    alias="$tag_zone",
                )
            ],
            bars=True,
            stack=True,
            unit="none",
            description="Movement events (arrived, moved into, departed from) per zone.",
        ),
        timeseries(
            "Movements per door, by kind",
            [
                target(
                    'SELECT count("event_id") FROM "movement" '
                    + where(SITE, DOOR, DEVICE)
                    + ' GROUP BY time($__interval), "zone", "kind" fill(0)',
                    alias="$tag_zone $tag_kind",
                )
            ],
            bars=True,
            stack=True,
            unit="none",
            description="Every movement event at the dock doors: arrived (inbound), moved "
            "(to the door from inside, or through it), departed (outbound).",
        ),
        timeseries(
            "Inbound vs outbound per dock door",
            [
                target(
                    'SELECT count("event_id") AS "inbound" FROM "movement" '
                    + where(SITE, DOOR, DEVICE, "\"kind\" = 'arrived'")
                    + ' GROUP BY time($__interval), "zone" fill(0)',
                    "A",
                    alias="$tag_zone inbound",
                ),
                target(
                    'SELECT count("event_id") AS "outbound" FROM "movement" '
                    + where(SITE, DOOR, DEVICE, "\"kind\" = 'departed'")
                    + ' GROUP BY time($__interval), "zone" fill(0)',
                    "B",
                    alias="$tag_zone outbound",
                ),
            ],
            bars=True,
            unit="none",
            description="Inbound: an item first seen at the door (kind 'arrived', zone = "
            "door). Outbound: an item last seen at the door before it disappeared (kind "
            "'departed', zone = door).",
            overrides=IN_OUT_COLOURS,
        ),
        bargauge(
            "Inbound / outbound per door in range",
            [
                target(
                    'SELECT count("event_id") AS "inbound" FROM "movement" '
                    + where(SITE, DOOR, DEVICE, "\"kind\" = 'arrived'")
                    + ' GROUP BY "zone"',
                    "A",
                    alias="$tag_zone inbound",
                ),
                target(
                    'SELECT count("event_id") AS "outbound" FROM "movement" '
                    + where(SITE, DOOR, DEVICE, "\"kind\" = 'departed'")
                    + ' GROUP BY "zone"',
                    "B",
                    alias="$tag_zone outbound",
                ),
            ],
            unit="none",
            overrides=IN_OUT_COLOURS,
        ),
        timeseries(
            "Dwell in staging (items leaving it)",
            [
                target(
                    'SELECT mean("dwell_s") AS "mean", percentile("dwell_s", 90) AS "p90" '
                    'FROM "movement" '
                    + where(SITE, DEVICE, LEFT_STAGING, HAS_DWELL)
                    + " GROUP BY time($__interval) fill(none)",
                    alias="$col",
                )
            ],
            points=True,
            unit="s",
            description="Seconds each item spent in the staging zone(s), written by the "
            "gateway on the event that takes it out (moved on: from_zone = staging; "
            "departed: zone = staging): mean and 90th percentile of the items that left in "
            "each interval. Items still in staging count only once they leave.",
            steps=thresholds((None, "green"), (900, "orange"), (3600, "red")),
        ),
        stat(
            "Dwell in staging (range)",
            [
                target(
                    'SELECT mean("dwell_s") AS "mean", percentile("dwell_s", 90) AS "p90", '
                    'count("dwell_s") AS "items left" FROM "movement" '
                    + where(SITE, DEVICE, LEFT_STAGING, HAS_DWELL),
                    alias="$col",
                )
            ],
            w=4,
            unit="s",
            description="Mean and 90th percentile (nearest rank) of the dwell of every item "
            "that left the staging zone(s) in the time range, and how many left.",
            steps=thresholds((None, "green"), (900, "orange"), (3600, "red")),
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "items left"},
                    "properties": [
                        {"id": "unit", "value": "none"},
                        {"id": "thresholds", "value": thresholds((None, "blue"))},
                    ],
                }
            ],
        ),
        panel(
            "table",
            "Dwell by zone left",
            [
                target(
                    'SELECT "event_id", "zone" AS "zone_left", "dwell_s" FROM "movement" '
                    + where(SITE, DEVICE, ZONE, "\"kind\" = 'departed'", HAS_DWELL),
                    "A",
                    table=True,
                ),
                target(
                    'SELECT "event_id", "from_zone" AS "zone_left", "dwell_s" FROM "movement" '
                    + where(
                        SITE, DEVICE, '"from_zone" =~ /^$zone$/', "\"kind\" = 'moved'", HAS_DWELL
                    ),
                    "B",
                    table=True,
                ),
            ],
            w=8,
            unit="s",
            description="Mean dwell per zone, over every item that left it in the time range "
            "(departed from it, or moved on from it). InfluxQL cannot GROUP BY from_zone (a "
            "field), so both queries fetch one row per exit and Grafana groups them "
            "(transformations merge + group by); event_id keeps identical rows apart.",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "groupBy",
                    "options": {
                        "fields": {
                            "zone_left": {"operation": "groupby", "aggregations": []},
                            "dwell_s": {
                                "operation": "aggregate",
                                "aggregations": ["mean", "max", "count"],
                            },
                        }
                    },
                },
                {
                    "id": "organize",
                    "options": {
                        "renameByName": {
                            "zone_left": "zone",
                            "dwell_s (mean)": "mean dwell",
                            "dwell_s (max)": "max dwell",
                            "dwell_s (count)": "items left",
                        }
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "zone"}]}},
            ],
            options={"showHeader": True},
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "items left"},
                    "properties": [{"id": "unit", "value": "none"}],
                },
                {
                    "matcher": {"id": "byName", "options": "zone"},
                    "properties": [{"id": "unit", "value": "string"}],
                },
            ],
        ),
        panel(
            "table",
            "Latest movements",
            [
                target(
                    'SELECT "kind", "epc", "item", "from_zone", "zone", "reader", "antenna", '
                    '"rssi_dbm", "read_count", "device" FROM "movement" '
                    + movement_where
                    + " ORDER BY time DESC LIMIT 100",
                    table=True,
                )
            ],
            w=24,
            h=10,
            options={"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]},
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "rssi_dbm"},
                    "properties": [{"id": "unit", "value": "dBm"}, {"id": "decimals", "value": 1}],
                },
                {
                    "matcher": {"id": "byName", "options": "kind"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                        {
                            "id": "mappings",
                            "value": [
                                {
                                    "type": "value",
                                    "options": {
                                        "arrived": {"color": "green", "index": 0},
                                        "moved": {"color": "blue", "index": 1},
                                        "departed": {"color": "orange", "index": 2},
                                    },
                                }
                            ],
                        },
                    ],
                },
            ],
        ),
    ]
    return dashboard(
        "tagtrail-stock-movement",
        "tagtrail · Stock movement",
        [SITE_VAR, ZONE_VAR, DEVICE_VAR, DOOR_VAR, STAGING_VAR],
        panels,
    )


def reader_health() -> Json:
    rw = where(SITE, DEVICE, READER)
    panels = [
        timeseries(
            "Read rate per reader",
            [
                target(
                    'SELECT mean("read_rate_per_s") FROM "reader_status" '
                    + rw
                    + ' GROUP BY time($__interval), "device", "reader" fill(none)',
                    alias="$tag_device/$tag_reader",
                )
            ],
            unit="suffix: reads/s",
            description="Raw tag reads per second, as each reader's status event reports "
            "(heartbeat: status.heartbeat_s).",
        ),
        stat(
            "Readers",
            [
                target(
                    'SELECT last("online") FROM "reader_status" '
                    + rw
                    + ' GROUP BY "device", "reader"',
                    alias="$tag_device/$tag_reader",
                )
            ],
            w=6,
            mappings=ONLINE_MAPPING,
            steps=thresholds((None, "red"), (1, "green")),
        ),
        stat(
            "Devices offline",
            [
                target(
                    'SELECT sum("offline") FROM (SELECT 1 - last("online") AS "offline" '
                    'FROM "device_status" ' + where(SITE, DEVICE) + ' GROUP BY "device")',
                    alias="offline",
                )
            ],
            w=6,
            text_mode="value",
            unit="none",
            steps=thresholds((None, "green"), (1, "red")),
            description="Edge devices whose latest status is offline (clean shutdown or "
            "the broker's Last Will).",
        ),
        timeseries(
            "Read rate per reader and antenna",
            [
                target(
                    'SELECT non_negative_derivative(last(/^reads_ant/), 1s) AS "rate" '
                    'FROM "reader_status" '
                    + rw
                    + ' GROUP BY time($__interval), "device", "reader" fill(none)',
                    alias="$tag_device/$tag_reader $col",
                )
            ],
            w=16,
            unit="suffix: reads/s",
            description="Raw tag reads per second on each antenna: the per-second rate of "
            "the cumulative reads_ant<N> counters (every reads_ant field, /^reads_ant/) "
            "between the intervals' last status points. A counter that restarts with the "
            "edge agent draws no negative rate (non_negative_derivative).",
            transformations=[ANTENNA_LEGEND],
        ),
        panel(
            "table",
            "Reads per antenna in range",
            [
                target(
                    'SELECT sum(*) FROM (SELECT non_negative_difference(/^reads_ant/) AS "reads" '
                    'FROM "reader_status" '
                    + rw
                    + ' GROUP BY "device", "reader") '
                    + where()
                    + ' GROUP BY "device", "reader"',
                    table=True,
                )
            ],
            w=8,
            unit="short",
            decimals=0,
            description="Raw tag reads per reader and antenna in the time range: the sum of "
            "the increments of each cumulative reads_ant<N> counter between consecutive "
            "status points (the latest minus the first when the edge agent did not restart; "
            "across a restart the reads before the first point after it are not counted, "
            "instead of a negative or inflated figure). One row per reader, a column per "
            "antenna; an antenna without reads is blank.",
            options={"showHeader": True, "sortBy": [{"displayName": "reader"}]},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                ANTENNA_COLUMN,
            ],
        ),
        timeseries(
            "Reads per inventory round",
            [
                target(
                    'SELECT mean("round_total_reads") FROM "reader_status" '
                    + rw
                    + ' GROUP BY time($__interval), "device", "reader" fill(none)',
                    alias="$tag_device/$tag_reader",
                )
            ],
            points=True,
            unit="none",
            description="Tags read in one inventory round, from the reader's end-of-round "
            "frame (R2000): the latest round when each status event was sent, one sample "
            "per heartbeat, not every round. Readers without round frames draw nothing.",
        ),
        stat(
            "Round read rate (latest round)",
            [
                target(
                    'SELECT last("round_read_rate_per_s") FROM "reader_status" '
                    + rw
                    + ' GROUP BY "device", "reader"',
                    alias="$tag_device/$tag_reader",
                )
            ],
            unit="suffix: reads/s",
            description="The read rate the reader itself reported for its latest inventory "
            "round (end-of-round frame, R2000), as of its last status event.",
            steps=thresholds((None, "blue")),
        ),
        timeseries(
            "Movement events per reader and zone (antenna)",
            [
                target(
                    'SELECT count("event_id") FROM "movement" '
                    + where(SITE, DEVICE, READER, ZONE)
                    + ' GROUP BY time($__interval), "reader", "zone" fill(0)',
                    alias="$tag_reader → $tag_zone",
                )
            ],
            bars=True,
            stack=True,
            unit="none",
            description="Each antenna feeds one zone, so this is movement activity per "
            "antenna (raw reads per antenna: Read rate per reader and antenna).",
        ),
        timeseries(
            "Reader errors per interval",
            [
                target(
                    'SELECT non_negative_difference(last("errors_total")) FROM "reader_status" '
                    + rw
                    + ' GROUP BY time($__interval), "device", "reader" fill(none)',
                    alias="$tag_device/$tag_reader",
                )
            ],
            bars=True,
            unit="none",
            steps=thresholds((None, "green"), (1, "orange"), (10, "red")),
        ),
        panel(
            "table",
            "Errors by reason (since the edge agent started)",
            [
                target(
                    'SELECT last("errors_total") AS "total", last(/^err_/) FROM "reader_status" '
                    + rw
                    + ' GROUP BY "device", "reader"',
                    table=True,
                )
            ],
            options={"showHeader": True},
            steps=thresholds((None, "green"), (1, "orange"), (100, "red")),
            custom={"cellOptions": {"type": "color-text"}},
        ),
        timeseries(
            "Reader activity per interval",
            [
                target(
                    'SELECT non_negative_difference(last("reads_total")) AS "reads", '
                    'non_negative_difference(last(/^n_/)) AS "activity" FROM "reader_status" '
                    + rw
                    + ' GROUP BY time($__interval), "device", "reader" fill(none)',
                    alias="$tag_device/$tag_reader $col",
                )
            ],
            bars=True,
            unit="none",
            description="Work each reader did per interval: raw reads (every reader), and "
            "for readers that count activity other than errors (n_<counter>, cameras) each "
            "counter's increase: frames captured, analysed, decodes, frames_dropped (frames "
            "the decoder could not take: it is overloaded or paced) and the symbols each "
            "decoder engine contributed (engine_zxing, engine_pyzbar). RFID readers report "
            "no n_ counters: for them this shows reads only.",
            overrides=[color_override(".*frames_dropped", "red")],
            transformations=[ACTIVITY_LEGEND],
        ),
        stat(
            "Reads since start",
            [
                target(
                    'SELECT last("reads_total") FROM "reader_status" '
                    + rw
                    + ' GROUP BY "device", "reader"',
                    alias="$tag_device/$tag_reader",
                )
            ],
            w=12,
            unit="short",
            steps=thresholds((None, "blue")),
        ),
        timeseries(
            "Reader online",
            [
                target(
                    'SELECT last("online") FROM "reader_status" '
                    + rw
                    + ' GROUP BY time($__interval), "device", "reader" fill(previous)',
                    alias="$tag_device/$tag_reader",
                )
            ],
            steps_line=True,
            unit="bool_on_off",
            mappings=ONLINE_MAPPING,
        ),
        stat(
            "Device uptime",
            [
                target(
                    'SELECT last("uptime_s") FROM "device_status" '
                    + where(SITE, DEVICE)
                    + ' GROUP BY "device"',
                    alias="$tag_device",
                )
            ],
            unit="s",
            steps=thresholds((None, "blue")),
        ),
    ]
    return dashboard(
        "tagtrail-reader-health",
        "tagtrail · Reader health",
        [SITE_VAR, ZONE_VAR, DEVICE_VAR, READER_VAR],
        panels,
    )


def pipeline() -> Json:
    gw = where(GATEWAY)
    panels = [
        timeseries(
            "Events per second (gateway)",
            [
                target(
                    'SELECT non_negative_derivative(last("events"), 1s) AS "events", '
                    'non_negative_derivative(last("messages"), 1s) AS "messages" '
                    'FROM "gateway_stats" ' + gw + ' GROUP BY time($__interval), "gateway"',
                    alias="$tag_gateway $col",
                )
            ],
            unit="suffix: /s",
            description="Events and MQTT messages the gateway consumed, per second.",
        ),
        timeseries(
            "Movements per second (edge event time)",
            [
                target(
                    'SELECT count("event_id") / $__interval_ms * 1000 FROM "movement" '
                    + where(SITE, DEVICE)
                    + ' GROUP BY time($__interval), "device" fill(0)',
                    alias="$tag_device",
                )
            ],
            unit="suffix: /s",
        ),
        timeseries(
            "Edge outbox depth",
            [
                target(
                    'SELECT last("outbox_depth") FROM "device_status" '
                    + where(SITE, DEVICE)
                    + ' GROUP BY time($__interval), "device" fill(previous)',
                    alias="$tag_device",
                )
            ],
            unit="none",
            steps=thresholds((None, "green"), (1000, "orange"), (100000, "red")),
            description="Events stored on the edge device but not yet acknowledged by the "
            "broker (from the device's heartbeat status).",
        ),
        stat(
            "Dead letters (since gateway start)",
            [
                target(
                    'SELECT last("dead_letters") AS "dead letters", '
                    'last("apply_failures") AS "apply failures" FROM "gateway_stats" '
                    + gw
                    + ' GROUP BY "gateway"',
                    alias="$tag_gateway $col",
                )
            ],
            w=6,
            unit="none",
            steps=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Gateway links",
            [
                target(
                    'SELECT last("influx_ok") AS "InfluxDB", last("mqtt_connected") AS "MQTT" '
                    'FROM "gateway_stats" ' + gw + ' GROUP BY "gateway"',
                    alias="$tag_gateway $col",
                )
            ],
            w=6,
            mappings=OK_MAPPING,
            steps=thresholds((None, "red"), (1, "green")),
        ),
        timeseries(
            "InfluxDB write latency",
            [
                target(
                    'SELECT mean("write_latency_ms") FROM "gateway_stats" '
                    + gw
                    + ' GROUP BY time($__interval), "gateway" fill(none)',
                    alias="$tag_gateway",
                )
            ],
            unit="ms",
            steps=thresholds((None, "green"), (500, "orange"), (2000, "red")),
            description="Latency of the latest successful write request when each stats "
            "point was taken.",
        ),
        timeseries(
            "InfluxDB write errors per interval",
            [
                target(
                    'SELECT non_negative_difference(last("points_rejected")) AS "rejected points", '
                    'non_negative_difference(last("write_retries")) AS "retries", '
                    'non_negative_difference(last("dead_letters")) AS "dead letters" '
                    'FROM "gateway_stats" ' + gw + ' GROUP BY time($__interval), "gateway"',
                    alias="$tag_gateway $col",
                )
            ],
            bars=True,
            unit="none",
            overrides=[
                color_override(".*rejected.*", "red"),
                color_override(".*retries.*", "orange"),
                color_override(".*dead.*", "purple"),
            ],
        ),
        timeseries(
            "Gateway spool depth",
            [
                target(
                    'SELECT last("spool_depth") FROM "gateway_stats" '
                    + gw
                    + ' GROUP BY time($__interval), "gateway" fill(previous)',
                    alias="$tag_gateway",
                )
            ],
            unit="none",
            steps=thresholds((None, "green"), (5000, "orange"), (100000, "red")),
            description="Points committed by the gateway and waiting for InfluxDB.",
        ),
        timeseries(
            "Points written to InfluxDB per second",
            [
                target(
                    'SELECT non_negative_derivative(last("points_written"), 1s) '
                    'FROM "gateway_stats" ' + gw + ' GROUP BY time($__interval), "gateway"',
                    alias="$tag_gateway",
                )
            ],
            unit="suffix: points/s",
        ),
    ]
    return dashboard(
        "tagtrail-pipeline",
        "tagtrail · Pipeline",
        [SITE_VAR, DEVICE_VAR, GATEWAY_VAR],
        panels,
    )


def layout(panels: list[Json]) -> list[Json]:
    """Number the panels and place them left to right, top to bottom (24 columns)."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"] = i
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
    return panels


def dashboard(uid: str, title: str, variables: list[Json], panels: list[Json]) -> Json:
    return {
        "uid": uid,
        "title": title,
        "tags": ["tagtrail"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "links": [
            {
                "type": "dashboards",
                "tags": ["tagtrail"],
                "asDropdown": True,
                "title": "tagtrail",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": variables},
        "panels": layout(panels),
    }


DASHBOARDS = {
    "stock-movement.json": stock_movement,
    "reader-health.json": reader_health,
    "pipeline.json": pipeline,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in render().items():
        path = OUT / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        sys.stderr.write(f"out of date (run dashboards/generate.py): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
