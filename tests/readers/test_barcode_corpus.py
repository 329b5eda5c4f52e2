"""The decoding cascade on the real-photo corpus, against upstream zxing-cpp's minimums.

The corpus is ``<repo root>/../shared/corpus/barcodes`` (``$TAGTRAIL_CORPUS`` overrides).
Images are counted exactly as ``bench/bench_camera_corpus.py`` defines it (read, misread,
mislabelled); this test loads that module so both use one definition. zxing-cpp alone is
measured in the same run, and the cascade may not misread more than it.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.services import missing

BENCH_FILE = Path(__file__).resolve().parents[2] / "bench" / "bench_camera_corpus.py"
ONE_D_TARGET = 163
"""At least the union of what pyzbar and zxing-cpp read alone on the 192 1D photos."""


def _bench() -> ModuleType:
    name = "bench_camera_corpus"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    sets: dict[str, Any]
    """set name -> SetInfo"""
    tallies: dict[str, dict[str, Any]]
    """set name -> decoder name -> Tally"""


@pytest.fixture(scope="module")
def run() -> Run:
    bench = _bench()
    corpus: Path = bench.default_corpus()
    if not (corpus / "upstream-min-pass.tsv").is_file():
        missing(f"barcode corpus not found at {corpus} (set TAGTRAIL_CORPUS)")
    sets: dict[str, Any] = bench.read_sets(corpus)
    decoders = bench.make_decoders(("zxing-cpp", "cascade"))
    tallies = {name: bench.evaluate_set(corpus, name, decoders) for name in sets}
    return Run(sets, tallies)


def test_corpus_is_complete(run: Run) -> None:
    listed = {n: s for n, s in run.sets.items() if s.min_tryharder is not None}
    assert len(listed) == 28
    images = sum(t["cascade"].images for t in run.tallies.values())
    one_d = sum(t["cascade"].images for n, t in run.tallies.items() if run.sets[n].one_d)
    assert images >= 462
    assert one_d == 192


def test_every_set_meets_upstream_tryharder_minimum(run: Run) -> None:
    below = {
        name: (run.tallies[name]["cascade"].read, info.min_tryharder)
        for name, info in run.sets.items()
        if info.min_tryharder is not None and run.tallies[name]["cascade"].read < info.min_tryharder
    }
    assert below == {}, "set: (read, upstream minimum)"


def test_one_d_total_beats_both_decoders(run: Run) -> None:
    cascade = sum(t["cascade"].read for n, t in run.tallies.items() if run.sets[n].one_d)
    zxing = sum(t["zxing-cpp"].read for n, t in run.tallies.items() if run.sets[n].one_d)
    assert cascade >= ONE_D_TARGET
    assert cascade > zxing


def test_misreads_no_more_than_zxing_alone(run: Run) -> None:
    cascade = sorted(k for t in run.tallies.values() for k in t["cascade"].misread_keys)
    zxing = sorted(k for t in run.tallies.values() for k in t["zxing-cpp"].misread_keys)
    assert len(cascade) <= len(zxing), (cascade, zxing)
    total_read = sum(t["cascade"].read for t in run.tallies.values())
    zxing_read = sum(t["zxing-cpp"].read for t in run.tallies.values())
    assert total_read > zxing_read
