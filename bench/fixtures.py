"""Stored fleets of N events or N snapshots, made fast through the store itself (SQLite
file or PostgreSQL URL alike), and the batches the ingest benchmarks post."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store

T0 = 1_700_000_000
PER_CONNECTOR = 1_000_000
EVENTS_PER_T = 4
#: seconds between two snapshots of a fixture or an ingest batch (keys are ``T0 + i * STEP``)
SNAPSHOT_STEP = 60
KINDS = ("events", "snapshots")
API = "/client/v4"

Batches = list[list[dict[str, Any]]]


@dataclass
class Fleet:
    """``total`` stored items of one kind (events or snapshots), at most
    ``PER_CONNECTOR`` per connector; ``db`` is a SQLite file or a PostgreSQL URL."""

    db: str
    account_id: str
    token: str
    connector_ids: list[str]
    total: int
    kind: str = "events"

    def base(self, connector_id: str) -> str:
        """The path up to ``.../telemetry/events`` (or ``/snapshots``)."""
        return (
            f"{API}/accounts/{self.account_id}/magic/connectors/{connector_id}"
            f"/telemetry/{self.kind}"
        )

    def key(self, i: int) -> tuple[str, int, int]:
        """The connector, t and n of the i-th stored event."""
        assert self.kind == "events"
        j = i % PER_CONNECTOR
        return self.connector_ids[i // PER_CONNECTOR], T0 + j // EVENTS_PER_T, j % EVENTS_PER_T

    def probe(self) -> str:
        """The path of one stored item of the first connector (its bytes are what nginx
        serves as the baseline)."""
        base = self.base(self.connector_ids[0])
        if self.kind == "events":
            return f"{base}/{T0 + 100}.2"
        return f"{base}/{T0 + 100 * SNAPSHOT_STEP}"

    def wrk_env(self) -> dict[str, str]:
        """What ``random_key.lua`` needs to ask for random stored items of the first
        connector."""
        count = min(self.total, PER_CONNECTOR)
        if self.kind == "events":
            span, per_t, step = count // EVENTS_PER_T, EVENTS_PER_T, 1
        else:
            span, per_t, step = count, 0, SNAPSHOT_STEP
        return {
            "CTEL_BASE": self.base(self.connector_ids[0]),
            "CTEL_TOKEN": self.token,
            "CTEL_SPAN": str(span),
            "CTEL_PER_T": str(per_t),
            "CTEL_STEP": str(step),
            "CTEL_T0": str(T0),
        }


def _event_items(rng: random.Random, start: int, stop: int) -> list[dict[str, Any]]:
    items = []
    kinds = events.KINDS
    for i in range(start, stop):
        kind = kinds[rng.randrange(len(kinds))]
        payload: dict[str, object] = {"k": kind}
        if kind == "StartUpgrade":
            payload["url"] = "https://updates.example.net/connector/2026.11.2.bundle"
        elif kind.startswith("Rekey"):
            payload["tunnel_id"] = "a6a3a4506513270e269e0d37f2a74de4"
        items.append(
            {"e": payload, "t": T0 + i // EVENTS_PER_T, "n": i % EVENTS_PER_T, "v": "2026.11.2"}
        )
    return items


@cache
def snapshot_pool() -> tuple[dict[str, Any], ...]:
    """Realistic snapshots, as ``ctel simulate`` makes them: four simulated connectors of
    different hardware, two days every 5 minutes (~1,150 snapshots of ~10 KB, ~170 fields
    with nested disks, netdevs, interfaces, mounts, routes, tunnels, ...). Benchmarks
    cycle through them with their own ``t``."""
    from connector_telemetry.simulate import SimConfig, generate_fleet

    config = SimConfig(start=float(T0), seed=7, connectors=4, days=2, interval=300)
    return tuple(snap for sim in generate_fleet(config) for snap in sim.snapshots())


def _snapshot_items(start: int, stop: int) -> list[dict[str, Any]]:
    pool = snapshot_pool()
    return [{**pool[i % len(pool)], "t": T0 + i * SNAPSHOT_STEP} for i in range(start, stop)]


def build(db: str, total: int, kind: str = "events", batch: int = 10_000) -> Fleet:
    """A fleet with ``total`` events (4 per second of t) or snapshots (one every
    ``SNAPSHOT_STEP`` seconds), stored through the store in ``batch``-item transactions."""
    assert kind in KINDS
    store = open_store(Settings(db=db, busy_timeout_ms=60_000))
    store.migrate()
    account_id = credentials.create_account(store)
    _, token = credentials.create_token(store, account_id, "Magic WAN Read")
    rng = random.Random(1)
    ids: list[str] = []
    if kind == "snapshots":
        batch = min(batch, 1000)  # ~10 MB per transaction
    for start in range(0, total, PER_CONNECTOR):
        connector, _ = connectors.create_connector(
            store, account_id, {"device": {"serial_number": f"bench-{kind}-{start}"}}
        )
        ids.append(connector.id)
        count = min(PER_CONNECTOR, total - start)
        for offset in range(0, count, batch):
            stop = min(offset + batch, count)
            if kind == "events":
                body = orjson.dumps(_event_items(rng, offset, stop))
                parsed = events.parse_batch(body, "application/json", batch)
                store.record_events(account_id, connector.id, parsed, float(T0))
            else:
                body = orjson.dumps(_snapshot_items(offset, stop))
                snaps = snapshots.parse_batch(body, "application/json", batch)
                store.record_snapshots(account_id, connector.id, snaps, float(T0))
    store.close()
    return Fleet(db, account_id, token, ids, total, kind)


def event_batches(count: int, size: int, offset: int) -> Batches:
    """``count`` batches of ``size`` events with keys unique to batch ``offset`` on."""
    kinds = ("Init", "Reconcile", "StartRotatePki", "FinishRotatePkiSuccess", "HaTransition")
    out = []
    for b in range(count):
        t_base = T0 + (offset + b) * size
        out.append(
            [
                {
                    "e": {"k": kinds[i % len(kinds)], "seq": i},
                    "t": t_base + i // EVENTS_PER_T,
                    "n": i % EVENTS_PER_T,
                    "v": "2026.11.2",
                }
                for i in range(size)
            ]
        )
    return out


def snapshot_batches(count: int, size: int, offset: int) -> Batches:
    """``count`` batches of ``size`` snapshots (from :func:`snapshot_pool`) with keys
    unique to batch ``offset`` on."""
    return [_snapshot_items((offset + b) * size, (offset + b + 1) * size) for b in range(count)]


def ingest_target(db: str, kind: str, connectors_needed: int) -> tuple[str, list[str]]:
    """A migrated database with an account, a write token and ``connectors_needed`` fresh
    connectors: the token and each connector's ingest path for ``kind``."""
    store = open_store(Settings(db=db, busy_timeout_ms=60_000))
    store.migrate()
    account = credentials.create_account(store)
    _, token = credentials.create_token(store, account, "Magic WAN Write")
    paths = []
    for r in range(connectors_needed):
        connector, _ = connectors.create_connector(store, account, {"device": {"id": f"b{r}"}})
        paths.append(Fleet(db, account, token, [], 0, kind).base(connector.id))
    store.close()
    return token, paths
