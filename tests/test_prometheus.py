"""Prometheus itself against ctel (issue 12, sentences 3 to 5), with Debian's ``prometheus``
package (``prometheus`` and ``promtool``; .ci/run installs it): the alert rules shipped in
``deploy/prometheus`` pass ``promtool check rules``, name only series that ctel emits, and fire
(``promtool test rules``) on series generated from a live fleet filled by ``ctel simulate``,
among them a connector that went silent; ``ctel export --format openmetrics`` is the fleet
endpoint's history, in a form promtool turns into blocks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from support import LiveServer, Tenant, fresh_db, start_server, stop_server

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
        done = subprocess.run(
            [sys.executable, "-m", "connector_telemetry", "simulate", "--server", server.url,
             "--token", tenant.write_token, "--account", tenant.account_id, "--connectors", "2",
             "--days", "0.05", "--quiet"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
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
