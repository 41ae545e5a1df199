"""Interrupts, and a connector's own credential (its license key)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import Tenant, assert_error


def connectors(tenant: Tenant) -> str:
    return f"/accounts/{tenant.account_id}/magic/connectors"


@pytest.fixture
def device(http: httpx.Client, tenant: Tenant) -> tuple[str, dict[str, str]]:
    created = http.post(
        connectors(tenant), json={"device": {"provision_license": True}}, headers=tenant.write
    ).json()["result"]
    return created["id"], {"Authorization": f"Bearer {created['license_key']}"}


def test_interrupts_one_pending_and_pick_up(
    http: httpx.Client, tenant: Tenant, device: tuple[str, dict[str, str]]
) -> None:
    cid, key = device
    url = f"{connectors(tenant)}/{cid}/interrupts"
    first = http.post(url, json={"reboot": {"purge": True}}, headers=tenant.write)
    assert first.status_code == 200
    result = first.json()["result"]
    assert result["reboot"] == {"purge": True} and "triggered_at" not in result
    second = http.post(url, json={"restart": {}}, headers=tenant.write)
    assert_error(second, 409, 1409, "pending")
    assert second.headers["x-should-retry"] == "false"
    assert http.get(url, headers=tenant.read).json()["result"] == [result]  # operator: no change
    picked = http.get(url, headers=key).json()["result"]
    assert len(picked) == 1 and picked[0]["id"] == result["id"] and picked[0]["triggered_at"]
    assert http.get(url, headers=key).json()["result"] == []  # nothing pending any more
    restart = http.post(url, json={"restart": {}}, headers=tenant.write).json()["result"]
    assert restart["restart"] == {"purge": False}
    history = http.get(url, headers=tenant.read).json()["result"]
    assert [i["id"] for i in history] == [result["id"], restart["id"]]
    assert history[0]["triggered_at"] == picked[0]["triggered_at"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "exactly one"),
        ({"reboot": {}, "restart": {}}, "exactly one"),
        ({"explode": {}}, "explode: unknown"),
        ({"reboot": {"purge": 1}}, "reboot.purge"),
        ({"reboot": {"force": True}}, "reboot.force"),
        ({"reboot": True}, "reboot"),
        ([], "object"),
    ],
)
def test_interrupt_validation(
    http: httpx.Client, tenant: Tenant, connector_id: str, body: Any, where: str
) -> None:
    response = http.post(
        f"{connectors(tenant)}/{connector_id}/interrupts", json=body, headers=tenant.write
    )
    assert_error(response, 400, 1003, where)


def test_license_key_only_for_its_own_device_routes(
    http: httpx.Client, tenant: Tenant, device: tuple[str, dict[str, str]], connector_id: str
) -> None:
    cid, key = device
    own = f"{connectors(tenant)}/{cid}"
    events = [{"e": {"k": "Init"}, "t": 1700000000, "n": 0, "v": "2026.1.0"}]
    assert http.post(f"{own}/telemetry/events", json=events, headers=key).status_code == 200
    snap = {
        "t": 1700000000,
        "v": "2026.1.0",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 0,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
    }
    assert http.post(f"{own}/telemetry/snapshots", json=[snap], headers=key).status_code == 200
    other = f"{connectors(tenant)}/{connector_id}"
    forbidden = [
        ("GET", own, None),
        ("GET", connectors(tenant), None),
        ("PATCH", own, {}),
        ("DELETE", own, None),
        ("GET", f"{own}/telemetry/events?from=0&to=inf", None),
        ("GET", f"{own}/telemetry/events/latest", None),
        ("GET", f"{own}/telemetry/events/1700000000.0", None),
        ("GET", f"{own}/telemetry/snapshots/latest", None),
        ("POST", f"{own}/interrupts", {"reboot": {}}),
        ("POST", f"{other}/telemetry/events", events),
        ("GET", f"{other}/interrupts", None),
    ]
    for method, url, body in forbidden:
        assert_error(http.request(method, url, json=body, headers=key), 403, 10000)
    connector = http.get(own, headers=tenant.read).json()["result"]
    assert connector["last_seen_version"] == "2026.1.0" and connector["last_heartbeat"]


def test_reprovision_and_delete_revoke_the_key(
    http: httpx.Client, tenant: Tenant, device: tuple[str, dict[str, str]]
) -> None:
    cid, key = device
    url = f"{connectors(tenant)}/{cid}/interrupts"
    assert http.get(url, headers=key).status_code == 200
    new = http.put(
        f"{connectors(tenant)}/{cid}", json={"provision_license": True}, headers=tenant.write
    ).json()["result"]["license_key"]
    assert_error(http.get(url, headers=key), 403, 9109)
    new_key = {"Authorization": f"Bearer {new}"}
    assert http.get(url, headers=new_key).status_code == 200
    http.delete(f"{connectors(tenant)}/{cid}", headers=tenant.write)
    assert_error(http.get(url, headers=new_key), 403, 9109)
    assert_error(http.get(url, headers={"Authorization": "Bearer ctel_lic_" + "x" * 43}), 403, 9109)


def test_version_never_goes_back(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    url = f"{connectors(tenant)}/{connector_id}"
    new = [{"e": {"k": "Init"}, "t": 2000, "n": 0, "v": "2.0"}]
    old = [{"e": {"k": "Init"}, "t": 1000, "n": 0, "v": "1.0"}]
    http.post(f"{url}/telemetry/events", json=new, headers=tenant.write)
    http.post(f"{url}/telemetry/events", json=old, headers=tenant.write)
    assert http.get(url, headers=tenant.read).json()["result"]["last_seen_version"] == "2.0"
