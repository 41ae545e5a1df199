"""``ctel serve`` raises its soft limit of open files to the hard one (issue 14: thousands of
connections, idle ones included, must not exhaust a default 1,024), and its workers have it."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import httpx

from support import free_port, fresh_db
from support.reliability import descendants


def soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


def test_workers_get_the_hard_limit(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    start = min(1024, hard)
    db, _ = fresh_db(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "connector_telemetry", "serve", "--db", db, "--port", str(port),
         "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (start, hard)),
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                subprocess.run(["sleep", "0.05"], check=True)
        workers = descendants(process.pid)
        assert len(workers) >= 2
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        assert soft_limit(process.pid) == want
        assert all(soft_limit(pid) == want for pid in workers)
    finally:
        process.terminate()
        process.wait(30)
