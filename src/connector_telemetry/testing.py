"""A throwaway PostgreSQL cluster for tests and benchmarks (ours and yours).

``TemporaryPostgres()`` uses ``$DATABASE_URL`` when it is set; otherwise it runs ``initdb``
and ``pg_ctl`` from the installed server binaries (Debian's ``postgresql`` package) in a
temporary folder, listening on 127.0.0.1 and a socket in that folder, and removes it all on
``stop()``. ``initdb`` refuses root, so as root the cluster belongs to the ``postgres`` user.

``durable=False`` (the default, for test speed) turns fsync and synchronous commit off;
``durable=True`` keeps PostgreSQL's production defaults, for crash tests and benchmarks.
``crash()`` stops the cluster as a power cut would (``pg_ctl stop -m immediate``: no
checkpoint, recovery from the WAL on the next ``start()``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

#: UTF-8 whatever the environment's locale (C collation: the schema's keys use it anyway).
INITDB_FLAGS = ("-E", "UTF8", "--locale=C", "--no-sync")

_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout, then PATH)."""
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if version.isdigit():
            found.append((int(version), initdb.parent))
    if found:
        return max(found)[1]
    initdb_path = shutil.which("initdb")
    return Path(initdb_path).parent if initdb_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL server to create databases on (see the module's docstring)."""

    def __init__(self, durable: bool = False, use_database_url: bool = True) -> None:
        self.folder: Path | None = None
        self.created: list[str] = []
        given = os.environ.get("DATABASE_URL") if use_database_url else None
        if given:
            if not given.startswith(("postgresql://", "postgres://")):
                raise RuntimeError("DATABASE_URL must be a postgresql:// URL")
            self.url = given
            return
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError(
                "a throwaway PostgreSQL needs PostgreSQL's server binaries (Debian: apt-get "
                "install postgresql) or DATABASE_URL"
            )
        self.bindir = bindir
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # as root, in /tmp itself: the postgres user must be able to reach the folder
        self.folder = Path(tempfile.mkdtemp(prefix="ctel-pg-", dir="/tmp" if self._as else None))
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")
        self.port = _free_port()
        self._options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.folder} -c max_connections=200"
            + ("" if durable else " " + _FAST)
        )
        try:
            self._run(
                "initdb", "-D", str(self.folder / "data"), "-U", "postgres", "-A", "trust",
                *INITDB_FLAGS,
            )  # fmt: skip
            self.start()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.url = f"postgresql://postgres@/postgres?host={self.folder}&port={self.port}"

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self.bindir / program), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    @property
    def owned(self) -> bool:
        """True for a cluster this object started (False with ``$DATABASE_URL``)."""
        return self.folder is not None

    def start(self) -> None:
        assert self.folder is not None, "a $DATABASE_URL server is not ours to start"
        self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-o", self._options,
            "-l", str(self.folder / "log"), "-w", "start",
        )  # fmt: skip

    def running(self) -> bool:
        assert self.folder is not None
        done = subprocess.run(
            [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "status"],
            capture_output=True,
        )
        return done.returncode == 0

    def crash(self) -> None:
        """Stop at once, without a checkpoint, as a power cut would."""
        assert self.folder is not None, "a $DATABASE_URL server is not ours to crash"
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")

    def new_database(self, prefix: str = "ctel_test") -> str:
        """A URL of a new, empty database, dropped when the server stops (with
        ``$DATABASE_URL``, its user needs the CREATEDB privilege)."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        head, _, tail = self.url.partition("?")
        base = head.rsplit("/", 1)[0]
        return f"{base}/{name}" + (f"?{tail}" if tail else "")

    def stop(self) -> None:
        if self.folder is None:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                for name in self.created:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        try:
            if self.running():
                self.crash()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
