"""The dashboard in Chromium (Debian's, driven by Playwright; the Performance API's marks):
how soon the fleet page is usable with 10,000 connectors, how long a week of one-minute
snapshots takes to draw once it has arrived, and how many bytes each page transfers on a
first load before any data.

- **Fleet page usable**: from navigation start to the mark ``ctel:fleet-ready`` (the
  summary fetched, the counts and the first page of rows drawn), each round in a fresh
  browser context (empty cache), signed in beforehand (the credential put in
  sessionStorage by an init script). Baseline: the same page for an account of 10.
- **Week of snapshots**: the connector page's ``ctel:series-draw`` measure (from the
  series' arrival to every chart and the timeline drawn) for 10,080 snapshots (7 days, one
  a minute, as ``ctel simulate`` makes them). Baseline: one day every 5 minutes (288).
- **Bytes on first load**: the encoded (gzip) body sizes of every response that is not an
  API call, as Chromium received them.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import Browser, sync_playwright

from bench.procs import Ctel
from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.store.sqlite import SQLiteStore

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API = "/client/v4"


def _account(store: SQLiteStore) -> tuple[str, str]:
    account_id = credentials.create_account(store)
    _, token = credentials.create_token(store, account_id, "Magic WAN Read")
    return account_id, token


def _small_snapshot(t: float, i: int) -> dict[str, Any]:
    return {
        "t": t,
        "v": f"2026.11.{i % 3}",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 0,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
        "cpu_time_user_ms": 1000.0 * t % 1e9,
        "cpu_time_idle_ms": 3000.0 * t % 1e9,
        "load_average_1m": (i % 7) / 3,
        "memory_total_bytes": 8e9,
        "memory_available_bytes": 2e9 + (i % 50) * 1e8,
        "mounts": [
            {"file_system": "/dev/sda4", "kind": "EXT4", "mount_point": "/var", "name": "var",
             "total_bytes": 1e10, "available_bytes": 1e9 * (1 + i % 9)},
        ],
        "tunnels": [
            {"tunnel_id": f"t{k}", "interface_name": f"xfrm{k}",
             "health_state": "down" if (i + k) % 97 == 0 else "healthy", "health_value": 1}
            for k in range(3)
        ],
    }  # fmt: skip


def _fleet(store: SQLiteStore, count: int, now: float) -> dict[str, str]:
    """An account of ``count`` connectors, each with two snapshots a minute apart (so a
    health record with CPU use), one in ten with a failure, one in fifty silent."""
    account_id, token = _account(store)
    for i in range(count):
        body = {"device": {"serial_number": f"FLEET-{count}-{i:05d}"}, "notes": f"site-{i:05d}"}
        connector, _ = connectors.create_connector(store, account_id, body)
        last = now - (3600 if i % 50 == 0 else 30)
        items = orjson.dumps([_small_snapshot(last - 60, i), _small_snapshot(last, i)])
        snapshots.record_snapshots(
            store, account_id, connector.id, snapshots.parse_batch(items, "application/json", 2)
        )
        if i % 10 == 0:
            failure = orjson.dumps([{"e": {"k": "FinishUpgradeFailure"}, "t": last - 300, "n": 0}])
            events.record_events(
                store,
                account_id,
                connector.id,
                events.parse_batch(failure, "application/json", 1),
            )
    return {"account_id": account_id, "token": token}


def _history(store: SQLiteStore, days: float, interval: float, now: float) -> dict[str, str]:
    """An account with one simulated connector: ``days`` of snapshots every ``interval``."""
    from connector_telemetry.simulate import SimConfig, generate_connector

    account_id, token = _account(store)
    start = now - days * 86400
    config = SimConfig(start=start, seed=3, connectors=1, days=days, interval=interval)
    sim = generate_connector(config, 0)
    connector, _ = connectors.create_connector(store, account_id, sim.create_body)
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        parsed = snapshots.parse_batch(orjson.dumps(batch), "application/json", len(batch))
        snapshots.record_snapshots(store, account_id, connector.id, parsed)
        batch.clear()

    for snap in sim.snapshots():
        batch.append(snap)
        if len(batch) == 1000:
            flush()
    if batch:
        flush()
    items = sim.events
    for offset in range(0, len(items), 1000):
        chunk = orjson.dumps(items[offset : offset + 1000])
        parsed = events.parse_batch(chunk, "application/json", 1000)
        events.record_events(store, account_id, connector.id, parsed)
    return {"account_id": account_id, "token": token, "connector_id": connector.id}


def build(db: Path) -> dict[str, Any]:
    """The accounts the figures need, built once (cached with their ids beside ``db``)."""
    meta = db.with_suffix(".json")
    if db.exists() and meta.exists():
        return json.loads(meta.read_text())  # type: ignore[no-any-return]
    for stale in db.parent.glob(db.name + "*"):
        stale.unlink()
    now = time.time()
    store = SQLiteStore(str(db), synchronous="OFF")
    store.migrate()
    started = time.perf_counter()
    built = {
        "built_at": now,
        "fleet_10000": _fleet(store, 10_000, now),
        "fleet_10": _fleet(store, 10, now),
        "week": _history(store, 7, 60, now),
        "day": _history(store, 1, 300, now),
    }
    store.close()
    meta.write_text(json.dumps(built, indent=2))
    print(f"  built the dashboard fixtures in {time.perf_counter() - started:.0f} s", flush=True)
    return built


def _session_script(account: dict[str, str]) -> str:
    session = {"credential": {"kind": "token", "token": account["token"]},
               "accountId": account["account_id"]}  # fmt: skip
    return f"sessionStorage.setItem('ctel.session', {json.dumps(json.dumps(session))});"


def _visit(
    browser: Browser, url: str, account: dict[str, str], ready: str
) -> tuple[float, dict[str, Any], int, int]:
    """One first visit in a fresh context: the ``ready`` mark's time (ms after navigation
    start), the page's dataset, and the encoded and decoded bytes of everything that is not
    an API call."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(_session_script(account))
    page = context.new_page()
    responses: list[Any] = []
    page.on("requestfinished", lambda request: responses.append(request))
    page.goto(url)
    page.wait_for_selector(f'main[data-ready="{ready}"]', timeout=60_000)
    mark = page.evaluate(f"performance.getEntriesByName('ctel:{ready}-ready')[0].startTime")
    data = page.evaluate("Object.assign({}, document.querySelector('main').dataset)")
    encoded = decoded = 0
    for request in responses:
        if f"{API}/" in request.url:
            continue
        sizes = request.sizes()
        encoded += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        response = request.response()
        decoded += len(response.body()) if response is not None else 0
    context.close()
    return float(mark), data, encoded, decoded


def run(db: Path, workers: int, rounds: int = 5) -> dict[str, Any]:
    built = build(db)
    out: dict[str, Any] = {"rounds": rounds}
    with Ctel(db, workers) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            root = server.url + "/"
            fleet: dict[str, list[float]] = {"fleet_10000": [], "fleet_10": []}
            draw: dict[str, list[float]] = {"week": [], "day": []}
            load: dict[str, list[float]] = {"week": [], "day": []}
            for _ in range(rounds):  # alternating: noise falls on both alike
                for key in fleet:
                    ms, _, encoded, decoded = _visit(browser, root, built[key], "fleet")
                    fleet[key].append(ms)
                    out["fleet_bytes"] = {"encoded": encoded, "decoded": decoded}
                for key, days in (("week", 7), ("day", 1)):
                    account = built[key]
                    end = int(built["built_at"]) + 60
                    span = f"from={end - days * 86400 - 120}&to={end}"
                    url = f"{root}#/connectors/{account['connector_id']}?{span}"
                    _, data, encoded, decoded = _visit(browser, url, account, "connector")
                    draw[key].append(float(data["drawMs"]))
                    load[key].append(float(data["loadMs"]))
                    out["connector_bytes"] = {"encoded": encoded, "decoded": decoded}
        finally:
            browser.close()
    med = statistics.median
    out["fleet_usable_ms"] = {k: round(med(v)) for k, v in fleet.items()}
    out["fleet_usable_rounds"] = {k: [round(x) for x in v] for k, v in fleet.items()}
    out["draw_ms"] = {k: round(med(v)) for k, v in draw.items()}
    out["draw_rounds"] = {k: [round(x) for x in v] for k, v in draw.items()}
    out["series_load_ms"] = {k: round(med(v)) for k, v in load.items()}
    return out
