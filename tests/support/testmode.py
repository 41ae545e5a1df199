"""A ``ctel serve --test-mode`` for the tests of test mode (issue 11): on a database that
does not exist yet (so the server creates it, with its marker), and its test API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server import LiveServer, start_server


def new_db(request: pytest.FixtureRequest, folder: Path, store: str) -> str:
    """A database that does not exist yet (a new SQLite file, an empty PostgreSQL one)."""
    if store == "postgres":
        return str(request.getfixturevalue("postgres_server").new_database("ctel_test_mode"))
    return str(folder / "test.db")


def start_test_server(
    request: pytest.FixtureRequest, folder: Path, store: str, workers: int = 1
) -> LiveServer:
    db = new_db(request, folder, store)
    return start_server(db, "--test-mode", workers=workers, log_path=folder / "ctel.log")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestApi:
    """The test API of one server (``/_ctel/...``), each call checked for 200."""

    __test__ = False

    def __init__(self, server: LiveServer):
        self.http = httpx.Client(base_url=server.url + "/_ctel", timeout=30)

    def call(self, verb: str, where: str, body: Any = None, **params: Any) -> Any:
        got = self.http.request(verb, where, json=body, params=params or None)
        assert got.status_code == 200, got.text
        return got.json()["result"]

    def account(self) -> dict[str, Any]:
        return dict(self.call("POST", "/accounts", {}))

    def fault(self, **rule: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/faults", rule))

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.call("GET", "/requests", **filters))

    def close(self) -> None:
        self.http.close()
