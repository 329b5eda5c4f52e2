"""The tagtrail event contract, schema version 1.

Every message the edge publishes and the gateway consumes is one of these models, or a
JSON array of them. They are frozen, reject unknown fields, carry ``schema_version`` and
use timezone-aware datetimes and unit-suffixed names (``rssi_dbm``, ``read_rate_per_s``).

Items are named by an :data:`Identity`: an EPC read from a UHF RFID tag, the code of a
125 kHz EM4100 card, a GS1 barcode identity (SSCC, GTIN + serial, GTIN + quantity), or
the symbology and text of any other barcode (``code``: a location label, an internal
code). ``epc`` mirrors the EPC for RFID items and is ``null`` for barcode items. Barcode
sightings may carry :class:`ItemAttributes` (GS1 batch and expiry date).

MQTT topics (see :func:`events_topic` and :func:`status_topic`):

* ``tagtrail/v1/<site>/<device>/events``: QoS 1; movement and reader status events,
  one event or a JSON array of events per message.
* ``tagtrail/v1/<site>/<device>/status``: retained; the device's latest
  :class:`DeviceStatus` (online with heartbeats, or offline from the Last Will).

``docs/DATA_FORMAT.md`` and ``docs/schema/events-v1.json`` are generated from this module
by ``tagtrail schema``; a test fails when they drift.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from tagtrail.errors import ContractError

SCHEMA_VERSION: Literal[1] = 1
TOPIC_ROOT = "tagtrail/v1"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX_RE = re.compile(r"^(?:[0-9A-F]{4})+$")


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it becomes an MQTT topic level)"
        )
    return value


def _upper_hex(value: str) -> str:
    value = value.upper()
    if not _HEX_RE.fullmatch(value):
        raise ValueError("must be upper-case hex in whole 16-bit words")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""Site, device, reader and zone names: safe as MQTT topic levels and InfluxDB tags."""

EpcHex = Annotated[
    str,
    AfterValidator(_upper_hex),
    Field(min_length=4, max_length=124, examples=["E200301666130121155074EF"]),
]


def _gs1_check_digit_ok(digits: str) -> bool:
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _gs1_number(length: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) != length or not value.isdigit():
            raise ValueError(f"must be exactly {length} digits")
        if not _gs1_check_digit_ok(value):
            raise ValueError("GS1 check digit does not match")
        return value

    return AfterValidator(check)


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=False, allow_inf_nan=False
    )


class EpcIdentity(_Model):
    """An RFID tag's EPC memory bank contents (EPC Tag Data Standard)."""

    scheme: Literal["epc"] = Field(description="Identity scheme discriminator.")
    epc: EpcHex = Field(description="EPC as upper-case hex, as read from the tag.")


def _em4100_code(value: str) -> str:
    value = value.upper()
    if len(value) != 10 or any(c not in "0123456789ABCDEF" for c in value):
        raise ValueError("must be exactly 10 hex digits")
    return value


class Em4100Identity(_Model):
    """A 125 kHz EM4100 card or tag (RDM6300, ID-12/ID-20 readers), by its 40-bit code."""

    scheme: Literal["em4100"] = Field(description="Identity scheme discriminator.")
    code: Annotated[str, AfterValidator(_em4100_code)] = Field(
        description="The 10 hex digits the reader sends: version byte and 32-bit card number.",
        examples=["67003B51C6"],
    )


class SsccIdentity(_Model):
    """A logistic unit (pallet, parcel) by GS1 Serial Shipping Container Code, AI (00)."""

    scheme: Literal["sscc"] = Field(description="Identity scheme discriminator.")
    sscc: Annotated[str, _gs1_number(18)] = Field(
        description="18-digit SSCC with a valid check digit.", examples=["106141411234567897"]
    )


class GtinSerialIdentity(_Model):
    """A serialised trade item: GTIN, AI (01), plus serial number, AI (21)."""

    scheme: Literal["gtin_serial"] = Field(description="Identity scheme discriminator.")
    gtin: Annotated[str, _gs1_number(14)] = Field(
        description="GTIN-14 with a valid check digit (shorter GTINs are left-padded with 0)."
    )
    serial: str = Field(
        min_length=1, max_length=20, description="GS1 serial number, AI (21), 1-20 characters."
    )


class GtinQuantityIdentity(_Model):
    """A count of unserialised trade items: GTIN, AI (01) or (02), with a quantity."""

    scheme: Literal["gtin_quantity"] = Field(description="Identity scheme discriminator.")
    gtin: Annotated[str, _gs1_number(14)] = Field(
        description="GTIN-14 with a valid check digit (shorter GTINs are left-padded with 0)."
    )
    quantity: int = Field(ge=1, description="Number of units, AI (30) or (37); 1 if absent.")
    batch: str | None = Field(
        default=None, max_length=20, description="Batch or lot number, AI (10), if present."
    )


class CodeIdentity(_Model):
    """Any other barcode, by its symbology and text (a location label, an internal code)."""

    scheme: Literal["code"] = Field(description="Identity scheme discriminator.")
    symbology: str = Field(
        min_length=1,
        max_length=64,
        description="Symbology name, e.g. 'Code 128' or 'QR Code'.",
        examples=["Code 128"],
    )
    symbology_id: str | None = Field(
        default=None,
        pattern=r"^\][A-Za-z][0-9A-Za-z]$",
        description="AIM symbology identifier (ISO/IEC 15424), e.g. ']C0', when known.",
    )
    text: str = Field(
        min_length=1, max_length=1024, description="The decoded text.", examples=["LOC-A-01"]
    )


AnyIdentity = (
    EpcIdentity
    | Em4100Identity
    | SsccIdentity
    | GtinSerialIdentity
    | GtinQuantityIdentity
    | CodeIdentity
)
Identity = Annotated[AnyIdentity, Field(discriminator="scheme")]


def identity_key(identity: AnyIdentity) -> str:
    """A stable string key for an item, e.g. ``epc:E200...`` or ``sscc:1061...``."""
    match identity:
        case EpcIdentity(epc=epc):
            return f"epc:{epc}"
        case Em4100Identity(code=code):
            return f"em4100:{code}"
        case SsccIdentity(sscc=sscc):
            return f"sscc:{sscc}"
        case GtinSerialIdentity(gtin=gtin, serial=serial):
            return f"gtin_serial:{gtin}:{serial}"
        case GtinQuantityIdentity(gtin=gtin, batch=batch):
            return f"gtin_quantity:{gtin}:{batch or ''}"
        case CodeIdentity(symbology=symbology, symbology_id=symbology_id, text=text):
            return f"code:{symbology_id or symbology}:{text}"
    raise AssertionError("unreachable")  # pragma: no cover


def new_event_id() -> str:
    """A fresh event id: a random UUID in canonical text form.

    It is assigned once, when the edge creates the event, and stored with it in the
    outbox, so every retry and replay carries the same id.
    """
    return str(uuid.uuid4())


class _Envelope(_Model):
    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this contract. Always 1 here."
    )
    event_id: str = Field(
        min_length=8,
        max_length=64,
        description="Unique id, assigned when the event is created and kept on every retry.",
        examples=["0b6f4c1e-5d07-4c8e-9a53-2f0e8d9b1a11"],
    )
    event_time: AwareDatetime = Field(description="When the event happened, by the edge clock.")
    site: Name = Field(description="Site (warehouse) the device belongs to.")
    device: Name = Field(description="Edge device that produced the event.")


class ItemAttributes(_Model):
    """What a barcode says about an item beyond its identity (GS1 application identifiers)."""

    batch: str | None = Field(
        default=None, min_length=1, max_length=20, description="Batch or lot number, AI (10)."
    )
    expiry: date | None = Field(
        default=None, description="Expiration date, AI (17); day 00 means the month's last day."
    )


class _Movement(_Envelope):
    reader: Name = Field(description="Reader (as named in the edge config) that saw the item.")
    antenna: int = Field(ge=1, le=64, description="1-based antenna (or camera region) number.")
    zone: Name = Field(description="Zone the item is in after this event.")
    identity: Identity = Field(description="What the item is.")
    epc: EpcHex | None = Field(
        default=None,
        description="The EPC as hex for RFID items (same as identity.epc); null for barcodes.",
    )
    first_seen: AwareDatetime = Field(description="First read of the item in this presence.")
    last_seen: AwareDatetime = Field(description="Latest read of the item before this event.")
    read_count: int = Field(ge=0, description="Reads of the item in this presence so far.")
    peak_rssi_dbm: float | None = Field(
        default=None, description="Strongest RSSI seen in this presence, dBm; null if unknown."
    )
    attributes: ItemAttributes | None = Field(
        default=None,
        description="Batch and expiry from the item's GS1 barcode, when it carries them.",
    )

    @model_validator(mode="after")
    def _epc_matches_identity(self) -> _Movement:
        expected = self.identity.epc if isinstance(self.identity, EpcIdentity) else None
        if self.epc != expected:
            raise ValueError("epc must equal identity.epc for EPC items and be null otherwise")
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen must not be before first_seen")
        return self

    @property
    def item_key(self) -> str:
        return identity_key(self.identity)


class Arrived(_Movement):
    """An item was seen enough times to count as present in ``zone``."""

    kind: Literal["arrived"] = Field(description="Event kind discriminator.")


class Moved(_Movement):
    """An item's dominant zone changed from ``from_zone`` to ``zone``."""

    kind: Literal["moved"] = Field(description="Event kind discriminator.")
    from_zone: Name = Field(description="Zone the item was in before.")

    @model_validator(mode="after")
    def _zones_differ(self) -> Moved:
        if self.from_zone == self.zone:
            raise ValueError("from_zone and zone must differ")
        return self

    @property
    def to_zone(self) -> str:
        return self.zone


class Departed(_Movement):
    """An item was not seen for the departure timeout; ``zone`` is where it was last."""

    kind: Literal["departed"] = Field(description="Event kind discriminator.")


ReaderState = Literal["connecting", "online", "offline", "error"]


class ReaderStatus(_Envelope):
    """A reader's health: sent on connection changes and with every heartbeat."""

    kind: Literal["reader_status"] = Field(description="Event kind discriminator.")
    reader: Name = Field(description="Reader as named in the edge config.")
    reader_type: str = Field(max_length=32, description="Driver, e.g. 'r2000'.")
    state: ReaderState = Field(description="Connection state of the reader.")
    read_rate_per_s: float = Field(ge=0, description="Raw tag reads per second, recent average.")
    reads_total: int = Field(ge=0, description="Raw tag reads since the agent started.")
    error_counts: dict[str, int] = Field(
        default_factory=dict,
        description="Errors since start by reason: decode failures ('checksum', 'length', "
        "'sanity', 'garbage', 'truncated'), reader error codes ('reader_0x22'), "
        "'disconnects', 'timeouts'.",
    )
    last_error: str | None = Field(default=None, description="Latest error, human-readable.")
    firmware: str | None = Field(default=None, description="Reader firmware version if known.")
    round_read_rate_per_s: int | None = Field(
        default=None, description="Read rate the reader itself reported at its last round end."
    )
    round_total_reads: int | None = Field(
        default=None, description="Total reads the reader reported at its last round end."
    )
    antenna_reads: dict[Annotated[int, Field(ge=1, le=64)], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Raw tag reads since the agent started, per 1-based antenna.",
        examples=[{"1": 5210, "2": 3088}],
    )
    counters: dict[str, int] = Field(
        default_factory=dict,
        description="Activity since start that is not an error, by name: a camera's "
        "'frames', 'analysed', 'decodes', 'frames_dropped' (dropped under load, never "
        "queued), and the symbols each decoder engine found ('engine_zxing', "
        "'engine_pyzbar').",
    )


DeviceState = Literal["online", "offline"]


class DeviceStatus(_Envelope):
    """The device's retained status. Heartbeats republish it; the Last Will sets offline."""

    kind: Literal["device_status"] = Field(description="Event kind discriminator.")
    state: DeviceState = Field(description="online while the agent runs; offline otherwise.")
    reason: Literal["startup", "heartbeat", "shutdown", "will"] = Field(
        description="Why this status was sent: 'will' is the broker's Last Will after a "
        "lost connection, 'shutdown' a clean stop."
    )
    software_version: str = Field(max_length=32, description="tagtrail version of the agent.")
    uptime_s: float = Field(ge=0, description="Seconds since the agent started.")
    heartbeat_interval_s: float = Field(gt=0, description="Seconds between heartbeats.")
    outbox_depth: int = Field(ge=0, description="Events stored but not yet acknowledged.")
    readers: list[ReaderStatus] = Field(
        default_factory=list, description="Status of every configured reader."
    )


MovementEvent = Annotated[Arrived | Moved | Departed, Field(discriminator="kind")]
Event = Annotated[
    Arrived | Moved | Departed | ReaderStatus | DeviceStatus, Field(discriminator="kind")
]
AnyEvent = Arrived | Moved | Departed | ReaderStatus | DeviceStatus

EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)
MESSAGE_ADAPTER: TypeAdapter[AnyEvent | list[AnyEvent]] = TypeAdapter(
    Annotated[Event | list[Event], Field(description="One event or a batch (JSON array).")]
)


def events_topic(site: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/events"


def status_topic(site: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/status"


def deadletter_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/deadletter"


def parse_message(payload: bytes | str) -> list[AnyEvent]:
    """Parse one MQTT payload: a single event or a JSON array of events.

    Raises :class:`ContractError` naming the first failing field.
    """
    try:
        parsed = MESSAGE_ADAPTER.validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<message>"
        raise ContractError(f"{where}: {first['msg']}") from exc
    return parsed if isinstance(parsed, list) else [parsed]


def dump_event(event: AnyEvent) -> dict[str, Any]:
    """The event as JSON-ready data (datetimes in ISO 8601)."""
    return event.model_dump(mode="json")


def encode_batch(events: Sequence[AnyEvent]) -> bytes:
    """Encode events as one MQTT payload: a JSON array, compact, UTF-8."""
    return ("[" + ",".join(e.model_dump_json() for e in events) + "]").encode()


def encode_payloads(payloads: Sequence[str]) -> bytes:
    """Join already-serialised events (as stored in the outbox) into one JSON array."""
    return ("[" + ",".join(payloads) + "]").encode()


def utc_iso(ts: datetime) -> str:
    return ts.isoformat()


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of one MQTT message: an event or an array of events."""
    schema = MESSAGE_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tagtrail event message, schema version 1"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
