"""Talking to the API as a client does: paths, connectors, and the error envelope."""

from __future__ import annotations

from typing import Any

import httpx

from support.tenants import Tenant


def connectors_path(account_id: str) -> str:
    return f"/accounts/{account_id}/magic/connectors"


def events_path(account_id: str, connector_id: str) -> str:
    return f"{connectors_path(account_id)}/{connector_id}/telemetry/events"


def snapshots_path(account_id: str, connector_id: str) -> str:
    return f"{connectors_path(account_id)}/{connector_id}/telemetry/snapshots"


def create_connector(
    api: str, tenant: Tenant, device: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A new connector of the tenant (by default LICENSED: the result carries its
    ``license_key``), through the API at ``api`` (``.../client/v4``)."""
    response = httpx.post(
        api.rstrip("/") + connectors_path(tenant.account_id),
        json={"device": device or {"provision_license": True}},
        headers=tenant.write,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def assert_error(response: httpx.Response, status: int, code: int, text: str = "") -> None:
    """Cloudflare's error envelope, exactly, with the expected status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"result", "success", "errors", "messages"}, body
    assert body["result"] is None and body["success"] is False and body["messages"] == []
    assert body["errors"][0]["code"] == code, body
    assert isinstance(body["errors"][0]["message"], str) and body["errors"][0]["message"]
    assert text.lower() in body["errors"][0]["message"].lower(), body
