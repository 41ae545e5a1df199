"""Get Event through nginx in front of 1, 2, 3 ``ctel serve`` nodes on one PostgreSQL
(issue 13): aggregate throughput as the node count grows, and the CPU each part spends
per request (the constants of the model in bench/README.md: ctel's CPU per request,
PostgreSQL's, the load balancer's).

All on one machine: the nodes, nginx, PostgreSQL and wrk share its cores, so the
aggregate cannot grow with the nodes here; the CPU per request is what carries over to
separate hosts."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.measure import SCRIPT
from bench.procs import Ctel, children, cpu_seconds, free_port, pid_gone, wait_http, wrk

DEPLOY = Path(__file__).parent.parent / "deploy" / "nginx.conf"


class Balancer:
    """nginx with deploy/nginx.conf in front of ``ports``."""

    def __init__(self, ports: list[int]):
        self.dir = Path(tempfile.mkdtemp(prefix="ctel-lb-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        upstreams = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
        (self.dir / "nginx.conf").write_text(
            DEPLOY.read_text()
            .replace("@RUNDIR@", str(self.dir))
            .replace("@LISTEN@", f"127.0.0.1:{self.port}")
            .replace("@UPSTREAMS@", upstreams)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        master = int((self.dir / "nginx.pid").read_text())
        return [master, *children(master)]

    def __enter__(self) -> Balancer:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        subprocess.run([nginx, "-c", str(self.dir / "nginx.conf")], check=True)
        wait_http(self.url + "/client/v4/openapi.json")
        return self

    def __exit__(self, *exc: object) -> None:
        pid = int((self.dir / "nginx.pid").read_text())
        os.kill(pid, 15)
        pid_gone(pid)
        shutil.rmtree(self.dir, ignore_errors=True)


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


def postgres_pids(data: Path) -> list[int]:
    """The postmaster and its children (backends, checkpointer, walwriter, ...)."""
    master = int((data / "postmaster.pid").read_text().split()[0])
    return [master, *children(master)]


def run(
    f: fixtures.Fleet, data: Path, counts: list[int], seconds: int, serve_db: str | None = None
) -> dict[str, Any]:
    """For each node count: wrk (-t1 -c64, random stored events) against nginx in front
    of that many one-worker nodes; req/s, p99, and CPU seconds per request of the nodes,
    PostgreSQL and nginx. ``data``: the cluster's data folder (its processes' CPU)."""
    env = f.wrk_env()
    out: dict[str, Any] = {}
    for count in counts:
        with ExitStack() as stack:
            nodes = [stack.enter_context(Ctel(serve_db or f.db, 1)) for _ in range(count)]
            lb = stack.enter_context(Balancer([node.port for node in nodes]))
            wrk(lb.url, SCRIPT, env, 2)  # warm-up
            node_pids = [pid for node in nodes for pid in node.worker_pids()]
            before = (_cpu(node_pids), _cpu(postgres_pids(data)), _cpu(lb.pids()))
            got = wrk(lb.url, SCRIPT, env, seconds)
            after = (_cpu(node_pids), _cpu(postgres_pids(data)), _cpu(lb.pids()))
        requests = got.rps * seconds
        node_us, db_us, lb_us = (
            (a - b) / requests * 1e6 for a, b in zip(after, before, strict=True)
        )
        out[str(count)] = {
            "rps": round(got.rps),
            "p50_ms": got.p50_ms,
            "p99_ms": got.p99_ms,
            "non_2xx": got.non_2xx,
            "node_cpu_us_per_request": round(node_us, 1),
            "postgres_cpu_us_per_request": round(db_us, 1),
            "nginx_cpu_us_per_request": round(lb_us, 1),
        }
        print(f"  {count} node(s): {out[str(count)]}", flush=True)
    out["command"] = got.command.replace(lb.url, "http://<nginx>")
    return out
