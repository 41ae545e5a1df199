"""Shared fixtures: a live ``ctel serve`` on a free port, and helpers that give
each test its own account, tokens and connector (so tests can share a server).

The live server (and so every API test) runs once per store: SQLite, then PostgreSQL
(``$DATABASE_URL`` when set, else a throwaway cluster started from the installed
binaries). ``CTEL_TEST_STORES=sqlite`` runs SQLite only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
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

#: The stores the API suite runs against.
STORES = [name for name in os.environ.get("CTEL_TEST_STORES", "sqlite,postgres").split(",") if name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout, then PATH)."""
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if version.isdigit():
            found.append((int(version), initdb.parent))
    if found:
        return max(found)[1]
    initdb_path = shutil.which("initdb")
    return Path(initdb_path).parent if initdb_path else None


#: UTF-8 whatever the environment's locale (C collation: the schema's keys use it anyway).
INITDB_FLAGS = ("-E", "UTF8", "--locale=C", "--no-sync")


class PostgresServer:
    """A PostgreSQL server the tests may create databases on: ``$DATABASE_URL``'s, or a
    throwaway cluster in a temporary folder (initdb refuses root: as root, the cluster
    belongs to the ``postgres`` user), listening on 127.0.0.1 and a socket in that folder."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.created: list[str] = []
        given = os.environ.get("DATABASE_URL")
        if given:
            if not given.startswith(("postgresql://", "postgres://")):
                raise RuntimeError("DATABASE_URL must be a postgresql:// URL")
            self.url = given
            return
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError(
                "the PostgreSQL tests need PostgreSQL's server binaries (Debian: apt-get "
                "install postgresql) or DATABASE_URL; CTEL_TEST_STORES=sqlite skips them"
            )
        self.bindir = bindir
        as_root = os.geteuid() == 0
        self._as = ["runuser", "-u", "postgres", "--"] if as_root else []
        # as root, in /tmp itself: the postgres user must be able to reach the folder
        self.folder = Path(tempfile.mkdtemp(prefix="ctel-pg-", dir="/tmp" if as_root else None))
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")
        data, log, port = self.folder / "data", self.folder / "log", free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            f"-c unix_socket_directories={self.folder} -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", *INITDB_FLAGS)
            self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.url = f"postgresql://postgres@/postgres?host={self.folder}&port={port}"

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self.bindir / program), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    def new_database(self, prefix: str = "ctel_test") -> str:
        """A URL of a new, empty database, dropped when the server stops (with
        ``$DATABASE_URL``, its user needs the CREATEDB privilege)."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        head, _, tail = self.url.partition("?")
        base = head.rsplit("/", 1)[0]
        return f"{base}/{name}" + (f"?{tail}" if tail else "")

    def stop(self) -> None:
        if self.folder is None:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                for name in self.created:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if "postgres" not in STORES:
        pytest.skip("CTEL_TEST_STORES leaves PostgreSQL out")
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
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
