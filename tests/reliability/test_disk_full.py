"""A full disk (issue 14): the SQLite store on a small tmpfs that the test mounts, filled by
concurrent ingest until it refuses.

- every acknowledged batch is stored, whole; every refused one got 507 in the envelope with
  ``retry-after``, saying the disk is full (never a 500: the log is watched);
- reads (Get Event, List) and the dashboard's page keep answering while the disk is full;
- once space is freed, ingest is accepted again by the same server (no restart);
- ``PRAGMA integrity_check`` passes at the end;
- the agent's spool on a full disk records nothing it cannot persist (no partial file, no
  pending record) and says so in its log.

Mounting needs root (CI has it); elsewhere the test skips and says why.
Sizes: CI a 6 MB file system and 4 clients; ``CTEL_FULL=1`` 32 MB and 8 clients.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.agent import Spool
from support import create_connector, events_path, fresh_db, start_server, stop_server
from support.reliability import report, size

pytestmark = pytest.mark.slow

MEGABYTES = size(6, 32)
CLIENTS = size(4, 8)
BALLAST = 1_500_000  # bytes freed once the disk is full
T0 = 1_700_000_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={MEGABYTES}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def batch(t: int, client: int) -> list[dict[str, Any]]:
    pad = "x" * 2000
    return [
        {"e": {"k": "Reconcile", "client": client, "pad": pad}, "t": t, "n": n} for n in range(20)
    ]


def test_disk_full_refuses_clearly_and_recovers(
    small_disk: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, tenant = fresh_db(small_disk)
    ballast = small_disk / "ballast"
    ballast.write_bytes(os.urandom(BALLAST))
    server = start_server(db, workers=2, log_path=tmp_path / "server.log")
    try:
        connector_id = create_connector(server.api, tenant)["id"]
        url = server.api + events_path(tenant.account_id, connector_id)
        ticket = itertools.count(T0)
        lock = threading.Lock()
        acked: list[int] = []
        refused: list[httpx.Response] = []
        full = threading.Event()

        def client(i: int) -> None:
            with httpx.Client(headers=tenant.write, timeout=60) as http:
                while len(refused) < 20 * CLIENTS:
                    with lock:
                        t = next(ticket)
                    answer = http.post(url, json=batch(t, i))
                    with lock:
                        if answer.status_code == 200:
                            acked.append(t)
                        else:
                            refused.append(answer)
                            full.set()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        # while it fills: reads and the dashboard keep answering
        reads = 0
        with httpx.Client(headers=tenant.read, timeout=30) as http:
            while any(thread.is_alive() for thread in threads):
                if acked:
                    got = http.get(f"{url}/{acked[0]}.0")
                    assert got.status_code == 200, got.text
                    page = http.get(url, params={"from": 0, "to": T0 + 10**6, "limit": 10})
                    assert page.status_code == 200, page.text
                    reads += 2
                full.wait(0.05)
            for thread in threads:
                thread.join()
            assert http.get(server.url + "/").status_code == 200  # the dashboard
            got = http.get(f"{url}/{acked[-1]}.0")
            assert got.status_code == 200, got.text

        assert acked, "nothing was stored before the disk filled"
        statuses = {answer.status_code for answer in refused}
        assert statuses == {507}, statuses
        for answer in refused:
            body = answer.json()
            assert body["success"] is False and body["result"] is None
            assert body["errors"][0]["code"] == 1507
            assert "disk holding the database is full" in body["errors"][0]["message"]
            assert answer.headers["retry-after"].isdigit()

        # space freed: the same server stores again
        ballast.unlink()
        with httpx.Client(headers=tenant.write, timeout=60) as http:
            t = next(ticket)
            again = http.post(url, json=batch(t, 99))
            assert again.status_code == 200, again.text
            acked.append(t)

        # every acknowledged batch stored whole, nothing of a refused one
        stored: dict[int, int] = {}
        with httpx.Client(headers=tenant.read, timeout=60) as http:
            cursor = None
            while True:
                params: dict[str, Any] = {"from": 0, "to": T0 + 10**6, "limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                body = http.get(url, params=params).json()
                for item in body["result"]["items"]:
                    stored[item["t"]] = stored.get(item["t"], 0) + 1
                cursor = body["result"].get("cursor")
                if not cursor:
                    break
        assert sorted(stored) == sorted(acked)
        assert set(stored.values()) == {20}
    finally:
        stop_server(server)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    report(
        request.config,
        f"disk full (sqlite, {MEGABYTES} MB tmpfs, {CLIENTS} clients): {len(acked)} batches "
        f"acknowledged and stored whole, {len(refused)} refused with 507 (never a 500), "
        f"{reads} reads answered while full, ingest back without a restart once "
        f"{BALLAST // 1000} KB were freed; integrity_check ok",
    )


def test_agent_spool_on_a_full_disk(small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    from connector_telemetry.agent.runner import Agent

    spool_dir = small_disk / "spool"
    spool_dir.mkdir()
    spool = Spool(str(spool_dir))
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
    # the disk is full: nothing is spooled, nothing half-written, and the log says so
    agent = Agent.__new__(Agent)
    agent.spool = spool
    agent.version = "9.9.9"
    before = spool.pending()
    with caplog.at_level(logging.ERROR, logger="connector_telemetry.agent"):
        agent.record_event("Reconcile", note="x" * 100_000)
    assert spool.pending() == before
    assert not [n for n in os.listdir(spool_dir) if n.startswith(".tmp-")]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "NOT recorded" in messages and "disk is full" in messages, messages
    # space freed: it records again
    filler.unlink()
    agent.record_event("Reconcile")
    assert len(spool.pending()) == len(before) + 1
    spool.close()
