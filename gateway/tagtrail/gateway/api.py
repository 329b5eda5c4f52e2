"""The gateway's HTTP API (FastAPI): positions, zones, stock, history and a live stream.

Every endpoint but ``/healthz`` and ``/readyz`` needs ``Authorization: Bearer <token>``
with a token from :class:`~tagtrail.gateway.config.ApiConfig`: 401 without one or with an
unknown one, 403 when the token lacks the scope (``read`` for the REST endpoints,
``stream`` for ``/v1/stream``). Tokens are compared in constant time and never logged.

The handlers are ``async`` and query the :class:`~tagtrail.gateway.store.PositionStore`
directly in the event loop: the store has one SQLite connection that the consumer also
uses from the loop, and every query is an index lookup or a bounded keyset page.
``GET /v1/items/{item}``, the hot path, is one primary-key lookup serialised straight to
JSON.

History (``/v1/movements``) comes from InfluxDB through a :class:`MovementsQuery`
(:class:`tagtrail.gateway.influx.InfluxQuery`); without one, or while InfluxDB fails,
the endpoint answers 503 with the reason.

(No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations
at runtime, and they refer to names local to :func:`create_app`.)
"""

import hmac
import logging
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.requests import HTTPConnection
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

import tagtrail
from tagtrail.clock import Clock, SystemClock
from tagtrail.errors import TagtrailError
from tagtrail.events import Identity
from tagtrail.gateway.config import ApiConfig, Scope
from tagtrail.gateway.store import CursorError, ItemPosition, PositionStore, ZoneStock
from tagtrail.gateway.stream import Broadcaster
from tagtrail.gateway.web import web_router
from tagtrail.metrics import LatencyHistogram

__all__ = [
    "Broadcaster",
    "HealthProvider",
    "MovementsQuery",
    "create_app",
    "item_key",
]

logger = logging.getLogger(__name__)

MOVEMENTS_LIMIT_MAX = 10_000
"""Most rows one ``/v1/movements`` request returns."""

_HEX_RE = re.compile(r"^(?:[0-9A-F]{4}){1,31}$")
_SCHEMES = ("epc", "em4100", "sscc", "gtin_serial", "gtin_quantity")


# -- what the app is given ------------------------------------------------------------


class MovementsQuery(Protocol):
    """Movement history from InfluxDB (implemented by ``tagtrail.gateway.influx``)."""

    async def movements(
        self,
        *,
        epc: str | None,
        zone: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Newest first; rows with time, site, device, reader, zone, kind, epc, from_zone,
        rssi_dbm, read_count, event_id. Raises a TagtrailError when InfluxDB fails."""
        ...


class HealthProvider(Protocol):
    """Readiness of the gateway's dependencies, e.g. ``{"mqtt": True, "influxdb": False}``."""

    def readiness(self) -> dict[str, bool]: ...


# -- response models ------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_EVENT_ID = "0b6f4c1e-5d07-4c8e-9a53-2f0e8d9b1a11"
_EPC = "E200301666130121155074EF"
_T = "2026-03-01T08:15:02.250000Z"

LAST_EVENT_EXAMPLE: dict[str, Any] = {
    "event_id": _EVENT_ID,
    "kind": "moved",
    "time": _T,
    "site": "wh1",
    "device": "edge-dock-1",
    "reader": "door-1",
    "antenna": 2,
    "zone": "aisle-3",
    "from_zone": "dock",
    "read_count": 17,
    "peak_rssi_dbm": -48.5,
}
ITEM_EXAMPLE: dict[str, Any] = {
    "item": f"epc:{_EPC}",
    "epc": _EPC,
    "identity": {"scheme": "epc", "epc": _EPC},
    "site": "wh1",
    "zone": "aisle-3",
    "present": True,
    "last_zone": "aisle-3",
    "first_seen": "2026-03-01T08:14:40.100000Z",
    "last_seen": "2026-03-01T08:15:01.900000Z",
    "last_event": LAST_EVENT_EXAMPLE,
    "updated_at": "2026-03-01T08:15:02.310000Z",
}


class LastEventOut(_Out):
    """The movement event that set the item's current position."""

    event_id: str = Field(description="The event's unique id.")
    kind: Literal["arrived", "moved", "departed"] = Field(description="Event kind.")
    time: datetime = Field(description="When it happened (the event_time), UTC.")
    site: str = Field(description="Site of the device that reported it.")
    device: str = Field(description="Edge device that reported it.")
    reader: str = Field(description="Reader that saw the item.")
    antenna: int = Field(description="1-based antenna (or camera region).")
    zone: str = Field(description="Zone of the event (for 'departed': where it was last).")
    from_zone: str | None = Field(description="For 'moved': the zone before; else null.")
    read_count: int = Field(description="Reads of the item in this presence so far.")
    peak_rssi_dbm: float | None = Field(description="Strongest RSSI in this presence, dBm.")


class ItemOut(_Out):
    """Where an item is now, by its newest event (late, older events never move it back)."""

    model_config = ConfigDict(json_schema_extra={"examples": [ITEM_EXAMPLE]})

    item: str = Field(description="Item key: 'epc:<HEX>', 'sscc:<digits>', ...")
    epc: str | None = Field(description="EPC in hex for RFID items; null for barcodes.")
    identity: Identity = Field(description="What the item is (event contract identity).")
    site: str = Field(description="Site of the newest event.")
    zone: str | None = Field(description="Zone the item is in now; null once it departed.")
    present: bool = Field(description="False once the item departed.")
    last_zone: str = Field(description="Zone where the item was seen last, present or not.")
    first_seen: datetime = Field(description="First read in the current presence, UTC.")
    last_seen: datetime = Field(description="Latest read reported, UTC.")
    last_event: LastEventOut = Field(description="The event that set this position.")
    updated_at: datetime = Field(description="When the gateway applied that event, UTC.")


class ItemPageOut(_Out):
    """One page of items, in item-key order."""

    items: list[ItemOut] = Field(description="The items of this page.")
    count: int = Field(description="Number of items on this page.")
    next_cursor: str | None = Field(
        description="Pass as 'cursor' (with the same filters) for the next page; "
        'null on the last page. Also sent as a Link header with rel="next".'
    )


class ZoneOut(_Out):
    """The number of items present in one zone of one site."""

    site: str = Field(description="Site.")
    zone: str = Field(description="Zone name.")
    count: int = Field(description="Items present in the zone now.")


class ZonesOut(_Out):
    """Every zone the gateway has seen, including zones that are empty now."""

    zones: list[ZoneOut] = Field(description="Zones by site and name.")


class SkuStockOut(_Out):
    """Units of one GTIN present in one zone of one site."""

    site: str = Field(description="Site.")
    zone: str = Field(description="Zone name.")
    gtin: str = Field(description="GTIN-14 of the stock keeping unit.")
    count: int = Field(
        description="Units present now (a GTIN + quantity item counts its quantity)."
    )


class SkusOut(_Out):
    """Stock per SKU per zone: SGTIN EPCs, serialised GTINs and GTIN + quantity items."""

    skus: list[SkuStockOut] = Field(description="Rows by site, zone and GTIN; no zero rows.")


class ZoneDetailOut(_Out):
    """A zone by name, across the sites that have a zone of that name."""

    zone: str = Field(description="Zone name.")
    count: int = Field(description="Items present in the zone now, over all listed sites.")
    sites: list[ZoneOut] = Field(description="The zone in each site.")


class SiteStockOut(_Out):
    """Items present in one site."""

    site: str = Field(description="Site.")
    count: int = Field(description="Items present in the site now.")


class StockOut(_Out):
    """Current stock: items present per zone and per site."""

    as_of: datetime = Field(description="When this was read, UTC.")
    total: int = Field(description="Items present over all sites.")
    sites: list[SiteStockOut] = Field(description="Items present per site.")
    zones: list[ZoneOut] = Field(description="Zones holding items now (empty zones omitted).")


class MovementOut(_Out):
    """One movement point from InfluxDB."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time: datetime = Field(description="Event time, UTC (made unique per series).")
    site: str = Field(description="Site.")
    device: str = Field(description="Edge device.")
    reader: str = Field(description="Reader.")
    zone: str = Field(description="Zone of the event.")
    kind: Literal["arrived", "moved", "departed"] = Field(description="Event kind.")
    epc: str = Field(description="EPC in hex; the item key for barcode items.")
    item: str | None = Field(default=None, description="Item key ('epc:<HEX>', 'sscc:...').")
    from_zone: str | None = Field(default=None, description="For 'moved': the zone before.")
    rssi_dbm: float | None = Field(default=None, description="Peak RSSI, dBm, when known.")
    read_count: int | None = Field(default=None, description="Reads in the presence so far.")
    event_id: str | None = Field(default=None, description="The event's unique id.")


class MovementsOut(_Out):
    """Movement history, newest first."""

    movements: list[MovementOut] = Field(description="Movement points, newest first.")
    count: int = Field(description="Number of rows returned.")


class HealthOut(_Out):
    """The process is running."""

    status: Literal["ok"] = Field(description="Always 'ok'.")


class ReadyOut(_Out):
    """Whether the gateway's dependencies are reachable."""

    ready: bool = Field(description="True when every check passes.")
    checks: dict[str, bool] = Field(description="Each dependency and whether it is ready.")
    failing: list[str] = Field(description="The checks that fail.")


class Problem(_Out):
    """An error, with the reason."""

    detail: str = Field(description="What went wrong, human-readable.")


# -- OpenAPI examples -----------------------------------------------------------------

_ZONES_EXAMPLE = {
    "zones": [
        {"site": "wh1", "zone": "aisle-3", "count": 412},
        {"site": "wh1", "zone": "dock", "count": 0},
    ]
}
_SKUS_EXAMPLE = {
    "skus": [
        {"site": "wh1", "zone": "aisle-3", "gtin": "09506000134352", "count": 24},
        {"site": "wh1", "zone": "dock", "gtin": "80614141123458", "count": 3},
    ]
}
_ZONE_EXAMPLE = {
    "zone": "dock",
    "count": 57,
    "sites": [
        {"site": "wh1", "zone": "dock", "count": 40},
        {"site": "wh2", "zone": "dock", "count": 17},
    ],
}
_STOCK_EXAMPLE = {
    "as_of": "2026-03-01T08:16:00Z",
    "total": 469,
    "sites": [{"site": "wh1", "count": 469}],
    "zones": [
        {"site": "wh1", "zone": "aisle-3", "count": 412},
        {"site": "wh1", "zone": "dock", "count": 57},
    ],
}
_MOVEMENTS_EXAMPLE = {
    "movements": [
        {
            "time": _T,
            "site": "wh1",
            "device": "edge-dock-1",
            "reader": "door-1",
            "zone": "aisle-3",
            "kind": "moved",
            "epc": _EPC,
            "item": f"epc:{_EPC}",
            "from_zone": "dock",
            "rssi_dbm": -48.5,
            "read_count": 17,
            "event_id": _EVENT_ID,
        }
    ],
    "count": 1,
}
_STREAM_EXAMPLE = (
    "retry: 5000\n: connected\n\n"
    f'id: 41\nevent: movement\ndata: {{"schema_version":1,"event_id":"{_EVENT_ID}",'
    '"kind":"moved","zone":"aisle-3","from_zone":"dock", ...}\n\n'
    'id: 42\nevent: position\ndata: {"item":"epc:E200301666130121155074EF",'
    '"epc":"E200301666130121155074EF","site":"wh1","from_zone":"dock","to_zone":"aisle-3",'
    f'"present":true,"kind":"moved","event_id":"{_EVENT_ID}","event_time":"{_T}"}}\n\n'
    ": heartbeat\n\n"
)

_ERROR_TEXT = {
    400: (
        "Invalid parameter",
        "cursor belongs to a different query: repeat zone, site and since unchanged",
    ),
    401: (
        "Missing or unknown bearer token",
        "missing bearer token: send 'Authorization: Bearer <token>'",
    ),
    403: ("The token lacks the scope", "this token lacks the 'read' scope"),
    404: ("Not found", "no item epc:E200301666130121155074EF"),
    502: ("InfluxDB answered something unexpected", "InfluxDB returned an unexpected row: ..."),
    503: (
        "Unavailable",
        "movement history is unavailable: InfluxDB query failed: connection refused",
    ),
}


def _responses(
    ok: str,
    example: Any,
    *codes: int,
    media: str = "application/json",
    scope: Scope = "read",
) -> dict[int | str, Any]:
    """OpenAPI responses: 200 described as ``ok`` with ``example``, and error examples."""
    out: dict[int | str, Any] = {200: {"description": ok, "content": {media: {"example": example}}}}
    for code in codes:
        description, detail = _ERROR_TEXT[code]
        if code == 403:
            detail = f"this token lacks the {scope!r} scope"
        out[code] = {
            "model": Problem,
            "description": description,
            "content": {"application/json": {"example": {"detail": detail}}},
        }
    return out


# -- parameters -----------------------------------------------------------------------


def _bad(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


def _epc_hex(value: str) -> str:
    upper = value.upper()
    if not _HEX_RE.fullmatch(upper):
        raise _bad(
            f"{value!r} is not an EPC: expected hex in whole 16-bit words (4 to 124 digits), "
            "or an item key such as 'sscc:106141411234567897'"
        )
    return upper


def item_key(value: str) -> str:
    """The store key of an item given as EPC hex (any case) or a full item key.

    Raises a 400 :class:`HTTPException` naming the problem.
    """
    if ":" not in value:
        return "epc:" + _epc_hex(value)
    scheme, _, rest = value.partition(":")
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise _bad(f"unknown item scheme {scheme!r}: use one of {', '.join(_SCHEMES)}")
    if not rest:
        raise _bad(f"item key {value!r} has nothing after the scheme")
    if scheme == "epc":
        return "epc:" + _epc_hex(rest)
    if scheme == "em4100":
        return "em4100:" + rest.upper()
    return f"{scheme}:{rest}"


def _movement_epc(value: str) -> str:
    """The ``epc`` field value InfluxDB holds for an item: hex for EPCs, else the key."""
    key = item_key(value)
    return key[4:] if key.startswith("epc:") else key


ZoneParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="Only items present in this zone now.",
        examples=["aisle-3"],
    ),
]
SiteParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="Only items whose newest event is from this site.",
        examples=["wh1"],
    ),
]
SinceParam = Annotated[
    AwareDatetime | None,
    Query(
        description="Only items whose newest event is at or after this time. ISO 8601 "
        "with a UTC offset (e.g. 2026-03-01T08:00:00Z); naive times are rejected.",
        examples=["2026-03-01T08:00:00Z"],
    ),
]


def _item_out(pos: ItemPosition) -> ItemOut:
    return ItemOut.model_validate(pos, from_attributes=True)


def _zone_out(z: ZoneStock) -> ZoneOut:
    return ZoneOut(site=z.site, zone=z.zone, count=z.count)


# -- the app --------------------------------------------------------------------------


class BearerScope(HTTPBearer):
    """The bearer-token check for one scope, as a single FastAPI dependency.

    It subclasses :class:`HTTPBearer` so OpenAPI documents the HTTP bearer scheme, but
    reads the header itself: one dependency level on the hot path instead of two.
    """

    def __init__(self, config: ApiConfig, scope: Scope) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="bearer",
            description="A token from the gateway config (api.tokens).",
        )
        self.scope = scope
        self._tokens = [
            (t.token.get_secret_value().encode(), scope in t.scopes, t.name) for t in config.tokens
        ]

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                status_code=401,
                detail="missing bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raw = given.encode()
        found: tuple[bool, str] | None = None
        for secret, allowed, name in self._tokens:  # every token is compared: constant time
            if hmac.compare_digest(raw, secret) and found is None:
                found = (allowed, name)
        if found is None:
            raise HTTPException(
                status_code=401,
                detail="unknown bearer token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if not found[0]:
            logger.info("token %r refused: it lacks the %r scope", found[1], self.scope)
            raise HTTPException(
                status_code=403, detail=f"this token lacks the {self.scope!r} scope"
            )
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=given)


RouteKey = tuple[str, str, str]
"""(method, route path template, status class such as ``2xx``)."""


class RequestTimer:
    """ASGI middleware: time from request to response start, per method, route template and
    status class, into :class:`~tagtrail.metrics.LatencyHistogram` objects. Timing stops
    at the response headers, so a long-lived ``/v1/stream`` counts its time to connect."""

    def __init__(self, app: Any, latencies: dict[RouteKey, LatencyHistogram]) -> None:
        self.app = app
        self.latencies = latencies

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message.get("type") == "http.response.start":
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                key = (str(scope.get("method", "")), path, f"{message.get('status', 0) // 100}xx")
                hist = self.latencies.get(key)
                if hist is None:
                    hist = self.latencies[key] = LatencyHistogram()
                hist.observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)


def create_app(
    store: PositionStore,
    config: ApiConfig,
    *,
    movements: MovementsQuery | None,
    health: HealthProvider,
    stream: Broadcaster,
    clock: Clock | None = None,
) -> FastAPI:
    """The API over ``store``; see the module docs. ``clock`` stamps ``/v1/stock``."""
    clock = clock or SystemClock()
    page_max = config.page_max
    app = FastAPI(
        title="tagtrail gateway",
        version=tagtrail.__version__,
        summary="Real-time positions and stock of tracked warehouse items.",
        description=(
            "Where every tracked item is now, how many items each zone holds, the movement "
            "history (from InfluxDB) and a live Server-Sent Events stream of changes.\n\n"
            "Every endpoint except `/healthz` and `/readyz` needs `Authorization: Bearer "
            "<token>`; tokens carry the scopes `read` (REST) and/or `stream` (`/v1/stream`)."
        ),
        openapi_tags=[
            {"name": "items", "description": "Current position of each item."},
            {"name": "zones", "description": "Zones and stock counts."},
            {"name": "history", "description": "Movement history from InfluxDB."},
            {"name": "stream", "description": "Live changes as Server-Sent Events."},
            {"name": "health", "description": "Liveness and readiness (no token needed)."},
        ],
    )
    app.state.request_latency = {}
    app.add_middleware(RequestTimer, latencies=app.state.request_latency)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "Last-Event-ID"],
            expose_headers=["Link"],
        )
    read = [Depends(BearerScope(config, "read"))]
    stream_scope = [Depends(BearerScope(config, "stream"))]

    @app.get(
        "/v1/items/{item:path}",
        tags=["items"],
        summary="One item's current position",
        description="The item by its EPC in hex (any case) or by its full item key "
        "(`epc:…`, `sscc:…`, `gtin_serial:<gtin>:<serial>`, `gtin_quantity:<gtin>:<batch>`). "
        "The position is the item's newest event: zone (null once departed), last seen, "
        "and that event.",
        response_model=ItemOut,
        responses=_responses("The item's position.", ITEM_EXAMPLE, 400, 401, 403, 404),
        dependencies=read,
    )
    async def get_item(
        item: Annotated[
            str,
            Path(
                description="EPC hex (case-insensitive) or item key.",
                examples=[_EPC, "sscc:106141411234567897"],
            ),
        ],
    ) -> Response:
        key = item_key(item)
        pos = store.get_item(key)
        if pos is None:
            raise HTTPException(status_code=404, detail=f"no item {key}")
        return Response(_item_out(pos).model_dump_json(), media_type="application/json")

    @app.get(
        "/v1/items",
        tags=["items"],
        summary="List items, paginated",
        description="Items in item-key order, optionally only those present in a zone, of "
        "a site, or changed since a time. Keyset pagination: follow `next_cursor` (or the "
        '`Link: rel="next"` header) with the same filters; pages stay stable while '
        f"items change. `limit` is at most {page_max}.",
        response_model=ItemPageOut,
        responses=_responses(
            "A page of items.",
            {"items": [ITEM_EXAMPLE], "count": 1, "next_cursor": "WyJlcGM6RTIwMC..."},
            400,
            401,
            403,
        ),
        dependencies=read,
    )
    async def list_items(
        *,
        request: Request,
        response: Response,
        zone: ZoneParam = None,
        site: SiteParam = None,
        since: SinceParam = None,
        limit: Annotated[
            int,
            Query(ge=1, le=page_max, description="Items per page.", examples=[100]),
        ] = min(100, page_max),
        cursor: Annotated[
            str | None,
            Query(
                max_length=1024,
                description="Opaque cursor from the previous page's next_cursor.",
                examples=["WyJlcGM6RTIwMC..."],
            ),
        ] = None,
    ) -> ItemPageOut:
        try:
            items, next_cursor = store.list_items(
                zone=zone, site=site, since=since, limit=limit, cursor=cursor
            )
        except CursorError as exc:
            raise _bad(str(exc)) from exc
        if next_cursor is not None:
            url = request.url.include_query_params(cursor=next_cursor)
            response.headers["Link"] = f'<{url}>; rel="next"'
        return ItemPageOut(
            items=[_item_out(p) for p in items], count=len(items), next_cursor=next_cursor
        )

    @app.get(
        "/v1/zones",
        tags=["zones"],
        summary="All zones with their counts",
        description="Every zone any event named, per site, with the number of items present "
        "now. Zones that emptied stay listed with count 0.",
        response_model=ZonesOut,
        responses=_responses("All zones.", _ZONES_EXAMPLE, 401, 403),
        dependencies=read,
    )
    async def zones() -> ZonesOut:
        return ZonesOut(zones=[_zone_out(z) for z in store.zones()])

    @app.get(
        "/v1/skus",
        tags=["zones"],
        summary="Stock per SKU per zone",
        description="Units present now per site, zone and GTIN-14. An RFID item counts when "
        "its EPC is an SGTIN (GS1 EPC Tag Data Standard); a barcode item by its GTIN, with its "
        "quantity for GTIN + quantity labels. SSCCs (pallets) and other codes have no SKU. "
        "Filter by `site`, `zone` and `gtin`.",
        response_model=SkusOut,
        responses=_responses("Stock per SKU.", _SKUS_EXAMPLE, 400, 401, 403),
        dependencies=read,
    )
    async def skus(
        site: Annotated[
            str | None,
            Query(min_length=1, max_length=64, description="Only this site.", examples=["wh1"]),
        ] = None,
        zone: Annotated[
            str | None,
            Query(min_length=1, max_length=64, description="Only this zone.", examples=["dock"]),
        ] = None,
        gtin: Annotated[
            str | None,
            Query(
                pattern=r"^[0-9]{8}$|^[0-9]{12,14}$",
                description="Only this GTIN (GTIN-8, -12, -13 or -14; shorter ones are "
                "left-padded to 14 digits).",
                examples=["09506000134352"],
            ),
        ] = None,
    ) -> SkusOut:
        rows = store.sku_stock(site=site, zone=zone, gtin=None if gtin is None else gtin.zfill(14))
        return SkusOut(
            skus=[SkuStockOut(site=r.site, zone=r.zone, gtin=r.gtin, count=r.count) for r in rows]
        )

    @app.get(
        "/v1/zones/{zone}",
        tags=["zones"],
        summary="One zone's count",
        description="The zone of that name in every site (or only in `site`), with the "
        "items present now. List the items with `GET /v1/items?zone=…`.",
        response_model=ZoneDetailOut,
        responses=_responses("The zone per site.", _ZONE_EXAMPLE, 401, 403, 404),
        dependencies=read,
    )
    async def zone(
        zone: Annotated[
            str, Path(min_length=1, max_length=64, description="Zone name.", examples=["dock"])
        ],
        site: Annotated[
            str | None,
            Query(min_length=1, max_length=64, description="Only this site.", examples=["wh1"]),
        ] = None,
    ) -> ZoneDetailOut:
        found = store.zone(zone, site)
        if not found:
            where = f" in site {site}" if site is not None else ""
            raise HTTPException(status_code=404, detail=f"no zone {zone}{where}")
        return ZoneDetailOut(
            zone=zone, count=sum(z.count for z in found), sites=[_zone_out(z) for z in found]
        )

    @app.get(
        "/v1/stock",
        tags=["zones"],
        summary="Current stock per zone and site",
        description="Items present now: per zone (zones holding items), per site and in total.",
        response_model=StockOut,
        responses=_responses("Current stock.", _STOCK_EXAMPLE, 401, 403),
        dependencies=read,
    )
    async def stock() -> StockOut:
        rows = store.stock()
        sites: dict[str, int] = {}
        for z in rows:
            sites[z.site] = sites.get(z.site, 0) + z.count
        return StockOut(
            as_of=clock.now(),
            total=sum(sites.values()),
            sites=[SiteStockOut(site=s, count=c) for s, c in sorted(sites.items())],
            zones=[_zone_out(z) for z in rows],
        )

    @app.get(
        "/v1/movements",
        tags=["history"],
        summary="Movement history",
        description="Movement points from InfluxDB (InfluxQL through /query), newest "
        "first, optionally for one item (`epc`: EPC hex or an item key), one zone and a "
        "time range [`since`, `until`). 503 with the reason when InfluxDB is not "
        "configured or fails.",
        response_model=MovementsOut,
        responses=_responses(
            "Movements, newest first.", _MOVEMENTS_EXAMPLE, 400, 401, 403, 502, 503
        ),
        dependencies=read,
    )
    async def movements_endpoint(
        epc: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=160,
                description="EPC hex (any case) or item key of one item.",
                examples=[_EPC],
            ),
        ] = None,
        zone: Annotated[
            str | None,
            Query(min_length=1, max_length=64, description="Only this zone.", examples=["dock"]),
        ] = None,
        since: Annotated[
            AwareDatetime | None,
            Query(
                description="From this time on (inclusive), with a UTC offset.",
                examples=["2026-03-01T08:00:00Z"],
            ),
        ] = None,
        until: Annotated[
            AwareDatetime | None,
            Query(
                description="Before this time (exclusive), with a UTC offset.",
                examples=["2026-03-01T09:00:00Z"],
            ),
        ] = None,
        limit: Annotated[
            int,
            Query(ge=1, le=MOVEMENTS_LIMIT_MAX, description="Most rows.", examples=[100]),
        ] = 100,
    ) -> MovementsOut:
        if since is not None and until is not None and since >= until:
            raise _bad("since must be before until")
        epc_value = _movement_epc(epc) if epc is not None else None
        if movements is None:
            raise HTTPException(
                status_code=503, detail="movement history is unavailable: no InfluxDB query"
            )
        try:
            rows = await movements.movements(
                epc=epc_value, zone=zone, since=since, until=until, limit=limit
            )
        except (TagtrailError, OSError) as exc:
            logger.warning("movements query failed: %s", exc)
            raise HTTPException(
                status_code=503, detail=f"movement history is unavailable: {exc}"
            ) from exc
        try:
            out = [MovementOut.model_validate(r) for r in rows]
        except ValidationError as exc:
            raise HTTPException(
                status_code=502, detail=f"InfluxDB returned an unexpected row: {exc}"
            ) from exc
        return MovementsOut(movements=out, count=len(out))

    @app.get(
        "/v1/stream",
        tags=["stream"],
        summary="Live position changes (Server-Sent Events)",
        description="A `text/event-stream` of every position change applied after the "
        "client connected: for each, an `event: movement` (the event contract's JSON) and "
        "an `event: position` (item, from_zone, to_zone, ...), with `id:` lines. It starts "
        "with a `: connected` comment once subscribed, and sends `: heartbeat` comments "
        f"every {stream.heartbeat_s:g} s of silence. A client more than "
        f"{stream.queue_size} changes behind is disconnected after an `event: disconnect` "
        "saying why; it catches up from `/v1/items`. Needs the `stream` scope.",
        response_class=StreamingResponse,
        responses=_responses(
            "An endless event stream.",
            _STREAM_EXAMPLE,
            401,
            403,
            media="text/event-stream",
            scope="stream",
        ),
        dependencies=stream_scope,
    )
    async def stream_endpoint() -> StreamingResponse:
        return StreamingResponse(
            stream.frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Liveness",
        description="200 while the process runs. No token needed.",
        response_model=HealthOut,
        responses=_responses("The process runs.", {"status": "ok"}),
    )
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness",
        description="200 when every dependency (MQTT broker, InfluxDB) is ready, else 503 "
        "listing the failing ones. No token needed.",
        response_model=ReadyOut,
        responses={
            200: {
                "description": "Every dependency is ready.",
                "content": {
                    "application/json": {
                        "example": {
                            "ready": True,
                            "checks": {"mqtt": True, "influxdb": True},
                            "failing": [],
                        }
                    }
                },
            },
            503: {
                "model": ReadyOut,
                "description": "A dependency is not ready.",
                "content": {
                    "application/json": {
                        "example": {
                            "ready": False,
                            "checks": {"mqtt": True, "influxdb": False},
                            "failing": ["influxdb"],
                        }
                    }
                },
            },
        },
    )
    async def readyz(response: Response) -> ReadyOut:
        checks = health.readiness()
        failing = sorted(name for name, ok in checks.items() if not ok)
        if failing:
            response.status_code = 503
        return ReadyOut(ready=not failing, checks=dict(checks), failing=failing)

    app.include_router(web_router())
    return app
