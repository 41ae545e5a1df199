"""The fleet summary's columns on the connectors table (schema 4), for both stores.

ISSUE 9 HOOK: kept in one module, written once for both drivers (``conn`` is a sqlite3 or
psycopg connection inside the caller's write transaction; ``ph`` its placeholder), so it
can move into the shared SQL base as it is.

Ingest keeps, per connector, the health records of its two newest snapshots
(``health_t, health`` and ``health_prev_t, health_prev``) and the key and kind of its
newest failure event (``failure_t, failure_n, failure_k``). A connector whose snapshots
predate schema 4 has ``health_t = -1`` and no record until it reports again (the service
then computes its records from its two newest snapshots at read time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

from connector_telemetry.service.models import FAILURE_KINDS, FleetRow, NewEvent, NewSnapshot

FLEET_COLUMNS = (
    "account_id, id, activated, notes, device_id, device_type, device_serial, last_heartbeat, "
    "last_seen_version, health_t, health, health_prev_t, health_prev, failure_t, failure_n, "
    "failure_k"
)
#: ``health_t`` of a connector whose records were never computed (snapshots from before 4).
UNKNOWN = -1.0

Health = tuple[float, bytes]


def fleet_sql(ph: str, changed_since: bool) -> str:
    sql = f"SELECT {FLEET_COLUMNS} FROM connectors WHERE account_id={ph}"
    if changed_since:
        # RFC 3339 strings of one fixed shape sort as the times they name.
        sql += f" AND (last_heartbeat >= {ph} OR last_updated >= {ph})"
    return sql + " ORDER BY pk"


def fleet_args(account_id: str, changed_since: str | None) -> tuple[str, ...]:
    if changed_since is None:
        return (account_id,)
    return (account_id, changed_since, changed_since)


def fleet_row(row: tuple[Any, ...]) -> FleetRow:
    (account_id, cid, activated, notes, device_id, device_type, serial, heartbeat, version,
     health_t, health, prev_t, prev, failure_t, failure_n, failure_k) = row  # fmt: skip
    return FleetRow(
        account_id,
        cid,
        bool(activated),
        notes,
        (device_id, device_type, serial),
        heartbeat,
        version,
        health=None if health is None else (float(health_t), bytes(health)),
        health_prev=None if prev is None else (float(prev_t), bytes(prev)),
        failure=None if failure_t is None else (float(failure_t), float(failure_n), failure_k),
        health_unknown=health is None and health_t == UNKNOWN,
    )


def merge_health(
    stored: tuple[Health | None, Health | None], batch: Iterable[Health]
) -> tuple[Health | None, Health | None]:
    """The two newest of what is stored and what a batch brings (a repeated ``t`` is the
    same snapshot: the stored record stays)."""
    by_t: dict[float, bytes] = {}
    for t, record in batch:
        by_t[t] = record
    for kept in stored:
        if kept is not None:
            by_t[kept[0]] = kept[1]
    newest: list[Health | None] = [*sorted(by_t.items(), reverse=True)[:2], None, None]
    return newest[0], newest[1]


def keep_health(conn: Any, ph: str, cpk: int, snapshots: list[NewSnapshot]) -> None:
    """After a snapshot batch is inserted: keep the two newest health records."""
    batch = [(s.t, s.summary) for s in snapshots if s.summary is not None]
    if not batch:
        return
    row = conn.execute(
        f"SELECT health_t, health, health_prev_t, health_prev FROM connectors WHERE pk={ph}",
        (cpk,),
    ).fetchone()
    stored = (
        None if row[1] is None else (float(row[0]), bytes(row[1])),
        None if row[3] is None else (float(row[2]), bytes(row[3])),
    )
    latest, previous = merge_health(stored, batch)
    if (latest, previous) == stored:
        return
    assert latest is not None
    conn.execute(
        f"UPDATE connectors SET health_t={ph}, health={ph}, health_prev_t={ph}, "
        f"health_prev={ph} WHERE pk={ph}",
        (
            latest[0],
            latest[1],
            None if previous is None else previous[0],
            None if previous is None else previous[1],
            cpk,
        ),
    )


def has_failure(events: Sequence[NewEvent]) -> bool:
    """Whether a batch has a failure event: asked before the write lock is taken, so that
    the common batch, without one, costs the lock nothing."""
    return not FAILURE_KINDS.isdisjoint(map(attrgetter("k"), events))


def newest_failure(
    rows: Sequence[Sequence[Any]], t: int, n: int, k: int
) -> tuple[float, float, str] | None:
    """``(t, n, k)`` of the newest failure event among ``rows`` (whose columns ``t``, ``n``
    and ``k`` hold those)."""
    failures = [(row[t], row[n], row[k]) for row in rows if row[k] in FAILURE_KINDS]
    return max(failures) if failures else None


def keep_failure(
    conn: Any, ph: str, cpk: int, rows: Sequence[Sequence[Any]], t: int, n: int, k: int
) -> None:
    """After an event batch is inserted: keep its newest failure, if it is newer."""
    newest = newest_failure(rows, t, n, k)
    if newest is None:
        return
    nt, nn, nk = newest
    conn.execute(
        f"UPDATE connectors SET failure_t={ph}, failure_n={ph}, failure_k={ph} WHERE pk={ph} "
        f"AND (failure_t IS NULL OR failure_t < {ph} OR (failure_t = {ph} AND failure_n < {ph}))",
        (nt, nn, nk, cpk, nt, nt, nn),
    )
