"""The HTTP API over a real SqliteStore: every endpoint, auth, validation, pagination,
CORS, OpenAPI, the SSE stream (over real uvicorn) and /v1/movements against real influxd.

Requests go through httpx: ``httpx.ASGITransport`` in-process for the REST endpoints,
and a real uvicorn server on a free port for the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tagtrail.clock import ManualClock
from tagtrail.events import Arrived, SsccIdentity, parse_message
from tagtrail.gateway.api import Broadcaster, ItemOut, MovementsQuery, create_app, item_key
from tagtrail.gateway.config import ApiConfig, ApiToken, InfluxV1Config
from tagtrail.gateway.influx import InfluxQuery
from tagtrail.gateway.store import PositionChange, SqliteStore
from tagtrail.gateway.stream import render_change
from tests.gateway.test_store import T0, epc_of, movement, open_store
from tests.support.influxd import Influxd
from tests.support.services import free_port

READ = "read-only-token-0123456789"
STREAM = "stream-only-token-0123456789"
BOTH = "all-scopes-token-0123456789"
UNKNOWN = "not-a-configured-token-42"
SSCC = "106141411234567897"

REST_PATHS = [
    f"/v1/items/{epc_of(1)}",
    "/v1/items",
    "/v1/zones",
    "/v1/zones/dock",
    "/v1/stock",
    "/v1/skus",
    "/v1/movements",
]


class Readiness:
    """A HealthProvider whose checks the test sets."""

    def __init__(self, **checks: bool) -> None:
        self.checks = checks

    def readiness(self) -> dict[str, bool]:
        return dict(self.checks)


def api_config(**extra: Any) -> ApiConfig:
    return ApiConfig(
        tokens=[
            ApiToken(name="dash", token=READ, scopes=["read"]),  # type: ignore[arg-type]
            ApiToken(name="live", token=STREAM, scopes=["stream"]),  # type: ignore[arg-type]
            ApiToken(name="ops", token=BOTH),  # type: ignore[arg-type]
        ],
        **extra,
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(minutes=5))


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "gw.sqlite", clock) as s:
        yield s


def populate(store: SqliteStore) -> None:
    """wh1: items 0-9 arrive in dock, 0-2 move to aisle-1, 9 departs; wh2: 20-21 in dock;
    one SSCC pallet in wh1's dock."""
    store.apply([movement(i, "arrived", zone="dock", at=i) for i in range(10)])
    store.apply([movement(i, "moved", zone="aisle-1", from_zone="dock", at=30) for i in range(3)])
    store.apply([movement(9, "departed", zone="dock", at=40)])
    store.apply([movement(i, "arrived", zone="dock", at=5, site="wh2") for i in (20, 21)])
    store.apply(
        [
            Arrived(
                kind="arrived",
                event_id="cam-00000001",
                event_time=T0,
                site="wh1",
                device="edge1",
                reader="cam1",
                antenna=1,
                zone="dock",
                identity=SsccIdentity(scheme="sscc", sscc=SSCC),
                epc=None,
                first_seen=T0,
                last_seen=T0,
                read_count=1,
            )
        ]
    )


def build(
    store: SqliteStore,
    *,
    movements: MovementsQuery | None = None,
    health: Readiness | None = None,
    stream: Broadcaster | None = None,
    clock: ManualClock | None = None,
    **config: Any,
) -> FastAPI:
    return create_app(
        store,
        api_config(**config),
        movements=movements,
        health=health or Readiness(mqtt=True, influxdb=True),
        stream=stream or Broadcaster(100),
        clock=clock,
    )


@contextlib.asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def get(app: FastAPI, url: str, token: str | None = READ, **kw: Any) -> httpx.Response:
    """One GET through the ASGI app."""
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers.update(auth(token))

    async def run() -> httpx.Response:
        async with client_for(app) as client:
            return await client.get(url, headers=headers, **kw)

    return asyncio.run(run())


async def until(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- items ----------------------------------------------------------------------------


def test_get_item_by_epc_or_key(store: SqliteStore) -> None:
    populate(store)
    app = build(store)
    expected = get(app, f"/v1/items/{epc_of(1)}")
    assert expected.status_code == 200
    assert expected.headers["content-type"] == "application/json"
    body = expected.json()
    # The hot path writes JSON itself; it matches the documented response model.
    assert ItemOut.model_validate_json(expected.text).model_dump(mode="json") == body
    moved = movement(1, "moved", zone="aisle-1", from_zone="dock", at=30)
    assert body["item"] == f"epc:{epc_of(1)}"
    assert (body["zone"], body["present"], body["site"]) == ("aisle-1", True, "wh1")
    assert body["identity"] == {"scheme": "epc", "epc": epc_of(1)}
    assert body["last_event"]["event_id"] == moved.event_id
    assert body["last_event"]["from_zone"] == "dock"
    assert body["last_seen"].startswith(moved.last_seen.strftime("%Y-%m-%dT%H:%M:%S"))
    assert body["updated_at"].startswith("2026-03-01T08:05:00")
    for alias in (epc_of(1).lower(), f"epc:{epc_of(1).lower()}", f"EPC:{epc_of(1)}"):
        assert get(app, f"/v1/items/{alias}").json() == body

    departed = get(app, f"/v1/items/{epc_of(9)}").json()
    assert (departed["zone"], departed["present"], departed["last_zone"]) == (None, False, "dock")

    pallet = get(app, f"/v1/items/sscc:{SSCC}").json()
    assert (pallet["epc"], pallet["identity"]["sscc"]) == (None, SSCC)


def test_get_item_errors(store: SqliteStore) -> None:
    populate(store)
    app = build(store)
    missing = get(app, "/v1/items/ABCD0123")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no item epc:ABCD0123"
    for bad, reason in [
        ("xyz", "is not an EPC"),
        ("ABC", "is not an EPC"),  # not whole 16-bit words
        ("epc:ZZZZ", "is not an EPC"),
        ("foo:bar", "unknown item scheme"),
        ("sscc:", "nothing after the scheme"),
    ]:
        resp = get(app, f"/v1/items/{bad}")
        assert resp.status_code == 400, bad
        assert reason in resp.json()["detail"]


def test_item_key_normalisation() -> None:
    assert item_key("e280abcd") == "epc:E280ABCD"
    assert item_key("GTIN_SERIAL:09506000134352:A1/7") == "gtin_serial:09506000134352:A1/7"


def test_list_items_walks_every_page_once(store: SqliteStore) -> None:
    store.apply([movement(i, "arrived", zone="dock", at=1) for i in range(250)])
    app = build(store, page_max=50)
    seen: list[str] = []
    pages = 0

    async def walk() -> None:
        nonlocal pages
        async with client_for(app) as client:
            url: str | None = "/v1/items?limit=40"
            while url is not None:
                resp = await client.get(url, headers=auth(READ))
                assert resp.status_code == 200
                body = resp.json()
                pages += 1
                assert body["count"] == len(body["items"]) <= 40
                seen.extend(item["item"] for item in body["items"])
                link = resp.headers.get("link")
                if body["next_cursor"] is None:
                    assert link is None
                    url = None
                else:
                    assert link is not None
                    assert link.endswith('>; rel="next"')
                    url = link[1 : link.index(">")]
                    assert httpx.URL(url).params["cursor"] == body["next_cursor"]
                    assert httpx.URL(url).params["limit"] == "40"

    asyncio.run(walk())
    assert pages == 7
    assert seen == sorted(f"epc:{epc_of(i)}" for i in range(250))


def test_list_items_filters_and_validation(store: SqliteStore) -> None:
    populate(store)
    app = build(store, page_max=50)

    def items(**params: Any) -> list[str]:
        resp = get(app, "/v1/items", params=params)
        assert resp.status_code == 200, resp.text
        return [i["item"] for i in resp.json()["items"]]

    assert items(zone="aisle-1") == [f"epc:{epc_of(i)}" for i in range(3)]
    assert items(zone="dock", site="wh2") == [f"epc:{epc_of(i)}" for i in (20, 21)]
    assert len(items(zone="dock", site="wh1")) == 7  # 3..8 and the pallet
    assert items(since=(T0 + timedelta(seconds=30)).isoformat()) == [
        f"epc:{epc_of(i)}" for i in (0, 1, 2, 9)
    ]
    assert items(since="2026-03-01T09:00:30+01:00") == items(
        since=(T0 + timedelta(seconds=30)).isoformat()
    )
    assert items(zone="nowhere") == []

    naive = get(app, "/v1/items", params={"since": "2026-03-01T08:00:00"})
    assert naive.status_code == 422
    assert "timezone" in naive.text
    assert get(app, "/v1/items", params={"since": "yesterday"}).status_code == 422
    assert get(app, "/v1/items", params={"limit": 51}).status_code == 422
    assert get(app, "/v1/items", params={"limit": 0}).status_code == 422
    bad = get(app, "/v1/items", params={"cursor": "!!!"})
    assert bad.status_code == 400
    assert "cursor" in bad.json()["detail"]
    cursor = get(app, "/v1/items", params={"limit": 2, "zone": "dock"}).json()["next_cursor"]
    other = get(app, "/v1/items", params={"limit": 2, "zone": "aisle-1", "cursor": cursor})
    assert other.status_code == 400
    assert "different query" in other.json()["detail"]


# -- zones and stock ------------------------------------------------------------------


def test_zones_zone_and_stock(store: SqliteStore, clock: ManualClock) -> None:
    populate(store)
    store.apply(
        [
            movement(i, "moved", zone="aisle-2", from_zone="dock", at=50, site="wh2")
            for i in (20, 21)
        ]
    )
    app = build(store, clock=clock)
    zones = get(app, "/v1/zones").json()["zones"]
    assert zones == [
        {"site": "wh1", "zone": "aisle-1", "count": 3},
        {"site": "wh1", "zone": "dock", "count": 7},
        {"site": "wh2", "zone": "aisle-2", "count": 2},
        {"site": "wh2", "zone": "dock", "count": 0},
    ]
    assert [(z["site"], z["zone"], z["count"]) for z in zones if z["count"]] == [
        (z.site, z.zone, z.count) for z in store.recount()
    ]

    dock = get(app, "/v1/zones/dock").json()
    assert dock == {
        "zone": "dock",
        "count": 7,
        "sites": [
            {"site": "wh1", "zone": "dock", "count": 7},
            {"site": "wh2", "zone": "dock", "count": 0},
        ],
    }
    assert get(app, "/v1/zones/dock", params={"site": "wh2"}).json()["count"] == 0
    for url, params in (("/v1/zones/nowhere", {}), ("/v1/zones/aisle-1", {"site": "wh2"})):
        resp = get(app, url, params=params)
        assert resp.status_code == 404
        assert "no zone" in resp.json()["detail"]

    stock = get(app, "/v1/stock").json()
    assert stock["as_of"].startswith("2026-03-01T08:05:00")
    assert stock["total"] == 12
    assert stock["sites"] == [{"site": "wh1", "count": 10}, {"site": "wh2", "count": 2}]
    assert [z["zone"] for z in stock["zones"]] == ["aisle-1", "dock", "aisle-2"]


# -- health ---------------------------------------------------------------------------


def test_health_and_readiness(store: SqliteStore) -> None:
    health = Readiness(mqtt=True, influxdb=True)
    app = build(store, health=health)
    assert get(app, "/healthz", token=None).json() == {"status": "ok"}
    ready = get(app, "/readyz", token=None)
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "checks": {"mqtt": True, "influxdb": True},
        "failing": [],
    }
    health.checks["influxdb"] = False
    not_ready = get(app, "/readyz", token=None)
    assert not_ready.status_code == 503
    assert not_ready.json()["failing"] == ["influxdb"]
    assert get(app, "/healthz", token=None).status_code == 200


# -- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*REST_PATHS, "/v1/stream"])
def test_auth_is_required(store: SqliteStore, path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    populate(store)
    app = build(store)
    missing = get(app, path, token=None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in missing.json()["detail"]
    basic = get(app, path, token=None, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    unknown = get(app, path, token=UNKNOWN)
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    wrong_scope = STREAM if path != "/v1/stream" else READ
    refused = get(app, path, token=wrong_scope)
    assert refused.status_code == 403
    scope = "stream" if path == "/v1/stream" else "read"
    assert refused.json()["detail"] == f"this token lacks the '{scope}' scope"
    if path != "/v1/stream":  # the stream's 200 is tested below, it never ends by itself
        ok = get(app, path, token=BOTH)
        assert ok.status_code in (200, 503), ok.text  # 503: /v1/movements without InfluxDB
        assert get(app, path, token=READ).status_code == ok.status_code
    for token in (READ, STREAM, BOTH, UNKNOWN):
        assert token not in caplog.text


# -- CORS -----------------------------------------------------------------------------


def test_cors_when_configured(store: SqliteStore) -> None:
    origin = "https://dash.example.com"
    app = build(store, cors_origins=[origin])
    resp = get(app, "/v1/zones", headers={"Origin": origin})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == origin
    assert "link" in resp.headers["access-control-expose-headers"].lower()
    other = get(app, "/v1/zones", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers

    async def preflight() -> httpx.Response:
        async with client_for(app) as client:
            return await client.options(
                "/v1/items",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )

    pre = asyncio.run(preflight())
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == origin
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()


def test_no_cors_headers_without_origins(store: SqliteStore) -> None:
    app = build(store)
    resp = get(app, "/v1/zones", headers={"Origin": "https://dash.example.com"})
    assert resp.status_code == 200
    assert "access-control-allow-origin" not in resp.headers


# -- OpenAPI --------------------------------------------------------------------------


def test_openapi_is_complete(store: SqliteStore) -> None:
    app = build(store)
    spec = get(app, "/openapi.json", token=None).json()
    assert spec["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from the gateway config (api.tokens).",
        }
    }
    paths = spec["paths"]
    assert set(paths) == {
        "/v1/items/{item}",
        "/v1/items",
        "/v1/zones",
        "/v1/zones/{zone}",
        "/v1/stock",
        "/v1/skus",
        "/v1/movements",
        "/v1/stream",
        "/healthz",
        "/readyz",
    }
    for path, methods in paths.items():
        op = methods["get"]
        assert op["summary"], path
        assert op["description"], path
        assert op["tags"], path
        ok = op["responses"]["200"]
        assert all("example" in media for media in ok["content"].values()), path
        for code, response in op["responses"].items():
            if code not in ("200", "422"):
                assert "example" in response["content"]["application/json"], (path, code)
        for param in op.get("parameters", []):
            assert param.get("description"), (path, param["name"])
            assert param["schema"].get("examples") or param.get("examples"), (path, param)
        if path in ("/healthz", "/readyz"):
            assert "security" not in op
        else:
            assert op["security"] == [{"bearer": []}]
            assert {"401", "403"} <= set(op["responses"])
    assert "text/event-stream" in paths["/v1/stream"]["get"]["responses"]["200"]["content"]
    item_schema = spec["components"]["schemas"]["ItemOut"]
    assert item_schema["examples"]


# -- the stream -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run the app on real uvicorn in this event loop, on a free port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done())
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def sse_messages(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """SSE messages as field dicts; comment lines go to 'comment'."""
    fields: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if fields:
                yield fields
                fields = {}
        elif line.startswith(":"):
            fields["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def changes_for(store: SqliteStore, first: int, count: int) -> list[PositionChange]:
    result = store.apply(
        [movement(i, "arrived", zone="dock", at=i) for i in range(first, first + count)]
    )
    assert len(result.changes) == count
    return result.changes


def test_stream_delivers_changes_published_after_connecting(store: SqliteStore) -> None:
    stream = Broadcaster(100, heartbeat_s=0.3)
    app = build(store, stream=stream)

    async def scenario() -> None:
        async with (
            serve(app) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/v1/stream", headers=auth(STREAM)) as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            messages = sse_messages(resp.aiter_lines())
            hello = await anext(messages)
            assert hello == {"retry": "5000", "comment": "connected"}
            assert stream.clients == 1

            # Consumer side: commit, then publish, as the gateway does.
            changes = changes_for(store, 0, 3)
            moved = store.apply([movement(1, "moved", zone="aisle-1", from_zone="dock", at=9)])
            stream.publish(changes)
            stream.publish(moved.changes)
            received: list[dict[str, str]] = []
            while len(received) < 8:
                msg = await anext(messages)
                if msg.get("comment") != "heartbeat":
                    received.append(msg)
            ids = [int(m["id"]) for m in received]
            assert ids == list(range(ids[0], ids[0] + 8))
            assert [m["event"] for m in received] == ["movement", "position"] * 4
            for change, (mov, pos) in zip(
                [*changes, *moved.changes],
                zip(received[::2], received[1::2], strict=True),
                strict=True,
            ):
                assert parse_message(mov["data"]) == [change.event]
                position = json.loads(pos["data"])
                assert position["item"] == change.item
                assert (position["from_zone"], position["to_zone"]) == (
                    change.from_zone,
                    change.to_zone,
                )
                assert position["event_id"] == change.event.event_id
            assert json.loads(received[-1]["data"])["from_zone"] == "dock"

            # Silence brings heartbeats.
            assert await anext(messages) == {"comment": "heartbeat"}
        # The client went away: its subscription ends.
        await until(lambda: stream.clients == 0)

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_slow_stream_client_is_disconnected_with_the_reason(store: SqliteStore) -> None:
    stream = Broadcaster(10, heartbeat_s=30)
    app = build(store, stream=stream)

    async def scenario() -> None:
        async with (
            serve(app) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/v1/stream", headers=auth(BOTH)) as resp,
        ):
            messages = sse_messages(resp.aiter_lines())
            assert (await anext(messages))["comment"] == "connected"
            # Eleven changes before the client could take any: it is one over its queue.
            stream.publish(changes_for(store, 0, 11))
            assert stream.stats.dropped_slow == 1
            assert stream.clients == 0
            rest = [m async for m in messages]
        (last,) = rest
        assert last["event"] == "disconnect"
        reason = json.loads(last["data"])["reason"]
        assert reason.startswith("slow consumer: more than 10 changes waiting")
        assert last["comment"].startswith("disconnected: slow consumer")

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_broadcaster_drops_only_the_client_that_falls_behind(store: SqliteStore) -> None:
    changes = changes_for(store, 0, 20)

    async def scenario() -> None:
        stream = Broadcaster(10, heartbeat_s=30)
        fast, slow = stream.frames(), stream.frames()
        assert (await anext(fast)).endswith(b": connected\n\n")
        await anext(slow)
        assert stream.clients == 2
        received: list[bytes] = []
        for start in range(0, 20, 4):
            stream.publish(changes[start : start + 4])  # never waits
            received += [await anext(fast) for _ in range(4)]
        assert stream.stats.dropped_slow == 1
        assert stream.clients == 1
        assert (await anext(slow)).startswith(b": disconnected: slow consumer")
        with pytest.raises(StopAsyncIteration):
            await anext(slow)
        # The healthy client got everything, rendered once for all clients.
        first_id = int(received[0].split(b"\n", 1)[0].removeprefix(b"id: "))
        assert received == [render_change(c, first_id + 2 * n) for n, c in enumerate(changes)]

        stream.close()
        assert b"server shutting down" in await anext(fast)
        with pytest.raises(StopAsyncIteration):
            await anext(fast)
        late = stream.frames()
        assert (await anext(late)).endswith(b": connected\n\n")
        assert b"server shutting down" in await anext(late)
        with pytest.raises(StopAsyncIteration):
            await anext(late)
        assert stream.clients == 0

    asyncio.run(scenario())


# -- movements ------------------------------------------------------------------------


def test_movements_without_influxdb_is_503(store: SqliteStore) -> None:
    app = build(store, movements=None)
    resp = get(app, "/v1/movements")
    assert resp.status_code == 503
    assert "unavailable" in resp.json()["detail"]


def test_movements_from_real_influxdb(store: SqliteStore, influxd: Influxd) -> None:
    influxd.query("CREATE DATABASE tagtrail")
    arrivals = [movement(i, "arrived", zone="dock", at=i) for i in range(10)]
    moves = [movement(i, "moved", zone="aisle-1", from_zone="dock", at=20 + i) for i in range(5)]
    store.apply([*arrivals, *moves])
    rows = store.pending_lines(100)
    influxd.write("tagtrail", "\n".join(line for _, line in rows))
    store.lines_done([seq for seq, _ in rows])

    async def scenario() -> None:
        query = InfluxQuery(InfluxV1Config(backend="v1", url=influxd.url, database="tagtrail"))
        app = build(store, movements=query)
        try:
            async with client_for(app) as client:

                async def movements(**params: Any) -> list[dict[str, Any]]:
                    resp = await client.get("/v1/movements", params=params, headers=auth(READ))
                    assert resp.status_code == 200, resp.text
                    body = resp.json()
                    assert body["count"] == len(body["movements"])
                    out: list[dict[str, Any]] = body["movements"]
                    return out

                everything = await movements(limit=100)
                assert [m["event_id"] for m in everything] == [
                    e.event_id for e in reversed([*arrivals, *moves])
                ]
                first = everything[0]
                assert (first["kind"], first["zone"], first["from_zone"]) == (
                    "moved",
                    "aisle-1",
                    "dock",
                )
                assert (first["epc"], first["item"]) == (epc_of(4), f"epc:{epc_of(4)}")
                assert first["rssi_dbm"] == moves[4].peak_rssi_dbm
                assert first["read_count"] == moves[4].read_count
                assert first["time"].startswith("2026-03-01T08:00:24")

                one = await movements(epc=epc_of(3).lower())
                assert [m["kind"] for m in one] == ["moved", "arrived"]
                assert len(await movements(zone="aisle-1")) == 5
                window = await movements(
                    since=(T0 + timedelta(seconds=2)).isoformat(),
                    until=(T0 + timedelta(seconds=5)).isoformat(),
                )
                assert [m["event_id"] for m in window] == [arrivals[i].event_id for i in (4, 3, 2)]
                assert len(await movements(limit=3)) == 3

                cases: list[tuple[dict[str, Any], int]] = [
                    ({"since": T0.isoformat(), "until": T0.isoformat()}, 400),
                    ({"until": "2026-03-01T08:00:00"}, 422),
                    ({"epc": "xyz"}, 400),
                    ({"limit": 0}, 422),
                    ({"limit": 10_001}, 422),
                ]
                for params, code in cases:
                    resp = await client.get("/v1/movements", params=params, headers=auth(READ))
                    assert resp.status_code == code, (params, resp.text)
                bad = await client.get(
                    "/v1/movements",
                    params={"since": T0.isoformat(), "until": T0.isoformat()},
                    headers=auth(READ),
                )
                assert bad.json()["detail"] == "since must be before until"

                influxd.stop()
                down = await client.get("/v1/movements", headers=auth(READ))
                assert down.status_code == 503
                assert "InfluxDB query failed" in down.json()["detail"]
        finally:
            await query.close()

    asyncio.run(scenario())


# -- stock per SKU ---------------------------------------------------------------------


def test_skus_with_filters_and_validation(store: SqliteStore) -> None:
    sgtin = "3074257BF7194E4000001A85"  # urn:epc:id:sgtin:0614141.812345.6789 (TDS)
    events = [
        Arrived.model_validate(
            {
                **movement(1, "arrived", zone="dock", at=1).model_dump(),
                "identity": {"scheme": "epc", "epc": sgtin},
                "epc": sgtin,
            }
        ),
        Arrived.model_validate(
            {
                **movement(2, "arrived", zone="aisle-3", at=1).model_dump(),
                "identity": {"scheme": "gtin_quantity", "gtin": "09506000134352", "quantity": 24},
                "epc": None,
            }
        ),
    ]
    store.apply(events)
    app = build(store)
    rows = get(app, "/v1/skus").json()["skus"]
    assert rows == [
        {"site": "wh1", "zone": "aisle-3", "gtin": "09506000134352", "count": 24},
        {"site": "wh1", "zone": "dock", "gtin": "80614141123458", "count": 1},
    ]
    assert get(app, "/v1/skus", params={"zone": "dock"}).json()["skus"] == rows[1:]
    # a GTIN-13 is padded to 14 digits
    one = get(app, "/v1/skus", params={"gtin": "9506000134352"}).json()["skus"]
    assert one == rows[:1]
    assert get(app, "/v1/skus", params={"site": "wh9"}).json()["skus"] == []
    bad = get(app, "/v1/skus", params={"gtin": "12AB"})
    assert bad.status_code in (400, 422)
    assert "gtin" in bad.text
