"""Test helpers for the simulator: a raw pty client and a minimal frame splitter.

The splitter is deliberately tiny and independent of both tagtrail.sim and
tagtrail.readers: header byte, length, checksum, nothing else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCENARIOS = Path(__file__).resolve().parents[2] / "hardware-sim" / "scenarios"


def frame_ok(frame: bytes) -> bool:
    return (
        len(frame) >= 5
        and frame[0] == 0xA0
        and frame[1] + 2 == len(frame)
        and not (sum(frame) & 0xFF)
    )


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Split a stream that must hold only valid frames; return frames and an incomplete tail."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(buf):
        assert buf[pos] == 0xA0, f"no frame header at offset {pos}: {buf[pos:].hex(' ')}"
        if pos + 2 > len(buf):
            break
        end = pos + buf[pos + 1] + 2
        if end > len(buf):
            break
        frame = buf[pos:end]
        assert frame_ok(frame), f"bad frame {frame.hex(' ')}"
        frames.append(frame)
        pos = end
    return frames, buf[pos:]


def is_round_end(frame: bytes) -> bool:
    """End of an inventory reply: the 0x0A end frame or a 4-byte result (error) frame."""
    return frame[3] in (0x89, 0x8B) and frame[1] in (0x0A, 0x04)


async def until(cond: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll ``cond`` until it holds; fail after ``within_s`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.002)


class PtyClient:
    """The host side of a simulated reader: opens the pty slave like a serial port."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.buf = bytearray()
        self.received = bytearray()
        """Every byte received, never consumed."""
        self._more = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self.buf += data
        self.received += data
        self._more.set()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    async def wait_bytes(self, n: int, within_s: float = 10.0) -> bytes:
        """Wait until ``n`` bytes have arrived; return and consume them."""
        async with asyncio.timeout(within_s):
            while len(self.buf) < n:
                self._more.clear()
                await self._more.wait()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def frames(self, count: int, within_s: float = 10.0) -> list[bytes]:
        """Wait for exactly ``count`` valid frames."""
        async with asyncio.timeout(within_s):
            while True:
                frames, _ = split_frames(bytes(self.buf))
                if len(frames) >= count:
                    break
                self._more.clear()
                await self._more.wait()
        taken = frames[:count]
        del self.buf[: sum(len(f) for f in taken)]
        return taken

    async def round_reply(self, within_s: float = 10.0) -> list[bytes]:
        """Wait for a whole inventory reply (valid frames up to the round's end)."""
        async with asyncio.timeout(within_s):
            while True:
                frames, _ = split_frames(bytes(self.buf))
                ends = [i for i, f in enumerate(frames) if is_round_end(f)]
                if ends:
                    break
                self._more.clear()
                await self._more.wait()
        taken = frames[: ends[0] + 1]
        del self.buf[: sum(len(f) for f in taken)]
        return taken

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        os.close(self.fd)

    def __enter__(self) -> PtyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def command(op: int, *data: int, address: int = 1) -> bytes:
    """A host command frame, built here independently of the simulator's encoder."""
    body = bytes([0xA0, len(data) + 3, address, op, *data])
    return body + bytes([-sum(body) & 0xFF])
