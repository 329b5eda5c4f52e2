"""Stock per SKU (GTIN) per zone: kept incrementally, always equal to a recount."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.events import Arrived, Departed, Moved
from tagtrail.gateway.store import SkuStock, sku_of
from tests.gateway.test_store import movement, open_store

# SGTIN-96 of urn:epc:id:sgtin:0614141.812345.6789 (GS1 EPC TDS, Appendix E): GTIN-14
# 80614141123458; the last 38 bits are the serial, so changing the last digit keeps the GTIN.
SGTIN = "3074257BF7194E4000001A8"
SGTIN_GTIN = "80614141123458"
CASE_GTIN = "09506000134352"
PACK_GTIN = "04006381333931"


def identity_for(item: int) -> dict[str, Any]:
    """Item 0, 3: SGTIN EPCs; 1, 4: serialised cases; 2, 5: packs of 12; 6: a pallet."""
    kind = item % 3 if item < 6 else 3
    if kind == 0:
        return {"scheme": "epc", "epc": f"{SGTIN}{item:X}"}
    if kind == 1:
        return {"scheme": "gtin_serial", "gtin": CASE_GTIN, "serial": f"S{item}"}
    if kind == 2:
        return {"scheme": "gtin_quantity", "gtin": PACK_GTIN, "quantity": 12, "batch": f"B{item}"}
    return {"scheme": "sscc", "sscc": "106141411234567897"}


def sku_event(
    item: int, kind: str, *, zone: str, at: float, event_id: str, from_zone: str = "dock"
) -> Arrived | Moved | Departed:
    base = movement(item, kind, zone=zone, at=at, event_id=f"event-{event_id}", from_zone=from_zone)
    identity = identity_for(item)
    data = {**base.model_dump(), "identity": identity, "epc": identity.get("epc")}
    if kind == "arrived":
        return Arrived.model_validate(data)
    if kind == "moved":
        return Moved.model_validate(data)
    return Departed.model_validate(data)


def test_sku_of_each_identity() -> None:
    got = [
        sku_of(sku_event(i, "arrived", zone="dock", at=0, event_id=f"e{i}").identity)
        for i in range(7)
    ]
    assert got == [
        (SGTIN_GTIN, 1),
        (CASE_GTIN, 1),
        (PACK_GTIN, 12),
        (SGTIN_GTIN, 1),
        (CASE_GTIN, 1),
        (PACK_GTIN, 12),
        None,  # an SSCC is a logistic unit, not a SKU
    ]
    not_sgtin = movement(9, "arrived", zone="dock", at=0)  # E280... TID-style EPC
    assert sku_of(not_sgtin.identity) is None


def test_units_follow_moves_and_departures(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        store.apply(
            [sku_event(i, "arrived", zone="dock", at=1, event_id=f"a{i}") for i in range(7)]
        )
        assert store.sku_stock() == [
            SkuStock("wh1", "dock", PACK_GTIN, 24),
            SkuStock("wh1", "dock", CASE_GTIN, 2),
            SkuStock("wh1", "dock", SGTIN_GTIN, 2),
        ]
        store.apply(
            [
                sku_event(2, "moved", zone="aisle-1", at=2, event_id="m2"),
                sku_event(0, "departed", zone="dock", at=3, event_id="d0"),
            ]
        )
        assert store.sku_stock(zone="aisle-1") == [SkuStock("wh1", "aisle-1", PACK_GTIN, 12)]
        assert store.sku_stock(gtin=SGTIN_GTIN) == [SkuStock("wh1", "dock", SGTIN_GTIN, 1)]
        assert store.sku_stock(site="wh2") == []
        assert store.sku_stock() == store.recount_skus()
        store.apply([sku_event(3, "departed", zone="dock", at=4, event_id="d3")])
        assert store.sku_stock(gtin=SGTIN_GTIN) == []  # no zero rows


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 6),
            st.sampled_from(("arrived", "moved", "departed")),
            st.sampled_from(("dock", "aisle-1", "aisle-2")),
            st.integers(0, 6),
        ),
        min_size=1,
        max_size=30,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_sku_stock_equals_recount_for_any_delivery(
    steps: list[tuple[int, str, str, int]], seed: int
) -> None:
    events = [
        sku_event(item, kind, zone=zone, at=float(at), event_id=f"e{n:03d}", from_zone="x")
        for n, (item, kind, zone, at) in enumerate(steps)
    ]
    rng = random.Random(seed)
    rng.shuffle(events)
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "s.sqlite") as store:
        i = 0
        while i < len(events):
            size = rng.randint(1, 5)
            store.apply(events[i : i + size])
            i += size
            assert store.sku_stock() == store.recount_skus()
            assert all(s.count > 0 for s in store.sku_stock())


def test_a_store_from_before_sku_stock_is_counted_on_open(tmp_path: Path) -> None:
    """A database written before stock per SKU existed: its present items are counted when
    the store opens, so moving them later applies (it never goes below zero)."""
    import sqlite3

    path = tmp_path / "s.sqlite"
    with open_store(path) as store:
        store.apply(
            [sku_event(i, "arrived", zone="dock", at=1, event_id=f"a{i}") for i in range(7)]
        )
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM sku_stock")  # as the older version left it
    conn.execute("PRAGMA user_version = 0")
    conn.commit()
    conn.close()
    with open_store(path) as store:
        assert store.sku_stock() == store.recount_skus()
        result = store.apply([sku_event(2, "moved", zone="aisle-1", at=2, event_id="m2")])
        assert result.applied == 1
        assert store.sku_stock() == store.recount_skus()
    with open_store(path) as store:  # rebuilt once, not at every open
        assert store.sku_stock() == store.recount_skus()
