"""The provisioning files and dashboard JSON models, checked without Grafana.

Grafana cannot be installed here; what Grafana would refuse or show broken is checked
structurally: schema version, unique ids, datasource references, variables, units, and that
the provisioning files parse and point at folders that exist. The queries themselves run
against a real influxd in test_queries.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from tests.support import grafana
from tests.support.grafana import DATASOURCE_UID, Context, QueryError, TimeRange

DASHBOARDS = grafana.load_dashboards()
DATASOURCES = grafana.PROVISIONING / "datasources"
README = grafana.REPO / "dashboards" / "README.md"
ENV_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*\}$")


def test_the_three_dashboards_exist() -> None:
    assert set(DASHBOARDS) == {"stock-movement.json", "reader-health.json", "pipeline.json"}


def test_generated_json_is_up_to_date() -> None:
    script = grafana.REPO / "dashboards" / "generate.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["influxdb-1x.yaml", "influxdb-2x.yaml", "influxdb-3x.yaml"])
def test_datasource_provisioning(name: str) -> None:
    config = grafana.load_yaml(DATASOURCES / name)
    assert config["apiVersion"] == 1
    (ds,) = config["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["name"] == "tagtrail InfluxDB"
    assert ds["type"] == "influxdb"
    assert ds["access"] == "proxy"
    assert ENV_REF.match(ds["url"])
    assert ds["jsonData"]["version"] == "InfluxQL"  # Flux is absent from 3.x
    assert ds["jsonData"]["dbName"] == "tagtrail"
    secrets = ds.get("secureJsonData", {})
    assert secrets, "credentials go in secureJsonData"
    if name == "influxdb-1x.yaml":
        assert ENV_REF.match(secrets["password"])
        assert ENV_REF.match(ds["user"])
    else:
        assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
        token = secrets["httpHeaderValue1"]
        assert token.startswith("Token ")
        assert ENV_REF.match(token.removeprefix("Token "))


def test_datasource_files_are_all_there() -> None:
    assert sorted(p.name for p in DATASOURCES.iterdir()) == [
        "influxdb-1x.yaml",
        "influxdb-2x.yaml",
        "influxdb-3x.yaml",
    ]


def test_dashboard_provider_points_at_the_dashboards() -> None:
    config = grafana.load_yaml(grafana.PROVISIONING / "dashboards" / "tagtrail.yaml")
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    folder = grafana.host_path(provider["options"]["path"])
    assert folder == grafana.DASHBOARDS
    assert {p.name for p in folder.glob("*.json")} == set(DASHBOARDS)
    # the README documents the same mounts the tests resolve
    readme = README.read_text()
    for container, repo_folder in grafana.MOUNTS.items():
        assert container in readme
        assert str(repo_folder.relative_to(grafana.REPO)) in readme
    assert "can't be installed" in readme or "cannot be installed" in readme


def test_dashboard_uids_are_unique() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_structure(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] >= 39
    panels = list(grafana.all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24
        assert pos["h"] > 0
        assert p["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        assert p["fieldConfig"]["defaults"]["unit"], f"{p['title']}: no unit"
        assert p["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] is None
        refs = [t["refId"] for t in p["targets"]]
        assert refs
        assert len(set(refs)) == len(refs)
        for t in p["targets"]:
            if t["datasource"]["type"] == "__expr__":
                used = set(re.findall(r"\$([A-Z])", t["expression"]))
                assert used
                assert used <= set(refs) - {t["refId"]}
                continue
            assert t["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
            assert t["rawQuery"] is True
            assert t["resultFormat"] in ("time_series", "table")
            assert "from(bucket" not in t["query"]  # InfluxQL only
            assert "$timeFilter" in t["query"], f"{p['title']}: unbounded in time"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables_referenced_are_defined_in_order(name: str) -> None:
    """Every $name in a query is a Grafana macro or a variable defined (for a variable's own
    query: defined before it, so Grafana can resolve them in order)."""
    dashboard = DASHBOARDS[name]
    builtin = {"timeFilter", "__interval", "interval", "__interval_ms"}
    defined: set[str] = set()
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert grafana.referenced_variables(variable["query"]) <= defined
        defined.add(variable["name"])
    for panel, target in grafana.influx_targets(dashboard):
        used = grafana.referenced_variables(target["query"])
        assert used <= defined | builtin, f"{panel['title']}: {used - defined - builtin}"
    assert {"site", "device"} <= defined
    if name != "pipeline.json":
        assert "zone" in defined


# -- the substitution itself ---------------------------------------------------------------

MULTI: dict[str, Any] = {"multi": True, "includeAll": True}
SINGLE: dict[str, Any] = {"multi": False, "includeAll": False}


def ctx(**values: list[str]) -> Context:
    c = Context(time=TimeRange(1_000, 61_000, 10_000))
    for name, v in values.items():
        c.values[name] = v
        c.definitions[name] = SINGLE if name.startswith("one") else MULTI
    return c


def test_macros_render_like_grafanas_backend() -> None:
    q = "SELECT count(x) / $__interval_ms FROM m WHERE $timeFilter GROUP BY time($__interval)"
    assert grafana.render(q, ctx()) == (
        "SELECT count(x) / 10000 FROM m WHERE time >= 1000ms and time <= 61000ms GROUP BY time(10s)"
    )
    assert grafana.render("time($interval)", ctx()) == "time(10s)"
    assert TimeRange(0, 1, 500).interval == "500ms"
    assert TimeRange(0, 1, 120_000).interval == "2m"


def test_variables_render_as_regex_for_multi_value() -> None:
    c = ctx(zone=["dock-door", "a.b/c"], site=["wh"], one=["plain.value"])
    assert grafana.render('"zone" =~ /^$zone$/', c) == '"zone" =~ /^(dock-door|a\\.b\\/c)$/'
    assert grafana.render('"site" =~ /^${site}$/', c) == '"site" =~ /^wh$/'
    assert grafana.render("[[zone]]", c) == "(dock-door|a\\.b\\/c)"
    assert grafana.render("${zone:raw}", c) == "dock-door,a.b/c"
    assert grafana.render("'$one'", c) == "'plain.value'"
    # $tag in a regex anchor is not a variable
    assert grafana.render("/^$site$/", c) == "/^wh$/"


def test_an_undefined_variable_fails() -> None:
    with pytest.raises(QueryError, match="undefined variable"):
        grafana.render('"zone" =~ /^$zones$/', ctx(zone=["a"]))


def test_a_target_that_is_not_raw_influxql_fails() -> None:
    with pytest.raises(QueryError, match="raw InfluxQL"):
        grafana.run_target({"refId": "A", "query": "SELECT 1"}, ctx(), lambda q: [])


# -- transformations -------------------------------------------------------------------------


def test_panels_use_only_transformations_the_tests_run() -> None:
    """The query tests apply a panel's transformations; one they cannot apply would leave
    the panel's figures unchecked."""
    seen = 0
    for dashboard in DASHBOARDS.values():
        for panel in grafana.all_panels(dashboard):
            steps = panel.get("transformations", [])
            for t in steps:
                seen += 1
                assert t["id"] in {"merge", "groupBy", "organize", "sortBy", "renameByRegex"}
            if any(t["id"] != "renameByRegex" for t in steps):
                # those run on the tables of table-format targets (run_table_panel)
                assert all(x["resultFormat"] == "table" for x in panel["targets"])
            elif steps and panel["type"] == "timeseries":
                # renaming legends: run_timeseries_panel applies it to the aliased names
                assert all(x["resultFormat"] == "time_series" for x in panel["targets"])
    assert seen


def test_merge_folds_identical_rows_like_grafana() -> None:
    a = grafana.Frame(["Time", "zone_left", "dwell_s"], [[1, "a", 2.0], [1, "a", 2.0]])
    b = grafana.Frame(["Time", "zone_left", "dwell_s"], [[1, "a", 2.0], [2, "b", 3.0]])
    (merged,) = grafana.transform([a, b], [{"id": "merge", "options": {}}])
    assert merged.rows == [[1, "a", 2.0], [2, "b", 3.0]]  # three equal rows became one
    # a unique column keeps every row
    c = grafana.Frame(["id", "zone_left", "dwell_s"], [["e1", "a", 2.0], ["e2", "a", 2.0]])
    d = grafana.Frame(["id", "zone_left", "dwell_s"], [["e3", "a", 2.0]])
    (kept,) = grafana.transform([c, d], [{"id": "merge", "options": {}}])
    assert len(kept.rows) == 3
    # rows that only fill each other's gaps merge; fields missing from a frame stay null
    e = grafana.Frame(["Time", "x"], [[1, 5]])
    f = grafana.Frame(["Time", "y"], [[1, 6], [2, 7]])
    (joined,) = grafana.transform([e, f], [{"id": "merge", "options": {}}])
    assert joined.fields == ["Time", "x", "y"]
    assert joined.rows == [[1, 5, 6], [2, None, 7]]


def test_group_by_organize_and_sort_like_grafana() -> None:
    frame = grafana.Frame(
        ["id", "zone_left", "dwell_s"],
        [["e1", "b", 1.0], ["e2", "a", 4.0], ["e3", "b", 3.0]],
    )
    steps = [
        {
            "id": "groupBy",
            "options": {
                "fields": {
                    "zone_left": {"operation": "groupby", "aggregations": []},
                    "dwell_s": {"operation": "aggregate", "aggregations": ["mean", "count"]},
                }
            },
        },
        {"id": "organize", "options": {"renameByName": {"zone_left": "zone"}}},
        {"id": "sortBy", "options": {"sort": [{"field": "zone"}]}},
    ]
    (out,) = grafana.transform([frame], steps)
    assert out.fields == ["zone", "dwell_s (mean)", "dwell_s (count)"]
    assert out.rows == [["a", 4.0, 1], ["b", 2.0, 2]]
    with pytest.raises(QueryError, match="not supported"):
        grafana.transform([frame], [{"id": "calculateField", "options": {}}])


def test_rename_by_regex_like_grafana() -> None:
    """stringToJsRegex anchors a plain regex (the whole name must match), /.../ is used as
    written; $1 in the pattern is the first group."""
    legend = {"regex": "(.*) rate_reads_ant(\\d+)", "renamePattern": "$1 antenna $2"}
    assert grafana.rename_by_regex("door-7/r0 rate_reads_ant12", legend) == "door-7/r0 antenna 12"
    assert grafana.rename_by_regex("door-7/r0 reads", legend) == "door-7/r0 reads"
    anchored = {"regex": "ant(\\d)", "renamePattern": "antenna $1"}
    assert grafana.rename_by_regex("reads_ant1", anchored) == "reads_ant1"  # not the whole name
    assert grafana.rename_by_regex("ant1", anchored) == "antenna 1"
    loose = {"regex": "/ant(\\d)/", "renamePattern": "antenna $1 $9"}
    assert grafana.rename_by_regex("reads_ant1", loose) == "reads_antenna 1 $9"
    frame = grafana.Frame(["Time", "reads_reads_ant2"], [[1, 5]])
    step = {
        "id": "renameByRegex",
        "options": {"regex": "reads_reads_ant(\\d+)", "renamePattern": "antenna $1"},
    }
    (out,) = grafana.transform([frame], [step])
    assert out.fields == ["Time", "antenna 2"]


def test_time_series_names_like_grafanas_backend() -> None:
    series = {"name": "reader_status", "tags": {"device": "d-1", "reader": "r0"}}
    alias = {"alias": "$tag_device/$tag_reader $col"}
    assert grafana.display_name(alias, series, "rate_reads_ant1") == "d-1/r0 rate_reads_ant1"
    assert grafana.display_name({"alias": "[[tag_reader]] $m $tag_x"}, series, "c") == (
        "r0 reader_status $tag_x"  # an unknown tag stays as written
    )
    assert grafana.display_name({}, series, "last") == (
        "reader_status.last { device: d-1, reader: r0 }"
    )
