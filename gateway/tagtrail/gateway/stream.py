"""Fan-out of position changes to ``GET /v1/stream`` clients as Server-Sent Events.

The consumer calls :meth:`Broadcaster.publish` in the event loop after every committed
batch. Each change is rendered once into two SSE messages, shared by all clients:

* ``event: movement``: the movement event itself (the event contract's JSON);
* ``event: position``: the item's new position: ``item``, ``epc``, ``site``,
  ``from_zone``, ``to_zone`` (``null`` after a departure), ``present``, ``kind``,
  ``event_id`` and ``event_time``.

Each message has an ``id:`` (a counter shared by all clients of this gateway process;
the stream is live only, a reconnecting client catches up from the REST endpoints).
A comment line (``: heartbeat``) is sent when nothing happened for ``heartbeat_s``,
so proxies keep the connection open and dead clients are noticed.

Every client has its own bounded queue of ``queue_size`` changes. ``publish`` never
waits: a client whose queue is full has fallen behind, so it is dropped. Its backlog is
discarded and it gets a final ``event: disconnect`` whose data says why; the connection
then ends. :meth:`Broadcaster.close` ends every stream the same way (call it before
stopping the HTTP server, which otherwise waits for open streams).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from tagtrail.gateway.store import PositionChange

logger = logging.getLogger(__name__)

HEARTBEAT = b": heartbeat\n\n"
RETRY_MS = 5000
"""Reconnect delay suggested to clients (the SSE ``retry:`` field), milliseconds."""


@dataclass
class BroadcastStats:
    """Counters of a :class:`Broadcaster`."""

    published: int = 0
    clients: int = 0
    connects: int = 0
    dropped_slow: int = 0


def render_change(change: PositionChange, first_id: int) -> bytes:
    """The two SSE messages (``movement``, then ``position``) of one change."""
    event = change.event
    position = {
        "item": change.item,
        "epc": change.epc,
        "site": change.site,
        "from_zone": change.from_zone,
        "to_zone": change.to_zone,
        "present": change.to_zone is not None,
        "kind": event.kind,
        "event_id": event.event_id,
        "event_time": event.event_time.isoformat(),
    }
    return (
        f"id: {first_id}\nevent: movement\ndata: {event.model_dump_json()}\n\n"
        f"id: {first_id + 1}\nevent: position\n"
        f"data: {json.dumps(position, separators=(',', ':'))}\n\n"
    ).encode()


def render_disconnect(reason: str) -> bytes:
    """The final message of a stream the server ends."""
    data = json.dumps({"reason": reason}, separators=(",", ":"))
    return f": disconnected: {reason}\nevent: disconnect\ndata: {data}\n\n".encode()


class Subscription:
    """One stream client: its bounded queue and, once dropped, why."""

    __slots__ = ("queue", "reason")

    def __init__(self, queue_size: int) -> None:
        # None is the wake-up that follows a drop; the reason is in ``reason``.
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(queue_size)
        self.reason: str | None = None


class Broadcaster:
    """Publishes position changes to every subscribed stream, never blocking the caller.

    Used from one event loop: :meth:`publish`, :meth:`subscribe` and :meth:`close` are
    synchronous and must be called in the loop that serves the streams.
    """

    def __init__(self, queue_size: int = 1000, *, heartbeat_s: float = 15.0) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.stats = BroadcastStats()
        self._subs: set[Subscription] = set()
        self._next_id = 1
        self._closed = False

    @property
    def clients(self) -> int:
        """Number of connected stream clients."""
        return len(self._subs)

    def publish(self, changes: Sequence[PositionChange]) -> None:
        """Queue changes for every client; drop the clients that cannot take them."""
        if not changes or not self._subs:
            self._next_id += 2 * len(changes)
            return
        chunks = []
        for change in changes:
            chunks.append(render_change(change, self._next_id))
            self._next_id += 2
        self.stats.published += len(changes)
        for sub in list(self._subs):
            try:
                for chunk in chunks:
                    sub.queue.put_nowait(chunk)
            except asyncio.QueueFull:
                self.stats.dropped_slow += 1
                logger.warning(
                    "stream client fell %d changes behind; disconnecting it", self.queue_size
                )
                self._drop(
                    sub,
                    f"slow consumer: more than {self.queue_size} changes waiting; "
                    "reconnect and catch up from /v1/items",
                )

    def subscribe(self) -> Subscription:
        """A new client's subscription (already dropped if the broadcaster is closed)."""
        sub = Subscription(self.queue_size)
        self.stats.connects += 1
        if self._closed:
            self._drop(sub, "server shutting down")
        else:
            self._subs.add(sub)
            self.stats.clients = len(self._subs)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a client (its connection ended). Unknown subscriptions are ignored."""
        self._subs.discard(sub)
        self.stats.clients = len(self._subs)

    def _drop(self, sub: Subscription, reason: str) -> None:
        self.unsubscribe(sub)
        sub.reason = reason
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    def close(self) -> None:
        """End every stream with a ``disconnect`` message; later subscribers end at once."""
        self._closed = True
        for sub in list(self._subs):
            self._drop(sub, "server shutting down")

    async def frames(self) -> AsyncIterator[bytes]:
        """The body of one ``text/event-stream`` response.

        It subscribes when iteration starts and announces that with a ``: connected``
        comment, so a client knows every change published after it read that line will
        reach it. The subscription ends with the generator (client gone or dropped).
        """
        sub = self.subscribe()
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat_s):
                        chunk = await sub.queue.get()
                except TimeoutError:
                    yield HEARTBEAT
                    continue
                if chunk is None:
                    yield render_disconnect(sub.reason or "closed")
                    return
                yield chunk
        finally:
            self.unsubscribe(sub)
