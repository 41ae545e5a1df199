"""Starting and measuring the processes a benchmark needs: ctel, nginx, wrk."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of a process and its live children (a server and its workers)."""
    return sum(cpu_seconds(p) for p in [pid, *children(pid)])


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set size of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pid_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.02)
    return False


@dataclass
class Ctel:
    """``ctel serve`` on ``db`` (a SQLite file or a PostgreSQL URL). Its stderr goes to a
    temporary file; tracebacks found there are printed when it stops."""

    db: str | Path
    workers: int
    port: int = field(default_factory=free_port)
    #: More environment for the server (settings, ``CTEL_<NAME>``).
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "connector_telemetry",
            "serve",
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]

    def cpu_seconds(self) -> float:
        """CPU seconds of the server's processes so far (its workers included)."""
        assert self.process is not None
        return tree_cpu_seconds(self.process.pid)

    def __enter__(self) -> Ctel:
        fd, name = tempfile.mkstemp(prefix="ctel-bench-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, **self.env},
            )
        try:
            wait_http(self.url + "/client/v4/openapi.json")
        except BaseException:
            self.__exit__()
            raise
        return self

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return children(self.process.pid)

    def peak_rss(self) -> list[float]:
        """Each worker's peak RSS, MB."""
        return [round(peak_rss_mb(pid), 1) for pid in self.worker_pids()]

    def master_rss(self) -> float:
        """The peak RSS of granian's master process (which serves no request), MB."""
        assert self.process is not None
        return round(peak_rss_mb(self.process.pid), 1)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None and self.log is not None
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        text = self.log.read_text(errors="replace")
        self.log.unlink()
        if "Traceback" in text or "ERROR" in text:
            tail = "\n".join(text.splitlines()[-30:])
            print(f"  ctel serve --db {self.db} logged errors:\n{tail}", file=sys.stderr)


class Nginx:
    """nginx serving one file's bytes for every path, as the throughput baseline."""

    def __init__(self, body: bytes, workers: int):
        self.dir = Path(tempfile.mkdtemp(prefix="ctel-nginx-"))
        # nginx started by root serves as ``nobody``, who must reach the file (mkdtemp
        # makes the folder 0700: nginx would answer every request 404)
        self.dir.chmod(0o755)
        self.port = free_port()
        (self.dir / "root").mkdir()
        (self.dir / "root" / "event.json").write_bytes(body)
        (self.dir / "nginx.conf").write_text(f"""
worker_processes {workers};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/body;
  proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi;
  uwsgi_temp_path {self.dir}/uwsgi;
  scgi_temp_path {self.dir}/scgi;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.dir}/root;
    location / {{ default_type application/json; try_files /event.json =404; }}
  }}
}}
""")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Nginx:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        subprocess.run([nginx, "-c", str(self.dir / "nginx.conf")], check=True)
        wait_http(self.url)
        probe = httpx.get(self.url + "/probe")
        if probe.status_code != 200:
            raise RuntimeError(f"nginx answered {probe.status_code}: see {self.dir}/error.log")
        return self

    def __exit__(self, *exc: object) -> None:
        pid = int((self.dir / "nginx.pid").read_text())
        os.kill(pid, 15)
        pid_gone(pid)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    command: str
    socket_errors: int = 0
    #: Requests completed in the run (wrk's "N requests in ...").
    requests: int = 0


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if found is None:
        raise ValueError(f"wrk printed a latency we cannot read: {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]


def wrk(
    url: str, script: Path, env: dict[str, str], seconds: int, connections: int = 64
) -> WrkResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(script), url]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **env}, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    done = re.search(r"(\d+) requests in ", out)
    return WrkResult(
        rps,
        p50,
        p99,
        int(bad.group(1)) if bad else 0,
        " ".join(cmd),
        sum(int(g) for g in errors.groups()) if errors else 0,
        int(done.group(1)) if done else 0,
    )
