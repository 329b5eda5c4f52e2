"""The keyboard-wedge driver on a real kernel input device made with uinput.

Runs where the kernel offers ``/dev/uinput`` (a desktop or a CI runner with the uinput
module). The machines this project is built on have no uinput and no /dev/input at all,
and nothing a test could install provides one; there the key-event path is covered by
recorded event streams (test_scanner_drivers.py, tests/vectors/hid/) and this module is
skipped with that reason, in CI too. What only this module shows: the exclusive grab
(EVIOCGRAB) on a real device and that a second grab is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagtrail.clock import ManualClock
from tagtrail.readers.config import HidScannerConfig
from tagtrail.readers.hid import HidScanner, open_evdev
from tests.support import keyboard as kb
from tests.support.ptypeer import Recorder

UINPUT = Path("/dev/uinput")
UI_SET_EVBIT = 0x40045564
UI_SET_KEYBIT = 0x40045565
UI_DEV_SETUP = 0x405C5503
UI_DEV_CREATE = 0x5501
UI_DEV_DESTROY = 0x5502
UI_GET_SYSNAME_64 = 0x8040552C

pytestmark = pytest.mark.skipif(
    not os.access(UINPUT, os.W_OK),
    reason="the kernel offers no writable /dev/uinput here (see module docstring)",
)


@contextlib.contextmanager
def virtual_keyboard() -> Iterator[tuple[int, Path]]:
    fd = os.open(UINPUT, os.O_WRONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, UI_SET_EVBIT, kb.EV_KEY)
        for code in range(1, 128):
            fcntl.ioctl(fd, UI_SET_KEYBIT, code)
        setup = struct.pack("<HHHH80sI", 0x03, 0x1234, 0x5678, 1, b"tagtrail test scanner", 0)
        fcntl.ioctl(fd, UI_DEV_SETUP, setup)
        fcntl.ioctl(fd, UI_DEV_CREATE)
        sysname = fcntl.ioctl(fd, UI_GET_SYSNAME_64, bytes(64)).split(b"\0")[0].decode()
        sys_dir = Path("/sys/devices/virtual/input") / sysname
        events = sorted(p.name for p in sys_dir.iterdir() if p.name.startswith("event"))
        yield fd, Path("/dev/input") / events[0]
    finally:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, UI_DEV_DESTROY)
        os.close(fd)


def test_grabbed_uinput_keyboard_scans_and_refuses_a_second_grab(tmp_path: Path) -> None:
    sscc = "]C100106141411234567897"

    async def main_() -> tuple[Recorder, str]:
        rec = Recorder()
        with virtual_keyboard() as (fd, node):
            cfg = HidScannerConfig.model_validate(
                {"type": "hid", "id": "wedge", "device": str(node), "zone": "dock"}
            )
            driver = HidScanner(cfg, ManualClock(), rec.on_read, rec.on_state)
            task = asyncio.create_task(driver.run())
            try:
                await rec.until(rec.online)
                with pytest.raises(OSError, match="EBUSY") as refused:
                    open_evdev(str(node), grab=True)
                os.write(fd, kb.type_scan(sscc))
                await rec.until(lambda: len(rec.reads) == 1)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            return rec, str(refused.value)

    rec, refusal = asyncio.run(main_())
    assert rec.reads[0].epc == "sscc:106141411234567897"
    assert "another program has grabbed it" in refusal
