"""Routes declare their contract (api/route.py): OpenAPI is rendered from the declarations
and refuses an undescribed route; every limit in it is the one enforced (a setting such as
``max_batch_events``, the constants of the query parameters and the connector's fields);
routes at the server's root (health checks) are served like any other, errors included."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connector_telemetry.api.openapi import UndescribedRoute, document
from connector_telemetry.api.route import Body, Route, ref
from connector_telemetry.app import App, create_app
from connector_telemetry.settings import Settings
from connector_telemetry.store.sqlite import SQLiteStore
from support import (
    LiveServer,
    Tenant,
    assert_error,
    events_path,
    fresh_db,
    start_server,
    stop_server,
)


def _document(**settings: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(db=f"{folder}/r.db", **settings))
        try:
            return dict(orjson.loads(app.openapi))
        finally:
            app.ctx.close()


def _batch_limits(doc: dict[str, Any]) -> list[int]:
    return [
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "maxItems"
        ]
        for path in doc["paths"]
        if path.endswith(("/telemetry/events", "/telemetry/snapshots"))
    ]


def test_the_document_follows_max_batch_events() -> None:
    assert _batch_limits(_document()) == [10_000, 10_000]
    assert _batch_limits(_document(max_batch_events=77)) == [77, 77]


def _route(**declared: Any) -> Route:
    return Route("POST", "/x", lambda req: None, "write", "x.create", "X", **declared)


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (_route(body=Body({"type": "object"})), "no result schema"),
        (_route(result={"type": "object"}), "declares no body schema"),
        (_route(result=ref("Nope"), body=Body({"type": "object"})), "Nope"),
        (
            Route("GET", "/healthz2", lambda req: None, "public", "h", "H", mount="root"),
            "no result schema",
        ),
    ],
    ids=["no result", "no body", "unknown schema", "outside the API"],
)
def test_the_document_refuses_an_undescribed_route(route: Route, problem: str) -> None:
    with pytest.raises(UndescribedRoute, match=problem):
        document([route], "/client/v4")


def test_an_app_with_an_undescribed_route_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector_telemetry.api import tokens

    declared = tokens.routes

    def undescribed(ctx: Any) -> list[Route]:
        return [*declared(ctx), _route(body=Body({"type": "object"}))]

    monkeypatch.setattr(tokens, "routes", undescribed)
    with tempfile.TemporaryDirectory() as folder, pytest.raises(UndescribedRoute):
        App(Settings(db=f"{folder}/r.db"), SQLiteStore(f"{folder}/r.db"))


# -- the limits the document states are the ones enforced ---------------------------------


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> tuple[str, Tenant]:
    return fresh_db(tmp_path)


@pytest.fixture(scope="module")
def served(live: LiveServer) -> dict[str, Any]:
    return dict(httpx.get(live.api + "/openapi.json").json())


def _limit_max(doc: dict[str, Any], path: str) -> int:
    (limit,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "limit"]
    return int(limit["schema"]["maximum"])


@pytest.mark.parametrize("kind", ["events", "snapshots"])
@pytest.mark.parametrize("latest", [False, True], ids=["list", "latest"])
def test_query_limits_are_enforced_as_documented(
    http: httpx.Client,
    served: dict[str, Any],
    tenant: Tenant,
    connector_id: str,
    kind: str,
    latest: bool,
) -> None:
    template = f"/accounts/{{account_id}}/magic/connectors/{{connector_id}}/telemetry/{kind}"
    template += "/latest" if latest else ""
    most = _limit_max(served, template)
    path = template.format(account_id=tenant.account_id, connector_id=connector_id)
    query = {} if latest else {"from": 0, "to": 1}
    assert http.get(path, params={**query, "limit": most}, headers=tenant.read).status_code == 200
    over = http.get(path, params={**query, "limit": most + 1}, headers=tenant.read)
    assert_error(over, 400, 1002, f"from 1 to {most}")


def test_connector_field_limits_are_enforced_as_documented(
    http: httpx.Client, served: dict[str, Any], tenant: Tenant, connector_id: str
) -> None:
    fields = served["components"]["schemas"]["ConnectorUpdate"]["properties"]
    path = f"/accounts/{tenant.account_id}/magic/connectors/{connector_id}"
    notes = fields["notes"]["maxLength"]
    assert http.patch(path, json={"notes": "n" * notes}, headers=tenant.write).status_code == 200
    too_long = http.patch(path, json={"notes": "n" * (notes + 1)}, headers=tenant.write)
    assert_error(too_long, 400, 1003, f"at most {notes} characters")
    dates = fields["interrupt_window_embargo_dates"]["maxItems"]
    many = [f"2030-01-{1 + i % 28:02d}" for i in range(dates + 1)]
    over = http.patch(path, json={"interrupt_window_embargo_dates": many}, headers=tenant.write)
    assert_error(over, 400, 1003, f"at most {dates} dates")
    hours = fields["interrupt_window_duration_hours"]
    for wrong in (hours["minimum"] - 0.5, hours["maximum"] + 0.5):
        answer = http.patch(
            path, json={"interrupt_window_duration_hours": wrong}, headers=tenant.write
        )
        assert_error(answer, 400, 1003, "interrupt_window_duration_hours")


def test_the_batch_limit_is_enforced_as_documented(fresh_sqlite: tuple[str, Tenant]) -> None:
    """A server started with ``CTEL_MAX_BATCH_EVENTS=3`` documents 3, and means it."""
    db, tenant = fresh_sqlite
    server = start_server(db, env={"CTEL_MAX_BATCH_EVENTS": "3"})
    try:
        with httpx.Client(base_url=server.api, timeout=30) as client:
            assert _batch_limits(client.get("/openapi.json").json()) == [3, 3]
            made = client.post(
                f"/accounts/{tenant.account_id}/magic/connectors",
                json={"device": {"serial_number": "s"}},
                headers=tenant.write,
            )
            path = events_path(tenant.account_id, made.json()["result"]["id"])
            batch = [{"e": {"k": "Init"}, "t": 1, "n": n} for n in range(4)]
            assert client.post(path, json=batch[:3], headers=tenant.write).status_code == 200
            assert_error(
                client.post(path, json=batch, headers=tenant.write), 400, 1006, "at most 3"
            )
    finally:
        stop_server(server)


# -- routes at the server's root ------------------------------------------------------------


def test_health_checks_are_routes_like_any_other(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        alive = client.get("/healthz")
        assert alive.status_code == 200 and alive.headers["cache-control"] == "no-store"
        head = client.head("/readyz")
        assert head.status_code == 200 and head.content == b""
        wrong = client.post("/healthz")
        assert_error(wrong, 405, 10405, "allowed: GET")
        assert wrong.headers["allow"] == "GET" and wrong.headers["cache-control"] == "no-store"
        assert_error(client.get("/healthz/"), 404, 7000)  # exact paths at the root
        assert_error(client.get("/client/v4/healthz"), 400, 7000)  # not inside the API
        assert_error(client.get("/nothing"), 404, 7000)  # outside the prefix: 404


def test_not_ready_is_a_503_in_the_envelope(fresh_sqlite: tuple[str, Tenant]) -> None:
    db, _ = fresh_sqlite
    server = start_server(db)
    try:
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("INSERT INTO schema_version VALUES (999)")
        answer = httpx.get(server.url + "/readyz", timeout=30)
        assert_error(answer, 503, 1503, "schema version 999")
        assert answer.headers["cache-control"] == "no-store" and answer.headers["retry-after"]
        head = httpx.head(server.url + "/readyz", timeout=30)
        assert head.status_code == 503 and head.content == b""
    finally:
        stop_server(server)
