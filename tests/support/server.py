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


#: What a 500 leaves in a server's log: ``App._fail``'s line (with the request id and route),
#: or granian's for an exception that escaped the app.
SERVER_ERROR_MARKS = (b"unexpected error on ", b"Application callable raised an exception")


class ServerLogs:
    """The logs of every server the tests started, read as they grow, for 500s."""

    def __init__(self) -> None:
        self.offsets: dict[Path, int] = {}
        self.pending: list[str] = []  # found in a log that was then reused

    def watch(self, path: Path, *, truncate: bool) -> None:
        """Call before a server starts writing ``path`` (from its start when ``truncate``,
        else appending)."""
        if path in self.offsets:
            self.pending += self._scan(path)
        self.offsets[path] = 0 if truncate or not path.exists() else path.stat().st_size

    def errors(self) -> list[str]:
        """Every 500 logged since the last call."""
        found, self.pending = self.pending, []
        for path in self.offsets:
            found += self._scan(path)
        return found

    def _scan(self, path: Path) -> list[str]:
        offset = self.offsets[path]
        try:
            with open(path, "rb") as log:
                if log.seek(0, os.SEEK_END) < offset:  # truncated meanwhile
                    offset = 0
                log.seek(offset)
                text = log.read()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind(b"\n") + 1]
        self.offsets[path] = offset + len(complete)
        lines = complete.decode(errors="replace").splitlines()
        return [
            f"{path}:\n" + "\n".join(lines[i : i + 25])
            for i, line in enumerate(lines)
            if any(mark.decode() in line for mark in SERVER_ERROR_MARKS)
        ]


SERVER_LOGS = ServerLogs()


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
    SERVER_LOGS.watch(log_path, truncate=True)
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
        # Tests make many failed authentications from 127.0.0.1 on purpose: the
        # throttle (tests/reliability/test_hostile_clients.py) is switched on where tested.
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CTEL_AUTH_FAILURES_PER_MINUTE": "0",
            **(env or {}),
        },
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
    stop_process(server.process)
    server.log.close()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by its PID, SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def simulate_fleet(
    server: LiveServer, account_id: str, token: str, *, connectors: int = 2, days: float = 0.05
) -> None:
    """Fill ``server`` with ``ctel simulate``'s fleet (its CLI, as a user runs it)."""
    done = subprocess.run(
        [sys.executable, "-m", "connector_telemetry", "simulate", "--server", server.url,
         f"--token={token}", "--account", account_id, "--connectors", str(connectors),
         "--days", str(days), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
