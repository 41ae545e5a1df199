"""A throwaway PostgreSQL cluster for tests and benchmarks (ours and yours).

``TemporaryPostgres()`` uses ``$DATABASE_URL`` when it is set; otherwise it runs ``initdb``
and ``pg_ctl`` from the installed server binaries (Debian's ``postgresql`` package) in a
temporary folder, listening on 127.0.0.1 and a socket in that folder, and removes it all on
``stop()``. ``initdb`` refuses root, so as root the cluster belongs to the ``postgres`` user.

``durable=False`` (the default, for test speed) turns fsync and synchronous commit off;
``durable=True`` keeps PostgreSQL's production defaults, for crash tests and benchmarks.
``crash()`` stops the cluster as a power cut would (``pg_ctl stop -m immediate``: no
checkpoint, recovery from the WAL on the next ``start()``).

``standby()`` makes a hot standby of a cluster this object started: a copy taken with
``pg_basebackup`` into a throwaway folder of its own, streaming from it, and (by default)
synchronous: the primary gets ``synchronous_standby_names = '*'``, so with ``durable=True``
a commit is acknowledged only once the standby has it. ``promote()`` turns the standby
into a primary (``pg_ctl promote``); ``multi_host_url()`` names the pair as clients of a
failover pair do. ``stop()`` on the primary stops its standbys too::

    with TemporaryPostgres(durable=True, use_database_url=False) as primary:
        standby = primary.standby()
        url = multi_host_url(primary.new_database(), primary, standby)
        ...                                    # serve on url (the writable host of the two)
        primary.crash()
        standby.promote()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

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
        self.durable = durable
        self.standbys: list[TemporaryPostgres] = []
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
        self._make_folder(bindir)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", *INITDB_FLAGS,
            )  # fmt: skip
            self.start()
        except BaseException:
            self._remove_folder()
            raise

    def _make_folder(self, bindir: Path) -> None:
        """The folder (``data``, ``log`` and the socket), a free port, the server's options."""
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
            + ("" if self.durable else " " + _FAST)
        )
        self.url = f"postgresql://postgres@/postgres?host={self.folder}&port={self.port}"

    def _remove_folder(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def data(self) -> Path:
        assert self.folder is not None, "a $DATABASE_URL server has no data folder here"
        return self.folder / "data"

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
            "pg_ctl", "-D", str(self.data), "-o", self._options,
            "-l", str(self.folder / "log"), "-w", "start",
        )  # fmt: skip

    def running(self) -> bool:
        assert self.folder is not None
        done = subprocess.run(
            [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
        )
        return done.returncode == 0

    def crash(self) -> None:
        """Stop at once, without a checkpoint, as a power cut would."""
        assert self.folder is not None, "a $DATABASE_URL server is not ours to crash"
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    # -- replication ----------------------------------------------------------

    def standby(self, synchronous: bool = True, timeout: float = 60.0) -> TemporaryPostgres:
        """A hot standby of this (running) cluster, streaming from it, in a throwaway folder
        of its own; returned once it streams (and, when ``synchronous``, once the primary
        waits for it on every commit). Stopped with this cluster."""
        assert self.folder is not None, "a $DATABASE_URL server is not ours to replicate"
        if synchronous and not self.durable:
            raise ValueError("synchronous replication needs durable=True (synchronous_commit)")
        replica = TemporaryPostgres.__new__(TemporaryPostgres)
        replica.created, replica.durable, replica.standbys = [], self.durable, []
        replica._make_folder(self.bindir)
        name = f"ctel_standby_{replica.port}"  # its application_name on the primary
        replica._options += f" -c cluster_name={name}"
        try:
            self._run(
                "pg_basebackup", "-D", str(replica.data), "-h", "127.0.0.1",
                "-p", str(self.port), "-U", "postgres", "-X", "stream", "-R",
                "--checkpoint=fast", "--no-sync",
            )  # fmt: skip
            replica.start()
        except BaseException:
            replica._remove_folder()
            raise
        self.standbys.append(replica)
        wanted = "sync" if synchronous else "async"
        if synchronous:
            self.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            self.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while self._replication_state(name) != ("streaming", wanted):
            if time.monotonic() > deadline:
                self.stop_standby(replica)
                self.execute("ALTER SYSTEM RESET synchronous_standby_names")
                self.execute("SELECT pg_reload_conf()")
                raise RuntimeError(f"the standby on port {replica.port} did not start streaming")
            time.sleep(0.05)
        return replica

    def _replication_state(self, name: str) -> tuple[str, str] | None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                (name,),
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def stop_standby(self, replica: TemporaryPostgres) -> None:
        """Stop (and remove) one of this cluster's standbys. With synchronous replication,
        every commit on this cluster then waits until another standby streams, as it would
        in production."""
        replica.stop()
        if replica in self.standbys:
            self.standbys.remove(replica)

    def promote(self, timeout: int = 60) -> None:
        """End recovery: this standby becomes a primary that accepts writes (waits until
        it does)."""
        assert self.folder is not None, "a $DATABASE_URL server is not ours to promote"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", str(timeout), "promote")

    def execute(self, sql: str) -> None:
        """One statement on this cluster's ``postgres`` database, as its superuser."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.encode())

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
        """Stop the cluster (as a crash: nothing to keep) and its standbys; remove their
        folders. With ``$DATABASE_URL``: drop the databases made here."""
        for replica in self.standbys:
            replica.stop()
        self.standbys = []
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
            self._remove_folder()

    def __enter__(self) -> TemporaryPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def multi_host_url(url: str, *hosts: TemporaryPostgres | int, attrs: str = "read-write") -> str:
    """``url``'s database on every one of ``hosts`` (clusters, or ports on 127.0.0.1), over
    TCP, as one libpq multi-host URL (``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/db
    ?target_session_attrs=read-write``): a client connects to the first host, in order,
    that answers and matches ``target_session_attrs``."""
    from psycopg.conninfo import conninfo_to_dict

    database = conninfo_to_dict(url).get("dbname", "postgres")
    ports = [host if isinstance(host, int) else host.port for host in hosts]
    query = urlencode({"target_session_attrs": attrs})
    return f"postgresql://postgres@{','.join(f'127.0.0.1:{p}' for p in ports)}/{database}?{query}"
