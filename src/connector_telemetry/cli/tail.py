"""``ctel events|snapshots tail``: follow a connector live.

First choice is the server's Server-Sent Events stream
(``.../telemetry/events/stream``, ``.../telemetry/snapshots/stream``), read with httpx and
the same auth headers as the SDK (the SDK has no stream method). Each message's ``id:``
is kept; when the connection drops, tail reconnects with ``Last-Event-ID`` so nothing is
missed or repeated. A server without the stream (404: an older ctel, streams switched
off, or Cloudflare) makes tail poll instead, and say so on stderr: it lists from the
start time on every ``--interval`` seconds and fetches each item not seen yet. Polling
follows ``(t, n)``, so an item recorded late with an old ``t`` (an agent replaying its
spool) is still found as long as its ``t`` is after the start, but polling costs a request
per interval. Ctrl-C stops either way with exit code 0.

Items are printed as they come: a table row each on a terminal, else (and with
``--json`` / ``--ndjson``) one JSON item a line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from connector_telemetry.cli.client import Client, Failed, _err, output_mode, report_api_error
from connector_telemetry.cli.output import Output, console, event_id, row

RETRY = 1.0


class _NoStream(Exception):
    pass


def tail(client: Client, what: str, args: argparse.Namespace) -> int:
    printer = _Printer(what, output_mode(args))
    started = time.time()  # polling starts here, not when the stream turned out missing
    try:
        try:
            _stream(client, what, args, printer)
        except _NoStream as exc:
            _err(f"ctel: {exc} has no stream endpoint; polling every {args.interval:g} s instead")
            _poll(client, what, args, printer, started)
    except KeyboardInterrupt:
        return 0
    return 0


class _Printer:
    def __init__(self, what: str, mode: str) -> None:
        self.what = what
        self.table = mode == "table" and sys.stdout.isatty()
        self.out = Output("ndjson")

    def __call__(self, item: Any) -> None:
        if self.table:
            console().print(*row(self.what, item), sep="  ")
        else:
            self.out.line(item)


def _stream_url(client: Client, what: str, connector_id: str) -> str:
    return (
        f"{client.base_url}/accounts/{client.account}/magic/connectors/{connector_id}"
        f"/telemetry/{what}s/stream"
    )


def _stream(client: Client, what: str, args: argparse.Namespace, emit: _Printer) -> None:
    url = _stream_url(client, what, args.connector_id)
    params: dict[str, str] = {}
    if args.from_ is not None:
        params["from"] = repr(args.from_)
    if what == "event" and args.kind:
        params["k"] = args.kind
    last_id: str | None = None
    while True:
        headers = {**client.headers, "Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
            params.pop("from", None)
        try:
            with httpx.stream(
                "GET", url, params=params, headers=headers, timeout=httpx.Timeout(10, read=60)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = None
                    if last_id is None and _no_route(response.status_code, body):
                        raise _NoStream(url)
                    report_api_error(response.status_code, body)
                    raise Failed
                for message_id, data in _messages(response.iter_lines()):
                    import json

                    emit(json.loads(data))
                    if message_id is not None:
                        last_id = message_id
        except httpx.TransportError as exc:
            if last_id is None:
                _err(f"ctel: cannot reach {url}: {exc}")
                raise Failed from None
        time.sleep(RETRY)  # dropped: resume after the last item seen


def _no_route(status: int, body: Any) -> bool:
    """404, or Cloudflare's "Could not route" (7000, 7003) that ctel and
    api.cloudflare.com answer for a path they do not serve."""
    if status == 404:
        return True
    errors = body.get("errors") if isinstance(body, dict) else None
    return status in (400, 405) and any(
        isinstance(e, dict) and e.get("code") in (7000, 7003) for e in errors or []
    )


def _messages(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(id, data) of each SSE message with data (comments and keep-alives skipped)."""
    message_id: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield message_id, "\n".join(data)
            message_id, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            message_id = value
        elif field == "data":
            data.append(value)


def _poll(
    client: Client, what: str, args: argparse.Namespace, emit: _Printer, started: float
) -> None:
    from connector_telemetry.cli.telemetry import _number, _resource

    resource = _resource(client, what).with_raw_response
    start = args.from_ if args.from_ is not None else started
    seen: set[str] = set()
    while True:
        query: dict[str, Any] = {"from_": start, "to": time.time() + 86400, "limit": 1000}
        if what == "event" and args.kind:
            query["k"] = args.kind
        cursor = None
        while True:
            page = client.call(
                resource.list, args.connector_id, **query, **({"cursor": cursor} if cursor else {})
            )
            for item in page.get("items", []):
                key = event_id(item) if what == "event" else repr(item.get("t"))
                if key in seen:
                    continue
                seen.add(key)
                if what == "event":
                    full = client.call(
                        resource.get,
                        _number(repr(item["n"])),
                        connector_id=args.connector_id,
                        event_t=_number(repr(item["t"])),
                    )
                else:
                    full = client.call(
                        resource.get, _number(repr(item["t"])), connector_id=args.connector_id
                    )
                emit(full)
            cursor = page.get("cursor")
            if not cursor:
                break
        time.sleep(args.interval)
