"""Log records from a camera's capture and decode threads carry the reader's id, like the
rest of the driver's (the threads run in a copy of the driver task's context)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from tagtrail import logsetup
from tagtrail.clock import ManualClock
from tagtrail.readers.camera import CameraReader
from tagtrail.readers.config import CameraReaderConfig


class _Records(logging.Handler):
    """Keeps records; wakes the test's loop when one comes from a capture thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, arrived: asyncio.Event) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.loop = loop
        self.arrived = arrived
        self.addFilter(logsetup.ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if (record.threadName or "").endswith("-capture"):
            self.loop.call_soon_threadsafe(self.arrived.set)


def test_thread_records_carry_the_reader(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"not an image")
    config = CameraReaderConfig.model_validate(
        {"type": "camera", "id": "cam-log", "source": str(tmp_path), "zone": "dock"}
    )
    logger = logging.getLogger("tagtrail.readers")
    old_level = logger.level
    records: list[logging.LogRecord] = []

    async def main_() -> None:
        arrived = asyncio.Event()
        handler = _Records(asyncio.get_running_loop(), arrived)
        logger.addHandler(handler)
        logsetup.bind(reader="cam-log")
        reader = CameraReader(config, ManualClock(), lambda read: None)
        task = asyncio.create_task(reader.run())
        try:
            async with asyncio.timeout(20):
                await arrived.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            logger.removeHandler(handler)
            records.extend(r for r in handler.records if (r.threadName or "").endswith("-capture"))

    logger.setLevel(logging.INFO)
    try:
        asyncio.run(main_())
    finally:
        logger.setLevel(old_level)
    record = records[0]
    assert "not a decodable image" in record.getMessage()
    assert getattr(record, "reader", None) == "cam-log"
