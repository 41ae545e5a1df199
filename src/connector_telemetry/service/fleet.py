"""The fleet summary (ours, for the dashboard's fleet page): every connector of an account
with the health of its latest snapshot and its most recent failure, in one cheap read.

Reading the two newest snapshots and scanning events for the newest failure of 10,000
connectors at request time would read hundreds of megabytes. Instead, ingest keeps per
connector (inside its write transaction, see ``store``) a small health record of each of
its two newest snapshots (``summarize``) and the key and kind of its newest failure
event; this module turns those columns into the answer. CPU use needs two readings
(it is a rate of counters), hence two records.
"""

from __future__ import annotations

import heapq
from typing import Any

import orjson

from connector_telemetry import clock
from connector_telemetry.models import FleetRow, NewSnapshot
from connector_telemetry.numbers import wire
from connector_telemetry.service import readings
from connector_telemetry.store.base import Store

#: How far back ``changed_since`` looks before the time asked for: ingest stamps the
#: heartbeat when a batch arrives, and the batch may commit a little later (a busy writer).
SINCE_OVERLAP_SECONDS = 10.0
_LAST_SECOND = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def summarize(doc: bytes) -> bytes:
    """The health record of one snapshot document, as kept on its connector's row: the
    fleet summary's ``snapshot`` object but for ``cpu``, which holds the CPU counters here
    (``[busy, total]`` ms) and becomes a use between two records when read."""
    r = readings.read(doc)
    disk = readings.fullest_mount(r)
    memory = readings.memory_used(r)
    record: dict[str, Any] = {
        "t": wire(r.t),
        "cpu": readings.cpu_counters(r),
        "load_1m": r.load_average_1m,
        "memory": None if memory is None else round(memory, 4),
        "disk": None if disk is None else {"mount": disk[0], "used": round(disk[1], 4)},
        "tunnels": readings.tunnel_counts(r),
    }
    return orjson.dumps(record)


def mark_newest(snapshots: list[NewSnapshot]) -> None:
    """Give the batch's two newest snapshots their health records (the store keeps the
    two newest it has seen; older ones in a batch could never be among them)."""
    for snap in heapq.nlargest(2, {s.t: s for s in snapshots}.values(), key=lambda s: s.t):
        snap.summary = summarize(snap.doc)


def _snapshot_summary(
    latest: tuple[float, bytes] | None, previous: tuple[float, bytes] | None
) -> dict[str, Any] | None:
    if latest is None:
        return None
    out: dict[str, Any] = orjson.loads(latest[1])
    counters = out["cpu"]
    out["cpu"] = out["interval"] = None
    if previous is not None:
        out["interval"] = round(latest[0] - previous[0], 3)
        before = orjson.loads(previous[1])["cpu"]
        if counters is not None and before is not None:
            cpu = readings.cpu_use((before[0], before[1]), (counters[0], counters[1]))
            out["cpu"] = None if cpu is None else round(cpu, 4)
    return out


def _from_documents(docs: list[bytes]) -> tuple[tuple[float, bytes] | None, ...]:
    """Health records of up to two snapshot documents, newest first (for connectors
    whose records predate schema 4, computed at read time until they report again)."""
    found: list[tuple[float, bytes] | None] = []
    for doc in docs[:2]:
        record = summarize(doc)
        found.append((float(orjson.loads(record)["t"]), record))
    found += [None] * (2 - len(found))
    return tuple(found)


def fleet_item(store: Store, row: FleetRow) -> dict[str, Any]:
    latest, previous = row.health, row.health_prev
    if row.health_unknown:
        latest, previous = _from_documents(store.latest_snapshots(row.account_id, row.id, 2))
    device_id, device_type, serial = row.device
    device: dict[str, Any] = {"id": device_id, "type": device_type}
    if serial is not None:
        device["serial_number"] = serial
    out: dict[str, Any] = {
        "id": row.id,
        "activated": row.activated,
        "notes": row.notes,
        "device": device,
    }
    if row.last_heartbeat is not None:
        out["last_heartbeat"] = row.last_heartbeat
    if row.last_seen_version is not None:
        out["last_seen_version"] = row.last_seen_version
    out["snapshot"] = _snapshot_summary(latest, previous)
    out["failure"] = (
        None
        if row.failure is None
        else {"t": wire(row.failure[0]), "n": wire(row.failure[1]), "k": row.failure[2]}
    )
    return out


def fleet_summary(
    store: Store, account_id: str, changed_since: float | None = None
) -> dict[str, Any]:
    """``{as_of, connectors}``: every connector of the account (or only those whose
    heartbeat or settings changed at or after ``changed_since``, less the overlap), in
    creation order. ``as_of`` is the server's clock, for the next ``changed_since``."""
    as_of = clock.now()
    since = None
    if changed_since is not None:
        # Within what RFC 3339 can say (year 9999): a later time simply matches nothing.
        since = clock.rfc3339(min(max(0.0, changed_since - SINCE_OVERLAP_SECONDS), _LAST_SECOND))
    rows = store.fleet_summary(account_id, since)
    return {"as_of": round(as_of, 3), "connectors": [fleet_item(store, row) for row in rows]}
