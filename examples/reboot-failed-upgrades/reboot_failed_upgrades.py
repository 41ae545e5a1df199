"""Reboot every connector whose last upgrade failed (an example "user project": the code
under test, written against the official Cloudflare SDK only).

A connector's last upgrade failed when its newest ``FinishUpgrade*`` event is a
``FinishUpgradeFailure``. A connector that already has a reboot pending (an interrupt not
yet triggered) is left alone: Cloudflare allows one pending interrupt per connector.
"""

from __future__ import annotations

import asyncio

from cloudflare import AsyncCloudflare, Cloudflare

OUTCOMES = ("FinishUpgradeSuccess", "FinishUpgradeFailure")
#: the events' time range: everything (epoch seconds)
EVER = (0.0, 4_102_444_800.0)  # 2100-01-01


def _newest_failed(outcomes: list[tuple[float, float, str]]) -> bool:
    return bool(outcomes) and max(outcomes)[2] == "FinishUpgradeFailure"


def last_upgrade_failed(cf: Cloudflare, account_id: str, connector_id: str) -> bool:
    outcomes: list[tuple[float, float, str]] = []
    for kind in OUTCOMES:
        cursor = None
        while True:
            page = cf.magic_transit.connectors.events.list(
                connector_id, account_id=account_id, from_=EVER[0], to=EVER[1], k=kind,
                limit=1000, **({"cursor": cursor} if cursor else {}),
            )  # fmt: skip
            outcomes += [(item.t, item.n, item.k) for item in page.items]
            cursor = page.cursor
            if not cursor:
                break
    return _newest_failed(outcomes)


def reboot_failed_upgrades(cf: Cloudflare, account_id: str) -> list[str]:
    """Request a reboot of every connector whose last upgrade failed; returns their ids."""
    rebooted = []
    for connector in cf.magic_transit.connectors.list(account_id=account_id):
        if not last_upgrade_failed(cf, account_id, connector.id):
            continue
        interrupts = cf.magic_transit.connectors.interrupts.list(
            connector.id, account_id=account_id
        )
        if any(i.triggered_at is None for i in interrupts):
            continue  # one is pending already
        cf.magic_transit.connectors.interrupts.create(
            connector.id, account_id=account_id, reboot={}
        )
        rebooted.append(connector.id)
    return rebooted


async def _last_upgrade_failed_async(cf: AsyncCloudflare, account_id: str, cid: str) -> bool:
    outcomes: list[tuple[float, float, str]] = []
    for kind in OUTCOMES:
        cursor = None
        while True:
            page = await cf.magic_transit.connectors.events.list(
                cid, account_id=account_id, from_=EVER[0], to=EVER[1], k=kind,
                limit=1000, **({"cursor": cursor} if cursor else {}),
            )  # fmt: skip
            outcomes += [(item.t, item.n, item.k) for item in page.items]
            cursor = page.cursor
            if not cursor:
                break
    return _newest_failed(outcomes)


async def reboot_failed_upgrades_async(cf: AsyncCloudflare, account_id: str) -> list[str]:
    """The same with the SDK's async client, the connectors checked concurrently."""
    connectors = [c async for c in cf.magic_transit.connectors.list(account_id=account_id)]
    failed = await asyncio.gather(
        *(_last_upgrade_failed_async(cf, account_id, c.id) for c in connectors)
    )
    rebooted = []
    for connector, did_fail in zip(connectors, failed, strict=True):
        if not did_fail:
            continue
        interrupts = cf.magic_transit.connectors.interrupts.list(
            connector.id, account_id=account_id
        )
        if any([i.triggered_at is None async for i in interrupts]):
            continue
        await cf.magic_transit.connectors.interrupts.create(
            connector.id, account_id=account_id, reboot={}
        )
        rebooted.append(connector.id)
    return rebooted
