"""What a failed command tells its user: ``explain(exc, db)`` gives the exit code and
the one line printed after ``ctel: ``, for every exception a command can end with.

Exit 2: the command line or a ``CTEL_*`` variable is malformed (fix the invocation), or
the database's schema is newer than this ctel knows (upgrade ctel; nothing was changed).
Exit 1: the invocation is well formed but cannot be carried out (an account that does
not exist, a port in use, a database that cannot be opened or written, an unreachable
PostgreSQL), or an unexpected error, which points at ``--verbose`` for its traceback.
Used by the CLI and by server workers alike, so a problem reads the same wherever it is
met.
"""

from __future__ import annotations

from connector_telemetry.errors import ApiError, ConfigError, ResourceError
from connector_telemetry.store import problems
from connector_telemetry.store.base import SchemaTooNew

USAGE = 2
FAILED = 1


class Explained(Exception):
    """A failure worded elsewhere (a server worker's, read back by the master)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def explain(exc: BaseException, db: str | None) -> tuple[int, str]:
    """``db``: the database the command was given, to name it (None: none opened)."""
    if isinstance(exc, Explained):
        return exc.code, str(exc)
    if isinstance(exc, ConfigError):
        return USAGE, str(exc)
    if isinstance(exc, ApiError):
        return FAILED, exc.message
    if isinstance(exc, SchemaTooNew):
        return USAGE, str(exc)
    if isinstance(exc, ResourceError):
        return FAILED, str(exc)
    if db is not None:
        found = problems.explain(db, exc)
        if found is not None:
            return found
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return FAILED, f"{where}{exc.strerror}"
    # granian's errors carry a Rust backtrace in their text when RUST_BACKTRACE is set
    text = " ".join(str(exc).split("Stack backtrace:")[0].split())
    return FAILED, (
        f"unexpected error: {type(exc).__name__}: {text} "
        "(run again with --verbose for the full traceback)"
    )
