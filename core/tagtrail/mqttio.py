"""Driving one paho-mqtt 2.x client from an asyncio event loop, without paho threads.

paho's socket callbacks (``on_socket_close``, ``on_socket_register_write``,
``on_socket_unregister_write``) register the client's socket with the event loop, which
calls ``loop_read`` / ``loop_write`` when it is readable / writable; a small task calls
``loop_misc`` once a second for keep-alive. Only the blocking TCP (and TLS) connect runs
in the default executor; the socket is attached to the loop in the loop's thread once it
returns. This is the model of paho's ``examples/loop_asyncio.py`` and of aiomqtt.

:class:`PahoLoop` is one connection: build a fresh paho ``Client`` per connection,
``await connect(...)``, then wait on :attr:`PahoLoop.closed`. Every paho callback runs in
the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTErrorCode

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike
    from paho.mqtt.properties import Properties

logger = logging.getLogger(__name__)

READ_BURST_PACKETS = 256
"""Most packets read in one wake-up before yielding to the event loop."""

MISC_INTERVAL_S = 1.0
"""How often paho's ``loop_misc`` (keep-alive, ping timeout) runs."""

AUTH_REASONS = {0x86, 0x87, 0x8C}
"""CONNACK reasons that mean the credentials are wrong: bad user name or password, not
authorized, bad authentication method."""


class TrackingSSLContext(ssl.SSLContext):
    """An SSL context that remembers the last socket it wrapped.

    paho's connect() wraps the TCP socket and runs the TLS handshake itself; when the
    handshake fails paho leaves that socket open. Remembering it lets us close it.
    """

    last_socket: ssl.SSLSocket | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.last_socket = sock
        return sock

    def close_last(self, keep: object = None) -> None:
        sock, self.last_socket = self.last_socket, None
        if sock is not None and sock is not keep:
            with contextlib.suppress(OSError):
                sock.close()


def make_ssl_context(ca_file: str | None) -> TrackingSSLContext | None:
    """A verifying TLS client context for ``ca_file``, or None for plain TCP."""
    if ca_file is None:
        return None
    context = TrackingSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca_file)
    return context


class PahoLoop:
    """Runs one paho ``Client`` connection on the current asyncio loop."""

    def __init__(
        self,
        client: Client,
        *,
        name: str,
        ssl_context: TrackingSSLContext | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.closed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ssl_context = ssl_context
        self._on_close = on_close
        self._fd: int | None = None
        self._writing = False
        self._misc_task: asyncio.Task[None] | None = None
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write

    @property
    def open(self) -> bool:
        return self._fd is not None

    async def connect(
        self,
        host: str,
        port: int,
        *,
        keepalive: int,
        clean_start: bool,
        properties: Properties | None = None,
    ) -> None:
        """TCP/TLS connect and send CONNECT. Raises ``OSError`` when that fails."""
        if self._ssl_context is not None:
            self._ssl_context.last_socket = None
        client = self.client
        fut = self._loop.run_in_executor(
            None,
            lambda: client.connect(
                host, port, keepalive=keepalive, clean_start=clean_start, properties=properties
            ),
        )
        try:
            rc = await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(lambda _f: self._abandon())
            raise
        except (OSError, ValueError) as exc:
            self._abandon()
            raise OSError(str(exc)) from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._abandon()
            raise OSError(f"paho connect returned {rc!s}")
        sock = client.socket()
        if sock is None:
            raise OSError("paho connect returned no socket")
        self._attach(sock)

    def drop(self) -> None:
        """Close the socket without DISCONNECT (the broker then sends any will)."""
        sock = self.client.socket()
        self._detach()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # -- internals ---------------------------------------------------------------------

    def _attach(self, sock: SocketLike) -> None:
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._on_readable)
        if self.client.want_write():
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)
        self._misc_task = self._loop.create_task(self._misc(), name=f"{self.name}-misc")

    def _detach(self) -> None:
        if self._fd is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        was_open = self._fd is not None
        self._fd = None
        self._writing = False
        if self._misc_task is not None and self._misc_task is not asyncio.current_task():
            self._misc_task.cancel()
        self._misc_task = None
        self.closed.set()
        if was_open and self._on_close is not None:
            self._on_close()

    def _abandon(self) -> None:
        self.closed.set()
        sock = self.client.socket()
        if self._ssl_context is not None:
            self._ssl_context.close_last(keep=sock)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    async def _misc(self) -> None:
        while self.open:
            await asyncio.sleep(MISC_INTERVAL_S)
            if not self.open or self.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return

    def _on_readable(self) -> None:
        # paho reads one packet per loop_read(); keep reading while more is buffered, so
        # callers see a burst of messages in one go (a consumer can then apply them in
        # one transaction), up to a bound that keeps the event loop responsive.
        try:
            for _ in range(READ_BURST_PACKETS):
                self.client.loop_read()
                sock = self.client.socket()
                if not self.open or sock is None:
                    return
                if isinstance(sock, ssl.SSLSocket) and sock.pending():
                    continue
                if not select.select([sock], [], [], 0)[0]:
                    return
            self._loop.call_soon(self._on_readable)
        except Exception:
            logger.exception("%s: error while reading; dropping the connection", self.name)
            if self.open:
                self.drop()

    def _on_writable(self) -> None:
        try:
            self.client.loop_write()
        except Exception:
            logger.exception("%s: error while writing; dropping the connection", self.name)
            if self.open:
                self.drop()

    def _on_socket_open(self, client: Client, userdata: Any, sock: SocketLike) -> None:
        return  # runs in the executor during connect(); connect() attaches afterwards

    def _on_socket_close(self, client: Client, userdata: Any, sock: SocketLike) -> None:
        if self.open:
            self._detach()

    def _on_socket_register_write(self, client: Client, userdata: Any, sock: SocketLike) -> None:
        if self._fd is not None and not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_socket_unregister_write(self, client: Client, userdata: Any, sock: SocketLike) -> None:
        if self._fd is not None and self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
