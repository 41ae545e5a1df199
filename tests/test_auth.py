"""Cloudflare's auth answers on every route, and tenant isolation.

The route list comes from the app itself, so a new route cannot be forgotten.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from connector_telemetry.api.route import Route, Stream
from connector_telemetry.app import create_app
from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store
from support import LiveServer, Tenant, assert_error

UNKNOWN_TOKEN = "A" * 40
UNKNOWN_KEY = "0" * 37


def all_routes() -> list[Route]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(db=f"{folder}/r.db"))
        routes = list(app.router.routes)
        app.ctx.close()
    return routes


SNAPSHOT = {
    "t": 1,
    "v": "1",
    "count_reclaim_failures": 0,
    "count_reclaimed_paths": 0,
    "count_record_failed": 0,
    "count_transmit_failures": 0,
}
BODIES: dict[str, Any] = {
    "events.record": [{"e": {"k": "Init"}, "t": 1}],
    "snapshots.record": [SNAPSHOT],
    "interrupts.create": {"reboot": {}},
}
PROTECTED = [r for r in all_routes() if r.access in ("read", "write")]


def _path(route: Route, account_id: str, connector_id: str) -> str:
    return (
        route.template.replace("{account_id}", account_id)
        .replace("{connector_id}", connector_id)
        .replace("{event_t}.{event_n}", "1.0")
        .replace("{snapshot_t}", "1")
    )


def _call(
    http: httpx.Client, route: Route, account_id: str, connector_id: str, headers: dict[str, str]
) -> httpx.Response:
    ranged = route.operation_id.endswith(".list") or route.operation_id == "snapshots.series"
    query = {"from": 0, "to": 1} if ranged else None
    body: Any = BODIES.get(route.operation_id)
    if route.operation_id == "connectors.create":
        body = {"device": {"serial_number": uuid.uuid4().hex}}
    elif route.method in ("PUT", "PATCH"):
        body = {}
    path = _path(route, account_id, connector_id)
    if route.mount == "root":  # outside the API prefix (/metrics/accounts/...)
        path = str(http.base_url).rstrip("/").removesuffix("/client/v4") + path
    if isinstance(route.answer, Stream):  # a live stream: its status and headers, then hang up
        with http.stream(route.method, path, params=query, headers=headers) as response:
            if response.status_code != 200:
                response.read()
            return response
    return http.request(
        route.method,
        path,
        params=query,
        json=body,
        headers=headers,
    )


def _ids(route: Route) -> str:
    return f"{route.method} {route.template}"


@pytest.fixture
def revoked_token(store: Store, tenant: Tenant) -> str:
    token, secret = credentials.create_token(store, tenant.account_id, "Magic WAN Write")
    credentials.revoke_token(store, token.id)
    return secret


@pytest.fixture
def expired_token(store: Store, tenant: Tenant) -> str:
    _, secret = credentials.create_token(
        store, tenant.account_id, "Magic WAN Write", expires_on="2020-01-01T00:00:00Z"
    )
    return secret


@pytest.mark.parametrize("route", PROTECTED, ids=_ids)
def test_auth_matrix(
    http: httpx.Client,
    tenant: Tenant,
    other_tenant: Tenant,
    store: Store,
    revoked_token: str,
    expired_token: str,
    connector_id: str,
    route: Route,
) -> None:
    acc = tenant.account_id

    def call(headers: dict[str, str]) -> httpx.Response:
        return _call(http, route, acc, connector_id, headers)

    assert_error(call({}), 400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization")
    bad = call({"Authorization": "Bearer short"})
    assert_error(bad, 400, 6003, "Invalid request headers")
    assert bad.json()["errors"][0]["error_chain"] == [
        {"code": 6111, "message": "Invalid format for Authorization header"}
    ]
    assert_error(call({"Authorization": "Basic " + "a" * 40}), 400, 6003)
    bad = call({"X-Auth-Email": tenant.email, "X-Auth-Key": "not-a-key"})
    assert bad.json()["errors"][0]["error_chain"] == [
        {"code": 6103, "message": "Invalid format for X-Auth-Key header"}
    ]
    bad = call({"X-Auth-Key": tenant.api_key})
    assert [c["code"] for c in bad.json()["errors"][0]["error_chain"]] == [6102]
    assert_error(
        call({"Authorization": f"Bearer {UNKNOWN_TOKEN}"}), 403, 9109, "Invalid access token"
    )
    assert_error(call({"Authorization": f"Bearer {revoked_token}"}), 403, 9109)
    assert_error(call({"Authorization": f"Bearer {expired_token}"}), 403, 9109)
    assert_error(call({"X-Auth-Email": tenant.email, "X-Auth-Key": UNKNOWN_KEY}), 403, 9103)
    assert_error(
        call({"X-Auth-Email": "nobody@example.com", "X-Auth-Key": tenant.api_key}), 403, 9103
    )
    assert_error(call(other_tenant.write), 403, 10000, "Authentication error")
    assert_error(call(other_tenant.legacy), 403, 10000, "Authentication error")
    if route.access == "write":
        assert_error(call(tenant.read), 403, 10000, "Authentication error")
    else:
        assert call(tenant.read).status_code in (200, 404)
    # 409: a second interrupt while the first is pending.
    assert call(tenant.write).status_code in (200, 404, 409)
    assert call(tenant.legacy).status_code in (200, 404, 409)


@pytest.mark.parametrize("route", PROTECTED, ids=_ids)
def test_foreign_objects_are_indistinguishable(
    http: httpx.Client, tenant: Tenant, other_tenant: Tenant, store: Store, route: Route
) -> None:
    """Another account's existing and missing connectors get byte-identical answers."""
    theirs = http.post(
        f"/accounts/{other_tenant.account_id}/magic/connectors",
        json={"device": {"serial_number": "secret-sn"}},
        headers=other_tenant.write,
    ).json()["result"]["id"]
    http.post(
        f"/accounts/{other_tenant.account_id}/magic/connectors/{theirs}/telemetry/events",
        json=[{"e": {"k": "Init"}, "t": 1, "n": 0}],
        headers=other_tenant.write,
    )
    for headers in (tenant.write, tenant.legacy, tenant.read):
        existing = _call(http, route, other_tenant.account_id, theirs, headers)
        missing = _call(http, route, other_tenant.account_id, "f" * 32, headers)
        no_account = _call(http, route, "e" * 32, "f" * 32, headers)
        assert existing.status_code == missing.status_code == no_account.status_code == 403
        assert existing.content == missing.content == no_account.content


def test_revocation_is_honoured_at_once(
    live: LiveServer, http: httpx.Client, tenant: Tenant, store: Store
) -> None:
    token, secret = credentials.create_token(store, tenant.account_id, "Magic WAN Read")
    path = f"/accounts/{tenant.account_id}/magic/connectors"
    headers = {"Authorization": f"Bearer {secret}"}
    assert http.get(path, headers=headers).status_code == 200  # now cached by the server
    subprocess.run(
        [
            sys.executable,
            "-m",
            "connector_telemetry",
            "tokens",
            "revoke",
            "--db",
            str(live.db),
            token.id,
        ],
        check=True,
        capture_output=True,
    )
    assert_error(http.get(path, headers=headers), 403, 9109)


def test_verify_token(http: httpx.Client, tenant: Tenant, store: Store) -> None:
    got = http.get("/user/tokens/verify", headers=tenant.read)
    body = got.json()
    assert got.status_code == 200 and body["success"] is True
    assert body["result"]["status"] == "active" and len(body["result"]["id"]) == 32
    assert body["messages"] == [
        {"code": 10000, "message": "This API Token is valid and active", "type": None}
    ]
    assert_error(
        http.get("/user/tokens/verify", headers={"Authorization": f"Bearer {UNKNOWN_TOKEN}"}),
        401,
        1000,
        "Invalid API Token",
    )
    assert_error(http.get("/user/tokens/verify"), 400, 9106)
    assert_error(
        http.get("/user/tokens/verify", headers=tenant.legacy),
        400,
        1001,
        'Missing "Authorization" header',
    )
    _, expiring = credentials.create_token(
        store, tenant.account_id, "Magic WAN Read", expires_on="2999-01-01T00:00:00Z"
    )
    result = http.get(
        "/user/tokens/verify", headers={"Authorization": f"Bearer {expiring}"}
    ).json()["result"]
    assert result["expires_on"].startswith("2999-01-01T00:00:00")
    own = http.get(f"/accounts/{tenant.account_id}/tokens/verify", headers=tenant.read)
    assert own.status_code == 200
    assert_error(
        http.get("/accounts/" + "e" * 32 + "/tokens/verify", headers=tenant.read), 401, 1000
    )


def test_openapi_is_public_with_cloudflare_templates(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    paths = doc["paths"]
    template = (
        "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events/"
        "{event_t}.{event_n}"
    )
    assert "get" in paths[template]
    assert {r.template for r in all_routes() if r.mount == "api"} == set(paths)
    assert doc["servers"] == [{"url": "/client/v4"}]


def test_token_secrets_never_look_like_an_option(
    store: Store, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 in 64 of token_urlsafe's secrets starts with "-", which `ctel simulate --token SECRET`
    # (argparse) reads as an option: such a secret is drawn again.
    drawn = iter(["-" + "a" * 39, "-" + "b" * 39, "c" * 40])
    monkeypatch.setattr(credentials.secrets, "token_urlsafe", lambda n: next(drawn))
    _, secret = credentials.create_token(store, tenant.account_id, "Magic WAN Read")
    assert secret == "c" * 40
    assert credentials.TOKEN_SHAPE.match(secret)


class _Versions:
    """A store's credentials version, read either way (counted); ``fail``: the read on the
    loop fails."""

    reads_on_loop = True

    def __init__(self) -> None:
        self.version, self.waited, self.awaited, self.fail = 0, 0, 0, False

    def credentials_version(self) -> int:
        self.waited += 1
        return self.version

    async def credentials_version_async(self) -> int:
        self.awaited += 1
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("the database went away")
        return self.version


def test_under_load_the_credentials_version_is_read_without_stalling_the_loop() -> None:
    """Where reads go on the event loop (PostgreSQL), a process that checked the version
    lately reads it again without making the request wait; a moved version still empties
    the cache, one round trip later; after a quiet spell, or a failed read, the request
    waits for the version as before."""
    from connector_telemetry.api.auth import RECHECK_SECONDS, Authenticator
    from connector_telemetry.models import Principal

    store = _Versions()
    auth = Authenticator(store, 60)  # type: ignore[arg-type]
    verified: list[str] = []

    def check(name: str) -> Principal:
        def verify() -> Principal:
            verified.append(name)
            return Principal("token", name, {})

        return auth._cached("the header", verify)

    async def main() -> None:
        check("first")
        assert (store.waited, store.awaited, verified) == (1, 0, ["first"])
        await asyncio.sleep(RECHECK_SECONDS * 1.2)
        check("cached")  # read again on the loop, the request not waiting for it
        assert (store.waited, verified) == (1, ["first"])
        await asyncio.sleep(0.005)
        assert store.awaited == 1
        store.version = 1  # a token revoked, by another process
        await asyncio.sleep(RECHECK_SECONDS * 1.2)
        check("still cached")  # (the read on its way)
        await asyncio.sleep(0.005)
        check("again")  # the version moved: verified again
        assert (store.waited, store.awaited, verified) == (1, 2, ["first", "again"])
        store.version = 2
        await asyncio.sleep(RECHECK_SECONDS * 2.5)  # quiet: the request waits for it
        check("after a pause")
        assert (store.waited, verified[-1]) == (2, "after a pause")
        store.fail = True
        await asyncio.sleep(RECHECK_SECONDS * 1.2)
        check("cached")
        await asyncio.sleep(0.005)  # that read failed: the next request waits for one
        store.fail = False
        check("cached")
        assert (store.waited, store.awaited) == (3, 3)

    asyncio.run(main())
