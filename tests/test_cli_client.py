"""The ``ctel`` client commands (issue 10) against a live ``ctel serve``, each store: every
command in table and JSON/NDJSON modes, the output equal to the API's own items, errors
and exit codes, and ``tail`` (the stream when the server has one, the polling fallback
against a server with streams switched off), including Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from connector_telemetry.cli.telemetry import split_event_id
from connector_telemetry.cli.times import parse_time
from support.api import create_connector, events_path, snapshots_path
from support.sdk import T0, event
from support.server import LiveServer, start_server, stop_server
from support.tenants import Tenant


def env_of(live: LiveServer, tenant: Tenant, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    return {
        **env,
        "CLOUDFLARE_BASE_URL": live.api,
        "CLOUDFLARE_API_TOKEN": tenant.write_token,
        "CLOUDFLARE_ACCOUNT_ID": tenant.account_id,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def ctel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(env: dict[str, str], *args: str) -> str:
    done = ctel(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def api(live: LiveServer, tenant: Tenant, path: str, **params: Any) -> Any:
    r = httpx.get(live.api + path, params=params, headers=tenant.read, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def post(live: LiveServer, tenant: Tenant, path: str, items: list[Any]) -> None:
    r = httpx.post(live.api + path, json=items, headers=tenant.write, timeout=30)
    assert r.status_code == 200, r.text


def snap(t: float, **extra: Any) -> dict[str, Any]:
    return {
        "t": t,
        "v": "2026.11.2",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 1,
        "count_record_failed": 0,
        "count_transmit_failures": 2,
        **extra,
    }


def test_connector_commands_table_and_json(live: LiveServer, tenant: Tenant) -> None:
    env = env_of(live, tenant)
    created = json.loads(
        ok(
            env,
            "connectors",
            "create",
            "--provision-license",
            "--notes",
            "a",
            "--timezone",
            "Europe/Paris",
            "--json",
        )
    )
    cid = created["id"]
    base = f"/accounts/{tenant.account_id}/magic/connectors"
    assert created["notes"] == "a" and created["timezone"] == "Europe/Paris"
    assert "license_key" in created
    assert json.loads(ok(env, "connectors", "get", cid, "--json")) == api(
        live, tenant, f"{base}/{cid}"
    )
    table = ok(env, "connectors", "list")
    assert cid in table and "ID" in table.splitlines()[0] and "Europe/Paris" in table
    lines = ok(env, "connectors", "list", "--ndjson").splitlines()
    assert [json.loads(line) for line in lines] == api(live, tenant, base)
    assert json.loads(ok(env, "connectors", "list", "--json")) == api(live, tenant, base)
    edited = json.loads(ok(env, "connectors", "edit", cid, "--notes", "b", "--activated", "--json"))
    assert edited["notes"] == "b" and edited["activated"] is True
    updated = json.loads(
        ok(
            env,
            "connectors",
            "update",
            cid,
            "--interrupt-window-hour-of-day",
            "3",
            "--interrupt-window-days-of-week",
            "Monday,Friday",
            "--json",
        )
    )
    assert updated["interrupt_window_hour_of_day"] == 3
    assert updated["interrupt_window_days_of_week"] == ["Monday", "Friday"]
    assert "b" in ok(env, "connectors", "get", cid)  # table of fields

    interrupt = json.loads(ok(env, "interrupts", "create", cid, "restart", "--purge", "--json"))
    assert interrupt["restart"] == {"purge": True}
    assert json.loads(ok(env, "interrupts", "list", cid, "--json")) == api(
        live, tenant, f"{base}/{cid}/interrupts"
    )
    assert "restart (purge)" in ok(env, "interrupts", "list", cid)

    gone = json.loads(ok(env, "connectors", "delete", cid, "--json"))
    assert gone["id"] == cid
    done = ctel(env, "connectors", "get", cid)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error ") and len(done.stderr.splitlines()) == 1


def test_legacy_key_and_options_before_the_command(live: LiveServer, tenant: Tenant) -> None:
    env = {k: v for k, v in env_of(live, tenant).items() if not k.startswith("CLOUDFLARE_")}
    out = ok(
        env,
        "--base-url",
        live.api,
        "--account",
        tenant.account_id,
        "--email",
        tenant.email,
        "--key",
        tenant.api_key,
        "--json",
        "connectors",
        "list",
    )
    assert json.loads(out) == api(live, tenant, f"/accounts/{tenant.account_id}/magic/connectors")


@pytest.fixture
def history(live: LiveServer, tenant: Tenant, connector_id: str) -> tuple[dict[str, str], str]:
    post(
        live,
        tenant,
        events_path(tenant.account_id, connector_id),
        [
            event("Init", T0, 0),
            event("StartUpgrade", T0, 1),
            event("FinishUpgradeFailure", T0 + 1, 0, reason="disk full"),
            event("RekeyStart", T0 + 2.5, 3),
        ],
    )
    post(
        live,
        tenant,
        snapshots_path(tenant.account_id, connector_id),
        [
            snap(T0),
            snap(T0 + 60, count_reclaim_failures=2),
        ],
    )
    return env_of(live, tenant), connector_id


def test_events_commands(live: LiveServer, tenant: Tenant, history: tuple[Any, str]) -> None:
    env, cid = history
    path = events_path(tenant.account_id, cid)
    window = ("--from", str(T0 - 10), "--to", str(T0 + 10))
    listed = api(live, tenant, path, **{"from": T0 - 10, "to": T0 + 10})
    assert json.loads(ok(env, "events", "list", cid, *window, "--json")) == listed["items"]
    lines = ok(env, "events", "list", cid, *window, "--ndjson").splitlines()
    assert [json.loads(line) for line in lines] == listed["items"]
    assert len(json.loads(ok(env, "events", "list", cid, *window, "--limit", "2", "--json"))) == 2
    kinds = json.loads(ok(env, "events", "list", cid, *window, "-k", "RekeyStart", "--json"))
    assert [e["k"] for e in kinds] == ["RekeyStart"]
    rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 - 10))
    assert (
        json.loads(
            ok(env, "events", "list", cid, "--since", rfc, "--until", str(T0 + 10), "--json")
        )
        == listed["items"]
    )
    assert json.loads(ok(env, "events", "list", cid, "--since", "1h", "--json")) == []
    table = ok(env, "events", "list", cid, *window)
    assert f"{T0}.1" in table and "StartUpgrade" in table and "✗ FinishUpgradeFailure" in table
    assert " ago (" in table  # relative and absolute times

    got = json.loads(ok(env, "events", "get", cid, f"{T0}.1", "--json"))
    assert got == api(live, tenant, f"{path}/{T0}.1")
    fractional = json.loads(ok(env, "events", "get", cid, f"{T0 + 2.5}.3", "--json"))
    assert fractional["e"]["k"] == "RekeyStart"
    assert "StartUpgrade" in ok(env, "events", "get", cid, f"{T0}.1")
    latest = api(live, tenant, f"{path}/latest")["items"]
    assert json.loads(ok(env, "events", "latest", cid, "--json")) == latest
    assert "RekeyStart" in ok(env, "events", "latest", cid)


def test_snapshots_commands(live: LiveServer, tenant: Tenant, history: tuple[Any, str]) -> None:
    env, cid = history
    path = snapshots_path(tenant.account_id, cid)
    window = ("--from", str(T0 - 10), "--to", str(T0 + 100))
    listed = api(live, tenant, path, **{"from": T0 - 10, "to": T0 + 100})["items"]
    assert json.loads(ok(env, "snapshots", "list", cid, *window, "--json")) == listed
    assert len(ok(env, "snapshots", "list", cid, *window, "--ndjson").splitlines()) == 2
    assert str(T0 + 60) in ok(env, "snapshots", "list", cid, *window)
    got = json.loads(ok(env, "snapshots", "get", cid, str(T0 + 60), "--json"))
    assert got == api(live, tenant, f"{path}/{T0 + 60}")
    assert "reclaim failures" in ok(env, "snapshots", "latest", cid)
    assert (
        json.loads(ok(env, "snapshots", "latest", cid, "--json"))
        == api(live, tenant, f"{path}/latest")["items"]
    )


def test_errors_and_exit_codes(live: LiveServer, tenant: Tenant, connector_id: str) -> None:
    env = env_of(live, tenant)
    bad = {**env, "CLOUDFLARE_API_TOKEN": "a" * 40}
    expected = httpx.get(
        live.api + f"/accounts/{tenant.account_id}/magic/connectors",
        headers={"Authorization": "Bearer " + "a" * 40},
    ).json()["errors"][0]
    done = ctel(bad, "connectors", "list")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error {expected['code']}: {expected['message']}\n"
    other = {**env, "CLOUDFLARE_API_TOKEN": tenant.read_token}
    done = ctel(other, "connectors", "delete", connector_id)
    assert done.returncode == 1 and done.stderr.startswith("error ")

    for args in (
        ("events", "list", connector_id, "--since", "yesterday-ish"),
        ("events", "get", connector_id, "1700000000"),
        ("connectors", "frobnicate"),
        ("interrupts", "create", connector_id, "explode"),
    ):
        done = ctel(env, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
    no_account = {k: v for k, v in env.items() if k != "CLOUDFLARE_ACCOUNT_ID"}
    done = ctel(no_account, "connectors", "list")
    assert done.returncode == 2 and "--account" in done.stderr
    no_auth = {k: v for k, v in env.items() if k != "CLOUDFLARE_API_TOKEN"}
    done = ctel(no_auth, "connectors", "list")
    assert done.returncode == 2 and "--token" in done.stderr

    nowhere = "http://127.0.0.1:9/client/v4"
    done = ctel({**env, "CLOUDFLARE_BASE_URL": nowhere}, "connectors", "list")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot reach {nowhere}/accounts/{tenant.account_id}/magic/connectors" in done.stderr


def test_time_options_and_event_ids() -> None:
    now = 1_800_000_000.0
    assert parse_time("1700000000.5", now) == 1_700_000_000.5
    assert parse_time("2h", now) == now - 7200
    assert parse_time("1h30m", now) == now - 5400
    assert parse_time("10m", now) == now - 600
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000
    assert split_event_id("1700000000.3") == (1_700_000_000, 3)
    assert split_event_id("1700000000.5.3") == (1_700_000_000.5, 3)


# -- tail --------------------------------------------------------------------------------


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Tail:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector_telemetry", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # as on a terminal, where Ctrl-C reaches it: a shell that runs the tests in the
            # background (``pytest &``) ignores SIGINT, and children inherit the ignoring
            preexec_fn=_interruptible,
        )

        self.lines: dict[str, queue.Queue[str]] = {}
        self.readers: list[threading.Thread] = []
        for name in ("stdout", "stderr"):
            self.lines[name] = queue.Queue()
            self.readers.append(
                threading.Thread(
                    target=self._read,
                    args=(getattr(self.process, name), self.lines[name]),
                    daemon=True,
                )
            )
            self.readers[-1].start()

    @staticmethod
    def _read(stream: IO[str], lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line)

    def line(self, name: str) -> str:
        """The next line the tail writes on ``name``; fails after 30 s rather than hang."""
        try:
            return self.lines[name].get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"tail wrote nothing on {name} in 30 s") from None

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        for reader in self.readers:  # they take the last lines, to the end of the pipes
            reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe:
                pipe.close()
        err = []
        while not self.lines["stderr"].empty():
            err.append(self.lines["stderr"].get())
        return self.process.returncode, "".join(err)


def _tail_follows(
    live: LiveServer, tenant: Tenant, cid: str, env: dict[str, str], *, polling: bool
) -> None:
    # --from: whether the tail connects before or after the post below (a loaded machine
    # starts Python slowly), the stream replays what arrived since then, exactly once
    since = repr(time.time())
    tail = Tail(env, "events", "tail", cid, "--ndjson", "--interval", "0.2", "--from", since)
    try:
        if polling:
            note = tail.line("stderr")
            assert "has no stream endpoint; polling" in note, note
        else:
            time.sleep(1.0)  # most often connected by now
        now = time.time()
        post(
            live,
            tenant,
            events_path(tenant.account_id, cid),
            [event("Init", now, 0), event("StartUpgrade", now, 1)],
        )
        first = json.loads(tail.line("stdout"))
        second = json.loads(tail.line("stdout"))
        assert [first["e"]["k"], second["e"]["k"]] == ["Init", "StartUpgrade"]
        assert first == api(
            live,
            tenant,
            events_path(tenant.account_id, cid) + f"/{first['t']!r}.0".replace(".0.0", ".0"),
        )
    finally:
        code, err = tail.stop()
    assert code == 0 and "Traceback" not in err, err


@pytest.fixture
def no_streams(fresh: tuple[str, Tenant], tmp_path: Path) -> Iterator[tuple[LiveServer, Tenant]]:
    db, tenant = fresh
    server = start_server(db, env={"CTEL_STREAMS": "0"}, log_path=tmp_path / "nostreams.log")
    try:
        yield server, tenant
    finally:
        stop_server(server)


def test_tail_falls_back_to_polling_without_streams(no_streams: Any) -> None:
    live, tenant = no_streams
    cid = create_connector(live.api, tenant)["id"]
    _tail_follows(live, tenant, cid, env_of(live, tenant), polling=True)


def test_tail_uses_the_stream(live: LiveServer, tenant: Tenant, connector_id: str) -> None:
    with httpx.stream(
        "GET",
        live.api + events_path(tenant.account_id, connector_id) + "/stream",
        headers=tenant.read,
        timeout=10,
    ) as response:
        has_stream = response.headers.get("content-type", "").startswith("text/event-stream")
    if not has_stream:
        pytest.skip("this server has no event stream route (issue 10's streams branch not merged)")
    _tail_follows(live, tenant, connector_id, env_of(live, tenant), polling=False)
