"""The fleet's scrape (``GET /metrics/accounts/{id}``) for an account of 10,000 connectors,
each with a full simulated snapshot (~170 fields: disks, netdevs, mounts, tunnels, ...) and
a few events, one in ten with a failure, one in twenty with a pending interrupt.

Figures: time and bytes of one scrape (median of ``rounds``, over HTTP, identity encoding
as Prometheus asks), the same for an account of 100 connectors (how it grows), and the
baseline: nginx sending the same bytes (what the transfer alone costs on this machine).
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench.fixtures import T0, snapshot_pool
from bench.procs import Ctel, Nginx
from connector_telemetry.service import connectors, credentials, events, interrupts, snapshots
from connector_telemetry.store.sqlite import SQLiteStore


def _account(store: SQLiteStore, count: int) -> dict[str, str]:
    account_id = credentials.create_account(store)
    _, token = credentials.create_token(store, account_id, "Magic WAN Read")
    pool = snapshot_pool()
    for i in range(count):
        body = {"device": {"serial_number": f"SCRAPE-{count}-{i:05d}"}}
        connector, _ = connectors.create_connector(store, account_id, body)
        t = T0 + 86_400
        snap = orjson.dumps([{**pool[i % len(pool)], "t": t}])
        parsed = snapshots.parse_batch(snap, "application/json", 1)
        snapshots.record_snapshots(store, account_id, connector.id, parsed)
        kinds = ["Init", "StartUpgrade", "FinishUpgradeSuccess", "Reconcile"]
        if i % 10 == 0:
            kinds[2] = "FinishUpgradeFailure"
        items = [{"e": {"k": k}, "t": t - 60 + j, "n": 0} for j, k in enumerate(kinds)]
        items[1]["e"]["url"] = "https://updates.example.net/connector/2026.11.2.bundle"
        parsed_events = events.parse_batch(orjson.dumps(items), "application/json", len(items))
        events.record_events(store, account_id, connector.id, parsed_events)
        if i % 20 == 0:
            interrupts.create_interrupt(store, account_id, connector.id, {"reboot": {}})
    return {"account_id": account_id, "token": token}


def build(db: Path, sizes: tuple[int, ...]) -> dict[str, dict[str, str]]:
    meta = db.with_suffix(".json")
    if db.exists() and meta.exists():
        return json.loads(meta.read_text())  # type: ignore[no-any-return]
    for stale in db.parent.glob(db.name + "*"):
        stale.unlink()
    store = SQLiteStore(str(db), synchronous="OFF")
    store.migrate()
    started = time.perf_counter()
    accounts = {str(size): _account(store, size) for size in sizes}
    store.close()
    meta.write_text(json.dumps(accounts))
    print(f"  built the scrape fleets in {time.perf_counter() - started:.0f} s", flush=True)
    return accounts


def _scrape(port: int, path: str, token: str) -> tuple[float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    assert response.status == 200, body[:300]
    return elapsed, body


def run(db: Path, workers: int, rounds: int) -> dict[str, Any]:
    sizes = (100, 10_000)
    accounts = build(db, sizes)
    out: dict[str, Any] = {}
    with Ctel(db, workers) as server:
        for size in sizes:
            account = accounts[str(size)]
            path = f"/metrics/accounts/{account['account_id']}"
            _scrape(server.port, path, account["token"])  # warm-up
            times, body = [], b""
            for _ in range(rounds):
                elapsed, body = _scrape(server.port, path, account["token"])
                times.append(elapsed)
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            out[str(size)] = {
                "scrape_s": round(statistics.median(times), 4),
                "bytes": len(body),
                "series": series,
                "us_per_connector": round(statistics.median(times) / size * 1e6, 1),
            }
            print(f"  fleet scrape, {size:,} connectors: {out[str(size)]}", flush=True)
        rss = server.peak_rss()
    large = out["10000"]
    with Nginx(body, 1) as nginx:
        port = int(nginx.url.rsplit(":", 1)[1])
        base = [_scrape(port, "/event.json", "-")[0] for _ in range(rounds)]
    out["nginx_same_bytes_s"] = round(statistics.median(base), 4)
    out["ratio_vs_nginx_same_bytes"] = round(large["scrape_s"] / out["nginx_same_bytes_s"], 1)
    out["growth_10000_vs_100_per_connector"] = round(
        large["us_per_connector"] / out["100"]["us_per_connector"], 2
    )
    out["peak_rss_mb"] = rss
    out["rounds"] = rounds
    return out
