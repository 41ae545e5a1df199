"""``python -m bench.event_counts``: what the fleet metrics' event counts (issue 12) cost and
save, as ratios measured in the same run (SQLite, at the store, no HTTP):

- the account-wide read of a scrape: ``Store.fleet_activity`` (the counts ingest keeps in
  ``event_counts``) against counting the stored events at scrape time (``GROUP BY`` over the
  account's events), for ``--connectors`` x ``--events`` stored events;
- ingest: the share of ``record_events``' time (inside its write transaction, commit included)
  spent in the counts' upsert, for 1-event and 1000-event batches (5 kinds).

Not part of ``python -m bench`` (whose parts run servers); a full run (10,000 connectors x 600
events) takes about 3 minutes, most of it building the database.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from connector_telemetry.models import NewEvent
from connector_telemetry.models.connector import Connector
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.fleet import FleetSummary

KINDS = ["RekeyStart", "RekeyAdvance", "RekeyComplete", "Reconcile", "StartRotateCryptKey",
         "FinishRotateCryptKeySuccess", "HaTransition", "HaError", "Init",
         "FinishUpgradeFailure"]  # fmt: skip
GROUP_BY = (
    "SELECT c.id, e.k, count(*) FROM connectors c JOIN events e ON e.cpk = c.pk "
    "WHERE c.account_id=? GROUP BY c.pk, c.id, e.k"
)


def _median_seconds(run: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def scrape_read(folder: Path, connectors: int, events: int, rounds: int) -> dict[str, float]:
    db = folder / "read.db"
    store = open_store(Settings(db=str(db)))
    store.migrate()
    store.create_account("acct", "bench", "2026-11-29T00:00:00Z")
    for i in range(connectors):
        store.create_connector(Connector(account_id="acct", id=uuid.uuid4().hex, device_id=f"d{i}"))
    store.close()
    conn = sqlite3.connect(db)  # the events in bulk, then counted as ingest would have
    pks = [row[0] for row in conn.execute("SELECT pk FROM connectors")]
    rows = ((pk, 1.7e9 + j * 60, KINDS[j % len(KINDS)]) for pk in pks for j in range(events))
    conn.executemany("INSERT INTO events VALUES (?, ?, 0, 0, ?, x'7b7d')", rows)
    conn.execute("INSERT INTO event_counts SELECT cpk, k, count(*) FROM events GROUP BY cpk, k")
    conn.commit()
    conn.close()
    store = open_store(Settings(db=str(db)))
    try:
        kept = _median_seconds(lambda: store.fleet_activity("acct"), rounds)
        reader = sqlite3.connect(db)
        counted = _median_seconds(lambda: reader.execute(GROUP_BY, ("acct",)).fetchall(), rounds)
        reader.close()
    finally:
        store.close()
    return {"kept_s": kept, "group_by_s": counted, "ratio": counted / kept}


def ingest_cost(folder: Path, batch: int, batches: int, rounds: int) -> dict[str, float]:
    store = open_store(Settings(db=str(folder / f"ingest-{batch}.db")))
    store.migrate()
    store.create_account("acct", "bench", "2026-11-29T00:00:00Z")
    store.create_connector(Connector(account_id="acct", id="c1", device_id="d1"))
    keys = iter(range(10**12))

    def make() -> list[NewEvent]:
        kinds = KINDS[:5]
        return [
            NewEvent(j, float(next(keys)), 0.0, kinds[j % 5], {"k": kinds[j % 5]}, "1")
            for j in range(batch)
        ]

    real = FleetSummary._count_events
    inside = [0.0]

    def timed(self: FleetSummary, conn: Any, cpk: int, kinds: Any) -> None:
        started = time.perf_counter()
        real(self, conn, cpk, kinds)
        inside[0] += time.perf_counter() - started

    shares = []
    FleetSummary._count_events = timed  # type: ignore[method-assign]
    try:
        for _ in range(rounds):
            work = [make() for _ in range(batches)]
            inside[0] = 0.0
            started = time.perf_counter()
            for events in work:
                store.record_events("acct", "c1", events, 1.0)
            shares.append(inside[0] / (time.perf_counter() - started))
    finally:
        FleetSummary._count_events = real  # type: ignore[method-assign]
        store.close()
    return {"share": statistics.median(shares), "rounds": len(shares)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.event_counts")
    parser.add_argument("--connectors", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=600, help="stored events per connector")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctel-bench-counts-") as tmp:
        folder = Path(tmp)
        read = scrape_read(folder, args.connectors, args.events, max(3, args.rounds // 2))
        print(f"scrape read, {args.connectors} connectors x {args.events} events: event_counts "
              f"{read['kept_s'] * 1000:.0f} ms, GROUP BY over the events "
              f"{read['group_by_s'] * 1000:.0f} ms: {read['ratio']:.1f}x")  # fmt: skip
        for batch, batches in ((1, 300), (1000, 10)):
            cost = ingest_cost(folder, batch, batches, args.rounds)
            print(
                f"ingest, {batch}-event batches: the counts' upsert is {cost['share']:.1%} "
                f"of record_events' time (median of {cost['rounds']} rounds)"
            )


if __name__ == "__main__":
    main()
