"""Backups that restore, and upgrades that keep the data (issue 14).

- ``ctel backup`` of a SQLite store while clients ingest into it (two workers): the copy
  passes ``PRAGMA integrity_check``; ``ctel restore`` puts it in place of a new database and
  a server started on it holds every batch acknowledged before the backup began, each
  batch whole or absent (never half).
- ``pg_dump`` of a PostgreSQL store taken under ingest restores (``pg_restore``) into a new
  database that ``ctel db migrate`` accepts and a server serves, with the same guarantee.
- A database written by the previous release (the code of the commit that started this
  issue, taken from git and run as it was) is migrated by this ctel's ``ctel db migrate``
  with every connector, event and snapshot intact, on both stores.

Sizes: CI 4 clients for ~3 s of ingest; ``CTEL_FULL=1`` 8 clients for ~20 s.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.testing import TemporaryPostgres, postgres_bindir
from support import (
    STORES,
    Tenant,
    create_connector,
    events_path,
    free_port,
    fresh_db,
    snapshots_path,
    start_server,
    stop_server,
)
from support.reliability import report, size

pytestmark = pytest.mark.slow

CLIENTS = size(4, 8)
INGEST_SECONDS = size(3, 20)
T0 = 1_700_000_000
#: The commit that started issue 14: "the previous release" whose databases must migrate.
PREVIOUS_RELEASE = "dca93a0"
ROOT = Path(__file__).resolve().parents[2]


def ctel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Ingest:
    """Clients sending event batches, each with its own ``t`` and ``n`` = 0..size-1;
    every acknowledged batch is recorded with the moment its answer arrived."""

    def __init__(self, api: str, tenant: Tenant, connector_id: str):
        self.url = api + events_path(tenant.account_id, connector_id)
        self.headers = tenant.write
        self.acked: list[tuple[float, int, int]] = []  # (answered at, t, size)
        self.sent: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._t = itertools.count(T0)
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Ingest:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, client: int) -> None:
        with httpx.Client(headers=self.headers, timeout=30) as http:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                with self._lock:
                    t = next(self._t)
                count = (1, 10, 50)[i % 3]
                batch = [
                    {"e": {"k": "Reconcile", "client": client}, "t": t, "n": n}
                    for n in range(count)
                ]
                with self._lock:
                    self.sent.append((t, count))
                try:
                    answer = http.post(self.url, json=batch)
                except httpx.TransportError:
                    continue
                with self._lock:
                    self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                    if answer.status_code == 200:
                        self.acked.append((time.monotonic(), t, count))


def stored_batches(api: str, tenant: Tenant, connector_id: str) -> dict[int, int]:
    """Every stored event, counted by its ``t``: ``{t: events}``."""
    counts: dict[int, int] = {}
    url = api + events_path(tenant.account_id, connector_id)
    cursor: str | None = None
    with httpx.Client(headers=tenant.read, timeout=60) as http:
        while True:
            params: dict[str, Any] = {"from": 0, "to": T0 + 10**7, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            body = http.get(url, params=params).json()
            assert body["success"], body
            for item in body["result"]["items"]:
                counts[item["t"]] = counts.get(item["t"], 0) + 1
            cursor = body["result"].get("cursor")
            if not cursor:
                return counts


def check_restored(counts: dict[int, int], ingest: Ingest, began: float) -> tuple[int, int]:
    """Every batch acknowledged before ``began`` is stored whole; every stored batch is
    whole. Returns (batches acknowledged before, batches stored)."""
    sizes = dict(ingest.sent)
    for t, stored in counts.items():
        assert stored == sizes[t], f"batch t={t} half stored: {stored} of {sizes[t]}"
    before = [(t, n) for at, t, n in ingest.acked if at < began]
    missing = [t for t, _ in before if t not in counts]
    assert not missing, f"{len(missing)} batches acknowledged before the backup are missing"
    return len(before), len(counts)


def test_sqlite_backup_under_ingest_restores(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, tenant = fresh_db(tmp_path)
    server = start_server(db, workers=2)
    try:
        connector_id = create_connector(server.api, tenant)["id"]
        with Ingest(server.api, tenant, connector_id) as ingest:
            time.sleep(INGEST_SECONDS / 2)
            began = time.monotonic()
            done = ctel("backup", "--db", db, "-o", str(tmp_path / "copy.db"))
            took = time.monotonic() - began
            time.sleep(INGEST_SECONDS / 2)
        assert done.returncode == 0, done.stderr
        assert "backed up" in done.stderr
        assert ingest.statuses.get(200, 0) > 0 and set(ingest.statuses) == {200}, ingest.statuses
    finally:
        stop_server(server)
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    restored = str(tmp_path / "restored.db")
    done = ctel("restore", "--db", restored, str(tmp_path / "copy.db"))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(restored) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    server = start_server(restored, log_path=tmp_path / "restored.log")
    try:
        before, stored = check_restored(
            stored_batches(server.api, tenant, connector_id), ingest, began
        )
    finally:
        stop_server(server)
    size_mb = (tmp_path / "copy.db").stat().st_size / 1e6
    report(
        request.config,
        f"backup (sqlite): online copy of {size_mb:.1f} MB under ingest by {CLIENTS} clients "
        f"in {took:.2f} s (the command, Python start included); restored: "
        f"{before} batches acknowledged before it began all present, {stored} stored, "
        "0 half; integrity_check ok",
    )


def test_backup_and_restore_refusals(tmp_path: Path) -> None:
    db, _ = fresh_db(tmp_path)
    out = tmp_path / "copy.db"
    assert ctel("backup", "--db", db, "-o", str(out)).returncode == 0
    again = ctel("backup", "--db", db, "-o", str(out))
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    assert ctel("backup", "--db", db, "-o", str(out), "--force").returncode == 0
    onto = ctel("restore", "--db", db, str(out))
    assert onto.returncode == 1 and "--force" in onto.stderr
    assert ctel("restore", "--db", db, str(out), "--force").returncode == 0
    pg = ctel("backup", "--db", "postgresql://u@127.0.0.1:1/x", "-o", str(tmp_path / "x"))
    assert pg.returncode == 2 and "pg_dump" in pg.stderr, pg.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    bad = ctel("restore", "--db", str(tmp_path / "new.db"), str(junk))
    assert bad.returncode == 1 and "not a ctel database" in bad.stderr, bad.stderr
    assert not (tmp_path / "new.db").exists() or (tmp_path / "new.db").stat().st_size == 0
    for line in (again.stderr, onto.stderr, pg.stderr, bad.stderr):
        assert line.startswith("ctel: ") and line.count("\n") == 1, line


@pytest.fixture
def cluster() -> Iterator[TemporaryPostgres]:
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL's server binaries are not installed")
    with TemporaryPostgres(use_database_url=False) as pg:
        yield pg


def test_pg_dump_under_ingest_restores(
    cluster: TemporaryPostgres, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bindir = postgres_bindir()
    assert bindir is not None
    url = cluster.new_database("ctel_dumped")
    db, tenant = fresh_db(tmp_path, url)
    server = start_server(db, workers=2, log_path=tmp_path / "pg.log")
    dump = tmp_path / "ctel.dump"
    try:
        connector_id = create_connector(server.api, tenant)["id"]
        with Ingest(server.api, tenant, connector_id) as ingest:
            time.sleep(INGEST_SECONDS / 2)
            began = time.monotonic()
            done = subprocess.run(
                [str(bindir / "pg_dump"), "--format=custom", "--file", str(dump), "--dbname", url],
                capture_output=True,
                text=True,
                check=False,
            )
            took = time.monotonic() - began
            time.sleep(INGEST_SECONDS / 2)
        assert done.returncode == 0, done.stderr
    finally:
        stop_server(server)
    target = cluster.new_database("ctel_restored")
    done = subprocess.run(
        [str(bindir / "pg_restore"), "--no-owner", "--dbname", target, str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    migrate = ctel("db", "migrate", "--db", target)
    assert migrate.returncode == 0, migrate.stderr
    server = start_server(target, log_path=tmp_path / "restored.log")
    try:
        before, stored = check_restored(
            stored_batches(server.api, tenant, connector_id), ingest, began
        )
    finally:
        stop_server(server)
    report(
        request.config,
        f"backup (postgres): pg_dump under ingest in {took:.2f} s, pg_restore into a new "
        f"database, ctel db migrate accepts it; {before} batches acknowledged before the "
        f"dump began all present, {stored} stored, 0 half",
    )


# -- upgrades -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's source tree (``src/``), from git."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the previous release's code cannot be taken from git")
    folder = tmp_path_factory.mktemp("previous")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE, "src"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"commit {PREVIOUS_RELEASE} is not in this clone (a shallow clone?)")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "src"


@pytest.mark.parametrize("store", STORES)
def test_previous_release_database_migrates(
    store: str, previous_release: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    old = {"PYTHONPATH": str(previous_release), "PYTHONSAFEPATH": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import connector_telemetry; print(connector_telemetry.__file__)"],
        capture_output=True,
        text=True,
        env={**os.environ, **old},
        check=True,
    )
    assert probe.stdout.startswith(str(previous_release)), probe.stdout
    if store == "postgresql":
        db = request.getfixturevalue("postgres_server").new_database("ctel_previous")
    else:
        db = str(tmp_path / "previous.db")
    made = ctel("db", "migrate", "--db", db, env=old)
    assert made.returncode == 0, made.stderr
    account = ctel("accounts", "create", "--db", db, env=old).stdout.strip()
    token = ctel(
        "tokens",
        "create",
        "--db",
        db,
        "--account",
        account,
        "--permission",
        "Magic WAN Write",
        env=old,
    )
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip().split()[-1]
    tenant = Tenant(account, secret, secret, "", "")

    def written(api: str) -> dict[str, Any]:
        with httpx.Client(headers=tenant.write, timeout=30) as http:
            connectors = http.get(api + f"/accounts/{account}/magic/connectors").json()
            out: dict[str, Any] = {"connectors": connectors["result"]}
            for c in connectors["result"]:
                out[c["id"]] = [
                    http.get(
                        api + events_path(account, c["id"]),
                        params={"from": 0, "to": T0 + 10**6, "limit": 1000},
                    ).json(),
                    http.get(
                        api + snapshots_path(account, c["id"]),
                        params={"from": 0, "to": T0 + 10**6, "limit": 1000},
                    ).json(),
                ]
        return out

    server = start_server(db, env=old, log_path=tmp_path / "old.log", port=free_port())
    try:
        for i in range(3):
            connector = create_connector(server.api, tenant)
            events = [
                {"e": {"k": k, "i": i}, "t": T0 + j, "n": 0}
                for j, k in enumerate(("Init", "Reconcile", "Leave"))
            ]
            answer = httpx.post(
                server.api + events_path(account, connector["id"]),
                json=events,
                headers=tenant.write,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            snapshot = [
                {
                    "t": T0 + 5,
                    "v": "2026.11.2",
                    "count_reclaim_failures": i,
                    "count_reclaimed_paths": 1,
                    "count_record_failed": 0,
                    "count_transmit_failures": 2,
                }
            ]
            answer = httpx.post(
                server.api + snapshots_path(account, connector["id"]),
                json=snapshot,
                headers=tenant.write,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        before = written(server.api)
    finally:
        stop_server(server)

    migrated = ctel("db", "migrate", "--db", db)
    assert migrated.returncode == 0, migrated.stderr
    server = start_server(db, log_path=tmp_path / "new.log")
    try:
        after = written(server.api)
    finally:
        stop_server(server)
    assert after == before
    assert len(after["connectors"]) == 3
    for c in after["connectors"]:
        events, snapshots = after[c["id"]]
        assert len(events["result"]["items"]) == 3 and len(snapshots["result"]["items"]) == 1
    report(
        request.config,
        f"upgrade ({store}): a database written by {PREVIOUS_RELEASE} (3 connectors, their "
        f"events and snapshots) migrated by {migrated.stderr.strip()}; every read identical",
    )
