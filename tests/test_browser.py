"""The dashboard in a real browser (issue 9): Debian's Chromium driven by Playwright against
a live ``ctel serve`` (two workers) filled by ``ctel simulate``.

One browser and one simulated fleet serve every test here; each test has its own browser
context (so its own sessionStorage, i.e. its own sign-in). Every request the browser
makes is logged, and anything not for 127.0.0.1 is refused and fails the run. The pages'
screenshots (1280x800 and 375 px wide) are written to ``$CTEL_ARTIFACTS`` (default
``test-artifacts/``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from support import LiveServer, Tenant, fresh_db, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<img src=x onerror=alert(1)>"
ARTIFACTS = Path(os.environ.get("CTEL_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 760}
SIMULATED = 5


@dataclass
class Fleet:
    server: LiveServer
    tenant: Tenant
    ids: list[str]
    http: httpx.Client

    def path(self, connector_id: str = "") -> str:
        base = f"/accounts/{self.tenant.account_id}/magic/connectors"
        return f"{base}/{connector_id}" if connector_id else base

    def connector(self, cid: str) -> dict[str, Any]:
        r = self.http.get(self.path(cid), headers=self.tenant.read)
        assert r.status_code == 200, r.text
        return r.json()["result"]  # type: ignore[no-any-return]

    def create(self, notes: str) -> str:
        r = self.http.post(
            self.path(),
            json={"device": {"provision_license": True}, "notes": notes},
            headers=self.tenant.write,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["result"]["id"])

    def post(self, cid: str, kind: str, items: list[Any]) -> None:
        r = self.http.post(
            f"{self.path(cid)}/telemetry/{kind}", json=items, headers=self.tenant.write
        )
        assert r.status_code == 200, r.text


@dataclass
class Watch:
    """What a page did that it must not: dialogs, script errors, console errors, requests
    to anywhere but 127.0.0.1."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("browser")
    db, tenant = fresh_db(folder)
    server = start_server(db, workers=2, log_path=folder / "ctel.log")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "connector_telemetry",
                "simulate",
                "--server",
                server.url,
                f"--token={tenant.write_token}",
                "--account",
                tenant.account_id,
                "--connectors",
                str(SIMULATED),
                "--days",
                "1",
                "--interval",
                "300",
                "--seed",
                "9",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        ids = done.stdout.split()
        assert len(ids) == SIMULATED
        with httpx.Client(base_url=server.api, timeout=30) as http:
            yield Fleet(server, tenant, ids, http)
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def watched() -> Iterator[list[Watch]]:
    """Every test's Watch; at the end, no request of any test left 127.0.0.1."""
    all_watches: list[Watch] = []
    yield all_watches
    foreign = [url for w in all_watches for url in w.foreign]
    assert foreign == [], f"requests to other hosts: {foreign}"


def new_context(
    browser: Browser, watches: list[Watch], viewport: dict[str, int]
) -> tuple[BrowserContext, Watch]:
    watch = Watch()
    watches.append(watch)
    context = browser.new_context(viewport=viewport, service_workers="block")

    def route(route: Any) -> None:
        url = route.request.url
        watch.requests.append(url)
        if urlsplit(url).hostname != "127.0.0.1":
            watch.foreign.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", route)
    return context, watch


def open_page(context: BrowserContext, watch: Watch) -> Page:
    page = context.new_page()
    page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: watch.errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: watch.errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    return page


@pytest.fixture
def ctx(browser: Browser, watched: list[Watch]) -> Iterator[tuple[Page, Watch]]:
    context, watch = new_context(browser, watched, WIDE)
    page = open_page(context, watch)
    yield page, watch
    context.close()


def sign_in(page: Page, fleet: Fleet, token: str | None = None) -> None:
    page.goto(fleet.server.url + "/")
    page.fill('input[name="token"]', token or fleet.tenant.write_token)
    page.click('button[type="submit"]')
    page.wait_for_selector('main[data-ready="fleet"]')


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_connector(page: Page, fleet: Fleet, cid: str, query: str = "") -> None:
    page.goto(f"{fleet.server.url}/#/connectors/{cid}{query}")
    page.wait_for_selector('main[data-ready="connector"]', timeout=20_000)


# -- the tests ------------------------------------------------------------------------


def test_sign_in_and_fleet_page(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, watch = ctx
    page.goto(fleet.server.url + "/")
    assert page.locator('form.signin button[type="submit"]').is_visible()
    page.fill('input[name="token"]', "A" * 40)
    page.click('button[type="submit"]')
    page.wait_for_selector(".form-error:not([hidden])")
    assert "Invalid access token" in page.inner_text(".form-error")
    watch.errors.clear()  # the refused sign-in's 403 is logged by the browser
    sign_in(page, fleet)
    for cid in fleet.ids:
        row = page.locator(f'tr[data-connector-id="{cid}"]')
        notes = fleet.connector(cid)["notes"]
        assert notes and notes in row.inner_text()
        assert row.locator("a").get_attribute("href") == f"#/connectors/{cid}"
    assert page.inner_text('[data-count="all"] .value') == str(SIMULATED)
    assert page.locator('[data-count="stale"]').is_visible()
    assert page.locator('[data-count="failed"]').is_visible()
    # Times: local time shown, UTC on hover.
    title = page.locator("tbody time").first.get_attribute("title")
    assert title is not None and title.endswith("UTC)")
    # Sorting by a column, and back; the text filter.
    page.click('button[data-sort="site"]')
    assert page.get_attribute('th:has(button[data-sort="site"])', "aria-sort") == "ascending"
    sites = page.locator("tbody a.site").all_inner_texts()
    assert sites == sorted(sites, key=str.lower)
    page.click('button[data-sort="site"]')
    assert page.get_attribute('th:has(button[data-sort="site"])', "aria-sort") == "descending"
    first_site = fleet.connector(fleet.ids[0])["notes"]
    page.fill("#fleet-filter", first_site.split(" ")[0])
    page.wait_for_function("() => document.querySelectorAll('tbody tr').length === 1")
    page.fill("#fleet-filter", "")
    page.wait_for_function(f"() => document.querySelectorAll('tbody tr').length === {SIMULATED}")
    assert watch.errors == [] and watch.dialogs == []
    shot(page, "fleet-1280")


def test_stale_marker(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    """A connector reporting every second that stopped is stale after 3 s; the simulated
    ones (every 5 minutes, just reported) are not."""
    page, _ = ctx
    cid = fleet.create("stopped-site")
    now = time.time()
    fleet.post(cid, "snapshots", [_snapshot(now - 2), _snapshot(now - 1)])
    time.sleep(3.5)
    sign_in(page, fleet)
    row = page.locator(f'tr[data-connector-id="{cid}"]')
    assert "stale" in row.locator(".col-heartbeat").inner_text()
    assert "Stale" in row.locator(".col-status").inner_text()
    for other in fleet.ids:
        assert "stale" not in page.locator(f'tr[data-connector-id="{other}"]').inner_text()
    assert int(page.inner_text('[data-count="stale"] .value')) >= 1


def test_connector_page_timeline_charts_and_event_json(
    fleet: Fleet, ctx: tuple[Page, Watch]
) -> None:
    page, watch = ctx
    sign_in(page, fleet)
    cid = fleet.ids[0]
    page.click(f'tr[data-connector-id="{cid}"] a.site')
    page.wait_for_selector('main[data-ready="connector"]', timeout=20_000)
    marks = page.locator("svg.timeline .mark")
    assert marks.count() > 0
    assert page.locator("svg.timeline text.tick").count() >= 3  # a labelled time axis
    charts = page.locator("figure.chart")
    names = charts.evaluate_all("els => els.map(e => e.dataset.chart)")
    assert {"cpu", "load", "memory", "disk", "rx", "tx", "tunnels"} <= set(names)
    for name in names:
        figure = page.locator(f'figure[data-chart="{name}"]')
        # Axis labels are drawn on the canvas; the chart's description names them.
        described = figure.locator(".chart-body").get_attribute("aria-label") or ""
        unit = figure.locator(".unit").inner_text()
        assert "x axis Local time" in described and f"y axis {unit}" in described, described
        assert _inked(figure) > 200, f"chart {name} is empty"
    # Hover: kind and time; click: the event exactly as Get Event returns it.
    mark = marks.last
    t, n = mark.get_attribute("data-event-t"), mark.get_attribute("data-event-n")
    mark.hover()
    tip = page.locator(".timeline-wrap .tip")
    assert tip.is_visible() and mark.get_attribute("data-kind") in tip.inner_text()
    assert "UTC" in tip.inner_text()
    mark.click()
    page.wait_for_selector("dialog.event-dialog pre.json")
    shown = page.inner_text("dialog.event-dialog pre.json")
    r = fleet.http.get(f"{fleet.path(cid)}/telemetry/events/{t}.{n}", headers=fleet.tenant.read)
    assert json.loads(shown) == r.json()["result"]
    # byte for byte: the envelope's result, as the server wrote it
    assert r.text == '{"result":' + shown + ',"success":true,"errors":[],"messages":[]}'
    page.keyboard.press("Escape")
    assert not page.locator("dialog.event-dialog").is_visible()
    assert watch.errors == []
    shot(page, "connector-1280")


def test_live_updates_within_two_seconds(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, watch = ctx
    sign_in(page, fleet)
    cid = fleet.ids[1]
    # The fleet page: a failure appears in its row.
    t = round(time.time(), 3)
    fleet.post(cid, "events", [{"e": {"k": "FinishRotatePkiFailure"}, "t": t, "n": 0}])
    page.wait_for_function(
        f"() => document.querySelector('tr[data-connector-id=\"{cid}\"] .col-failure')"
        ".textContent.includes('FinishRotatePkiFailure')",
        timeout=2000,
    )
    # The connector page: a new event's mark, and the new snapshot's point.
    open_connector(page, fleet, cid, "?range=1h")
    t = round(time.time(), 3)
    fleet.post(cid, "events", [{"e": {"k": "Reconcile"}, "t": t, "n": 7}])
    page.wait_for_selector(f'.mark[data-event-t="{t}"][data-event-n="7"]', timeout=2000)
    assert "Live" in page.inner_text(".live")
    assert watch.errors == []


def test_hostile_strings_stay_text(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, watch = ctx
    cid = fleet.create(XSS)
    now = time.time()
    snapshot = _snapshot(now - 30)
    snapshot["netdevs"] = [_netdev(XSS, 0)]
    later = _snapshot(now - 10)
    later["netdevs"] = [_netdev(XSS, 5000)]
    later["thermals"] = [{"label": XSS, "current_celcius": 40}]
    fleet.post(cid, "snapshots", [snapshot, later])
    fleet.post(
        cid,
        "events",
        [{"e": {"k": "FinishUpgradeFailure", "reason": XSS}, "t": round(now - 20, 3), "n": 0}],
    )
    sign_in(page, fleet)
    row = page.locator(f'tr[data-connector-id="{cid}"]')
    assert XSS in row.inner_text()
    open_connector(page, fleet, cid, "?range=1h")
    assert XSS in page.inner_text("h1")
    legend = page.locator('figure[data-chart="rx"] .u-legend').inner_text()
    assert XSS in legend
    assert XSS in page.locator('figure[data-chart="thermals"] .u-legend').inner_text()
    page.locator("svg.timeline .mark.failure").first.click()
    page.wait_for_selector("dialog.event-dialog pre.json")
    assert json.loads(page.inner_text("dialog.event-dialog pre.json"))["e"]["reason"] == XSS
    page.keyboard.press("Escape")
    assert page.locator("img[src='x']").count() == 0
    time.sleep(0.3)  # an onerror handler would have run by now
    assert watch.dialogs == [] and watch.errors == []


def test_read_credential_sees_no_interrupt_buttons(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, watch = ctx
    sign_in(page, fleet, fleet.tenant.read_token)
    assert page.inner_text(".permission") == "Read only"
    cid = fleet.ids[2]
    open_connector(page, fleet, cid)
    controls = page.locator('[data-requires="write"]')
    assert controls.count() >= 3
    assert all(not c.is_visible() for c in controls.all())
    # Forced (un-hidden by hand), the API's 403 is shown.
    page.evaluate(
        "document.querySelectorAll('[data-requires=write]').forEach(e => e.hidden = false)"
    )
    page.click('button[data-action="reboot"]')
    page.click('dialog.confirm-dialog button[data-confirm="reboot"]')
    note = page.locator(".action-note.error")
    note.wait_for()
    assert "403" in note.inner_text() and "Authentication error" in note.inner_text()
    assert (
        fleet.http.get(f"{fleet.path(cid)}/interrupts", headers=fleet.tenant.read).json()["result"]
        == []
    )
    assert [e for e in watch.errors if "403" not in e] == []


def test_write_credential_requests_an_interrupt_after_confirmation(
    fleet: Fleet, ctx: tuple[Page, Watch]
) -> None:
    page, _ = ctx
    sign_in(page, fleet)
    cid = fleet.ids[3]
    open_connector(page, fleet, cid)
    page.click('button[data-action="restart"]')
    page.click("dialog.confirm-dialog button.secondary")  # Cancel: nothing is requested
    listed = fleet.http.get(f"{fleet.path(cid)}/interrupts", headers=fleet.tenant.read)
    assert listed.json()["result"] == []
    page.click('button[data-action="restart"]')
    page.check("dialog.confirm-dialog #purge")
    page.click('dialog.confirm-dialog button[data-confirm="restart"]')
    page.locator(".action-note.ok").wait_for()
    assert "pending" in page.inner_text(".interrupts")
    [made] = fleet.http.get(f"{fleet.path(cid)}/interrupts", headers=fleet.tenant.read).json()[
        "result"
    ]
    assert made["restart"] == {"purge": True} and "triggered_at" not in made


def test_keyboard_only(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, _ = ctx
    page.goto(fleet.server.url + "/")
    page.wait_for_selector('input[name="token"]:focus')
    page.keyboard.type(fleet.tenant.read_token)
    page.keyboard.press("Enter")
    page.wait_for_selector('main[data-ready="fleet"]')
    page.focus('button[data-sort="heartbeat"]')
    page.keyboard.press("Enter")
    assert page.get_attribute('th:has(button[data-sort="heartbeat"])', "aria-sort") == "ascending"
    # Tab reaches a row's link; Enter opens the connector.
    page.focus("#fleet-filter")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('tbody a.site')"):
            break
    else:
        raise AssertionError("no connector link reached with Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector('main[data-ready="connector"]', timeout=20_000)
    # The timeline is one tab stop; arrows move between marks; Enter opens one.
    page.focus("svg.timeline .mark[tabindex='0']")
    last = page.evaluate("document.activeElement.dataset.eventT")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.dataset.eventT") <= last
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog.event-dialog pre.json")
    page.keyboard.press("Escape")


def test_email_and_global_api_key(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, _ = ctx
    page.goto(fleet.server.url + "/")
    page.check('input[name="kind"][value="key"]')
    page.fill('input[name="email"]', fleet.tenant.email)
    page.fill('input[name="key"]', fleet.tenant.api_key)
    page.click('button[type="submit"]')
    page.wait_for_selector('main[data-ready="fleet"]')
    assert page.inner_text(".permission") == "Read & write"


def test_sign_out_forgets_the_credential(fleet: Fleet, ctx: tuple[Page, Watch]) -> None:
    page, _ = ctx
    sign_in(page, fleet)
    assert page.evaluate("sessionStorage.length") == 1
    assert page.evaluate("document.cookie") == ""
    page.click("button.sign-out")
    page.wait_for_selector('input[name="token"]')
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    page.wait_for_selector('input[name="token"]')
    assert not page.locator("main[data-ready]").count()


def test_revoked_token_stops_working_in_an_open_dashboard(
    fleet: Fleet, ctx: tuple[Page, Watch]
) -> None:
    store = open_store(Settings(db=str(fleet.server.db)))
    try:
        token, secret = credentials.create_token(store, fleet.tenant.account_id, "Magic WAN Read")
        page, _ = ctx
        sign_in(page, fleet, secret)
        credentials.revoke_token(store, token.id)
    finally:
        store.close()
    # The server ends the page's stream within the auth cache period (5 s by default:
    # tests/test_streams_servers.py holds it to that); then the page reconnects, is refused
    # and shows the sign-in form: its own reaction gets 3 s more (on a loaded CI machine the
    # two together took just over 5 s).
    page.wait_for_selector(
        'input[name="token"]', timeout=Settings().auth_cache_seconds * 1000 + 3000
    )
    assert "Invalid access token" in page.inner_text(".notice")
    assert page.evaluate("sessionStorage.length") == 0


def test_phone_width(fleet: Fleet, browser: Browser, watched: list[Watch]) -> None:
    context, watch = new_context(browser, watched, PHONE)
    try:
        page = open_page(context, watch)
        sign_in(page, fleet)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the fleet page scrolls sideways ({width} px)"
        assert page.locator(f'tr[data-connector-id="{fleet.ids[0]}"] a.site').is_visible()
        shot(page, "fleet-375")
        open_connector(page, fleet, fleet.ids[0])
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the connector page scrolls sideways ({width} px)"
        shot(page, "connector-375")
        assert watch.errors == []
    finally:
        context.close()


# -- helpers ----------------------------------------------------------------------------


def _inked(figure: Any) -> int:
    """How many pixels of a chart's canvas are drawn (not blank)."""
    return int(
        figure.evaluate(
            """f => {
              const c = f.querySelector('canvas');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let inked = 0;
              for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked += 1;
              return inked;
            }"""
        )
    )


def _snapshot(t: float) -> dict[str, Any]:
    return {
        "t": round(t, 3),
        "v": "2026.11.2",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 0,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
        "cpu_time_user_ms": t * 10 % 1e9,
        "cpu_time_idle_ms": t * 30 % 1e9,
        "memory_total_bytes": 1000,
        "memory_available_bytes": 600,
    }


def _netdev(name: str, rx: float) -> dict[str, Any]:
    names = (
        "recv_compressed recv_drop recv_errs recv_fifo recv_frame recv_multicast recv_packets "
        "sent_bytes sent_carrier sent_colls sent_compressed sent_drop sent_errs sent_fifo "
        "sent_packets"
    )
    return {"name": name, "recv_bytes": rx, **dict.fromkeys(names.split(" "), 0)}
