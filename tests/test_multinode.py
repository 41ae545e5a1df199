"""Two `ctel serve` nodes on one PostgreSQL behind nginx (deploy/nginx.conf): concurrent
ingest through both from several clients, then every event exactly once, in order,
paging through either node."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.testing import TemporaryPostgres
from support import LiveServer, Tenant, free_port, make_tenant, start_server, stop_server

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="needs Debian's nginx (apt-get install nginx-light); .ci/run installs it"
)
DEPLOY = Path(__file__).parent.parent / "deploy" / "nginx.conf"
CLIENTS, BATCHES, SIZE = 6, 12, 50
T0 = 1_700_000_000


class Nginx:
    def __init__(self, upstreams: list[int]):
        self.dir = Path(tempfile.mkdtemp(prefix="ctel-nginx-"))
        self.port = free_port()
        config = (
            DEPLOY.read_text()
            .replace("@RUNDIR@", str(self.dir))
            .replace("@LISTEN@", f"127.0.0.1:{self.port}")
            .replace("@UPSTREAMS@", "\n".join(f"    server 127.0.0.1:{p};" for p in upstreams))
        )
        (self.dir / "nginx.conf").write_text(config)
        assert NGINX is not None
        subprocess.run([NGINX, "-c", str(self.dir / "nginx.conf")], check=True, capture_output=True)

    def stop(self) -> None:
        pid = int((self.dir / "nginx.pid").read_text())
        os.kill(pid, 15)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster(postgres_server: TemporaryPostgres) -> Iterator[tuple[list[LiveServer], Nginx, Tenant]]:
    url = postgres_server.new_database("ctel_multinode")
    store = open_store(Settings(db=url))
    store.migrate()
    tenant = make_tenant(store)  # before the nodes start: no first-start bootstrap
    store.close()
    folder = Path(tempfile.mkdtemp(prefix="ctel-nodes-"))
    nodes = [start_server(url, workers=1, log_path=folder / f"node{i}.log") for i in range(2)]
    proxy = Nginx([int(node.url.rsplit(":", 1)[1]) for node in nodes])
    try:
        yield nodes, proxy, tenant
    finally:
        proxy.stop()
        for node in nodes:
            stop_server(node)
        shutil.rmtree(folder, ignore_errors=True)


def _page_all(base: str, path: str, tenant: Tenant) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"from": 0, "to": "inf", "limit": 97}
    with httpx.Client(base_url=base, timeout=30) as client:
        while True:
            result = client.get(path, params=params, headers=tenant.read).json()["result"]
            seen += result["items"]
            if "cursor" not in result:
                return seen
            params["cursor"] = result["cursor"]


def test_two_nodes_behind_nginx(cluster: tuple[list[LiveServer], Nginx, Tenant]) -> None:
    nodes, proxy, tenant = cluster
    front = f"http://127.0.0.1:{proxy.port}/client/v4"
    created = httpx.post(
        f"{front}/accounts/{tenant.account_id}/magic/connectors",
        json={"device": {"id": "multi"}},
        headers=tenant.write,
        timeout=30,
    )
    assert created.status_code == 200, created.text
    path = (
        f"/accounts/{tenant.account_id}/magic/connectors/{created.json()['result']['id']}"
        "/telemetry/events"
    )
    failures: list[str] = []
    accepted, duplicates = [0], [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=front, timeout=60) as http:
            for b in range(BATCHES):
                numbered = [
                    {"e": {"k": "Reconcile", "c": c, "b": b}, "t": T0 + 1 + c * 1000 + b, "n": i}
                    for i in range(SIZE)
                ]
                # Events without n, all clients at the same t: the nodes must number them
                # without a clash or a gap.
                unnumbered = [{"e": {"k": "HaTransition", "c": c, "b": b}, "t": T0}]
                for body in (numbered + unnumbered, numbered):  # the resend is a duplicate
                    answer = http.post(path, json=body, headers=tenant.write)
                    if answer.status_code != 200:
                        failures.append(answer.text)
                        continue
                    with lock:
                        accepted[0] += answer.json()["result"]["accepted"]
                        duplicates[0] += answer.json()["result"]["duplicates"]
            clash = [{"e": {"k": "Leave"}, "t": T0 + 1 + c * 1000, "n": 0}]
            answer = http.post(path, json=clash, headers=tenant.write)
            if answer.status_code != 409 or answer.headers.get("x-should-retry") != "false":
                failures.append(f"expected 409, got {answer.status_code} {answer.text}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    expected_numbered = CLIENTS * BATCHES * SIZE
    assert accepted[0] == expected_numbered + CLIENTS * BATCHES
    assert duplicates[0] == expected_numbered
    listings = [_page_all(node.api, path, tenant) for node in nodes]
    listings.append(_page_all(front, path, tenant))
    assert listings[0] == listings[1] == listings[2]
    keys = [(item["t"], item["n"]) for item in listings[0]]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    assert len(keys) == expected_numbered + CLIENTS * BATCHES
    # The events sent without n, from six clients through two nodes: numbered 0, 1, 2, ...
    assert sorted(n for t, n in keys if t == T0) == list(range(CLIENTS * BATCHES))
