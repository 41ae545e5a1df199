"""``ctel export`` / ``ctel import``: an account's connectors, events and snapshots as
NDJSON, streamed (constant memory), importable idempotently into any store.

Format (version 1): a header line
``{"format": "ctel-export", "version": 1, "account": {"id", "name"}, "exported_at"}``
then, per connector, a ``connector`` line followed by its ``event`` and ``snapshot``
lines. Documents are embedded as JSON exactly as stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Protocol

import orjson

from connector_telemetry import clock
from connector_telemetry.errors import BadRequest
from connector_telemetry.models import Connector
from connector_telemetry.models.connector import table
from connector_telemetry.numbers import wire
from connector_telemetry.store.base import Store

FORMAT, VERSION = "ctel-export", 1
PAGE = 5000


class Progress(Protocol):
    """What an export or import reports its progress to (the CLI's bar)."""

    def advance(self, count: int = 1, note: str = "") -> None: ...
    def close(self) -> None: ...


def connector_record(c: Connector) -> dict[str, Any]:
    """A connector's line: its id, and every other field of its table but the account."""
    fields = {
        name: f.codec.to_export(getattr(c, name)) for name, f in table(type(c)).items() if not f.key
    }
    return {"type": "connector", "id": c.id, "fields": fields}


def connector_from_record(
    account_id: str, record: dict[str, Any], model: type[Connector] = Connector
) -> Connector:
    """The connector of a ``connector`` line (fields it lacks take their defaults: an
    export made before the field existed)."""
    fields = table(model)
    given = {name: fields[name].codec.from_export(v) for name, v in record["fields"].items()}
    return model(account_id=account_id, id=record["id"], **given)


def export_account(store: Store, account_id: str, out: BinaryIO, progress: Progress) -> int:
    """Write the account's data; returns the number of lines after the header."""
    if not store.account_exists(account_id):
        raise BadRequest(f"account {account_id} not found")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "account": {"id": account_id},
        "exported_at": clock.rfc3339(),
    }
    out.write(orjson.dumps(header) + b"\n")
    lines = 0
    for connector in store.list_connectors(account_id, None):
        out.write(orjson.dumps(connector_record(connector)) + b"\n")
        lines += 1
        after: tuple[float, float] | None = None
        while rows := store.export_events(account_id, connector.id, after, PAGE):
            for t, n, a, k, doc in rows:
                out.write(
                    b'{"type":"event","connector":%s,"t":%s,"n":%s,"a":%s,"k":%s,'
                    b'"doc":%s}\n'
                    % (
                        orjson.dumps(connector.id),
                        orjson.dumps(wire(t)),
                        orjson.dumps(wire(n)),
                        orjson.dumps(wire(a)),
                        orjson.dumps(k),
                        doc,
                    )
                )
            lines += len(rows)
            progress.advance(len(rows), f"{connector.id[:8]} events")
            after = (rows[-1][0], rows[-1][1])
        after_t: float | None = None
        while snaps := store.export_snapshots(account_id, connector.id, after_t, PAGE):
            for t, a, doc in snaps:
                out.write(
                    b'{"type":"snapshot","connector":%s,"t":%s,"a":%s,"doc":%s}\n'
                    % (
                        orjson.dumps(connector.id),
                        orjson.dumps(wire(t)),
                        orjson.dumps(wire(a)),
                        doc,
                    )
                )
            lines += len(snaps)
            progress.advance(len(snaps), f"{connector.id[:8]} snapshots")
            after_t = snaps[-1][0]
    progress.close()
    return lines


def _records(stream: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"line {number}: not JSON: {exc}") from exc


def import_account(store: Store, stream: Iterable[bytes], progress: Progress) -> dict[str, int]:
    """Read an export into ``store``; anything already there is left as it is."""
    records = _records(stream)
    first = next(records, None)
    if first is None or first[1].get("format") != FORMAT:
        raise BadRequest("line 1: not a ctel export (missing the ctel-export header)")
    header = first[1]
    if header.get("version") != VERSION:
        raise BadRequest(
            f"line 1: export version {header.get('version')!r}; this ctel reads version {VERSION}"
        )
    account_id = header["account"]["id"]
    counts = {"connectors": 0, "events": 0, "snapshots": 0, "already_present": 0}
    if not store.account_exists(account_id):
        store.create_account(account_id, f"Account {account_id[:8]}", clock.rfc3339())
    events: list[tuple[float, float, float, str, bytes]] = []
    snaps: list[tuple[float, float, bytes]] = []
    current = ""

    def flush() -> None:
        if events:
            new = store.import_events(account_id, current, events)
            counts["events"] += new
            counts["already_present"] += len(events) - new
            progress.advance(len(events), "events")
            events.clear()
        if snaps:
            new = store.import_snapshots(account_id, current, snaps)
            counts["snapshots"] += new
            counts["already_present"] += len(snaps) - new
            progress.advance(len(snaps), "snapshots")
            snaps.clear()

    for number, record in records:
        kind = record.get("type")
        try:
            if kind == "connector":
                flush()
                connector = connector_from_record(account_id, record)
                current = connector.id
                if store.import_connector(connector):
                    counts["connectors"] += 1
                else:
                    counts["already_present"] += 1
            elif kind in ("event", "snapshot"):
                if record["connector"] != current:
                    raise BadRequest(
                        f"line {number}: {kind} for connector "
                        f"{record['connector']} outside its connector's section"
                    )
                doc = orjson.dumps(record["doc"])
                if kind == "event":
                    events.append(
                        (
                            float(record["t"]),
                            float(record["n"]),
                            float(record["a"]),
                            str(record["k"]),
                            doc,
                        )
                    )
                else:
                    snaps.append((float(record["t"]), float(record["a"]), doc))
                if len(events) + len(snaps) >= PAGE:
                    flush()
            else:
                raise BadRequest(f"line {number}: unknown record type {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"line {number}: malformed {kind} record: {exc!r}") from exc
    flush()
    progress.close()
    return counts
