"""``ctel agent``: the command line of the on-host reporter.

:func:`add_arguments` fills a parser (``ctel``'s ``agent`` subcommand, or the
standalone one of :func:`main`), :func:`run` runs the agent until SIGTERM or SIGINT.
Exit codes: 0 after a clean stop, 2 for a usage or set-up error (missing option,
spool directory unusable or held by another agent, httpx not installed). httpx is
imported only by :func:`run`, so ``ctel --help`` works on a server without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from connector_telemetry import __version__
from connector_telemetry.agent import snapshot
from connector_telemetry.agent.interrupts import KINDS
from connector_telemetry.agent.spool import Spool, SpoolLocked

log = logging.getLogger("connector_telemetry.agent")

DEFAULT_SPOOL = "/var/lib/ctel-agent"


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        help="service root, e.g. http://host:8787 (a URL ending in /client/v4 works too)",
    )
    parser.add_argument("--account", metavar="ID", help="account id")
    parser.add_argument("--connector", metavar="ID", help="connector id")
    parser.add_argument(
        "--license-key",
        metavar="KEY",
        help="the connector's license key (default: $CTEL_LICENSE_KEY, which keeps it out "
        "of the process list)",
    )
    parser.add_argument(
        "--interval",
        type=_positive,
        default=60.0,
        metavar="SECONDS",
        help="seconds between snapshots and interrupt checks (default 60)",
    )
    parser.add_argument(
        "--spool",
        metavar="DIR",
        help=f"where records wait until the server has them (default: $STATE_DIRECTORY, "
        f"else {DEFAULT_SPOOL})",
    )
    for kind in KINDS:
        parser.add_argument(
            f"--on-{kind}",
            metavar="CMD",
            help=f"shell command run when a {kind} interrupt arrives (default: only log it)",
        )
    parser.add_argument(
        "--command-timeout",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="kill an interrupt command still running after this long (default 300)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="HTTP timeout per request (default 10)",
    )
    parser.add_argument(
        "--procfs", default="/proc", metavar="DIR", help="procfs root to read (default /proc)"
    )
    parser.add_argument(
        "--sysfs", default="/sys", metavar="DIR", help="sysfs root to read (default /sys)"
    )
    parser.add_argument(
        "--rootfs",
        default="/",
        metavar="DIR",
        help="where the host's root filesystem is, for mount sizes (default /)",
    )
    parser.add_argument(
        "--print-snapshot",
        action="store_true",
        help="print one snapshot of this host as JSON and exit (no server needed)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every record")


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def _print_snapshot(host: snapshot.Host) -> int:
    collected = snapshot.collect(host)
    json.dump(collected.fields, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if collected.failures == 0 else 1


def run(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose)
    host = snapshot.Host(
        procfs=args.procfs, sysfs=args.sysfs, statvfs=snapshot.statvfs_under(args.rootfs)
    )
    if args.print_snapshot:
        return _print_snapshot(host)
    license_key = args.license_key or os.environ.get("CTEL_LICENSE_KEY")
    missing = [
        flag
        for flag, value in (
            ("--server", args.server),
            ("--account", args.account),
            ("--connector", args.connector),
            ("--license-key (or $CTEL_LICENSE_KEY)", license_key),
        )
        if not value
    ]
    if missing:
        log.error("ctel agent: missing %s", ", ".join(missing))
        return 2
    if not args.server.startswith(("http://", "https://")):
        log.error("ctel agent: --server must be an http:// or https:// URL, not %r", args.server)
        return 2
    assert license_key is not None
    spool_dir = args.spool or os.environ.get("STATE_DIRECTORY", "").split(":")[0] or DEFAULT_SPOOL
    try:
        spool = Spool(spool_dir)
    except (OSError, SpoolLocked) as e:
        log.error("ctel agent: spool %s: %s", spool_dir, e)
        return 2
    try:
        from connector_telemetry.agent.client import Client
        from connector_telemetry.agent.runner import Agent
    except ImportError as e:
        log.error("ctel agent: %s (install httpx: pip install 'httpx>=0.27')", e)
        spool.close()
        return 2
    client = Client(args.server, args.account, args.connector, license_key, timeout=args.timeout)
    agent = Agent(
        client=client,
        spool=spool,
        host=host,
        version=__version__,
        interval=args.interval,
        commands={kind: getattr(args, f"on_{kind}") for kind in KINDS},
        command_timeout=args.command_timeout,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.request_stop(signal.Signals(signum).name)  # logs nothing: a handler's place

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "agent %s for connector %s reporting to %s every %s s (spool %s)",
        __version__,
        args.connector,
        client.base,
        args.interval,
        spool_dir,
    )
    try:
        agent.run_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        agent.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connector_telemetry.agent ...``: the agent without the rest of ``ctel``."""
    parser = argparse.ArgumentParser(
        prog="ctel agent", description="Report this Linux host's telemetry to a ctel server."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
