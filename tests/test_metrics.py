"""ctel's own metrics at ``/metrics`` (issue 12, sentence 1), on a live two-worker server:
exact across the workers, Prometheus' text format and OpenMetrics, no account, connector or
token id in any label, and who may scrape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import (
    LiveServer,
    Tenant,
    assert_error,
    create_connector,
    events_path,
    fresh_db,
    start_server,
    stop_server,
)

GETS = 40


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Tenant]]:
    db, tenant = fresh_db(tmp_path_factory.mktemp("metrics"))
    server = start_server(db, workers=2)
    try:
        yield server, tenant
    finally:
        stop_server(server)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counts_are_exact_across_workers(served: tuple[LiveServer, Tenant]) -> None:
    server, tenant = served
    connector_id = create_connector(server.api, tenant)["id"]
    url = server.api + events_path(tenant.account_id, connector_id)
    batch = [{"e": {"k": "Init"}, "t": 1_700_000_000 + i, "n": 0} for i in range(5)]
    # new connections each time, so both workers answer some
    assert httpx.post(url, json=batch, headers=tenant.write).status_code == 200
    assert httpx.post(url, json=batch, headers=tenant.write).status_code == 200  # duplicates
    bad = httpx.post(url, json=[{"t": 1}], headers=tenant.write)
    assert bad.status_code == 400
    for _ in range(GETS):
        assert httpx.get(f"{url}/1700000000.0", headers=tenant.read).status_code == 200
    key = (
        "ctel_http_requests_total",
        (("method", "GET"), ("route", "events.get"), ("status", "200")),
    )
    # each worker hands its counts over within a second (the one answering, at once)
    deadline = time.monotonic() + 5
    while True:
        scrape = httpx.get(server.url + "/metrics", headers=tenant.read)
        assert scrape.status_code == 200, scrape.text
        found = samples(scrape.text)
        if found.get(key) == GETS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert found[key] == GETS
    count = ("ctel_http_request_duration_seconds_count", (("route", "events.get"),))
    assert found[count] == GETS
    assert found[("ctel_ingest_items_total", (("kind", "events"), ("outcome", "accepted")))] == 5
    assert found[("ctel_ingest_items_total", (("kind", "events"), ("outcome", "duplicate")))] == 5
    code = bad.json()["errors"][0]["code"]
    assert found[("ctel_ingest_refused_total", (("code", str(code)), ("kind", "events")))] == 1
    assert found[("ctel_store_write_seconds_count", ())] >= 3
    assert any(name == "ctel_build_info" for name, _ in found)
    # no label carries an id
    for ident in (tenant.account_id, connector_id, tenant.read_token):
        assert ident not in scrape.text


def test_store_timings(fresh: tuple[str, Tenant], tmp_path: Path) -> None:
    """Store timings, on each store: reads, write transactions, and the wait for a write's
    turn (SQLite) or pooled connection (PostgreSQL, with the pool's size)."""
    db, tenant = fresh
    postgres = db.startswith("postgresql")
    server = start_server(db, workers=2, log_path=tmp_path / "ctel.log")
    try:
        connector_id = create_connector(server.api, tenant)["id"]
        url = server.api + events_path(tenant.account_id, connector_id)
        for i in range(3):
            batch = [{"e": {"k": "Init"}, "t": 1_700_000_000 + i, "n": 0}]
            assert httpx.post(url, json=batch, headers=tenant.write).status_code == 200
        for _ in range(5):
            assert httpx.get(f"{url}/1700000000.0", headers=tenant.read).status_code == 200
        deadline = time.monotonic() + 5
        while True:  # each worker hands its reads over within a second
            found = samples(httpx.get(server.url + "/metrics", headers=tenant.read).text)
            if found.get(("ctel_store_read_seconds_count", ()), 0) >= 5:
                break
            assert time.monotonic() < deadline, "reads never counted"
            time.sleep(0.2)
        # the connector and the three batches: at least four write transactions
        assert found[("ctel_store_write_transaction_seconds_count", ())] >= 4
        waits = found[("ctel_store_pool_wait_seconds_count", ())]
        turns = found[("ctel_store_writer_turn_wait_seconds_count", ())]
        if postgres:
            assert waits >= 4 and turns == 0
            # each worker's pool (pool_max_size 4 by default), summed over the workers that
            # have served a request (a worker reports its pool from its first request on)
            assert found[("ctel_store_pool_connections", (("state", "max"),))] in (4, 8)
            opened = found[("ctel_store_pool_connections", (("state", "open"),))]
            idle = found[("ctel_store_pool_connections", (("state", "idle"),))]
            assert 1 <= opened <= 8 and 0 <= idle <= opened
        else:
            assert turns >= 4 and waits == 0
            assert ("ctel_store_pool_connections", (("state", "max"),)) not in found
    finally:
        stop_server(server)


def test_open_streams(served: tuple[LiveServer, Tenant]) -> None:
    """``ctel_streams_open``: the live streams open on every worker, within a flush."""
    from support.sse import Listener

    server, tenant = served
    connector_id = create_connector(server.api, tenant)["id"]
    url = server.api + events_path(tenant.account_id, connector_id) + "/stream"
    key = ("ctel_streams_open", ())

    def open_streams(expected: float) -> float:
        deadline = time.monotonic() + 5
        while True:
            found = samples(httpx.get(server.url + "/metrics", headers=tenant.read).text)
            if found.get(key) == expected or time.monotonic() > deadline:
                return found.get(key, -1)
            time.sleep(0.2)

    with Listener(url, tenant.read) as one, Listener(url, tenant.read) as two:
        assert one.status == two.status == 200
        assert open_streams(2) == 2
    assert open_streams(0) == 0


def test_openmetrics_by_accept(served: tuple[LiveServer, Tenant]) -> None:
    server, tenant = served
    scrape = httpx.get(
        server.url + "/metrics",
        headers={**tenant.read, "accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("application/openmetrics-text")
    assert scrape.text.rstrip().endswith("# EOF")


def test_who_may_scrape(served: tuple[LiveServer, Tenant]) -> None:
    server, tenant = served
    url = server.url + "/metrics"
    assert httpx.get(url, headers=tenant.write).status_code == 200
    assert httpx.get(url, headers=tenant.read).status_code == 200
    assert_error(httpx.get(url), 400, 9106)
    refused = httpx.get(url, headers=tenant.legacy)
    assert_error(refused, 403, 10000, "/metrics takes an API token")
    revoked = httpx.get(url, headers={"Authorization": "Bearer " + "q" * 40})
    assert revoked.status_code in (401, 403)
    assert json.loads(revoked.text)["success"] is False


@pytest.mark.parametrize(("mode", "status"), [("public", 200), ("off", 404)])
def test_metrics_setting(tmp_path: Path, mode: str, status: int) -> None:
    db, _ = fresh_db(tmp_path)
    server = start_server(db, env={"CTEL_METRICS": mode})
    try:
        answer = httpx.get(server.url + "/metrics")
        assert answer.status_code == status, answer.text  # off: no route (404/7000)
    finally:
        stop_server(server)


def test_counted_in_process_over_asgi(tmp_path: Path) -> None:
    """The per-request bookkeeping (appends, counted at each flush) in one process, over
    ASGI (RSGI is what the live server above speaks): every request counted under its
    route and status, durations in the right buckets with their sum, each read on the
    event loop timed once, and nothing left over for the next flush."""
    import asyncio

    from connector_telemetry.api.metrics import BUCKETS
    from connector_telemetry.app import create_app
    from connector_telemetry.settings import Settings

    db, tenant = fresh_db(tmp_path)
    app = create_app(Settings(db=db, metrics="token"))
    assert app.metrics is not None
    base = "/client/v4/accounts/" + tenant.account_id + "/magic/connectors"

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses = [(await client.get(base, headers=tenant.read)).status_code]
            statuses += [(await client.get(base + "/nope", headers=tenant.read)).status_code]
            statuses += [(await client.get("/nowhere")).status_code]
            for _ in range(3):
                statuses.append((await client.get(base, headers=tenant.read)).status_code)
        return statuses

    try:
        assert asyncio.run(calls()) == [200, 404, 404, 200, 200, 200]
        done = [
            (route, took) for (route, _, _), taken in app.metrics.done.items() for took in taken
        ]
        app.metrics.flush()
        assert app.metrics.done == {} and app.metrics.read_times == []
        found = samples(app.metrics.exposition(None)[0].decode())
    finally:
        app.ctx.close()

    def answered(route: str, status: int) -> float:
        labels = (("method", "GET"), ("route", route), ("status", str(status)))
        return found[("ctel_http_requests_total", labels)]

    assert answered("connectors.list", 200) == 4
    assert answered("connectors.get", 404) == 1
    assert answered("unrouted", 404) == 1
    listed = [took for route, took in done if route == "connectors.list"]
    labels = (("route", "connectors.list"),)
    assert found[("ctel_http_request_duration_seconds_count", labels)] == 4
    assert found[("ctel_http_request_duration_seconds_sum", labels)] == pytest.approx(sum(listed))
    for bound in BUCKETS:
        le = (("le", str(float(bound))), *labels)
        below = sum(1 for took in listed if took <= bound)
        assert found[("ctel_http_request_duration_seconds_bucket", le)] == below, bound
    # the reads answered (an error, such as the 404 of an unknown connector, is not timed)
    assert found[("ctel_store_read_seconds_count", ())] == 4
