"""A ``ctel serve --test-mode`` for the tests of test mode (issue 11): on a database that
does not exist yet (so the server creates it, with its marker), and its test API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from support.api import connectors_path, events_path
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


def resets_under_ingest(server: LiveServer, account: dict[str, Any]) -> None:
    """Ingest, reads and resets at once: every answer is 200 or 404 (the connector went),
    never 500; after the last reset nothing is left, nothing half."""
    statuses: list[int] = []
    stop = threading.Event()

    def ingest() -> None:
        with httpx.Client(
            base_url=server.api, headers=bearer(account["token"]), timeout=30
        ) as http:
            base = connectors_path(account["account_id"])
            while not stop.is_set():
                made = http.post(base, json={"device": {"provision_license": True}})
                statuses.append(made.status_code)
                if made.status_code != 200:
                    continue
                cid = made.json()["result"]["id"]
                for i in range(3):
                    got = http.post(
                        events_path(account["account_id"], cid),
                        json=[
                            {"e": {"k": "Init"}, "t": 1_700_000_000 + i},
                            {"e": {"k": "Init"}, "t": 1_700_000_000 + i + 0.5},
                        ],
                    )
                    statuses.append(got.status_code)
                statuses.append(http.get(f"{base}/{cid}").status_code)

    threads = [threading.Thread(target=ingest) for _ in range(3)]
    for thread in threads:
        thread.start()
    resets = []
    try:
        for _ in range(15):
            resets.append(httpx.post(server.url + "/_ctel/reset", timeout=30).status_code)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(resets) == {200}
    assert statuses and set(statuses) <= {200, 404}, sorted(set(statuses))
    # nothing half: no telemetry or interrupt whose connector went
    store = open_store(Settings(db=str(server.db)))
    try:
        for table in ("events", "snapshots", "interrupts"):
            orphans = store._read_fresh(  # type: ignore[attr-defined]
                f"SELECT count(*) FROM {table} WHERE cpk NOT IN (SELECT pk FROM connectors)"
            ).fetchone()[0]
            assert orphans == 0, table
    finally:
        store.close()
    httpx.post(server.url + "/_ctel/reset", timeout=30)
    last = httpx.post(server.url + "/_ctel/reset", timeout=30).json()["result"]["removed"]
    assert last == {"connectors": 0, "events": 0, "snapshots": 0, "interrupts": 0}
