"""Tests of the example, using only the connector-telemetry pytest plugin's fixtures: ``ctel``
is a real ``ctel serve --test-mode``, reset before each test. No conftest needed."""

from __future__ import annotations

import asyncio
from typing import Any

import cloudflare
import pytest
from cloudflare import Cloudflare
from reboot_failed_upgrades import reboot_failed_upgrades, reboot_failed_upgrades_async

from connector_telemetry.testing import CtelServer

T = 1_700_000_000


def connector(cf: Cloudflare, ctel: CtelServer, serial: str, *kinds: str) -> str:
    """A connector whose history is ``kinds``, one event a minute (``ctel``'s own event
    ingest, through the SDK's generic ``post``)."""
    created = cf.magic_transit.connectors.create(
        account_id=ctel.account_id, device={"serial_number": serial}, activated=True
    )
    events: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        e: dict[str, Any] = {"k": kind}
        if kind == "StartUpgrade":
            e["url"] = "https://example.com/bundle.tar"
        events.append({"e": e, "t": T + 60 * i, "n": 0, "v": "2026.11.0"})
    path = f"/accounts/{ctel.account_id}/magic/connectors/{created.id}/telemetry/events"
    cf.post(path, cast_to=object, body=events)
    return created.id


def fleet(cf: Cloudflare, ctel: CtelServer) -> tuple[str, str]:
    """Four connectors, two of which need a reboot: returns those two."""
    failed = connector(cf, ctel, "A", "Init", "StartUpgrade", "FinishUpgradeFailure")
    connector(cf, ctel, "B", "Init", "StartUpgrade", "FinishUpgradeSuccess")
    # failed once, then upgraded fine: no reboot
    connector(cf, ctel, "C", "StartUpgrade", "FinishUpgradeFailure", "StartUpgrade",
              "FinishUpgradeSuccess")  # fmt: skip
    # upgraded fine, then failed: reboot
    again = connector(cf, ctel, "D", "StartUpgrade", "FinishUpgradeSuccess", "StartUpgrade",
                      "FinishUpgradeFailure", "Reconcile")  # fmt: skip
    return failed, again


def reboots(cf: Cloudflare, ctel: CtelServer, connector_id: str) -> list[Any]:
    interrupts = cf.magic_transit.connectors.interrupts.list(
        connector_id, account_id=ctel.account_id
    )
    return [i for i in interrupts if i.reboot is not None]


def test_reboots_exactly_the_connectors_whose_last_upgrade_failed(ctel: CtelServer) -> None:
    cf = ctel.client()
    expected = fleet(cf, ctel)

    assert sorted(reboot_failed_upgrades(cf, ctel.account_id)) == sorted(expected)
    for connector_id in expected:
        assert len(reboots(cf, ctel, connector_id)) == 1
    # what the code sent: one interrupt per failed connector, nothing else written
    sent = ctel.requests(route="interrupts.create")
    assert sorted(r.path.split("/")[-2] for r in sent) == sorted(expected)
    assert all(r.status == 200 and r.method == "POST" for r in sent)


def test_a_pending_reboot_is_not_requested_twice(ctel: CtelServer) -> None:
    cf = ctel.client()
    fleet(cf, ctel)
    assert len(reboot_failed_upgrades(cf, ctel.account_id)) == 2
    ctel.clear_requests()

    assert reboot_failed_upgrades(cf, ctel.account_id) == []
    assert ctel.requests(route="interrupts.create") == []


def test_each_test_starts_empty(ctel: CtelServer) -> None:
    assert list(ctel.client().magic_transit.connectors.list(account_id=ctel.account_id)) == []


def test_cloudflare_rate_limiting_is_survived_by_the_sdk_retrying(ctel: CtelServer) -> None:
    cf = ctel.client()  # the SDK retries a 429 twice by default, after its retry-after
    expected = fleet(cf, ctel)
    ctel.faults.add("connectors.list", status=429, count=2)

    assert sorted(reboot_failed_upgrades(cf, ctel.account_id)) == sorted(expected)
    # the journal shows the two 429s (Cloudflare's code 971) and the retry that worked
    assert [r.status for r in ctel.requests(route="connectors.list")] == [429, 429, 200]


def test_a_server_error_beyond_the_retries_reaches_the_caller(ctel: CtelServer) -> None:
    cf = ctel.client(max_retries=1)
    fleet(cf, ctel)
    ctel.faults.add("interrupts.create", status=503, count=None)  # every one, until cleared

    with pytest.raises(cloudflare.InternalServerError):
        reboot_failed_upgrades(cf, ctel.account_id)
    assert [r.status for r in ctel.requests(route="interrupts.create")] == [503, 503]


def test_the_async_client(ctel: CtelServer) -> None:
    expected = fleet(ctel.client(), ctel)

    async def run() -> list[str]:
        async with ctel.async_client() as cf:
            return await reboot_failed_upgrades_async(cf, ctel.account_id)

    assert sorted(asyncio.run(run())) == sorted(expected)
    assert len(ctel.requests(route="interrupts.create", status=200)) == 2
