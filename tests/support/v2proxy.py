"""TEST-ONLY HTTP proxies in front of the influxd 1.6 test fixture.

:class:`V2CompatProxy` is an EMULATION of InfluxDB 1.8's ``/api/v2/write``
compatibility endpoint, the one the influxdb-client v2 libraries use against 1.8+. It
exists only because InfluxDB 1.8+, 2.x and 3.x cannot be installed here (Debian ships
1.6), so the ``v2`` write backend is tested through it:

* ``POST /api/v2/write?org=&bucket=db/rp&precision=ns|us|ms|s`` is forwarded as
  ``POST /write?db=db&rp=rp&precision=n|u|ms|s`` (``org`` is ignored, as 1.8 does; a
  bucket without ``/`` means the database's default retention policy);
* ``Authorization: Token user:password`` becomes 1.x ``u``/``p`` credentials, as 1.8
  maps them;
* the answer (status, body, ``X-Influxdb-Error``) is passed back unchanged, which is
  what 1.8 does (its errors are 1.x ``{"error": ...}`` bodies);
* ``GET /ping`` and ``/health`` are forwarded.

It is not a product component and emulates nothing else of 1.8.

:class:`ForwardingServer` is the shared base: a ``ThreadingHTTPServer`` on a free port in
a thread that forwards requests with ``http.client``. When the upstream does not answer
it drops the client's connection without a response, so the client sees what it would
see with the server down (a connection error), not a proxy's 502.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

_PASS_HEADERS = ("Content-Type", "X-Influxdb-Error", "X-Influxdb-Version", "Retry-After")
_PRECISIONS = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


class Forwarded:
    """An answer to send back to the client."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class ForwardingServer:
    """A test-only HTTP server on 127.0.0.1 that forwards to ``upstream``.

    Subclasses override :meth:`handle` to answer or rewrite a request; ``requests``
    records ``(method, path_with_query, headers, body)`` of every request received.
    """

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                with outer._lock:
                    outer.requests.append((self.command, self.path, headers, body))
                answer = outer.handle(self.command, self.path, headers, body)
                if answer is None:  # upstream down: behave like it
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if answer.body:
                    self.wfile.write(answer.body)

            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"proxy-{self.port}", daemon=True
        )
        self._thread.start()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Forwarded | None:
        """Send the request upstream; None if the upstream does not answer."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            send = {k: v for k, v in headers.items() if k.lower() in _FORWARD_REQUEST_HEADERS}
            conn.request(method, path, body=body or None, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k in _PASS_HEADERS}
            return Forwarded(resp.status, data, out)
        except OSError:
            return None
        finally:
            conn.close()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Forwarded | None:
        return self.forward(method, path, headers, body)

    def paths(self) -> list[str]:
        with self._lock:
            return [urllib.parse.urlsplit(p).path for _, p, _, _ in self.requests]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_FORWARD_REQUEST_HEADERS = {"content-type", "content-encoding", "authorization", "accept"}


class V2CompatProxy(ForwardingServer):
    """EMULATION of InfluxDB 1.8's ``/api/v2/write`` in front of influxd 1.6 (test-only).

    See the module docstring for what is mapped and why it exists.
    """

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Forwarded | None:
        url = urllib.parse.urlsplit(path)
        if url.path in ("/ping", "/health"):
            return self.forward(method, url.path, {}, b"")
        if url.path != "/api/v2/write" or method != "POST":
            return Forwarded(404, b'{"error":"not emulated"}', {"Content-Type": "application/json"})
        query = urllib.parse.parse_qs(url.query)
        bucket = query.get("bucket", [""])[0]
        if not bucket:
            return Forwarded(
                400, b'{"error":"bucket is required"}', {"Content-Type": "application/json"}
            )
        database, _, rp = bucket.partition("/")
        params = {"db": database}
        if rp:
            params["rp"] = rp
        precision = query.get("precision", ["ns"])[0]
        if precision not in _PRECISIONS:
            return Forwarded(
                400, b'{"error":"invalid precision"}', {"Content-Type": "application/json"}
            )
        params["precision"] = _PRECISIONS[precision]
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        if auth.startswith("Token ") and ":" in auth:
            user, _, password = auth[len("Token ") :].partition(":")
            params["u"], params["p"] = user, password
        forward_headers = {
            k: v for k, v in headers.items() if k.lower() in ("content-type", "content-encoding")
        }
        return self.forward(
            "POST", "/write?" + urllib.parse.urlencode(params), forward_headers, body
        )
