"""Handheld scanner drivers against a scanner on a real pseudo-terminal.

The line-mode scanner writes its lines into the pty; the keyboard-wedge scanner's key
events (``struct input_event`` records typed by tests/support/keyboard.py) arrive the same
way, with the exclusive grab off because a pty is not an evdev device. (The grab itself is
tested on a real uinput keyboard where the kernel offers /dev/uinput; this machine's does
not, see test_hid_uinput.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

from tagtrail.clock import ManualClock
from tagtrail.events import CodeIdentity, GtinSerialIdentity, ItemAttributes, SsccIdentity
from tagtrail.readers.ascii import AsciiScanner
from tagtrail.readers.config import AsciiScannerConfig, HidScannerConfig
from tagtrail.readers.hid import HidScanner
from tagtrail.readers.serial_base import SerialReader
from tests.support import keyboard as kb
from tests.support.ptypeer import PtyPeer, Recorder

SSCC = "]C100106141411234567897"
GTIN_SERIAL = "]d201095011010209171719050810ABCD1234\x1d2110"
EPC = "E200301666130121155074EF"
BAD_CHECK_DIGIT = "]C100106141411234567898"
LOCATION = "]C0LOC-A-01"


class _Ignore:
    def feed(self, data: bytes) -> list[bytes]:
        return []


def scanner(link: Path) -> PtyPeer[bytes]:
    return PtyPeer(link, _Ignore(), lambda _: b"")


def ascii_config(link: Path, **extra: Any) -> AsciiScannerConfig:
    return AsciiScannerConfig.model_validate(
        {
            "type": "ascii",
            "id": "gun-1",
            "port": str(link),
            "zone": "dock-a",
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
            **extra,
        }
    )


def hid_config(device: Path, **extra: Any) -> HidScannerConfig:
    return HidScannerConfig.model_validate(
        {
            "type": "hid",
            "id": "wedge-1",
            "device": str(device),
            "zone": "dock-b",
            "grab": False,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
            **extra,
        }
    )


Scenario = Callable[[Recorder, Path], Coroutine[Any, Any, None]]


async def poll(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Wait for a driver counter (no callback announces one), failing after ``within_s``."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - counters change without an event
            await asyncio.sleep(0.01)


def run(
    make: Callable[[ManualClock, Recorder], SerialReader[Any]], scenario: Scenario, link: Path
) -> tuple[SerialReader[Any], Recorder]:
    clock = ManualClock()

    async def main_() -> tuple[SerialReader[Any], Recorder]:
        rec = Recorder()
        driver = make(clock, rec)
        task = asyncio.create_task(driver.run())
        try:
            await scenario(rec, link)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return driver, rec

    return asyncio.run(main_())


def test_line_scanner_reads_identities_epcs_and_counts_the_rest(tmp_path: Path) -> None:
    link = tmp_path / "ttyACM0"
    made: list[AsciiScanner] = []

    def make(clock: ManualClock, rec: Recorder) -> AsciiScanner:
        made.append(
            AsciiScanner(ascii_config(link), clock, rec.on_read, rec.on_state, idle_flush_s=0.1)
        )
        return made[0]

    async def scenario(rec: Recorder, link: Path) -> None:
        peer = scanner(link)
        try:
            await rec.until(rec.online)
            for line in (SSCC, GTIN_SERIAL, EPC, BAD_CHECK_DIGIT, LOCATION, "A\x07B"):
                peer.write(line.encode() + b"\r")
            await rec.until(lambda: len(rec.reads) == 4)
            peer.write(SSCC.encode())  # no CR: flushed as truncated when the line idles
            await poll(lambda: made[0].snapshot().error_counts.get("truncated") == 1)
            peer.write(SSCC.encode() + b"\r")
            await rec.until(lambda: len(rec.reads) == 5)
        finally:
            peer.close()

    driver, rec = run(make, scenario, link)
    assert [r.identity for r in rec.reads] == [
        SsccIdentity(scheme="sscc", sscc="106141411234567897"),
        GtinSerialIdentity(scheme="gtin_serial", gtin="09501101020917", serial="10"),
        None,
        CodeIdentity(scheme="code", symbology="Code 128", symbology_id="]C0", text="LOC-A-01"),
        SsccIdentity(scheme="sscc", sscc="106141411234567897"),
    ]
    assert rec.reads[1].attributes == ItemAttributes(batch="ABCD1234", expiry=date(2019, 5, 8))
    assert rec.reads[0].attributes is None
    assert rec.reads[3].epc == "code:]C0:LOC-A-01"
    assert rec.reads[0].epc == "sscc:106141411234567897"
    assert rec.reads[2].epc == EPC
    assert {(r.reader, r.antenna, r.rssi_dbm) for r in rec.reads} == {("gun-1", 1, None)}
    counts = driver.snapshot().error_counts
    assert counts["gs1_invalid"] == 1
    assert "not_item" not in counts
    assert counts["sanity"] == 1
    assert counts["truncated"] == 1
    assert driver.snapshot().reads_total == 5


def test_line_scanner_with_prefix_and_tab_suffix(tmp_path: Path) -> None:
    link = tmp_path / "ttyS3"

    async def scenario(rec: Recorder, link: Path) -> None:
        peer = scanner(link)
        try:
            await rec.until(rec.online)
            peer.write(b"@@" + SSCC.encode() + b"\t" + b"junk@@" + EPC.encode() + b"\t")
            await rec.until(lambda: len(rec.reads) == 2)
        finally:
            peer.close()

    driver, rec = run(
        lambda clock, rec: AsciiScanner(
            ascii_config(link, prefix="@@", suffix="tab"), clock, rec.on_read, rec.on_state
        ),
        scenario,
        link,
    )
    assert [r.epc for r in rec.reads] == ["sscc:106141411234567897", EPC]
    assert driver.snapshot().error_counts["garbage"] == 1


def test_line_scanner_unplugged_goes_offline_and_comes_back(tmp_path: Path) -> None:
    link = tmp_path / "ttyACM1"
    made: list[AsciiScanner] = []

    def make(clock: ManualClock, rec: Recorder) -> AsciiScanner:
        made.append(AsciiScanner(ascii_config(link), clock, rec.on_read, rec.on_state))
        return made[0]

    async def scenario(rec: Recorder, link: Path) -> None:
        peer = scanner(link)
        await rec.until(rec.online)
        peer.write(SSCC.encode() + b"\r")
        await rec.until(lambda: len(rec.reads) == 1)
        peer.close()
        await rec.until(lambda: rec.states[-1].state == "offline")
        os.unlink(link)
        # a reopen attempt fails while the device is gone
        await poll(lambda: "No such file" in (made[0].snapshot().last_error or ""))
        peer = scanner(link)
        try:
            await rec.until(rec.online)
            peer.write(EPC.encode() + b"\r")
            await rec.until(lambda: len(rec.reads) == 2)
        finally:
            peer.close()

    driver, rec = run(make, scenario, link)
    states = [s.state for s in rec.states]
    assert states[:4] == ["online", "offline", "connecting", "online"]
    assert driver.snapshot().error_counts["disconnects"] == 1


def test_wedge_scanner_types_scans_into_reads(tmp_path: Path) -> None:
    link = tmp_path / "event7"

    async def scenario(rec: Recorder, link: Path) -> None:
        peer = scanner(link)
        try:
            await rec.until(rec.online)
            peer.write(kb.type_scan(SSCC))
            peer.write(kb.type_scan(GTIN_SERIAL, gs="alt"))
            bad = kb.type_text("0010614") + kb.tap(kb.KEY_F1) + kb.tap(kb.KEY_ENTER)
            peer.write(bad)
            # a scan split across writes, as the kernel may deliver it
            events = kb.type_scan(EPC)
            peer.write(events[:1000])
            await asyncio.sleep(0.02)
            peer.write(events[1000:])
            await rec.until(lambda: len(rec.reads) == 3)
        finally:
            peer.close()

    driver, rec = run(
        lambda clock, rec: HidScanner(hid_config(link), clock, rec.on_read, rec.on_state),
        scenario,
        link,
    )
    assert [r.epc for r in rec.reads] == [
        "sscc:106141411234567897",
        "gtin_serial:09501101020917:10",
        EPC,
    ]
    assert driver.snapshot().error_counts["sanity"] == 1
    assert driver.snapshot().reader_type == "hid"


def test_wedge_grab_refused_on_a_device_that_is_not_evdev(tmp_path: Path) -> None:
    link = tmp_path / "not-evdev"

    async def scenario(rec: Recorder, link: Path) -> None:
        peer = scanner(link)
        try:
            await rec.until(lambda: any(s.state == "offline" for s in rec.states))
        finally:
            peer.close()

    driver, rec = run(
        lambda clock, rec: HidScanner(
            hid_config(link, grab=True), clock, rec.on_read, rec.on_state
        ),
        scenario,
        link,
    )
    last_error = driver.snapshot().last_error or ""
    assert "not an evdev input device" in last_error
    assert str(link) in last_error
    assert not any(s.state == "online" for s in rec.states)


def test_wedge_device_missing_then_plugged_in(tmp_path: Path) -> None:
    link = tmp_path / "by-id-kbd"

    async def scenario(rec: Recorder, link: Path) -> None:
        await rec.until(lambda: any(s.state == "offline" for s in rec.states))
        peer = scanner(link)
        try:
            await rec.until(rec.online)
            peer.write(kb.type_scan(SSCC))
            await rec.until(lambda: len(rec.reads) == 1)
        finally:
            peer.close()

    _driver, rec = run(
        lambda clock, rec: HidScanner(hid_config(link), clock, rec.on_read, rec.on_state),
        scenario,
        link,
    )
    assert "No such file" in (rec.states[0].last_error or "")
    assert rec.reads[0].identity == SsccIdentity(scheme="sscc", sscc="106141411234567897")
