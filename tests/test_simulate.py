"""``ctel simulate``: generation is deterministic (same seed and start, same bytes, in
any process), the histories are plausible (lifecycle order, versions, counters that
only grow, every Snapshot field of the right type), and sending them through the API
stores exactly what was generated, twice over for two accounts."""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connector_telemetry.service.events import KINDS
from connector_telemetry.service.snapshot_schema import SCHEMA
from connector_telemetry.simulate import (
    ConfigError,
    Progress,
    SimConfig,
    SimConnector,
    SimulateError,
    add_arguments,
    api_base,
    default_start,
    generate_connector,
    generate_fleet,
    run,
    send_fleet,
    simulate,
)
from connector_telemetry.simulate.send import _encode
from connector_telemetry.simulate.snapshots import COUNTERS
from support import LiveServer, Tenant

START = 1_780_000_000.0  # 2026-05-28T20:26:40Z
SMALL = SimConfig(start=START, seed=7, connectors=2, days=1, interval=3600)
WEEK = SimConfig(start=START, seed=3, connectors=3, days=7, interval=600)
_NETDEV_GAUGES = frozenset({"name"})
_DISK_GAUGES = frozenset({"name", "major", "minor", "in_progress"})


def fleet_bytes(fleet: list[SimConnector]) -> bytes:
    out = []
    for sim in fleet:
        out.append(orjson.dumps(sim.create_body))
        out.append(orjson.dumps(sim.events))
        out.append(orjson.dumps(list(sim.snapshots())))
    return b"\n".join(out)


@pytest.fixture(scope="module")
def week() -> list[SimConnector]:
    """A week: enough for upgrades and the reboots after them."""
    return generate_fleet(WEEK)


@pytest.fixture(scope="module")
def week_snapshots(week: list[SimConnector]) -> list[list[dict[str, Any]]]:
    return [list(sim.snapshots()) for sim in week]


# -- determinism ---------------------------------------------------------------------


def test_same_seed_and_start_give_the_same_bytes() -> None:
    first = fleet_bytes(generate_fleet(SMALL))
    assert first == fleet_bytes(generate_fleet(SMALL))
    assert len(first) > 10_000


def test_same_bytes_in_another_process_whatever_its_hash_seed() -> None:
    """No dependence on str hashing, set order or anything else of one process."""
    code = (
        "import hashlib, sys; sys.path.insert(0, 'tests');"
        "from test_simulate import SMALL, fleet_bytes;"
        "from connector_telemetry.simulate import generate_fleet;"
        "print(hashlib.sha256(fleet_bytes(generate_fleet(SMALL))).hexdigest())"
    )
    here = hashlib.sha256(fleet_bytes(generate_fleet(SMALL))).hexdigest()
    root = Path(__file__).resolve().parent.parent
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )
    assert out.stdout.strip() == here


def test_another_seed_or_start_gives_other_data() -> None:
    base = fleet_bytes(generate_fleet(SMALL))
    other_seed = SimConfig(start=START, seed=8, connectors=2, days=1, interval=3600)
    assert fleet_bytes(generate_fleet(other_seed)) != base
    later = SimConfig(start=START + 60, seed=7, connectors=2, days=1, interval=3600)
    assert fleet_bytes(generate_fleet(later)) != base


def test_a_connector_does_not_depend_on_the_fleet_size() -> None:
    bigger = SimConfig(start=START, seed=7, connectors=5, days=1, interval=3600)
    assert fleet_bytes(generate_fleet(bigger)[:2]) == fleet_bytes(generate_fleet(SMALL))
    assert fleet_bytes([generate_connector(SMALL, 1)]) == fleet_bytes(generate_fleet(SMALL)[1:])


def test_identities_are_distinct_and_serials_follow_seed_and_index() -> None:
    fleet = generate_fleet(SimConfig(start=START, seed=12, connectors=30, days=0.1))
    serials = [sim.create_body["device"]["serial_number"] for sim in fleet]
    assert serials[:2] == ["SIM-12-0001", "SIM-12-0002"] and len(set(serials)) == 30
    assert len({sim.identity.site_id for sim in fleet}) == 30
    assert len({sim.create_body["notes"] for sim in fleet}) == 30
    tunnels = [t.tunnel_id for sim in fleet for t in sim.identity.tunnels]
    assert len(set(tunnels)) == len(tunnels)


# -- events --------------------------------------------------------------------------


def test_events_are_complete_ordered_and_in_range(week: list[SimConnector]) -> None:
    end = START + 7 * 86400
    for sim in week:
        events = sim.events
        keys = [(e["t"], e["n"]) for e in events]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert all(START <= e["t"] < end for e in events)
        for before, after in itertools.pairwise(events):
            assert after["n"] == (before["n"] + 1 if after["t"] == before["t"] else 0)
        assert all(set(e) == {"e", "t", "n", "v"} and e["e"]["k"] in KINDS for e in events)
        first = [e["e"]["k"] for e in events[:12]]
        assert first[0] == "Init" and {"StartAttestation", "Reconcile"} <= set(first)
        tunnels = {t.tunnel_id for t in sim.identity.tunnels}
        for e in events:
            kind = e["e"]["k"]
            if kind.startswith("Rekey"):
                assert e["e"]["tunnel_id"] in tunnels
            if kind == "StartUpgrade":
                assert e["e"]["url"].startswith("https://")
        per_tunnel = {t: 0 for t in tunnels}
        for e in events:
            if e["e"]["k"] == "RekeyComplete":
                per_tunnel[e["e"]["tunnel_id"]] += 1
        assert all(count >= 20 for count in per_tunnel.values()), per_tunnel  # ~4 h apart
        kinds = [e["e"]["k"] for e in events]
        assert 5 <= kinds.count("FinishRotateCryptKeySuccess") <= 9  # about daily
        assert 1 <= kinds.count("FinishRotatePkiSuccess") <= 4


def test_upgrades_change_the_version_only_after_success() -> None:
    fleet = generate_fleet(SimConfig(start=START, seed=1, connectors=12, days=30))
    outcomes: dict[str, int] = {"FinishUpgradeSuccess": 0, "FinishUpgradeFailure": 0}
    for sim in fleet:
        events = sim.events
        version = events[0]["v"]
        target = None
        awaiting_reboot = False
        for e in events:
            kind = e["e"]["k"]
            if kind == "StartUpgrade":
                assert target is None and not awaiting_reboot
                target = e["e"]["url"].split("/")[-2]
                assert target != version
            elif kind in outcomes:
                assert target is not None
                outcomes[kind] += 1
                awaiting_reboot = kind == "FinishUpgradeSuccess"
                target = None if not awaiting_reboot else target
            elif kind == "Init" and awaiting_reboot:
                assert e["v"] == target
                version, target, awaiting_reboot = e["v"], None, False
            assert e["v"] == version, (e, version)
        assert target is None and not awaiting_reboot  # nothing left half done
    assert outcomes["FinishUpgradeSuccess"] > 20
    assert 0 < outcomes["FinishUpgradeFailure"] < outcomes["FinishUpgradeSuccess"] / 4


def test_a_reboot_after_an_upgrade_replays_the_start_sequence(week: list[SimConnector]) -> None:
    reboots = 0
    for sim in week:
        kinds = [e["e"]["k"] for e in sim.events]
        for i, kind in enumerate(kinds):
            if kind == "FinishUpgradeSuccess":
                rest = kinds[i : i + 40]
                assert rest.index("Leave") < rest.index("Init") < rest.index("BlessSlotSuccess")
                after = rest[rest.index("Init") :]
                for needed in ("BlessSlotPending", "FinishAttestationSuccess", "Reconcile"):
                    assert needed in after
                reboots += 1
    assert reboots >= 4


def test_ha_transitions_follow_each_other() -> None:
    fleet = generate_fleet(SimConfig(start=START, seed=2, connectors=12, days=14))
    with_ha = [sim for sim in fleet if sim.identity.ha_enabled]
    assert with_ha and len(with_ha) < len(fleet)
    for sim in fleet:
        moves = [e["e"] for e in sim.events if e["e"]["k"] == "HaTransition"]
        if not sim.identity.ha_enabled:
            assert not any(e["e"]["k"].startswith("Ha") for e in sim.events)
            continue
        assert moves[0]["from_state"] == "stopped"
        for before, after in itertools.pairwise(moves):
            assert after["from_state"] == before["to_state"]
    kinds = [e["e"]["k"] for sim in with_ha for e in sim.events]
    assert {"HaInit", "HaTransition", "HaLeave", "HaError"} <= set(kinds)


def test_rare_failures_are_rare_but_present() -> None:
    fleet = generate_fleet(SimConfig(start=START, seed=4, connectors=20, days=30))
    kinds = [e["e"]["k"] for sim in fleet for e in sim.events]
    for failure, success in (
        ("FinishRotateCryptKeyFailure", "FinishRotateCryptKeySuccess"),
        ("FinishAttestationFailure", "FinishAttestationSuccess"),
        ("RekeyReset", "RekeyComplete"),
    ):
        assert 0 < kinds.count(failure) < kinds.count(success) / 10, failure


# -- snapshots -----------------------------------------------------------------------


def check_against_schema(obj: dict[str, Any], model: str, where: str) -> None:
    fields = SCHEMA[model]
    assert set(obj) <= set(fields), f"{where}: unknown {set(obj) - set(fields)}"
    for name, (kind, required) in fields.items():
        if name not in obj:
            assert not required, f"{where}.{name} is required"
            continue
        value = obj[name]
        if isinstance(kind, tuple):
            assert isinstance(value, list), f"{where}.{name}"
            for i, item in enumerate(value):
                check_against_schema(item, kind[1], f"{where}.{name}[{i}]")
        elif kind == "number":
            assert isinstance(value, int | float) and not isinstance(value, bool), where + name
        elif kind == "string":
            assert isinstance(value, str), f"{where}.{name}"
        else:
            assert isinstance(value, bool), f"{where}.{name}"


def test_snapshots_have_every_required_field_and_the_right_types(
    week_snapshots: list[list[dict[str, Any]]],
) -> None:
    seen: set[str] = set()
    for snapshots in week_snapshots:
        for i, snap in enumerate(snapshots):
            check_against_schema(snap, "Snapshot", f"snapshots[{i}]")
            seen |= set(snap)
    arrays = {"disks", "interfaces", "mounts", "netdevs", "routes", "tunnels", "thermals"}
    assert arrays | {"dhcp_leases", "ha_state", "platform", "site_id"} <= seen
    assert len(seen) > 150  # a realistic snapshot, not the bare minimum


def test_snapshots_come_at_the_interval_and_skip_only_reboots(
    week: list[SimConnector], week_snapshots: list[list[dict[str, Any]]]
) -> None:
    for sim, snapshots in zip(week, week_snapshots, strict=True):
        times = [s["t"] for s in snapshots]
        assert all(START <= t < START + 7 * 86400 for t in times)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        step = WEEK.interval
        assert all(
            step - 2 <= gap <= step + 2 or 2 * step - 2 <= gap <= 2 * step + 2 for gap in gaps
        )
        reboots = sum(e["e"]["k"] == "Leave" for e in sim.events)
        assert len(times) >= 7 * 86400 / step - 2 - reboots


def test_counters_never_decrease(week_snapshots: list[list[dict[str, Any]]]) -> None:
    for snapshots in week_snapshots:
        for before, after in itertools.pairwise(snapshots):
            for name in COUNTERS:
                assert after[name] >= before[name], name
            for kind, gauges in (("netdevs", _NETDEV_GAUGES), ("disks", _DISK_GAUGES)):
                old = {d["name"]: d for d in before[kind]}
                for dev in after[kind]:
                    for field, value in dev.items():
                        if field not in gauges:
                            assert value >= old[dev["name"]][field], (kind, field)
        last = snapshots[-1]
        assert last["cpu_time_idle_ms"] > 0 and last["netdevs"][1]["recv_bytes"] > 10**9


def test_reboots_reset_uptime_and_change_version_and_boot_time(
    week: list[SimConnector], week_snapshots: list[list[dict[str, Any]]]
) -> None:
    for sim, snapshots in zip(week, week_snapshots, strict=True):
        inits = [e for e in sim.events if e["e"]["k"] == "Init"]
        boots = {s["system_boot_time_s"] for s in snapshots}
        assert len(boots) == len(inits)
        for before, after in itertools.pairwise(snapshots):
            rebooted = after["system_boot_time_s"] != before["system_boot_time_s"]
            assert (after["uptime_total_ms"] < before["uptime_total_ms"]) == rebooted
            assert (after["v"] != before["v"]) == rebooted  # reboots come from upgrades
            assert after["kernel_btime"] == after["system_boot_time_s"] < after["t"]
        versions = [e["v"] for e in inits]
        assert next(s["v"] for s in snapshots if s["t"] > inits[-1]["t"]) == versions[-1]


def test_gauges_stay_plausible(
    week: list[SimConnector], week_snapshots: list[list[dict[str, Any]]]
) -> None:
    for sim, snapshots in zip(week, week_snapshots, strict=True):
        tunnel_ids = {t.tunnel_id for t in sim.identity.tunnels}
        for snap in snapshots:
            total = snap["memory_total_bytes"]
            assert 0 < snap["memory_free_bytes"] <= snap["memory_available_bytes"] <= total
            assert 0 <= snap["load_average_1m"] <= 2 * snap["cpu_count"]
            for name in ("cpu_pressure_10s", "io_pressure_some_60s", "memory_pressure_full_300s"):
                assert 0 <= snap[name] <= 100
            assert snap["ha_value"] == {"disabled": 0, "active": 1, "standby": 2}.get(
                snap["ha_state"], snap["ha_value"]
            )
            assert {t["tunnel_id"] for t in snap["tunnels"]} == tunnel_ids
            for tunnel in snap["tunnels"]:
                assert tunnel["recent_healthy_pings"] + tunnel["recent_unhealthy_pings"] == 60
            for sensor in snap.get("thermals", []):
                assert 20 <= sensor["current_celcius"] < sensor["critical_celcius"]
            for mount in snap["mounts"]:
                assert 0 <= mount["available_bytes"] <= mount["total_bytes"]
        loads = [s["load_average_15m"] for s in snapshots]
        steps = [abs(b - a) for a, b in itertools.pairwise(loads)]
        assert max(steps) < sim.identity.cpu_count  # moves, but no jumps
        assert len(set(loads)) > 20


def test_interval_sets_the_snapshot_count() -> None:
    for interval, expected in ((60, 1440), (3600, 24), (86400, 1)):
        config = SimConfig(start=START, seed=5, connectors=1, days=1, interval=interval)
        count = generate_fleet(config)[0].snapshot_count
        assert expected - 2 <= count <= expected, (interval, count)


# -- settings and the command line ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("connectors", 0, "--connectors"),
        ("days", 0, "--days"),
        ("days", float("nan"), "--days"),
        ("interval", 0.5, "--interval"),
        ("seed", -1, "--seed"),
        ("start", -5, "--start"),
    ],
)
def test_config_is_validated(field: str, value: Any, text: str) -> None:
    good: dict[str, Any] = {"start": START, "seed": 0, "connectors": 1, "days": 1}
    with pytest.raises(ConfigError, match=text):
        SimConfig(**{**good, field: value})


def test_default_start_is_days_ago_rounded_down_to_the_minute() -> None:
    assert default_start(1_780_000_059.9, 7) == 1_780_000_020 - 7 * 86400
    assert default_start(1_779_999_960.0, 0.5) == 1_779_999_960 - 43200


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctel simulate")
    add_arguments(p)
    return p


def test_arguments_and_their_errors(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["--server", "http://h:1", "--token", "t", "--account", "a"])
    assert (args.connectors, args.days, args.interval, args.seed, args.start) == (
        3,
        7.0,
        300.0,
        0,
        None,
    )
    for bad, message in (
        (["--connectors", "-2"], "--connectors"),
        (["--connectors", "1.5"], "--connectors"),
        (["--days", "0"], "--days"),
        (["--interval", "x"], "--interval"),
        (["--seed", "-1"], "--seed"),
        (["--start", "-1"], "--start"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser().parse_args(["--server", "u", "--token", "t", "--account", "a", *bad])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_api_base_takes_the_root_or_the_api_url() -> None:
    assert api_base("http://h:8787") == "http://h:8787/client/v4"
    assert api_base("http://h:8787/") == "http://h:8787/client/v4"
    assert api_base("http://h:8787/client/v4/") == "http://h:8787/client/v4"
    assert api_base("http://h:8787", "/api/") == "http://h:8787/api"


def test_progress_bar_line_and_tty_detection() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    progress.start(connectors=10, events=20_000, snapshots=20_000)
    progress.advance(connectors=3, events=12_345, snapshots=2_016)
    line = progress.line()
    assert "connectors 3/10, 12,345 events, 2,016 snapshots" in line
    assert " 35% " in line  # (3 + 12,345 + 2,016) / 40,010
    progress.close()
    drawn = stream.getvalue()  # rich, the CLI's one progress bar (it rounds 35.9 up)
    assert "36%" in drawn and "connectors 3/10, 12,345 events, 2,016 snapshots" in drawn
    assert Progress(io.StringIO()).enabled is False  # not a terminal: no bar


# -- sending -------------------------------------------------------------------------


class FakeService:
    """The outside world for the sender: records requests, answers like the server."""

    def __init__(self, fail: dict[str, httpx.Response] | None = None, busy: int = 0) -> None:
        self.requests: list[httpx.Request] = []
        self.fail = fail or {}
        self.busy = busy  # answer this many telemetry posts with 503 first
        self.created = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.busy and "/telemetry/" in path:
            self.busy -= 1
            return httpx.Response(503, headers={"retry-after": "0"}, json={"errors": []})
        for suffix, response in self.fail.items():
            if path.endswith(suffix):
                return response
        if path.endswith("/magic/connectors"):
            self.created += 1
            return httpx.Response(200, json={"result": {"id": f"c{self.created}"}})
        items = orjson.loads(request.content)
        return httpx.Response(200, json={"result": {"accepted": len(items), "duplicates": 0}})


def test_sender_batches_in_order_with_the_token() -> None:
    service = FakeService()
    fleet = generate_fleet(SMALL)
    created: list[str] = []
    with httpx.Client(transport=httpx.MockTransport(service)) as client:
        ids = send_fleet(
            client, "http://h:8787", "tok", "acc", fleet, on_created=created.append, batch_size=10
        )
    assert ids == created == ["c1", "c2"]
    assert all(r.headers["authorization"] == "Bearer tok" for r in service.requests)
    assert all(r.method == "POST" for r in service.requests)
    paths = [r.url.path.removeprefix("/client/v4/accounts/acc/magic/") for r in service.requests]
    first = paths[: paths.index("connectors", 1)]
    assert first[0] == "connectors"
    kinds = [p.rsplit("/", 1)[1] for p in first[1:]]
    assert kinds == sorted(kinds)  # all events, then all snapshots
    events = [
        e
        for r in service.requests
        if r.url.path.endswith("/events")
        for e in orjson.loads(r.content)
    ]
    assert events[: len(fleet[0].events)] == fleet[0].events
    sizes = [len(orjson.loads(r.content)) for r in service.requests if "/telemetry/" in r.url.path]
    assert max(sizes) == 10 and sum(sizes) == sum(
        len(sim.events) + sim.snapshot_count for sim in fleet
    )


def test_request_bodies_stay_under_the_byte_limit() -> None:
    items = [{"t": i, "pad": "x" * 100} for i in range(50)]
    bodies = list(_encode("snapshots", items, max_items=5000, max_bytes=1000))
    assert all(len(body) <= 1000 for _, _, body in bodies) and len(bodies) > 5
    assert [x for _, _, body in bodies for x in orjson.loads(body)] == items
    assert sum(count for _, count, _ in bodies) == 50


def test_a_busy_server_is_retried() -> None:
    service = FakeService(busy=2)
    with httpx.Client(transport=httpx.MockTransport(service)) as client:
        assert simulate(client, "http://h", "tok", "acc", SMALL) == ["c1", "c2"]
    posts = [r.url.path for r in service.requests]
    assert posts[1] == posts[2] == posts[3]  # the first batch, sent three times
    assert service.requests[1].content == service.requests[3].content


def error(status: int, code: int, message: str) -> httpx.Response:
    body = {"result": None, "success": False, "errors": [{"code": code, "message": message}]}
    return httpx.Response(status, json={**body, "messages": []})


def test_a_second_run_with_the_same_seed_says_why_it_fails() -> None:
    conflict = error(409, 1409, "device SIM-7-0001 already belongs to a connector")
    service = FakeService({"/magic/connectors": conflict})
    with (
        httpx.Client(transport=httpx.MockTransport(service)) as client,
        pytest.raises(SimulateError) as raised,
    ):
        simulate(client, "http://h", "tok", "acc", SMALL)
    text = str(raised.value)
    assert "SIM-7-0001 already exists in account acc" in text and "--seed" in text
    assert "already belongs to a connector" in text


def test_a_refused_batch_names_the_server_message_and_the_connector() -> None:
    refused = error(400, 1003, "snapshots[3].t: required field is missing")
    service = FakeService({"/telemetry/snapshots": refused})
    created: list[str] = []
    with (
        httpx.Client(transport=httpx.MockTransport(service)) as client,
        pytest.raises(SimulateError) as raised,
    ):
        simulate(client, "http://h/client/v4", "tok", "acc", SMALL, on_created=created.append)
    assert created == ["c1"]  # told as soon as it exists, so a script can clean up
    assert service.requests[0].url == "http://h/client/v4/accounts/acc/magic/connectors"
    text = str(raised.value)
    assert "HTTP 400, code 1003: snapshots[3].t: required field is missing" in text
    assert "connector c1 was created but its history is incomplete" in text


# -- end to end ----------------------------------------------------------------------


def read_back(client: httpx.Client, tenant: Tenant, connector_id: str) -> dict[str, Any]:
    path = f"/accounts/{tenant.account_id}/magic/connectors/{connector_id}"
    connector = client.get(path, headers=tenant.read).json()["result"]
    events = client.get(
        path + "/telemetry/events/latest", params={"limit": 1000}, headers=tenant.read
    ).json()["result"]
    listed = client.get(
        path + "/telemetry/snapshots",
        params={"from": 0, "to": 4e9, "limit": 1000},
        headers=tenant.read,
    ).json()["result"]
    snapshots = [
        client.get(f"{path}/telemetry/snapshots/{item['t']}", headers=tenant.read).json()["result"]
        for item in listed["items"]
    ]
    assert events["count"] < 1000 and "cursor" not in listed
    strip = {"id", "last_updated", "last_heartbeat", "license_key", "device"}
    return {
        "connector": {k: v for k, v in connector.items() if k not in strip},
        "serial": connector["device"]["serial_number"],
        "events": [{k: v for k, v in e.items() if k != "a"} for e in reversed(events["items"])],
        "snapshots": [{k: v for k, v in s.items() if k != "a"} for s in snapshots],
    }


def simulate_cli(live: LiveServer, tenant: Tenant, *extra: str) -> int:
    # --token=...: a token may start with "-"
    args = ["--server", live.url, f"--token={tenant.write_token}", "--account", tenant.account_id]
    return run(parser().parse_args([*args, *extra]))


def test_simulate_twice_into_two_accounts_stores_the_same_data(
    live: LiveServer,
    tenant: Tenant,
    other_tenant: Tenant,
    http: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = ("--connectors", "2", "--days", "1", "--interval", "3600", "--seed", "7")
    options += ("--start", str(int(START)))
    assert simulate_cli(live, tenant, *options) == 0
    out = capsys.readouterr()
    first_ids = out.out.split()
    assert len(first_ids) == 2 and "created 2 connector(s)" in out.err
    assert "\r[" not in out.err  # stderr is not a terminal: no bar
    assert simulate_cli(live, other_tenant, *options, "--quiet") == 0
    out = capsys.readouterr()
    second_ids = out.out.split()
    assert len(second_ids) == 2 and out.err == ""

    fleet = generate_fleet(SMALL)
    for i, sim in enumerate(fleet):
        first = read_back(http, tenant, first_ids[i])
        second = read_back(http, other_tenant, second_ids[i])
        assert first == second
        assert first["serial"] == sim.create_body["device"]["serial_number"]
        body = {k: v for k, v in sim.create_body.items() if k != "device"}
        connector = first["connector"]
        assert connector.pop("last_seen_version") == sim.events[-1]["v"]
        assert connector == {**body, "interrupt_window_embargo_dates": []}
        assert first["events"] == sim.events
        assert first["snapshots"] == list(sim.snapshots())

    # the same seed into the same account: refused, with the reason, nothing on stdout
    assert simulate_cli(live, tenant, *options) == 1
    out = capsys.readouterr()
    assert out.out == "" and "SIM-7-0001 already exists" in out.err


def test_in_process_client_fills_a_database(tmp_path: Path) -> None:
    """What ``ctel serve --demo`` does: no port, the app called directly."""
    from connector_telemetry.app import create_app
    from connector_telemetry.service import credentials
    from connector_telemetry.settings import Settings
    from connector_telemetry.simulate.inprocess import BASE, client_for
    from connector_telemetry.store import open_store

    settings = Settings(db=str(tmp_path / "demo.db"))
    store = open_store(settings)
    store.migrate()
    account = credentials.create_account(store)
    _, token = credentials.create_token(store, account, "Magic WAN Write")
    app = create_app(settings, store)
    try:
        with client_for(app) as client:
            ids = simulate(client, BASE, token, account, SMALL)
            listed = client.get(
                f"/client/v4/accounts/{account}/magic/connectors",
                headers={"Authorization": f"Bearer {token}"},
            ).json()["result"]
    finally:
        app.ctx.close()
    assert sorted(ids) == sorted(c["id"] for c in listed)
