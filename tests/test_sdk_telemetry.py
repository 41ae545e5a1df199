"""The official ``cloudflare`` SDK (5.9.x) against the live server: telemetry snapshots,
interrupts, and what a connector may do with its own license key.

Every scenario runs three ways through the ``sdk`` fixture (tests/support/sdk.py: the sync
client, ``AsyncCloudflare`` on httpx, ``AsyncCloudflare`` on ``DefaultAioHttpClient``), always with
``_strict_response_validation=True``, so each response must match the SDK's own models.
Snapshot (and event) ingest is ours, not in the SDK: it is done with plain httpx, and
everything is read back through the SDK.
"""

from __future__ import annotations

import math
import random
import re
import time
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cloudflare import BadRequestError, ConflictError, NotFoundError, PermissionDeniedError
from cloudflare.types.magic_transit.connectors import (
    InterruptCreateResponse,
    InterruptListResponse,
    SnapshotGetResponse,
    SnapshotListResponse,
)
from cloudflare.types.magic_transit.connectors.snapshots import LatestListResponse
from pydantic import BaseModel

from support import Tenant, assert_error, create_connector, events_path, snapshots_path
from support.sdk import SDK, T0, UNKNOWN_ID, connectors, event, raises

LICENSE_SHAPE = re.compile(r"ctel_lic_[A-Za-z0-9_-]{43}")
UNKNOWN_LICENSE = "ctel_lic_" + "Zz0_-" * 8 + "abc"  # well formed, never issued
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
ACTIONS = ("reboot", "restart", "shutdown")
assert LICENSE_SHAPE.fullmatch(UNKNOWN_LICENSE)


# -- helpers ---------------------------------------------------------------------------


@dataclass
class Device:
    """A LICENSED connector and its license key (the connector's own credential)."""

    id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_device(http: httpx.Client, tenant: Tenant) -> Device:
    result = create_connector(str(http.base_url), tenant)
    assert LICENSE_SHAPE.fullmatch(result["license_key"]), result
    return Device(result["id"], result["license_key"])


@pytest.fixture
def device(http: httpx.Client, tenant: Tenant) -> Device:
    return make_device(http, tenant)


def snap(t: float, v: str = "2026.1.0", **fields: Any) -> dict[str, Any]:
    """The smallest valid snapshot: ``t``, ``v`` and the four required counters."""
    return {
        "t": t,
        "v": v,
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 1,
        "count_record_failed": 2,
        "count_transmit_failures": 3,
        **fields,
    }


def ingest(
    http: httpx.Client,
    headers: dict[str, str],
    account_id: str,
    connector_id: str,
    items: Any,
) -> httpx.Response:
    return http.post(snapshots_path(account_id, connector_id), json=items, headers=headers)


def record(
    http: httpx.Client,
    headers: dict[str, str],
    account_id: str,
    connector_id: str,
    items: list[dict[str, Any]],
    duplicates: int = 0,
) -> None:
    response = ingest(http, headers, account_id, connector_id, items)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {
        "accepted": len(items) - duplicates,
        "duplicates": duplicates,
    }


def rfc3339(text: Any) -> datetime:
    assert isinstance(text, str) and RFC3339.fullmatch(text), text
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, text
    return parsed


def _field_type(annotation: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def sample(model: type[BaseModel], salt: int) -> dict[str, Any]:
    """Every field of ``model`` set to a valid, distinct value; one element (itself with
    every field set) in each nested array."""
    out: dict[str, Any] = {}
    for i, (name, field) in enumerate(model.model_fields.items()):
        kind = _field_type(field.annotation)
        if typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            out[name] = [sample(item, salt + 1000 * (i + 1))]
        elif kind is bool:
            out[name] = i % 2 == 0
        elif kind is str:
            out[name] = f"{name} #{salt}"
        elif kind is float:  # whole numbers and fractions, as an agent sends them
            out[name] = salt + i if i % 3 else salt + i + 0.25
        else:
            raise AssertionError(f"{model.__name__}.{name}: unexpected type {kind!r}")
    return out


NESTED = {
    "bonds": "Bond",
    "dhcp_leases": "DHCPLease",
    "disks": "Disk",
    "interfaces": "Interface",
    "mounts": "Mount",
    "netdevs": "Netdev",
    "routes": "Route",
    "thermals": "Thermal",
    "tunnels": "Tunnel",
}


def full_snapshot(t: float) -> dict[str, Any]:
    """All 175 fields of the SDK's Snapshot populated, plus unknown fields (kept)."""
    body = sample(SnapshotGetResponse, 7)
    assert len(body) == 175
    assert set(NESTED) < set(body) and "ip_addresses" in body["interfaces"][0]
    for name, field in SnapshotGetResponse.model_fields.items():
        kind = _field_type(field.annotation)
        if typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            assert item.__name__ == NESTED[name]
            assert set(body[name][0]) == set(item.model_fields), name
    body.update(t=t, v="2026.2.1", memory_total_bytes=2**40, cpu_count=4)
    body["x_agent"] = {"build": "a1b2c3", "flags": [1, 2.5, None, True, "x"]}
    body["disks"][0]["x_vendor"] = "ACME"
    return body


def interrupts(cf: Any) -> Any:
    return cf.magic_transit.connectors.interrupts


def snapshots(cf: Any) -> Any:
    return cf.magic_transit.connectors.snapshots


def check_interrupt(item: Any, action: str, purge: bool, *, triggered: bool) -> dict[str, Any]:
    """An interrupt as the server describes it: id, submitted_at, the one action and
    (once the connector picked it up) triggered_at, nothing else."""
    wire = item.to_dict()
    keys = {"id", "submitted_at", action} | ({"triggered_at"} if triggered else set())
    assert set(wire) == keys, wire
    assert isinstance(wire["id"], str) and wire["id"]
    assert wire[action] == {"purge": purge}
    assert getattr(item, action).purge is purge
    assert all(getattr(item, other) is None for other in ACTIONS if other != action)
    submitted = rfc3339(item.submitted_at)
    if triggered:
        assert rfc3339(item.triggered_at) >= submitted
    else:
        assert item.triggered_at is None
    return dict(wire)


# -- snapshots: reads ------------------------------------------------------------------


def test_full_snapshot_round_trips_under_strict_validation(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    acc = tenant.account_id
    full = full_snapshot(T0)
    small = snap(T0 - 1)
    record(http, tenant.write, acc, connector_id, [full, small])
    raw = http.get(f"{snapshots_path(acc, connector_id)}/{T0}", headers=tenant.read)
    assert raw.status_code == 200 and raw.json()["result"] == full, raw.text

    async def scenario(cf: Any) -> None:
        got = await snapshots(cf).get(T0, account_id=acc, connector_id=connector_id)
        assert type(got) is SnapshotGetResponse
        assert got.to_dict() == full
        assert got.model_extra == {"x_agent": full["x_agent"]}
        assert got.disks[0].model_extra == {"x_vendor": "ACME"}
        assert got.disks[0].name == full["disks"][0]["name"]
        address = got.interfaces[0].ip_addresses[0]
        assert address.ip_address == full["interfaces"][0]["ip_addresses"][0]["ip_address"]
        assert got.snmp_ip_forwarding_enabled is full["snmp_ip_forwarding_enabled"]
        assert got.mounts[0].is_read_only is full["mounts"][0]["is_read_only"]
        assert (got.t, got.v, got.memory_total_bytes) == (T0, "2026.2.1", 2**40)

        latest = await snapshots(cf).latest.list(connector_id, account_id=acc)
        assert type(latest) is LatestListResponse
        assert latest.count == len(latest.items) == 2
        assert [item.to_dict() for item in latest.items] == [full, small]
        assert latest.items[0].model_extra == {"x_agent": full["x_agent"]}

        plain = await snapshots(cf).get(T0 - 1, account_id=acc, connector_id=connector_id)
        assert plain.to_dict() == small and plain.disks is None and plain.cpu_count is None

    sdk.run(scenario, tenant.read_token)


def test_snapshot_get_every_number_form(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    acc = tenant.account_id
    sent = [
        snap(0, "at-0"),
        snap(float(T0), "at-T0"),  # JSON 1700000000.0, kept as 1700000000
        snap(T0 + 0.5, "at-T0.5"),
        snap(T0 + 1, "at-T0+1"),
        snap(1e16, "at-1e16"),  # JSON 1e+16
    ]
    record(http, tenant.write, acc, connector_id, sent)
    base = snapshots_path(acc, connector_id)
    for segment, t in [("1700000000", T0), ("1e+16", 10**16), ("0", 0)]:
        raw = http.get(f"{base}/{segment}", headers=tenant.read).json()["result"]
        assert raw["t"] == t and type(raw["t"]) is int, raw  # whole numbers as integers
    raw = http.get(f"{base}/1700000000.5", headers=tenant.read).json()["result"]
    assert raw["t"] == T0 + 0.5

    async def scenario(cf: Any) -> None:
        ids = {"account_id": acc, "connector_id": connector_id}
        forms = [
            (0, "at-0"),
            (0.0, "at-0"),
            (T0, "at-T0"),
            (float(T0), "at-T0"),  # the SDK writes 1700000000.0
            (T0 + 0.5, "at-T0.5"),
            (T0 + 1, "at-T0+1"),
            (1e16, "at-1e16"),  # the SDK writes 1e+16
            (10**16, "at-1e16"),
        ]
        for t, v in forms:
            got = await snapshots(cf).get(t, **ids)
            assert (got.t, got.v) == (t, v), t
        for missing in (T0 + 0.25, T0 + 2, 1, 1e15):
            with raises(NotFoundError, 1404):
                await snapshots(cf).get(missing, **ids)
        listed = await snapshots(cf).list(connector_id, account_id=acc, from_=0, to=1e17)
        assert [item.t for item in listed.items] == [0, T0, T0 + 0.5, T0 + 1, 1e16]

    sdk.run(scenario, tenant.read_token)


def test_list_order_inclusive_range_and_cursor_paging(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    acc = tenant.account_id
    times = [T0 + i * 0.25 for i in range(23)]
    shuffled = [snap(t) for t in times]
    random.Random(11).shuffle(shuffled)
    before = time.time()
    record(http, tenant.write, acc, connector_id, shuffled)
    after = time.time()
    raw = http.get(
        snapshots_path(acc, connector_id), params={"from": 0, "to": 2e9}, headers=tenant.read
    ).json()["result"]
    assert set(raw) == {"count", "items"} and type(raw["count"]) is int  # no cursor: all fit
    assert [type(item["t"]) for item in raw["items"][:5:4]] == [int, int]

    async def scenario(cf: Any) -> None:
        ids = {"account_id": acc}

        async def pages(limit: int, **query: Any) -> list[Any]:
            out, cursor = [], None
            while True:
                extra = {"cursor": cursor} if cursor else {}
                page = await snapshots(cf).list(connector_id, limit=limit, **ids, **query, **extra)
                assert type(page) is SnapshotListResponse
                assert page.count == len(page.items) <= limit
                out.append(page)
                if page.cursor is None:
                    return out
                assert page.count == limit  # a cursor only when more follows
                cursor = page.cursor

        everything = await snapshots(cf).list(connector_id, **ids, from_=0, to=2e9)
        assert everything.cursor is None and everything.count == len(times)
        assert [i.t for i in everything.items] == times  # oldest first
        assert all(before - 1 <= i.a <= after + 1 for i in everything.items)

        for limit in (1, 4, 5, 22, 23, 24, 1000):
            walked = await pages(limit, from_=0, to=2e9)
            assert [i.t for page in walked for i in page.items] == times, limit
            assert len(walked) == max(1, math.ceil(len(times) / limit)), limit

        window = await snapshots(cf).list(connector_id, **ids, from_=T0 + 1, to=T0 + 2)
        assert [i.t for i in window.items] == [T0 + 1, T0 + 1.25, T0 + 1.5, T0 + 1.75, T0 + 2]
        walked = await pages(2, from_=T0 + 1, to=T0 + 2)
        assert [i.t for page in walked for i in page.items] == [i.t for i in window.items]
        exact = await snapshots(cf).list(connector_id, **ids, from_=T0 + 3, to=T0 + 3)
        assert [i.t for i in exact.items] == [T0 + 3] and exact.count == 1
        empty = await snapshots(cf).list(connector_id, **ids, from_=T0 + 5.6, to=T0 + 100)
        assert empty.count == 0 and empty.items == [] and empty.cursor is None
        with raises(BadRequestError, 1005):
            await snapshots(cf).list(connector_id, **ids, from_=0, to=2e9, cursor="not-a-cursor")

    sdk.run(scenario, tenant.read_token)


def test_list_limit_default_100_max_1000(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    acc = tenant.account_id
    times = [T0 + i for i in range(130)]
    record(http, tenant.write, acc, connector_id, [snap(t) for t in times[::-1]])

    async def scenario(cf: Any) -> None:
        query = {"account_id": acc, "from_": 0, "to": 2e9}
        first = await snapshots(cf).list(connector_id, **query)
        assert first.count == 100 and [i.t for i in first.items] == times[:100]
        assert first.cursor
        rest = await snapshots(cf).list(connector_id, **query, cursor=first.cursor)
        assert rest.count == 30 and [i.t for i in rest.items] == times[100:]
        assert rest.cursor is None
        most = await snapshots(cf).list(connector_id, **query, limit=1000)
        assert most.count == 130 and most.cursor is None
        for limit in (1001, 5000, 0):
            with raises(BadRequestError, 1002):
                await snapshots(cf).list(connector_id, **query, limit=limit)

    sdk.run(scenario, tenant.read_token)


def test_latest_is_newest_first_ten_by_default(
    sdk: SDK, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    acc = tenant.account_id
    batch = [snap(T0 + i, f"2026.1.{i}", cpu_count=i) for i in range(15)]
    record(http, tenant.write, acc, connector_id, batch[::-1])
    newest_first = batch[::-1]

    async def scenario(cf: Any) -> None:
        latest = await snapshots(cf).latest.list(connector_id, account_id=acc)
        assert latest.count == len(latest.items) == 10
        assert [item.to_dict() for item in latest.items] == newest_first[:10]
        more = await snapshots(cf).latest.list(
            connector_id, account_id=acc, extra_query={"limit": 100}
        )
        assert [item.to_dict() for item in more.items] == newest_first and more.count == 15
        three = await snapshots(cf).latest.list(
            connector_id, account_id=acc, extra_query={"limit": 3}
        )
        assert [item.v for item in three.items] == ["2026.1.14", "2026.1.13", "2026.1.12"]

    sdk.run(scenario, tenant.read_token)


def test_unknown_connector_empty_connector_and_permissions(
    sdk: SDK, tenant: Tenant, other_tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    acc = tenant.account_id
    denied = ingest(http, tenant.read, acc, connector_id, [snap(T0)])
    assert_error(denied, 403, 10000)  # a read token cannot record

    async def scenario() -> None:
        async with sdk.client(tenant.read_token) as cf:
            empty = await snapshots(cf).list(connector_id, account_id=acc, from_=0, to=2e9)
            assert empty.count == 0 and empty.items == [] and empty.cursor is None
            latest = await snapshots(cf).latest.list(connector_id, account_id=acc)
            assert latest.count == 0 and latest.items == []
            with raises(NotFoundError, 1404):
                await snapshots(cf).get(T0, account_id=acc, connector_id=connector_id)
            for cid in (UNKNOWN_ID, "no-such-connector"):
                with raises(NotFoundError, 1404):
                    await snapshots(cf).list(cid, account_id=acc, from_=0, to=2e9)
                with raises(NotFoundError, 1404):
                    await snapshots(cf).latest.list(cid, account_id=acc)
                with raises(NotFoundError, 1404):
                    await snapshots(cf).get(T0, account_id=acc, connector_id=cid)
        async with sdk.client(other_tenant.read_token) as cf:
            calls = [
                lambda: snapshots(cf).list(connector_id, account_id=acc, from_=0, to=2e9),
                lambda: snapshots(cf).latest.list(connector_id, account_id=acc),
                lambda: snapshots(cf).get(T0, account_id=acc, connector_id=connector_id),
            ]
            for call in calls:
                with raises(PermissionDeniedError, 10000):
                    await call()
            own = other_tenant.account_id  # its own account, this tenant's connector id
            with raises(NotFoundError, 1404):
                await snapshots(cf).latest.list(connector_id, account_id=own)

    sdk.run_many(scenario)


# -- snapshots: ingest (ours; plain httpx) ---------------------------------------------


def test_ingest_is_idempotent_by_t_and_refuses_conflicts(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    acc = tenant.account_id
    record(http, tenant.write, acc, connector_id, [snap(T0), snap(T0 + 1)])
    record(http, tenant.write, acc, connector_id, [snap(T0), snap(T0 + 1)], duplicates=2)
    reordered = dict(reversed(list(snap(T0).items())))
    record(http, tenant.write, acc, connector_id, [reordered, snap(T0 + 2)], duplicates=1)
    record(http, tenant.write, acc, connector_id, [snap(float(T0))], duplicates=1)
    record(http, tenant.write, acc, connector_id, [snap(T0 + 3), snap(T0 + 3)], duplicates=1)

    conflict = ingest(http, tenant.write, acc, connector_id, [snap(T0 + 4), snap(T0, "2026.9")])
    assert_error(conflict, 409, 1409, "snapshots[1]")
    assert conflict.headers["x-should-retry"] == "false"
    inside = ingest(http, tenant.write, acc, connector_id, [snap(T0 + 5), snap(T0 + 5, "x")])
    assert_error(inside, 409, 1409, "snapshots[1]")
    assert inside.headers["x-should-retry"] == "false"

    listed = http.get(
        snapshots_path(acc, connector_id), params={"from": 0, "to": 2e9}, headers=tenant.read
    ).json()["result"]
    assert [i["t"] for i in listed["items"]] == [T0, T0 + 1, T0 + 2, T0 + 3]  # refused: none
    got = http.get(f"{snapshots_path(acc, connector_id)}/{T0}", headers=tenant.read)
    assert got.json()["result"] == snap(T0)  # the first one stays


def test_ndjson_ingest(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    acc = tenant.account_id
    lines = [snap(T0 + i, f"2026.1.{i}") for i in range(3)]
    body = b"\n".join(httpx.Request("POST", "/", json=line).content for line in lines) + b"\n"
    response = http.post(
        snapshots_path(acc, connector_id),
        content=body,
        headers={**tenant.write, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"accepted": 3, "duplicates": 0}
    latest = http.get(f"{snapshots_path(acc, connector_id)}/latest", headers=tenant.read).json()[
        "result"
    ]
    assert latest["items"] == lines[::-1]


def _with(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**base, **fields}


def _without(base: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != name}


def _bad_batches() -> list[tuple[Any, str]]:
    ok = snap(T0)
    full = full_snapshot(T0)
    disk, iface = full["disks"][0], full["interfaces"][0]
    cases: list[tuple[Any, str]] = [
        ([ok, 7], "snapshots[1]"),
        ([_with(ok, t=-1)], "snapshots[0].t"),
        ([_with(ok, t="1700000000")], "snapshots[0].t"),
        ([_with(ok, t=True)], "snapshots[0].t"),
        ([_with(ok, v=2026)], "snapshots[0].v"),
        ([_with(ok, cpu_count="4")], "snapshots[0].cpu_count"),
        ([_with(ok, cpu_count=False)], "snapshots[0].cpu_count"),
        ([_with(ok, platform=3)], "snapshots[0].platform"),
        ([_with(ok, snmp_ip_forwarding_enabled=1)], "snapshots[0].snmp_ip_forwarding_enabled"),
        ([_with(ok, disks=disk)], "snapshots[0].disks"),
        ([_with(ok, disks=[disk, "sdb"])], "snapshots[0].disks[1]"),
        ([_with(ok, disks=[disk, _without(disk, "name")])], "snapshots[0].disks[1].name"),
        ([_with(ok, disks=[_with(disk, reads="7")])], "snapshots[0].disks[0].reads"),
        (
            [_with(ok, interfaces=[_with(iface, ip_addresses=[{"interface_name": "eth0"}])])],
            "snapshots[0].interfaces[0].ip_addresses[0].ip_address",
        ),
        (
            [_with(ok, mounts=[_with(full["mounts"][0], is_read_only="no")])],
            "snapshots[0].mounts[0].is_read_only",
        ),
        ([_with(ok, bonds=[{"name": "bond0"}])], "snapshots[0].bonds[0].status"),
        (
            [_with(ok, dhcp_leases=[_with(full["dhcp_leases"][0], expiry_time="soon")])],
            "snapshots[0].dhcp_leases[0].expiry_time",
        ),
        (
            [_with(ok, netdevs=[_without(full["netdevs"][0], "recv_bytes")])],
            "snapshots[0].netdevs[0].recv_bytes",
        ),
        (
            [_with(ok, routes=[_without(full["routes"][0], "metric")])],
            "snapshots[0].routes[0].metric",
        ),
        ([_with(ok, thermals=[{"current_celcius": 40}])], "snapshots[0].thermals[0].label"),
        (
            [_with(ok, tunnels=[_without(full["tunnels"][0], "tunnel_id")])],
            "snapshots[0].tunnels[0].tunnel_id",
        ),
    ]
    for name in ("t", "v", *(k for k in ok if k.startswith("count_"))):
        cases.append(([ok, _without(snap(T0 + 1), name)], f"snapshots[1].{name}"))
    return cases


BAD_BATCHES = _bad_batches()


@pytest.mark.parametrize(("body", "where"), BAD_BATCHES, ids=[w for _, w in BAD_BATCHES])
def test_bad_snapshots_name_index_and_field(
    http: httpx.Client, tenant: Tenant, connector_id: str, body: Any, where: str
) -> None:
    acc = tenant.account_id
    response = ingest(http, tenant.write, acc, connector_id, body)
    assert_error(response, 400, 1003, where)
    message = response.json()["errors"][0]["message"]
    assert re.search(re.escape(where) + r"(?![.\[\w])", message), message  # exactly that field
    listed = http.get(
        snapshots_path(acc, connector_id), params={"from": 0, "to": 2e9}, headers=tenant.read
    ).json()["result"]
    assert listed["count"] == 0  # a rejected batch stores nothing


# -- heartbeat -------------------------------------------------------------------------


def test_ingest_moves_heartbeat_and_last_seen_version(
    sdk: SDK, tenant: Tenant, device: Device, http: httpx.Client
) -> None:
    acc = tenant.account_id
    slack = timedelta(seconds=2)

    async def scenario(cf: Any) -> None:
        async def state() -> tuple[datetime | None, str | None]:
            got = await connectors(cf).get(device.id, account_id=acc)
            beat = None if got.last_heartbeat is None else rfc3339(got.last_heartbeat)
            return beat, got.last_seen_version

        assert await state() == (None, None)
        before = datetime.now(UTC)
        newer_first = [snap(T0 + 10, "2026.2.0"), snap(T0 + 20, "2026.3.0"), snap(T0, "2026.1.0")]
        record(http, device.auth, acc, device.id, newer_first)
        first, version = await state()
        assert version == "2026.3.0"  # the newest by t, not the last in the batch
        assert first is not None and before - slack <= first <= datetime.now(UTC) + slack

        record(http, tenant.write, acc, device.id, [snap(T0 + 15, "2026.2.5")])  # replayed
        second, version = await state()
        assert version == "2026.3.0" and second is not None and second >= first

        response = http.post(
            events_path(acc, device.id),
            json=[{**event("Init", T0 + 30, 0), "v": "2026.4.0"}],
            headers=device.auth,
        )
        assert response.status_code == 200, response.text
        third, version = await state()
        assert version == "2026.4.0" and third is not None and third >= second

        record(http, device.auth, acc, device.id, [snap(T0 + 25, "2026.3.5")])  # older again
        assert (await state())[1] == "2026.4.0"

    sdk.run(scenario, tenant.read_token)


# -- interrupts ------------------------------------------------------------------------


def test_interrupt_lifecycle_create_check_in_and_history(
    sdk: SDK, tenant: Tenant, device: Device
) -> None:
    acc = tenant.account_id

    async def scenario() -> None:
        async with (
            sdk.client(tenant.write_token) as op,
            sdk.client(tenant.read_token) as reader,
            sdk.client(device.key) as dev,
        ):
            assert (await interrupts(op).list(device.id, account_id=acc)).result == []
            assert (await interrupts(dev).list(device.id, account_id=acc)).result == []

            made = await interrupts(op).create(device.id, account_id=acc, reboot={})
            assert type(made) is InterruptCreateResponse
            first = check_interrupt(made, "reboot", False, triggered=False)
            for client in (op, reader, op):  # an operator's list changes nothing
                (pending,) = (await interrupts(client).list(device.id, account_id=acc)).result
                assert type(pending) is InterruptListResponse
                assert check_interrupt(pending, "reboot", False, triggered=False) == first

            (picked,) = (await interrupts(dev).list(device.id, account_id=acc)).result
            picked_wire = check_interrupt(picked, "reboot", False, triggered=True)
            assert picked_wire["id"] == first["id"]
            assert picked.submitted_at == made.submitted_at
            assert (await interrupts(dev).list(device.id, account_id=acc)).result == []
            (seen,) = (await interrupts(reader).list(device.id, account_id=acc)).result
            assert check_interrupt(seen, "reboot", False, triggered=True) == picked_wire

            history = [picked_wire]
            for action, purge in (("restart", True), ("shutdown", False)):
                made = await interrupts(op).create(
                    device.id, account_id=acc, **{action: {"purge": purge}}
                )
                wire = check_interrupt(made, action, purge, triggered=False)
                assert wire["id"] not in {h["id"] for h in history}
                (picked,) = (await interrupts(dev).list(device.id, account_id=acc)).result
                history.append(check_interrupt(picked, action, purge, triggered=True))
                assert history[-1]["id"] == wire["id"]

            listed = (await interrupts(op).list(device.id, account_id=acc)).result
            assert [i.to_dict() for i in listed] == history  # oldest first, all kept
            submitted = [rfc3339(i.submitted_at) for i in listed]
            assert submitted == sorted(submitted)
            assert (await interrupts(dev).list(device.id, account_id=acc)).result == []

    sdk.run_many(scenario)


def test_pending_interrupt_conflict_is_not_retried(
    sdk: SDK, tenant: Tenant, device: Device
) -> None:
    """409 carries ``x-should-retry: false``: with the SDK's default retries (2) the
    conflicting create is sent exactly once."""
    acc = tenant.account_id
    sent: list[tuple[str, str]] = []

    async def scenario() -> None:
        async with sdk.client(
            tenant.write_token,
            max_retries=2,
            on_request=lambda r: sent.append((r.method, r.url.path)),
        ) as op:
            await interrupts(op).create(device.id, account_id=acc, shutdown={"purge": True})
            for body in ({"restart": {}}, {"shutdown": {"purge": True}}, {"reboot": {}}):
                with raises(ConflictError, 1409) as info:
                    await interrupts(op).create(device.id, account_id=acc, **body)
                assert info.value.response.headers["x-should-retry"] == "false"
            path = f"/client/v4/accounts/{acc}/magic/connectors/{device.id}/interrupts"
            assert sent == [("POST", path)] * 4
            (pending,) = (await interrupts(op).list(device.id, account_id=acc)).result
            check_interrupt(pending, "shutdown", True, triggered=False)
        async with sdk.client(device.key) as dev:  # picked up: a new one may be created
            assert len((await interrupts(dev).list(device.id, account_id=acc)).result) == 1
        async with sdk.client(tenant.write_token) as op:
            again = await interrupts(op).create(device.id, account_id=acc, restart={})
            check_interrupt(again, "restart", False, triggered=False)

    sdk.run_many(scenario)


def test_invalid_interrupts_are_rejected(
    sdk: SDK, tenant: Tenant, other_tenant: Tenant, device: Device
) -> None:
    acc = tenant.account_id
    bad: list[dict[str, Any]] = [
        {},  # the SDK sends {}
        {"reboot": {}, "restart": {}},
        {"reboot": {"purge": True}, "shutdown": {"purge": True}},
        {"extra_body": {"halt": {}}},
        {"reboot": {}, "extra_body": {"force": True}},
        {"reboot": {"purge": True, "now": True}},
        {"restart": {"purge": "yes"}},
        {"shutdown": None},
    ]

    async def scenario() -> None:
        async with sdk.client(tenant.write_token) as op:
            for body in bad:
                with raises(BadRequestError, 1003):
                    await interrupts(op).create(device.id, account_id=acc, **body)
            for cid in (UNKNOWN_ID, "no-such-connector"):
                with raises(NotFoundError, 1404):
                    await interrupts(op).create(cid, account_id=acc, reboot={})
                with raises(NotFoundError, 1404):
                    await interrupts(op).list(cid, account_id=acc)
        async with sdk.client(tenant.read_token) as reader:
            with raises(PermissionDeniedError, 10000):
                await interrupts(reader).create(device.id, account_id=acc, reboot={})
            assert (await interrupts(reader).list(device.id, account_id=acc)).result == []
        async with sdk.client(other_tenant.write_token) as stranger:
            with raises(PermissionDeniedError, 10000):
                await interrupts(stranger).create(device.id, account_id=acc, reboot={})
            with raises(PermissionDeniedError, 10000):
                await interrupts(stranger).list(device.id, account_id=acc)
            with raises(NotFoundError, 1404):  # its own account, this tenant's connector id
                await interrupts(stranger).list(device.id, account_id=other_tenant.account_id)
        async with sdk.client(device.key) as dev:  # nothing was created
            assert (await interrupts(dev).list(device.id, account_id=acc)).result == []

    sdk.run_many(scenario)


# -- the connector's own license key ---------------------------------------------------


def test_license_key_may_only_check_in_and_ingest(
    sdk: SDK,
    tenant: Tenant,
    other_tenant: Tenant,
    device: Device,
    http: httpx.Client,
) -> None:
    acc = tenant.account_id
    sibling = make_device(http, tenant)
    stranger = make_device(http, other_tenant)
    record(http, device.auth, acc, device.id, [snap(T0)])
    response = http.post(
        events_path(acc, device.id), json=[event("Init", T0, 0)], headers=device.auth
    )
    assert response.status_code == 200, response.text
    for account, cid in ((acc, sibling.id), (other_tenant.account_id, stranger.id)):
        assert_error(ingest(http, device.auth, account, cid, [snap(T0)]), 403, 10000)
        response = http.post(
            events_path(account, cid), json=[event("Init", T0, 0)], headers=device.auth
        )
        assert_error(response, 403, 10000)

    async def scenario() -> None:
        async with sdk.client(device.key) as dev:
            assert (await interrupts(dev).list(device.id, account_id=acc)).result == []
            own = {"account_id": acc, "connector_id": device.id}
            events = dev.magic_transit.connectors.events
            denied = [
                lambda: connectors(dev).get(device.id, account_id=acc),
                lambda: connectors(dev).list(account_id=acc),
                lambda: connectors(dev).edit(device.id, account_id=acc, notes="x"),
                lambda: connectors(dev).delete(device.id, account_id=acc),
                lambda: connectors(dev).create(account_id=acc, device={"serial_number": "S"}),
                lambda: events.list(device.id, account_id=acc, from_=0, to=2e9),
                lambda: events.get(0, event_t=T0, **own),
                lambda: events.latest.list(device.id, account_id=acc),
                lambda: snapshots(dev).list(device.id, account_id=acc, from_=0, to=2e9),
                lambda: snapshots(dev).get(T0, **own),
                lambda: snapshots(dev).latest.list(device.id, account_id=acc),
                lambda: interrupts(dev).create(device.id, account_id=acc, reboot={}),
                lambda: interrupts(dev).list(sibling.id, account_id=acc),
                lambda: interrupts(dev).create(sibling.id, account_id=acc, reboot={}),
                lambda: snapshots(dev).latest.list(sibling.id, account_id=acc),
                lambda: connectors(dev).get(sibling.id, account_id=acc),
                lambda: interrupts(dev).list(stranger.id, account_id=other_tenant.account_id),
                lambda: interrupts(dev).list(UNKNOWN_ID, account_id=acc),
            ]
            for call in denied:
                with raises(PermissionDeniedError, 10000):
                    await call()
        async with sdk.client(tenant.read_token) as reader:  # what the device recorded
            got = await snapshots(reader).get(T0, account_id=acc, connector_id=device.id)
            assert got.to_dict() == snap(T0)
            event_got = await reader.magic_transit.connectors.events.get(
                0, account_id=acc, connector_id=device.id, event_t=T0
            )
            assert event_got.e.k == "Init"
            assert (await interrupts(reader).list(device.id, account_id=acc)).result == []
            for cid in (sibling.id, device.id):
                got_connector = await connectors(reader).get(cid, account_id=acc)
                assert got_connector.notes == ""

    sdk.run_many(scenario)


def test_new_license_key_or_delete_revokes_the_old_key(
    sdk: SDK, tenant: Tenant, device: Device, http: httpx.Client
) -> None:
    acc = tenant.account_id

    async def scenario() -> None:
        async with sdk.client(device.key) as old:
            assert (await interrupts(old).list(device.id, account_id=acc)).result == []
            record(http, device.auth, acc, device.id, [snap(T0)])
            async with sdk.client(tenant.write_token) as op:
                rekeyed = await connectors(op).edit(
                    device.id, account_id=acc, provision_license=True
                )
            new = Device(device.id, rekeyed.license_key)
            assert LICENSE_SHAPE.fullmatch(new.key) and new.key != device.key
            with raises(PermissionDeniedError, 9109):
                await interrupts(old).list(device.id, account_id=acc)
            assert_error(ingest(http, device.auth, acc, device.id, [snap(T0 + 1)]), 403, 9109)

        async with sdk.client(new.key) as dev:
            assert (await interrupts(dev).list(device.id, account_id=acc)).result == []
            record(http, new.auth, acc, device.id, [snap(T0 + 1)])
            async with sdk.client(tenant.write_token) as op:
                gone = await connectors(op).delete(device.id, account_id=acc)
                assert gone.id == device.id and gone.license_key is None
            with raises(PermissionDeniedError, 9109):
                await interrupts(dev).list(device.id, account_id=acc)
            assert_error(ingest(http, new.auth, acc, device.id, [snap(T0 + 2)]), 403, 9109)

        unknown = Device(device.id, UNKNOWN_LICENSE)
        async with sdk.client(unknown.key) as nobody:
            with raises(PermissionDeniedError, 9109):
                await interrupts(nobody).list(device.id, account_id=acc)
            with raises(PermissionDeniedError, 9109):
                await snapshots(nobody).latest.list(device.id, account_id=acc)
        assert_error(ingest(http, unknown.auth, acc, device.id, [snap(T0)]), 403, 9109)

    sdk.run_many(scenario)
