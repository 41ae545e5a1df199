"""Prometheus itself against ctel (issue 12, sentences 3 to 5), with Debian's ``prometheus``
package (``prometheus`` and ``promtool``; .ci/run installs it), on a live ``ctel serve`` filled
by ``ctel simulate``:

- a Prometheus started here (free port, generated config, scrape interval 1s) scrapes ctel's
  own ``/metrics`` and the fleet endpoint (``honor_labels``), and PromQL through its HTTP API
  answers each connector's latest snapshot exactly (as Get Latest Snapshot has it) and its
  ``ctel_connector_info``;
- the alert rules shipped in ``deploy/prometheus`` pass ``promtool check rules``, name only
  series that ctel emits, load in that Prometheus, and fire (``promtool test rules``) on
  series generated from the live fleet's scrape, among them a connector that went silent;
- ``ctel export --format openmetrics`` is the fleet endpoint's history; promtool turns it into
  blocks, and a Prometheus started on them answers a range query with the snapshots' values.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from support import LiveServer, Tenant, free_port, fresh_db, start_server, stop_server
from support.server import simulate_fleet, stop_process

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None or PROMETHEUS is None,
    reason="Debian's prometheus package is not installed here (.ci/run installs it: "
    "apt-get install prometheus)",
)
RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "ctel-alerts.yml"
JOB = "ctel-fleet"


@dataclass
class Fleet:
    server: LiveServer
    tenant: Tenant
    folder: Path

    def scrape(self) -> str:
        url = self.server.url + f"/metrics/accounts/{self.tenant.account_id}"
        answer = httpx.get(url, headers=self.tenant.read, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("prometheus")
    db, tenant = fresh_db(folder)
    server = start_server(db)
    try:
        simulate_fleet(server, tenant.account_id, tenant.write_token)
        yield Fleet(server, tenant, folder)
    finally:
        stop_server(server)


Sample = tuple[str, dict[str, str], float]


def samples(text: str) -> list[Sample]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def rule_metric_names() -> set[str]:
    """The metric names the rules' expressions read."""
    exprs = re.findall(r"^\s*expr:\s*(.+)$", RULES.read_text(), flags=re.MULTILINE)
    assert len(exprs) == 7
    return {name for expr in exprs for name in re.findall(r"\b(?:ctel|node)_\w+", expr)}


def test_rules_are_valid_and_read_what_ctel_emits(fleet: Fleet) -> None:
    checked = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0 and "SUCCESS: 7 rules found" in checked.stdout, checked
    emitted = {name for name, _, _ in samples(fleet.scrape())}
    read = rule_metric_names()
    assert read <= emitted, read - emitted
    assert "ctel_connector_last_heartbeat_timestamp_seconds" in read


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted({**labels, "job": JOB}.items()))
    return f"{name}{{{inner}}}"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return format(value, ".17g")


MINUTES = 30  # every generated series has a value each minute from 0m to 30m


def _steady(value: float) -> str:
    return " ".join([_number(value)] * (MINUTES + 1))


def _step(before: float, after: float, at_minute: int) -> str:
    return " ".join(_number(before if m < at_minute else after) for m in range(MINUTES + 1))


def _alert(labels: dict[str, str], severity: str, summary: str) -> dict[str, object]:
    return {
        "exp_labels": {**labels, "job": JOB, "severity": severity},
        "exp_annotations": {"summary": summary},
    }


def test_rules_fire_on_generated_fleet_series(fleet: Fleet, tmp_path: Path) -> None:
    """Series as the live fleet endpoint emits them (names, labels, values), with what the
    rules look for played on top: connector ``quiet`` stops reporting at 5m (its heartbeat
    stops moving) and fails an upgrade and a PKI rotation; ``busy`` keeps reporting, fails
    an attestation and has HA errors, its /var fills over 90 % and its memory runs short."""
    read = rule_metric_names()
    live = [s for s in samples(fleet.scrape()) if s[0] in read]
    ids = sorted({labels["instance"] for _, labels, _ in live})
    assert len(ids) == 2
    quiet, busy = ids
    steps = {
        (quiet, "FinishUpgradeFailure"): 10,
        (quiet, "FinishRotatePkiFailure"): 12,
        (busy, "FinishAttestationFailure"): 12,
        (busy, "HaError"): 12,
    }
    sizes = {
        (labels["instance"], labels["mountpoint"]): value
        for name, labels, value in live
        if name == "node_filesystem_size_bytes"
    }
    memory_total = {
        labels["instance"]: value for name, labels, value in live if name.endswith("MemTotal_bytes")
    }
    inputs = []
    for name, labels, value in live:
        me = labels["instance"]
        if name == "ctel_connector_last_heartbeat_timestamp_seconds":
            # Test time starts at 0: a heartbeat each minute, the quiet one's stops at 5m.
            values = " ".join(
                _number(60 * min(m, 5) if me == quiet else 60 * m) for m in range(MINUTES + 1)
            )
        elif name == "ctel_connector_failures_total" and (me, labels["kind"]) in steps:
            values = _step(value, value + 1, steps[(me, labels["kind"])])
        elif name == "node_filesystem_avail_bytes" and (me, labels["mountpoint"]) == (busy, "/var"):
            values = _steady(sizes[(me, "/var")] * 0.05)
        elif name == "node_memory_MemAvailable_bytes" and me == busy:
            values = _steady(memory_total[me] * 0.05)
        else:
            values = _steady(value)
        inputs.append({"series": _series(name, labels), "values": values})

    var = next(labels for name, labels, _ in live
               if name == "node_filesystem_size_bytes" and labels["instance"] == busy
               and labels["mountpoint"] == "/var")  # fmt: skip
    summaries = {
        "silent": "Connector {} has not reported for 15 minutes",
        "upgrade": "Connector {}: an upgrade failed",
        "attestation": "Connector {}: an attestation failed",
        "ha": "Connector {}: HA errors",
    }
    expected = [
        # 10m: the quiet connector is 5 minutes late: nothing yet
        ("CtelConnectorSilent", "10m", []),
        ("CtelConnectorSilent", "21m", [_alert({"instance": quiet},
                                               "critical", summaries["silent"].format(quiet))]),
        ("CtelConnectorUpgradeFailed", "9m", []),
        ("CtelConnectorUpgradeFailed", "15m", [_alert(
            {"instance": quiet, "kind": "FinishUpgradeFailure"}, "warning",
            summaries["upgrade"].format(quiet))]),
        ("CtelConnectorKeyRotationFailed", "15m", [_alert(
            {"instance": quiet, "kind": "FinishRotatePkiFailure"}, "warning",
            f"Connector {quiet}: a key rotation failed (FinishRotatePkiFailure)")]),
        ("CtelConnectorAttestationFailed", "15m", [_alert(
            {"instance": busy, "kind": "FinishAttestationFailure"}, "warning",
            summaries["attestation"].format(busy))]),
        ("CtelConnectorHAErrors", "15m", [_alert(
            {"instance": busy, "kind": "HaError"}, "warning", summaries["ha"].format(busy))]),
        # for: 5m; the read-only root (always full) never fires
        ("CtelConnectorDiskFull", "3m", []),
        ("CtelConnectorDiskFull", "10m", [_alert(
            var, "warning",
            f"Connector {busy}: /var is over 90 % full")]),
        ("CtelConnectorMemoryPressure", "10m", [_alert(
            {"instance": busy}, "warning", f"Connector {busy}: memory pressure")]),
    ]  # fmt: skip
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": name, "exp_alerts": alerts}
                    for name, at, alerts in expected
                ],
            }
        ],
    }
    test_file = tmp_path / "ctel-alerts.test.yml"
    test_file.write_text(json.dumps(spec, indent=1))  # JSON is YAML
    run = subprocess.run([str(PROMTOOL), "test", "rules", str(test_file)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def export(fleet: Fleet, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry", "export", "--db", str(fleet.server.db),
         "--account", fleet.tenant.account_id, "--format", "openmetrics", "-o", str(out),
         "--quiet", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def backfill(history: Path, blocks: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(history), str(blocks)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


#: What the fleet endpoint shows that a history leaves out (facts of now, and the counters).
NOT_HISTORY = (
    "ctel_connector_last_heartbeat_timestamp_seconds",
    "ctel_connector_events_total",
    "ctel_connector_failures_total",
    "ctel_connector_interrupts_pending",
)


def test_openmetrics_export_is_the_fleet_history(fleet: Fleet, tmp_path: Path) -> None:
    """``ctel export --format openmetrics``: the fleet endpoint's series (same names, labels,
    units; its values at the latest snapshot), one sample per snapshot with the snapshot's
    time, each family once, each series oldest first, ``# EOF`` at the end; promtool turns
    it into blocks; ``--connector`` keeps one connector."""
    path = tmp_path / "history.om"
    done = export(fleet, path)
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(families) == len(set(families)) > 60
    # prometheus_client's OpenMetrics parser is strict: families whole, counters' _total, EOF
    last: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}
    for family in openmetrics_families(text):
        for s in family.samples:
            assert s.labels.pop("job") == "ctel-fleet"
            key = (s.name, tuple(sorted(s.labels.items())))
            at = float(s.timestamp)
            if key in last:
                assert at > last[key][0], s  # each series oldest first
            last[key] = (at, s.value)

    api = fleet.server.api + f"/accounts/{fleet.tenant.account_id}/magic/connectors"
    live = [s for s in samples(fleet.scrape()) if s[0] not in NOT_HISTORY]
    assert len(live) > 100
    newest = {}
    for c in httpx.get(api, headers=fleet.tenant.read).json()["result"]:
        latest = httpx.get(f"{api}/{c['id']}/telemetry/snapshots/latest", headers=fleet.tenant.read)
        newest[c["id"]] = latest.json()["result"]["items"][0]
    for name, labels, value in live:  # the same series, at the latest snapshot the same value
        at, exported = last[(name, tuple(sorted(labels.items())))]
        assert exported == value and at == newest[labels["instance"]]["t"], (name, labels)
    load = [k for k in last if k[0] == "node_load1"]
    assert len(load) == 2

    blocks = tmp_path / "blocks"
    made = backfill(path, blocks)
    assert made.returncode == 0, made.stdout + made.stderr
    assert list(blocks.glob("*/meta.json"))

    one = live[0][1]["instance"]
    done = export(fleet, tmp_path / "one.om", "--connector", one)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "one.om").read_text()
    assert text.count("instance=") == text.count(f'instance="{one}"') > 100
    refused = export(fleet, tmp_path / "x.om", "--connector", "nosuch")
    assert refused.returncode == 1 and "connector nosuch not found" in refused.stderr


class Prometheus:
    """Debian's ``prometheus`` on a free 127.0.0.1 port with a generated config and a data
    directory of its own; stopped by its PID."""

    def __init__(self, folder: Path, config: dict[str, object]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.data = folder / "data"
        (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 - closed by stop
        self.process = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.data}", f"--web.listen-address={self.url[7:]}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_for(lambda: httpx.get(self.url + "/-/ready", timeout=1).status_code == 200)

    def wait_for(self, ready: Callable[[], object], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "prometheus.log").read_text()
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("Prometheus: " + (self.folder / "prometheus.log").read_text()[-3000:])

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"]["result"])

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus(fleet: Fleet) -> Iterator[Prometheus]:
    """Scraping the live server every second: ctel's own ``/metrics`` and the fleet."""
    target = {"targets": [fleet.server.url.removeprefix("http://")]}
    auth = {"credentials": fleet.tenant.read_token}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "ctel", "metrics_path": "/metrics", "authorization": auth,
             "static_configs": [target]},
            {"job_name": JOB, "metrics_path": f"/metrics/accounts/{fleet.tenant.account_id}",
             "honor_labels": True, "authorization": auth, "static_configs": [target]},
        ],
    }  # fmt: skip
    server = Prometheus(fleet.folder / "prometheus", config)
    try:
        server.wait_for(lambda: len(server.query("node_load1")) == 2
                        and server.query('up{job="ctel"} == 1'))  # fmt: skip
        yield server
    finally:
        server.stop()


def _value(found: list[dict[str, Any]]) -> float:
    assert len(found) == 1, found
    return float(found[0]["value"][1])


def test_promql_answers_each_connector_s_latest_snapshot(
    fleet: Fleet, prometheus: Prometheus
) -> None:
    api = fleet.server.api + f"/accounts/{fleet.tenant.account_id}/magic/connectors"
    connectors = httpx.get(api, headers=fleet.tenant.read).json()["result"]
    assert len(connectors) == 2
    for c in connectors:
        me = f'instance="{c["id"]}",job="{JOB}"'
        snap = httpx.get(f"{api}/{c['id']}/telemetry/snapshots/latest",
                         headers=fleet.tenant.read).json()["result"]["items"][0]  # fmt: skip
        q = prometheus.query
        assert (
            _value(q(f"node_memory_MemAvailable_bytes{{{me}}}")) == snap["memory_available_bytes"]
        )
        assert _value(q(f"node_memory_MemTotal_bytes{{{me}}}")) == snap["memory_total_bytes"]
        assert _value(q(f"node_load1{{{me}}}")) == snap["load_average_1m"]
        assert _value(q(f"node_load15{{{me}}}")) == snap["load_average_15m"]
        dev = snap["netdevs"][0]
        got = q(f'node_network_transmit_bytes_total{{{me},device="{dev["name"]}"}}')
        assert _value(got) == dev["sent_bytes"]
        mount = snap["mounts"][-1]
        got = q(f'node_filesystem_size_bytes{{{me},mountpoint="{mount["mount_point"]}"}}')
        assert _value(got) == mount["total_bytes"]
        assert got[0]["metric"]["device"] == mount["name"]
        got = q(f"ctel_connector_last_snapshot_timestamp_seconds{{{me}}}")
        assert _value(got) == snap["t"]
        info = q(f"ctel_connector_info{{{me}}}")
        assert _value(info) == 1
        assert info[0]["metric"] == {
            "__name__": "ctel_connector_info", "instance": c["id"], "job": JOB,
            "connector_id": c["id"], "device_id": c["device"]["id"],
            "device_type": c["device"].get("type", ""), "version": c["last_seen_version"],
            "activated": "true" if c["activated"] else "false",
        }  # fmt: skip
    # a dashboard's kind of query: memory used, in percent, per connector
    used = prometheus.query(
        f'100 * (1 - node_memory_MemAvailable_bytes{{job="{JOB}"}} '
        f'/ node_memory_MemTotal_bytes{{job="{JOB}"}})'
    )
    assert len(used) == 2 and all(0 < float(r["value"][1]) < 100 for r in used)


def test_prometheus_scrapes_ctel_s_own_metrics(prometheus: Prometheus) -> None:
    assert _value(prometheus.query('up{job="ctel"}')) == 1
    assert prometheus.query('ctel_build_info{job="ctel"}')
    fleet_scrapes = prometheus.query(
        'ctel_http_requests_total{job="ctel",route="metrics.fleet",status="200"}'
    )
    assert _value(fleet_scrapes) >= 1
    rules = httpx.get(prometheus.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert [r["health"] for g in rules for r in g["rules"]] == ["ok"] * 7


def test_backfilled_blocks_answer_a_range_query(fleet: Fleet, tmp_path: Path) -> None:
    history, blocks = tmp_path / "history.om", tmp_path / "tsdb"
    done = export(fleet, history)
    assert done.returncode == 0, done.stderr
    made = backfill(history, blocks)
    assert made.returncode == 0, made.stdout + made.stderr
    api = fleet.server.api + f"/accounts/{fleet.tenant.account_id}/magic/connectors"
    cid = httpx.get(api, headers=fleet.tenant.read).json()["result"][0]["id"]
    listed = httpx.get(f"{api}/{cid}/telemetry/snapshots", params={"from": 0, "to": 1e12,
                       "limit": 1000}, headers=fleet.tenant.read).json()["result"]  # fmt: skip
    times = sorted(item["t"] for item in listed["items"])
    assert len(times) > 10
    shutil.move(blocks, tmp_path / "prometheus" / "data")  # as into a Prometheus' data dir
    server = Prometheus(tmp_path / "prometheus", {"global": {"scrape_interval": "1m"}})
    try:
        start, step = times[0], 60.0
        answer = httpx.get(server.url + "/api/v1/query_range", timeout=10, params={
            "query": f'node_load1{{instance="{cid}",job="{JOB}"}}',
            "start": start, "end": times[-1], "step": step})  # fmt: skip
        assert answer.status_code == 200, answer.text
        (result,) = answer.json()["data"]["result"]
        points = result["values"]
        load = {
            t: httpx.get(f"{api}/{cid}/telemetry/snapshots/{t}", headers=fleet.tenant.read).json()[
                "result"
            ]["load_average_1m"]
            for t in times
        }
        # at each step, the newest snapshot within the lookback: Prometheus 2's 5 minutes,
        # both ends included (in milliseconds, as Prometheus counts)
        ms = {round(t * 1000): t for t in times}
        expected = []
        at_ms = round(start * 1000)
        while at_ms <= round(times[-1] * 1000):
            seen = [m for m in ms if at_ms - 300_000 <= m <= at_ms]
            if seen:
                expected.append((at_ms / 1000, load[ms[max(seen)]]))
            at_ms += round(step * 1000)
        got = [(round(float(at) * 1000) / 1000, float(value)) for at, value in points]
        assert got == expected and len(got) > 10
    finally:
        server.stop()
