"""Injected clocks.

Code that needs the time takes a :class:`Clock` instead of calling ``time`` or
``datetime.now`` itself, so that tests and simulations drive it without patching.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock and monotonic time."""

    def now(self) -> datetime:
        """Aware UTC wall-clock time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The machine's own clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ScaledClock:
    """A clock running ``scale`` times faster than real time from its creation.

    Used when the hardware simulator replays a scenario faster than real time: the edge
    agent then measures windows and timeouts in scenario seconds.
    """

    def __init__(self, scale: float, start: datetime | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._t0 = time.monotonic()
        self._start = start if start is not None else datetime.now(UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.scale

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())


class ManualClock:
    """A clock that moves only when told to. For tests and offline replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start if start is not None else datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self._elapsed += seconds

    def set(self, elapsed: float) -> None:
        if elapsed < self._elapsed:
            raise ValueError("a clock never goes backwards")
        self._elapsed = elapsed

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)
