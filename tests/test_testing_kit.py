"""The testing kit for users' suites (issue 11): ``CtelServer`` and the pytest plugin.

One server serves the module (as the plugin's session fixture would); the lifecycle, the
PostgreSQL store and the plugin (run in a pytest subprocess, with and without xdist) start
their own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudflare
import pytest

from connector_telemetry.testing import (
    CtelApiError,
    CtelServer,
    Fault,
    JournalEntry,
    TemporaryPostgres,
    multi_host_url,
    postgres_bindir,
)
from support.server import SERVER_ERROR_MARKS

T0 = 1_700_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[CtelServer]:
    with CtelServer() as started:
        yield started
        log = started.log()
    assert not any(mark.decode() in log for mark in SERVER_ERROR_MARKS), log


@pytest.fixture
def ctel(server: CtelServer) -> CtelServer:
    server.reset()
    return server


def test_the_old_import_paths_still_work() -> None:
    from connector_telemetry.testing.postgres import TemporaryPostgres as Same

    assert TemporaryPostgres is Same
    assert callable(multi_host_url) and callable(postgres_bindir)


def test_start_and_stop(tmp_path: Path) -> None:
    ctel = CtelServer()
    ctel.start()
    process, folder = ctel.process, ctel.folder
    assert process is not None and folder is not None and folder.is_dir()
    assert ctel.base_url == f"http://127.0.0.1:{ctel.port}/client/v4"
    assert len(ctel.account_id) == 32 and ctel.token and ctel.read_token
    assert "@" in ctel.email and ctel.api_key
    assert "TEST MODE" in ctel.log()  # the loud warning
    with pytest.raises(RuntimeError, match="already running"):
        ctel.start()
    ctel.stop()
    assert process.poll() is not None and not folder.exists()
    with pytest.raises(ProcessLookupError):  # the whole group is gone (workers too)
        os.killpg(process.pid, 0)
    ctel.stop()  # twice is fine


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="store"):
        CtelServer(store="mysql")
    with pytest.raises(ValueError, match="workers"):
        CtelServer(workers=0)


def test_the_credentials_work_with_the_sdk_in_strict_mode(ctel: CtelServer) -> None:
    cf = ctel.client(_strict_response_validation=True, max_retries=0)
    created = cf.magic_transit.connectors.create(
        account_id=ctel.account_id, device={"serial_number": "KIT-1"}, activated=True
    )
    read = ctel.client(api_token=ctel.read_token, _strict_response_validation=True, max_retries=0)
    assert [c.id for c in read.magic_transit.connectors.list(account_id=ctel.account_id)] == [
        created.id
    ]
    with pytest.raises(cloudflare.PermissionDeniedError):  # Read cannot write
        read.magic_transit.connectors.create(
            account_id=ctel.account_id, device={"serial_number": "KIT-2"}
        )
    user = ctel.client(api_email=ctel.email, api_key=ctel.api_key, max_retries=0)
    assert user.magic_transit.connectors.get(created.id, account_id=ctel.account_id).id == (
        created.id
    )

    async def run() -> list[str]:
        async with ctel.async_client(_strict_response_validation=True) as acf:
            return [
                c.id async for c in acf.magic_transit.connectors.list(account_id=ctel.account_id)
            ]

    assert asyncio.run(run()) == [created.id]


def test_reset_empties_the_account_and_keeps_the_credentials(ctel: CtelServer) -> None:
    ids = ctel.simulate(connectors=2, days=0.5, seed=3, start=T0)
    ctel.faults.add("connectors.get", status=503, count=None)
    ctel.rate_limit(5, 60)
    ctel.clock.set_time(T0)

    removed = ctel.reset()
    assert removed["connectors"] == 2 and removed["events"] > 0 and removed["snapshots"] > 0
    assert ctel.reset() == {"events": 0, "snapshots": 0, "interrupts": 0, "connectors": 0}
    assert ctel.faults.list() == [] and ctel.requests() == []
    assert abs(ctel.clock.now() - time.time()) < 60
    cf = ctel.client(max_retries=0)
    assert list(cf.magic_transit.connectors.list(account_id=ctel.account_id)) == []
    with pytest.raises(cloudflare.NotFoundError):
        cf.magic_transit.connectors.get(ids[0], account_id=ctel.account_id)


def _history(ctel: CtelServer, ids: list[str]) -> list[Any]:
    cf = ctel.client(max_retries=0)
    found = []
    for connector_id in ids:
        connector = cf.magic_transit.connectors.get(connector_id, account_id=ctel.account_id)
        page = cf.magic_transit.connectors.events.list(
            connector_id, account_id=ctel.account_id, from_=0, to=4e9, limit=1000
        )
        found.append((connector.device and connector.device.serial_number, [
            (e.t, e.n, e.k) for e in page.items
        ]))  # fmt: skip
    return found


def test_simulate_fills_this_servers_account_deterministically(ctel: CtelServer) -> None:
    first = _history(ctel, ctel.simulate(connectors=2, days=1, seed=7, start=T0))
    assert len(first) == 2 and all(events for _, events in first)
    assert all(T0 <= t < T0 + 86400 for _, events in first for t, _, _ in events)
    ctel.reset()
    assert _history(ctel, ctel.simulate(connectors=2, days=1, seed=7, start=T0)) == first
    ctel.reset()
    assert _history(ctel, ctel.simulate(connectors=2, days=1, seed=8, start=T0)) != first


def test_faults_and_the_journal(ctel: CtelServer) -> None:
    rule = ctel.faults.add("connectors.list", status=429, count=2, method="GET")
    assert isinstance(rule, Fault) and (rule.status, rule.remaining) == (429, 2)
    cf = ctel.client(max_retries=3)
    assert list(cf.magic_transit.connectors.list(account_id=ctel.account_id)) == []
    seen = ctel.requests(route="connectors.list")
    assert all(isinstance(r, JournalEntry) for r in seen)
    assert [r.status for r in seen] == [429, 429, 200]
    assert seen[0].credential == {"kind": "token", "id": seen[0].credential["id"]}  # type: ignore[index]
    assert ctel.token not in json.dumps([r.__dict__ for r in seen])
    assert [r.status for r in ctel.requests(status=429)] == [429, 429]
    assert ctel.faults.list()[0].remaining == 0

    ctel.faults.add("*", close=True)
    with pytest.raises(cloudflare.APIConnectionError):
        ctel.client(max_retries=0).magic_transit.connectors.list(account_id=ctel.account_id)
    assert ctel.faults.clear() == 2 and ctel.faults.list() == []
    assert ctel.clear_requests() == 4 and ctel.requests() == []


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"route": "nope.nope", "status": 503}, "route"),
        ({"route": "events.get", "status": 418}, "status"),
        ({"route": "events.get", "status": 503, "count": -1}, "count"),
    ],
)
def test_a_bad_fault_rule_raises_naming_the_field(
    ctel: CtelServer, rule: dict[str, Any], field: str
) -> None:
    with pytest.raises(CtelApiError, match=field) as raised:
        ctel.faults.add(**rule)
    assert raised.value.status == 400


def test_the_rate_limit(ctel: CtelServer) -> None:
    ctel.rate_limit(2, 60)
    cf = ctel.client(max_retries=0)
    for _ in range(2):
        cf.magic_transit.connectors.list(account_id=ctel.account_id)
    with pytest.raises(cloudflare.RateLimitError) as raised:
        cf.magic_transit.connectors.list(account_id=ctel.account_id)
    assert raised.value.response.json()["errors"][0]["code"] == 971
    assert raised.value.response.headers["retry-after"]
    ctel.rate_limit(None)
    cf.magic_transit.connectors.list(account_id=ctel.account_id)


def test_the_clock(ctel: CtelServer) -> None:
    assert abs(ctel.clock.set_time(T0) - T0) < 5
    assert abs(ctel.clock.advance(86400) - (T0 + 86400)) < 5
    cf = ctel.client(max_retries=0)
    created = cf.magic_transit.connectors.create(
        account_id=ctel.account_id, device={"serial_number": "KIT-CLOCK"}
    )
    interrupt = cf.magic_transit.connectors.interrupts.create(
        created.id, account_id=ctel.account_id, reboot={}
    )
    assert interrupt.submitted_at.startswith("2023-11-15T22:1")  # T0 + a day
    assert abs(ctel.clock.reset_time() - time.time()) < 5


def test_the_client_says_what_to_install_without_the_sdk(
    ctel: CtelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cloudflare", None)
    with pytest.raises(ImportError, match="pip install"):
        ctel.client()
    with pytest.raises(ImportError, match="pip install"):
        ctel.async_client()


def test_another_account_is_isolated(ctel: CtelServer) -> None:
    other = ctel.create_account("other")
    ctel.simulate(connectors=1, days=0.2, seed=1, start=T0)
    theirs = ctel.client(api_token=other["token"], max_retries=0)
    assert list(theirs.magic_transit.connectors.list(account_id=other["account_id"])) == []
    with pytest.raises(cloudflare.APIStatusError):
        list(theirs.magic_transit.connectors.list(account_id=ctel.account_id))


@pytest.mark.skipif(
    postgres_bindir() is None and not os.environ.get("DATABASE_URL"),
    reason="needs PostgreSQL's server binaries or DATABASE_URL",
)
def test_on_postgresql() -> None:
    with CtelServer(store="postgresql", workers=2) as ctel:
        assert ctel.db.startswith("postgresql://")
        ids = ctel.simulate(connectors=1, days=0.2, seed=2, start=T0)
        ctel.faults.add("connectors.get", status=500)
        cf = ctel.client(max_retries=1)
        assert cf.magic_transit.connectors.get(ids[0], account_id=ctel.account_id).id == ids[0]
        assert [r.status for r in ctel.requests(route="connectors.get")] == [500, 200]
        assert ctel.reset()["connectors"] == 1


@pytest.mark.skipif(
    postgres_bindir() is None and not os.environ.get("DATABASE_URL"),
    reason="needs PostgreSQL's server binaries or DATABASE_URL",
)
def test_a_postgresql_url_is_used_and_a_database_with_data_refused(
    postgres_server: TemporaryPostgres,
) -> None:
    url = postgres_server.new_database("ctel_kit")
    with CtelServer(store=url, seed=4) as ctel:
        assert ctel.db == url
        first = _history(ctel, ctel.simulate(connectors=1, days=0.2, start=T0))  # seed 4
        ctel.reset()
        assert _history(ctel, ctel.simulate(connectors=1, days=0.2, seed=4, start=T0)) == first
    with CtelServer(store=url) as again:  # made by a test-mode server: it may serve it again
        assert again.reset()["connectors"] == 1
    plain = postgres_server.new_database("ctel_plain")
    subprocess.run(
        [sys.executable, "-m", "connector_telemetry", "db", "migrate", "--db", plain],
        check=True,
        capture_output=True,
    )
    with pytest.raises(RuntimeError, match="not created in test mode"):
        CtelServer(store=plain).start()


# -- the pytest plugin, as a user's suite meets it: a pytest run in a folder of its own ------

USER_TESTS = """
import json, os

from connector_telemetry.testing import CtelServer


def record(ctel: CtelServer, name: str) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.environ["KIT_RECORD"], "a") as out:
        out.write(json.dumps([name, worker, ctel.port]) + "\\n")


def test_{n}_a(ctel: CtelServer) -> None:
    cf = ctel.client()
    assert list(cf.magic_transit.connectors.list(account_id=ctel.account_id)) == []
    cf.magic_transit.connectors.create(account_id=ctel.account_id, device={{"serial_number": "X"}})
    record(ctel, "{n}_a")


def test_{n}_b(ctel: CtelServer) -> None:  # isolated: the connector of _a is gone
    cf = ctel.client()
    assert list(cf.magic_transit.connectors.list(account_id=ctel.account_id)) == []
    cf.magic_transit.connectors.create(account_id=ctel.account_id, device={{"serial_number": "X"}})
    record(ctel, "{n}_b")


def test_{n}_session(ctel_server: CtelServer) -> None:
    assert ctel_server.base_url.endswith("/client/v4")
    record(ctel_server, "{n}_session")
"""


def _run_pytest(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    record = folder / "record.ndjson"
    env = {**os.environ, "KIT_RECORD": str(record)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = record.read_text().splitlines() if record.exists() else []
    return done, [json.loads(line) for line in lines]


def test_the_plugin_needs_no_conftest(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS.format(n="one"))
    done, record = _run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert len({port for _, _, port in record}) == 1  # one server for the session


def test_the_plugin_with_xdist_starts_one_server_per_worker(tmp_path: Path) -> None:
    for n in ("one", "two", "three", "four"):
        (tmp_path / f"test_{n}.py").write_text(USER_TESTS.format(n=n))
    done, record = _run_pytest(tmp_path, "-p", "xdist", "-n", "2", "--ctel-workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 passed" in done.stdout
    ports: dict[str, set[int]] = {}
    for _, worker, port in record:
        ports.setdefault(worker, set()).add(port)
    assert set(ports) == {"gw0", "gw1"}, record
    assert all(len(p) == 1 for p in ports.values())  # one server per worker ...
    assert ports["gw0"] != ports["gw1"]  # ... each its own


def test_the_plugin_starts_nothing_for_tests_that_do_not_ask(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_plain() -> None:\n    assert True\n")
    done, _ = _run_pytest(tmp_path, "--setup-show")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ctel" not in done.stdout


def test_the_plugin_options(tmp_path: Path) -> None:
    (tmp_path / "test_opts.py").write_text(
        textwrap.dedent(
            """
            def test_store(ctel_server):
                assert ctel_server.store == "sqlite" and ctel_server.workers == 2
            """
        )
    )
    done, _ = _run_pytest(tmp_path, "--ctel-store", "sqlite", "--ctel-workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    help_text = _run_pytest(tmp_path, "--help")[0].stdout
    assert "--ctel-store" in help_text and "--ctel-workers" in help_text


def test_the_test_api_is_at_the_root_without_credentials(ctel: CtelServer) -> None:
    with urllib.request.urlopen(ctel.url + "/_ctel/faults") as answer:
        assert json.loads(answer.read()) == {
            "result": [],
            "success": True,
            "errors": [],
            "messages": [],
        }
