"""PostgreSQL over a network (issue 13, sentence 6), with ``support.netdelay`` (the
benchmarks' latency-adding proxy, 0.25 ms each way) between ctel and the database:

- a node that loses the database answers 503 with ``retry-after`` and recovers by itself
  once it is back, also when every connection is cut mid-query;
- the store's connections never leak, whatever is cut (counted on the server side, in
  ``pg_stat_activity``);
- ``statement_timeout`` still cancels a runaway query, and the connection goes on."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from connector_telemetry.service import connectors, credentials, events
from connector_telemetry.store.postgres import PostgresStore
from connector_telemetry.testing import TemporaryPostgres
from support import Tenant, create_connector, events_path, fresh_db, start_server, stop_server
from support.netdelay import NetDelay

DELAY_MS = 0.25
T0 = 1_704_067_200  # 2024-01-01


@pytest.fixture
def direct(postgres_server: TemporaryPostgres) -> str:
    """A new database (the test's own), reached directly."""
    return postgres_server.new_database("ctel_net")


@pytest.fixture
def proxy(postgres_server: TemporaryPostgres) -> Iterator[NetDelay]:
    with NetDelay(("127.0.0.1", postgres_server.port), DELAY_MS) as net:
        yield net


def backends(url: str) -> int:
    """Server-side connections to ``url``'s database, but this one."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()
        return int(row[0]) if row else -1


def settle(url: str, most: int, timeout: float = 10) -> int:
    """Backends once they are at most ``most`` (cut connections take a moment to go)."""
    deadline = time.monotonic() + timeout
    while (count := backends(url)) > most and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def batch(ts: list[float]) -> list[Any]:
    body = orjson.dumps([{"e": {"k": "Init"}, "t": t} for t in ts])
    return events.parse_batch(body, "application/json", 100_000)


@pytest.mark.parametrize("reading", ["inline", "threads", "pipeline"])
def test_no_connection_leaks_through_cuts_and_churn(
    direct: str, proxy: NetDelay, reading: str
) -> None:
    """Writes from 6 threads, reads on the store's read threads (as the dispatcher runs
    them), inline, or pipelined on an event loop (all six threads' at once on its one
    connection), every connection cut 5 times meanwhile."""
    read_threads = 3 if reading == "threads" else 0
    store = PostgresStore(
        proxy.url(direct),
        pool_max_size=3,
        pool_timeout_seconds=5,
        read_connections=read_threads,
        read_pipeline=reading == "pipeline",
    )
    reads = None
    if read_threads:  # as api.context runs them
        reads = ThreadPoolExecutor(read_threads, initializer=store.bind_reader)
    loop = asyncio.new_event_loop()
    looping = threading.Thread(target=loop.run_forever, daemon=True)
    looping.start()
    pipelined = 1 if reading == "pipeline" else 0

    def get_event(account: str, connector_id: str, keys: list[tuple[float, float]]) -> Any:
        if reading == "pipeline":
            got = store.get_event_async(account, connector_id, keys)
            return asyncio.run_coroutine_threadsafe(got, loop).result()
        if reads is None:
            return store.get_event(account, connector_id, keys)
        return reads.submit(store.get_event, account, connector_id, keys).result()

    try:
        store.migrate()
        account = credentials.create_account(store)
        made, _ = connectors.create_connector(
            store, account, {"device": {"provision_license": True}}
        )
        before = settle(direct, 0)
        assert before <= 4  # the reader, the pool's connections
        failures: list[BaseException] = []
        stop = threading.Event()

        def churn(k: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    events.record_events(store, account, made.id, batch([T0 + k * 1e5 + i]))
                    assert get_event(account, made.id, [(T0 + k * 1e5 + i, 0.0)]) is not None
                except psycopg.OperationalError:
                    pass  # cut mid-query: the API answers 503 (checked below)
                except BaseException as exc:
                    failures.append(exc)
                    return

        threads = [threading.Thread(target=churn, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(5):
                time.sleep(0.3)
                proxy.drop_all()  # mid-query, most likely: 6 threads keep it busy
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not failures, failures
        assert proxy.dropped > 0
        opened, idle, most = store.pool_state() or (0, 0, 0)
        assert opened == idle <= most == 3  # nothing in use, nothing counted twice
        # server side: the pool's idle ones and the readers, no more (cut ones are gone)
        most = opened + 1 + read_threads + pipelined
        assert settle(direct, most) <= most
        # and it still works
        events.record_events(store, account, made.id, batch([T0 + 9e6]))
        assert get_event(account, made.id, [(T0 + 9e6, 0.0)]) is not None
    finally:
        if reads is not None:
            reads.shutdown()
        store.close()
        loop.call_soon_threadsafe(loop.stop)
        looping.join(10)
        loop.close()
    assert settle(direct, 0) == 0  # closing the store closes every connection


def test_statement_timeout_cancels_a_runaway_query(direct: str, proxy: NetDelay) -> None:
    store = PostgresStore(proxy.url(direct), statement_timeout_ms=300)
    try:
        store.migrate()

        def write() -> None:
            with store._write() as conn:
                conn.execute("SELECT pg_sleep(5)")

        for run in (lambda: store._read("SELECT pg_sleep(5)").fetchall(), write):
            started = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                run()
            assert time.monotonic() - started < 3
        assert store._read("SELECT 1").fetchone() == (1,)  # the reader goes on
        store.check_writable()  # so do the writers
    finally:
        store.close()


def test_statement_timeout_cancels_a_runaway_pipelined_query(direct: str, proxy: NetDelay) -> None:
    """On the event loop's pipeline, the runaway query fails alone: the reads sent with it
    (skipped by the server after the failure) are sent again and answered."""
    store = PostgresStore(proxy.url(direct), statement_timeout_ms=300, read_pipeline=True)
    try:
        store.migrate()
        account = credentials.create_account(store)
        made, _ = connectors.create_connector(store, account, {"device": {"id": "p"}})
        events.record_events(store, account, made.id, batch([T0 + i for i in range(3)]))

        async def together() -> list[Any]:
            reads = [store.get_event_async(account, made.id, [(T0 + i, 0.0)]) for i in range(3)]
            runaway = store._fetch("SELECT pg_sleep(5)", ())
            return await asyncio.gather(runaway, *reads, return_exceptions=True)

        started = time.monotonic()
        answers = asyncio.run(together())
        assert time.monotonic() - started < 3
        assert isinstance(answers[0], psycopg.errors.QueryCanceled), answers[0]
        assert all(isinstance(doc, bytes) for doc in answers[1:]), answers[1:]

        async def again() -> Any:
            return await store.get_event_async(account, made.id, [(T0, 0.0)])

        assert isinstance(asyncio.run(again()), bytes)  # the connection goes on
    finally:
        store.close()


def _ask(client: httpx.Client, path: str, tenant: Tenant) -> httpx.Response:
    return client.get(path, headers=tenant.read)


def test_a_node_answers_503_while_the_database_is_gone_and_recovers_by_itself(
    postgres_server: TemporaryPostgres, tmp_path: Path
) -> None:
    url, tenant = fresh_db(tmp_path, postgres_server.new_database("ctel_net"))
    net = NetDelay(("127.0.0.1", postgres_server.port), DELAY_MS).start()
    port = net.port
    server = start_server(
        net.url(url), log_path=tmp_path / "ctel.log", env={"CTEL_POOL_TIMEOUT_SECONDS": "1"}
    )
    try:
        cid = str(create_connector(server.api, tenant)["id"])
        path = events_path(tenant.account_id, cid)
        with httpx.Client(base_url=server.api, timeout=30) as client:
            body = [{"e": {"k": "Init"}, "t": T0 + i, "n": 0} for i in range(50)]
            assert client.post(path, json=body, headers=tenant.write).status_code == 200
            assert _ask(client, f"{path}/{T0}.0", tenant).status_code == 200

            # 1. cut mid-query, again and again, under reads and writes from 4 clients
            seen: list[int] = []
            stop = threading.Event()

            def hammer(k: int) -> None:
                with httpx.Client(base_url=server.api, timeout=30) as mine:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        got = mine.post(
                            path,
                            json=[{"e": {"k": "Init"}, "t": T0 + 1000 * k + i, "n": 0}],
                            headers=tenant.write,
                        )
                        read = _ask(mine, f"{path}/{T0 + i % 50}.0", tenant)
                        for answer in (got, read):
                            seen.append(answer.status_code)
                            if answer.status_code == 503:
                                assert answer.headers["retry-after"] == "1"

            threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
            for thread in threads:
                thread.start()
            try:
                for _ in range(4):
                    time.sleep(0.4)
                    net.drop_all()
            finally:
                stop.set()
                for thread in threads:
                    thread.join(60)
            assert set(seen) <= {200, 503}, sorted(set(seen))
            assert net.dropped > 0
            # recovered by itself: the next requests succeed
            assert _ask(client, f"{path}/{T0}.0", tenant).status_code == 200
            assert client.post(path, json=body, headers=tenant.write).status_code == 200
            # and no connection leaked: one worker opens at most its 4 read threads', its
            # 4 writers' and the one that checks credentials
            assert settle(url, 9) <= 9

            # 2. the database gone altogether (nothing listens): 503 with retry-after
            net.close()
            down = [_ask(client, f"{path}/{T0}.0", tenant) for _ in range(2)]
            down.append(client.post(path, json=body, headers=tenant.write))
            for answer in down:
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "1"
                assert answer.json()["errors"][0]["code"] == 1503

            # 3. back (on the same address): the node recovers without a restart
            net = NetDelay(("127.0.0.1", postgres_server.port), DELAY_MS, port=port).start()
            deadline = time.monotonic() + 15
            while _ask(client, f"{path}/{T0}.0", tenant).status_code != 200:
                assert time.monotonic() < deadline, "no recovery within 15 s"
                time.sleep(0.2)
            assert client.post(path, json=body, headers=tenant.write).status_code == 200
    finally:
        stop_server(server)
        net.close()


@pytest.mark.parametrize("pipeline", ["0", "1"])
def test_one_worker_keeps_several_reads_in_flight(
    postgres_server: TemporaryPostgres, tmp_path: Path, pipeline: str
) -> None:
    """Four Get Events to a one-worker node, blocked in PostgreSQL by a lock this test
    holds, all answer once it goes. On the read threads (``read_pipeline`` 0) the four wait
    in PostgreSQL together, each on a connection of its own; pipelined, the first waits on
    the lock and the others are queued behind it on the same connection, while the event
    loop goes on answering other requests."""
    url, tenant = fresh_db(tmp_path, postgres_server.new_database("ctel_net"))
    env = {"CTEL_READ_CONNECTIONS": "4", "CTEL_READ_PIPELINE": pipeline}
    server = start_server(url, log_path=tmp_path / "ctel.log", env=env)
    try:
        cid = str(create_connector(server.api, tenant)["id"])
        path = events_path(tenant.account_id, cid)
        body = [{"e": {"k": "Init"}, "t": T0 + i, "n": 0} for i in range(4)]
        with httpx.Client(base_url=server.api, timeout=60) as client:
            assert client.post(path, json=body, headers=tenant.write).status_code == 200
            assert _ask(client, f"{path}/{T0}.0", tenant).status_code == 200
        answers: list[int] = []

        def get(i: int) -> None:
            with httpx.Client(base_url=server.api, timeout=60) as mine:
                answers.append(_ask(mine, f"{path}/{T0 + i}.0", tenant).status_code)

        expected = 1 if pipeline == "1" else 4
        with (
            psycopg.connect(url) as locker,
            psycopg.connect(url, autocommit=True) as watcher,  # a fresh snapshot each time
        ):
            locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            threads = [threading.Thread(target=get, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            waiting = 0
            while waiting < expected and time.monotonic() < deadline:
                time.sleep(0.05)
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'SELECT %events%'"
                ).fetchone()
                waiting = int(row[0]) if row else 0
            assert waiting == expected, "the reads did not wait in PostgreSQL"
            time.sleep(0.2)
            assert not answers  # all four still waiting
            if pipeline == "1":  # the event loop (and the read threads) are free meanwhile
                with httpx.Client(base_url=server.api, timeout=10) as other:
                    connector = path.rsplit("/telemetry", 1)[0]
                    assert other.get(connector, headers=tenant.read).status_code == 200
            locker.rollback()
        for thread in threads:
            thread.join(60)
        assert answers == [200] * 4
    finally:
        stop_server(server)
