"""The web view's HTTP side: the page at ``/`` and its assets, through the real app.

The page is a static shell: it must carry a strict CSP, no inline script or style (the CSP
would block them), and no data; the data stays behind the API's bearer token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tagtrail.gateway.store import SqliteStore
from tagtrail.gateway.web import ASSETS, CSP, load_assets
from tests.gateway.test_api import BOTH, READ, UNKNOWN, build, get, populate
from tests.gateway.test_store import epc_of, open_store

WEB = Path(__file__).resolve().parents[2] / "gateway" / "tagtrail" / "gateway" / "webui"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "gw.sqlite") as s:
        populate(s)
        yield s


class PageParser(HTMLParser):
    """Collects what the CSP cares about: scripts, styles, inline handlers, links."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = ""
        self.style_blocks = 0
        self.style_attrs: list[str] = []
        self.handlers: list[str] = []
        self.refs: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
            self._in_script = True
        if tag == "style":
            self.style_blocks += 1
        for name, _ in attrs:
            if name == "style":
                self.style_attrs.append(tag)
            if name.startswith("on"):
                self.handlers.append(f"{tag}.{name}")
        for name in ("src", "href"):
            value = found.get(name)
            if value and not value.startswith("#"):
                self.refs.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data.strip()


def test_page_has_a_strict_csp_and_no_data(store: SqliteStore) -> None:
    app = build(store)
    page = get(app, "/", token=None)  # the shell needs no token: it holds nothing
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert csp == CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["form-action"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"

    parsed = PageParser()
    parsed.feed(page.text)
    assert parsed.scripts == [{"src": "web/app.js", "defer": None}]
    assert parsed.inline_script == ""
    assert (parsed.style_blocks, parsed.style_attrs, parsed.handlers) == (0, [], [])
    # no data: not one zone, item or token of the populated store is in the page
    for secret in ("aisle-1", "wh2", epc_of(1), READ, BOTH):
        assert secret not in page.text
    assert page.text == (WEB / "index.html").read_text()


def test_assets_load_with_their_types_and_revalidate(store: SqliteStore) -> None:
    app = build(store)
    parsed = PageParser()
    parsed.feed(get(app, "/", token=None).text)
    assert sorted(parsed.refs) == [
        "web/app.js",
        "web/icon.svg",
        "web/icon.svg",
        "web/style.css",
    ]
    for ref in set(parsed.refs):
        name = ref.removeprefix("web/")
        resp = get(app, f"/{ref}", token=None)
        assert resp.status_code == 200, ref
        assert resp.headers["content-type"] == ASSETS[name]
        assert resp.headers["content-security-policy"] == CSP
        assert resp.content == (WEB / name).read_bytes()
        etag = resp.headers["etag"]
        again = get(app, f"/{ref}", token=None, headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b"")
        changed = get(app, f"/{ref}", token=None, headers={"If-None-Match": '"other"'})
        assert changed.status_code == 200
    for unknown in ("/web/index.html", "/web/nope.js", "/web/..%2Fweb.py", "/web/"):
        assert get(app, unknown, token=None).status_code == 404, unknown


def test_every_shipped_file_is_served() -> None:
    """What ``tagtrail/gateway/webui/`` holds is exactly what the router serves (and so
    what the package data must include)."""
    assert sorted(p.name for p in WEB.iterdir()) == sorted(ASSETS)
    assets = load_assets()
    assert {n: a.body for n, a in assets.items()} == {n: (WEB / n).read_bytes() for n in ASSETS}
    assert len({a.etag for a in assets.values()}) == len(assets)


def test_the_api_still_wants_a_token(store: SqliteStore) -> None:
    app = build(store)
    for path in ("/v1/zones", "/v1/stock", "/v1/items", "/v1/stream"):
        refused = get(app, path, token=None)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer"
        assert get(app, path, token=UNKNOWN).status_code == 401, path
    zones = get(app, "/v1/zones", token=READ)
    assert zones.status_code == 200
    assert {"site": "wh1", "zone": "aisle-1", "count": 3} in zones.json()["zones"]
    # the page is not part of the API's contract
    paths = get(app, "/openapi.json", token=None).json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/web") for p in paths)


def test_the_script_calls_only_documented_endpoints(store: SqliteStore) -> None:
    """app.js uses relative URLs (so the view works under a path prefix) to endpoints the
    API documents, and keeps the token out of URLs."""
    script = (WEB / "app.js").read_text()
    called = set(re.findall(r'api\("(v1/[a-z/]+)"', script))
    assert called == {"v1/zones", "v1/stream"}
    paths = get(build(store), "/openapi.json", token=None).json()["paths"]
    assert {"/" + c for c in called} <= set(paths)
    assert "new EventSource" not in script
    assert "?token" not in script
    assert "Last-Event-ID" in script
    assert "sessionStorage" in script
