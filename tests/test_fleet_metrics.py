"""The fleet's telemetry for Prometheus at ``/metrics/accounts/{account_id}`` (issue 12,
sentence 2), on a live server filled by ``ctel simulate``: a connector's series equal its latest
snapshot under node_exporter's names and units; its events and failures by kind and pending
interrupts equal what the API lists; the tenant rules of the reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store
from support import (
    LiveServer,
    Tenant,
    assert_error,
    create_connector,
    fresh_db,
    start_server,
    stop_server,
)
from support.server import simulate_fleet
from support.tenants import downgrade_and_migrate, make_tenant


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, Tenant, Tenant]]:
    folder = tmp_path_factory.mktemp("fleet-metrics")
    db, tenant = fresh_db(folder)
    from connector_telemetry.settings import Settings
    from connector_telemetry.store import open_store

    store = open_store(Settings(db=db))
    other = make_tenant(store)
    store.close()
    server = start_server(db)
    try:
        simulate_fleet(server, tenant.account_id, tenant.write_token)
        yield server, tenant, other
    finally:
        stop_server(server)


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_connector_is_its_latest_snapshot(fleet: tuple[LiveServer, Tenant, Tenant]) -> None:
    server, tenant, _ = fleet
    api = server.api + f"/accounts/{tenant.account_id}/magic/connectors"
    connectors = httpx.get(api, headers=tenant.read).json()["result"]
    assert len(connectors) == 2
    scrape = httpx.get(server.url + f"/metrics/accounts/{tenant.account_id}", headers=tenant.read)
    assert scrape.status_code == 200, scrape.text
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = series(scrape.text)
    for c in connectors:
        me = (("instance", c["id"]),)
        snap: dict[str, Any] = httpx.get(
            f"{api}/{c['id']}/telemetry/snapshots/latest", headers=tenant.read
        ).json()["result"]["items"][0]
        assert found[("node_memory_MemAvailable_bytes", me)] == snap["memory_available_bytes"]
        assert found[("node_memory_MemTotal_bytes", me)] == snap["memory_total_bytes"]
        assert found[("node_load1", me)] == snap["load_average_1m"]
        assert found[("ctel_connector_last_snapshot_timestamp_seconds", me)] == snap["t"]
        idle = (("cpu", "all"), ("instance", c["id"]), ("mode", "idle"))
        assert found[("node_cpu_seconds_total", idle)] == pytest.approx(
            snap["cpu_time_idle_ms"] / 1000
        )
        dev = snap["netdevs"][0]
        key = (("device", dev["name"]), ("instance", c["id"]))
        assert found[("node_network_receive_bytes_total", key)] == dev["recv_bytes"]
        mount = snap["mounts"][0]
        labels = (
            ("device", mount["name"]),
            ("fstype", mount["file_system"].lower()),
            ("instance", c["id"]),
            ("mountpoint", mount["mount_point"]),
        )
        assert found[("node_filesystem_size_bytes", labels)] == mount["total_bytes"]
        info = [k for k in found if k[0] == "ctel_connector_info" and ("instance", c["id"]) in k[1]]
        assert len(info) == 1 and ("connector_id", c["id"]) in info[0][1]


def _event_kinds(api: str, tenant: Tenant, connector_id: str) -> dict[str, int]:
    """The connector's events counted by kind, through List Events (every page)."""
    counts: dict[str, int] = {}
    params: dict[str, Any] = {"from": 0, "to": 1e12, "limit": 1000}
    while True:
        page = httpx.get(f"{api}/{connector_id}/telemetry/events", params=params,
                         headers=tenant.read).json()["result"]  # fmt: skip
        for item in page["items"]:
            counts[item["k"]] = counts.get(item["k"], 0) + 1
        if not page.get("cursor"):
            return counts
        params["cursor"] = page["cursor"]


def test_events_failures_and_interrupts(fleet: tuple[LiveServer, Tenant, Tenant]) -> None:
    from connector_telemetry.models import FAILURE_KINDS

    server, tenant, _ = fleet
    api = server.api + f"/accounts/{tenant.account_id}/magic/connectors"
    ids = sorted(c["id"] for c in httpx.get(api, headers=tenant.read).json()["result"])
    failed, _calm = ids
    sent = httpx.post(f"{api}/{failed}/telemetry/events", headers=tenant.write,
                      json=[{"e": {"k": "FinishUpgradeFailure"}, "t": 1.5e9}])  # fmt: skip
    assert sent.status_code == 200, sent.text
    made = httpx.post(f"{api}/{failed}/interrupts", headers=tenant.write, json={"reboot": {}})
    assert made.status_code == 200, made.text

    scrape = httpx.get(server.url + f"/metrics/accounts/{tenant.account_id}", headers=tenant.read)
    found = series(scrape.text)
    for cid in ids:
        kinds = _event_kinds(api, tenant, cid)
        emitted = {
            dict(labels)["kind"]: value
            for (name, labels), value in found.items()
            if name == "ctel_connector_events_total" and ("instance", cid) in labels
        }
        assert emitted == kinds and sum(kinds.values()) > 5
        for kind in FAILURE_KINDS:  # every failure kind, 0 included
            key = ("ctel_connector_failures_total", (("instance", cid), ("kind", kind)))
            assert found[key] == kinds.get(kind, 0)
        pending = found[("ctel_connector_interrupts_pending", (("instance", cid),))]
        assert pending == (1 if cid == failed else 0)
    upgrade = (("instance", failed), ("kind", "FinishUpgradeFailure"))
    assert found[("ctel_connector_failures_total", upgrade)] >= 1
    assert found[("ctel_connector_events_total", upgrade)] >= 1
    assert "# TYPE ctel_connector_failures_total counter" in scrape.text


def test_tenant_rules(fleet: tuple[LiveServer, Tenant, Tenant]) -> None:
    server, tenant, other = fleet
    url = server.url + f"/metrics/accounts/{tenant.account_id}"
    assert httpx.get(url, headers=tenant.write).status_code == 200
    assert httpx.get(url, headers=tenant.legacy).status_code == 200
    assert_error(httpx.get(url, headers=other.read), 403, 10000)
    assert_error(httpx.get(url), 400, 9106)
    elsewhere = httpx.get(server.url + "/metrics/accounts/nosuchaccount", headers=other.read)
    assert_error(elsewhere, 403, 10000)
    empty = httpx.get(server.url + f"/metrics/accounts/{other.account_id}", headers=other.read)
    assert empty.status_code == 200 and "node_" not in empty.text


def test_renders_a_valid_exposition(tmp_path: Path) -> None:
    from connector_telemetry.models.connector import Connector
    from connector_telemetry.service.fleet_metrics import Families, connector_samples

    out = Families()
    c = Connector(account_id="a", id='we"ird\\id', device_id="d")
    connector_samples(out, c, {"t": 5, "load_average_1m": float("nan"), "netdevs": []})
    text = out.render().decode()
    parsed = series(text)
    assert (
        "ctel_connector_last_snapshot_timestamp_seconds",
        (("instance", 'we"ird\\id'),),
    ) in parsed
    assert "node_load1" not in text  # not finite: left out


def test_activity_on_each_store(live: LiveServer, tenant: Tenant, http: httpx.Client) -> None:
    """The account-wide reads (one query each) on SQLite and PostgreSQL alike."""
    a = create_connector(live.api, tenant)["id"]
    b = create_connector(live.api, tenant)["id"]
    path = f"/accounts/{tenant.account_id}/magic/connectors"
    batch = [{"e": {"k": "HaError", "reason": "x"}, "t": 10}, {"e": {"k": "Init"}, "t": 11},
             {"e": {"k": "HaError"}, "t": 12}]  # fmt: skip
    assert http.post(f"{path}/{a}/telemetry/events", json=batch, headers=tenant.write).is_success
    assert http.post(f"{path}/{b}/interrupts", json={"shutdown": {}}, headers=tenant.write)
    found = series(
        httpx.get(live.url + f"/metrics/accounts/{tenant.account_id}", headers=tenant.read).text
    )
    assert found[("ctel_connector_events_total", (("instance", a), ("kind", "HaError")))] == 2
    assert found[("ctel_connector_events_total", (("instance", a), ("kind", "Init")))] == 1
    assert found[("ctel_connector_failures_total", (("instance", a), ("kind", "HaError")))] == 2
    assert found[("ctel_connector_failures_total", (("instance", b), ("kind", "HaError")))] == 0
    assert not [
        k for k in found if k[0] == "ctel_connector_events_total" and ("instance", b) in k[1]
    ]
    assert found[("ctel_connector_interrupts_pending", (("instance", a),))] == 0
    assert found[("ctel_connector_interrupts_pending", (("instance", b),))] == 1


def test_counts_are_kept_at_ingest(fresh: tuple[str, Tenant], tmp_path: Path) -> None:
    """The counts are kept at ingest (schema 5): duplicates are not counted, whole or part
    of a batch, on either store; a purge does not lower them (counters stay monotonic);
    a deleted connector's go with it. (A database of its own: the purge is store-wide.)"""
    db, tenant = fresh
    live = start_server(db, log_path=tmp_path / "ctel.log")
    store = open_store(Settings(db=db))
    try:
        with httpx.Client(base_url=live.api, timeout=30) as http:
            _counts_are_kept(live, tenant, http, store)
    finally:
        store.close()
        stop_server(live)


def _counts_are_kept(live: LiveServer, tenant: Tenant, http: httpx.Client, store: Store) -> None:
    a = create_connector(live.api, tenant)["id"]
    events = f"/accounts/{tenant.account_id}/magic/connectors/{a}/telemetry/events"
    scrape = live.url + f"/metrics/accounts/{tenant.account_id}"

    def count(kind: str) -> float | None:
        found = series(httpx.get(scrape, headers=tenant.read).text)
        return found.get(("ctel_connector_events_total", (("instance", a), ("kind", kind))))

    first = [{"e": {"k": "Init"}, "t": 20, "n": 0}, {"e": {"k": "Reconcile"}, "t": 21, "n": 0}]
    assert http.post(events, json=first, headers=tenant.write).is_success
    assert http.post(events, json=first, headers=tenant.write).json()["result"]["duplicates"] == 2
    part = [first[0], {"e": {"k": "Init"}, "t": 22, "n": 0}]  # one stored, one new
    answer = http.post(events, json=part, headers=tenant.write).json()["result"]
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    assert count("Init") == 2 and count("Reconcile") == 1
    # numbered by the server (no n): each one new
    assert http.post(events, json=[{"e": {"k": "Init"}, "t": 22}], headers=tenant.write)
    assert count("Init") == 3
    while store.purge_telemetry(30, 1000):  # every event of ``a`` is older than t=30
        pass
    listed = http.get(events, params={"from": 0, "to": 100}, headers=tenant.read).json()
    assert listed["result"]["items"] == []  # purged
    assert count("Init") == 3 and count("Reconcile") == 1
    connector = f"/accounts/{tenant.account_id}/magic/connectors/{a}"
    assert http.delete(connector, headers=tenant.write).is_success
    assert count("Init") is None


def _counts(live: LiveServer, tenant: Tenant) -> dict[tuple[str, str], float]:
    """``(connector id, kind) -> ctel_connector_events_total`` of the tenant's scrape."""
    text = httpx.get(live.url + f"/metrics/accounts/{tenant.account_id}", headers=tenant.read).text
    return {
        (dict(labels)["instance"], dict(labels)["kind"]): value
        for (metric, labels), value in series(text).items()
        if metric == "ctel_connector_events_total"
    }


def test_migration_5_counts_stored_events(fresh: tuple[str, Tenant], tmp_path: Path) -> None:
    """Schema 4 with events, migrated to 5: each connector's stored events are counted."""
    db, tenant = fresh
    server = start_server(db, log_path=tmp_path / "ctel.log")
    try:
        cid = create_connector(server.api, tenant)["id"]
        path = f"{server.api}/accounts/{tenant.account_id}/magic/connectors/{cid}/telemetry/events"
        batch = [{"e": {"k": "FinishUpgradeFailure"}, "t": 10}, {"e": {"k": "Init"}, "t": 11},
                 {"e": {"k": "Init"}, "t": 12}]  # fmt: skip
        assert httpx.post(path, json=batch, headers=tenant.write).is_success
        before = _counts(server, tenant)
    finally:
        stop_server(server)
    assert before == {(cid, "FinishUpgradeFailure"): 1, (cid, "Init"): 2}
    downgrade_and_migrate(db, 4, [])
    server = start_server(db, log_path=tmp_path / "ctel.log")
    try:
        assert _counts(server, tenant) == before
    finally:
        stop_server(server)


def test_an_import_counts_what_it_brings(
    live: LiveServer, tenant: Tenant, http: httpx.Client, store: Store, tmp_path: Path
) -> None:
    """``ctel import`` counts the events it brings (once: importing again adds nothing)."""
    from connector_telemetry.service.transfer import export_account, import_account
    from connector_telemetry.settings import Settings
    from connector_telemetry.store import open_store

    class Quiet:
        def advance(self, count: int = 1, note: str = "") -> None: ...
        def close(self) -> None: ...

    cid = create_connector(live.api, tenant)["id"]
    path = f"/accounts/{tenant.account_id}/magic/connectors/{cid}/telemetry/events"
    batch = [{"e": {"k": "HaError"}, "t": 1.7e9}, {"e": {"k": "Reconcile"}, "t": 1.7e9 + 1}]
    assert http.post(path, json=batch, headers=tenant.write).is_success
    dump = tmp_path / "export.ndjson"
    with open(dump, "wb") as out:
        export_account(store, tenant.account_id, out, Quiet())
    other = open_store(Settings(db=str(tmp_path / "copy.db")))
    try:
        other.migrate()
        for _ in range(2):  # the second import brings nothing new
            with open(dump, "rb") as stream:
                import_account(other, stream, Quiet())
        counts = other.fleet_activity(tenant.account_id).events
    finally:
        other.close()
    assert sorted(counts) == [(cid, "HaError", 1), (cid, "Reconcile", 1)]
