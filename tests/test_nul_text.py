"""NUL in free text is refused the same way on both stores (PostgreSQL text cannot hold it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import Tenant, assert_error, events_path


@pytest.mark.parametrize(
    ("suffix", "body", "where"),
    [
        ("", {"device": {"serial_number": "a\x00b"}}, "device.serial_number"),
        ("", {"device": {"id": "x"}, "notes": "a\x00b"}, "notes"),
        ("", {"device": {"id": "x"}, "timezone": "UTC\x00"}, "timezone"),
        ("/C/telemetry/events", [{"e": {"k": "Init"}, "t": 1, "v": "1\x00"}], "events[0].v"),
        (
            "/C/telemetry/snapshots",
            [
                {
                    "t": 1,
                    "v": "\x00",
                    "count_reclaim_failures": 0,
                    "count_reclaimed_paths": 0,
                    "count_record_failed": 0,
                    "count_transmit_failures": 0,
                }
            ],
            "snapshots[0].v",
        ),
    ],
)
def test_nul_is_a_clear_400(
    http: httpx.Client, tenant: Tenant, connector_id: str, suffix: str, body: Any, where: str
) -> None:
    path = f"/accounts/{tenant.account_id}/magic/connectors" + suffix.replace(
        "/C", "/" + connector_id
    )
    assert_error(http.post(path, json=body, headers=tenant.write), 400, 1003, where)


def test_nul_in_payload_is_kept(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    """Inside ``e`` anything JSON can say is kept as sent, NUL included."""
    path = events_path(tenant.account_id, connector_id)
    sent = [{"e": {"k": "Init", "note": "a\x00b"}, "t": 9, "n": 0}]
    assert http.post(path, json=sent, headers=tenant.write).status_code == 200
    assert http.get(f"{path}/9.0", headers=tenant.read).json()["result"]["e"]["note"] == "a\x00b"
