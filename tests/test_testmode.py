"""Test mode (issue 11, the server side): ``ctel serve --test-mode``, its marker, its
warning, and the test API at ``/_ctel/`` (accounts, reset), against live servers on both
stores. Faults, the rate limit, the journal and the clock: tests/test_testmode_api.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.app import create_app
from connector_telemetry.settings import Settings
from connector_telemetry.simulate.inprocess import BASE, client_for
from connector_telemetry.store import open_store
from support import (
    STORES,
    LiveServer,
    assert_error,
    connectors_path,
    events_path,
    free_port,
    fresh_db,
    make_tenant,
    snapshots_path,
    start_server,
    stop_server,
)
from support.testmode import resets_under_ingest

T0 = 1_700_000_000
SNAPSHOT = {
    "t": T0,
    "v": "2026.1.0",
    "count_reclaim_failures": 0,
    "count_reclaimed_paths": 1,
    "count_record_failed": 0,
    "count_transmit_failures": 2,
}


def new_db(request: pytest.FixtureRequest, folder: Path, store: str) -> str:
    """A database that does not exist yet (a new SQLite file, an empty PostgreSQL one)."""
    if store == "postgres":
        return str(request.getfixturevalue("postgres_server").new_database("ctel_test_mode"))
    return str(folder / "test.db")


@pytest.fixture(scope="module", params=STORES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("testmode")
    db = new_db(request, folder, request.param)
    live = start_server(db, "--test-mode", log_path=folder / "ctel.log")
    yield live
    stop_server(live)


@pytest.fixture
def account(server: LiveServer) -> dict[str, Any]:
    response = httpx.post(server.url + "/_ctel/accounts", json={"name": "mine"})
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def fill(api: str, account: dict[str, Any], connectors: int = 2) -> list[str]:
    """Connectors with an event, a snapshot and an interrupt each."""
    ids = []
    with httpx.Client(base_url=api, headers=bearer(account["token"]), timeout=30) as http:
        for _ in range(connectors):
            base = connectors_path(account["account_id"])
            cid = http.post(base, json={"device": {"provision_license": True}}).json()["result"][
                "id"
            ]
            ids.append(cid)
            got = http.post(
                events_path(account["account_id"], cid), json=[{"e": {"k": "Init"}, "t": T0}]
            )
            assert got.status_code == 200, got.text
            snap = http.post(snapshots_path(account["account_id"], cid), json=[SNAPSHOT])
            assert snap.status_code == 200, snap.text
            assert http.post(f"{base}/{cid}/interrupts", json={"reboot": {}}).status_code == 200
    return ids


def test_test_api_is_an_unknown_route_without_test_mode(live: LiveServer) -> None:
    """Without --test-mode, /_ctel/ paths answer exactly as any unknown route outside the
    API prefix does: 404, code 7000 "No route for that URI"."""
    unknown = httpx.get(live.url + "/_nothing_here")
    assert_error(unknown, 404, 7000, "No route for that URI")
    for method, path in [
        ("GET", "/_ctel/faults"),
        ("POST", "/_ctel/reset"),
        ("POST", "/_ctel/accounts"),
        ("GET", "/_ctel/requests"),
        ("PUT", "/_ctel/clock"),
        ("DELETE", "/_ctel/faults/1"),
    ]:
        got = httpx.request(method, live.url + path, json={})
        assert got.status_code == unknown.status_code, (method, path, got.text)
        assert got.json() == unknown.json()
    document = httpx.get(live.api + "/openapi.json").json()
    assert not any("_ctel" in path for path in document["paths"])


def test_loud_warning_and_marker(server: LiveServer) -> None:
    log = server.log.name
    text = Path(log).read_text()
    assert "WARNING: TEST MODE" in text and "/_ctel/" in text


def test_refused_on_a_database_not_created_in_test_mode(tmp_path: Path) -> None:
    db, _ = fresh_db(tmp_path)  # created and used without --test-mode
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "connector_telemetry",
            "serve",
            "--db",
            db,
            "--test-mode",
            "--port",
            str(free_port()),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "not created in test mode" in lines[0] and db in lines[0]
    # the environment variable says the same
    env_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "connector_telemetry",
            "serve",
            "--db",
            db,
            "--port",
            str(free_port()),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CTEL_TEST_MODE": "true"},
    )
    assert env_run.returncode == 2 and "not created in test mode" in env_run.stderr


def test_a_test_database_opens_without_test_mode(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    first = start_server(db, "--test-mode")
    try:
        made = httpx.post(first.url + "/_ctel/accounts", json={}).json()["result"]
    finally:
        stop_server(first)
    plain = start_server(db)
    try:
        assert_error(httpx.get(plain.url + "/_ctel/faults"), 404, 7000, "No route")
        got = httpx.get(
            plain.api + connectors_path(made["account_id"]), headers=bearer(made["token"])
        )
        assert got.status_code == 200, got.text
    finally:
        stop_server(plain)
    again = start_server(db, "--test-mode")  # still a test database
    stop_server(again)


def test_accounts_give_working_credentials(server: LiveServer, account: dict[str, Any]) -> None:
    assert set(account) == {"account_id", "token", "read_token", "email", "api_key"}
    base = server.api + connectors_path(account["account_id"])
    write = httpx.post(
        base, json={"device": {"serial_number": "SN-1"}}, headers=bearer(account["token"])
    )
    assert write.status_code == 200, write.text
    read = httpx.get(base, headers=bearer(account["read_token"]))
    assert read.status_code == 200 and len(read.json()["result"]) == 1
    denied = httpx.post(
        base, json={"device": {"serial_number": "SN-2"}}, headers=bearer(account["read_token"])
    )
    assert_error(denied, 403, 10000)
    legacy = httpx.get(
        base, headers={"X-Auth-Email": account["email"], "X-Auth-Key": account["api_key"]}
    )
    assert legacy.status_code == 200 and len(legacy.json()["result"]) == 1
    other = httpx.post(server.url + "/_ctel/accounts").json()["result"]  # no body at all
    assert other["account_id"] != account["account_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": 3}, "name"), ({"nmae": "x"}, "nmae"), ([], "body")],
)
def test_accounts_bad_input(server: LiveServer, body: Any, field: str) -> None:
    got = httpx.post(server.url + "/_ctel/accounts", json=body)
    assert_error(got, 400, 1003, field)


def test_reset_removes_telemetry_keeps_credentials(
    server: LiveServer, account: dict[str, Any]
) -> None:
    ids = fill(server.api, account)
    reset = httpx.post(server.url + "/_ctel/reset")
    assert reset.status_code == 200, reset.text
    removed = reset.json()["result"]["removed"]
    assert removed["connectors"] >= 2 and removed["events"] >= 2
    assert removed["snapshots"] >= 2 and removed["interrupts"] >= 2
    again = httpx.post(server.url + "/_ctel/reset").json()["result"]["removed"]
    assert again == {"connectors": 0, "events": 0, "snapshots": 0, "interrupts": 0}
    base = server.api + connectors_path(account["account_id"])
    listed = httpx.get(base, headers=bearer(account["token"]))
    assert listed.status_code == 200 and listed.json()["result"] == []
    gone = httpx.get(f"{base}/{ids[0]}", headers=bearer(account["token"]))
    assert_error(gone, 404, 1404)
    events = httpx.get(
        server.api + events_path(account["account_id"], ids[0]) + "/latest",
        headers=bearer(account["token"]),
    )
    assert events.status_code == 404
    # the account and its credentials work on
    assert (
        httpx.post(
            base, json={"device": {"serial_number": "SN-9"}}, headers=bearer(account["token"])
        ).status_code
        == 200
    )


def test_reset_under_concurrent_ingest(server: LiveServer, account: dict[str, Any]) -> None:
    resets_under_ingest(server, account)


def test_the_sdk_tests_pass_against_a_test_mode_server(tmp_path: Path) -> None:
    """Nothing in test mode changes the API when no fault or limit is set: the official
    SDK's tests (sync, async, raw) pass against a test-mode server (SQLite)."""
    tests = Path(__file__).parent
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            str(tests / "test_sdk.py"),
            str(tests / "test_sdk_telemetry.py"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tests.parent,
        env={
            **os.environ,
            "CTEL_TESTS_IN_TEST_MODE": "1",
            "CTEL_TEST_STORES": "sqlite",
            "PYTEST_ADDOPTS": f"--basetemp={tmp_path / 'sdk'}",
        },
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    assert " passed" in done.stdout and "failed" not in done.stdout, tail
    assert int(done.stdout.rsplit(" passed", 1)[0].split()[-1]) >= 100, tail
    logs = list((tmp_path / "sdk").glob("live*/ctel.log"))
    assert logs and all("WARNING: TEST MODE" in log.read_text() for log in logs)


def test_without_test_mode_no_test_state_is_read(tmp_path: Path) -> None:
    """Off, test mode costs nothing: no hook object, and not one test-state query."""
    db = str(tmp_path / "plain.db")
    store = open_store(Settings(db=db))
    store.migrate()
    tenant = make_tenant(store)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("test state read or written without --test-mode")

    for name in ("test_state", "take_fault", "rate_hit", "add_journal", "test_marker"):
        setattr(store, name, forbidden)
    app = create_app(Settings(db=db), store)
    assert app.testmode is None
    try:
        with client_for(app) as http:
            base = f"{BASE}/client/v4{connectors_path(tenant.account_id)}"
            made = http.post(base, json={"device": {"serial_number": "X"}}, headers=tenant.write)
            assert made.status_code == 200, made.text
            assert http.get(base, headers=tenant.read).status_code == 200
            assert http.get(f"{BASE}/_ctel/faults").status_code == 404  # no such route
    finally:
        app.ctx.close()


def test_test_mode_in_process_asgi(tmp_path: Path) -> None:
    """The ASGI adapter (tests, uvicorn) runs the same hook: faults and the journal."""
    settings = Settings(db=str(tmp_path / "asgi.db"), test_mode=True)
    store = open_store(settings)
    store.migrate()
    store.mark_test_mode("2026-01-01T00:00:00Z")
    app = create_app(settings, store)
    try:
        with client_for(app) as http:
            made = http.post(f"{BASE}/_ctel/accounts").json()["result"]
            base = f"{BASE}/client/v4{connectors_path(made['account_id'])}"
            auth = {"Authorization": f"Bearer {made['token']}"}
            rule = {"route": "connectors.list", "status": 504}
            assert http.post(f"{BASE}/_ctel/faults", json=rule).status_code == 200
            assert_error(http.get(base, headers=auth), 504, 1504)
            assert http.get(base, headers=auth).status_code == 200
            seen = http.get(f"{BASE}/_ctel/requests").json()["result"]
            assert [r["status"] for r in seen] == [504, 200]
    finally:
        app.ctx.close()
