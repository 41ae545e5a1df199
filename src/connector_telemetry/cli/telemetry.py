"""``ctel events|snapshots list|get|latest|tail``.

``list`` takes ``--from``/``--to`` as the API does (``--since``/``--until`` are the same
options under shorter names; default: the last 24 hours) and follows the cursor to the end
or to ``--limit`` items, with a progress bar on a terminal once a read takes more than
one page. ``events get CONNECTOR 1700000000.3`` takes the id as the API does
(``{t}.{n}``); the SDK formats path numbers with ``str()``, so ``t`` and ``n`` are passed
as integers when whole, and the path is exactly the id given."""

from __future__ import annotations

import argparse
import time
from typing import Any

from connector_telemetry.cli.client import Client, UsageError, output_mode
from connector_telemetry.cli.times import parse_time

PAGE = 1000


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() and "e" not in text.lower() else value


def split_event_id(text: str) -> tuple[float, float]:
    """``1700000000.3`` -> (1700000000, 3); ``1700000000.5.3`` -> (1700000000.5, 3)."""
    t, dot, n = text.rpartition(".")
    try:
        if not dot:
            raise ValueError
        return _number(t), _number(n)
    except ValueError:
        raise UsageError(
            f"{text!r}: an event id is T.N (time recorded and sequence), e.g. 1700000000.3"
        ) from None


def _resource(client: Client, what: str) -> Any:
    connectors = client.sdk.magic_transit.connectors
    return connectors.events if what == "event" else connectors.snapshots


def read_list(client: Client, what: str, connector_id: str, args: argparse.Namespace) -> list[Any]:
    from connector_telemetry.progress import Progress

    resource = _resource(client, what).with_raw_response
    now = time.time()
    start = args.from_ if args.from_ is not None else now - 86400
    end = args.to if args.to is not None else now
    query: dict[str, Any] = {"from_": start, "to": end}
    if what == "event" and args.kind:
        query["k"] = args.kind
    items: list[Any] = []
    cursor = None
    progress = Progress(f"{what}s", stream=None, enabled=False if args.quiet else None)
    try:
        while True:
            want = PAGE if args.limit is None else min(PAGE, args.limit - len(items))
            page = client.call(
                resource.list,
                connector_id,
                **query,
                limit=want,
                **({"cursor": cursor} if cursor else {}),
            )
            items += page.get("items", [])
            cursor = page.get("cursor")
            if not cursor or (args.limit is not None and len(items) >= args.limit):
                return items
            progress.advance(len(page.get("items", [])), "read")
    finally:
        if progress.done:
            progress.close()


def cmd_telemetry(args: argparse.Namespace) -> int:
    from connector_telemetry.cli.output import Output

    what = args.what
    if args.action == "tail":
        from connector_telemetry.cli.tail import tail

        return tail(Client(args), what, args)
    client = Client(args)
    out = Output(output_mode(args))
    resource = _resource(client, what).with_raw_response
    if args.action == "list":
        out.items(what, read_list(client, what, args.connector_id, args))
    elif args.action == "latest":
        latest = _resource(client, what).latest.with_raw_response
        out.items(what, client.call(latest.list, args.connector_id).get("items", []))
    elif what == "event":
        t, n = split_event_id(args.item_id)
        out.one(what, client.call(resource.get, n, connector_id=args.connector_id, event_t=t))
    else:
        try:
            t = _number(args.item_id)
        except ValueError:
            raise UsageError(f"{args.item_id!r}: a snapshot id is its time t") from None
        out.one(what, client.call(resource.get, t, connector_id=args.connector_id))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    for what in ("event", "snapshot"):
        group = sub.add_parser(
            f"{what}s", help=f"read a connector's telemetry {what}s (API client)"
        ).add_subparsers(dest="action", required=True, metavar="ACTION")
        p = group.add_parser("list", parents=[parent], help=f"{what}s recorded in a time range")
        p.add_argument("connector_id")
        p.add_argument(
            "--from",
            "--since",
            dest="from_",
            type=parse_time,
            metavar="TIME",
            help="start (epoch, RFC 3339 or a duration ago such as 2h; default 24h)",
        )
        p.add_argument(
            "--to",
            "--until",
            dest="to",
            type=parse_time,
            metavar="TIME",
            help="end (same forms; default now)",
        )
        p.add_argument("--limit", type=_positive, help="at most this many items")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if what == "event":
            p.add_argument("-k", "--kind", help="only events of this kind")
        p = group.add_parser("get", parents=[parent], help=f"one {what}")
        p.add_argument("connector_id")
        p.add_argument("item_id", metavar="EVENT_ID" if what == "event" else "T")
        p = group.add_parser("latest", parents=[parent], help=f"the latest {what}s")
        p.add_argument("connector_id")
        p = group.add_parser(
            "tail", parents=[parent], help=f"follow new {what}s live (Ctrl-C to stop)"
        )
        p.add_argument("connector_id")
        p.add_argument(
            "--from",
            "--since",
            dest="from_",
            type=parse_time,
            metavar="TIME",
            help="first replay what was recorded from this time on",
        )
        p.add_argument(
            "--interval",
            type=float,
            default=2.0,
            help="seconds between polls when the server has no stream (default 2)",
        )
        if what == "event":
            p.add_argument("-k", "--kind", help="only events of this kind")
        for p in group.choices.values():
            p.set_defaults(func=cmd_telemetry, what=what)
