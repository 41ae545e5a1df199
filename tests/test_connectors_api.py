"""Connectors as Cloudflare serves them: every field, validation, PUT vs PATCH."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import Tenant, assert_error

DEFAULTS = {
    "activated": False,
    "interrupt_window_days_of_week": [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ],
    "interrupt_window_duration_hours": 4,
    "interrupt_window_embargo_dates": [],
    "interrupt_window_hour_of_day": 0,
    "notes": "",
    "timezone": "UTC",
}
FULL = {
    "activated": True,
    "interrupt_window_days_of_week": ["Monday", "Friday"],
    "interrupt_window_duration_hours": 2.5,
    "interrupt_window_embargo_dates": ["2024-12-25"],
    "interrupt_window_hour_of_day": 3,
    "notes": "hi",
    "timezone": "Europe/Lisbon",
}


def base(tenant: Tenant) -> str:
    return f"/accounts/{tenant.account_id}/magic/connectors"


def create(http: httpx.Client, tenant: Tenant, **body: Any) -> httpx.Response:
    return http.post(base(tenant), json=body, headers=tenant.write)


def test_create_defaults_and_device_kinds(http: httpx.Client, tenant: Tenant) -> None:
    managed = create(http, tenant, device={"serial_number": "SN1"}).json()["result"]
    assert {k: managed[k] for k in DEFAULTS} == DEFAULTS
    assert managed["device"]["serial_number"] == "SN1" and managed["device"]["type"] == "MANAGED"
    assert len(managed["id"]) == 32 and managed["last_updated"].endswith("Z")
    assert "license_key" not in managed and "last_heartbeat" not in managed
    by_id = create(http, tenant, device={"id": "dev-1"}).json()["result"]
    assert by_id["device"] == {"id": "dev-1", "type": "MANAGED"}
    licensed = create(http, tenant, device={"provision_license": True}, **FULL).json()["result"]
    assert licensed["device"]["type"] == "LICENSED" and len(licensed["license_key"]) > 30
    assert {k: licensed[k] for k in FULL} == FULL
    fetched = http.get(f"{base(tenant)}/{licensed['id']}", headers=tenant.read).json()["result"]
    assert "license_key" not in fetched  # shown once
    listed = http.get(base(tenant), headers=tenant.read).json()["result"]
    assert [c["id"] for c in listed] == [managed["id"], by_id["id"], licensed["id"]]
    only = http.get(base(tenant), params={"device_type": "LICENSED"}, headers=tenant.read)
    assert [c["id"] for c in only.json()["result"]] == [licensed["id"]]
    assert_error(
        http.get(base(tenant), params={"device_type": "x"}, headers=tenant.read),
        400,
        1003,
        "device_type",
    )


def test_same_device_twice_conflicts(http: httpx.Client, tenant: Tenant) -> None:
    create(http, tenant, device={"serial_number": "SN-X"})
    again = create(http, tenant, device={"serial_number": "SN-X"})
    assert_error(again, 409, 1409, "SN-X")
    assert again.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "device: required"),
        ({"device": {}}, "exactly one"),
        ({"device": {"id": "a", "serial_number": "b"}}, "exactly one"),
        ({"device": {"provision_license": False}}, "provision_license"),
        ({"device": {"colour": "red"}}, "device.colour"),
        ({"device": {"id": ""}}, "device.id"),
        ({"device": "abc"}, "device"),
        ({"device": {"id": "a"}, "interrupt_window_duration_hours": 0.5}, "between 1 and 24"),
        ({"device": {"id": "a"}, "interrupt_window_duration_hours": 25}, "between 1 and 24"),
        ({"device": {"id": "a"}, "interrupt_window_hour_of_day": 24}, "less than 24"),
        ({"device": {"id": "a"}, "interrupt_window_hour_of_day": "3"}, "expected a number"),
        ({"device": {"id": "a"}, "interrupt_window_days_of_week": ["Funday"]}, "[0]"),
        ({"device": {"id": "a"}, "interrupt_window_days_of_week": ["Monday", "Monday"]}, "twice"),
        (
            {"device": {"id": "a"}, "interrupt_window_embargo_dates": ["2024-13-01"]},
            "calendar date",
        ),
        ({"device": {"id": "a"}, "interrupt_window_embargo_dates": ["2024-1-01"]}, "YYYY-MM-DD"),
        (
            {"device": {"id": "a"}, "interrupt_window_embargo_dates": ["2024-01-01"] * 101},
            "at most 100",
        ),
        ({"device": {"id": "a"}, "timezone": "Mars/Olympus"}, "timezone"),
        ({"device": {"id": "a"}, "activated": "yes"}, "activated"),
        ({"device": {"id": "a"}, "notes": None}, "notes"),
        ({"device": {"id": "a"}, "foo": 1}, "foo: unknown field"),
    ],
)
def test_create_validation(http: httpx.Client, tenant: Tenant, body: Any, where: str) -> None:
    response = http.post(base(tenant), json=body, headers=tenant.write)
    assert_error(response, 400, 1003)
    assert where in response.json()["errors"][0]["message"], response.text
    assert http.get(base(tenant), headers=tenant.read).json()["result"] == []


def test_put_replaces_patch_merges(http: httpx.Client, tenant: Tenant) -> None:
    cid = create(http, tenant, device={"id": "d"}, **FULL).json()["result"]["id"]
    patched = http.patch(f"{base(tenant)}/{cid}", json={"notes": "n"}, headers=tenant.write)
    assert patched.json()["result"] == {**patched.json()["result"], **FULL, "notes": "n"}
    assert http.patch(f"{base(tenant)}/{cid}", json={}, headers=tenant.write).status_code == 200
    put = http.put(f"{base(tenant)}/{cid}", json={"notes": "only"}, headers=tenant.write)
    result = put.json()["result"]
    assert {k: result[k] for k in DEFAULTS} == {**DEFAULTS, "notes": "only"}
    assert result["device"] == {"id": "d", "type": "MANAGED"}  # device is never replaced
    assert_error(
        http.put(f"{base(tenant)}/{cid}", json={"device": {"id": "x"}}, headers=tenant.write),
        400,
        1003,
        "device: unknown field",
    )
    assert_error(http.patch(f"{base(tenant)}/{cid}", json=[], headers=tenant.write), 400, 1003)
    assert_error(
        http.patch(
            f"{base(tenant)}/{cid}",
            content=b"{",
            headers={**tenant.write, "Content-Type": "application/json"},
        ),
        400,
        1001,
        "not valid JSON",
    )


def test_provision_license_regenerates_key(http: httpx.Client, tenant: Tenant) -> None:
    first = create(http, tenant, device={"provision_license": True}).json()["result"]
    again = http.patch(
        f"{base(tenant)}/{first['id']}", json={"provision_license": True}, headers=tenant.write
    ).json()["result"]
    assert again["license_key"] != first["license_key"]
    plain = http.patch(
        f"{base(tenant)}/{first['id']}", json={"provision_license": False}, headers=tenant.write
    ).json()["result"]
    assert "license_key" not in plain


def test_delete_returns_the_object_and_its_events_go(http: httpx.Client, tenant: Tenant) -> None:
    created = create(http, tenant, device={"serial_number": "gone"}).json()["result"]
    cid = created["id"]
    http.post(
        f"{base(tenant)}/{cid}/telemetry/events",
        json=[{"e": {"k": "Init"}, "t": 1}],
        headers=tenant.write,
    )
    deleted = http.request(
        "DELETE",
        f"{base(tenant)}/{cid}",
        headers={**tenant.write, "Content-Type": "application/json"},
    )
    assert deleted.status_code == 200 and deleted.json()["result"]["id"] == cid
    assert deleted.json()["result"]["device"] == created["device"]
    assert_error(http.get(f"{base(tenant)}/{cid}", headers=tenant.read), 404, 1404)
    assert_error(http.delete(f"{base(tenant)}/{cid}", headers=tenant.write), 404, 1404)
    assert_error(
        http.get(f"{base(tenant)}/{cid}/telemetry/events/1.0", headers=tenant.read),
        404,
        1404,
        "connector",
    )


def test_connector_ids_with_reserved_characters(http: httpx.Client, tenant: Tenant) -> None:
    # The SDK percent-encodes "/ ? # % space" and leaves ":@+;=" literal.
    for raw in ("a%2Fb%20c%3Fd%23e%25f", "x:y@z+w;="):
        got = http.get(f"{base(tenant)}/{raw}", headers=tenant.read)
        assert_error(got, 404, 1404, "not found")
    # A decoded "/" inside an id: the most specific route wins (connector "a/b").
    got = http.get(f"{base(tenant)}/a%2Fb/telemetry/events?from=0&to=1", headers=tenant.read)
    assert_error(got, 404, 1404, "connector a/b not found")
    assert_error(
        http.get(base(tenant).replace(tenant.account_id, "a" * 33), headers=tenant.read),
        400,
        7003,
        "could not route",
    )


def test_unknown_routes_and_methods_answer_in_the_envelope(
    http: httpx.Client, tenant: Tenant
) -> None:
    assert_error(http.get("/nope", headers=tenant.read), 400, 7000, "No route for that URI")
    assert_error(
        http.get(f"{base(tenant)}/x/telemetry/bogus/a/b/c", headers=tenant.read), 404, 1404
    )
    response = http.post(f"{base(tenant)}/x/telemetry/events/latest", headers=tenant.write)
    assert_error(response, 405, 10405, "not allowed")
    assert response.headers["allow"] == "GET"
    # outside the API prefix, an unknown path is 404, as on any web server
    outside = httpx.get(str(http.base_url).replace("/client/v4", "/elsewhere"))
    assert_error(outside, 404, 7000, "No route for that URI")
