"""Smoothing raw reads into movement events.

Readers report the same tag many times a second, from several antennas at once, with
misses and reflections. The :class:`Smoother` turns that stream into three events per
presence of an item:

``arrived``
    A tag not yet present gets at least ``arrive_min_reads`` reads within
    ``arrive_window_s``, the first of them at least ``arrive_settle_s`` ago (so that a
    reader cycling its antennas has read the tag on each before a zone is chosen). Its
    zone is the dominant zone at that moment.
``moved``
    While present, another zone becomes dominant: it has at least ``move_min_reads``
    reads within ``zone_window_s`` and its mean RSSI over that window beats the current
    zone's by ``move_hysteresis_db`` (or the current zone has no reads in the window).
    It must stay dominant for ``move_holdoff_s``, and be read at least ``move_min_reads``
    times during that hold-off, before the move is reported.
``departed``
    A present tag is not read for ``depart_after_s``. Its zone is where it was last.

The dominant zone is the zone with the highest mean RSSI over the window among zones with
enough reads; reads without RSSI count as -100 dBm.

Scanners (handheld barcode or RFID scanners, and later cameras) are *observation* readers,
named in ``observers`` with their repeat-suppression time. A scan is a sighting, not a
continuous presence: there is no settle time and no departure.

* an identity not seen before (by this smoother) gives ``arrived`` in the scanner's zone;
* seen last in another zone, it gives ``moved`` (``from_zone`` = that zone);
* scanned again in the same zone within the reader's ``repeat_suppress_s`` of its previous
  scan, it is counted and nothing is reported (a label held in front of a scanner, or
  a trigger pulled twice, is one sighting); the window restarts with each such scan;
* scanned again in the same zone later, it gives a fresh ``arrived`` (a re-confirmation:
  another device may have moved it since, and the gateway keeps the latest event).

Sightings are remembered in least-recently-seen order, at most ``max_sightings`` of them;
the oldest are forgotten first (their next scan reads as ``arrived``).

The smoother is pure: it never reads a clock. Reads carry the monotonic time of receipt
(``RawRead.mono``) and :meth:`Smoother.tick` takes the current time, so tests and replays
drive it with any clock. Per-read work is O(1) amortised: each track keeps per-zone
running sums over its window.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from tagtrail.edge.config import SmoothingConfig
from tagtrail.events import (
    AnyIdentity,
    Arrived,
    Departed,
    Em4100Identity,
    EpcIdentity,
    ItemAttributes,
    Moved,
    identity_key,
    new_event_id,
)
from tagtrail.readers.model import RawRead

MovementEvent = Arrived | Moved | Departed
NO_RSSI_DBM = -100.0
MAX_SIGHTINGS = 200_000
"""Scanned identities remembered by default (about 300 bytes each)."""


@dataclass(slots=True)
class _ZoneStats:
    count: int = 0
    rssi_sum: float = 0.0
    reader: str = ""
    antenna: int = 1


@dataclass(slots=True)
class _Track:
    epc: str
    first_mono: float
    first_time: datetime
    last_mono: float
    last_time: datetime
    state: Literal["candidate", "present"] = "candidate"
    zone: str = ""
    read_count: int = 0
    peak_rssi: float | None = None
    window: deque[tuple[float, str, float]] = field(default_factory=deque)
    zones: dict[str, _ZoneStats] = field(default_factory=dict)
    challenger: str | None = None
    challenger_since: float = 0.0
    scheme: Literal["epc", "em4100"] = "epc"


@dataclass(slots=True)
class _Sighting:
    identity: AnyIdentity
    attributes: ItemAttributes | None
    zone: str
    reader: str
    antenna: int
    first_time: datetime
    last_mono: float
    last_time: datetime
    read_count: int
    peak_rssi: float | None


@dataclass(slots=True)
class SmootherStats:
    reads: int = 0
    unmapped_reads: int = 0
    arrived: int = 0
    moved: int = 0
    departed: int = 0
    candidates_dropped: int = 0
    scans: int = 0
    scans_suppressed: int = 0
    sightings_forgotten: int = 0


class Smoother:
    """Turns :class:`RawRead` objects into arrived / moved / departed events.

    ``zones`` maps ``(reader, antenna)`` to a zone name; reads from unmapped antennas
    are counted and ignored. ``observers`` maps the ids of observation readers (scanners)
    to their repeat-suppression time in seconds. ``new_id`` makes event ids (injectable
    for replays).
    """

    def __init__(
        self,
        config: SmoothingConfig,
        *,
        site: str,
        device: str,
        zones: Mapping[tuple[str, int], str],
        observers: Mapping[str, float] | None = None,
        max_sightings: int = MAX_SIGHTINGS,
        new_id: Callable[[], str] = new_event_id,
    ) -> None:
        self.config = config
        self.site = site
        self.device = device
        self.zones = dict(zones)
        self.new_id = new_id
        self.tracks: dict[str, _Track] = {}
        self.observers = dict(observers or {})
        if max_sightings < 1:
            raise ValueError("max_sightings must be at least 1")
        self.max_sightings = max_sightings
        self.sightings: OrderedDict[str, _Sighting] = OrderedDict()
        """Scanned items by identity key, least recently seen first."""
        self.stats = SmootherStats()
        self._window_s = max(config.arrive_window_s, config.zone_window_s)

    @property
    def present(self) -> dict[str, str]:
        """EPC -> zone of every item currently present."""
        return {t.epc: t.zone for t in self.tracks.values() if t.state == "present"}

    def feed(self, read: RawRead) -> list[MovementEvent]:
        """Take one raw read; return the events it completes (usually none)."""
        self.stats.reads += 1
        zone = self.zones.get((read.reader, read.antenna))
        if zone is None:
            self.stats.unmapped_reads += 1
            return []
        suppress_s = self.observers.get(read.reader)
        if suppress_s is not None:
            return self._observe(read, zone, suppress_s)
        rssi = NO_RSSI_DBM if read.rssi_dbm is None else float(read.rssi_dbm)
        now = read.mono
        track = self.tracks.get(read.epc)
        if track is None:
            track = _Track(read.epc, now, read.time, now, read.time, scheme=read.scheme)
            self.tracks[read.epc] = track
        elif now - track.last_mono >= self.config.depart_after_s:
            # Unseen long enough that tick() would have ended this presence: end it now.
            events = self._end(track, read.time)
            track = _Track(read.epc, now, read.time, now, read.time, scheme=read.scheme)
            self.tracks[read.epc] = track
            return events + self._add(track, read, zone, rssi)
        return self._add(track, read, zone, rssi)

    def tick(self, now_mono: float, now_time: datetime) -> list[MovementEvent]:
        """Check departures and pending moves at the current time."""
        events: list[MovementEvent] = []
        depart_after = self.config.depart_after_s
        gone: list[str] = []
        for epc, track in self.tracks.items():
            if now_mono - track.last_mono >= depart_after:
                gone.append(epc)
                continue
            self._prune(track, now_mono)
            if track.state == "present":
                event = self._check_move(track, now_mono, now_time)
                if event is not None:
                    events.append(event)
            else:
                events.extend(self._check_arrival(track, now_mono, now_time))
        for epc in gone:
            events.extend(self._end(self.tracks.pop(epc), now_time))
        return events

    def restore(
        self,
        *,
        epc: str,
        zone: str,
        reader: str,
        antenna: int,
        first_seen: datetime,
        read_count: int,
        peak_rssi_dbm: float | None,
        now_mono: float,
        now_time: datetime,
        scheme: Literal["epc", "em4100"] = "epc",
    ) -> None:
        """Take back an item that was present when the agent stopped.

        It counts as seen now, so it departs after ``depart_after_s`` unless read again,
        and a restart emits no second ``arrived`` for it.
        """
        track = _Track(
            epc, now_mono, first_seen, now_mono, now_time, state="present", scheme=scheme
        )
        track.zone = zone
        track.read_count = read_count
        track.peak_rssi = peak_rssi_dbm
        track.zones[zone] = _ZoneStats(0, 0.0, reader, antenna)
        self.tracks[epc] = track

    # -- internals -------------------------------------------------------------

    def _observe(self, read: RawRead, zone: str, suppress_s: float) -> list[MovementEvent]:
        """A scanner's read: a sighting of an identity in ``zone`` (see the module docs)."""
        self.stats.scans += 1
        identity = read.identity
        if identity is None:
            identity = (
                EpcIdentity(scheme="epc", epc=read.epc)
                if read.scheme == "epc"
                else Em4100Identity(scheme="em4100", code=read.epc)
            )
        key = identity_key(identity)
        rssi = None if read.rssi_dbm is None else float(read.rssi_dbm)
        seen = self.sightings.get(key)
        from_zone: str | None = None
        if seen is not None:
            self.sightings.move_to_end(key)
            same_zone = seen.zone == zone
            if same_zone and read.mono - seen.last_mono < suppress_s:
                self.stats.scans_suppressed += 1
                seen.last_mono = read.mono
                seen.last_time = max(seen.last_time, read.time)
                seen.read_count += 1
                if rssi is not None and (seen.peak_rssi is None or rssi > seen.peak_rssi):
                    seen.peak_rssi = rssi
                return []
            if not same_zone:
                from_zone = seen.zone
        if seen is None or from_zone is None:
            # New, or a re-confirmation in the same zone: a fresh presence.
            seen = _Sighting(
                identity,
                read.attributes,
                zone,
                read.reader,
                read.antenna,
                read.time,
                read.mono,
                read.time,
                0,
                None,
            )
            self.sightings[key] = seen
            self.sightings.move_to_end(key)
            if len(self.sightings) > self.max_sightings:
                self.sightings.popitem(last=False)
                self.stats.sightings_forgotten += 1
        if read.attributes is not None:
            seen.attributes = read.attributes
        seen.zone = zone
        seen.reader = read.reader
        seen.antenna = read.antenna
        seen.last_mono = read.mono
        seen.last_time = max(seen.last_time, read.time)
        seen.read_count += 1
        if rssi is not None and (seen.peak_rssi is None or rssi > seen.peak_rssi):
            seen.peak_rssi = rssi
        fields: dict[str, object] = {
            "event_id": self.new_id(),
            "event_time": seen.last_time,
            "site": self.site,
            "device": self.device,
            "reader": seen.reader,
            "antenna": seen.antenna,
            "zone": zone,
            "identity": identity,
            "epc": identity.epc if isinstance(identity, EpcIdentity) else None,
            "first_seen": seen.first_time,
            "last_seen": seen.last_time,
            "read_count": seen.read_count,
            "peak_rssi_dbm": seen.peak_rssi,
            "attributes": seen.attributes,
        }
        if from_zone is not None:
            self.stats.moved += 1
            return [Moved.model_validate({**fields, "kind": "moved", "from_zone": from_zone})]
        self.stats.arrived += 1
        return [Arrived.model_validate({**fields, "kind": "arrived"})]

    def _add(self, track: _Track, read: RawRead, zone: str, rssi: float) -> list[MovementEvent]:
        now = read.mono
        track.last_mono = now
        track.last_time = read.time
        track.read_count += 1
        if read.rssi_dbm is not None and (track.peak_rssi is None or rssi > track.peak_rssi):
            track.peak_rssi = rssi
        track.window.append((now, zone, rssi))
        stats = track.zones.get(zone)
        if stats is None:
            stats = track.zones[zone] = _ZoneStats()
        stats.count += 1
        stats.rssi_sum += rssi
        stats.reader = read.reader
        stats.antenna = read.antenna
        self._prune(track, now)
        if track.state == "candidate":
            return self._check_arrival(track, now, read.time)
        event = self._check_move(track, now, read.time)
        return [] if event is None else [event]

    def _prune(self, track: _Track, now: float) -> None:
        horizon = now - self._window_s
        window = track.window
        zones = track.zones
        while window and window[0][0] < horizon:
            _, zone, rssi = window.popleft()
            stats = zones[zone]
            stats.count -= 1
            stats.rssi_sum -= rssi
            if stats.count == 0:
                del zones[zone]

    def _count_since(self, track: _Track, since: float, zone: str | None = None) -> int:
        n = 0
        for t, z, _ in reversed(track.window):
            if t < since:
                break
            if zone is None or z == zone:
                n += 1
        return n

    def _dominant(self, track: _Track, min_reads: int) -> str | None:
        best: str | None = None
        best_mean = 0.0
        for zone, stats in track.zones.items():
            if stats.count < min_reads:
                continue
            mean = stats.rssi_sum / stats.count
            if best is None or mean > best_mean:
                best, best_mean = zone, mean
        return best

    def _mean(self, track: _Track, zone: str) -> float | None:
        stats = track.zones.get(zone)
        if stats is None or stats.count == 0:
            return None
        return stats.rssi_sum / stats.count

    def _check_arrival(self, track: _Track, now: float, now_time: datetime) -> list[MovementEvent]:
        cfg = self.config
        since = now - cfg.arrive_window_s
        if self._count_since(track, since) < cfg.arrive_min_reads:
            return []
        first = next(t for t, _, _ in track.window if t >= since)
        if now - first < cfg.arrive_settle_s:
            return []  # let every antenna have its turn before choosing the zone
        zone = self._dominant(track, 1)
        if zone is None:  # pragma: no cover - the window holds arrive_min_reads reads
            return []
        track.state = "present"
        track.zone = zone
        self.stats.arrived += 1
        return [self._event("arrived", track, zone, now_time)]

    def _check_move(self, track: _Track, now: float, now_time: datetime) -> MovementEvent | None:
        cfg = self.config
        best = self._dominant(track, cfg.move_min_reads)
        if best is None or best == track.zone:
            track.challenger = None
            return None
        current = self._mean(track, track.zone)
        best_mean = self._mean(track, best)
        if best_mean is None:  # pragma: no cover - best has move_min_reads reads
            return None
        if current is not None and best_mean < current + cfg.move_hysteresis_db:
            track.challenger = None
            return None
        if track.challenger != best:
            track.challenger = best
            track.challenger_since = now
        if now - track.challenger_since < cfg.move_holdoff_s:
            return None
        if self._count_since(track, track.challenger_since, best) < cfg.move_min_reads:
            return None  # a reflection whose reads linger in the window; not a move
        from_zone = track.zone
        track.zone = best
        track.challenger = None
        self.stats.moved += 1
        return self._event("moved", track, best, now_time, from_zone=from_zone)

    def _end(self, track: _Track, now_time: datetime) -> list[MovementEvent]:
        if track.state != "present":
            self.stats.candidates_dropped += 1
            return []
        self.stats.departed += 1
        return [self._event("departed", track, track.zone, now_time)]

    def _event(
        self,
        kind: Literal["arrived", "moved", "departed"],
        track: _Track,
        zone: str,
        now_time: datetime,
        from_zone: str | None = None,
    ) -> MovementEvent:
        stats = track.zones.get(zone)
        reader, antenna = (stats.reader, stats.antenna) if stats else self._where(zone)
        fields: dict[str, object] = {
            "kind": kind,
            "event_id": self.new_id(),
            "event_time": max(now_time, track.last_time),
            "site": self.site,
            "device": self.device,
            "reader": reader,
            "antenna": antenna,
            "zone": zone,
            "identity": (
                EpcIdentity(scheme="epc", epc=track.epc)
                if track.scheme == "epc"
                else Em4100Identity(scheme="em4100", code=track.epc)
            ),
            "epc": track.epc if track.scheme == "epc" else None,
            "first_seen": track.first_time,
            "last_seen": track.last_time,
            "read_count": track.read_count,
            "peak_rssi_dbm": track.peak_rssi,
        }
        if kind == "moved":
            return Moved.model_validate({**fields, "from_zone": from_zone})
        if kind == "arrived":
            return Arrived.model_validate(fields)
        return Departed.model_validate(fields)

    def _where(self, zone: str) -> tuple[str, int]:
        for (reader, antenna), z in self.zones.items():
            if z == zone:
                return reader, antenna
        return "unknown", 1
