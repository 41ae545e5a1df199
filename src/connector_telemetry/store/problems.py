"""Why a database cannot be used, in one line that says what to do: ``explain(db, exc)``
turns a driver's exception (``sqlite3.Error``, ``psycopg.Error``) met while opening,
migrating or writing ``db`` into an exit code and a sentence, or ``None`` when the
exception is not one of the known problems. SQLite's bare "unable to open database
file" is completed by looking at the path (missing directory, a directory, no
permission). Messages never carry a URL's password (``describe``).
"""

from __future__ import annotations

import os
import sqlite3

from connector_telemetry.store import describe, is_postgres


def explain(db: str, exc: BaseException) -> tuple[int, str] | None:
    if isinstance(exc, sqlite3.Error) and not is_postgres(db):
        return _sqlite(db, exc)
    if type(exc).__module__.split(".")[0] in ("psycopg", "psycopg_pool"):
        return _postgres(db, exc)
    return None


def _sqlite(path: str, exc: sqlite3.Error) -> tuple[int, str] | None:
    name: str = getattr(exc, "sqlite_errorname", "") or ""
    folder = os.path.dirname(os.path.abspath(path))
    if name.startswith("SQLITE_CANTOPEN") or str(exc) == "unable to open database file":
        return 1, _cannot_open(path, folder, exc)
    if name == "SQLITE_READONLY_DIRECTORY":
        return 1, (
            f"directory {folder} is not writable by this user, and SQLite must create "
            f"{path}-wal and {path}-shm beside the database; make the directory writable, "
            "or move the database to one that is"
        )
    if name.startswith("SQLITE_READONLY") or str(exc) == "attempt to write a readonly database":
        return 1, (
            f"{path} is read-only for this user, and ctel must write to it; make it writable "
            "(chmod u+w, or chown it to this user) or run ctel as its owner"
        )
    if name == "SQLITE_NOTADB" or str(exc) == "file is not a database":
        return 1, (
            f"{path} is not a SQLite database; give --db a ctel database, or the path "
            "of a new file to create"
        )
    if name.startswith("SQLITE_CORRUPT") or "malformed" in str(exc):
        return 1, (
            f"{path} is corrupt ({exc}); restore it from a backup (the sqlite3 shell's "
            "`.recover` may save part of it)"
        )
    if name == "SQLITE_FULL":
        return 1, f"the disk holding {path} is full; free some space and start again"
    if name.startswith("SQLITE_IOERR"):
        return 1, f"I/O error on {path} ({name}); check the disk and its file system"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc):
        return 1, (
            f"{path} stayed locked by another process for longer than busy_timeout_ms; "
            "try again, or stop the process holding it"
        )
    return None


def _cannot_open(path: str, folder: str, exc: sqlite3.Error) -> str:
    if os.path.isdir(path):
        return (
            f"{path} is a directory, not a database file; give --db a file path "
            f"such as {os.path.join(path, 'ctel.db')}"
        )
    if not os.path.exists(folder):
        return (
            f"directory {folder} does not exist; create it (mkdir -p {folder}) "
            "or give --db another path"
        )
    if not os.path.isdir(folder):
        return f"{folder} is not a directory; give --db another path"
    if os.path.exists(path):
        if not os.access(path, os.R_OK | os.W_OK, effective_ids=True):
            return (
                f"{path} cannot be opened by this user (permission denied); make it "
                "readable and writable (chmod, chown) or run ctel as its owner"
            )
    elif not os.access(folder, os.W_OK | os.X_OK, effective_ids=True):
        return (
            f"cannot create {path}: directory {folder} is not writable by this user; "
            "make it writable or give --db another path"
        )
    return (
        f"cannot open or create {path} ({exc}); check the path, and that this user "
        f"may create files in {folder}"
    )


def _postgres(db: str, exc: BaseException) -> tuple[int, str] | None:
    import psycopg

    name = describe(db)
    # psycopg's connection errors span lines, and a malformed URL is quoted whole
    text = " ".join(str(exc).replace(db, name).split())
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return 1, (
            f"{name} is read-only (a standby?), and ctel must write to it; "
            "give --db the primary's URL"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return 1, (
            f"{name}: the database user may not do what ctel needs ({text}); grant it "
            "ownership of the database (or of its public schema)"
        )
    if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:  # not the server's
        return 2, f"{name} is not a usable PostgreSQL URL: {text}"
    if isinstance(exc, psycopg.OperationalError):
        return 1, f"cannot connect to {name}: {text}"
    return None
