"""Compatibility with the official ``cloudflare`` Python SDK (5.9.x), against the live server.

Every scenario is written once, as a coroutine that drives ``cf.magic_transit.connectors``
and ``cf.user.tokens``, and runs three ways (the ``sdk`` fixture): the sync ``Cloudflare``
client, ``AsyncCloudflare`` on its default httpx client, and ``AsyncCloudflare`` on
``DefaultAioHttpClient``. Clients always use ``_strict_response_validation=True``, so each
response must match the SDK's own models; ``max_retries=0`` except in the 409 test, which
checks that the SDK does not resend a conflict. Events are recorded with plain httpx (ingest
is ours, not in the SDK) and read back through the SDK.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Any

import httpx
import pytest
from cloudflare import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)

from connector_telemetry.service.events import KINDS
from support import Tenant, events_path
from support.sdk import SDK, T0, UNKNOWN_ID, connectors, event, payload, raises

UNKNOWN_TOKEN = "Zz0_-" * 8  # well formed (40 of [A-Za-z0-9_-]) but never issued
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
DEFAULTS: dict[str, Any] = {
    "activated": False,
    "interrupt_window_days_of_week": DAYS,
    "interrupt_window_duration_hours": 4,
    "interrupt_window_embargo_dates": [],
    "interrupt_window_hour_of_day": 0,
    "notes": "",
    "timezone": "UTC",
}
PROBE: dict[str, Any] = {
    "activated": True,
    "interrupt_window_days_of_week": ["Monday", "Friday"],
    "interrupt_window_duration_hours": 2.5,
    "interrupt_window_embargo_dates": ["2024-12-25"],
    "interrupt_window_hour_of_day": 3,
    "notes": "hi",
    "timezone": "Europe/Lisbon",
}
assert len(UNKNOWN_TOKEN) == 40


def settable(connector: Any) -> dict[str, Any]:
    return {name: getattr(connector, name) for name in DEFAULTS}


def record(
    http: httpx.Client, tenant: Tenant, connector_id: str, events: list[dict[str, Any]]
) -> None:
    response = http.post(
        events_path(tenant.account_id, connector_id), json=events, headers=tenant.write
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"accepted": len(events), "duplicates": 0}


# -- connectors ------------------------------------------------------------------------


def test_create_by_serial_get_and_list_by_device_type(
    sdk: SDK, tenant: Tenant, connector_id: str
) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        made = await connectors(cf).create(account_id=acc, device={"serial_number": "SN-0001"})
        assert made.device is not None and made.device.type == "MANAGED"
        assert made.device.serial_number == "SN-0001" and made.device.id
        assert made.license_key is None
        assert settable(made) == DEFAULTS
        datetime.fromisoformat(made.last_updated)

        got = await connectors(cf).get(made.id, account_id=acc)
        assert got.model_dump() == made.model_dump()

        every = await connectors(cf).list(account_id=acc)
        assert {c.id for c in every.result} == {made.id, connector_id}
        assert all(c.license_key is None for c in every.result)
        managed = await connectors(cf).list(account_id=acc, device_type="MANAGED")
        assert [c.id for c in managed.result] == [made.id]
        licensed = await connectors(cf).list(account_id=acc, device_type="LICENSED")
        assert [c.id for c in licensed.result] == [connector_id]
        assert licensed.result[0].device.type == "LICENSED"

    sdk.run(scenario, tenant.write_token)


def test_create_by_device_id_and_with_license(sdk: SDK, tenant: Tenant) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        by_id = await connectors(cf).create(account_id=acc, device={"id": "device-42"})
        assert by_id.device.id == "device-42" and by_id.device.type == "MANAGED"
        assert by_id.device.serial_number is None and by_id.license_key is None

        licensed = await connectors(cf).create(account_id=acc, device={"provision_license": True})
        assert licensed.device.type == "LICENSED" and licensed.device.id
        assert isinstance(licensed.license_key, str) and licensed.license_key
        got = await connectors(cf).get(licensed.id, account_id=acc)
        assert got.license_key is None and got.device.type == "LICENSED"
        assert settable(got) == DEFAULTS

    sdk.run(scenario, tenant.write_token)


def test_create_probe_fields_round_trip(sdk: SDK, tenant: Tenant) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        made = await connectors(cf).create(
            account_id=acc, device={"serial_number": "SN-P"}, **PROBE
        )
        assert settable(made) == PROBE
        assert settable(await connectors(cf).get(made.id, account_id=acc)) == PROBE
        (listed,) = (await connectors(cf).list(account_id=acc)).result
        assert listed.id == made.id and settable(listed) == PROBE

    sdk.run(scenario, tenant.write_token)


def test_update_replaces_every_settable_field(sdk: SDK, tenant: Tenant) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        made = await connectors(cf).create(
            account_id=acc, device={"provision_license": True}, **PROBE
        )
        updated = await connectors(cf).update(made.id, account_id=acc, notes="replaced")
        assert settable(updated) == {**DEFAULTS, "notes": "replaced"}
        assert updated.device.model_dump() == made.device.model_dump()
        assert updated.license_key is None
        assert updated.last_updated >= made.last_updated
        got = await connectors(cf).get(made.id, account_id=acc)
        assert got.model_dump() == updated.model_dump()

        again = await connectors(cf).update(made.id, account_id=acc, **PROBE)
        assert settable(again) == PROBE

        rekeyed = await connectors(cf).update(made.id, account_id=acc, provision_license=True)
        assert isinstance(rekeyed.license_key, str) and rekeyed.license_key
        assert rekeyed.license_key != made.license_key
        assert settable(rekeyed) == DEFAULTS

    sdk.run(scenario, tenant.write_token)


def test_edit_changes_only_the_given_fields(sdk: SDK, tenant: Tenant) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        made = await connectors(cf).create(
            account_id=acc, device={"provision_license": True}, **PROBE
        )
        edited = await connectors(cf).edit(
            made.id, account_id=acc, notes="edited", interrupt_window_hour_of_day=22.5
        )
        assert settable(edited) == {
            **PROBE,
            "notes": "edited",
            "interrupt_window_hour_of_day": 22.5,
        }
        assert edited.device.model_dump() == made.device.model_dump()
        assert edited.license_key is None
        assert settable(await connectors(cf).get(made.id, account_id=acc)) == settable(edited)

        unchanged = await connectors(cf).edit(made.id, account_id=acc)
        assert settable(unchanged) == settable(edited)

        rekeyed = await connectors(cf).edit(made.id, account_id=acc, provision_license=True)
        assert isinstance(rekeyed.license_key, str) and rekeyed.license_key
        assert rekeyed.license_key != made.license_key
        assert settable(rekeyed) == settable(edited)

    sdk.run(scenario, tenant.write_token)


def test_delete_returns_the_connector_then_it_is_gone(sdk: SDK, tenant: Tenant) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        made = await connectors(cf).create(
            account_id=acc, device={"serial_number": "SN-D"}, **PROBE
        )
        before = await connectors(cf).get(made.id, account_id=acc)
        deleted = await connectors(cf).delete(made.id, account_id=acc)
        assert deleted.model_dump() == before.model_dump()
        assert deleted.id == made.id and settable(deleted) == PROBE
        with raises(NotFoundError, 1404):
            await connectors(cf).get(made.id, account_id=acc)
        with raises(NotFoundError, 1404):
            await connectors(cf).delete(made.id, account_id=acc)
        assert (await connectors(cf).list(account_id=acc)).result == []

    sdk.run(scenario, tenant.write_token)


def test_conflict_is_not_retried(sdk: SDK, tenant: Tenant, other_tenant: Tenant) -> None:
    """409 carries ``x-should-retry: false``: with the SDK's default retries (2) the
    conflicting create is sent exactly once."""
    sent: list[str] = []

    async def scenario() -> None:
        async with sdk.client(
            tenant.write_token, max_retries=2, on_request=lambda r: sent.append(r.method)
        ) as cf:
            acc = tenant.account_id
            first = await connectors(cf).create(account_id=acc, device={"id": "dup-device"})
            await connectors(cf).create(account_id=acc, device={"serial_number": "DUP-SN"})
            assert sent == ["POST", "POST"]
            with raises(ConflictError, 1409) as info:
                await connectors(cf).create(account_id=acc, device={"id": "dup-device"})
            assert info.value.response.headers["x-should-retry"] == "false"
            with raises(ConflictError, 1409):
                await connectors(cf).create(account_id=acc, device={"serial_number": "DUP-SN"})
            assert sent == ["POST"] * 4
            ids = {c.id for c in (await connectors(cf).list(account_id=acc)).result}
            assert first.id in ids and len(ids) == 2
        async with sdk.client(other_tenant.write_token) as cf:  # devices are per account
            other = await connectors(cf).create(
                account_id=other_tenant.account_id, device={"id": "dup-device"}
            )
            assert other.device.id == "dup-device"

    sdk.run_many(scenario)


def test_concurrent_requests_on_one_client(sdk: SDK, tenant: Tenant) -> None:
    """Many requests in flight on one client (sequential for the sync client)."""

    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        serials = [f"SN-C{i}" for i in range(12)]
        made = await asyncio.gather(
            *(connectors(cf).create(account_id=acc, device={"serial_number": s}) for s in serials)
        )
        assert len({c.id for c in made}) == len(serials)
        got = await asyncio.gather(*(connectors(cf).get(c.id, account_id=acc) for c in made))
        assert [c.device.serial_number for c in got] == serials
        listed = await connectors(cf).list(account_id=acc, device_type="MANAGED")
        assert {c.id for c in listed.result} == {c.id for c in made}

    sdk.run(scenario, tenant.write_token)


# -- events ----------------------------------------------------------------------------


def test_event_get_accepts_int_and_float_keys(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    record(
        http,
        tenant,
        connector_id,
        [
            event("Init", T0, 3),
            event("Reconcile", T0 + 0.5, 0),
            event("HaInit", T0 + 2, 1.5),
            event("HaLeave", T0, 0.3),
        ],
    )

    async def scenario(cf: Any) -> None:
        get = cf.magic_transit.connectors.events.get
        ids = {"account_id": tenant.account_id, "connector_id": connector_id}
        for n, t in [(3, T0), (3.0, T0), (3, float(T0)), (3.0, float(T0))]:
            got = await get(n, event_t=t, **ids)
            assert (got.e.k, got.t, got.n, got.v) == ("Init", T0, 3, "2026.1.0"), (n, t)
        for n in (0, 0.0):
            got = await get(n, event_t=T0 + 0.5, **ids)
            assert (got.e.k, got.t, got.n) == ("Reconcile", T0 + 0.5, 0)
        got = await get(1.5, event_t=T0 + 2, **ids)
        assert (got.e.k, got.t, got.n) == ("HaInit", T0 + 2, 1.5)
        # The SDK writes str(t) + "." + str(n): "1700000000.0.3" is (t, 3) or (t, 0.3), and
        # both exist here; the whole sequence number wins, while "1700000000.0.0.3" (a
        # float n) can only mean (t, 0.3).
        got = await get(3, event_t=float(T0), **ids)
        assert (got.e.k, got.n) == ("Init", 3)
        got = await get(0.3, event_t=float(T0), **ids)
        assert (got.e.k, got.t, got.n) == ("HaLeave", T0, 0.3)
        with raises(NotFoundError, 1404):
            await get(4, event_t=T0, **ids)
        with raises(NotFoundError, 1404):
            await get(3, event_t=T0 + 1, **ids)

    sdk.run(scenario, tenant.read_token)


def test_every_listed_event_can_be_fetched(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    batch = [event("Reconcile", T0 + i * 0.25, i % 3) for i in range(12)]
    record(http, tenant, connector_id, batch)

    async def scenario(cf: Any) -> None:
        events = cf.magic_transit.connectors.events
        listed = await events.list(connector_id, account_id=tenant.account_id, from_=0, to=2e9)
        assert listed.count == len(listed.items) == len(batch)
        for item in listed.items:
            got = await events.get(
                item.n, account_id=tenant.account_id, connector_id=connector_id, event_t=item.t
            )
            assert (got.t, got.n, got.e.k) == (item.t, item.n, item.k)

    sdk.run(scenario, tenant.read_token)


def test_kind_specific_fields_are_kept(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    record(
        http,
        tenant,
        connector_id,
        [
            event("StartUpgrade", T0, 0),
            event("RekeyStart", T0, 1),
            event("HaTransition", T0, 2, state="active", peer={"id": "p1", "up": True}),
        ],
    )

    async def scenario(cf: Any) -> None:
        ids = {"account_id": tenant.account_id, "connector_id": connector_id}
        get = cf.magic_transit.connectors.events.get
        upgrade = await get(0, event_t=T0, **ids)
        assert upgrade.e.url == payload("StartUpgrade")["url"]
        assert upgrade.e.to_dict()["url"] == payload("StartUpgrade")["url"]
        rekey = await get(1, event_t=T0, **ids)
        assert rekey.e.tunnel_id == "tunnel-rekeystart"
        ha = await get(2, event_t=T0, **ids)
        assert ha.e.to_dict() == {
            "k": "HaTransition",
            "state": "active",
            "peer": {"id": "p1", "up": True},
        }
        latest = await cf.magic_transit.connectors.events.latest.list(
            connector_id, account_id=tenant.account_id
        )
        assert [item.e.to_dict() for item in latest.items] == [
            ha.e.to_dict(),
            rekey.e.to_dict(),
            upgrade.e.to_dict(),
        ]

    sdk.run(scenario, tenant.read_token)


def test_list_order_filters_and_cursor_paging(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    times = [T0, T0 + 0.25, T0 + 1, T0 + 5, T0 + 60]
    batch = [
        event("Reconcile" if n % 2 else "HaError", t, n)
        for t in times
        for n in range(5 if t == T0 else 4)
    ]  # 21 events
    shuffled = batch[:]
    random.Random(7).shuffle(shuffled)
    record(http, tenant, connector_id, shuffled)
    keys = [(e["t"], e["n"]) for e in batch]  # already in (t, n) order

    async def scenario(cf: Any) -> None:
        events = cf.magic_transit.connectors.events
        ids = {"account_id": tenant.account_id}

        async def pages(limit: int, **query: Any) -> list[Any]:
            out, cursor = [], None
            while True:
                extra = {"cursor": cursor} if cursor else {}
                page = await events.list(connector_id, limit=limit, **ids, **query, **extra)
                assert page.count == len(page.items) <= limit
                out.append(page)
                if page.cursor is None:
                    return out
                assert page.count == limit  # a cursor only when more follows
                cursor = page.cursor

        everything = await events.list(connector_id, **ids, from_=0, to=2e9, limit=1000)
        assert everything.cursor is None and everything.count == len(batch)
        assert [(i.t, i.n) for i in everything.items] == keys
        assert all(i.a >= T0 and i.k in ("Reconcile", "HaError") for i in everything.items)

        default = await events.list(connector_id, **ids, from_=0, to=2e9)
        assert default.model_dump() == everything.model_dump()

        for limit in (1, 4, 5, 7, 20, 21, 22):
            walked = await pages(limit, from_=0, to=2e9)
            seen = [(i.t, i.n) for page in walked for i in page.items]
            assert seen == keys, limit  # every event exactly once, in order
            assert len(walked) == max(1, -(-len(keys) // limit)), limit

        window = await events.list(connector_id, **ids, from_=T0 + 0.25, to=T0 + 1)
        assert [(i.t, i.n) for i in window.items] == [
            k for k in keys if T0 + 0.25 <= k[0] <= T0 + 1
        ]
        walked = await pages(3, from_=T0 + 0.25, to=2e9, k="Reconcile")
        seen = [(i.t, i.n, i.k) for page in walked for i in page.items]
        assert seen == [(t, n, "Reconcile") for t, n in keys if t >= T0 + 0.25 and n % 2]
        empty = await events.list(connector_id, **ids, from_=T0 + 6, to=T0 + 59.5)
        assert empty.count == 0 and empty.items == [] and empty.cursor is None

    sdk.run(scenario, tenant.read_token)


def test_latest_is_newest_first_ten_by_default(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    batch = [event(KINDS[i], T0 + i // 3, i % 3) for i in range(15)]
    record(http, tenant, connector_id, batch[::-1])

    async def scenario(cf: Any) -> None:
        latest = await cf.magic_transit.connectors.events.latest.list(
            connector_id, account_id=tenant.account_id
        )
        assert latest.count == len(latest.items) == 10
        newest = batch[::-1][:10]
        assert [(i.t, i.n, i.e.k, i.v) for i in latest.items] == [
            (e["t"], e["n"], e["e"]["k"], e["v"]) for e in newest
        ]

    sdk.run(scenario, tenant.read_token)


def test_all_kinds_pass_strict_validation(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    assert len(KINDS) == 29
    record(http, tenant, connector_id, [event(kind, T0 + i, 0) for i, kind in enumerate(KINDS)])

    async def scenario(cf: Any) -> None:
        events = cf.magic_transit.connectors.events
        for i, kind in enumerate(KINDS):
            got = await events.get(
                0, account_id=tenant.account_id, connector_id=connector_id, event_t=T0 + i
            )
            assert got.e.to_dict() == payload(kind) and got.t == T0 + i
        latest = await events.latest.list(
            connector_id, account_id=tenant.account_id, extra_query={"limit": 100}
        )
        assert latest.count == 29
        assert [item.e.to_dict() for item in latest.items] == [payload(k) for k in KINDS[::-1]]
        for kind in ("StartUpgrade", "RekeyReset"):
            listed = await events.list(
                connector_id, account_id=tenant.account_id, from_=0, to=2e9, k=kind
            )
            assert [(i.k, i.t) for i in listed.items] == [(kind, T0 + KINDS.index(kind))]

    sdk.run(scenario, tenant.read_token)


# -- errors ----------------------------------------------------------------------------


def test_unknown_connector_is_404_everywhere(sdk: SDK, tenant: Tenant) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        calls = [
            lambda: connectors(cf).get(UNKNOWN_ID, account_id=acc),
            lambda: connectors(cf).update(UNKNOWN_ID, account_id=acc, notes="x"),
            lambda: connectors(cf).edit(UNKNOWN_ID, account_id=acc, notes="x"),
            lambda: connectors(cf).delete(UNKNOWN_ID, account_id=acc),
            lambda: connectors(cf).events.get(
                0, account_id=acc, connector_id=UNKNOWN_ID, event_t=T0
            ),
            lambda: connectors(cf).events.list(UNKNOWN_ID, account_id=acc, from_=0, to=2e9),
            lambda: connectors(cf).events.latest.list(UNKNOWN_ID, account_id=acc),
        ]
        for call in calls:
            with raises(NotFoundError, 1404):
                await call()

    sdk.run(scenario, tenant.write_token)


def test_another_accounts_connector_is_not_found(
    sdk: SDK, tenant: Tenant, other_tenant: Tenant, connector_id: str
) -> None:
    async def scenario(cf: Any) -> None:
        acc = other_tenant.account_id  # its own account, this tenant's connector id
        with raises(NotFoundError, 1404):
            await connectors(cf).get(connector_id, account_id=acc)
        with raises(NotFoundError, 1404):
            await connectors(cf).events.latest.list(connector_id, account_id=acc)

    sdk.run(scenario, other_tenant.write_token)


def test_read_token_reads_but_cannot_write(sdk: SDK, tenant: Tenant, connector_id: str) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        assert (await connectors(cf).get(connector_id, account_id=acc)).id == connector_id
        assert [c.id for c in (await connectors(cf).list(account_id=acc)).result] == [connector_id]
        writes = [
            lambda: connectors(cf).create(account_id=acc, device={"serial_number": "SN-R"}),
            lambda: connectors(cf).update(connector_id, account_id=acc, notes="x"),
            lambda: connectors(cf).edit(connector_id, account_id=acc, notes="x"),
            lambda: connectors(cf).delete(connector_id, account_id=acc),
        ]
        for call in writes:
            with raises(PermissionDeniedError, 10000):
                await call()
        after = await connectors(cf).get(connector_id, account_id=acc)
        assert settable(after) == DEFAULTS

    sdk.run(scenario, tenant.read_token)


def test_other_tenants_credentials_are_denied(
    sdk: SDK, tenant: Tenant, other_tenant: Tenant, connector_id: str
) -> None:
    acc = tenant.account_id

    async def attempts(cf: Any) -> None:
        calls = [
            lambda: connectors(cf).list(account_id=acc),
            lambda: connectors(cf).get(connector_id, account_id=acc),
            lambda: connectors(cf).create(account_id=acc, device={"serial_number": "SN-O"}),
            lambda: connectors(cf).edit(connector_id, account_id=acc, notes="x"),
            lambda: connectors(cf).delete(connector_id, account_id=acc),
            lambda: connectors(cf).events.latest.list(connector_id, account_id=acc),
            lambda: connectors(cf).events.list(connector_id, account_id=acc, from_=0, to=2e9),
        ]
        for call in calls:
            with raises(PermissionDeniedError, 10000):
                await call()

    async def scenario() -> None:
        for auth in (
            {"token": other_tenant.write_token},
            {"token": other_tenant.read_token},
            {"email": other_tenant.email, "key": other_tenant.api_key},
        ):
            async with sdk.client(**auth) as cf:
                await attempts(cf)
        async with sdk.client(tenant.read_token) as cf:
            assert (await connectors(cf).get(connector_id, account_id=acc)).notes == ""

    sdk.run_many(scenario)


@pytest.mark.parametrize(
    ("auth", "cls", "code"),
    [
        ({"token": UNKNOWN_TOKEN}, PermissionDeniedError, 9109),
        ({"token": "short"}, BadRequestError, 6003),
        (
            {"email": "nobody@example.com", "key": "0123456789abcdef0123456789abcdef01234"},
            PermissionDeniedError,
            9103,
        ),
    ],
    ids=["unknown-token", "malformed-token", "unknown-user-key"],
)
def test_bad_credentials(
    sdk: SDK,
    tenant: Tenant,
    connector_id: str,
    auth: dict[str, str],
    cls: type[APIStatusError],
    code: int,
) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        with raises(cls, code):
            await connectors(cf).list(account_id=acc)
        with raises(cls, code):
            await connectors(cf).create(account_id=acc, device={"serial_number": "SN-B"})
        with raises(cls, code):
            await connectors(cf).events.get(
                0, account_id=acc, connector_id=connector_id, event_t=T0
            )

    sdk.run(scenario, auth.get("token"), email=auth.get("email"), key=auth.get("key"))


def test_legacy_email_and_key_read_and_write(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    record(http, tenant, connector_id, [event("Init", T0, 0)])

    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        made = await connectors(cf).create(account_id=acc, device={"serial_number": "SN-L"})
        edited = await connectors(cf).edit(made.id, account_id=acc, notes="legacy")
        assert edited.notes == "legacy"
        assert {c.id for c in (await connectors(cf).list(account_id=acc)).result} == {
            made.id,
            connector_id,
        }
        got = await connectors(cf).events.get(
            0, account_id=acc, connector_id=connector_id, event_t=T0
        )
        assert got.e.k == "Init"
        assert (await connectors(cf).delete(made.id, account_id=acc)).notes == "legacy"

    sdk.run(scenario, email=tenant.email, key=tenant.api_key)


BAD_CREATES: list[dict[str, Any]] = [
    {"device": {"serial_number": "SN-X"}, "interrupt_window_duration_hours": 30},
    {"device": {"serial_number": "SN-X"}, "interrupt_window_duration_hours": 0.5},
    {"device": {}},
    {"device": {"serial_number": "SN-X", "id": "both"}},
    {"device": {"provision_license": False}},
    {"device": {"serial_number": ""}},
    {"device": {"serial_number": "SN-X"}, "interrupt_window_hour_of_day": 24},
    {"device": {"serial_number": "SN-X"}, "interrupt_window_days_of_week": ["Monday"] * 2},
    {"device": {"serial_number": "SN-X"}, "interrupt_window_embargo_dates": ["2024-02-30"]},
    {"device": {"serial_number": "SN-X"}, "timezone": "Mars/Olympus_Mons"},
]


def test_invalid_input_is_rejected(sdk: SDK, tenant: Tenant, connector_id: str) -> None:
    async def scenario(cf: Any) -> None:
        acc = tenant.account_id
        for body in BAD_CREATES:
            with raises(BadRequestError, 1003):
                await connectors(cf).create(account_id=acc, **body)
        with raises(BadRequestError, 1003):
            await connectors(cf).update(connector_id, account_id=acc, notes="x" * 4097)
        with raises(BadRequestError, 1003):
            await connectors(cf).edit(connector_id, account_id=acc, timezone="Nowhere/Else")
        got = await connectors(cf).get(connector_id, account_id=acc)
        assert settable(got) == DEFAULTS  # a refused change changes nothing
        assert [c.id for c in (await connectors(cf).list(account_id=acc)).result] == [connector_id]

    sdk.run(scenario, tenant.write_token)


def test_invalid_event_queries_are_rejected(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    record(http, tenant, connector_id, [event("Init", T0, n) for n in range(3)])

    async def scenario(cf: Any) -> None:
        events = cf.magic_transit.connectors.events
        ids = {"account_id": tenant.account_id}
        for limit in (5000, 0, 2.5):
            with raises(BadRequestError, 1002):
                await events.list(connector_id, **ids, from_=0, to=2e9, limit=limit)
        with raises(BadRequestError, 1002):
            await events.list(connector_id, **ids, from_=0, to=2e9, k="NotAKind")
        first = await events.list(connector_id, **ids, from_=0, to=2e9, limit=1)
        assert first.cursor
        with raises(BadRequestError, 1005):  # a cursor belongs to its query
            await events.list(connector_id, **ids, from_=1, to=2e9, cursor=first.cursor)
        with raises(BadRequestError, 1005):
            await events.list(connector_id, **ids, from_=0, to=2e9, cursor="not-a-cursor")

    sdk.run(scenario, tenant.read_token)


# -- token verify ----------------------------------------------------------------------


def test_token_verify(sdk: SDK, tenant: Tenant) -> None:
    async def scenario() -> None:
        ids = set()
        for token in (tenant.write_token, tenant.read_token):
            async with sdk.client(token) as cf:
                verified = await cf.user.tokens.verify()
                assert verified is not None and verified.status == "active"
                assert isinstance(verified.id, str) and verified.id
                ids.add(verified.id)
        assert len(ids) == 2
        async with sdk.client(UNKNOWN_TOKEN) as cf:
            with raises(AuthenticationError, 1000):
                await cf.user.tokens.verify()

    sdk.run_many(scenario)
