"""``ctel simulate``: its arguments and what running it does. Connector ids go to
stdout, one a line, as each is created; the progress bar, the summary and errors go
to stderr. Exit codes: 0 done, 1 refused or unreachable, 2 bad arguments."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import UTC, datetime

from connector_telemetry.simulate.plan import (
    MAX_CONNECTORS,
    MAX_DAYS,
    ConfigError,
    SimConfig,
    default_start,
)
from connector_telemetry.simulate.progress import Progress


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what}: must be finite, got {text!r}")
    return value


def _connectors(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_CONNECTORS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_CONNECTORS}, got {text!r}"
        )
    return int(text)


def _days(text: str) -> float:
    value = _number(text, "days")
    if not 0 < value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be > 0 and at most {MAX_DAYS:g}, got {text!r}")
    return value


def _interval(text: str) -> float:
    value = _number(text, "interval")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (seconds), got {text!r}")
    return value


def _seed(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


def _start(text: str) -> float:
    value = _number(text, "start")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be epoch seconds >= 0, got {text!r}")
    return value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="service root, e.g. http://host:8787 (a URL ending in /client/v4 works too)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("CLOUDFLARE_API_TOKEN"),
        help="API token with Magic WAN Write (default: $CLOUDFLARE_API_TOKEN)",
    )
    parser.add_argument("--account", required=True, metavar="ID", help="account id")
    parser.add_argument(
        "--connectors", type=_connectors, default=3, metavar="N", help="connectors (default 3)"
    )
    parser.add_argument(
        "--days", type=_days, default=7.0, metavar="D", help="days of history (default 7)"
    )
    parser.add_argument(
        "--interval",
        type=_interval,
        default=300.0,
        metavar="SECONDS",
        help="seconds between snapshots (default 300)",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="random seed (default 0); same seed and start, same data",
    )
    parser.add_argument(
        "--start",
        type=_start,
        metavar="EPOCH_SECONDS",
        help="first moment of the history (default: now minus --days, down to the minute)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    import httpx  # here, not at the top: `ctel` starts faster for every other command

    from connector_telemetry.simulate.send import SimulateError, simulate

    if not args.token:
        print(
            "ctel simulate: error: --token is required (or $CLOUDFLARE_API_TOKEN)", file=sys.stderr
        )
        return 2
    start = args.start if args.start is not None else default_start(time.time(), args.days)
    try:
        config = SimConfig(
            start=start,
            seed=args.seed,
            connectors=args.connectors,
            days=args.days,
            interval=args.interval,
        )
    except ConfigError as exc:
        print(f"ctel simulate: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(
            f"ctel simulate: {config.connectors} connector(s), {config.days:g} day(s) from "
            f"{_iso(config.start)} (--start {config.start:.0f}), a snapshot every "
            f"{config.interval:g} s, seed {config.seed}",
            file=sys.stderr,
        )
    progress = Progress(enabled=False if args.quiet else None)

    def created(connector_id: str) -> None:
        progress.clear()
        print(connector_id, flush=True)

    try:
        with httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0)) as client:
            simulate(
                client,
                args.server,
                args.token,
                args.account,
                config,
                progress=progress,
                on_created=created,
            )
    except SimulateError as exc:
        progress.close()
        print(f"ctel simulate: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"ctel simulate: {progress.summary()}", file=sys.stderr)
    return 0
