"""Snapshots through the front door: ingest (ours), List / Latest / Get (Cloudflare's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import Tenant, assert_error

T0 = 1_700_000_000


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


def path(tenant: Tenant, cid: str) -> str:
    return f"/accounts/{tenant.account_id}/magic/connectors/{cid}/telemetry/snapshots"


def post(http: httpx.Client, tenant: Tenant, cid: str, items: Any) -> httpx.Response:
    return http.post(path(tenant, cid), json=items, headers=tenant.write)


def test_ingest_get_latest_list(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    items = [
        snap(
            T0 + 60 * i,
            cpu_count=2,
            disks=[
                {
                    "name": "vda",
                    "major": 252,
                    "minor": 0,
                    "reads": 1,
                    "merged": 0,
                    "sectors_read": 8,
                    "time_reading_ms": 1,
                    "writes": 2,
                    "writes_merged": 0,
                    "sectors_written": 16,
                    "time_writing_ms": 3,
                    "in_progress": 0,
                    "time_in_progress_ms": 4,
                    "weighted_time_in_progress_ms": 5,
                }
            ],
            custom_field={"kept": True},
        )
        for i in range(15)
    ]
    response = post(http, tenant, connector_id, items)
    assert response.json()["result"] == {"accepted": 15, "duplicates": 0}
    got = http.get(f"{path(tenant, connector_id)}/{T0 + 60}.0", headers=tenant.read)
    assert got.json()["result"] == items[1]
    for form in (f"{T0 + 60}", f"{T0 + 60}.0", "1.70000006e+09"):
        assert (
            http.get(f"{path(tenant, connector_id)}/{form}", headers=tenant.read).status_code == 200
        )
    latest = http.get(f"{path(tenant, connector_id)}/latest", headers=tenant.read).json()
    assert latest["result"]["count"] == 10
    assert [s["t"] for s in latest["result"]["items"]] == [T0 + 60 * i for i in range(14, 4, -1)]
    listed = http.get(
        path(tenant, connector_id),
        params={"from": T0, "to": T0 + 600, "limit": 4},
        headers=tenant.read,
    ).json()["result"]
    assert [i["t"] for i in listed["items"]] == [T0, T0 + 60, T0 + 120, T0 + 180]
    seen: list[float] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"from": T0, "to": T0 + 600, "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = http.get(path(tenant, connector_id), params=params, headers=tenant.read).json()[
            "result"
        ]
        assert page["count"] == len(page["items"])
        seen += [i["t"] for i in page["items"]]
        cursor = page.get("cursor")
        if not cursor:
            break
    assert seen == [T0 + 60 * i for i in range(11)]  # inclusive range, each once


def test_idempotent_by_t_and_conflicts(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    assert post(http, tenant, connector_id, [snap(T0), snap(T0 + 1)]).json()["result"] == {
        "accepted": 2,
        "duplicates": 0,
    }
    assert post(http, tenant, connector_id, [snap(T0 * 1.0), snap(T0 + 2)]).json()["result"] == {
        "accepted": 1,
        "duplicates": 1,
    }
    clash = post(http, tenant, connector_id, [snap(T0 + 3), snap(T0 + 1, cpu_count=4)])
    assert_error(clash, 409, 1409, "snapshots[1]")
    assert clash.headers["x-should-retry"] == "false"
    listed = http.get(
        path(tenant, connector_id), params={"from": 0, "to": "inf"}, headers=tenant.read
    ).json()["result"]
    assert [i["t"] for i in listed["items"]] == [T0, T0 + 1, T0 + 2]


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ({"t": 1}, "snapshots[0].count_reclaim_failures: required"),
        (snap(1, v=3), "snapshots[0].v: expected a string"),
        (snap(-1), "snapshots[0].t"),
        (snap(1, cpu_count="2"), "snapshots[0].cpu_count: expected a number"),
        (snap(1, snmp_ip_forwarding_enabled=1), "snapshots[0].snmp_ip_forwarding_enabled"),
        (snap(1, disks={}), "snapshots[0].disks: expected an array"),
        (snap(1, disks=[{"name": "x"}]), "snapshots[0].disks[0].in_progress: required"),
        (
            snap(1, interfaces=[{"name": "eth0", "operstate": "UP", "ip_addresses": [{}]}]),
            "snapshots[0].interfaces[0].ip_addresses[0].interface_name: required",
        ),
        (snap(1, a=5), "snapshots[0].a"),
        (7, "snapshots[0]: expected an object"),
    ],
)
def test_bad_snapshots_name_index_and_field(
    http: httpx.Client, tenant: Tenant, connector_id: str, item: Any, where: str
) -> None:
    response = post(http, tenant, connector_id, [snap(0), item])
    assert response.status_code == 400
    message = response.json()["errors"][0]["message"]
    assert where.replace("[0]", "[1]", 1) in message, message
    assert (
        http.get(
            path(tenant, connector_id), params={"from": 0, "to": "inf"}, headers=tenant.read
        ).json()["result"]["count"]
        == 0
    )


def test_missing_and_unknown(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    assert_error(
        http.get(f"{path(tenant, connector_id)}/5", headers=tenant.read),
        404,
        1404,
        "snapshot 5 not found",
    )
    assert_error(http.get(f"{path(tenant, 'nope')}/latest", headers=tenant.read), 404, 1404)
    assert_error(http.get(f"{path(tenant, connector_id)}/abc", headers=tenant.read), 400, 7003)
    empty = http.get(f"{path(tenant, connector_id)}/latest", headers=tenant.read).json()
    assert empty["result"] == {"count": 0, "items": []}
