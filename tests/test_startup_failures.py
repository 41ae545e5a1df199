"""Every way ``ctel`` can fail before it does its work is one line on stderr saying what
is wrong and what to do, exit 2 for a malformed invocation and 1 for the rest, and never
a traceback or a panic (unless asked for with ``--verbose`` / ``CTEL_LOG_LEVEL=debug``).

The cases are tables: (what is wrong, command, exit code, a phrase the message must hold).
``ctel serve`` runs as a real process for each; the other commands that open the
database meet the same database problems through ``cli.main`` in this process (the same
code path, without an interpreter start per case), except where file permissions are
involved: those run as processes without the capabilities that let root ignore them.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from connector_telemetry import cli
from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.sqlite import SQLiteStore
from connector_telemetry.testing import TemporaryPostgres
from support import free_port, fresh_db

SCHEMA_VERSION = SQLiteStore.known_schema_version

#: As root, a command runs without the capabilities that let root ignore file permissions,
#: so that modes 0444 / 0555 / 0000 hold for it as they do for any other user; as any other
#: user, it runs as it is. ``test_confinement_holds`` checks that this really denies.
CONFINE = (
    ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    if os.geteuid() == 0
    else []
)


def ctel(
    *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "connector_telemetry", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], code: int, phrase: str) -> None:
    err = done.stderr
    assert done.returncode == code, err
    assert phrase in err, err
    assert "Traceback" not in err and "panicked" not in err and "backtrace" not in err, err
    assert err.startswith("ctel") and len(err.splitlines()) == 1, err


# -- the database problems, made real -------------------------------------------------


def good_db(folder: Path) -> Path:
    """A real ctel database with data (account ``a`` among it), its WAL checkpointed into
    the file."""
    db, _ = fresh_db(folder)
    store = open_store(Settings(db=db))
    credentials.create_account(store, "a", "A")
    store.close()
    return Path(db)


def missing_dir(folder: Path) -> Path:
    return folder / "no" / "such" / "dir" / "ctel.db"


def a_directory(folder: Path) -> Path:
    (folder / "dir.db").mkdir()
    return folder / "dir.db"


def not_a_database(folder: Path) -> Path:
    path = folder / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    return path


def corrupt(folder: Path) -> Path:
    """A real database whose pages after the first (the schema) are overwritten."""
    path = good_db(folder)
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.seek(4096)
        file.write(b"\xa5" * (size - 4096))
    return path


def schema_too_new(folder: Path) -> Path:
    path = good_db(folder)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 5,))
    conn.close()
    return path


def read_only_file(folder: Path) -> Path:
    path = good_db(folder)
    path.chmod(0o444)
    return path


def read_only_dir(folder: Path) -> Path:
    """A database in a directory where SQLite cannot create its -wal and -shm files."""
    inner = folder / "ro"
    inner.mkdir()
    path = good_db(inner)
    for extra in inner.glob("ctel.db-*"):
        extra.unlink()
    inner.chmod(0o555)
    return path


def new_in_read_only_dir(folder: Path) -> Path:
    (folder / "ro").mkdir(mode=0o555)
    return folder / "ro" / "ctel.db"


def unreadable(folder: Path) -> Path:
    path = good_db(folder)
    path.chmod(0)
    return path


Problem = Callable[[Path], Path]

#: (problem, exit code, phrase): for every command that opens the database.
DB_PROBLEMS: list[tuple[Problem, int, str]] = [
    (missing_dir, 1, "does not exist; create it (mkdir -p"),
    (a_directory, 1, "is a directory, not a database file"),
    (not_a_database, 1, "is not a SQLite database"),
    (corrupt, 1, "is corrupt (database disk image is malformed); restore it from a backup"),
    (schema_too_new, 2, f"newer than this ctel knows ({SCHEMA_VERSION}); upgrade"),
]

#: (problem, exit code, phrase): met only under file permissions (see ``CONFINE``).
PERMISSION_PROBLEMS: list[tuple[Problem, int, str]] = [
    (read_only_file, 1, "is read-only for this user, and ctel must write to it"),
    (read_only_dir, 1, "is not writable by this user, and SQLite must create"),
    (new_in_read_only_dir, 1, "cannot create"),
    (unreadable, 1, "cannot be opened by this user (permission denied)"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for path in (tmp_path, *tmp_path.rglob("*")):  # let pytest remove what was made 0555
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


# -- ctel serve --------------------------------------------------------------------------


def serve(db: Path | str, *args: str) -> list[str]:
    return ["serve", "--db", str(db), "--port", str(free_port()), "--workers", "1", *args]


#: (case, command, environment, exit code, phrase)
SETTINGS_CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    ("port out of range", ["serve", "--port", "99999"], {}, 2, "--port 99999: must be a TCP"),
    ("port 0", ["serve", "--port", "0"], {}, 2, "--port 0: must be a TCP port from 1 to 65535"),
    ("port as a variable", ["serve"], {"CTEL_PORT": "eighty"}, 2, "CTEL_PORT='eighty': must"),
    ("port not a number", ["serve", "--port", "abc"], {}, 2, "--port: invalid int value: 'abc'"),
    ("negative workers", ["serve", "--workers", "-1"], {}, 2, "--workers -1: must be 0 or more"),
    ("workers variable", ["serve"], {"CTEL_WORKERS": "-3"}, 2, "CTEL_WORKERS='-3': must be 0"),
    ("host not an address", ["serve", "--host", "999.1.1.1"], {}, 2, "must be an IP address"),
    ("host name", ["serve", "--host", "localhost"], {}, 2, "--host localhost: must be an IP"),
    ("body limit", ["serve"], {"CTEL_MAX_BODY_BYTES": "abc"}, 2, "must be a whole number"),
    ("log level", ["serve"], {"CTEL_LOG_LEVEL": "loud"}, 2, "must be one of debug, info"),
    ("empty db", ["serve", "--db", ""], {}, 2, "--db : must be a SQLite file path"),
    ("retention", ["serve", "--retention-days", "-2"], {}, 2, "--retention-days -2.0: must"),
    ("prefix", ["serve"], {"CTEL_PREFIX": "api/"}, 2, "CTEL_PREFIX='api/': must start with /"),
]


@pytest.mark.parametrize(
    "command, env, code, phrase",
    [case[1:] for case in SETTINGS_CASES],
    ids=[c[0] for c in SETTINGS_CASES],
)
def test_bad_settings(
    folder: Path,
    command: list[str],
    env: dict[str, str],
    code: int,
    phrase: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In this process: refused before anything starts, as ``test_port_in_use`` shows of a
    real one."""
    for name, value in {"CTEL_DB": str(folder / "ctel.db"), **env}.items():
        monkeypatch.setenv(name, value)
    got: int | str | None
    try:
        got = cli.main(command)
    except SystemExit as exc:  # argparse's usage errors
        got = exc.code
    assert got == code
    err = capsys.readouterr().err
    assert err.startswith("ctel") and phrase in err and len(err.splitlines()) == 1, err
    assert not (folder / "ctel.db").exists()  # refused before anything was made


def test_port_in_use(folder: Path) -> None:
    """Whoever holds the port (a plain socket here; a second ctel is the same, as granian
    shares ports between its own workers but the check does not)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = ctel("serve", "--db", str(folder / "ctel.db"), "--port", str(port))
    assert_one_clear_line(done, 1, f"port {port} on 127.0.0.1 is in use; pick another with")
    assert not (folder / "ctel.db").exists()  # no database made, no token shown for nothing


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_second_server_on_the_same_port(folder: Path) -> None:
    db, _ = fresh_db(folder)
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "connector_telemetry", "serve", "--db", db, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = ctel("serve", "--db", db, "--port", str(port))
        assert_one_clear_line(second, 1, f"port {port} on 127.0.0.1 is in use")
    finally:
        first.terminate()
        first.wait(20)


@pytest.mark.parametrize(
    "host, phrase",
    [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine; use --host 127.0.0.1"),
    ],
)
def test_address_not_here(folder: Path, host: str, phrase: str) -> None:
    assert_one_clear_line(ctel(*serve(folder / "ctel.db", "--host", host)), 1, phrase)


def test_port_not_permitted(folder: Path) -> None:
    unprivileged = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if unprivileged <= 80:
        pytest.skip("this machine lets anyone listen on port 80")
    prefix = ["setpriv", "--bounding-set", "-net_bind_service", "--"] if os.geteuid() == 0 else []
    done = ctel("serve", "--db", str(folder / "ctel.db"), "--port", "80", prefix=prefix)
    assert_one_clear_line(done, 1, "not permitted to listen on port 80: ports below 1024 need")


@pytest.mark.parametrize(
    "problem, code, phrase", DB_PROBLEMS, ids=[p[0].__name__ for p in DB_PROBLEMS]
)
def test_serve_database_problems(folder: Path, problem: Problem, code: int, phrase: str) -> None:
    db = problem(folder)
    assert_one_clear_line(ctel(*serve(db)), code, phrase)


@pytest.mark.parametrize(
    "problem, code, phrase", PERMISSION_PROBLEMS, ids=[p[0].__name__ for p in PERMISSION_PROBLEMS]
)
def test_serve_permission_problems(folder: Path, problem: Problem, code: int, phrase: str) -> None:
    db = problem(folder)
    assert_one_clear_line(ctel(*serve(db), prefix=CONFINE), code, phrase)


def test_confinement_holds(folder: Path) -> None:
    """The permission cases are honest: under ``CONFINE`` (root or not), writing a 0444 file
    and creating a file in a 0555 directory are refused."""
    db = read_only_file(folder)
    (folder / "ro").mkdir(mode=0o555)
    script = f"echo x >> {db} || echo file refused; touch {folder}/ro/f || echo dir refused"
    done = subprocess.run([*CONFINE, "sh", "-c", script], capture_output=True, text=True)
    assert done.stdout.split("\n")[:2] == ["file refused", "dir refused"], done


# -- the other commands that open the database -----------------------------------------

COMMANDS: dict[str, list[str]] = {
    "accounts create": ["accounts", "create"],
    "tokens create": ["tokens", "create", "--account", "a", "--permission", "Magic WAN Read"],
    "tokens list": ["tokens", "list"],
    "tokens revoke": ["tokens", "revoke", "t1"],
    "users create": ["users", "create", "--email", "a@example.com", "--account", "a"],
    "db migrate": ["db", "migrate"],
    "export": ["export", "--account", "a", "--quiet", "-o", os.devnull],
    "import": ["import", "--quiet", os.devnull],
    "purge": ["purge", "--retention-days", "30"],
}
#: Those that write whatever the state of the database (``db migrate`` writes only when
#: the schema is behind; ``tokens list`` and ``export`` only read).
WRITERS = [
    "accounts create",
    "tokens create",
    "tokens revoke",
    "users create",
    "purge",
]


@pytest.mark.parametrize(
    "problem, code, phrase", DB_PROBLEMS, ids=[p[0].__name__ for p in DB_PROBLEMS]
)
def test_every_command_meets_database_problems_alike(
    folder: Path,
    problem: Problem,
    code: int,
    phrase: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = str(problem(folder))
    for name, command in COMMANDS.items():
        assert cli.main([*command, "--db", db]) == code, name
        out, err = capsys.readouterr()
        assert err.startswith("ctel: ") and phrase in err, (name, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert out == "", name


@pytest.mark.parametrize("command", WRITERS)
def test_writers_on_a_read_only_file(folder: Path, command: str) -> None:
    db = read_only_file(folder)
    done = ctel(*COMMANDS[command], "--db", str(db), prefix=CONFINE)
    assert_one_clear_line(done, 1, "is read-only for this user, and ctel must write to it")


def test_readers_of_a_read_only_file_work(folder: Path) -> None:
    """What only reads needs no write access (the schema is current, nothing to migrate)."""
    db = read_only_file(folder)
    for command in ("tokens list", "export", "db migrate"):
        done = ctel(*COMMANDS[command], "--db", str(db), prefix=CONFINE)
        assert done.returncode == 0, (command, done.stderr)


@pytest.mark.parametrize("command", ["tokens list", "accounts create"])
def test_commands_in_a_read_only_directory(folder: Path, command: str) -> None:
    db = read_only_dir(folder)
    done = ctel(*COMMANDS[command], "--db", str(db), prefix=CONFINE)
    assert_one_clear_line(done, 1, "is not writable by this user, and SQLite must create")


def test_files_named_on_the_command_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(good_db(folder))
    assert cli.main(["import", "--db", db, str(folder / "missing.ndjson")]) == 1
    assert capsys.readouterr().err == f"ctel: {folder}/missing.ndjson: No such file or directory\n"
    assert cli.main(["export", "--db", db, "--account", "a", "-o", str(folder)]) == 1
    assert "Is a directory" in capsys.readouterr().err


# -- --verbose and CTEL_LOG_LEVEL=debug ------------------------------------------------


@pytest.mark.parametrize(
    "flags, env",
    [(["--verbose"], {}), ([], {"CTEL_LOG_LEVEL": "debug"})],
    ids=["--verbose", "CTEL_LOG_LEVEL"],
)
def test_verbose_shows_the_traceback(folder: Path, flags: list[str], env: dict[str, str]) -> None:
    db = missing_dir(folder)
    done = ctel(*serve(db, *flags), env=env)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "sqlite3.OperationalError: unable to open database file" in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"ctel: directory {db.parent} does not exist")
    listing = ctel("tokens", "list", "--db", str(db), *flags, env=env)
    assert listing.returncode == 1 and "Traceback" in listing.stderr


# -- a worker that cannot start --------------------------------------------------------


def test_a_worker_that_fails_stops_the_server(folder: Path) -> None:
    """The master's checks pass, then every worker finds the database gone: made real by
    a ``sitecustomize`` that moves each forked process (granian's workers) into /proc,
    where the relative ``--db`` path cannot be created. The server stops at once, with the
    worker's reason, instead of serving nothing or respawning it."""
    fresh_db(folder)
    hook = folder / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\nos.register_at_fork(after_in_child=lambda: os.chdir('/proc'))\n"
    )
    port = free_port()
    command = ["serve", "--db", "ctel.db", "--port", str(port), "--workers", "2"]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "connector_telemetry", *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(hook)},
    )
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("ctel: serving ctel.db on"), done.stderr
    assert len(lines) == 2 and "Traceback" not in done.stderr, done.stderr
    assert (
        lines[1].startswith("ctel: worker ")
        and "failed: cannot open or create ctel.db" in (lines[1])
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nothing is left listening


# -- PostgreSQL ------------------------------------------------------------------------


def test_postgres_problems(
    postgres_server: TemporaryPostgres, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"postgresql://ctel:secret@/nowhere?host={folder}&port=1"
    newer = postgres_server.new_database("ctel_newer")
    done = ctel("db", "migrate", "--db", newer)
    assert done.returncode == 0, done.stderr
    read_only = postgres_server.new_database("ctel_ro")
    with psycopg.connect(newer, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 5,))
    with psycopg.connect(read_only, autocommit=True) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone() or ("",)
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    cases = [
        (dead, 1, "cannot connect to postgresql://ctel:***@/nowhere"),
        (newer, 2, f"newer than this ctel knows ({SCHEMA_VERSION}); upgrade"),
        (read_only, 1, "is read-only (a standby?), and ctel must write to it"),
        ("postgresql://ctel:secret@[::1/x", 2, "is not a usable PostgreSQL URL"),
    ]
    for db, code, phrase in cases:
        assert_one_clear_line(ctel(*serve(db)), code, phrase)
        for name, command in COMMANDS.items():
            assert cli.main([*command, "--db", db]) == code, (name, db)
            err = capsys.readouterr().err
            assert err.startswith("ctel: ") and phrase in err, (name, err)
            assert len(err.splitlines()) == 1 and "secret" not in err, (name, err)


def test_a_worker_killed_later_stops_the_server_with_a_line(folder: Path) -> None:
    """Not a start-up failure, but the same rule: a worker that dies (here SIGKILLed, as
    the OOM killer would) brings the server down with one line, not a respawn loop."""
    db, _ = fresh_db(folder)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "connector_telemetry", *serve(db)[:3], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGKILL)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 1, err
    last = err.splitlines()[-1]
    assert last == "ctel: a worker exited unexpectedly, and the server stopped with it", err
    assert "Traceback" not in err
