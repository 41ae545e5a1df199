"""Failed authentications throttled per client address (issue 14), on a live server: past
``auth_failures_per_minute`` failures an address gets Cloudflare's 429 (code 971,
``retry-after``) for its further failures, while valid credentials from the same address are
served as always; ``X-Forwarded-For`` counts only from a proxy named in ``trusted_proxies``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connector_telemetry.api.throttle import AuthThrottle, peer_host
from connector_telemetry.errors import InvalidApiToken
from support import LiveServer, Tenant, assert_error, fresh_db, start_server, stop_server

LIMIT = 5
BAD = {"Authorization": "Bearer " + "x" * 40}


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[LiveServer, Tenant]]:
    db, tenant = fresh_db(tmp_path)
    proxies = getattr(request, "param", "")
    server = start_server(
        db,
        env={
            "CTEL_AUTH_FAILURES_PER_MINUTE": str(LIMIT),
            "CTEL_TRUSTED_PROXIES": proxies,
        },
    )
    try:
        yield server, tenant
    finally:
        stop_server(server)


def test_failures_past_the_limit_get_429_and_valid_credentials_never_do(
    served: tuple[LiveServer, Tenant],
) -> None:
    server, tenant = served
    url = server.api + f"/accounts/{tenant.account_id}/magic/connectors"
    with httpx.Client(timeout=10) as http:
        statuses = []
        for _ in range(LIMIT * 3):
            statuses.append(http.get(url, headers=BAD).status_code)
            # the same address, a valid credential, in the middle of the burst
            assert http.get(url, headers=tenant.read).status_code == 200
            assert http.get(url, headers=tenant.legacy).status_code == 200
        assert set(statuses[:LIMIT]) == {403}, statuses
        assert set(statuses[LIMIT:]) == {429}, statuses
        answer = http.get(url, headers=BAD)
        assert_error(answer, 429, 971, "Please wait and consider throttling your request speed")
        assert 1 <= int(answer.headers["retry-after"]) <= 61
        # malformed and missing credentials count as failures too
        assert http.get(url).status_code == 429
        assert http.get(url, headers={"Authorization": "Basic x"}).status_code == 429
        # X-Forwarded-For from an untrusted peer changes nothing
        spoofed = http.get(url, headers={**BAD, "X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 429


@pytest.mark.parametrize("served", ["127.0.0.1"], indirect=True)
def test_a_trusted_proxy_names_the_client(served: tuple[LiveServer, Tenant]) -> None:
    server, tenant = served
    url = server.api + f"/accounts/{tenant.account_id}/magic/connectors"
    with httpx.Client(timeout=10) as http:
        guesser = {**BAD, "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        codes = [http.get(url, headers=guesser).status_code for _ in range(LIMIT + 2)]
        assert codes[-1] == 429, codes
        # another client behind the same proxy is not throttled
        other = http.get(url, headers={**BAD, "X-Forwarded-For": "203.0.113.8"})
        assert other.status_code == 403
        # the spoofable left-most entry does not help the guesser: the right-most counts
        again = http.get(url, headers={**BAD, "X-Forwarded-For": "192.0.2.1, 203.0.113.7"})
        assert again.status_code == 429
        fine = http.get(url, headers={**tenant.read, "X-Forwarded-For": "203.0.113.7"})
        assert fine.status_code == 200


def test_throttle_rules() -> None:
    throttle = AuthThrottle(2, "10.0.0.0/8")
    assert peer_host("127.0.0.1:5050") == "127.0.0.1"
    assert peer_host("[::1]:5050") == "::1"
    assert throttle.client("10.1.2.3:1", "1.2.3.4, 10.9.9.9") == "1.2.3.4"
    assert throttle.client("10.1.2.3:1", None) == "10.1.2.3"
    assert throttle.client("8.8.8.8:1", "1.2.3.4") == "8.8.8.8"
    assert throttle.client("10.1.2.3:1", "10.2.2.2") == "10.1.2.3"
    answers = [throttle.failed("1.2.3.4", InvalidApiToken()).status for _ in range(4)]
    assert answers == [401, 401, 429, 429]
    assert throttle.failed("5.6.7.8", InvalidApiToken()).status == 401
    assert AuthThrottle(0).failed("1.2.3.4", InvalidApiToken()).status == 401
