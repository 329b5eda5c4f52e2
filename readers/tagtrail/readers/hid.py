"""Asyncio driver for USB HID keyboard-wedge scanners, read through Linux evdev.

The scanner is a keyboard. The driver opens its evdev node (``/dev/input/eventN``; use a
stable ``/dev/input/by-id/...-event-kbd`` path) non-blocking and, with ``grab`` on (the
default), takes it exclusively with the ``EVIOCGRAB`` ioctl, so its keystrokes reach no
console, X or Wayland session and type into no other application while tagtrail runs.
Closing the device (stop, unplug) releases the grab.

The key events (``struct input_event`` records) are decoded by
:mod:`tagtrail.readers.protocols.hid` into scans and interpreted by
:class:`~tagtrail.readers.scanner.ScanInterpreter`, exactly as for a serial line scanner.
Everything else is :class:`~tagtrail.readers.serial_base.SerialReader`'s: ``add_reader`` on
the descriptor (no threads, no polling), idle flush of a scan typed without its end key,
reconnect with backoff when the device goes away (unplugged: ENODEV on read, or the node
missing when reopening).

The device needs read permission for the agent's user: a udev rule such as
``SUBSYSTEM=="input", ATTRS{idVendor}=="0c2e", MODE="0640", GROUP="tagtrail"`` (see
docs/readers.md). Errors are reported with their cause: a grab refused because another
program holds the device (EBUSY), or a path that is not an evdev device (ENOTTY/EINVAL).

This is the kernel's evdev interface used directly (``os.open``, ``fcntl.ioctl``); no
binding library is needed for reading.
"""

from __future__ import annotations

import errno
import fcntl
import os

from tagtrail.clock import Clock
from tagtrail.readers.config import HidScannerConfig
from tagtrail.readers.model import ReadCallback, StateCallback
from tagtrail.readers.protocols.base import StreamDecoderLike
from tagtrail.readers.protocols.hid import HidDecoder
from tagtrail.readers.scanner import ScannerReader
from tagtrail.readers.serial_base import RATE_WINDOW_S, Link

EVIOCGRAB = 0x40044590
"""``_IOW('E', 0x90, int)`` from linux/input.h: grab (1) or release (0) a device."""


class _EvdevLink:
    """An open evdev node: its descriptor, closed once."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def open_evdev(path: str, grab: bool) -> Link:
    """Open ``path`` non-blocking and, if ``grab``, take it exclusively.

    Raises ``OSError`` whose message says what went wrong.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if grab:
        try:
            fcntl.ioctl(fd, EVIOCGRAB, 1)
        except OSError as exc:
            os.close(fd)
            if exc.errno == errno.EBUSY:
                why = "another program has grabbed it (EBUSY)"
            elif exc.errno in (errno.ENOTTY, errno.EINVAL):
                why = "it is not an evdev input device"
            else:
                why = str(exc)
            raise OSError(exc.errno, f"cannot grab {path}: {why}") from exc
    return _EvdevLink(fd)


class HidScanner(ScannerReader):
    """One keyboard-wedge scanner on one evdev node. Implements ``ReaderDriver``."""

    reader_type = "hid"

    def __init__(
        self,
        config: HidScannerConfig,
        clock: Clock,
        on_read: ReadCallback,
        on_state: StateCallback | None = None,
        *,
        idle_flush_s: float = 0.2,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._cfg = config  # the decoder, made in the base's __init__, reads it
        super().__init__(
            config,
            clock,
            on_read,
            on_state,
            idle_flush_s=idle_flush_s,
            rate_window_s=rate_window_s,
        )

    def _new_decoder(self) -> StreamDecoderLike:
        return HidDecoder(suffix=self._cfg.suffix, aim=self._cfg.aim)

    def _open_link(self) -> Link:
        return open_evdev(self._cfg.device, self._cfg.grab)
