"""Scenario validation: structural and ground-truth ambiguity errors name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tagtrail.errors import ConfigError
from tagtrail.sim.scenario import Scenario, load_scenario, parse_scenario
from tests.sim.helpers import SCENARIOS

BASE: dict[str, Any] = {
    "name": "unit",
    "antennas": {1: "dock", 2: "staging"},
    "end_s": 40,
    "expect": {"depart_after_s": 5, "min_dwell_s": 2, "margin_s": 1, "rssi_margin_db": 6},
    "tags": [
        {
            "epc": "E200301666130121155074EF",
            "visible": [
                {"antenna": 1, "from_s": 1, "to_s": 8, "rssi_dbm": -55},
                {"antenna": 2, "from_s": 9, "to_s": 20, "rssi_dbm": -60},
            ],
        }
    ],
}


def scenario(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_scenario(data)
    found = dict(info.value.problems)
    assert found, "a ConfigError must name at least one problem"
    return found


def visible(*intervals: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"epc": "E200301666130121155074EF", "visible": list(intervals)}]


def test_base_scenario_is_valid() -> None:
    s = parse_scenario(scenario())
    assert isinstance(s, Scenario)
    assert s.connected_ports() == [1, 2]
    assert [t.epc for t in s.resolved_tags()] == ["E200301666130121155074EF"]


def test_unknown_keys_are_rejected_by_name() -> None:
    data = scenario(reads={"reads_per_s": 5, "bogus": 1})
    assert "reads.bogus" in problems(data)
    assert "speed" in problems(scenario(speed=3))


def test_antenna_ports_must_be_1_to_4() -> None:
    found = problems(scenario(antennas={1: "dock", 5: "yard"}))
    assert any(path.startswith("antennas.5") for path in found)


def test_visibility_must_use_a_connected_antenna() -> None:
    data = scenario(tags=visible({"antenna": 3, "from_s": 0, "to_s": 10}))
    assert "not in antennas" in problems(data)["tags.0.visible.0.antenna"]
    data = scenario(disconnected=[2], tags=visible({"antenna": 2, "from_s": 0, "to_s": 10}))
    assert "disconnected" in problems(data)["tags.0.visible.0.antenna"]


def test_interval_must_not_be_empty_or_past_the_end() -> None:
    assert "tags.0.visible.0" in problems(
        scenario(tags=visible({"antenna": 1, "from_s": 5, "to_s": 5}))
    )
    found = problems(scenario(tags=visible({"antenna": 1, "from_s": 5, "to_s": 41})))
    assert "end_s" in found["tags.0.visible.0.to_s"]
    found = problems(scenario(tags=visible({"antenna": 1, "from_s": 40})))
    assert "tags.0.visible.0.from_s" in found


def test_same_antenna_intervals_must_not_overlap() -> None:
    data = scenario(
        tags=visible(
            {"antenna": 1, "from_s": 0, "to_s": 10},
            {"antenna": 1, "from_s": 9, "to_s": 12},
        )
    )
    assert "same antenna" in problems(data)["tags.0.visible.1"]


def test_gap_near_depart_after_is_ambiguous() -> None:
    # unseen 4.5 s, within margin 1 s of depart_after 5 s
    data = scenario(
        tags=visible(
            {"antenna": 1, "from_s": 0, "to_s": 5},
            {"antenna": 2, "from_s": 9.5, "to_s": 20},
        )
    )
    assert "depart_after_s" in problems(data)["tags.0.visible.1.from_s"]


def test_gaps_clearly_short_or_long_are_accepted() -> None:
    for second_start in (8.9, 11.1):
        parse_scenario(
            scenario(
                tags=visible(
                    {"antenna": 1, "from_s": 0, "to_s": 5},
                    {"antenna": 2, "from_s": second_start, "to_s": 20},
                )
            )
        )


def test_end_near_depart_after_is_ambiguous() -> None:
    # last seen 5.5 s before end_s 40: neither clearly gone nor clearly present
    data = scenario(tags=visible({"antenna": 1, "from_s": 0, "to_s": 34.5}))
    assert "end_s" in problems(data)["tags.0.visible.0.to_s"]


def test_overlap_with_close_rssi_is_ambiguous() -> None:
    data = scenario(
        tags=visible(
            {"antenna": 1, "from_s": 0, "to_s": 10, "rssi_dbm": -55},
            {"antenna": 2, "from_s": 8, "to_s": 20, "rssi_dbm": -58},
        )
    )
    assert "rssi_margin_db" in problems(data)["tags.0.visible.1.rssi_dbm"]


def test_stay_shorter_than_min_dwell_is_ambiguous() -> None:
    data = scenario(
        tags=visible(
            {"antenna": 1, "from_s": 0, "to_s": 10},
            {"antenna": 2, "from_s": 10, "to_s": 11},
            {"antenna": 1, "from_s": 11, "to_s": 20},
        )
    )
    assert "min_dwell_s" in problems(data)["tags.0.visible.1"]


def test_duplicate_epcs_are_rejected() -> None:
    data = scenario(
        groups=[
            {
                "name": "p",
                "count": 2,
                "epc_prefix": "E200301666130121155074E",
                "serial_start": 14,
                "visible": [{"antenna": 1, "from_s": 0, "to_s": 10}],
            }
        ]
    )
    found = problems(data)
    assert "E200301666130121155074EF" in found["groups.0.epc"]


def test_group_serials_must_fit() -> None:
    data = scenario(
        groups=[
            {
                "name": "p",
                "count": 17,
                "epc_prefix": "30340000000000000000000",
                "visible": [{"antenna": 1, "from_s": 0, "to_s": 10}],
            }
        ]
    )
    assert "groups.0" in problems(data)


def test_group_stagger_past_the_end_names_the_member() -> None:
    data = scenario(
        groups=[
            {
                "name": "p",
                "count": 5,
                "epc_prefix": "3034",
                "stagger_s": 1.0,
                "visible": [{"antenna": 1, "from_s": 30, "to_s": 37}],
            }
        ]
    )
    reason = problems(data)["groups.0.visible.0.to_s"]
    assert "member 4" in reason


def test_group_stagger_past_an_open_end_names_the_member() -> None:
    data = scenario(
        groups=[
            {
                "name": "p",
                "count": 30,
                "epc_prefix": "3034",
                "stagger_s": 1.0,
                "visible": [{"antenna": 1, "from_s": 20}],
            }
        ],
        expect={"depart_after_s": 5, "min_dwell_s": 0, "margin_s": 1},
    )
    reason = problems(data)["groups.0.visible.0.from_s"]
    assert "member 20" in reason


def test_group_ambiguity_is_reported_once_with_the_group_path() -> None:
    data = scenario(
        groups=[
            {
                "name": "p",
                "count": 10,
                "epc_prefix": "3034",
                "visible": [
                    {"antenna": 1, "from_s": 0, "to_s": 5},
                    {"antenna": 2, "from_s": 10, "to_s": 20},
                ],
            }
        ]
    )
    found = problems(data)
    assert list(found) == ["groups.0.visible.1.from_s"]
    assert "member 0" in found["groups.0.visible.1.from_s"]


def test_expect_margin_must_be_below_depart_after() -> None:
    data = scenario(expect={"depart_after_s": 2, "margin_s": 2})
    assert any(path.startswith("expect") for path in problems(data))


def test_firmware_version_parts_are_bytes() -> None:
    assert any(p.startswith("reader") for p in problems(scenario(reader={"firmware": "1.300"})))
    assert any(p.startswith("reader") for p in problems(scenario(reader={"firmware": "v1"})))
    assert parse_scenario(scenario(reader={"firmware": "2.1"})).reader.firmware_bytes == b"\x02\x01"


def test_a_scenario_needs_tags() -> None:
    assert "tags" in problems(scenario(tags=[]))


def test_load_from_yaml_with_env_override(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario()))
    assert load_scenario(path, environ={"TAGTRAIL_SIM__SEED": "7"}).seed == 7
    # moving end_s so the tag's departure becomes ambiguous names the interval and end_s
    with pytest.raises(ConfigError) as info:
        load_scenario(path, environ={"TAGTRAIL_SIM__END_S": "25.5"})
    assert "tags.0.visible.1.to_s" in dict(info.value.problems)
    assert str(path) in str(info.value)


def test_load_reports_yaml_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError):
        load_scenario(bad)


@pytest.mark.parametrize("name", ["pallet-50", "demo-door", "bench-200"])
def test_shipped_scenarios_are_valid(name: str) -> None:
    s = load_scenario(SCENARIOS / f"{name}.yaml")
    assert s.name == name
    assert s.resolved_tags()


def test_every_model_field_has_a_description() -> None:
    from pydantic import BaseModel

    from tagtrail.sim import scenario as module

    models = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == module.__name__
    ]
    assert len(models) >= 8
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
