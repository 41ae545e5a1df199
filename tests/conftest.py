"""The fixtures: a live ``ctel serve`` on a free port, once per store (SQLite, then
PostgreSQL: ``$DATABASE_URL`` when set, else a throwaway cluster started from the
installed binaries; ``CTEL_TEST_STORES=sqlite`` runs SQLite only), and each test's own
tenant and connector, so tests can share a server. The helpers are in tests/support.

Every server a test starts has its log watched (``support.server.SERVER_LOGS``): a test
during which any server logged an answer 500 fails (at its teardown), whatever the test
itself checked, and so does the run when one shows up in a log only after the last test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store
from connector_telemetry.store.postgres import PostgresStore
from connector_telemetry.testing import TemporaryPostgres
from support import (
    SERVER_LOGS,
    STORES,
    LiveServer,
    Tenant,
    create_connector,
    fresh_db,
    make_tenant,
    start_server,
    stop_server,
)
from support.sdk import sdk  # noqa: F401 - the fixture: one run per SDK mode

#: Set (to anything): the shared live server runs with --test-mode (tests/test_testmode.py
#: runs the SDK tests so, to prove test mode changes nothing when no fault or limit is set).
IN_TEST_MODE = "CTEL_TESTS_IN_TEST_MODE"


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


@pytest.fixture
def pg_url(postgres_server: TemporaryPostgres) -> str:
    """A new, empty database of this test's own."""
    return postgres_server.new_database("ctel_pgtest")


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    """A migrated ``PostgresStore`` on ``pg_url``."""
    store = open_store(Settings(db=pg_url))
    assert isinstance(store, PostgresStore)
    store.migrate()
    yield store
    store.close()


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
    if os.environ.get(IN_TEST_MODE):
        # Issue 11: the same tests against a test-mode server, which must create its
        # database (its marker) itself.
        server = start_server(db, "--test-mode", log_path=folder / "ctel.log")
        yield server
        stop_server(server)
        return
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
def connector_id(live: LiveServer, tenant: Tenant) -> str:
    return str(create_connector(live.api, tenant)["id"])
