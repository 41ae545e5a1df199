"""Databases with N stored events, made fast through the store itself."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import orjson

from connector_telemetry.service import connectors, credentials, events
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store

T0 = 1_700_000_000
PER_CONNECTOR = 1_000_000


@dataclass
class Fleet:
    db: Path
    account_id: str
    token: str
    connector_ids: list[str]
    total: int

    def key(self, i: int) -> tuple[str, int, int]:
        """The connector, t and n of the i-th stored event."""
        return self.connector_ids[i // PER_CONNECTOR], T0 + (i % PER_CONNECTOR) // 4, i % 4


def build(db: Path, total: int, batch: int = 10_000) -> Fleet:
    """A fleet with ``total`` events (at most 1M per connector, 4 per second of t)."""
    store = open_store(Settings(db=str(db), busy_timeout_ms=60_000))
    store.migrate()
    account_id = credentials.create_account(store)
    _, token = credentials.create_token(store, account_id, "Magic WAN Read")
    rng = random.Random(1)
    ids: list[str] = []
    kinds = events.KINDS
    for start in range(0, total, PER_CONNECTOR):
        connector, _ = connectors.create_connector(
            store, account_id, {"device": {"serial_number": f"bench-{start}"}}
        )
        ids.append(connector.id)
        count = min(PER_CONNECTOR, total - start)
        for offset in range(0, count, batch):
            items = []
            for i in range(offset, min(offset + batch, count)):
                kind = kinds[rng.randrange(len(kinds))]
                payload: dict[str, object] = {"k": kind}
                if kind == "StartUpgrade":
                    payload["url"] = "https://updates.example.net/connector/2026.11.2.bundle"
                elif kind.startswith("Rekey"):
                    payload["tunnel_id"] = "a6a3a4506513270e269e0d37f2a74de4"
                items.append({"e": payload, "t": T0 + i // 4, "n": i % 4, "v": "2026.11.2"})
            parsed = events.parse_batch(orjson.dumps(items), "application/json", batch)
            store.record_events(account_id, connector.id, parsed, float(T0))
    store.close()
    return Fleet(db, account_id, token, ids, total)
