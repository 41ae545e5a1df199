"""What the tests share (the fixtures themselves are in conftest.py): a live ``ctel serve``
(``start_server``), tenants with their credentials, API helpers and the SDK fixture
(``support.sdk``, which imports the official SDK)."""

from support.api import (
    assert_error,
    connectors_path,
    create_connector,
    events_path,
    snapshots_path,
)
from support.server import SERVER_LOGS, STORES, LiveServer, free_port, start_server, stop_server
from support.tenants import Tenant, fresh_db, make_tenant

__all__ = [
    "SERVER_LOGS",
    "STORES",
    "LiveServer",
    "Tenant",
    "assert_error",
    "connectors_path",
    "create_connector",
    "events_path",
    "free_port",
    "fresh_db",
    "make_tenant",
    "snapshots_path",
    "start_server",
    "stop_server",
]
