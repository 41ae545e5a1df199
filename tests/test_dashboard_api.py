"""The endpoints the dashboard added (issue 9), through the front door on both stores:
List Accounts (sign-in), the fleet summary and snapshot series (rates across resets)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from cloudflare import Cloudflare

from connector_telemetry.service import credentials
from connector_telemetry.store.base import Store
from support import LiveServer, Tenant, assert_error, events_path, start_server, stop_server
from support.tenants import downgrade_and_migrate

T0 = 1_700_000_000
XSS = "<img src=x onerror=alert(1)>"


def snap(t: float, *, busy: float, idle: float, rx: float, **extra: Any) -> dict[str, Any]:
    """A snapshot with CPU counters (ms), one interface's receive counter and mounts."""
    return {
        "t": t,
        "v": "2026.11.2",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 0,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
        "cpu_time_user_ms": busy,
        "cpu_time_idle_ms": idle,
        "load_average_1m": 0.5,
        "memory_total_bytes": 1000,
        "memory_available_bytes": 250,
        "mounts": [
            _mount("/", 100, 0, read_only=True),
            _mount("/var", 1000, 400),
            _mount("/data", 1000, 100),
        ],
        "netdevs": [_netdev(XSS, rx)],
        "tunnels": [_tunnel("a", "healthy"), _tunnel("b", "degraded"), _tunnel("c", "down")],
        **extra,
    }


def _mount(point: str, total: int, available: int, read_only: bool = False) -> dict[str, Any]:
    return {
        "file_system": "/dev/x",
        "kind": "EXT4",
        "mount_point": point,
        "name": point,
        "total_bytes": total,
        "available_bytes": available,
        "is_read_only": read_only,
    }


def _netdev(name: str, rx: float) -> dict[str, Any]:
    names = (
        "recv_compressed recv_drop recv_errs recv_fifo recv_frame recv_multicast recv_packets "
        "sent_bytes sent_carrier sent_colls sent_compressed sent_drop sent_errs sent_fifo "
        "sent_packets"
    )
    counters = dict.fromkeys(names.split(" "), 0)
    return {"name": name, "recv_bytes": rx, **counters}


def _tunnel(tid: str, state: str) -> dict[str, Any]:
    values = {"healthy": 1, "degraded": 2, "down": 3}
    return {
        "tunnel_id": tid,
        "interface_name": f"xfrm-{tid}",
        "health_state": state,
        "health_value": values[state],
    }


def new_connector(http: httpx.Client, tenant: Tenant, notes: str = "site") -> str:
    r = http.post(
        f"/accounts/{tenant.account_id}/magic/connectors",
        json={"device": {"provision_license": True}, "notes": notes},
        headers=tenant.write,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["result"]["id"])


def post_snapshots(http: httpx.Client, tenant: Tenant, cid: str, items: list[Any]) -> None:
    r = http.post(
        f"/accounts/{tenant.account_id}/magic/connectors/{cid}/telemetry/snapshots",
        json=items,
        headers=tenant.write,
    )
    assert r.status_code == 200, r.text


def post_events(http: httpx.Client, tenant: Tenant, cid: str, items: list[Any]) -> None:
    r = http.post(events_path(tenant.account_id, cid), json=items, headers=tenant.write)
    assert r.status_code == 200, r.text


def fleet(http: httpx.Client, tenant: Tenant, **params: Any) -> dict[str, Any]:
    r = http.get(
        f"/accounts/{tenant.account_id}/magic/connectors/telemetry/summary",
        params=params,
        headers=tenant.read,
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]  # type: ignore[no-any-return]


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in result["connectors"]}


# -- List Accounts --------------------------------------------------------------------


def test_list_accounts_per_credential(
    http: httpx.Client, tenant: Tenant, other_tenant: Tenant, store: Store
) -> None:
    def listed(headers: dict[str, str]) -> list[dict[str, Any]]:
        r = http.get("/accounts", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True and body["result_info"]["count"] == len(body["result"])
        return body["result"]  # type: ignore[no-any-return]

    [write] = listed(tenant.write)
    assert write["id"] == tenant.account_id and write["type"] == "standard"
    assert write["permissions"] == {"magic_wan": {"read": True, "write": True}}
    [read] = listed(tenant.read)
    assert read["permissions"]["magic_wan"] == {"read": True, "write": False}
    # A user key lists every account it may use; a token only its own.
    key = credentials.create_user(
        store,
        f"two-{tenant.account_id[:8]}@example.com",
        [tenant.account_id, other_tenant.account_id],
    )
    both = listed({"X-Auth-Email": f"two-{tenant.account_id[:8]}@example.com", "X-Auth-Key": key})
    assert sorted(a["id"] for a in both) == sorted([tenant.account_id, other_tenant.account_id])
    assert all(a["permissions"]["magic_wan"]["write"] for a in both)

    assert_error(http.get("/accounts"), 400, 9106)
    assert_error(http.get("/accounts", headers={"Authorization": "Bearer " + "A" * 40}), 403, 9109)
    license_key = http.post(
        f"/accounts/{tenant.account_id}/magic/connectors",
        json={"device": {"provision_license": True}},
        headers=tenant.write,
    ).json()["result"]["license_key"]
    assert_error(
        http.get("/accounts", headers={"Authorization": f"Bearer {license_key}"}), 403, 10000
    )


def test_list_accounts_with_the_sdk(live: LiveServer, tenant: Tenant) -> None:
    cf = Cloudflare(
        api_token=tenant.read_token, base_url=live.api, _strict_response_validation=True
    )
    accounts = list(cf.accounts.list())
    assert [a.id for a in accounts] == [tenant.account_id]


# -- fleet summary --------------------------------------------------------------------


def test_fleet_summary_health_and_failures(http: httpx.Client, tenant: Tenant) -> None:
    quiet = new_connector(http, tenant, "quiet")
    busy = new_connector(http, tenant, XSS)
    # Two snapshots 60 s apart: 30 s of 60 s of CPU busy (50 %).
    post_snapshots(
        http,
        tenant,
        busy,
        [snap(T0, busy=1000, idle=1000, rx=0), snap(T0 + 60, busy=31_000, idle=31_000, rx=6000)],
    )
    post_events(
        http,
        tenant,
        busy,
        [
            {"e": {"k": "FinishUpgradeFailure", "detail": XSS}, "t": T0 + 10, "n": 0},
            {"e": {"k": "Init"}, "t": T0 + 20, "n": 0},
        ],
    )
    # An older failure arriving later does not replace the newest one.
    post_events(http, tenant, busy, [{"e": {"k": "HaError"}, "t": T0 + 5, "n": 0}])

    result = fleet(http, tenant)
    assert result["as_of"] > T0
    found = by_id(result)
    assert found[quiet]["snapshot"] is None and found[quiet]["failure"] is None
    b = found[busy]
    assert b["notes"] == XSS and b["device"]["type"] == "LICENSED"
    assert "last_heartbeat" in b and b["last_seen_version"] == "2026.11.2"
    health = b["snapshot"]
    assert health["t"] == T0 + 60 and health["interval"] == 60
    assert health["cpu"] == 0.5
    assert health["memory"] == 0.75
    assert health["disk"] == {"mount": "/data", "used": 0.9}  # the read-only / is not "full"
    assert health["tunnels"] == {"up": 2, "degraded": 1, "total": 3}
    assert b["failure"] == {"t": T0 + 10, "n": 0, "k": "FinishUpgradeFailure"}

    # A reboot between the next two snapshots: counters start again from zero, so the CPU
    # use is the one since boot (10 of 40 s), never a negative rate.
    post_snapshots(http, tenant, busy, [snap(T0 + 120, busy=10_000, idle=30_000, rx=10)])
    health = by_id(fleet(http, tenant))[busy]["snapshot"]
    assert health["t"] == T0 + 120 and health["cpu"] == 0.25
    # An older snapshot replayed later changes neither record.
    post_snapshots(http, tenant, busy, [snap(T0 + 30, busy=5000, idle=5000, rx=0)])
    assert by_id(fleet(http, tenant))[busy]["snapshot"] == health


def test_fleet_summary_changed_since(http: httpx.Client, tenant: Tenant) -> None:
    old = new_connector(http, tenant, "old")
    first = fleet(http, tenant)
    assert old in by_id(first)
    # Nothing changed since a moment well past the overlap: nothing listed.
    assert fleet(http, tenant, changed_since=time.time() + 60)["connectors"] == []
    assert fleet(http, tenant, changed_since="1e300")["connectors"] == []
    assert fleet(http, tenant, changed_since="inf")["connectors"] == []
    fresh = new_connector(http, tenant, "fresh")
    post_snapshots(http, tenant, old, [snap(T0, busy=1, idle=1, rx=1)])
    changed = by_id(fleet(http, tenant, changed_since=first["as_of"]))
    assert {old, fresh} <= set(changed)
    assert_error(
        http.get(
            f"/accounts/{tenant.account_id}/magic/connectors/telemetry/summary",
            params={"changed_since": "soon"},
            headers=tenant.read,
        ),
        400,
        1002,
        "changed_since",
    )


def test_fleet_summary_for_snapshots_from_before_schema_4(
    http: httpx.Client, tenant: Tenant, store: Store
) -> None:
    """Connectors whose snapshots predate the health records (what migration 4 marks with
    health_t = -1) get them computed at read time until they report again."""
    cid = new_connector(http, tenant)
    post_snapshots(
        http, tenant, cid, [snap(T0, busy=0, idle=0, rx=0), snap(T0 + 10, busy=5, idle=15, rx=0)]
    )
    expected = by_id(fleet(http, tenant))[cid]["snapshot"]
    from connector_telemetry.store.postgres import PostgresStore

    sql = (
        "UPDATE connectors SET health_t = -1, health = NULL, health_prev_t = NULL, "
        "health_prev = NULL WHERE account_id = {0} AND id = {0}"
    )
    if isinstance(store, PostgresStore):
        with store._write() as conn:
            conn.execute(sql.format("%s"), (tenant.account_id, cid))
    else:
        with store._write() as conn:  # type: ignore[attr-defined]
            conn.execute(sql.format("?"), (tenant.account_id, cid))
    assert by_id(fleet(http, tenant))[cid]["snapshot"] == expected


# -- snapshot series --------------------------------------------------------------------


def series(
    http: httpx.Client, tenant: Tenant, cid: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    r = http.get(
        f"/accounts/{tenant.account_id}/magic/connectors/{cid}/telemetry/snapshots/series",
        params=params,
        headers=tenant.read,
    )
    return r.status_code, r.json()


def test_series_rates_across_a_counter_reset(http: httpx.Client, tenant: Tenant) -> None:
    cid = new_connector(http, tenant)
    items = [
        snap(T0, busy=1000, idle=1000, rx=1000),
        snap(T0 + 10, busy=6000, idle=6000, rx=11_000),  # 50 % busy, 1000 B/s
        # rebooted: every counter starts again (2 s busy of 8 s since boot; 400 B since)
        snap(T0 + 20, busy=2000, idle=6000, rx=400),
        snap(T0 + 30, busy=4000, idle=14_000, rx=2400),  # 20 %, 200 B/s
    ]
    items[2]["thermals"] = [{"label": XSS, "current_celcius": 51.5}]
    post_snapshots(http, tenant, cid, items)
    status, body = series(http, tenant, cid, **{"from": T0, "to": T0 + 30})
    assert status == 200, body
    s = body["result"]
    assert s["count"] == 4 and s["t"] == [T0, T0 + 10, T0 + 20, T0 + 30]
    assert s["cpu"] == [None, 0.5, 0.25, 0.2]
    [iface] = s["interfaces"]
    assert iface["name"] == XSS  # device strings come back as data, verbatim
    assert iface["rx"] == [None, 1000.0, 40.0, 200.0]
    assert all(v is None or v >= 0 for v in iface["rx"])
    assert s["memory"] == [0.75] * 4 and s["load"]["1m"] == [0.5] * 4
    assert [m["name"] for m in s["mounts"]] == ["/var", "/data"]
    assert s["tunnels"] == {"up": [2] * 4, "degraded": [1] * 4, "total": [3] * 4}
    # A sensor seen only in the third snapshot: null elsewhere.
    assert s["thermals"] == [{"label": XSS, "celsius": [None, None, 51.5, None]}]


def test_series_pages_keep_rates(http: httpx.Client, tenant: Tenant) -> None:
    cid = new_connector(http, tenant)
    post_snapshots(
        http,
        tenant,
        cid,
        [snap(T0 + 10 * i, busy=1000 * i, idle=3000 * i, rx=100 * i) for i in range(7)],
    )
    rng = {"from": T0, "to": T0 + 60}
    status, body = series(http, tenant, cid, limit=3, **rng)
    first = body["result"]
    assert first["count"] == 3 and "cursor" in first
    status, body = series(http, tenant, cid, limit=3, cursor=first["cursor"], **rng)
    second = body["result"]
    # The page after a cursor starts with a rate: the previous snapshot is its baseline.
    assert second["t"] == [T0 + 30, T0 + 40, T0 + 50] and second["cpu"] == [0.25] * 3
    assert second["interfaces"][0]["rx"] == [10.0] * 3
    status, body = series(http, tenant, cid, limit=3, cursor=second["cursor"], **rng)
    assert body["result"]["t"] == [T0 + 60] and "cursor" not in body["result"]
    # The cursor is bound to its range; bad input names the parameter.
    assert series(http, tenant, cid, cursor=first["cursor"], **{"from": 0, "to": 1})[0] == 400
    status, body = series(http, tenant, cid, **{"from": T0})
    assert status == 400 and "to" in body["errors"][0]["message"]
    status, body = series(http, tenant, "f" * 32, **rng)
    assert status == 404 and body["errors"][0]["code"] == 1404


def test_migration_4_on_existing_data(fresh: tuple[str, Tenant], tmp_path: Path) -> None:
    """Schema 3 with telemetry, migrated to 4: the newest failure is backfilled and the
    health records computed at read time, the same as ingest would have kept them."""
    db, tenant = fresh
    server = start_server(db, log_path=tmp_path / "ctel.log")
    try:
        with httpx.Client(base_url=server.api, timeout=30) as http:
            cid = new_connector(http, tenant)
            post_snapshots(
                http,
                tenant,
                cid,
                [snap(T0, busy=0, idle=0, rx=0), snap(T0 + 10, busy=5, idle=15, rx=0)],
            )
            post_events(
                http,
                tenant,
                cid,
                [
                    {"e": {"k": "BlessSlotFailure"}, "t": T0 + 1, "n": 0},
                    {"e": {"k": "HaError"}, "t": T0 + 2, "n": 3},
                    {"e": {"k": "Init"}, "t": T0 + 9, "n": 0},
                ],
            )
            expected = by_id(fleet(http, tenant))[cid]
    finally:
        stop_server(server)
    columns = ("health_t", "health", "health_prev_t", "health_prev", "failure_t", "failure_n",
               "failure_k")  # fmt: skip
    drops = [f"ALTER TABLE connectors DROP COLUMN {column}" for column in columns]
    downgrade_and_migrate(db, 3, drops)
    server = start_server(db, log_path=tmp_path / "ctel.log")
    try:
        with httpx.Client(base_url=server.api, timeout=30) as http:
            migrated = by_id(fleet(http, tenant))[cid]
    finally:
        stop_server(server)
    assert migrated["failure"] == {"t": T0 + 2, "n": 3, "k": "HaError"}
    assert migrated["snapshot"] == expected["snapshot"] and migrated["snapshot"]["cpu"] == 0.25
