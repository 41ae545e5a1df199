"""The test API of ``ctel serve --test-mode`` (issue 11): the request journal, faults, the
rate limit and the clock, against live servers on both stores; exactness across two
worker processes (faults' counts, the rate limit); and bad input (400 naming the field)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from connector_telemetry import clock
from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from support import STORES, LiveServer, assert_error, connectors_path, events_path, stop_server
from support.testmode import TestApi, bearer, resets_under_ingest, start_test_server

T0 = 1_700_000_000


@pytest.fixture(scope="module", params=STORES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = start_test_server(request, tmp_path_factory.mktemp("testmode"), request.param)
    yield live
    stop_server(live)


@pytest.fixture
def ctl(server: LiveServer) -> Iterator[TestApi]:
    api = TestApi(server)
    api.call("POST", "/reset")
    yield api
    api.call("POST", "/reset")
    api.close()


@pytest.fixture
def account(ctl: TestApi) -> dict[str, Any]:
    return ctl.account()


@pytest.fixture
def http(server: LiveServer, account: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.api, headers=bearer(account["token"]), timeout=30) as c:
        yield c


def connectors(account: dict[str, Any]) -> str:
    return connectors_path(account["account_id"])


# -- the journal ------------------------------------------------------------------------------


def test_journal_records_api_requests_not_its_own(
    server: LiveServer, ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    ctl.call("DELETE", "/requests")
    before = time.time()
    token_id = http.get("/user/tokens/verify").json()["result"]["id"]
    made = http.post(connectors(account), json={"device": {"serial_number": "J-1"}})
    http.get(connectors(account), params={"device_type": "MANAGED"})
    http.get(f"{connectors(account)}/nope")
    http.get("/no/such/route")
    httpx.get(server.url + "/healthz")  # the root: not the API
    ctl.call("GET", "/faults")  # the test API: never journaled
    legacy = {"X-Auth-Email": account["email"], "X-Auth-Key": account["api_key"]}
    httpx.get(server.api + connectors(account), headers=legacy)
    seen = ctl.requests()
    assert [(r["method"], r["route"], r["status"]) for r in seen] == [
        ("GET", "user.tokens.verify", 200),
        ("POST", "connectors.create", 200),
        ("GET", "connectors.list", 200),
        ("GET", "connectors.get", 404),
        ("GET", None, 400),
        ("GET", "connectors.list", 200),
    ]
    create = seen[1]
    assert create["path"] == "/client/v4" + connectors(account)
    assert create["bytes_in"] == len(made.request.content) and create["bytes_out"] == len(
        made.content
    )
    assert create["credential"] == {"kind": "token", "id": token_id}
    assert create["account_id"] == account["account_id"] and create["query"] == ""
    assert seen[2]["query"] == "device_type=MANAGED"
    assert seen[5]["credential"]["kind"] == "user" and seen[5]["credential"]["id"]
    assert seen[4]["credential"] is None and seen[4]["account_id"] is None
    assert before - 1 <= seen[0]["time"] <= seen[-1]["time"] <= time.time() + 1
    text = json.dumps(seen)
    for secret in (account["token"], account["api_key"], account["read_token"]):
        assert secret not in text
    # filters
    assert [r["route"] for r in ctl.requests(route="connectors.create")] == ["connectors.create"]
    assert len(ctl.requests(method="post")) == 1
    assert [r["route"] for r in ctl.requests(status=404)] == ["connectors.get"]
    assert len(ctl.requests(account_id=account["account_id"])) == 4
    assert ctl.requests(account_id="someone-else") == []
    assert len(ctl.requests(since=seen[2]["time"])) == 4
    assert len(ctl.requests(since=clock.rfc3339(seen[2]["time"] - 0.0005))) == 4
    assert ctl.call("DELETE", "/requests") == {"removed": 6}
    assert ctl.requests() == []


def test_test_api_takes_json_whatever_its_content_type(server: LiveServer, ctl: TestApi) -> None:
    """``curl -d '{...}'`` sends application/x-www-form-urlencoded: taken as JSON."""
    got = httpx.put(
        server.url + "/_ctel/rate-limit",
        content=b'{"requests": 5}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert got.status_code == 200 and got.json()["result"]["requests"] == 5
    assert_error(httpx.put(server.url + "/_ctel/clock", content=b"{nope"), 400, 1001)


def test_journal_bad_filters(server: LiveServer, ctl: TestApi) -> None:
    for query, field in [
        ("status=abc", "status"),
        ("status=1e400", "status"),
        ("since=yesterday", "since"),
        ("since=nan", "since"),
        ("since=inf", "since"),
        ("colour=red", "colour"),
    ]:
        got = httpx.get(f"{server.url}/_ctel/requests?{query}")
        assert_error(got, 400, 1003, field)


# -- faults --------------------------------------------------------------------------------


def test_fault_answers_next_n_with_status(
    ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    rule = ctl.fault(route="connectors.list", status=503, count=2)
    assert rule["remaining"] == 2 and rule["route"] == "connectors.list" and rule["id"]
    first, second, third = (http.get(connectors(account)) for _ in range(3))
    assert_error(first, 503, 1503)
    assert_error(second, 503, 1503)
    assert third.status_code == 200
    assert (
        http.post(connectors(account), json={"device": {"serial_number": "F"}}).status_code == 200
    )
    listed = ctl.call("GET", "/faults")
    assert [(f["id"], f["remaining"], f["count"]) for f in listed] == [(rule["id"], 0, 2)]
    assert [r["status"] for r in ctl.requests(route="connectors.list")] == [503, 503, 200]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_fault_5xx_envelope(
    ctl: TestApi, account: dict[str, Any], http: httpx.Client, status: int
) -> None:
    ctl.fault(route="connectors.list", status=status)
    assert_error(http.get(connectors(account)), status, 1000 + status)
    assert http.get(connectors(account)).status_code == 200


def test_fault_429_is_cloudflares(
    ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    ctl.fault(route="connectors.list", status=429)
    got = http.get(connectors(account))
    assert_error(got, 429, 971, "Please wait and consider throttling your request speed")
    assert got.headers["retry-after"] == "1"


def test_fault_by_method_and_any_route(
    server: LiveServer, ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    rule = ctl.fault(route="*", method="post", status=502, count=None)
    assert rule["method"] == "POST" and rule["count"] is None and rule["remaining"] is None
    assert http.get(connectors(account)).status_code == 200
    for serial in ("A", "B", "C"):
        assert_error(
            http.post(connectors(account), json={"device": {"serial_number": serial}}), 502, 1502
        )
    # the test API is never faulted, even by "*": the rule can be listed and removed
    assert ctl.call("GET", "/faults")[0]["remaining"] is None
    assert ctl.call("DELETE", f"/faults/{rule['id']}") == {"id": rule["id"]}
    assert (
        http.post(connectors(account), json={"device": {"serial_number": "D"}}).status_code == 200
    )
    gone = httpx.delete(f"{server.url}/_ctel/faults/{rule['id']}")
    assert_error(gone, 404, 1404)
    ctl.fault(route="*", status=503, count=None)
    ctl.fault(route="events.list", status=500)
    assert ctl.call("DELETE", "/faults") == {"removed": 2}
    assert http.get(connectors(account)).status_code == 200


def test_fault_delay_then_normal_answer(
    ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    ctl.fault(route="connectors.list", delay_ms=400)
    started = time.monotonic()
    got = http.get(connectors(account))
    assert got.status_code == 200 and time.monotonic() - started >= 0.4
    ctl.fault(route="connectors.list", delay_ms=200, status=503)
    started = time.monotonic()
    assert_error(http.get(connectors(account)), 503, 1503)
    assert time.monotonic() - started >= 0.2


def test_fault_closes_the_connection(
    ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    ctl.fault(route="connectors.list", close=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(connectors(account))
    assert http.get(connectors(account)).status_code == 200
    assert [r["status"] for r in ctl.requests(route="connectors.list")] == [502, 200]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"route": "events.gett", "status": 503}, "route"),
        ({"status": 503}, "route"),
        ({"route": "testmode.reset", "status": 503}, "route"),
        ({"route": "events.get", "status": 418}, "status"),
        ({"route": "events.get", "status": "503"}, "status"),
        ({"route": "events.get", "status": 503, "count": -1}, "count"),
        ({"route": "events.get", "status": 503, "count": 0}, "count"),
        ({"route": "events.get", "status": 503, "count": 1.5}, "count"),
        ({"route": "events.get", "delay_ms": -5}, "delay_ms"),
        ({"route": "events.get", "delay_ms": 10**12}, "delay_ms"),
        ({"route": "events.get", "status": 503, "close": True}, "close"),
        ({"route": "events.get", "close": "yes"}, "close"),
        ({"route": "events.get"}, "status"),
        ({"route": "events.get", "status": 503, "method": "FETCH"}, "method"),
        ({"route": "events.get", "status": 503, "when": "now"}, "when"),
    ],
)
def test_fault_bad_input(
    server: LiveServer, ctl: TestApi, rule: dict[str, Any], field: str
) -> None:
    got = httpx.post(server.url + "/_ctel/faults", json=rule)
    assert_error(got, 400, 1003, field)
    assert got.json()["errors"][0]["message"].startswith(field + ":")
    assert ctl.call("GET", "/faults") == []


# -- the rate limit ---------------------------------------------------------------------------


def test_rate_limit_per_credential(
    server: LiveServer, ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    assert ctl.call("GET", "/rate-limit") == {
        "enabled": False,
        "requests": None,
        "period_seconds": None,
    }
    assert ctl.call("PUT", "/rate-limit", {}) == {
        "enabled": True,
        "requests": 1200,
        "period_seconds": 300.0,
    }
    assert ctl.call("PUT", "/rate-limit", {"requests": 3, "period_seconds": 60}) == {
        "enabled": True,
        "requests": 3,
        "period_seconds": 60.0,
    }
    answers = [http.get(connectors(account)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert_error(answers[3], 429, 971, "Please wait and consider throttling your request speed")
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    reader = httpx.get(server.api + connectors(account), headers=bearer(account["read_token"]))
    assert reader.status_code == 200  # another credential: its own count
    assert [r["status"] for r in ctl.requests(route="connectors.list")][-2:] == [429, 200]
    # the window follows the server's clock: a minute later, three more
    ctl.call("PUT", "/clock", {"advance": 60})
    assert http.get(connectors(account)).status_code == 200
    ctl.call("DELETE", "/rate-limit")
    assert all(http.get(connectors(account)).status_code == 200 for _ in range(5))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"requests": 0}, "requests"),
        ({"requests": "ten"}, "requests"),
        ({"period_seconds": 0}, "period_seconds"),
        ({"period_seconds": -1}, "period_seconds"),
        ({"period_seconds": 1e-12}, "period_seconds"),
        ({"requests": 10**15}, "requests"),
        ({"per": 1}, "per"),
    ],
)
def test_rate_limit_bad_input(server: LiveServer, ctl: TestApi, body: Any, field: str) -> None:
    assert_error(httpx.put(server.url + "/_ctel/rate-limit", json=body), 400, 1003, field)
    assert ctl.call("GET", "/rate-limit")["enabled"] is False


# -- the clock ---------------------------------------------------------------------------------


def test_clock_set_advance_and_back(server: LiveServer, ctl: TestApi) -> None:
    real = ctl.call("GET", "/clock")
    assert real["offset_seconds"] == 0 and abs(real["now"] - time.time()) < 5
    moved = ctl.call("PUT", "/clock", {"advance": 3600})
    assert abs(moved["offset_seconds"] - 3600) < 1 and abs(moved["now"] - time.time() - 3600) < 5
    again = ctl.call("PUT", "/clock", {"advance": 60})
    assert abs(again["offset_seconds"] - 3660) < 1
    set_to = ctl.call("PUT", "/clock", {"now": T0})
    assert abs(set_to["now"] - T0) < 5
    time.sleep(0.05)
    assert ctl.call("GET", "/clock")["now"] > set_to["now"]  # time keeps running
    back = ctl.call("DELETE", "/clock")
    assert back["offset_seconds"] == 0
    for body, field in [
        ({}, "now"),
        ({"now": T0, "advance": 1}, "now"),
        ({"now": "tomorrow"}, "now"),
        ({"advance": None}, "now"),
        ({"advance": "1h"}, "advance"),
        ({"later": 1}, "later"),
        ({"now": 1e300}, "now"),
        ({"now": -1}, "now"),
        ({"advance": 1e300}, "advance"),
        ({"advance": -1e12}, "advance"),
    ]:
        assert_error(httpx.put(server.url + "/_ctel/clock", json=body), 400, 1003, field)
    ctl.call("PUT", "/clock", {"advance": 99})
    ctl.call("POST", "/reset")
    assert ctl.call("GET", "/clock")["offset_seconds"] == 0


def test_clock_moves_collection_heartbeat_and_interrupts(
    ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    day = 86400.0
    ctl.call("PUT", "/clock", {"advance": 10 * day})
    made = http.post(connectors(account), json={"device": {"provision_license": True}})
    cid, key = made.json()["result"]["id"], made.json()["result"]["license_key"]
    got = http.post(events_path(account["account_id"], cid), json=[{"e": {"k": "Init"}, "t": T0}])
    assert got.status_code == 200, got.text
    items = http.get(
        events_path(account["account_id"], cid), params={"from": T0 - 1, "to": T0 + 1}
    ).json()["result"]["items"]
    assert abs(items[0]["a"] - (time.time() + 10 * day)) < 60
    connector = http.get(f"{connectors(account)}/{cid}").json()["result"]
    assert abs(clock.parse_rfc3339(connector["last_heartbeat"]) - time.time() - 10 * day) < 60
    assert abs(clock.parse_rfc3339(connector["last_updated"]) - time.time() - 10 * day) < 60
    url = f"{connectors(account)}/{cid}/interrupts"
    submitted = http.post(url, json={"reboot": {}}).json()["result"]["submitted_at"]
    assert abs(clock.parse_rfc3339(submitted) - time.time() - 10 * day) < 60
    ctl.call("PUT", "/clock", {"advance": day})
    picked = httpx.get(server_api(http) + url, headers=bearer(key)).json()["result"]
    assert abs(clock.parse_rfc3339(picked[0]["triggered_at"]) - time.time() - 11 * day) < 60


def server_api(http: httpx.Client) -> str:
    return str(http.base_url).rstrip("/")


def test_clock_expires_tokens(server: LiveServer, ctl: TestApi, account: dict[str, Any]) -> None:
    """A token past its expiry by the server's clock answers as a really expired one."""
    store = open_store(Settings(db=str(server.db)))
    try:
        _, soon = credentials.create_token(
            store,
            account["account_id"],
            "Magic WAN Read",
            "soon",
            clock.rfc3339(time.time() + 3600),
        )
        _, past = credentials.create_token(
            store, account["account_id"], "Magic WAN Read", "past", clock.rfc3339(time.time() - 5)
        )
    finally:
        store.close()
    url = server.api + connectors(account)
    assert httpx.get(url, headers=bearer(soon)).status_code == 200  # (now cached as valid)
    expired = httpx.get(url, headers=bearer(past))
    ctl.call("PUT", "/clock", {"advance": 7200})
    late = httpx.get(url, headers=bearer(soon))
    assert late.status_code == expired.status_code == 403
    assert late.json() == expired.json()
    verify = httpx.get(server.api + "/user/tokens/verify", headers=bearer(soon))
    assert verify.status_code == 401
    assert httpx.get(url, headers=bearer(account["token"])).status_code == 200  # no expiry
    ctl.call("DELETE", "/clock")
    assert httpx.get(url, headers=bearer(soon)).status_code == 200


def test_clock_drives_retention(
    server: LiveServer, ctl: TestApi, account: dict[str, Any], http: httpx.Client
) -> None:
    """``ctel purge`` (what serve --retention-days runs) reads a test database's clock."""
    cid = http.post(connectors(account), json={"device": {"serial_number": "R"}}).json()["result"][
        "id"
    ]
    path = events_path(account["account_id"], cid)
    assert http.post(path, json=[{"e": {"k": "Init"}, "t": T0}]).status_code == 200
    days = (time.time() - T0) / 86400 + 30  # kept today, purged 60 days from now

    def purge() -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "connector_telemetry",
                "purge",
                "--db",
                str(server.db),
                "--retention-days",
                str(days),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def kept() -> int:
        return len(http.get(path, params={"from": 0, "to": T0 + 1}).json()["result"]["items"])

    purge()
    assert kept() == 1
    ctl.call("PUT", "/clock", {"advance": 60 * 86400})
    purge()
    assert kept() == 0


# -- two workers: exact counts -------------------------------------------------------------------


@pytest.fixture(scope="module", params=STORES)
def two_workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = start_test_server(request, tmp_path_factory.mktemp("two"), request.param, workers=2)
    yield live
    stop_server(live)


def test_two_workers_count_faults_and_the_rate_limit_exactly(two_workers: LiveServer) -> None:
    ctl = TestApi(two_workers)
    account = ctl.account()
    url = two_workers.api + connectors(account)
    headers = bearer(account["token"])

    def many(n: int) -> list[int]:
        def one(_: int) -> int:
            with httpx.Client(timeout=30) as client:  # a connection each: both workers serve
                return client.get(url, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(n)))

    ctl.fault(route="connectors.list", status=503, count=7)
    statuses = many(40)
    assert statuses.count(503) == 7 and statuses.count(200) == 33
    assert ctl.call("GET", "/faults")[0]["remaining"] == 0
    ctl.call("PUT", "/rate-limit", {"requests": 12, "period_seconds": 3600})
    statuses = many(40)
    assert statuses.count(200) == 12 and statuses.count(429) == 28, statuses
    journal = ctl.requests(route="connectors.list")
    assert len(journal) == 80 and sum(r["status"] == 429 for r in journal) == 28
    ctl.call("POST", "/reset")
    assert ctl.requests() == [] and ctl.call("GET", "/rate-limit")["enabled"] is False
    ctl.close()


def test_two_workers_reset_under_concurrent_ingest(two_workers: LiveServer) -> None:
    ctl = TestApi(two_workers)
    try:
        resets_under_ingest(two_workers, ctl.account())
    finally:
        ctl.close()


def test_openapi_marks_the_test_api(server: LiveServer) -> None:
    document = httpx.get(server.api + "/openapi.json").json()
    test_paths = {path: ops for path, ops in document["paths"].items() if "/_ctel/" in path}
    assert set(test_paths) >= {
        "/_ctel/reset",
        "/_ctel/faults",
        "/_ctel/faults/{fault_id}",
        "/_ctel/rate-limit",
        "/_ctel/requests",
        "/_ctel/clock",
        "/_ctel/accounts",
    }
    for path, ops in test_paths.items():
        assert ops["servers"] == [{"url": "/"}], path
        for op in ops.values() if isinstance(ops, dict) else ():
            if isinstance(op, dict) and "operationId" in op:
                assert op["tags"] == ["test-mode"] and op["x-ctel-test-only"] is True
                assert op["security"] == []
