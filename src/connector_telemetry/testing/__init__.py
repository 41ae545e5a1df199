"""Test doubles for your test suites and ours.

- :class:`CtelServer` (``server``): a real ``ctel serve --test-mode`` on a free port of
  127.0.0.1 with its own throwaway database, its credentials, and the test API (reset,
  faults, rate limit, request journal, clock) as Python calls::

      with CtelServer() as ctel:
          cf = ctel.client()                # the official SDK, bound to it
          cf.magic_transit.connectors.list(account_id=ctel.account_id)

- ``pytest_plugin``: the ``ctel_server`` and ``ctel`` fixtures, registered through the
  ``pytest11`` entry point (installing the package is enough).
- :class:`TemporaryPostgres` (``postgres``): a throwaway PostgreSQL cluster.

Only the standard library is imported here (the SDK only by ``client()``), so the plugin
costs a pytest run that does not use it nothing noticeable.
"""

from connector_telemetry.testing.postgres import (
    INITDB_FLAGS,
    TemporaryPostgres,
    multi_host_url,
    postgres_bindir,
)
from connector_telemetry.testing.server import (
    Clock,
    CtelApiError,
    CtelServer,
    Fault,
    Faults,
    JournalEntry,
)

__all__ = [
    "INITDB_FLAGS",
    "Clock",
    "CtelApiError",
    "CtelServer",
    "Fault",
    "Faults",
    "JournalEntry",
    "TemporaryPostgres",
    "multi_host_url",
    "postgres_bindir",
]
