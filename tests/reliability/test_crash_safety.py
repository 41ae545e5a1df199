"""Crash safety: clients ingest events and snapshots concurrently while the whole server
(granian master and workers) is SIGKILLed at random moments and restarted, again and again;
on both stores. On PostgreSQL (its own cluster, with fsync and synchronous commit on, as in
production) some cycles also crash the database server itself (``pg_ctl stop -m immediate``,
as a power cut): at the same moment as ctel, or alone, while ctel keeps serving (which must
answer 503 meanwhile and recover by itself once the database is back).

Afterwards:
- every event and snapshot whose ingest request was acknowledged (HTTP 200 received) is
  stored exactly once, with the content that was sent;
- no batch is half-stored: each event batch has its own ``t`` (and ``n`` = 0..size-1), each
  snapshot batch its own block of ``t``, so for every batch sent, acknowledged or not,
  either all of it is stored or none;
- re-sending an unacknowledged batch answers 200 with ``duplicates`` either 0 or the whole
  batch (never a part);
- the store's own consistency checks pass after every crash and at the end: SQLite's
  ``PRAGMA integrity_check``; on PostgreSQL, amcheck's ``verify_heapam`` on every table and
  ``bt_index_check`` (with ``heapallindexed``) on every B-tree index.

Through a network (issue 13): ``postgres-proxy`` serves through ``support.netdelay``
(0.25 ms each way) and its cycles crash ctel and the database as above, or cut every
connection mid-request (``network``: ctel answers 503 meanwhile and recovers by itself).

Sizes: CI 10 kill/restart cycles per store (3 through the proxy), ``CTEL_FULL=1`` 100 (12).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connector_telemetry.testing import TemporaryPostgres, postgres_bindir
from support import (
    STORES,
    Tenant,
    create_connector,
    events_path,
    fresh_db,
    start_server,
    stop_server,
)
from support.netdelay import NetDelay
from support.reliability import hard_kill, report, size

pytestmark = pytest.mark.slow

CYCLES = size(10, 100)
PROXY_CYCLES = size(3, 12)  # through support.netdelay: one of each mode on CI
CLIENTS = 4
WORKERS = 2
SEED = 20261126
T0 = 1_700_000_000
KINDS = ("Init", "Reconcile", "StartRotatePki", "FinishRotatePkiSuccess", "HaTransition")
SIZES = (1, 2, 5, 10, 30, 100, 300)  # items per batch
BLOCK = 1000  # snapshot batch g holds t = T0 + g*BLOCK + i


def event(t: int, i: int) -> dict[str, Any]:
    """The i-th event of the batch at t (rebuilt when checking, rather than kept)."""
    return {"e": {"k": KINDS[(t + i) % len(KINDS)], "batch": t, "i": i}, "t": t, "n": i, "v": "2.0"}


def snapshot(t: int) -> dict[str, Any]:
    """The snapshot at t: the required fields and a few others, nested items included."""
    return {
        "t": t,
        "v": "2.0",
        "count_reclaim_failures": t % 3,
        "count_reclaimed_paths": t % 5,
        "count_record_failed": 0,
        "count_transmit_failures": t % 2,
        "cpu_count": 4,
        "mem_used": float(t % 1000) * 1024.0,
        "bonds": [{"name": "bond0", "status": "up" if t % 2 else "degraded"}],
    }


@dataclass
class Batch:
    kind: str  # "events" or "snapshots"
    group: int  # events: every event has t = group, n = 0..size-1; snapshots: see BLOCK
    size: int
    acked: bool = False
    attempts: int = 0

    def body(self) -> bytes:
        if self.kind == "events":
            return orjson.dumps([event(self.group, i) for i in range(self.size)])
        base = T0 + self.group * BLOCK
        return orjson.dumps([snapshot(base + i) for i in range(self.size)])


def group_of(kind: str, key: tuple[float, ...]) -> int:
    """The batch a stored event (t, n) or snapshot (t,) belongs to."""
    return int(key[0]) if kind == "events" else (int(key[0]) - T0) // BLOCK


@dataclass
class Ledger:
    """What the clients sent and what they were told, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: dict[tuple[str, int], Batch] = field(default_factory=dict)
    next_group: dict[str, int] = field(default_factory=lambda: {"events": T0, "snapshots": 0})
    unexpected: list[str] = field(default_factory=list)
    transport_errors: int = 0
    unavailable: int = 0  # 503 answers (PostgreSQL down)
    last_ack: float = 0.0  # time.monotonic() of the latest 200
    lost_acks: int = 0  # unacknowledged, yet found whole when re-sent

    def new_batch(self, rng: random.Random) -> Batch:
        kind = "events" if rng.random() < 0.7 else "snapshots"
        with self.lock:
            group = self.next_group[kind]
            self.next_group[kind] += 1
            batch = self.batches[kind, group] = Batch(kind, group, rng.choice(SIZES))
        return batch


class Sender:
    """One client connection's requests, and what it learnt from them."""

    def __init__(self, http: httpx.Client, paths: dict[str, str], ledger: Ledger):
        self.http, self.paths, self.ledger = http, paths, ledger

    def send(self, batch: Batch) -> bool:
        """One ingest request; False when the connection failed (the server is gone)."""
        ledger = self.ledger
        batch.attempts += 1
        try:
            response = self.http.post(
                self.paths[batch.kind],
                content=batch.body(),
                headers={"content-type": "application/json"},
            )
        except httpx.TransportError:
            with ledger.lock:
                ledger.transport_errors += 1
            return False
        if response.status_code == 503 and response.json()["errors"][0]["code"] == 1503:
            with ledger.lock:
                ledger.unavailable += 1
            time.sleep(0.02)
            return True
        if response.status_code != 200:
            with ledger.lock:
                ledger.unexpected.append(
                    f"{batch.kind} {batch.group}: HTTP {response.status_code} {response.text[:300]}"
                )
            return True
        result = response.json()["result"]
        retry = batch.attempts > 1
        ok = result["accepted"] + result["duplicates"] == batch.size and (
            result["duplicates"] in (0, batch.size) if retry else result["duplicates"] == 0
        )
        with ledger.lock:
            if not ok:
                ledger.unexpected.append(
                    f"{batch.kind} {batch.group} of {batch.size} (attempt {batch.attempts}): "
                    f"{result}"
                )
            if retry and result["duplicates"] == batch.size:
                ledger.lost_acks += 1
            ledger.last_ack = time.monotonic()
        batch.acked = True
        return True


def client(
    api: str,
    paths: dict[str, str],
    tenant: Tenant,
    ledger: Ledger,
    retries: list[Batch],
    rng: random.Random,
    stop: threading.Event,
    deadline: float,
) -> None:
    with httpx.Client(base_url=api, headers=tenant.write, timeout=20) as http:
        sender = Sender(http, paths, ledger)
        for batch in retries:
            if stop.is_set() or not sender.send(batch):
                return
        sent = 0
        while not stop.is_set() and time.monotonic() < deadline and sent < 100_000:
            sent += 1
            if not sender.send(ledger.new_batch(rng)):
                return


def list_all(http: httpx.Client, path: str, expected_max: int) -> list[tuple[float, ...]]:
    """Every event (t, n) or snapshot (t,) of the connector through its List, with cursor
    paging."""
    keys: list[tuple[float, ...]] = []
    params: dict[str, Any] = {"from": 0, "to": "inf", "limit": 1000}
    for _ in range(expected_max // 1000 + 10):
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        keys += [
            (item["t"], item["n"]) if "n" in item else (item["t"],) for item in result["items"]
        ]
        if "cursor" not in result:
            return keys
        params["cursor"] = result["cursor"]
    raise AssertionError("List kept returning a cursor")


# -- the two stores, as the test sees them ---------------------------------------------


class Target:
    """Where the server stores: its ``--db``, its consistency checks and its raw rows."""

    db: str
    #: What the server is given as ``--db`` (another way to the same database: a proxy).
    serve_db: str
    cycles = CYCLES

    def integrity(self) -> list[str]:
        """The store's consistency check: empty or ["ok"] when sound."""
        raise NotImplementedError

    def rows(self, kind: str) -> Iterator[tuple[tuple[float, ...], bytes]]:
        """Every stored (key, document) of ``kind``, read from the database itself."""
        raise NotImplementedError

    def crash_modes(self) -> tuple[str, ...]:
        return ("ctel",)

    def crash_database(self) -> None:
        raise NotImplementedError

    def restart_database(self) -> None:
        raise NotImplementedError


class SqliteTarget(Target):
    def __init__(self, db: str):
        self.db = self.serve_db = db

    def integrity(self) -> list[str]:
        with closing(sqlite3.connect(self.db)) as conn:
            return [row[0] for row in conn.execute("PRAGMA integrity_check")]

    def rows(self, kind: str) -> Iterator[tuple[tuple[float, ...], bytes]]:
        key = "t, n" if kind == "events" else "t"
        with closing(sqlite3.connect(self.db)) as conn:
            for row in conn.execute(f"SELECT {key}, doc FROM {kind}"):
                yield tuple(row[:-1]), row[-1]


class PostgresTarget(Target):
    def __init__(self, cluster: TemporaryPostgres, db: str, proxy: NetDelay | None = None):
        self.cluster, self.db, self.proxy = cluster, db, proxy
        self.serve_db = db if proxy is None else proxy.url(db)
        if proxy is not None:
            self.cycles = PROXY_CYCLES

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.db, autocommit=True)

    def integrity(self) -> list[str]:
        """amcheck: every table's heap, and every B-tree index against its heap."""
        problems: list[str] = []
        with self._connect() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            tables = conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace s "
                "ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind = 'r'"
            ).fetchall()
            for (table,) in tables:
                for row in conn.execute("SELECT * FROM verify_heapam(%s::regclass)", (table,)):
                    problems.append(f"{table}: {row}")
            indexes = conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace s "
                "ON s.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam "
                "WHERE s.nspname = 'public' AND c.relkind = 'i' AND am.amname = 'btree'"
            ).fetchall()
            for (index,) in indexes:
                conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
            assert tables and indexes, "amcheck found nothing to check"
        return problems or ["ok"]

    def rows(self, kind: str) -> Iterator[tuple[tuple[float, ...], bytes]]:
        key = "t, n" if kind == "events" else "t"
        with self._connect() as conn:
            for row in conn.execute(f"SELECT {key}, doc FROM {kind}"):
                yield tuple(row[:-1]), bytes(row[-1])

    def crash_modes(self) -> tuple[str, ...]:
        if self.proxy is not None:
            return ("network", "database", "both")
        return ("ctel", "both", "database")

    def cut_network(self) -> None:
        assert self.proxy is not None
        self.proxy.drop_all()

    def crash_database(self) -> None:
        self.cluster.crash()

    def restart_database(self) -> None:
        self.cluster.start()


@pytest.fixture(params=[*STORES, *(["postgres-proxy"] if "postgres" in STORES else [])])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Target, Tenant]]:
    if request.param == "sqlite":
        db, tenant = fresh_db(tmp_path)
        yield SqliteTarget(db), tenant
        return
    if postgres_bindir() is None:
        pytest.skip("the PostgreSQL crash test needs PostgreSQL's server binaries")
    # its own cluster: durable (fsync on), and ours to crash
    cluster = TemporaryPostgres(durable=True, use_database_url=False)
    proxy = None
    try:
        db, tenant = fresh_db(tmp_path, cluster.new_database("ctel_crash"))
        if request.param == "postgres-proxy":
            proxy = NetDelay(("127.0.0.1", cluster.port), 0.25).start()
        yield PostgresTarget(cluster, db, proxy), tenant
    finally:
        if proxy is not None:
            proxy.close()
        cluster.stop()


def expected(kind: str, key: tuple[float, ...]) -> dict[str, Any]:
    if kind == "events":
        return event(int(key[0]), int(key[1]))
    return snapshot(int(key[0]))


def test_sigkill_during_concurrent_ingest(
    target: tuple[Target, Tenant], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store, tenant = target
    log = tmp_path / "ctel.log"
    rng = random.Random(SEED)
    ledger = Ledger()
    server = start_server(store.serve_db, workers=WORKERS, log_path=log)
    try:
        connector_id = create_connector(server.api, tenant)["id"]
    finally:
        stop_server(server)
    events = events_path(tenant.account_id, connector_id)
    paths = {"events": events, "snapshots": events.replace("/events", "/snapshots")}
    modes = store.crash_modes()
    recovered: list[bool] = []  # per database-only crash: did ctel answer 200 again?
    pending: list[Batch] = []  # unacknowledged batches to re-send in the next cycle
    started = time.monotonic()
    for cycle in range(store.cycles):
        mode = modes[cycle % len(modes)]
        server = start_server(store.serve_db, workers=WORKERS, log_path=log)
        stop = threading.Event()
        retries = [b for b in pending if b.group % 2 == 0]  # odd ones stay unacknowledged
        threads = [
            threading.Thread(
                target=client,
                args=(
                    server.api,
                    paths,
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
            if mode in ("database", "network"):
                if mode == "database":  # PostgreSQL goes down under a live ctel, and back
                    store.crash_database()
                    time.sleep(rng.uniform(0.1, 0.5))
                    store.restart_database()
                else:  # every connection cut mid-request (the proxy)
                    store.cut_network()
                back = time.monotonic()
                while ledger.last_ack <= back and time.monotonic() < back + 10:
                    time.sleep(0.05)
                recovered.append(ledger.last_ack > back)  # a batch acknowledged since
                time.sleep(rng.uniform(0.05, 0.5))
            elif mode == "both":  # a power cut: the database and ctel at once
                store.crash_database()
        finally:
            hard_kill(server)
            stop.set()
            for thread in threads:
                thread.join(30)
            if mode == "both":
                store.restart_database()
        assert not any(thread.is_alive() for thread in threads), "a client did not stop"
        assert store.integrity() == ["ok"], f"after crash {cycle + 1} ({mode})"
        pending = [b for b in ledger.batches.values() if not b.acked and b.attempts == 1]

    server = start_server(store.serve_db, workers=WORKERS, log_path=log)
    try:
        with httpx.Client(base_url=server.api, headers=tenant.read, timeout=60) as http:
            total_sent = sum(b.size for b in ledger.batches.values())
            listed = {kind: list_all(http, path, total_sent) for kind, path in paths.items()}
            latest = http.get(events + "/latest", params={"limit": 1}).json()["result"]["items"]
    finally:
        stop_server(server)
    elapsed = time.monotonic() - started

    assert ledger.unexpected == [], ledger.unexpected[:20]
    assert all(recovered), f"ctel did not recover from a PostgreSQL restart: {recovered}"
    stored_per_batch: Counter[tuple[str, int]] = Counter()
    for kind, keys in listed.items():
        repeated = [key for key, count in Counter(keys).items() if count > 1]
        assert repeated == [], f"{kind} listed more than once: {repeated[:20]}"
        stored_per_batch.update((kind, group_of(kind, key)) for key in keys)
        in_db: set[tuple[float, ...]] = set()
        wrong: list[tuple[float, ...]] = []
        for key, doc in store.rows(kind):
            in_db.add(key)
            if orjson.loads(doc) != expected(kind, key) and len(wrong) < 20:
                wrong.append(key)
        assert in_db == set(keys), f"the API and the database disagree on the stored {kind}"
        assert wrong == [], f"stored {kind} differ from what was sent: {wrong}"
    unknown = set(stored_per_batch) - set(ledger.batches)
    assert not unknown, f"stored items nobody sent: {sorted(unknown)[:20]}"
    half = {
        key: (stored_per_batch[key], b.size)
        for key, b in ledger.batches.items()
        if stored_per_batch[key] not in (0, b.size)
    }
    assert half == {}, f"half-stored batches (key: (stored, sent)): {dict(list(half.items())[:20])}"
    missing = [key for key, b in ledger.batches.items() if b.acked and stored_per_batch[key] == 0]
    assert missing == [], f"acknowledged batches lost: {missing[:20]}"
    if listed["events"]:
        top = max(listed["events"])
        assert (latest[0]["t"], latest[0]["n"]) == top
    assert store.integrity() == ["ok"]

    acked = sum(b.acked for b in ledger.batches.values())
    unacked = len(ledger.batches) - acked
    unacked_stored = sum(
        1 for k, b in ledger.batches.items() if not b.acked and stored_per_batch[k]
    )
    assert ledger.transport_errors > 0, "no request was ever cut by a kill: the test proved nothing"
    by_kind = Counter(kind for kind, _ in ledger.batches)
    per_mode = Counter(modes[c % len(modes)] for c in range(store.cycles))
    report(
        request.config,
        f"crash safety ({request.node.callspec.id}): {store.cycles} cycles {dict(per_mode)} "
        f"({WORKERS} workers, {CLIENTS} clients) in {elapsed:.1f} s; {len(ledger.batches)} "
        f"batches ({dict(by_kind)}) / {total_sent} items sent, {acked} batches acknowledged, "
        f"{unacked} not ({unacked_stored} of those stored whole, {ledger.lost_acks} found whole "
        f"on re-send); {sum(len(k) for k in listed.values())} items stored; "
        f"{ledger.transport_errors} requests cut by kills, {ledger.unavailable} answered 503 "
        f"while PostgreSQL was down",
    )
