"""From a tag's visibility intervals to its expected movements (the ground-truth rules).

A tag is *visible* on an antenna during each of its intervals ``[from_s, to_s)``. Its
**true zone** at a moment is the zone of the covering interval with the highest base
``rssi_dbm``; intervals of different zones that overlap must differ by at least
``rssi_margin_db`` where they overlap, or the moment is ambiguous. Runs of one zone make
*pieces*; the tag's history follows from the pieces and the gaps between them:

* a gap shorter than ``depart_after_s - margin_s`` is bridged: the tag stays present (and
  moves if the next piece is in another zone);
* a gap of at least ``depart_after_s + margin_s`` is a departure from the last zone and a
  fresh arrival at the next piece;
* any gap in between is ambiguous (a smoother may or may not see a departure);
* after the last piece the tag departs if ``end_s - last_to >= depart_after_s + margin_s``
  and stays (``final_zone`` is its zone) if ``end_s - last_to <= depart_after_s -
  margin_s``; in between is ambiguous;
* every stay in a zone needs one visible stretch of at least ``min_dwell_s``, or a
  smoother may never register it.

Ambiguities raise :class:`AmbiguityError` naming the interval (by index) and field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

EPS = 1e-9

MovementKind = Literal["arrived", "moved", "departed"]


@dataclass(frozen=True, slots=True)
class Span:
    """One visibility interval of a tag with its zone resolved."""

    index: int
    zone: str
    start: float
    end: float
    rssi_dbm: float


@dataclass(frozen=True, slots=True)
class Rules:
    """The smoothing assumptions ground truth depends on (the scenario's ``expect``)."""

    depart_after_s: float
    min_dwell_s: float
    margin_s: float
    rssi_margin_db: float


@dataclass(frozen=True, slots=True)
class Movement:
    """One expected movement event of a tag."""

    kind: MovementKind
    zone: str
    from_zone: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "moved":
            return {"kind": "moved", "from_zone": self.from_zone, "zone": self.zone}
        return {"kind": self.kind, "zone": self.zone}


@dataclass(frozen=True, slots=True)
class History:
    """A tag's expected movements, in order, and its zone at the scenario's end."""

    movements: tuple[Movement, ...]
    final_zone: str | None


class AmbiguityError(ValueError):
    """Ground truth cannot be stated for a tag. ``field`` is None for a whole interval."""

    def __init__(self, index: int, field: str | None, reason: str) -> None:
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(reason)


@dataclass(slots=True)
class _Piece:
    zone: str
    start: float
    end: float
    first_index: int
    last_index: int
    longest: float


def _pieces(spans: list[Span], rssi_margin_db: float) -> list[_Piece]:
    """Maximal runs of one true zone, in time order; neighbours differ in zone or gap."""
    points = sorted({s.start for s in spans} | {s.end for s in spans})
    pieces: list[_Piece] = []
    for a, b in pairwise(points):
        cover = [s for s in spans if s.start <= a and s.end >= b]
        if not cover:
            continue
        best = max(cover, key=lambda s: (s.rssi_dbm, -s.index))
        for s in cover:
            if s.zone != best.zone and best.rssi_dbm - s.rssi_dbm < rssi_margin_db:
                raise AmbiguityError(
                    max(s.index, best.index),
                    "rssi_dbm",
                    f"overlaps visible.{min(s.index, best.index)} (zones {s.zone!r} and "
                    f"{best.zone!r}) from {a:g} s to {b:g} s with RSSI only "
                    f"{best.rssi_dbm - s.rssi_dbm:g} dB apart; expect.rssi_margin_db is "
                    f"{rssi_margin_db:g}, so the true zone is ambiguous",
                )
        last = pieces[-1] if pieces else None
        if last is not None and last.zone == best.zone and abs(last.end - a) <= EPS:
            last.end = b
            last.last_index = best.index
            last.longest = max(last.longest, last.end - last.start)
        else:
            pieces.append(_Piece(best.zone, a, b, best.index, best.index, b - a))
    return pieces


def history(spans: list[Span], end_s: float, rules: Rules) -> History:
    """The tag's expected movements and final zone. Raises :class:`AmbiguityError`."""
    if not spans:
        return History((), None)
    pieces = _pieces(spans, rules.rssi_margin_db)
    low = rules.depart_after_s - rules.margin_s
    high = rules.depart_after_s + rules.margin_s
    events: list[Movement] = []

    def check_dwell(stay: _Piece) -> None:
        if stay.longest < rules.min_dwell_s - EPS:
            raise AmbiguityError(
                stay.first_index,
                None,
                f"the tag is in zone {stay.zone!r} from {stay.start:g} s to {stay.end:g} s "
                f"but never visible there for expect.min_dwell_s ({rules.min_dwell_s:g} s) "
                "in one stretch",
            )

    stay = pieces[0]
    events.append(Movement("arrived", stay.zone))
    for piece in pieces[1:]:
        gap = piece.start - stay.end
        if gap <= EPS:
            check_dwell(stay)
            events.append(Movement("moved", piece.zone, stay.zone))
            stay = piece
        elif gap <= low + EPS:
            if piece.zone == stay.zone:
                stay = _Piece(
                    stay.zone,
                    stay.start,
                    piece.end,
                    stay.first_index,
                    piece.last_index,
                    max(stay.longest, piece.longest),
                )
            else:
                check_dwell(stay)
                events.append(Movement("moved", piece.zone, stay.zone))
                stay = piece
        elif gap >= high - EPS:
            check_dwell(stay)
            events.append(Movement("departed", stay.zone))
            events.append(Movement("arrived", piece.zone))
            stay = piece
        else:
            raise AmbiguityError(
                piece.first_index,
                "from_s",
                f"the tag is unseen for {gap:g} s before this interval, within "
                f"expect.margin_s ({rules.margin_s:g} s) of expect.depart_after_s "
                f"({rules.depart_after_s:g} s): a departure may or may not be seen",
            )
    check_dwell(stay)
    tail = end_s - stay.end
    if tail >= high - EPS:
        events.append(Movement("departed", stay.zone))
        return History(tuple(events), None)
    if tail <= low + EPS:
        return History(tuple(events), stay.zone)
    raise AmbiguityError(
        stay.last_index,
        "to_s",
        f"the tag is last visible {tail:g} s before end_s, within expect.margin_s "
        f"({rules.margin_s:g} s) of expect.depart_after_s ({rules.depart_after_s:g} s): "
        "whether it departs by the end is ambiguous",
    )
