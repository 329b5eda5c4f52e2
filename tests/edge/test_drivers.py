"""Every reader type the edge config accepts has a driver."""

from __future__ import annotations

from typing import get_args

from tagtrail.edge.agent import DRIVERS
from tagtrail.readers.config import ReaderConfig


def test_every_configurable_reader_type_has_a_driver() -> None:
    union = get_args(ReaderConfig)[0]
    types = set(get_args(union))
    assert types
    assert set(DRIVERS) == types
    for config_type, driver in DRIVERS.items():
        assert driver.reader_type == config_type.model_fields["type"].annotation.__args__[0]  # type: ignore[attr-defined, union-attr]
