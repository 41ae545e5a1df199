"""Live streams (issue 10) across servers of their own: a restart and a resume with
``Last-Event-ID``, SIGTERM, two nodes on one PostgreSQL, retention (410), a revoked
credential, the heartbeat, a slow subscriber, and the ``streams`` setting switched off."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.testing import TemporaryPostgres
from support import (
    LiveServer,
    Tenant,
    create_connector,
    events_path,
    free_port,
    fresh_db,
    snapshots_path,
    start_server,
    stop_server,
)
from support.sse import T0, Listener, account_stream, event, post

FAST = {"CTEL_STREAM_HEARTBEAT_SECONDS": "0.2", "CTEL_AUTH_CACHE_SECONDS": "0.5"}


@pytest.fixture
def server(
    fresh: tuple[str, Tenant], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[LiveServer, Tenant]]:
    env = getattr(request, "param", FAST)
    db, tenant = fresh
    live = start_server(db, env=env, log_path=tmp_path / "ctel.log")
    try:
        yield live, tenant
    finally:
        if live.process.poll() is None:
            stop_server(live)


def test_sigterm_ends_streams_and_a_restarted_server_resumes_after_the_last_id(
    fresh: tuple[str, Tenant], tmp_path: Path
) -> None:
    db, tenant = fresh
    port = free_port()
    first = start_server(db, port=port, env=FAST, log_path=tmp_path / "first.log")
    cid = create_connector(first.api, tenant)["id"]
    path = events_path(tenant.account_id, cid)
    try:
        stream = Listener(first.api + path + "/stream", tenant.read)
        post(first, tenant, path, [event("Init", T0 + i, 0) for i in range(3)])
        got = stream.take(3)
        stopped = time.monotonic()
        first.process.terminate()
        assert stream.ended.wait(10), "the stream did not end on SIGTERM"
        assert stream.error is None, stream.error  # ended cleanly (end of body)
        first.process.wait(10)
        assert time.monotonic() - stopped < 5
    finally:
        stop_server(first)
        stream.close()
    second = start_server(db, port=port, env=FAST, log_path=tmp_path / "second.log")
    try:
        post(second, tenant, path, [event("Leave", T0 - 1, 0), event("Init", T0 + 9, 0)])
        headers = {**tenant.read, "Last-Event-ID": str(got[1].id)}
        with Listener(second.api + path + "/stream", headers) as again:
            resumed = again.take(3)
            assert again.quiet(0.3) == []
    finally:
        stop_server(second)
    assert [m.item["t"] for m in resumed] == [T0 + 2, T0 - 1, T0 + 9]


def test_a_token_older_than_retention_is_410(server: tuple[LiveServer, Tenant]) -> None:
    live, tenant = server
    cid = create_connector(live.api, tenant)["id"]
    path = events_path(tenant.account_id, cid)
    with Listener(live.api + path + "/stream", tenant.read) as stream:
        post(live, tenant, path, [event("Init", T0 + i, 0) for i in range(3)])
        got = stream.take(3)
    store = open_store(Settings(db=str(live.db)))
    try:
        while store.purge_telemetry(time.time() + 1, 1000):
            pass
    finally:
        store.close()
    post(live, tenant, path, [event("Init", time.time(), 0)])
    url = live.api + path + "/stream"
    answer = httpx.get(url, params={"after": got[0].id}, headers=tenant.read)
    assert answer.status_code == 410, answer.text
    error = answer.json()["errors"][0]
    assert error["code"] == 1410 and error["message"].startswith("after: resume token")


def test_a_revoked_credential_closes_its_streams_and_idle_streams_keep_alive(
    server: tuple[LiveServer, Tenant],
) -> None:
    live, tenant = server
    store = open_store(Settings(db=str(live.db)))
    try:
        token, secret = credentials.create_token(store, tenant.account_id, "Magic WAN Read")
        headers = {"Authorization": f"Bearer {secret}"}
        with (
            Listener(account_stream(live, tenant), headers) as revoked,
            Listener(account_stream(live, tenant), tenant.read) as kept,
        ):
            time.sleep(0.7)
            assert ": keep-alive" in revoked.comments  # every 0.2 s here (15 s by default)
            credentials.revoke_token(store, token.id)
            started = time.monotonic()
            assert revoked.ended.wait(5), "the revoked credential's stream is still open"
            assert time.monotonic() - started < 1.5  # auth_cache_seconds is 0.5 here
            assert not kept.ended.is_set()
    finally:
        store.close()


@pytest.mark.parametrize("server", [{"CTEL_STREAM_BUFFER_BYTES": "1"}], indirect=True)
def test_a_slow_subscriber_reads_the_feed_at_its_own_pace(
    server: tuple[LiveServer, Tenant],
) -> None:
    """With a buffer too small for any message, every live delivery overflows: the stream
    falls back to reading the feed, and still delivers everything once, in order."""
    live, tenant = server
    cid = create_connector(live.api, tenant)["id"]
    path = events_path(tenant.account_id, cid)
    with Listener(live.api + path + "/stream", tenant.read) as stream:
        for batch in range(10):
            post(live, tenant, path, [event("Init", T0 + batch * 10 + i, 0) for i in range(10)])
        got = stream.take(100)
        assert stream.quiet(0.3) == []
    assert [m.item["t"] for m in got] == [T0 + i for i in range(100)]


@pytest.mark.parametrize(
    "server",
    [{"CTEL_STREAM_BUFFER_BYTES": "65536", "CTEL_STREAM_HEARTBEAT_SECONDS": "0.2"}],
    indirect=True,
)
def test_a_client_that_stops_reading_is_let_go(server: tuple[LiveServer, Tenant]) -> None:
    """A client that reads nothing while ~6 MB arrive: once the kernel's send queue stays
    full for two heartbeat periods the server ends its stream (holding at most the buffer
    beyond the kernel's), and a resume from its last id gets the rest."""
    live, tenant = server
    cid = create_connector(live.api, tenant)["id"]
    path = events_path(tenant.account_id, cid)
    host, port = live.url.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    client.sendall(
        f"GET /client/v4{path}/stream HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {tenant.read_token}\r\n\r\n".encode()
    )
    pad = "x" * 2000
    for batch in range(3):
        items = [event("Init", T0 + batch * 1000 + i, 0, pad=pad) for i in range(1000)]
        post(live, tenant, path, items)
    time.sleep(2)  # paused, then let go
    received = b""
    client.settimeout(10)
    while chunk := client.recv(1 << 20):
        received += chunk
    client.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert len(received) < 3 * 1000 * 2000  # ended before everything was sent
    ids = [line for line in received.split(b"\n") if line.startswith(b"id: ")]
    last = ids[-1].removeprefix(b"id: ").decode()
    with Listener(live.api + path + "/stream", {**tenant.read, "Last-Event-ID": last}) as rest:
        got = rest.take(3000 - len(ids), timeout=30)
    assert got[-1].item["t"] == T0 + 2999


@pytest.mark.parametrize("server", [{"CTEL_STREAMS": "0"}], indirect=True)
def test_streams_switched_off_are_unknown_routes(server: tuple[LiveServer, Tenant]) -> None:
    live, tenant = server
    cid = create_connector(live.api, tenant)["id"]
    for url in (
        live.api + events_path(tenant.account_id, cid) + "/stream",
        live.api + snapshots_path(tenant.account_id, cid) + "/stream",
        account_stream(live, tenant),
    ):
        answer = httpx.get(url, headers=tenant.read)
        assert answer.status_code in (400, 404), answer.text
        assert answer.json()["errors"][0]["code"] in (7000, 7003, 1404)


def test_two_nodes_on_one_postgresql(postgres_server: TemporaryPostgres, tmp_path: Path) -> None:
    """Ingest on node A from several clients, subscribers on node B (and a resume on A
    with B's token): every item once, in one order."""
    db, tenant = fresh_db(tmp_path, postgres_server.new_database("ctel_streams_nodes"))
    a = start_server(db, workers=2, env=FAST, log_path=tmp_path / "a.log")
    b = start_server(db, workers=2, env=FAST, log_path=tmp_path / "b.log")
    try:
        cids = [create_connector(a.api, tenant)["id"] for _ in range(3)]
        sent: list[Any] = []
        lock = threading.Lock()

        def client(number: int) -> None:
            path = events_path(tenant.account_id, cids[number % 3])
            for batch in range(6):
                items = [event("Reconcile", T0 - batch * 100 + i, number) for i in range(4)]
                post(a, tenant, path, items)
                with lock:
                    sent.extend((cids[number % 3], item["t"], number) for item in items)

        with Listener(account_stream(b, tenant), tenant.read) as on_b:
            threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            got = on_b.take(len(sent))
            assert on_b.quiet(0.3) == []
        keys = [(m.item["connector_id"], m.item["t"], m.item["n"]) for m in got]
        assert sorted(keys) == sorted(sent)
        seqs = [int(str(m.id)[1:]) for m in got]
        assert seqs == sorted(seqs)
        middle = got[len(got) // 2]
        with Listener(
            account_stream(a, tenant), {**tenant.read, "Last-Event-ID": str(middle.id)}
        ) as on_a:
            rest = on_a.take(len(got) - len(got) // 2 - 1)
        assert [m.id for m in rest] == [m.id for m in got[len(got) // 2 + 1 :]]
    finally:
        stop_server(a)
        stop_server(b)
