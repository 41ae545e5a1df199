"""Connector edits and ingest from several workers at once: an edit is a read-modify-write
inside one write transaction, so it never writes back a heartbeat or version it read
before a concurrent ingest committed, and concurrent edits of different fields all land."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import LiveServer, Tenant, events_path, start_server, stop_server


@pytest.fixture
def two_workers(fresh: tuple[str, Tenant], tmp_path: Path) -> Iterator[tuple[LiveServer, Tenant]]:
    db, tenant = fresh
    server = start_server(db, workers=2, log_path=tmp_path / "ctel.log")
    yield server, tenant
    stop_server(server)


def test_edits_never_undo_concurrent_ingest_or_each_other(
    two_workers: tuple[LiveServer, Tenant],
) -> None:
    server, tenant = two_workers
    base = f"{server.api}/accounts/{tenant.account_id}/magic/connectors"
    created = httpx.post(base, json={"device": {"id": "race"}}, headers=tenant.write, timeout=30)
    cid = created.json()["result"]["id"]
    path = server.api + events_path(tenant.account_id, cid)
    stop = threading.Event()
    errors: list[str] = []
    acked = [0]  # the newest t whose ingest was acknowledged

    def ingest() -> None:  # keeps both workers' writers busy, so edits wait for their turn
        with httpx.Client(headers=tenant.write, timeout=30) as http:
            for t in range(1, 1_000_000):
                if stop.is_set():
                    return
                body = [{"e": {"k": "Init"}, "t": t, "n": i, "v": f"v{t}"} for i in range(200)]
                got = http.post(path, json=body)
                if got.status_code != 200:
                    errors.append(got.text)
                acked[0] = t

    feeder = threading.Thread(target=ingest)
    feeder.start()
    lost = []
    try:
        with (
            httpx.Client(headers=tenant.write, timeout=30) as a,
            httpx.Client(headers=tenant.write, timeout=30) as b,
        ):
            for round_ in range(40):
                barrier = threading.Barrier(2)

                def edit(
                    http: httpx.Client,
                    body: dict[str, object],
                    barrier: threading.Barrier = barrier,
                ) -> None:
                    barrier.wait()
                    got = http.patch(f"{base}/{cid}", json=body)
                    if got.status_code != 200:
                        errors.append(got.text)

                edits = [
                    threading.Thread(target=edit, args=(a, {"notes": f"r{round_}"})),
                    threading.Thread(
                        target=edit, args=(b, {"interrupt_window_hour_of_day": round_ % 24})
                    ),
                ]
                for thread in edits:
                    thread.start()
                for thread in edits:
                    thread.join()
                seen = acked[0]
                got = a.get(f"{base}/{cid}").json()["result"]
                if (got["notes"], got["interrupt_window_hour_of_day"]) != (
                    f"r{round_}",
                    round_ % 24,
                ):
                    lost.append((round_, got["notes"], got["interrupt_window_hour_of_day"]))
                if seen and int(got["last_seen_version"][1:]) < seen:
                    lost.append((round_, "version", got["last_seen_version"], seen))
    finally:
        stop.set()
        feeder.join()
    assert errors == []
    assert lost == [], f"edits lost or telemetry undone: {lost}"


def test_one_device_never_gets_two_connectors(two_workers: tuple[LiveServer, Tenant]) -> None:
    server, tenant = two_workers
    base = f"{server.api}/accounts/{tenant.account_id}/magic/connectors"
    clients = [httpx.Client(headers=tenant.write, timeout=30) for _ in range(4)]
    outcomes = []
    try:
        for round_ in range(30):
            barrier = threading.Barrier(len(clients))
            statuses: list[int] = []

            def create(
                http: httpx.Client,
                barrier: threading.Barrier = barrier,
                statuses: list[int] = statuses,
                device: str = f"d{round_}",
            ) -> None:
                barrier.wait()
                statuses.append(http.post(base, json={"device": {"id": device}}).status_code)

            threads = [threading.Thread(target=create, args=(http,)) for http in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            outcomes.append(sorted(statuses))
    finally:
        for http in clients:
            http.close()
    listed = httpx.get(base, headers=tenant.write, timeout=30).json()["result"]
    assert outcomes == [[200, 409, 409, 409]] * 30
    assert len(listed) == 30
