"""The web view in a real headless Chromium (Debian's ``chromium`` and ``chromedriver``,
driven by Selenium) against the real pipeline: simulator -> edge -> mosquitto -> gateway.

The page opens with the token in the URL fragment, goes live on ``/v1/stream``, and then
the simulator starts: movements must appear in the feed without a reload, each one an
event the edge really published, and the stock table must equal ``/v1/zones``. The test
saves the screenshot the README shows (docs/images/web-view.png). A wrong token, and a
token without the ``stream`` scope, must be refused on the page with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tagtrail.events import Moved
from tests.support.influxd import Influxd
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import (
    API_TOKEN,
    REPO,
    SCENARIOS,
    Collector,
    EdgeProcess,
    GatewayProcess,
    SimProcess,
    edge_config,
    gateway_config,
    wait_for,
)
from tests.support.services import free_port, missing

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = REPO / "docs" / "images" / "web-view.png"
DEMO_DOOR = SCENARIOS / "demo-door.yaml"
READ_ONLY = "read-only-token-0123456789"
TIME_SCALE = 8.0

# Everything the assertions need from the page, in one round trip.
PAGE_STATE = """
const rows = (sel) => Array.from(document.querySelectorAll(sel));
const text = (root, sel) => (root.querySelector(sel) || {}).textContent || "";
return {
  conn: document.getElementById("conn").dataset.state,
  connText: text(document, "#conn-text"),
  viewShown: !document.getElementById("view").hidden,
  loginShown: !document.getElementById("login").hidden,
  authError: document.getElementById("auth-error").hidden ? "" : text(document, "#auth-error"),
  stored: sessionStorage.getItem("tagtrail.token"),
  feed: rows("#feed tbody tr").map((tr) => ({
    event_id: tr.dataset.eventId,
    kind: tr.dataset.kind,
    item: text(tr, ".item"),
    move: text(tr, ".move"),
    reader: text(tr, ".reader"),
  })),
  notice: document.getElementById("notice").hidden ? "" : text(document, "#notice"),
  updated: document.getElementById("stock-updated").dateTime,
  stock: rows("#stock tbody tr").map((tr) =>
    [tr.dataset.site, tr.dataset.zone, Number(text(tr, ".count"))]),
  total: text(document, "#stock-total"),
};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium through /usr/bin/chromedriver (Selenium Manager never runs: the
    driver path is given)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            missing(f"{path} not found (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("python package selenium not installed (pip install -e '.[dev]')")
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def page(driver: WebDriver) -> dict[str, Any]:
    state: dict[str, Any] = driver.execute_script(PAGE_STATE)
    return state


def console_errors(driver: WebDriver) -> list[str]:
    """Console errors and CSP violations the page logged since the last call."""
    logs: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in logs if entry["level"] == "SEVERE"]


def shoot(driver: WebDriver, path: Path) -> None:
    """A PNG of the whole page at 1280 px wide (tablet landscape, small laptop)."""
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    metrics = {"width": 1280, "height": int(height), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def start_gateway(workdir: Path, broker: Mosquitto, influx: Influxd) -> GatewayProcess:
    tokens = [
        {"name": "ops", "token": API_TOKEN},
        {"name": "dash", "token": READ_ONLY, "scopes": ["read"]},
    ]
    config = gateway_config(
        workdir,
        broker_port=broker.port,
        influx_url=influx.url,
        extra={"api": {"tokens": tokens, "port": free_port()}},  # the same after a restart
    )
    gateway = GatewayProcess(config, workdir)
    gateway.start()
    return gateway


def test_live_feed_and_stock_in_chromium(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, browser: WebDriver
) -> None:
    gateway = start_gateway(tmp_path, mosquitto, influxd)
    witness = Collector(mosquitto.port, client_id="witness")
    sim: SimProcess | None = None
    edge: EdgeProcess | None = None
    try:
        browser.get(f"{gateway.url}/#token={API_TOKEN}")
        wait_for(lambda: page(browser)["conn"] == "live", 20, "the page to go live", step=0.1)
        state = page(browser)
        assert state["viewShown"]
        assert not state["loginShown"]
        assert state["connText"] == "Live"
        assert state["feed"] == []
        assert state["stock"] == []
        assert browser.current_url == f"{gateway.url}/"  # the token left the address bar
        assert state["stored"] == API_TOKEN
        browser.execute_script("window.__sameDocument = 'yes';")

        # only now does anything move: whatever the feed shows arrived live
        sim = SimProcess(DEMO_DOOR, tmp_path, time_scale=TIME_SCALE)
        edge = EdgeProcess(
            edge_config([sim], tmp_path, broker_port=mosquitto.port, time_scale=TIME_SCALE),
            tmp_path,
        )
        edge.start()

        def busy() -> bool:
            s = page(browser)
            zones = [row for row in s["stock"] if row[2] > 0]
            kinds = {row["kind"] for row in s["feed"]}
            return len(s["feed"]) >= 18 and len(zones) >= 2 and {"arrived", "moved"} <= kinds

        wait_for(busy, 40, "movements in the feed and stock in two zones", step=0.2)
        state = page(browser)
        assert browser.execute_script("return window.__sameDocument;") == "yes"  # no reload

        # every row is an event the edge published, shown as it was
        published = {e.event_id: e for e in witness.movements()}
        for row in state["feed"]:
            event = published[row["event_id"]]
            assert row["kind"] == event.kind
            assert row["item"] == event.item_key
            assert row["reader"] == event.reader
            before = {"arrived": "new", "departed": event.zone}.get(event.kind)
            if isinstance(event, Moved):
                before = event.from_zone
            after = "gone" if event.kind == "departed" else event.zone
            assert row["move"] == f"{event.kind} {before} → {after}"
        # newest first: the order the broker delivered them in, reversed
        order = {event_id: n for n, event_id in enumerate(published)}
        shown = [order[row["event_id"]] for row in state["feed"]]
        assert shown == sorted(shown, reverse=True)

        # the stock table is the API's /v1/zones (it refreshes after changes)
        def stock_matches(state: dict[str, Any] | None = None) -> bool:
            api = gateway.get("/v1/zones")["zones"]
            want = sorted([z["site"], z["zone"], z["count"]] for z in api)
            return sorted((state or page(browser))["stock"]) == want

        # The picture: taken when the stock equals /v1/zones and nothing changed while it
        # was taken; if possible at a moment when the feed mixes kinds and two zones hold
        # stock (the demo moves whole pallets at once, so most moments show one kind).
        def varied(state: dict[str, Any]) -> bool:
            moves = [row["move"] for row in state["feed"]]
            top = max((moves.count(m) for m in moves), default=0)
            kinds = {row["kind"] for row in state["feed"]}
            zones = [row for row in state["stock"] if row[2] > 0]
            mixed = len(kinds) >= 2 and len(set(moves)) >= 3 and top <= 0.75 * len(moves)
            return mixed and len(zones) >= 2

        def picture(*, want_varied: bool) -> bool:
            before = page(browser)
            if (want_varied and not varied(before)) or not stock_matches(before):
                return False
            shoot(browser, SCREENSHOT)
            after = page(browser)
            return (after["feed"], after["stock"]) == (before["feed"], before["stock"])

        deadline = time.monotonic() + 10
        taken = False
        while not taken and time.monotonic() < deadline:
            taken = picture(want_varied=True)
        if not taken:
            wait_for(lambda: picture(want_varied=False), 20, "a steady page to take", step=0.1)
        assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert console_errors(browser) == []  # no CSP violation, no script error

        # the gateway restarts: the page says so, reconnects by itself and goes on
        updated = page(browser)["updated"]
        gateway.terminate()
        wait_for(lambda: page(browser)["conn"] == "reconnecting", 10, "reconnecting", step=0.1)
        assert page(browser)["notice"] != ""  # "The gateway ended the stream: ..."
        gateway.start()
        wait_for(lambda: page(browser)["conn"] == "live", 20, "live again", step=0.1)
        assert page(browser)["notice"] == ""
        # the stream does not replay what happened meanwhile: the page reloads the stock
        wait_for(lambda: page(browser)["updated"] != updated, 10, "the stock reloaded")
        wait_for(stock_matches, 20, "the page's stock to equal /v1/zones again", step=0.2)
        assert browser.execute_script("return window.__sameDocument;") == "yes"
    finally:
        browser.get("about:blank")  # stop the page before its gateway goes away
        witness.close()
        if edge is not None:
            edge.terminate()
        gateway.terminate()
        if sim is not None:
            sim.stop()


def test_wrong_token_is_refused_on_the_page(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By

    gateway = start_gateway(tmp_path, mosquitto, influxd)
    console_errors(browser)  # forget what earlier pages logged
    try:
        browser.get(f"{gateway.url}/#token=not-the-token")
        wait_for(lambda: page(browser)["authError"] != "", 20, "the refusal", step=0.1)
        state = page(browser)
        assert "refused this token" in state["authError"]
        assert "unknown bearer token" in state["authError"]
        assert (state["conn"], state["connText"]) == ("error", "Token refused")
        assert state["loginShown"]
        assert not state["viewShown"]
        assert state["stored"] is None  # a refused token is not kept
        alert = browser.find_element(By.ID, "auth-error")
        assert alert.is_displayed()
        assert alert.get_attribute("role") == "alert"

        # a token without the 'stream' scope reads the stock, then the stream refuses it
        field = browser.find_element(By.ID, "token")
        field.send_keys(READ_ONLY)
        browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

        def scope_refused() -> bool:
            return "'stream' scope" in page(browser)["authError"]

        wait_for(scope_refused, 20, "the stream scope refusal", step=0.1)
        state = page(browser)
        assert "needs a token with the read and stream scopes" in state["authError"]
        assert state["loginShown"]
        assert state["stored"] is None
        assert browser.current_url == f"{gateway.url}/"  # the form never put it in a URL

        # the right token through the form goes live
        browser.find_element(By.ID, "token").send_keys(API_TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        wait_for(lambda: page(browser)["conn"] == "live", 20, "live after the form", step=0.1)
        assert page(browser)["authError"] == ""
        # the 401/403 answers show up in the console as failed loads; nothing else may
        errors = [e for e in console_errors(browser) if "401" not in e and "403" not in e]
        assert errors == []
    finally:
        browser.get("about:blank")
        gateway.terminate()
