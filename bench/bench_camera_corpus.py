"""Decode rate of pyzbar alone, zxing-cpp alone and our cascade on the real-photo corpus.

Run: ``.venv/bin/python bench/bench_camera_corpus.py [--corpus DIR] [--repeats N]``

The corpus is ``<repo root>/../shared/corpus/barcodes`` (or ``$TAGTRAIL_CORPUS``, or
``--corpus``): one folder per set, each image ``<name>.<png|webp|jpg|jpeg>`` beside its
expected payload. ``upstream-min-pass.tsv`` gives each set's format and the minimum
zxing-cpp's own blackbox test requires at 0 degrees with its try-harder options.

How an image is counted
=======================
* The expected payload is ``<name>.bin`` (raw bytes) when present, compared with the
  symbol's bytes (:attr:`Symbol.raw`); otherwise ``<name>.txt``, decoded as UTF-8 and
  compared with the symbol's text. GS1 separators are raw GS (0x1D) in the files and in
  our text (zxing-cpp Plain mode), so GS1 payloads compare as they are. The comparison is
  exact: no trimming, no case folding. UPC-A payloads are stored as 13 digits with a
  leading 0, as both engines return them. ``<name>.result.txt`` metadata is not used.
* **read**: some symbol the decoder returned for the image equals the expected payload.
* **misread**: the decoder returned at least one symbol and none equals it: a wrong
  answer would have been reported. An image where nothing is found is neither.
* Two photos (``ean13-2/23.webp``, ``ean13-2/28.webp``) are labelled ``9780804816632``
  but show one barcode whose printed digits are ``9784872348880`` (checked by eye; both
  engines agree with the print). Returning the printed value there is counted as
  ``label`` (a correct read of a mislabelled photo), neither read nor misread; the
  ``raw misreads`` column counts them as misreads anyway. This corrects the evaluation,
  not the decoder: nothing in :mod:`tagtrail.readers.barcodes` knows about any image.
* 1D totals are over the sets whose format is Code 39, Code 128, EAN-8, EAN-13, ITF or
  UPC-A (192 images); DataBar Expanded, DataMatrix and QR Code are not in them.
* ms per image: mean decode time (``time.perf_counter``, file decoding excluded) on one
  core, the best of ``--repeats`` passes per decoder.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tagtrail.readers.barcodes import BarcodeDecoder, DecoderConfig, Symbol, load_image

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg")
ONE_D_FORMATS = frozenset({"Code39", "Code128", "EAN8", "EAN13", "ITF", "UPCA"})
KNOWN_LABEL_ERRORS = {
    "ean13-2/23.webp": "9784872348880",
    "ean13-2/28.webp": "9784872348880",
}
"""Image -> the payload actually printed on it, where the corpus label disagrees."""

DECODERS: dict[str, DecoderConfig] = {
    "pyzbar": DecoderConfig(engines=("pyzbar",), steps=("gray",)),
    "zxing-cpp": DecoderConfig(engines=("zxing-cpp",), steps=("gray",)),
    "cascade": DecoderConfig(),
}


def default_corpus() -> Path:
    env = os.environ.get("TAGTRAIL_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus" / "barcodes"


@dataclass(frozen=True)
class CorpusImage:
    set_name: str
    path: Path
    expected: bytes
    binary: bool
    """True: compare ``expected`` with the symbol's bytes; else with its UTF-8 text."""

    @property
    def key(self) -> str:
        return f"{self.set_name}/{self.path.name}"


@dataclass(frozen=True)
class SetInfo:
    name: str
    format: str
    """Format column of upstream-min-pass.tsv (``-`` for sets not listed there)."""
    min_tryharder: int | None

    @property
    def one_d(self) -> bool:
        return self.format in ONE_D_FORMATS


def read_sets(corpus: Path) -> dict[str, SetInfo]:
    """Every set folder of the corpus, with its upstream format and minimum when listed."""
    listed: dict[str, SetInfo] = {}
    lines = (corpus / "upstream-min-pass.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        if line.strip():
            name, fmt, _n, _fast, harder = line.split("\t")
            listed[name] = SetInfo(name, fmt, int(harder))
    out = {}
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        out[folder.name] = listed.get(folder.name, SetInfo(folder.name, "-", None))
    return out


def corpus_images(corpus: Path, set_name: str) -> Iterator[CorpusImage]:
    for path in sorted((corpus / set_name).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        binary = path.with_suffix(".bin")
        if binary.exists():
            yield CorpusImage(set_name, path, binary.read_bytes(), True)
        else:
            yield CorpusImage(set_name, path, path.with_suffix(".txt").read_bytes(), False)


def outcome(image: CorpusImage, symbols: list[Symbol]) -> str:
    """``read``, ``misread``, ``label`` or ``none`` (see the module docstring)."""
    if image.binary:
        found = [s.raw for s in symbols]
    else:
        found = [s.text.encode("utf-8", "surrogatepass") for s in symbols]
    if image.expected in found:
        return "read"
    if not found:
        return "none"
    printed = KNOWN_LABEL_ERRORS.get(image.key)
    if printed is not None and printed.encode() in found:
        return "label"
    return "misread"


@dataclass
class Tally:
    images: int = 0
    read: int = 0
    misread: int = 0
    label: int = 0
    seconds: float = 0.0
    misread_keys: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.images += other.images
        self.read += other.read
        self.misread += other.misread
        self.label += other.label
        self.seconds += other.seconds
        self.misread_keys += other.misread_keys

    @property
    def raw_misread(self) -> int:
        return self.misread + self.label

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / max(1, self.images)


Decode = Callable[[npt.NDArray[np.uint8]], list[Symbol]]


def evaluate_set(
    corpus: Path, set_name: str, decoders: dict[str, Decode], repeats: int = 1
) -> dict[str, Tally]:
    """Tally each decoder on one set."""
    images = [(img, load_image(img.path)) for img in corpus_images(corpus, set_name)]
    out = {}
    for name, decode in decoders.items():
        tally = Tally(images=len(images))
        for img, pixels in images:
            best = float("inf")
            symbols: list[Symbol] = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                symbols = decode(pixels)
                best = min(best, time.perf_counter() - t0)
            tally.seconds += best
            result = outcome(img, symbols)
            if result == "read":
                tally.read += 1
            elif result == "misread":
                tally.misread += 1
                tally.misread_keys.append(img.key)
            elif result == "label":
                tally.label += 1
        out[name] = tally
    return out


def make_decoders(names: tuple[str, ...] = tuple(DECODERS)) -> dict[str, Decode]:
    return {name: BarcodeDecoder(DECODERS[name]).decode for name in names}


def _cell(t: Tally) -> str:
    return f"{t.read:>3}/{t.images:<3} {t.misread:>2} {t.raw_misread:>2} {t.ms_per_image:>6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=default_corpus())
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    corpus: Path = args.corpus
    sets = read_sets(corpus)
    engines = {name: BarcodeDecoder(config) for name, config in DECODERS.items()}
    decoders: dict[str, Decode] = {name: d.decode for name, d in engines.items()}
    names = list(decoders)
    head = f"{'set':<14} {'min':>3} " + " ".join(f"{n + ' read  mis raw   ms':>27}" for n in names)
    print(f"corpus {corpus}")
    print("columns per decoder: read/images, misreads, raw misreads, ms per image")
    print(head)
    total = {n: Tally() for n in names}
    one_d = {n: Tally() for n in names}
    below: list[str] = []
    for set_name, info in sets.items():
        tallies = evaluate_set(corpus, set_name, decoders, args.repeats)
        minimum = "-" if info.min_tryharder is None else str(info.min_tryharder)
        print(f"{set_name:<14} {minimum:>3} " + " ".join(f"{_cell(tallies[n]):>27}" for n in names))
        for n in names:
            total[n].add(tallies[n])
            if info.one_d:
                one_d[n].add(tallies[n])
        if info.min_tryharder is not None and tallies["cascade"].read < info.min_tryharder:
            below.append(set_name)
    print(f"{'total':<14} {'':>3} " + " ".join(f"{_cell(total[n]):>27}" for n in names))
    print(f"{'1D total':<14} {'':>3} " + " ".join(f"{_cell(one_d[n]):>27}" for n in names))
    for n in names:
        print(f"{n} misreads: {', '.join(total[n].misread_keys) or '-'}")
    print(f"cascade below upstream try-harder minimum: {', '.join(below) or 'none'}")
    counts = engines["cascade"].counters
    found = ", ".join(f"{k} {v // max(1, args.repeats)}" for k, v in sorted(counts.items()))
    print(f"cascade images decoded by: {found}")


if __name__ == "__main__":
    main()
