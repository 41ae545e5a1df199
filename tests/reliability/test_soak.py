"""Soak: mixed reads and ingest of events and snapshots at about 70% of the measured maximum,
for a bounded time, on each store.

A dedicated server (2 workers, fresh database with some history) is first driven flat out for
a few seconds by a few client threads to measure the mixed requests/s it sustains; then the
same mix runs rate-limited to 70% of that. Every response must be a 200 success (no transport
error either), the workers must stay the same processes, and each worker's VmRSS at the end
must be under 10% above its VmRSS after the warm-up.

Sizes: CI 30 s (RSS baseline after 6 s), ``CTEL_FULL=1`` 10 min (baseline after 60 s).
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from support import Tenant, create_connector, events_path, start_server, stop_server
from support.reliability import children, report, size, vm_rss_kb

pytestmark = pytest.mark.slow

SOAK_SECONDS = size(30, 600)
WARMUP_SECONDS = size(6, 60)
MEASURE_SECONDS = 3.0
LOAD_FACTOR = 0.70
THREADS = 4
WORKERS = 2
MAX_RSS_GROWTH = 0.10
MAX_WAL_MB = 16  # SQLite checkpoints at ~4 MB (1000 pages) when no reader stands in the way
SEED = 20261126
T0 = 1_600_000_000
HISTORY = 5_000  # events stored before the soak (t = T0 .. T0+999, n = 0..4)
RECONNECT_EVERY = 500  # requests per keep-alive connection: spreads clients over the workers
#: The mix, by weight (one request of each kind, chosen at random).
OPS, WEIGHTS = zip(
    *{
        "get events": 40, "list events": 10, "latest events": 10, "ingest events": 10,
        "get snapshots": 10, "list snapshots": 5, "latest snapshots": 5, "ingest snapshots": 10,
    }.items(),
    strict=True,
)  # fmt: skip
KINDS = ("Init", "Reconcile", "StartRotatePki", "FinishRotatePkiSuccess", "HaTransition")


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    latencies: list[float] = field(default_factory=list)

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.done[kind] += 1
            if len(self.latencies) < 2_000_000:
                self.latencies.append(seconds)

    def fail(self, what: str) -> None:
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(what)

    @property
    def total(self) -> int:
        return sum(self.done.values())


def snapshot(t: int) -> dict[str, object]:
    return {
        "t": t,
        "v": "2.0",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": t % 7,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
        "cpu_count": 4,
        "load_average": 0.25,
        "interfaces": [
            {"name": "eth0", "operstate": "up", "ip_addresses": [
                {"interface_name": "eth0", "ip_address": "192.0.2.10/24"}
            ]},
        ],
    }  # fmt: skip


class Mix:
    """One client's requests: 40% Get Event, 10% List Events, 10% Latest events, 10% ingest of
    a 5-event batch with fresh (t, n) keys; 10% Get Snapshot, 5% List Snapshots, 5% Latest
    snapshots, 10% ingest of a 2-snapshot batch with fresh t."""

    def __init__(self, base: str, tenant: Tenant, connector_id: str, client_no: int, seed: int):
        self.path = base + events_path(tenant.account_id, connector_id)
        self.snapshots = self.path.replace("/events", "/snapshots")
        self.read = {"Authorization": f"Bearer {tenant.read_token}"}
        self.write = {
            "Authorization": f"Bearer {tenant.write_token}",
            "Content-Type": "application/json",
        }
        self.rng = random.Random(seed)
        # Ingest keys: this client's own range of t, so clients never collide.
        self.next_t = T0 + 1_000_000 * (client_no + 1)

    def next(self) -> tuple[str, str, str, dict[str, str], bytes | None]:
        op = self.rng.choices(OPS, WEIGHTS)[0]
        action, kind = op.split()
        path = self.path if kind == "events" else self.snapshots
        if action == "get":
            t = T0 + self.rng.randrange(HISTORY // 5)
            key = f"{t}.{self.rng.randrange(5)}" if kind == "events" else f"{t}"
            return op, "GET", f"{path}/{key}", self.read, None
        if action == "list":
            start = T0 + self.rng.randrange(HISTORY // 5)
            query = f"?from={start}&to={start + 50}&limit=100"
            return op, "GET", path + query, self.read, None
        if action == "latest":
            return op, "GET", path + "/latest", self.read, None
        t = self.next_t
        self.next_t += 5
        if kind == "events":
            body = [
                {"e": {"k": KINDS[i], "soak": True}, "t": t, "n": i, "v": "2.0"} for i in range(5)
            ]
        else:
            body = [snapshot(t), snapshot(t + 1)]
        return op, "POST", path, self.write, orjson.dumps(body)


def drive(
    host: str,
    port: int,
    mix: Mix,
    tally: Tally,
    stop: threading.Event,
    until: float,
    interval: float | None,
) -> None:
    """Send ``mix`` requests on keep-alive connections (a new one every ``RECONNECT_EVERY``
    requests) until ``until`` (or ``stop``); with ``interval``, paced to one request per
    ``interval`` seconds."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    next_at = time.monotonic()
    sent = 0
    try:
        for _ in range(100_000_000):
            now = time.monotonic()
            if stop.is_set() or now >= until:
                return
            if interval is not None:
                if next_at > now:
                    time.sleep(min(next_at - now, until - now))
                    continue
                # Never more than a second's worth of catching up in one burst.
                next_at = max(next_at + interval, now - 1.0)
            kind, method, url, headers, body = mix.next()
            sent += 1
            if sent % RECONNECT_EVERY == 0:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            started = time.monotonic()
            try:
                conn.request(method, url, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                tally.fail(f"{method} {url}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                continue
            elapsed = time.monotonic() - started
            if response.status != 200 or b'"success":true' not in payload:
                tally.fail(f"{method} {url}: {response.status} {payload[:300]!r}")
            else:
                tally.ok(kind, elapsed)
    finally:
        conn.close()


def run_phase(
    server_api: str,
    mixes: list[Mix],
    seconds: float,
    rate: float | None,
    checkpoints: list[tuple[float, Callable[[], None]]] | None = None,
) -> tuple[Tally, float]:
    """Drive one client thread per mix for ``seconds`` (paced to ``rate`` requests/s in total
    when given), calling each checkpoint's function at its time into the phase."""
    parts = urlsplit(server_api)
    tally = Tally()
    stop = threading.Event()
    started = time.monotonic()
    until = started + seconds
    interval = None if rate is None else len(mixes) / rate
    threads = [
        threading.Thread(
            target=drive,
            args=(parts.hostname, parts.port, mix, tally, stop, until, interval),
            daemon=True,
        )
        for mix in mixes
    ]
    try:
        for thread in threads:
            thread.start()
        for at, function in checkpoints or []:
            time.sleep(max(0.0, started + at - time.monotonic()))
            function()
        for thread in threads:
            thread.join(seconds + 60)
    finally:
        stop.set()
    assert not any(thread.is_alive() for thread in threads), "a soak client did not stop"
    return tally, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def wal_mb(db: str) -> float | None:
    """The size of a SQLite database's write-ahead log, MB (None for PostgreSQL)."""
    path = Path(db + "-wal")
    return path.stat().st_size / 2**20 if path.exists() else None


def test_soak_mixed_load(
    fresh: tuple[str, Tenant], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, tenant = fresh
    server = start_server(db, workers=WORKERS, log_path=tmp_path / "ctel.log")
    try:
        connector_id = create_connector(server.api, tenant)["id"]
        history = [
            {"e": {"k": KINDS[n], "seq": t}, "t": T0 + t, "n": n, "v": "2.0"}
            for t in range(HISTORY // 5)
            for n in range(5)
        ]
        snapshots = [snapshot(T0 + t) for t in range(HISTORY // 5)]
        parts = urlsplit(server.api)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        path = "/client/v4" + events_path(tenant.account_id, connector_id)
        try:
            for url, items in ((path, history), (path.replace("/events", "/snapshots"), snapshots)):
                conn.request(
                    "POST",
                    url,
                    body=orjson.dumps(items),
                    headers={**tenant.write, "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                assert response.status == 200, response.read()
                response.read()
        finally:
            conn.close()
        workers = sorted(children(server.process.pid))
        assert len(workers) == WORKERS, workers

        def mixes(seed: int) -> list[Mix]:
            return [Mix("/client/v4", tenant, connector_id, i, seed + i) for i in range(THREADS)]

        # 1. The maximum: flat out for a few seconds.
        measured, measured_for = run_phase(server.api, mixes(SEED), MEASURE_SECONDS, None)
        assert measured.error_count == 0, measured.errors
        max_rps = measured.total / measured_for
        target = LOAD_FACTOR * max_rps

        # 2. The soak at 70% of it, with an RSS reading after the warm-up.
        baseline: dict[int, int] = {}

        def sample_baseline() -> None:
            baseline.update({pid: vm_rss_kb(pid) for pid in workers})

        soaked, soaked_for = run_phase(
            server.api,
            mixes(SEED + 100),
            SOAK_SECONDS,
            target,
            checkpoints=[(WARMUP_SECONDS, sample_baseline)],
        )
        end = {pid: vm_rss_kb(pid) for pid in workers}
        still = sorted(children(server.process.pid))
        wal = wal_mb(db)
    finally:
        stop_server(server)

    achieved = soaked.total / soaked_for
    growth = {pid: (end[pid] - baseline[pid]) / baseline[pid] for pid in workers}
    report(
        request.config,
        f"soak ({request.node.callspec.id}): measured max {max_rps:.0f} mixed req/s "
        f"({THREADS} client threads, "
        f"{WORKERS} workers); soaked {soaked_for:.0f} s at target {target:.0f} req/s, achieved "
        f"{achieved:.0f} req/s ({soaked.total} requests: {dict(soaked.done)}), "
        f"p50 {1000 * percentile(soaked.latencies, 0.5):.1f} ms, "
        f"p99 {1000 * percentile(soaked.latencies, 0.99):.1f} ms, {soaked.error_count} errors; "
        "worker VmRSS after warm-up -> end: "
        + ", ".join(
            f"{baseline[pid] / 1024:.1f} -> {end[pid] / 1024:.1f} MiB ({100 * growth[pid]:+.1f}%)"
            for pid in workers
        )
        + (
            ""
            if wal is None
            else f"; WAL {wal:.1f} MB, database {Path(db).stat().st_size / 2**20:.1f} MB"
        ),
    )
    assert soaked.error_count == 0, soaked.errors
    assert still == workers, f"worker processes changed during the soak: {workers} -> {still}"
    assert achieved >= 0.85 * target, f"the soak ran at {achieved:.0f} req/s, not {target:.0f}"
    too_much = {pid: f"{100 * g:.1f}%" for pid, g in growth.items() if g >= MAX_RSS_GROWTH}
    assert too_much == {}, f"worker RSS grew by 10% or more: {too_much}"
    # Checkpoints keep up although the workers hold read transactions between commits
    # (store.sqlite_held.HeldReader): the log is reused from its start, not grown without end.
    assert wal is None or wal < MAX_WAL_MB, f"the WAL grew to {wal:.1f} MB"
