"""``ctel agent`` as a command: usage errors, the spool lock, --print-snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.helpers import FIXTURES, assert_valid_snapshot
from connector_telemetry.agent import Spool


def agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry.agent", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "CTEL_LICENSE_KEY"} | (env or {}),
    )


def test_missing_options_exit_2() -> None:
    done = agent("--server", "http://127.0.0.1:1", "--account", "a")
    assert done.returncode == 2
    assert "missing --connector, --license-key (or $CTEL_LICENSE_KEY)" in done.stderr


def test_a_held_spool_exits_2(tmp_path: Path) -> None:
    held = Spool(str(tmp_path))
    try:
        done = agent(
            "--server", "http://127.0.0.1:1", "--account", "a", "--connector", "c",
            "--spool", str(tmp_path), env={"CTEL_LICENSE_KEY": "k" * 40},
        )  # fmt: skip
    finally:
        held.close()
    assert done.returncode == 2
    assert "another agent is using the spool" in done.stderr


def test_a_server_that_is_not_a_url_exits_2() -> None:
    done = agent(
        "--server", "host:8787", "--account", "a", "--connector", "c",
        env={"CTEL_LICENSE_KEY": "k" * 40},
    )  # fmt: skip
    assert done.returncode == 2 and "http:// or https:// URL" in done.stderr


def test_bad_interval_is_a_usage_error() -> None:
    done = agent("--interval", "0")
    assert done.returncode == 2 and "positive number of seconds" in done.stderr


def test_print_snapshot_of_a_fixture_tree() -> None:
    root = FIXTURES / "vm-6.18-x86_64"
    done = agent(
        "--print-snapshot", "--procfs", str(root / "proc"), "--sysfs", str(root / "sys"),
        "--rootfs", str(root / "no-such-root"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fields = json.loads(done.stdout)
    assert fields["kernel_ctxt"] == 13_741_176
    # no statvfs under that root: sizes left out, the rest of the mount kept
    assert fields["mounts"][0]["mount_point"] == "/" and "total_bytes" not in fields["mounts"][0]
    body = {"t": 1, "v": "x", "count_reclaim_failures": 0, "count_reclaimed_paths": 0}
    assert_valid_snapshot(body | {"count_record_failed": 0, "count_transmit_failures": 0} | fields)


PROBE = """
import json, sys
def loaded():
    return {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
import httpx
base = loaded()
import connector_telemetry.agent.cli, connector_telemetry.agent.runner
print(json.dumps({
    "extra": sorted(loaded() - base),
    "ours": sorted(m for m in sys.modules if m.startswith("connector_telemetry")),
}))
"""


def test_the_agent_needs_only_the_standard_library_and_httpx() -> None:
    """The agent loads no server module, and no third-party module httpx does not load."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["extra"] == ["connector_telemetry"]
    assert [m for m in found["ours"] if not m.startswith("connector_telemetry.agent")] == [
        "connector_telemetry"
    ]
