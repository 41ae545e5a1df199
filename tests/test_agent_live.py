"""The agent as a process against a real ``ctel serve``: Init, snapshots, an interrupt's
command, Leave on SIGTERM; and the spool test: the server stops mid-run and comes back,
and every snapshot the agent recorded is stored exactly once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.helpers import assert_valid_snapshot
from conftest import SERVER_LOGS, LiveServer, Tenant, free_port, stop_server
from connector_telemetry import __version__
from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store

RECORDED = re.compile(r"snapshot recorded t=([0-9.e+]+)")


def wait_until(what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Connector:
    """A connector seen by its operator (API token) through the service's reads."""

    def __init__(self, api: str, account_id: str, headers: dict[str, str]) -> None:
        self.account_id = account_id
        self.http = httpx.Client(base_url=api, headers=headers, timeout=10)
        r = self.http.post(
            f"/accounts/{account_id}/magic/connectors",
            json={"device": {"provision_license": True}},
        )
        assert r.status_code == 200, r.text
        self.id: str = r.json()["result"]["id"]
        self.license_key: str = r.json()["result"]["license_key"]
        self.path = f"/accounts/{account_id}/magic/connectors/{self.id}"

    def _all(self, kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"from": 0, "to": "inf", "limit": 1000}
        while True:
            r = self.http.get(f"{self.path}/telemetry/{kind}", params=params)
            assert r.status_code == 200, r.text
            result = r.json()["result"]
            items += result["items"]
            if not result.get("cursor"):
                return items
            params["cursor"] = result["cursor"]

    def events(self) -> list[dict[str, Any]]:
        return self._all("events")

    def snapshot_ts(self) -> list[float]:
        return [float(item["t"]) for item in self._all("snapshots")]


def start_agent(
    server_url: str, connector: Connector, spool: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = spool.parent / "agent.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connector_telemetry.agent",
                "--server",
                server_url,
                "--account",
                connector.account_id,
                "--connector",
                connector.id,
                "--interval",
                "0.2",
                "--timeout",
                "2",
                "--spool",
                str(spool),
                "--verbose",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CTEL_LICENSE_KEY": connector.license_key},
        )
    return process, log


def stop_agent(process: subprocess.Popen[bytes], log: Path, signum: int = signal.SIGTERM) -> None:
    process.send_signal(signum)
    try:
        assert process.wait(10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def pending_records(spool: Path) -> list[str]:
    return sorted(n for n in os.listdir(spool) if n.endswith(".json") and n[0].isdigit())


def test_agent_reports_to_the_service(
    live: LiveServer, tenant: Tenant, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    connector = Connector(live.api, tenant.account_id, tenant.write)
    request.addfinalizer(connector.http.close)
    marker = tmp_path / "interrupted"
    on_reboot = f'echo "$CTEL_INTERRUPT_KIND $CTEL_INTERRUPT_PURGE" > {marker}'
    # the service root with /client/v4 works as well as without
    process, log = start_agent(live.api, connector, tmp_path / "spool", "--on-reboot", on_reboot)
    try:
        wait_until("Init", lambda: [e for e in connector.events() if e["k"] == "Init"])
        r = connector.http.post(connector.path + "/interrupts", json={"reboot": {"purge": True}})
        assert r.status_code == 200, r.text
        # the shell creates the file before it writes to it: wait for the whole line
        wait_until("the reboot command", lambda: marker.exists() and marker.read_text())
        assert marker.read_text() == "reboot 1\n"
        wait_until("3 snapshots", lambda: len(connector.snapshot_ts()) >= 3)
    finally:
        stop_agent(process, log)

    assert "stopping (SIGTERM)" in log.read_text()
    assert [e["k"] for e in connector.events()] == ["Init", "Leave"]
    listed = connector.http.get(connector.path + "/interrupts").json()["result"]
    assert listed[0]["reboot"] == {"purge": True} and listed[0]["triggered_at"]
    ts = connector.snapshot_ts()
    got = connector.http.get(f"{connector.path}/telemetry/snapshots/{ts[-1]}")
    assert got.status_code == 200, got.text
    stored = got.json()["result"]
    model = assert_valid_snapshot({k: v for k, v in stored.items() if k != "a"})
    assert model.v == __version__
    with open("/proc/stat") as f:
        assert model.cpu_count == sum(1 for line in f if re.match(r"cpu\d", line))
    assert model.memory_total_bytes and model.memory_total_bytes > 0
    assert pending_records(tmp_path / "spool") == []


def serve_on(db: Path, port: int) -> LiveServer:
    """``ctel serve`` on a port of our choosing (the agent must find it again after a
    restart; conftest's start_server picks a new port each time)."""
    SERVER_LOGS.watch(db.with_suffix(".log"), truncate=False)
    log = open(db.with_suffix(".log"), "ab")  # noqa: SIM115 - lives as long as the server
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
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", db, process, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, db.with_suffix(".log").read_text()
        try:
            httpx.get(server.api + "/openapi.json", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.05)
    stop_server(server)
    raise AssertionError("server did not start: " + db.with_suffix(".log").read_text())


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, int, str, str]]:
    """A database with an account and a write token: (db, port, account id, token)."""
    db = tmp_path / "ctel.db"
    store = open_store(Settings(db=str(db)))
    store.migrate()
    account_id = credentials.create_account(store, name="agent-spool")
    _, token = credentials.create_token(store, account_id, "Magic WAN Write")
    store.close()
    yield db, free_port(), account_id, token


def test_spooled_through_a_server_restart_and_stored_exactly_once(
    own_server: tuple[Path, int, str, str], tmp_path: Path
) -> None:
    db, port, account_id, token = own_server
    server = serve_on(db, port)
    connector = Connector(server.api, account_id, {"Authorization": f"Bearer {token}"})
    spool = tmp_path / "spool"
    process, log = start_agent(server.url, connector, spool)
    try:
        wait_until("3 snapshots", lambda: len(connector.snapshot_ts()) >= 3)
        stop_server(server)
        wait_until("5 spooled snapshots", lambda: len(pending_records(spool)) >= 5)
        server = serve_on(db, port)
        wait_until("the replay", lambda: "server answers again" in log.read_text())
        replayed = len(connector.snapshot_ts())
        wait_until("3 more snapshots", lambda: len(connector.snapshot_ts()) >= replayed + 3)
    finally:
        try:
            stop_agent(process, log, signal.SIGINT)  # Ctrl-C stops as cleanly as SIGTERM
        finally:
            stored = connector.snapshot_ts()
            events = connector.events()
            latest = connector.http.get(connector.path + "/telemetry/snapshots/latest").json()
            connector.http.close()
            stop_server(server)

    text = log.read_text()
    recorded = [float(t) for t in RECORDED.findall(text)]
    assert "server unreachable" in text and "stopping (SIGINT)" in text
    assert len(recorded) >= 11
    assert sorted(stored) == sorted(recorded)  # every snapshot, none twice
    assert len(set(stored)) == len(stored)
    assert [e["k"] for e in events] == ["Init", "Leave"]
    assert pending_records(spool) == []
    # the outage shows in the agent's own counter
    assert latest["result"]["items"][0]["count_transmit_failures"] >= 5
