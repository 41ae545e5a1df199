"""The pytest plugin (entry point ``pytest11``: installing connector-telemetry is enough).

Fixtures:

- ``ctel_server`` (session scope): one :class:`CtelServer` per test session, or per
  worker process under pytest-xdist (each worker has its own session), started the first
  time a test asks for it and stopped at the end of the session.
- ``ctel`` (function scope): the same server, reset before the test (no connectors,
  events, snapshots or interrupts; no faults, journal or rate limit; real time), so tests
  are isolated. Its credentials stay valid across resets.

Options: ``--ctel-store`` (``sqlite``, ``postgresql`` or a ``postgresql://`` URL; default
``$CTEL_TEST_STORE`` or ``sqlite``) and ``--ctel-workers`` (default 1).

Nothing starts unless a test uses a fixture, so the plugin costs other test suites nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from connector_telemetry.testing.server import CtelServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ctel", "connector-telemetry test server (ctel_server, ctel)")
    group.addoption(
        "--ctel-store",
        default=None,
        help="the ctel fixtures' database: sqlite (default), postgresql (a throwaway cluster, "
        "or $DATABASE_URL's server), or a postgresql:// URL (default: $CTEL_TEST_STORE)",
    )
    group.addoption(
        "--ctel-workers",
        type=int,
        default=None,
        help="worker processes of the ctel fixtures' server (default 1)",
    )


def _store(config: pytest.Config) -> str:
    chosen = config.getoption("--ctel-store") or os.environ.get("CTEL_TEST_STORE") or "sqlite"
    return str(chosen)


@pytest.fixture(scope="session")
def ctel_server(pytestconfig: pytest.Config) -> Iterator[CtelServer]:
    """A ``ctel serve --test-mode`` for the whole session (per xdist worker)."""
    workers = pytestconfig.getoption("--ctel-workers") or 1
    with CtelServer(store=_store(pytestconfig), workers=int(workers)) as server:
        yield server


@pytest.fixture
def ctel(ctel_server: CtelServer) -> CtelServer:
    """The session's server, reset before this test."""
    ctel_server.reset()
    return ctel_server
