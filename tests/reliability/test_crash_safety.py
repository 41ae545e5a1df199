"""Crash safety: clients ingest concurrently while the whole server (granian master and
workers) is SIGKILLed at random moments and restarted, again and again.

Afterwards:
- every event whose ingest request was acknowledged (HTTP 200 received) is stored exactly once,
  with the content that was sent;
- no batch is half-stored: each batch has its own ``t`` (and ``n`` = 0..size-1), so for every
  batch sent, acknowledged or not, either all its events are stored or none;
- re-sending an unacknowledged batch answers 200 with ``duplicates`` either 0 or the whole
  batch (never a part);
- ``PRAGMA integrity_check`` answers ``ok`` after every crash and at the end.

Sizes: CI 10 kill/restart cycles, ``CTEL_FULL=1`` 100.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from reliability_support import create_connector, fresh_db, hard_kill, report, size

from conftest import Tenant, events_path, start_server, stop_server

pytestmark = pytest.mark.slow

CYCLES = size(10, 100)
CLIENTS = 4
WORKERS = 2
SEED = 20261126
T0 = 1_700_000_000
KINDS = ("Init", "Reconcile", "StartRotatePki", "FinishRotatePkiSuccess", "HaTransition")
SIZES = (1, 2, 5, 10, 30, 100, 300)  # events per batch


def event(t: int, i: int) -> dict[str, Any]:
    """The i-th event of the batch at t (rebuilt when checking, rather than kept)."""
    return {"e": {"k": KINDS[(t + i) % len(KINDS)], "batch": t, "i": i}, "t": t, "n": i, "v": "2.0"}


@dataclass
class Batch:
    t: int  # every event of the batch has this t, and n = 0 .. size-1
    size: int
    acked: bool = False
    attempts: int = 0

    def body(self) -> bytes:
        return orjson.dumps([event(self.t, i) for i in range(self.size)])


@dataclass
class Ledger:
    """What the clients sent and what they were told, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: dict[int, Batch] = field(default_factory=dict)
    next_t: int = T0
    unexpected: list[str] = field(default_factory=list)
    transport_errors: int = 0
    lost_acks: int = 0  # unacknowledged, yet found whole when re-sent

    def new_batch(self, rng: random.Random) -> Batch:
        with self.lock:
            t = self.next_t
            self.next_t += 1
        batch = Batch(t, rng.choice(SIZES))
        with self.lock:
            self.batches[t] = batch
        return batch


def send(http: httpx.Client, path: str, batch: Batch, ledger: Ledger) -> bool:
    """One ingest request; False when the connection failed (the server is gone)."""
    batch.attempts += 1
    try:
        response = http.post(
            path,
            content=batch.body(),
            headers={"content-type": "application/json"},
        )
    except httpx.TransportError:
        with ledger.lock:
            ledger.transport_errors += 1
        return False
    if response.status_code != 200:
        with ledger.lock:
            ledger.unexpected.append(
                f"batch t={batch.t}: HTTP {response.status_code} {response.text[:300]}"
            )
        return True
    result = response.json()["result"]
    size_ = batch.size
    retry = batch.attempts > 1
    ok = result["accepted"] + result["duplicates"] == size_ and (
        result["duplicates"] in (0, size_) if retry else result["duplicates"] == 0
    )
    with ledger.lock:
        if not ok:
            ledger.unexpected.append(
                f"batch t={batch.t} of {size_} (attempt {batch.attempts}): {result}"
            )
        if retry and result["duplicates"] == size_:
            ledger.lost_acks += 1
    batch.acked = True
    return True


def client(
    api: str,
    path: str,
    tenant: Tenant,
    ledger: Ledger,
    retries: list[Batch],
    rng: random.Random,
    stop: threading.Event,
    deadline: float,
) -> None:
    with httpx.Client(base_url=api, headers=tenant.write, timeout=20) as http:
        for batch in retries:
            if stop.is_set() or not send(http, path, batch, ledger):
                return
        sent = 0
        while not stop.is_set() and time.monotonic() < deadline and sent < 100_000:
            sent += 1
            if not send(http, path, ledger.new_batch(rng), ledger):
                return


def integrity(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]


def list_all(http: httpx.Client, path: str, expected_max: int) -> list[tuple[float, float]]:
    """Every event of the connector through List Events, with cursor paging."""
    keys: list[tuple[float, float]] = []
    params: dict[str, Any] = {"from": 0, "to": "inf", "limit": 1000}
    for _ in range(expected_max // 1000 + 10):
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        keys += [(item["t"], item["n"]) for item in result["items"]]
        if "cursor" not in result:
            return keys
        params["cursor"] = result["cursor"]
    raise AssertionError("List Events kept returning a cursor")


def check_stored_content(db: Path) -> tuple[set[tuple[float, float]], list[tuple[float, float]]]:
    """Every stored event's key, and the keys whose stored document is not what was sent."""
    keys: set[tuple[float, float]] = set()
    wrong: list[tuple[float, float]] = []
    with closing(sqlite3.connect(db)) as conn:
        for t, n, doc in conn.execute("SELECT t, n, doc FROM events"):
            keys.add((t, n))
            if orjson.loads(doc) != event(int(t), int(n)) and len(wrong) < 20:
                wrong.append((t, n))
    return keys, wrong


def test_sigkill_during_concurrent_ingest(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    db, tenant = fresh_db(tmp_path)
    rng = random.Random(SEED)
    ledger = Ledger()
    server = start_server(db, workers=WORKERS)
    try:
        connector_id = create_connector(server.api, tenant)
    finally:
        stop_server(server)
    path = events_path(tenant.account_id, connector_id)
    pending: list[Batch] = []  # unacknowledged batches to re-send in the next cycle
    started = time.monotonic()
    for cycle in range(CYCLES):
        server = start_server(db, workers=WORKERS)
        stop = threading.Event()
        retries = [b for b in pending if b.t % 2 == 0]  # odd ones stay unacknowledged
        threads = [
            threading.Thread(
                target=client,
                args=(
                    server.api,
                    path,
                    tenant,
                    ledger,
                    retries[i::CLIENTS],
                    random.Random(SEED * 1000 + cycle * CLIENTS + i),
                    stop,
                    time.monotonic() + 30,
                ),
                daemon=True,
            )
            for i in range(CLIENTS)
        ]
        try:
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.05, 1.5))
        finally:
            hard_kill(server)
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not any(thread.is_alive() for thread in threads), "a client did not stop"
        assert integrity(db) == ["ok"], f"after crash {cycle + 1}"
        pending = [b for b in ledger.batches.values() if not b.acked and b.attempts == 1]

    server = start_server(db, workers=WORKERS)
    try:
        with httpx.Client(base_url=server.api, headers=tenant.read, timeout=60) as http:
            total_sent = sum(b.size for b in ledger.batches.values())
            keys = list_all(http, path, total_sent)
            latest = http.get(path + "/latest", params={"limit": 1}).json()["result"]["items"]
    finally:
        stop_server(server)
    elapsed = time.monotonic() - started

    assert ledger.unexpected == [], ledger.unexpected[:20]
    repeated = [key for key, count in Counter(keys).items() if count > 1]
    assert repeated == [], f"events listed more than once: {repeated[:20]}"
    stored_per_batch = Counter(int(t) for t, _ in keys)
    unknown = set(stored_per_batch) - set(ledger.batches)
    assert not unknown, f"stored events nobody sent: t in {sorted(unknown)[:20]}"
    half = {
        t: (stored_per_batch[t], b.size)
        for t, b in ledger.batches.items()
        if stored_per_batch[t] not in (0, b.size)
    }
    assert half == {}, f"half-stored batches (t: (stored, sent)): {dict(list(half.items())[:20])}"
    missing = [t for t, b in ledger.batches.items() if b.acked and stored_per_batch[t] == 0]
    assert missing == [], f"acknowledged batches lost: {missing[:20]}"
    in_db, wrong = check_stored_content(db)
    assert in_db == set(keys), "the API and the database disagree on what is stored"
    assert wrong == [], f"stored content differs from what was sent: {wrong}"
    if keys:
        top = max(keys)
        assert (latest[0]["t"], latest[0]["n"]) == top
    assert integrity(db) == ["ok"]

    acked = sum(b.acked for b in ledger.batches.values())
    unacked = len(ledger.batches) - acked
    unacked_stored = sum(
        1 for t, b in ledger.batches.items() if not b.acked and stored_per_batch[t]
    )
    assert ledger.transport_errors > 0, "no request was ever cut by a kill: the test proved nothing"
    report(
        request.config,
        f"crash safety: {CYCLES} SIGKILL cycles ({WORKERS} workers, {CLIENTS} clients) in "
        f"{elapsed:.1f} s; {len(ledger.batches)} batches / {total_sent} events sent, "
        f"{acked} batches acknowledged, {unacked} not ({unacked_stored} of those stored whole, "
        f"{ledger.lost_acks} found whole on re-send); {len(keys)} events stored; "
        f"{ledger.transport_errors} requests cut by kills",
    )
