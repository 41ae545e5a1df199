"""Failover and shutdown on PostgreSQL as deployed for availability: a primary and a hot
standby with synchronous replication (``TemporaryPostgres.standby()``, durable), and
``ctel serve`` on a multi-host URL with ``target_session_attrs=read-write``.

- The failover under concurrent ingest: the primary is stopped as a power cut would
  (``pg_ctl -m immediate stop``) and the standby promoted a second later. The URL also
  names a host that refuses connections and one that accepts and drops them. Nothing
  acknowledged is lost, nothing is stored twice, writes are back within 10 s of the
  promotion, and reads never stop (the standby serves them meanwhile).
- Without a writable host, writes answer 503 with ``retry-after`` within
  ``pool_timeout_seconds`` while reads go on from the standby; once the primary is back,
  writes are too, and the read connection leaves the standby.
- A primary turned read-only under open connections: 503, never 500, then writes again.
- SIGTERM while the store is unreachable (its primary down, or every commit stalled for a
  synchronous standby that is gone): every process has exited within
  ``shutdown_timeout_seconds``, every request that was accepted got an answer (200 or
  503), and every acknowledged batch is stored.
- Workers never outlive their master, even a SIGKILLed one (the purger neither).

Sizes: CI ingests 2 s before the failover and 3 s after writes are back; CTEL_FULL=1 10 s
and 30 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from connector_telemetry.testing import TemporaryPostgres, multi_host_url, postgres_bindir
from support import (
    STORES,
    LiveServer,
    Tenant,
    create_connector,
    events_path,
    free_port,
    fresh_db,
    start_server,
    stop_server,
)
from support.reliability import DroppingHost, descendants, report, size, wait_gone

pytestmark = pytest.mark.slow

BATCH = 50  # events per batch, with explicit n
CLIENTS = 4
WORKERS = 2
T0 = 1_700_000_000
BACK_WITHIN = 10.0  # seconds from the promotion to writes acknowledged again
BEFORE, AFTER = size(2, 10), size(3, 30)  # seconds of ingest before the failover, and after
POOL_TIMEOUT = 1.5  # pool_timeout_seconds, where a test waits for 503s
BOUND = 4.0  # shutdown_timeout_seconds of the SIGTERM tests
JSON = {"content-type": "application/json"}


def need_postgres() -> None:
    if "postgres" not in STORES:
        pytest.skip("CTEL_TEST_STORES leaves PostgreSQL out")
    if postgres_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")


@pytest.fixture
def pair() -> Iterator[tuple[TemporaryPostgres, TemporaryPostgres]]:
    """A durable primary and its synchronous hot standby, each in a throwaway folder."""
    need_postgres()
    primary = TemporaryPostgres(durable=True, use_database_url=False)
    try:
        yield primary, primary.standby()
    finally:
        primary.stop()


def batch_body(t: int) -> bytes:
    return orjson.dumps([{"e": {"k": "Reconcile", "i": i}, "t": t, "n": i} for i in range(BATCH)])


@dataclass
class Ledger:
    """What the clients sent and were told."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_t: int = T0
    acked: set[int] = field(default_factory=set)  # batches (by t) answered 200
    accepted: Counter[int] = field(default_factory=Counter)  # per batch: sum of ``accepted``
    sent: set[int] = field(default_factory=set)
    # (sent, answered, outcome): "200", "503", "refused" (never accepted), "cut" (no answer)
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    reads: list[tuple[float, int]] = field(default_factory=list)  # (answered, status)
    unexpected: list[str] = field(default_factory=list)

    def new_t(self) -> int:
        with self.lock:
            self.next_t += 1
            self.sent.add(self.next_t)
            return self.next_t

    def outcomes(self, since: float = 0.0) -> Counter[str]:
        return Counter(outcome for sent, _, outcome in self.answers if sent >= since)


class Ingest:
    """``CLIENTS`` threads sending 50-event batches, each re-sent until acknowledged, each
    on a new connection (so every worker gets some); after every 200, the batch's last
    event is read back (the node reads what it wrote)."""

    def __init__(self, server: LiveServer, tenant: Tenant, connector_id: str):
        self.path = events_path(tenant.account_id, connector_id)
        self.api, self.tenant = server.api, tenant
        self.ledger = Ledger()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Ingest:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in self.threads), "a client hangs"

    def _client(self) -> None:
        ledger = self.ledger
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(
            base_url=self.api, headers=self.tenant.write, timeout=60, limits=no_reuse
        ) as http:
            t, attempts = ledger.new_t(), 0
            while not self.halt.is_set():
                attempts += 1
                sent = time.monotonic()
                try:
                    answer = http.post(self.path, content=batch_body(t), headers=JSON)
                except httpx.ConnectError:
                    self._record(sent, "refused")
                    time.sleep(0.05)
                    continue
                except httpx.TransportError as exc:
                    self._record(sent, "cut", f"batch {t}: {exc!r}")
                    continue
                if answer.status_code == 503:
                    problem = _unavailable_problem(answer)
                    self._record(sent, "503", problem and f"batch {t}: {problem}")
                    time.sleep(0.05)
                    continue
                if answer.status_code != 200:
                    self._record(sent, "other", f"batch {t}: {answer.status_code} {answer.text}")
                    t, attempts = ledger.new_t(), 0
                    continue
                result = answer.json()["result"]
                expected = (0, BATCH) if attempts > 1 else (0,)  # a re-send: all or nothing
                whole = result["accepted"] + result["duplicates"] == BATCH
                problem = None if whole and result["duplicates"] in expected else str(result)
                self._record(sent, "200", problem and f"batch {t} ({attempts}): {problem}")
                with ledger.lock:
                    ledger.acked.add(t)
                    ledger.accepted[t] += result["accepted"]
                read = http.get(f"{self.path}/{t}.{BATCH - 1}", headers=self.tenant.read)
                with ledger.lock:
                    ledger.reads.append((time.monotonic(), read.status_code))
                t, attempts = ledger.new_t(), 0

    def _record(self, sent: float, outcome: str, problem: str | None = None) -> None:
        with self.ledger.lock:
            self.ledger.answers.append((sent, time.monotonic(), outcome))
            if problem:
                self.ledger.unexpected.append(problem)


def _unavailable_problem(answer: httpx.Response) -> str | None:
    """What is wrong with a 503, if anything: Cloudflare's envelope, code 1503, retry-after."""
    body = answer.json()
    if body.get("success") is not False or body["errors"][0]["code"] != 1503:
        return f"503 without code 1503: {answer.text}"
    if answer.headers.get("retry-after") != "1":
        return f"503 without retry-after: {dict(answer.headers)}"
    return None


class Reads:
    """One thread reading one acknowledged event every 20 ms (a new connection each time)."""

    def __init__(self, server: LiveServer, tenant: Tenant, path: str):
        self.url = f"{server.api}{path}"
        self.headers = tenant.read
        self.answers: list[tuple[float, int | str]] = []
        self.slowest = 0.0  # seconds, the longest a read took
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reads:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.halt.is_set():
            sent = time.monotonic()
            try:
                answer = httpx.get(self.url, headers=self.headers, timeout=30)
                status: int | str = answer.status_code
            except httpx.TransportError as exc:
                status = repr(exc)
            self.answers.append((time.monotonic(), status))
            self.slowest = max(self.slowest, time.monotonic() - sent)
            time.sleep(0.02)


def stored_batches(url: str) -> Counter[int]:
    """Events stored per batch (by t), read from the database itself."""
    with psycopg.connect(url, autocommit=True) as conn:
        return Counter(int(t) for (t,) in conn.execute("SELECT t FROM events"))


def check_ledger(ledger: Ledger, stored: Counter[int]) -> None:
    """Every acknowledged batch stored whole, no batch stored in part or counted as accepted
    twice, nothing stored that was not sent."""
    lost = sorted(t for t in ledger.acked if stored[t] != BATCH)
    assert lost == [], f"acknowledged batches lost or partial: {lost[:20]}"
    partial = sorted(t for t, count in stored.items() if count != BATCH)
    assert partial == [], f"half-stored batches: {partial[:20]}"
    twice = sorted(t for t, count in ledger.accepted.items() if count not in (0, BATCH))
    assert twice == [], f"batches counted as accepted more than once: {twice[:20]}"
    unknown = sorted(set(stored) - ledger.sent)
    assert unknown == [], f"stored batches nobody sent: {unknown[:20]}"
    assert all(stored[t] == BATCH for t, count in ledger.accepted.items() if count)


def standby_readers(standby: TemporaryPostgres, database: str) -> int:
    """ctel's connections to ``database`` on the standby (only reads can be there)."""
    with psycopg.connect(standby.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def wait_for(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def setup_node(
    tmp_path: Path, url: str, env: dict[str, str] | None = None, workers: int = WORKERS
) -> tuple[LiveServer, Tenant, str]:
    """A migrated database with a tenant (through ``url``), ``ctel serve`` on it, and a
    connector."""
    db, tenant = fresh_db(tmp_path, url)
    server = start_server(db, workers=workers, log_path=tmp_path / "ctel.log", env=env)
    try:
        return server, tenant, create_connector(server.api, tenant)["id"]
    except BaseException:
        stop_server(server)
        raise


def assert_clean_log(tmp_path: Path) -> None:
    text = (tmp_path / "ctel.log").read_text()
    assert "Traceback" not in text and "unexpected error" not in text, text[-3000:]


# -- the failover ------------------------------------------------------------------------


def test_failover_under_concurrent_ingest(
    pair: tuple[TemporaryPostgres, TemporaryPostgres],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    primary, standby = pair
    database = primary.new_database("ctel_failover")
    refused = free_port()
    with DroppingHost() as dropping:
        url = multi_host_url(database, refused, dropping.port, primary, standby)
        server, tenant, connector_id = setup_node(tmp_path, url)
        try:
            with Ingest(server, tenant, connector_id) as ingest:
                ledger = ingest.ledger
                wait_for(lambda: len(ledger.acked) >= 4, 30, "first acknowledgements")
                seed = min(ledger.acked)
                with Reads(server, tenant, f"{ingest.path}/{seed}.0") as reads:
                    time.sleep(BEFORE)
                    crashed = time.monotonic()
                    primary.crash()
                    time.sleep(1.0)
                    standby.promote()
                    promoted = time.monotonic()
                    back = wait_for(
                        lambda: any(a > promoted and o == "200" for _, a, o in ledger.answers),
                        BACK_WITHIN + 20,
                        "a write acknowledged after the promotion",
                    )
                    time.sleep(AFTER)
        finally:
            stop_server(server)
    assert_clean_log(tmp_path)

    assert ledger.unexpected == [], ledger.unexpected[:10]
    assert back <= BACK_WITHIN, f"writes came back {back:.1f} s after the promotion"
    late = ledger.outcomes(since=promoted + back + 1.0)  # both workers, for good
    assert set(late) == {"200"}, f"writes sent a second after the first was back: {late}"
    assert ledger.outcomes()["cut"] == 0, "a request was left without an answer"
    in_outage = [status for answered, status in reads.answers if crashed < answered < promoted]
    assert in_outage and set(in_outage) == {200}, f"reads during the outage: {in_outage}"
    assert {status for _, status in reads.answers} == {200}, Counter(s for _, s in reads.answers)
    assert {status for _, status in ledger.reads} == {200}, "a node did not read its own write"
    assert dropping.accepted > 0, "the dropping host was never tried"

    stored = stored_batches(multi_host_url(database, standby))
    check_ledger(ledger, stored)
    outcomes = ledger.outcomes()
    report(
        request.config,
        f"failover: writes back {back:.2f} s after the promotion; {len(ledger.acked)} batches "
        f"of {BATCH} acknowledged, {sum(stored.values())} events stored, 0 lost, 0 twice "
        f"({sum(1 for t in ledger.acked if not ledger.accepted[t])} stored by an attempt answered "
        f"503, found whole on re-send); answers {dict(outcomes)}; {len(in_outage)} reads served "
        f"by the standby meanwhile; slowest read {reads.slowest * 1000:.0f} ms",
    )


def test_without_a_writable_host_writes_answer_503_and_reads_go_on(
    pair: tuple[TemporaryPostgres, TemporaryPostgres], tmp_path: Path
) -> None:
    primary, standby = pair
    database = primary.new_database("ctel_nowriter")
    url = multi_host_url(database, free_port(), primary, standby)
    reads = 2  # read threads, each with a connection of its own, plus the process's reader
    # (and the event loop's pipelined one: read_pipeline)
    env = {"CTEL_POOL_TIMEOUT_SECONDS": str(POOL_TIMEOUT), "CTEL_READ_CONNECTIONS": str(reads)}
    server, tenant, connector_id = setup_node(tmp_path, url, env, workers=1)
    path = server.api + events_path(tenant.account_id, connector_id)
    headers = {**tenant.write, **JSON}
    try:
        with httpx.Client(timeout=30) as http:
            assert http.post(path, content=batch_body(T0), headers=headers).status_code == 200
            primary.crash()
            for attempt in range(2):
                sent = time.monotonic()
                answer = http.post(
                    path, content=batch_body(T0 + 1), headers={**tenant.write, **JSON}
                )
                took = time.monotonic() - sent
                assert answer.status_code == 503 and _unavailable_problem(answer) is None, answer
                assert took <= POOL_TIMEOUT + 1.0, f"503 after {took:.2f} s (attempt {attempt})"
                read = http.get(f"{path}/{T0}.{BATCH - 1}", headers=tenant.read)
                assert read.status_code == 200, read.text  # from the standby
                listed = http.get(path, params={"from": 0, "to": "inf"}, headers=tenant.read)
                assert listed.json()["result"]["count"] == BATCH
            # ctel's readers (which of them served these reads depends on the thread; Get
            # Event and List Events: the event loop's pipelined connection, one more)
            assert 1 <= standby_readers(standby, _name(database)) <= reads + 2

            primary.start()
            restarted = time.monotonic()
            while http.post(path, content=batch_body(T0 + 1), headers=headers).status_code != 200:
                assert time.monotonic() - restarted < BACK_WITHIN, "writes did not come back"
            assert http.get(f"{path}/{T0 + 1}.0", headers=tenant.read).status_code == 200
            wait_for(lambda: standby_readers(standby, _name(database)) == 0, 5, "reads back")
    finally:
        stop_server(server)
    assert_clean_log(tmp_path)


def _name(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


def test_a_primary_turned_read_only_answers_503_then_writes_again(tmp_path: Path) -> None:
    """``default_transaction_read_only`` under open connections (a fenced primary): the
    pooled connection's write fails with ReadOnlySqlTransaction: 503, never 500, and the
    connection is dropped; writes go on once the server takes them again."""
    need_postgres()
    with TemporaryPostgres(use_database_url=False) as cluster:
        url = multi_host_url(cluster.new_database("ctel_fenced"), cluster)
        env = {"CTEL_POOL_TIMEOUT_SECONDS": "1"}
        server, tenant, connector_id = setup_node(tmp_path, url, env, workers=1)
        path = server.api + events_path(tenant.account_id, connector_id)
        headers = {**tenant.write, **JSON}
        try:
            assert httpx.post(path, content=batch_body(T0), headers=headers).status_code == 200
            cluster.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            cluster.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)
            fenced = httpx.post(path, content=batch_body(T0 + 1), headers=headers)
            assert fenced.status_code == 503 and _unavailable_problem(fenced) is None
            assert "read-only" in fenced.json()["errors"][0]["message"]
            again = httpx.post(path, content=batch_body(T0 + 1), headers=headers)
            assert again.status_code == 503 and _unavailable_problem(again) is None
            assert httpx.get(f"{path}/{T0}.0", headers=tenant.read).status_code == 200
            cluster.execute("ALTER SYSTEM RESET default_transaction_read_only")
            cluster.execute("SELECT pg_reload_conf()")
            opened = time.monotonic()
            while httpx.post(path, content=batch_body(T0 + 1), headers=headers).status_code != 200:
                assert time.monotonic() - opened < 5, "writes did not come back"
        finally:
            stop_server(server)
    assert_clean_log(tmp_path)


# -- stopping ------------------------------------------------------------------------------


@pytest.mark.parametrize("outage", ["primary down", "commits stall"])
def test_sigterm_while_the_store_is_unreachable(
    pair: tuple[TemporaryPostgres, TemporaryPostgres],
    tmp_path: Path,
    outage: str,
    request: pytest.FixtureRequest,
) -> None:
    primary, standby = pair
    database = primary.new_database("ctel_sigterm")
    url = multi_host_url(database, primary, standby)
    env = {
        "CTEL_POOL_TIMEOUT_SECONDS": str(POOL_TIMEOUT),
        "CTEL_SHUTDOWN_TIMEOUT_SECONDS": str(BOUND),
    }
    server, tenant, connector_id = setup_node(tmp_path, url, env)
    try:
        with Ingest(server, tenant, connector_id) as ingest:
            ledger = ingest.ledger
            wait_for(lambda: len(ledger.acked) >= 4, 30, "first acknowledgements")
            if outage == "primary down":
                primary.crash()
            else:  # the synchronous standby goes: every commit waits for it, forever
                primary.stop_standby(standby)
            began = time.monotonic()
            time.sleep(2 * POOL_TIMEOUT + 1)  # writes answered 503 meanwhile, more in flight
            pids = [server.process.pid, *descendants(server.process.pid)]
            assert len(pids) == 1 + WORKERS
            termed = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            took = wait_gone(pids, BOUND + 10)
            server.process.wait(5)
    finally:
        if server.process.poll() is None:
            stop_server(server)
        server.log.close()
    assert took <= BOUND, f"the node took {took:.2f} s to stop (bound {BOUND} s)"
    assert_clean_log(tmp_path)
    assert ledger.unexpected == [], ledger.unexpected[:10]
    assert ledger.outcomes()["cut"] == 0, f"requests accepted, never answered: {ledger.outcomes()}"
    before = [(a - s, o) for s, a, o in ledger.answers if began < s and a < termed]
    assert before and {o for _, o in before} == {"503"}, f"writes in the outage: {before}"
    slowest = max(took for took, _ in before)
    assert slowest <= POOL_TIMEOUT + 1.0, f"a 503 took {slowest:.2f} s"
    in_flight = Counter(o for s, a, o in ledger.answers if s < termed <= a)
    assert in_flight["503"] > 0 and set(in_flight) <= {"200", "503", "refused"}, in_flight

    if outage == "primary down":
        primary.start()
    check_ledger(ledger, stored_batches(multi_host_url(database, primary)))
    report(
        request.config,
        f"SIGTERM with the store unreachable ({outage}): every process gone after "
        f"{took:.2f} s (bound {BOUND} s); before it {len(before)} writes answered 503 in at "
        f"most {slowest:.2f} s (pool_timeout_seconds {POOL_TIMEOUT}); requests in flight at "
        f"SIGTERM: {dict(in_flight)}",
    )


def test_workers_and_the_purger_die_with_their_master(tmp_path: Path) -> None:
    db, _ = fresh_db(tmp_path)
    env = {"CTEL_SHUTDOWN_TIMEOUT_SECONDS": str(BOUND)}
    server = start_server(db, "--retention-days", "30", workers=WORKERS, env=env)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 10
        while len(children := descendants(server.process.pid)) < WORKERS + 1:
            assert time.monotonic() < deadline, f"workers and purger: {children}"
            time.sleep(0.05)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
        wait_gone(children, BOUND)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.log.close()
