"""Scenario files: what the simulated reader sees, when, and what a smoother should conclude.

A scenario is YAML data validated by :class:`Scenario` (unknown keys are rejected, every
field is described). Environment overrides use the prefix ``TAGTRAIL_SIM``, e.g.
``TAGTRAIL_SIM__SEED=7`` or ``TAGTRAIL_SIM__READS__MISS_PROBABILITY=0.2``.

Example::

    name: pallet-50
    site: wh-1
    device: dock-1
    reader: {protocol: r2000, address: 1, firmware: "1.9"}   # or mercury, chafon, m100, em4100
    antennas: {1: dock-door-1, 2: staging}
    disconnected: [4]
    end_s: 36
    seed: 42
    reads: {reads_per_s: 12, miss_probability: 0.1, duplicate_probability: 0.05}
    expect: {depart_after_s: 5, min_dwell_s: 2, margin_s: 1}
    tags:
      - epc: E200301666130121155074EF
        visible:
          - {antenna: 1, from_s: 1, to_s: 6, rssi_dbm: -52}
          - {antenna: 2, from_s: 6.5, rssi_dbm: -60}      # to_s omitted: until end_s
    groups:
      - name: pallet-a
        count: 24
        epc_prefix: "30340242201D8840009"     # hex; the serial fills the rest
        stagger_s: 0.05                       # member k's intervals start k*0.05 s later
        visible:
          - {antenna: 1, from_s: 1, to_s: 8, rssi_dbm: -55}

``reader.protocol`` picks the device the simulator plays (``tagtrail sim --protocol``
overrides it): ``r2000`` (default), ``mercury``, ``chafon`` (``reader.layout`` '288' or
'18'), ``m100`` or ``em4100``. An ``m100``, an ``em4100`` and a Chafon '18' have one antenna,
port 1. An ``em4100`` reader reads 125 kHz cards, not EPCs: every ``tags[].epc`` is then
the card's 10-hex-digit EM4100 code and a group's ``epc_prefix`` plus serial fill 10 hex
digits (``epc_words`` is not used).

The scenario is checked to be unambiguous for ground truth (see
:mod:`tagtrail.sim.timeline` for the rules); failures name the field, e.g.
``groups.0.visible.1.from_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from tagtrail.configfile import load_config, validation_problems
from tagtrail.errors import ConfigError
from tagtrail.events import Name
from tagtrail.sim.timeline import AmbiguityError, History, Rules, Span, history

ENV_PREFIX = "TAGTRAIL_SIM"

Port = Annotated[int, Field(ge=1, le=4, description="Antenna port, 1-4.")]

Protocol = Literal["r2000", "mercury", "chafon", "m100", "em4100"]
PROTOCOLS: tuple[Protocol, ...] = ("r2000", "mercury", "chafon", "m100", "em4100")
"""Devices the simulator can play."""

EM4100_DIGITS = 10
"""Hex digits of an EM4100 card code (version byte and 32-bit card number)."""


def _upper_hex(value: str) -> str:
    value = value.upper()
    if not value or any(c not in "0123456789ABCDEF" for c in value):
        raise ValueError("must be hex digits")
    return value


TagIdHex = Annotated[
    str,
    AfterValidator(_upper_hex),
    Field(min_length=4, max_length=124, examples=["E200301666130121155074EF"]),
]
"""A tag's identity as upper-case hex: an EPC (whole 16-bit words) or an EM4100 code."""


class ScenarioProblemsError(ValueError):
    """Several semantic problems of a scenario, each ``(dotted.path, reason)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReaderSpec(_Strict):
    """The simulated reader itself."""

    protocol: Protocol = Field(
        default="r2000",
        description="Device to play: r2000, mercury, chafon, m100 or em4100 "
        "(`tagtrail sim --protocol` overrides it).",
    )
    address: int = Field(
        default=1,
        ge=0,
        le=254,
        description="Reader address byte (R2000, Chafon); 0xFF is broadcast.",
    )
    firmware: str = Field(
        default="1.9",
        pattern=r"^\d{1,3}\.\d{1,3}$",
        description="Firmware version 'major.minor' (each 0-255) the reader reports "
        "(R2000 0x72, Mercury 0x03, Chafon 0x21, M100 module information).",
    )
    layout: Literal["288", "18"] = Field(
        default="288",
        description="Chafon only: UHFReader288 ('288') or UHFReader18 ('18', one antenna).",
    )

    @model_validator(mode="after")
    def _check(self) -> ReaderSpec:
        if any(int(p) > 255 for p in self.firmware.split(".")):
            raise ValueError("firmware: major and minor must each be 0-255")
        return self

    @property
    def firmware_bytes(self) -> bytes:
        major, minor = self.firmware.split(".")
        return bytes((int(major), int(minor)))


class RssiProfile(_Strict):
    """How a read's RSSI departs from its interval's base ``rssi_dbm``."""

    jitter_db: float = Field(
        default=1.5, ge=0, le=20, description="Standard deviation of Gaussian noise, dB."
    )
    ramp_s: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="Within this many seconds of an interval's start or end the level "
        "ramps linearly from base - ramp_db up to the base (a tag entering or leaving).",
    )
    ramp_db: float = Field(
        default=6.0, ge=0, le=60, description="How much weaker reads are at an interval edge."
    )


class ReadBehaviour(_Strict):
    """How reads are generated for visible tags."""

    reads_per_s: float = Field(
        default=10.0,
        gt=0,
        le=1000,
        description="Expected reads per second of one visible tag while its antenna is the "
        "work antenna being inventoried (before misses).",
    )
    round_period_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="Scenario seconds one inventory round (repeat 1) takes; the reply is "
        "paced by it.",
    )
    miss_probability: float = Field(
        default=0.05, ge=0, lt=1, description="Chance that any one expected read is lost."
    )
    duplicate_probability: float = Field(
        default=0.02, ge=0, lt=1, description="Chance that a read is reported twice."
    )
    corrupt_byte_rate: float = Field(
        default=0.0,
        ge=0,
        le=0.1,
        description="Chance that any one byte the reader sends is corrupted on the wire.",
    )
    rssi: RssiProfile = Field(default_factory=RssiProfile, description="RSSI noise and ramps.")


class Visibility(_Strict):
    """A time interval during which one antenna can read the tag."""

    antenna: Port = Field(description="Antenna port (1-4) that sees the tag.")
    from_s: float = Field(ge=0, description="Scenario second the tag becomes visible.")
    to_s: float | None = Field(
        default=None,
        description="Scenario second it stops being visible (exclusive); null: until end_s.",
    )
    rssi_dbm: float = Field(
        default=-60.0,
        ge=-100,
        le=-20,
        description="Base RSSI of reads, dBm. Where intervals of different zones overlap, "
        "the higher base RSSI is the tag's true zone.",
    )

    @model_validator(mode="after")
    def _check(self) -> Visibility:
        if self.to_s is not None and self.to_s <= self.from_s:
            raise ValueError("to_s must be greater than from_s")
        return self


class Expectation(_Strict):
    """Smoothing assumptions under which the ground truth holds."""

    depart_after_s: float = Field(
        default=5.0,
        gt=0,
        le=86_400,
        description="A tag unseen this long has departed (match the edge's smoothing).",
    )
    min_dwell_s: float = Field(
        default=2.0,
        ge=0,
        le=86_400,
        description="Every stay in a zone must have one visible stretch at least this long.",
    )
    margin_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="Gaps and end-of-scenario tails must be at least this far from "
        "depart_after_s, either way (reads stop up to a round cycle early).",
    )
    rssi_margin_db: float = Field(
        default=6.0,
        ge=0,
        le=60,
        description="Overlapping intervals of different zones must differ by this much.",
    )

    @model_validator(mode="after")
    def _check(self) -> Expectation:
        if self.margin_s >= self.depart_after_s:
            raise ValueError("margin_s must be smaller than depart_after_s")
        return self

    def rules(self) -> Rules:
        return Rules(self.depart_after_s, self.min_dwell_s, self.margin_s, self.rssi_margin_db)


class TagSpec(_Strict):
    """One explicitly listed tag."""

    epc: TagIdHex = Field(
        description="EPC as hex in whole 16-bit words (upper-cased); for an em4100 reader "
        "the card's 10-hex-digit code."
    )
    visible: list[Visibility] = Field(
        min_length=1, description="When and where the tag can be read."
    )


class TagGroup(_Strict):
    """Generated tags that travel together, e.g. the cases of one pallet."""

    name: Name = Field(description="Name of the group, e.g. 'pallet-a'.")
    count: int = Field(ge=1, le=100_000, description="Number of tags in the group.")
    epc_prefix: str = Field(
        pattern=r"^[0-9A-Fa-f]*$",
        max_length=123,
        description="Leading hex digits shared by the group; the serial fills the rest.",
    )
    epc_words: int = Field(
        default=6, ge=1, le=31, description="EPC length in 16-bit words (6 = 96 bits)."
    )
    serial_start: int = Field(
        default=1, ge=0, description="Serial of the first member; members count up from it."
    )
    stagger_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="Member k's intervals are shifted k * stagger_s later (an open to_s "
        "stays at end_s).",
    )
    visible: list[Visibility] = Field(
        min_length=1, description="When and where the members can be read (member 0)."
    )

    @model_validator(mode="after")
    def _check(self) -> TagGroup:
        digits = self.epc_words * 4 - len(self.epc_prefix)
        if digits < 1:
            raise ValueError("epc_prefix leaves no hex digit for the serial in epc_words")
        if self.serial_start + self.count > 16**digits:
            raise ValueError(f"{self.count} serials do not fit the {digits} hex digits left")
        return self

    def epc(self, member: int, total_digits: int | None = None) -> str:
        """EPC of member ``member`` (0-based), upper-case hex, ``total_digits`` long
        (default: ``epc_words`` words; 10 for an EM4100 code)."""
        total = self.epc_words * 4 if total_digits is None else total_digits
        digits = total - len(self.epc_prefix)
        return f"{self.epc_prefix.upper()}{self.serial_start + member:0{digits}X}"


@dataclass(frozen=True, slots=True)
class Interval:
    """A resolved visibility: absolute times, zone looked up."""

    antenna: int
    zone: str
    start: float
    end: float
    rssi_dbm: float


@dataclass(frozen=True, slots=True)
class ResolvedTag:
    """One tag of the scenario, explicit or generated, with absolute intervals."""

    epc: str
    source: str
    """Dotted path of the entry that defines it, e.g. ``tags.3`` or ``groups.1``."""
    member: int | None
    intervals: tuple[Interval, ...]

    def spans(self) -> list[Span]:
        return [
            Span(i, iv.zone, iv.start, iv.end, iv.rssi_dbm) for i, iv in enumerate(self.intervals)
        ]


class Scenario(_Strict):
    """A simulated reader's world: antennas, tags and when each antenna sees them."""

    name: Name = Field(description="Scenario name, copied into the ground truth.")
    description: str = Field(default="", description="Free text for humans.")
    site: Name | None = Field(default=None, description="Site the scenario plays in, if any.")
    device: Name | None = Field(default=None, description="Edge device it feeds, if any.")
    reader: ReaderSpec = Field(default_factory=ReaderSpec, description="The reader module.")
    antennas: dict[Port, Name] = Field(
        min_length=1, description="Connected antenna ports (1-4) and the zone each covers."
    )
    disconnected: list[Port] = Field(
        default_factory=list,
        description="Ports reported missing (error 0x22) even if listed in antennas.",
    )
    end_s: float = Field(gt=0, le=604_800, description="Scenario length, seconds.")
    seed: int = Field(default=0, description="Seed of the read generator (--seed overrides).")
    reads: ReadBehaviour = Field(
        default_factory=ReadBehaviour, description="Read generation behaviour."
    )
    expect: Expectation = Field(
        default_factory=Expectation, description="Assumptions the ground truth relies on."
    )
    tags: list[TagSpec] = Field(default_factory=list, description="Explicit tags.")
    groups: list[TagGroup] = Field(default_factory=list, description="Generated tag groups.")

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        problems = _check_scenario(self)
        if problems:
            raise ScenarioProblemsError(problems)
        return self

    def connected_ports(self) -> list[int]:
        """Ports that answer: configured in ``antennas`` and not disconnected."""
        return sorted(p for p in self.antennas if p not in self.disconnected)

    def resolved_tags(self) -> list[ResolvedTag]:
        """Every tag, explicit ones first, then each group's members in serial order."""
        return _resolve(self)

    @property
    def protocol(self) -> Protocol:
        """The device the simulator plays (``reader.protocol``)."""
        return self.reader.protocol

    def id_scheme(self) -> Literal["epc", "em4100"]:
        """How the edge reports this scenario's tags: ``epc`` or ``em4100`` codes."""
        return "em4100" if self.reader.protocol == "em4100" else "epc"

    def with_protocol(self, protocol: str, source: str = "<scenario>") -> Scenario:
        """This scenario played as ``protocol``, validated again for it.

        Raises :class:`ConfigError` naming the fields that do not suit the protocol.
        """
        if protocol == self.reader.protocol:
            return self
        data = self.model_dump(mode="python")
        data["reader"] = {**data["reader"], "protocol": protocol}
        return parse_scenario(data, source)


def _resolve(s: Scenario) -> list[ResolvedTag]:
    out: list[ResolvedTag] = []

    def intervals(vis: list[Visibility], shift: float) -> tuple[Interval, ...]:
        return tuple(
            Interval(
                v.antenna,
                s.antennas.get(v.antenna, "?"),
                v.from_s + shift,
                s.end_s if v.to_s is None else v.to_s + shift,
                v.rssi_dbm,
            )
            for v in vis
        )

    for i, tag in enumerate(s.tags):
        out.append(ResolvedTag(tag.epc, f"tags.{i}", None, intervals(tag.visible, 0.0)))
    digits = EM4100_DIGITS if s.reader.protocol == "em4100" else None
    for g, group in enumerate(s.groups):
        for k in range(group.count):
            out.append(
                ResolvedTag(
                    group.epc(k, digits),
                    f"groups.{g}",
                    k,
                    intervals(group.visible, k * group.stagger_s),
                )
            )
    return out


_ONE_ANTENNA = {"m100": "an m100 module", "em4100": "an em4100 reader"}


def _check_reader(s: Scenario) -> list[tuple[str, str]]:
    """Problems of a scenario for the device its ``reader.protocol`` names."""
    problems: list[tuple[str, str]] = []
    protocol = s.reader.protocol
    one = _ONE_ANTENNA.get(protocol)
    if one is None and protocol == "chafon" and s.reader.layout == "18":
        one = "a Chafon UHFReader18 (layout '18')"
    if one is not None and sorted(s.antennas) != [1]:
        ports = ", ".join(str(p) for p in sorted(s.antennas))
        problems.append(("antennas", f"{one} has one antenna, port 1 (got ports {ports})"))
    if protocol == "em4100":
        for i, tag in enumerate(s.tags):
            if len(tag.epc) != EM4100_DIGITS:
                problems.append(
                    (
                        f"tags.{i}.epc",
                        f"an em4100 card code is {EM4100_DIGITS} hex digits (version byte "
                        f"and 32-bit card number), got {len(tag.epc)} digits",
                    )
                )
        for g, group in enumerate(s.groups):
            digits = EM4100_DIGITS - len(group.epc_prefix)
            if digits < 1:
                problems.append(
                    (
                        f"groups.{g}.epc_prefix",
                        f"an em4100 card code is {EM4100_DIGITS} hex digits; the prefix "
                        "leaves none for the serial",
                    )
                )
            elif group.serial_start + group.count > 16**digits:
                problems.append(
                    (
                        f"groups.{g}.count",
                        f"{group.count} serials do not fit the {digits} hex digits an em4100 "
                        "card code leaves after the prefix",
                    )
                )
    else:
        for i, tag in enumerate(s.tags):
            if len(tag.epc) % 4:
                problems.append((f"tags.{i}.epc", "must be upper-case hex in whole 16-bit words"))
    return problems


def _check_scenario(s: Scenario) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not s.tags and not s.groups:
        problems.append(("tags", "a scenario needs at least one tag or group"))
    problems += _check_reader(s)
    if len(set(s.disconnected)) != len(s.disconnected):
        problems.append(("disconnected", "each port may appear once"))
    entries: list[tuple[str, list[Visibility]]] = [
        (f"tags.{i}", t.visible) for i, t in enumerate(s.tags)
    ] + [(f"groups.{g}", grp.visible) for g, grp in enumerate(s.groups)]
    for path, visible in entries:
        for j, v in enumerate(visible):
            where = f"{path}.visible.{j}"
            if v.antenna not in s.antennas:
                problems.append((f"{where}.antenna", f"port {v.antenna} is not in antennas"))
            elif v.antenna in s.disconnected:
                problems.append((f"{where}.antenna", f"port {v.antenna} is listed in disconnected"))
            if v.from_s >= s.end_s:
                problems.append((f"{where}.from_s", f"starts at or after end_s ({s.end_s:g})"))
            for k in range(j):
                w = visible[k]
                if w.antenna == v.antenna and _overlap(s, v, w):
                    problems.append(
                        (where, f"overlaps visible.{k} on the same antenna {v.antenna}")
                    )
    if problems:
        return problems

    tags = s.resolved_tags()
    seen: dict[str, str] = {}
    for tag in tags:
        where = tag.source if tag.member is None else f"{tag.source} (member {tag.member})"
        if tag.epc in seen:
            problems.append((f"{tag.source}.epc", f"EPC {tag.epc} is also {seen[tag.epc]}"))
        else:
            seen[tag.epc] = where
    if problems:
        return problems

    failed_groups: set[str] = set()
    for tag in tags:
        if tag.source in failed_groups:
            continue
        member = "" if tag.member is None else f" (member {tag.member}, EPC {tag.epc})"
        empty = [i for i, iv in enumerate(tag.intervals) if iv.start >= iv.end]
        if empty:
            problems.append(
                (
                    f"{tag.source}.visible.{empty[0]}.from_s",
                    f"starts at or after its end once staggered{member}",
                )
            )
            failed_groups.add(tag.source)
            continue
        late = [i for i, iv in enumerate(tag.intervals) if iv.end > s.end_s + 1e-9]
        if late:
            problems.append(
                (
                    f"{tag.source}.visible.{late[0]}.to_s",
                    f"ends after end_s ({s.end_s:g}){member}",
                )
            )
            failed_groups.add(tag.source)
            continue
        try:
            truth_of(tag, s)
        except AmbiguityError as exc:
            field = f".{exc.field}" if exc.field else ""
            problems.append((f"{tag.source}.visible.{exc.index}{field}", f"{exc.reason}{member}"))
            failed_groups.add(tag.source)
    return problems


def _overlap(s: Scenario, a: Visibility, b: Visibility) -> bool:
    a_end = s.end_s if a.to_s is None else a.to_s
    b_end = s.end_s if b.to_s is None else b.to_s
    return a.from_s < b_end and b.from_s < a_end


def truth_of(tag: ResolvedTag, scenario: Scenario) -> History:
    """Expected movements and final zone of one tag. Raises :class:`AmbiguityError`."""
    return history(tag.spans(), scenario.end_s, scenario.expect.rules())


def _expand(exc: ValidationError) -> list[tuple[str, str]]:
    """Like :func:`validation_problems`, but one entry per :class:`ScenarioProblemsError` item."""
    problems: list[tuple[str, str]] = []
    plain = validation_problems(exc)
    for err, fallback in zip(exc.errors(), plain, strict=True):
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ScenarioProblemsError):
            prefix = ".".join(str(p) for p in err["loc"])
            for path, reason in cause.problems:
                problems.append((f"{prefix}.{path}" if prefix else path, reason))
        else:
            problems.append(fallback)
    return problems


def parse_scenario(data: dict[str, object], source: str = "<scenario>") -> Scenario:
    """Validate scenario data. Raises :class:`ConfigError` naming each failing field."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _expand(exc)) from exc


def load_scenario(path: Path | str, environ: dict[str, str] | None = None) -> Scenario:
    """Read and validate a scenario file (with ``TAGTRAIL_SIM__*`` overrides).

    Raises :class:`ConfigError` naming each failing field.
    """
    try:
        return load_config(path, Scenario, ENV_PREFIX, environ)
    except ConfigError as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            raise ConfigError(exc.source, _expand(cause)) from cause
        raise
