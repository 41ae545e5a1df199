"""Operability: health checks, migrations, retention, export/import, graceful stop."""

from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store
from connector_telemetry.store.sql import migrations
from connector_telemetry.store.sqlite import SQLiteStore
from connector_telemetry.testing import TemporaryPostgres
from support import LiveServer, Tenant, free_port, make_tenant, start_server, stop_server


def ctel(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry", *args], capture_output=True, check=check, **kw
    )


def test_healthz_and_readyz(live: LiveServer) -> None:
    alive = httpx.get(live.url + "/healthz")
    assert alive.status_code == 200 and alive.json()["result"] == {"status": "alive"}
    ready = httpx.get(live.url + "/readyz").json()["result"]
    assert ready["status"] == "ready" and ready["schema_version"] >= 2
    wrong = httpx.post(live.url + "/readyz")
    assert wrong.status_code == 405 and wrong.json()["errors"][0]["code"] == 10405


def _fill(store: Store) -> tuple[str, str]:
    account = credentials.create_account(store)
    connector, _ = connectors.create_connector(
        store, account, {"device": {"provision_license": True}, "notes": "n"}
    )
    items = [
        {
            "e": {"k": "StartUpgrade", "url": "u", "x": [1, 2.5]},
            "t": 1_700_000_000 + i,
            "n": i % 3,
            "v": "1",
        }
        for i in range(12_000)
    ]
    events.record_events(
        store,
        account,
        connector.id,
        events.parse_batch(orjson.dumps(items), "application/json", 20_000),
    )
    snaps = [
        {
            "t": 1_700_000_000 + 60 * i,
            "v": "1",
            "count_reclaim_failures": 0,
            "count_reclaimed_paths": 0,
            "count_record_failed": 0,
            "count_transmit_failures": i,
            "extra": {"k": i},
        }
        for i in range(50)
    ]
    snapshots.record_snapshots(
        store,
        account,
        connector.id,
        snapshots.parse_batch(orjson.dumps(snaps), "application/json", 100),
    )
    return account, connector.id


def _dump(store: Store, account: str) -> Any:
    out = []
    for c in store.list_connectors(account, None):
        evs = store.export_events(account, c.id, None, 10**9)
        snaps = store.export_snapshots(account, c.id, None, 10**9)
        out.append((c, evs, snaps))
    return out


def test_export_then_import_is_identical_and_idempotent(tmp_path: Path) -> None:
    source = open_store(Settings(db=str(tmp_path / "a.db")))
    source.migrate()
    account, _ = _fill(source)
    dump = tmp_path / "export.ndjson"
    ctel("export", "--db", str(tmp_path / "a.db"), "--account", account, "-o", str(dump))
    header = orjson.loads(dump.read_bytes().split(b"\n", 1)[0])
    assert header["format"] == "ctel-export" and header["version"] == 1
    target_db = str(tmp_path / "b.db")
    first = ctel("import", "--db", target_db, str(dump))
    assert b"1 connectors, 12000 events, 50 snapshots, 0 already present" in first.stderr
    again = ctel("import", "--db", target_db, str(dump))
    assert b"0 connectors, 0 events, 0 snapshots, 12051 already present" in again.stderr
    target = open_store(Settings(db=target_db))
    assert _dump(target, account) == _dump(source, account)
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(b'{"format":"other"}\n')
    failed = ctel("import", "--db", target_db, str(broken), check=False)
    assert failed.returncode == 1 and b"not a ctel export" in failed.stderr


def test_upgrade_from_the_first_schema_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        migrations("sqlite")[0][1] + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (1);"
    )
    conn.execute("INSERT INTO accounts VALUES ('acc', 'Old', '2026-01-01T00:00:00.000000Z')")
    conn.execute(
        "INSERT INTO connectors (account_id, id, activated, days_of_week, duration_hours, "
        "embargo_dates, hour_of_day, notes, timezone, device_id, device_type, last_updated) "
        "VALUES ('acc', 'c1', 1, '[\"Monday\"]', 2, '[]', 3, 'kept', 'UTC', 'd1', 'MANAGED', "
        "'2026-01-01T00:00:00.000000Z')"
    )
    doc = b'{"e":{"k":"Init"},"n":0,"t":5}'
    conn.execute("INSERT INTO events VALUES (1, 5.0, 0.0, 6.0, 'Init', ?)", (doc,))
    conn.commit()
    conn.close()
    migrated = ctel("db", "migrate", "--db", str(db))
    assert f"version {SQLiteStore.known_schema_version}".encode() in migrated.stderr
    store = open_store(Settings(db=str(db)))
    connector = store.get_connector("acc", "c1")
    assert connector is not None and connector.notes == "kept"
    assert store.get_event("acc", "c1", [(5.0, 0.0)]) == b'{"e":{"k":"Init"},"n":0,"t":5}'
    assert store.list_snapshots("acc", "c1", 0, 10, None, 10) == []


def test_upgrade_from_schema_2_moves_snapshots_to_a_rowid_table(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "".join(script for _, script in migrations("sqlite")[:2])
        + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (1); INSERT INTO schema_version VALUES (2);"
    )
    conn.execute("INSERT INTO accounts VALUES ('acc', 'Old', '2026-01-01T00:00:00.000000Z')")
    conn.execute(
        "INSERT INTO connectors (account_id, id, activated, days_of_week, duration_hours, "
        "embargo_dates, hour_of_day, notes, timezone, device_id, device_type, last_updated) "
        "VALUES ('acc', 'c1', 1, '[]', 2, '[]', 3, '', 'UTC', 'd1', 'MANAGED', "
        "'2026-01-01T00:00:00.000000Z')"
    )
    docs = {float(t): orjson.dumps({"t": t, "v": "1", "pad": "x" * 5000}) for t in range(50)}
    conn.executemany("INSERT INTO snapshots VALUES (1, ?, 9.0, ?)", docs.items())
    conn.commit()
    conn.close()
    migrated = ctel("db", "migrate", "--db", str(db))
    assert f"version {SQLiteStore.known_schema_version}".encode() in migrated.stderr
    with closing(sqlite3.connect(db)) as check:
        (sql,) = check.execute("SELECT sql FROM sqlite_master WHERE name='snapshots'").fetchone()
        assert "WITHOUT ROWID" not in sql.upper()
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = open_store(Settings(db=str(db)))
    assert all(store.get_snapshot("acc", "c1", t) == doc for t, doc in docs.items())
    assert len(store.list_snapshots("acc", "c1", 0, 100, None, 100)) == 50
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    store = open_store(Settings(db=str(db)))
    store.migrate()
    store.close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()
    refused = ctel("serve", "--db", str(db), "--port", str(free_port()), check=False, timeout=30)
    assert refused.returncode == 2
    assert b"schema version 99, newer than this ctel knows" in refused.stderr


def test_retention_purges_only_old_telemetry(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = open_store(Settings(db=str(db)))
    store.migrate()
    account, cid = _fill(store)  # all of it recorded in 2023
    now = time.time()
    recent = [{"e": {"k": "Init"}, "t": now - 60, "n": 0}]
    events.record_events(
        store, account, cid, events.parse_batch(orjson.dumps(recent), "application/json", 10)
    )
    store.create_interrupt(account, cid, "reboot", False, "2023-01-01T00:00:00.000000Z")
    ctel("purge", "--db", str(db), "--retention-days", "30")
    assert [row[0] for row in store.export_events(account, cid, None, 100)] == [now - 60]
    assert store.export_snapshots(account, cid, None, 100) == []
    assert store.get_connector(account, cid) is not None
    assert len(store.list_interrupts(account, cid)) == 1


def test_graceful_stop_finishes_in_flight_ingest(tmp_path: Path) -> None:
    """SIGTERM while a 10,000-event batch is being processed: it is answered and stored."""
    db = tmp_path / "g.db"
    server = start_server(db)
    try:
        store = open_store(Settings(db=str(db)))
        tenant: Tenant = make_tenant(store)
        cid = httpx.post(
            f"{server.api}/accounts/{tenant.account_id}/magic/connectors",
            json={"device": {"id": "d"}},
            headers=tenant.write,
        ).json()["result"]["id"]
        body = orjson.dumps(
            [{"e": {"k": "Reconcile", "pad": "x" * 200}, "t": i, "n": 0} for i in range(10_000)]
        )
        conn = http.client.HTTPConnection(
            "127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=60
        )
        conn.request(
            "POST",
            f"/client/v4/accounts/{tenant.account_id}/magic/connectors/{cid}/telemetry/events",
            body=body,
            headers={**tenant.write, "Content-Type": "application/json"},
        )
        server.process.send_signal(signal.SIGTERM)  # the request is in flight
        response = conn.getresponse()
        assert response.status == 200
        assert orjson.loads(response.read())["result"] == {"accepted": 10_000, "duplicates": 0}
        conn.close()
        assert server.process.wait(30) == 0
        assert len(store.export_events(tenant.account_id, cid, None, 20_000)) == 10_000
    finally:
        if server.process.poll() is None:
            stop_server(server)
        else:
            server.log.close()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_needs_no_credentials(live: LiveServer, path: str) -> None:
    assert httpx.get(live.url + path).status_code == 200


def test_sqlite_to_postgres_by_export_then_import(
    tmp_path: Path, postgres_server: TemporaryPostgres
) -> None:
    """Moving stores is `ctel export` then `ctel import`: every record arrives unchanged."""
    source_db = str(tmp_path / "from.db")
    source = open_store(Settings(db=source_db))
    source.migrate()
    account, cid = _fill(source)
    source.create_interrupt(account, cid, "restart", True, "2026-01-01T00:00:00.000000Z")
    dump = tmp_path / "move.ndjson"
    ctel("export", "--db", source_db, "--account", account, "-o", str(dump))
    target_url = postgres_server.new_database("ctel_move")
    ctel("db", "migrate", "--db", target_url)
    moved = ctel("import", "--db", target_url, str(dump))
    assert b"1 connectors, 12000 events, 50 snapshots, 0 already present" in moved.stderr
    target = open_store(Settings(db=target_url))
    try:
        assert _dump(target, account) == _dump(source, account)
        assert target.get_event(account, cid, [(1_700_000_005.0, 2.0)]) == source.get_event(
            account, cid, [(1_700_000_005.0, 2.0)]
        )
        again = ctel("import", "--db", target_url, str(dump))
        assert b"12051 already present" in again.stderr
    finally:
        target.close()
        source.close()


def test_cli_on_postgres_via_ctel_db(postgres_server: TemporaryPostgres) -> None:
    """Every command that takes --db takes a PostgreSQL URL, also from $CTEL_DB."""
    url = postgres_server.new_database("ctel_cli")
    env = {**os.environ, "CTEL_DB": url}
    account = ctel("accounts", "create", env=env).stdout.decode().strip()
    assert len(account) == 32
    token = (
        ctel("tokens", "create", "--account", account, "--permission", "Magic WAN Read", env=env)
        .stdout.decode()
        .strip()
    )
    assert len(token) == 40
    listed = ctel("tokens", "list", env=env).stdout.decode()
    assert account in listed and token not in listed
    key = (
        ctel("users", "create", "--email", "pg@example.com", "--account", account, "--db", url)
        .stdout.decode()
        .strip()
    )
    assert len(key) == 37
    store = open_store(Settings(db=url))
    try:
        assert store.account_exists(account)
        assert store.find_user("pg@example.com") is not None
    finally:
        store.close()
