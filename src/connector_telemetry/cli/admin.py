"""``ctel``: serve the API, manage accounts and credentials, and use the API as a client.

Commands that create something print only the value asked for on stdout (an id,
a secret), everything else on stderr, so scripts can capture them. A command that
fails prints one line saying what is wrong and what to do (``failures``), with the
traceback only under ``--verbose`` or ``CTEL_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, BinaryIO, NoReturn

from connector_telemetry import __version__, agent, failures
from connector_telemetry.cli.client import Failed, UsageError
from connector_telemetry.errors import ConfigError
from connector_telemetry.models import PERMISSION_LABELS, PERMISSION_NAMES
from connector_telemetry.service import credentials
from connector_telemetry.settings import SETTINGS, Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store


def _err(*parts: object) -> None:
    print(*parts, file=sys.stderr)


def _store(args: argparse.Namespace) -> tuple[Settings, Store]:
    settings: Settings = args.settings
    store = open_store(settings)
    store.migrate()
    return settings, store


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", help="a SQLite file or a postgresql:// URL (default: $CTEL_DB or ./ctel.db)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="on failure, print the full traceback too"
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    if args.verbose:
        overrides["log_level"] = "debug"
    return overrides


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of a command that opens the database: flags named like a setting
    (``--db``, ``--port``, ...) override its ``CTEL_*`` variable, under the same rule."""
    return Settings.from_env(os.environ, **_overrides(args))


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    return value


def _debug(args: argparse.Namespace) -> bool:
    if getattr(args, "verbose", False):
        return True
    try:
        return Settings.from_env(os.environ).debug
    except ConfigError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    from connector_telemetry.server import serve

    return serve(args.settings, demo=args.demo)


def cmd_agent(args: argparse.Namespace) -> int:
    return agent.run(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from connector_telemetry import simulate

    return simulate.run(args)


def cmd_accounts_create(args: argparse.Namespace) -> int:
    _, store = _store(args)
    print(credentials.create_account(store, args.id, args.name))
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    _, store = _store(args)
    token, secret = credentials.create_token(
        store, args.account, args.permission, args.name, args.expires_on
    )
    _err(
        f"token id {token.id} ({args.permission}) for account {token.account_id}; "
        "the secret below is shown only once"
    )
    print(secret)
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    _, store = _store(args)
    for t in store.list_tokens():
        state = "revoked" if t.revoked_at else "active"
        print(
            "\t".join(
                [
                    t.id,
                    t.account_id,
                    PERMISSION_LABELS[t.permission],
                    state,
                    t.expires_on or "-",
                    t.name,
                ]
            )
        )
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    _, store = _store(args)
    credentials.revoke_token(store, args.token_id)
    _err(f"token {args.token_id} revoked")
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    _, store = _store(args)
    key = credentials.create_user(store, args.email, args.account)
    _err(f"user {args.email}; the Global API Key below is shown only once")
    print(key)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from connector_telemetry.progress import Progress
    from connector_telemetry.service.backfill import export_openmetrics
    from connector_telemetry.service.transfer import export_account

    if args.format == "ndjson" and args.connector is not None:
        raise UsageError("--connector goes with --format openmetrics (NDJSON is the whole account)")
    _, store = _store(args)
    progress = Progress("export", enabled=None if not args.quiet else False)

    def write(out: BinaryIO) -> int:
        if args.format == "openmetrics":
            return export_openmetrics(store, args.account, args.connector, out, progress, args.job)
        return export_account(store, args.account, out, progress)

    if args.output in (None, "-"):
        count = write(sys.stdout.buffer)
    else:
        with open(args.output, "wb") as out:
            count = write(out)
    what = "snapshots" if args.format == "openmetrics" else "records"
    _err(f"exported {count} {what} of account {args.account}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from connector_telemetry.progress import Progress
    from connector_telemetry.service.transfer import import_account

    _, store = _store(args)
    progress = Progress("import", enabled=None if not args.quiet else False)
    if args.input in (None, "-"):
        counts = import_account(store, sys.stdin.buffer, progress)
    else:
        with open(args.input, "rb") as stream:
            counts = import_account(store, stream, progress)
    _err("imported " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    import time

    from connector_telemetry.service.retention import purge

    _, store = _store(args)
    while True:
        gone = purge(store, args.retention_days)
        if gone:
            _err(f"purged {gone} events and snapshots older than {args.retention_days} days")
        if not args.every:
            return 0
        time.sleep(args.every)


def cmd_backup(args: argparse.Namespace) -> int:
    from connector_telemetry.store.backup import backup

    copied = backup(args.settings.db, args.output, force=args.force)
    _err(
        f"backed up {args.settings.db} to {copied.path}: {copied.bytes} bytes in "
        f"{copied.seconds:.2f} s, schema version {copied.schema_version}"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from connector_telemetry.store.backup import restore

    copied = restore(args.backup, args.settings.db, force=args.force)
    _err(
        f"restored {args.backup} into {copied.path}: {copied.bytes} bytes in "
        f"{copied.seconds:.2f} s, schema version {copied.schema_version}"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from connector_telemetry import doctor

    sources = Settings.sources(os.environ, **_overrides(args))
    checks = doctor.diagnose(args.settings, sources)
    if (
        args.json or getattr(args, "output", None) == "json"
    ):  # ctel doctor --json, ctel --json doctor
        print(json.dumps(doctor.as_json(checks), indent=2))
    else:
        print(doctor.render(checks))
    return 0 if all(c.ok for c in checks) else 1


def cmd_db_migrate(args: argparse.Namespace) -> int:
    _, store = _store(args)
    _err(f"schema is at version {store.migrate()}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure (the usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ctel", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ctel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the API (the default command)")
    _add_db(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8787)")
    serve.add_argument("--workers", type=int, help="worker processes (default: CPU cores)")
    serve.add_argument(
        "--demo", action="store_true", help="fill a fresh database with a small demo fleet"
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text (default) or json: one JSON object per line, one per request",
    )
    serve.add_argument(
        "--retention-days",
        type=float,
        help="purge telemetry recorded more than N days ago (default: keep all)",
    )
    serve.add_argument(
        "--test-mode",
        action="store_true",
        default=None,
        help="serve the test API under /_ctel/ (reset, faults, rate limit, journal, clock); "
        "for test suites only, on a database created in test mode",
    )
    serve.set_defaults(func=cmd_serve)

    accounts = sub.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create = accounts.add_parser("create", help="create an account; prints its id")
    _add_db(create)
    create.add_argument("--id", help="account id (at most 32 characters; default: generated)")
    create.add_argument("--name")
    create.set_defaults(func=cmd_accounts_create)

    tokens = sub.add_parser("tokens", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    create = tokens.add_parser("create", help="issue a token; prints its secret once")
    _add_db(create)
    create.add_argument("--account", required=True)
    create.add_argument("--permission", required=True, choices=list(PERMISSION_NAMES))
    create.add_argument("--name")
    create.add_argument("--expires-on", help="ISO 8601 time after which the token is invalid")
    create.set_defaults(func=cmd_tokens_create)
    listing = tokens.add_parser("list", help="list tokens (never their secrets)")
    _add_db(listing)
    listing.set_defaults(func=cmd_tokens_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    _add_db(revoke)
    revoke.add_argument("token_id")
    revoke.set_defaults(func=cmd_tokens_revoke)

    users = sub.add_parser("users", help="manage users (X-Auth-Email + X-Auth-Key)")
    users_sub = users.add_subparsers(dest="action", required=True)
    create = users_sub.add_parser("create", help="create a user; prints its Global API Key")
    _add_db(create)
    create.add_argument("--email", required=True)
    create.add_argument(
        "--account",
        required=True,
        action="append",
        help="an account the user can use (repeat for several)",
    )
    create.set_defaults(func=cmd_users_create)

    agent_parser = sub.add_parser(
        "agent",
        help="report this Linux host's telemetry to a ctel server",
        description="Report this Linux host's telemetry (/proc, /sys) and lifecycle events "
        "to a ctel server; spools to disk while the server cannot be reached.",
    )
    agent.add_arguments(agent_parser)
    agent_parser.set_defaults(func=cmd_agent)

    from connector_telemetry.simulate import add_arguments as add_simulate_arguments

    simulate = sub.add_parser(
        "simulate", help="create connectors and backfill realistic histories through the API"
    )
    add_simulate_arguments(simulate)
    simulate.set_defaults(func=cmd_simulate)

    export = sub.add_parser(
        "export",
        help="write an account's data as NDJSON, or its snapshot history as OpenMetrics "
        "(for promtool tsdb create-blocks-from openmetrics)",
    )
    _add_db(export)
    export.add_argument("--account", required=True)
    export.add_argument(
        "--format",
        choices=("ndjson", "openmetrics"),
        default="ndjson",
        help="ndjson: everything, for ctel import (default); openmetrics: the snapshots as "
        "the fleet's metrics with their times, for Prometheus",
    )
    export.add_argument("--connector", help="openmetrics: only this connector's history")
    export.add_argument(
        "--job",
        default="ctel-fleet",
        help="openmetrics: the job label of every series, as the fleet's scrape config names "
        "it (default ctel-fleet; empty: none)",
    )
    export.add_argument("--output", "-o", help="file to write (default: stdout)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)
    imp = sub.add_parser("import", help="read an export into this store (idempotent)")
    _add_db(imp)
    imp.add_argument("input", nargs="?", help="file to read (default: stdin)")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=cmd_import)
    purge = sub.add_parser("purge", help="delete telemetry older than the retention")
    _add_db(purge)
    purge.add_argument("--retention-days", type=float, required=True)
    purge.add_argument("--every", type=_seconds, help="repeat every N seconds (default: once)")
    purge.set_defaults(func=cmd_purge)

    backup = sub.add_parser(
        "backup", help="copy a SQLite store, even while it serves, to a new file"
    )
    _add_db(backup)
    backup.add_argument("-o", "--output", required=True, help="the backup file to write")
    backup.add_argument("--force", action="store_true", help="replace an existing file")
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser("restore", help="replace a (stopped) SQLite store with a backup")
    _add_db(restore)
    restore.add_argument("backup", help="a file written by ctel backup")
    restore.add_argument("--force", action="store_true", help="replace an existing database")
    restore.set_defaults(func=cmd_restore)

    doctor_parser = sub.add_parser(
        "doctor", help="check the store, its schema, disk, clock and settings (exit 0/1)"
    )
    _add_db(doctor_parser)
    doctor_parser.add_argument("--json", action="store_true", help="one JSON document")
    doctor_parser.set_defaults(func=cmd_doctor)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="action", required=True
    )
    migrate = db.add_parser("migrate", help="bring the schema up to date")
    _add_db(migrate)
    migrate.set_defaults(func=cmd_db_migrate)

    from connector_telemetry.cli import client, telemetry

    client.add_globals(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    client.add_globals(common, suppress=True)
    client.add_commands(sub, common)
    telemetry.add_commands(sub, common)
    return parser


#: Options of the client commands that may come before the command (not ``serve``'s).
_CLIENT_GLOBALS = ("--base-url", "--token", "--email", "--key", "--account", "--json", "--ndjson")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0].split("=")[0] if argv else ""
    if not argv or (
        first.startswith("-") and first not in ("-h", "--help", "--version", *_CLIENT_GLOBALS)
    ):
        argv.insert(0, "serve")
    args: Any = parser.parse_args(argv)
    db = None
    try:
        if hasattr(args, "db"):
            args.settings = _settings(args)
            db = args.settings.db
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        _err(f"ctel: {exc} (see ctel {args.command} --help)")
        return 2
    except Failed:
        return 1
    except Exception as exc:
        code, message = failures.explain(exc, db)
        if _debug(args):
            traceback.print_exc()
        _err(f"ctel: {message}")
        return code
