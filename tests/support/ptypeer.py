"""The device end of a real pseudo-terminal, and a recorder of what a driver reports.

Driver tests put a :class:`PtyPeer` where the reader would be: the driver opens the pty's
slave through a symlink (so a test can "unplug" the reader and plug a new one in at the
same path), the peer parses what the driver sends with the simulator's own command parser
and answers with the simulator's own encoders.
"""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from tagtrail.readers.model import RawRead, ReaderSnapshot

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


async def until(event: asyncio.Event, condition: Callable[[], bool], within_s: float) -> None:
    """Wait, woken by ``event``, until ``condition`` holds; fail after ``within_s``."""
    async with asyncio.timeout(within_s):
        while not condition():
            event.clear()
            await event.wait()


class CommandParser(Protocol[C_co]):
    def feed(self, data: bytes) -> Iterable[C_co]: ...


class PtyPeer(Generic[C]):
    """A pty whose master end parses commands, records them and writes ``answer``'s replies."""

    def __init__(self, link: Path, parser: CommandParser[C], answer: Callable[[C], bytes]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.parser = parser
        self.answer = answer
        self.raw = bytearray()
        self.commands: list[C] = []
        self.changed = asyncio.Event()
        self.closed = False
        tmp = link.with_name(link.name + ".new")
        os.symlink(os.ttyname(self.slave), tmp)
        tmp.replace(link)
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self.raw += data
        for cmd in self.parser.feed(data):
            self.commands.append(cmd)
            self.changed.set()
            reply = self.answer(cmd)
            if reply:
                os.write(self.master, reply)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def until(self, condition: Callable[[], bool], within_s: float = 10.0) -> None:
        await until(self.changed, condition, within_s)

    def close(self) -> None:
        """Unplug: both ends of the pty close, the driver's port fails."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.slave)
        os.close(self.master)


class Recorder:
    """The driver's callbacks: every read and every state change, in order."""

    def __init__(self) -> None:
        self.reads: list[RawRead] = []
        self.states: list[ReaderSnapshot] = []
        self.changed = asyncio.Event()

    def on_read(self, read: RawRead) -> None:
        self.reads.append(read)
        self.changed.set()

    def on_state(self, snap: ReaderSnapshot) -> None:
        self.states.append(snap)
        self.changed.set()

    async def until(self, condition: Callable[[], bool], within_s: float = 10.0) -> None:
        await until(self.changed, condition, within_s)

    def online(self) -> bool:
        return bool(self.states) and self.states[-1].state == "online"
