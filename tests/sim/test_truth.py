"""Ground truth: what each scenario intends, and the rules on small hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.errors import ConfigError
from tagtrail.sim import ground_truth, load_scenario, parse_scenario, write_ground_truth
from tests.sim.helpers import SCENARIOS

EPC = "E200301666130121155074EF"


def truth_for(*intervals: dict[str, Any], end_s: float = 40, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "unit",
        "antennas": {1: "dock", 2: "staging", 3: "dock"},
        "end_s": end_s,
        "expect": {"depart_after_s": 5, "min_dwell_s": 2, "margin_s": 1, "rssi_margin_db": 6},
        "tags": [{"epc": EPC, "visible": list(intervals)}],
        **extra,
    }
    tag: dict[str, Any] = ground_truth(parse_scenario(data))["tags"][EPC]
    return tag


def check_consistent(movements: list[dict[str, Any]], final_zone: str | None) -> None:
    """Movements form a valid chain: arrive first, move between different zones, depart
    from where the tag is, and final_zone is where the chain ends."""
    zone: str | None = None
    for m in movements:
        if m["kind"] == "arrived":
            assert zone is None, movements
            zone = m["zone"]
        elif m["kind"] == "moved":
            assert zone is not None, movements
            assert m["from_zone"] == zone, movements
            assert m["zone"] != zone, movements
            zone = m["zone"]
        else:
            assert m["kind"] == "departed", movements
            assert m["zone"] == zone, movements
            zone = None
    assert final_zone == zone


def test_pallet_50_ground_truth_matches_the_scenario_intent() -> None:
    path = SCENARIOS / "pallet-50.yaml"
    raw = yaml.safe_load(path.read_text())
    loose = {t["epc"] for t in raw["tags"]}
    gt = ground_truth(load_scenario(path))
    tags = gt["tags"]
    assert gt["scenario"] == "pallet-50"
    assert gt["antennas"] == {"1": "dock-door-1", "2": "staging"}
    assert (gt["site"], gt["device"]) == ("wh-demo", "dock-1")
    assert len(tags) == 50
    stay = {epc for epc, t in tags.items() if t["final_zone"] is not None}
    assert stay == loose
    assert len(tags) - len(stay) == 48
    for epc, t in tags.items():
        movements = t["movements"]
        check_consistent(movements, t["final_zone"])
        assert movements[0] == {"kind": "arrived", "zone": "dock-door-1"}
        assert movements[1] == {"kind": "moved", "from_zone": "dock-door-1", "zone": "staging"}
        if epc in loose:
            assert len(movements) == 2
            assert t["final_zone"] == "staging"
        else:
            assert movements[2:] == [{"kind": "departed", "zone": "staging"}]


@pytest.mark.parametrize("name", ["pallet-50", "demo-door", "bench-200"])
def test_every_shipped_scenario_has_consistent_truth(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    gt = ground_truth(scenario)
    assert len(gt["tags"]) == len(scenario.resolved_tags())
    for t in gt["tags"].values():
        assert t["movements"], "every tag of a scenario is seen, so it arrives"
        check_consistent(t["movements"], t["final_zone"])


def test_demo_door_has_inbound_outbound_and_cross_dock() -> None:
    gt = ground_truth(load_scenario(SCENARIOS / "demo-door.yaml"))
    finals = [t["final_zone"] for t in gt["tags"].values()]
    assert finals.count(None) > 20
    assert finals.count("storage") > 20
    zones_seen = {m["zone"] for t in gt["tags"].values() for m in t["movements"]}
    assert zones_seen == {"dock-door", "staging", "storage"}


def test_short_gap_is_bridged_and_same_zone_is_not_a_move() -> None:
    t = truth_for(
        {"antenna": 1, "from_s": 0, "to_s": 10},
        {"antenna": 1, "from_s": 12, "to_s": 20},
        {"antenna": 3, "from_s": 20, "to_s": 40},  # another antenna of the same zone
    )
    assert t == {"final_zone": "dock", "movements": [{"kind": "arrived", "zone": "dock"}]}


def test_long_gap_departs_and_arrives_again() -> None:
    t = truth_for(
        {"antenna": 1, "from_s": 0, "to_s": 10},
        {"antenna": 2, "from_s": 17, "to_s": 40},
    )
    assert t["movements"] == [
        {"kind": "arrived", "zone": "dock"},
        {"kind": "departed", "zone": "dock"},
        {"kind": "arrived", "zone": "staging"},
    ]
    assert t["final_zone"] == "staging"


def test_overlap_goes_to_the_stronger_antenna() -> None:
    # staging hears the tag first, weakly; the door is 20 dB stronger while it is there
    t = truth_for(
        {"antenna": 2, "from_s": 0, "to_s": 20, "rssi_dbm": -72},
        {"antenna": 1, "from_s": 3, "to_s": 10, "rssi_dbm": -52},
    )
    assert t["movements"] == [
        {"kind": "arrived", "zone": "staging"},
        {"kind": "moved", "from_zone": "staging", "zone": "dock"},
        {"kind": "moved", "from_zone": "dock", "zone": "staging"},
        {"kind": "departed", "zone": "staging"},
    ]
    assert t["final_zone"] is None


def test_weak_overlap_inside_a_stronger_zone_changes_nothing() -> None:
    t = truth_for(
        {"antenna": 1, "from_s": 0, "to_s": 30, "rssi_dbm": -50},
        {"antenna": 2, "from_s": 5, "to_s": 25, "rssi_dbm": -70},
        end_s=30,
    )
    assert t == {"final_zone": "dock", "movements": [{"kind": "arrived", "zone": "dock"}]}


def test_open_interval_runs_to_the_end_and_stays() -> None:
    t = truth_for({"antenna": 2, "from_s": 4})
    assert t == {"final_zone": "staging", "movements": [{"kind": "arrived", "zone": "staging"}]}


def test_written_ground_truth_is_the_computed_one(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "pallet-50.yaml")
    out = tmp_path / "truth.json"
    write_ground_truth(scenario, out)
    assert json.loads(out.read_text()) == ground_truth(scenario)
    assert not list(tmp_path.glob("*.tmp"))


interval = st.tuples(
    st.integers(1, 3),  # antenna
    st.integers(0, 79),  # from, half-seconds
    st.integers(1, 40),  # length, half-seconds
    st.sampled_from([-50, -60, -70]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(interval, min_size=1, max_size=5))
def test_any_accepted_scenario_has_a_consistent_chain(
    spec: list[tuple[int, int, int, int]],
) -> None:
    visible = [
        {"antenna": a, "from_s": f / 2, "to_s": min((f + n) / 2, 40), "rssi_dbm": r}
        for a, f, n, r in spec
    ]
    data: dict[str, Any] = {
        "name": "prop",
        "antennas": {1: "dock", 2: "staging", 3: "storage"},
        "end_s": 40,
        "tags": [{"epc": EPC, "visible": visible}],
    }
    problems: list[tuple[str, str]] = []
    scenario = None
    try:
        scenario = parse_scenario(data)
    except ConfigError as exc:
        problems = exc.problems
    if scenario is None:
        # rejected scenarios are rejected for the tag's own intervals, by field
        assert problems
        assert all(path.startswith("tags.0") for path, _ in problems), problems
        return
    t = ground_truth(scenario)["tags"][EPC]
    check_consistent(t["movements"], t["final_zone"])
    # the tag is present at the end exactly when it was visible near the end
    last = max(v["to_s"] for v in visible)
    assert (t["final_zone"] is None) == (40 - last >= 6)
