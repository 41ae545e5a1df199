"""Shared fixtures: a live ``ctel serve`` on a free port, and helpers that give
each test its own account, tokens and connector (so tests can share a server).

Every server a test starts has its log watched: a test during which any server logged an
answer 500 fails (at its teardown), whatever the test itself checked, and so does the run
when one shows up in a log only after the last test (``SERVER_LOGS``).

The live server (and so every API test) runs once per store: SQLite, then PostgreSQL
(``$DATABASE_URL`` when set, else a throwaway cluster started from the installed
binaries). ``CTEL_TEST_STORES=sqlite`` runs SQLite only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store
from connector_telemetry.testing import TemporaryPostgres

#: The stores the API suite runs against.
STORES = [name for name in os.environ.get("CTEL_TEST_STORES", "sqlite,postgres").split(",") if name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What a 500 leaves in a server's log: ``App._fail``'s line (with the request id and route),
#: or granian's for an exception that escaped the app.
SERVER_ERROR_MARKS = (b"unexpected error on ", b"Application callable raised an exception")


class ServerLogs:
    """The logs of every server the tests started, read as they grow, for 500s."""

    def __init__(self) -> None:
        self.offsets: dict[Path, int] = {}
        self.pending: list[str] = []  # found in a log that was then reused

    def watch(self, path: Path, *, truncate: bool) -> None:
        """Call before a server starts writing ``path`` (from its start when ``truncate``,
        else appending)."""
        if path in self.offsets:
            self.pending += self._scan(path)
        self.offsets[path] = 0 if truncate or not path.exists() else path.stat().st_size

    def errors(self) -> list[str]:
        """Every 500 logged since the last call."""
        found, self.pending = self.pending, []
        for path in self.offsets:
            found += self._scan(path)
        return found

    def _scan(self, path: Path) -> list[str]:
        offset = self.offsets[path]
        try:
            with open(path, "rb") as log:
                if log.seek(0, os.SEEK_END) < offset:  # truncated meanwhile
                    offset = 0
                log.seek(offset)
                text = log.read()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind(b"\n") + 1]
        self.offsets[path] = offset + len(complete)
        lines = complete.decode(errors="replace").splitlines()
        return [
            f"{path}:\n" + "\n".join(lines[i : i + 25])
            for i, line in enumerate(lines)
            if any(mark.decode() in line for mark in SERVER_ERROR_MARKS)
        ]


SERVER_LOGS = ServerLogs()


@pytest.fixture(autouse=True)
def no_server_errors() -> Iterator[None]:
    """Fails the test during which any server logged a 500 (a 500 a test retried past, or
    never looked at, included)."""
    yield
    errors = SERVER_LOGS.errors()
    if errors:
        pytest.fail(f"{len(errors)} answer(s) 500 in server logs:\n\n" + "\n\n".join(errors))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """500s logged after the last test's check (while shared servers stopped) fail the run."""
    errors = SERVER_LOGS.errors()
    if errors:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "answers 500 in server logs", red=True)
            reporter.write_line("\n\n".join(errors))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class LiveServer:
    url: str  # service root, e.g. http://127.0.0.1:PORT
    db: str | Path  # what `--db` takes: a SQLite file or a PostgreSQL URL (a str for `live`)
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def api(self) -> str:
        return self.url + "/client/v4"


def start_server(
    db: Path | str, *extra: str, workers: int = 1, log_path: Path | None = None
) -> LiveServer:
    """``ctel serve --db db``; its output goes to ``log_path`` (default: beside the file)."""
    port = free_port()
    log_path = log_path or Path(db).with_suffix(".log")
    SERVER_LOGS.watch(log_path, truncate=True)
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector_telemetry",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--workers",
            str(workers),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(log_path.read_text())
        try:
            httpx.get(url + "/client/v4/openapi.json", timeout=1)
            return LiveServer(url, db, process, log)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    log.close()
    raise RuntimeError("server did not start: " + log_path.read_text())


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log.close()


# -- PostgreSQL -----------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    if "postgres" not in STORES:
        pytest.skip("CTEL_TEST_STORES leaves PostgreSQL out")
    server = TemporaryPostgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: TemporaryPostgres) -> str:
    """This test run's own database."""
    return postgres_server.new_database()


# -- the live server, once per store ----------------------------------------------


@pytest.fixture(scope="session", params=STORES)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("live")
    if request.param == "postgres":
        db = str(request.getfixturevalue("postgres_url"))
    else:
        db = str(folder / "ctel.db")
    store = open_store(Settings(db=db))
    store.migrate()
    credentials.create_account(store, name="bootstrap-suppressor")
    store.close()
    server = start_server(db, log_path=folder / "ctel.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def store(live: LiveServer) -> Iterator[Store]:
    """The live server's store, opened directly (as the CLI does) to issue credentials."""
    opened = open_store(Settings(db=str(live.db)))
    yield opened
    opened.close()


@dataclass
class Tenant:
    account_id: str
    write_token: str
    read_token: str
    email: str
    api_key: str

    @property
    def write(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_token}"}

    @property
    def read(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_token}"}

    @property
    def legacy(self) -> dict[str, str]:
        return {"X-Auth-Email": self.email, "X-Auth-Key": self.api_key}


def make_tenant(store: Store) -> Tenant:
    account_id = credentials.create_account(store)
    _, write = credentials.create_token(store, account_id, "Magic WAN Write")
    _, read = credentials.create_token(store, account_id, "Magic WAN Read")
    email = f"user-{account_id[:12]}@example.com"
    key = credentials.create_user(store, email, [account_id])
    return Tenant(account_id, write, read, email, key)


def fresh_db(folder: Path, url: str | None = None) -> tuple[str, Tenant]:
    """A new, migrated database (a SQLite file in ``folder``, or the empty PostgreSQL
    database at ``url``) with one tenant (whose account also keeps ``ctel serve`` from
    bootstrapping its own)."""
    db = url or str(folder / "ctel.db")
    store = open_store(Settings(db=db))
    try:
        store.migrate()
        tenant = make_tenant(store)
    finally:
        store.close()
    return db, tenant


@pytest.fixture(params=STORES)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Tenant]:
    """A fresh database of its own on each store (PostgreSQL: on the suite's cluster), for a
    test that starts its own server: ``(db, tenant)``."""
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").new_database("ctel_fresh")
    return fresh_db(tmp_path, url)


@pytest.fixture
def tenant(store: Store) -> Tenant:
    return make_tenant(store)


@pytest.fixture
def other_tenant(store: Store) -> Tenant:
    return make_tenant(store)


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.api, timeout=30) as client:
        yield client


@pytest.fixture
def connector_id(http: httpx.Client, tenant: Tenant) -> str:
    response = http.post(
        f"/accounts/{tenant.account_id}/magic/connectors",
        json={"device": {"provision_license": True}},
        headers=tenant.write,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["result"]["id"])


def events_path(account_id: str, connector_id: str) -> str:
    return f"/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"


def assert_error(response: httpx.Response, status: int, code: int, text: str = "") -> None:
    """Cloudflare's error envelope, exactly, with the expected status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"result", "success", "errors", "messages"}, body
    assert body["result"] is None and body["success"] is False and body["messages"] == []
    assert body["errors"][0]["code"] == code, body
    assert isinstance(body["errors"][0]["message"], str) and body["errors"][0]["message"]
    assert text.lower() in body["errors"][0]["message"].lower(), body
