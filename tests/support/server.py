"""``ctel serve`` as the tests run it: a real server process on a free 127.0.0.1 port (or
the port a test names), on a SQLite file or a PostgreSQL database, once per store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

#: The stores the API suite runs against (``CTEL_TEST_STORES=sqlite`` leaves PostgreSQL out).
STORES = [name for name in os.environ.get("CTEL_TEST_STORES", "sqlite,postgres").split(",") if name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str  # service root, e.g. http://127.0.0.1:PORT
    db: str | Path  # what `--db` takes: a SQLite file or a PostgreSQL URL
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def api(self) -> str:
        return self.url + "/client/v4"


def start_server(
    db: Path | str,
    *extra: str,
    port: int | None = None,
    workers: int = 1,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> LiveServer:
    """``ctel serve --db db`` on ``port`` (default: a free one; name one to restart a
    server where its clients expect it), ready when this returns. ``env``: more
    environment (settings, ``CTEL_<NAME>``). Its output goes to ``log_path``
    (default: beside the database file)."""
    port = port or free_port()
    log_path = log_path or Path(db).with_suffix(".log")
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector_telemetry",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--workers",
            str(workers),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    server = LiveServer(f"http://127.0.0.1:{port}", db, process, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(log_path.read_text())
        try:
            httpx.get(server.api + "/openapi.json", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.05)
    stop_server(server)
    raise RuntimeError("server did not start: " + log_path.read_text())


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log.close()
