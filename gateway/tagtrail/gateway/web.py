"""The gateway's live web view: one page at ``/`` with stock per zone and a live movement feed.

The page is three static files shipped in the package (``web/index.html``, ``web/app.js``,
``web/style.css``, plus ``web/icon.svg``), plain HTML, CSS and JavaScript with no build step.
They are read once when the app is built and served from memory with an ``ETag``.

Token handling. A browser cannot put an ``Authorization`` header on a navigation or on an
``EventSource``, and a token in a query string ends up in server and proxy logs. So:

* The shell served here is the same for everyone and carries **no data**; it needs no
  token. Every piece of data comes from the API, which still wants the bearer token.
* The user gives the token once, in the page's form or as ``/#token=...``: a URL fragment
  never leaves the browser. The script moves it to ``sessionStorage`` (this tab only) and
  removes the fragment from the address bar and history.
* REST calls are ``fetch`` with ``Authorization: Bearer``; the stream is read with
  ``fetch`` and a ``ReadableStream`` SSE parser (not ``EventSource``), which sends
  ``Last-Event-ID`` when it reconnects. A 401/403 stops everything and the page says why.

Every response here carries a strict Content-Security-Policy: scripts and styles only from
this origin (no inline script or style), connections only to this origin, no frames, no
form submission (the token form is handled by the script, so a token can never be sent in
a URL even if the script failed).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request, Response

from tagtrail.errors import TagtrailError

__all__ = ["ASSETS", "CSP", "Asset", "load_assets", "web_router"]

logger = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of the page and its assets."""

ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""The web view's files (in ``tagtrail/gateway/webui/``) and their media types."""

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    """One static file, in memory."""

    body: bytes
    media_type: str
    etag: str

    def response(self, request: Request) -> Response:
        """The file, or 304 when the client's ``If-None-Match`` names this version."""
        headers = {**_HEADERS, "ETag": self.etag}
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def load_assets() -> dict[str, Asset]:
    """Read the web view's files from the installed package.

    Raises :class:`TagtrailError` when one is missing (a package built without its data).
    """
    folder = files("tagtrail.gateway").joinpath("webui")
    out: dict[str, Asset] = {}
    for name, media_type in ASSETS.items():
        try:
            body = folder.joinpath(name).read_bytes()
        except OSError as exc:
            raise TagtrailError(
                f"web view file {name!r} is missing from the tagtrail.gateway package: "
                "reinstall tagtrail (its package data holds tagtrail/gateway/webui/*)"
            ) from exc
        digest = hashlib.sha256(body).hexdigest()[:20]
        out[name] = Asset(body, media_type, f'"{digest}"')
    return out


def web_router() -> APIRouter:
    """Routes ``GET /`` (the page) and ``GET /web/{name}`` (its assets); not in OpenAPI."""
    assets = load_assets()
    router = APIRouter(include_in_schema=False)
    page = assets["index.html"]

    @router.get("/")
    async def index(request: Request) -> Response:
        return page.response(request)

    @router.get("/web/{name}")
    async def asset(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None or found is page:
            raise HTTPException(status_code=404, detail=f"no web asset {name!r}")
        return found.response(request)

    logger.debug("web view: %d files", len(assets))
    return router
