"""The fleet summary's columns on the connectors table (schema 4), for both stores: the
``FleetSummary`` part of ``SQLStore`` (its statements are in ``store.sql``), and the rules.

Ingest keeps, per connector, the health records of its two newest snapshots
(``health_t, health`` and ``health_prev_t, health_prev``) and the key and kind of its
newest failure event (``failure_t, failure_n, failure_k``), inside the batch's write
transaction; and (schema 5, ``event_counts``) its events counted by kind, for the fleet's
Prometheus counters. A connector whose snapshots predate schema 4 has ``health_t = -1`` and no
record until it reports again (the service then computes its records from its two newest
snapshots at read time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar

from connector_telemetry.models import (
    FAILURE_KINDS,
    FleetActivity,
    FleetRow,
    NewEvent,
    NewSnapshot,
)

if TYPE_CHECKING:
    from connector_telemetry.store.sql import SQL, Connection, Cursor

#: ``health_t`` of a connector whose records were never computed (snapshots from before 4).
UNKNOWN = -1.0

Health = tuple[float, bytes]


class FleetSummary:
    """What ``SQLStore`` does for the fleet summary (mixed into it)."""

    sql: ClassVar[SQL]

    def _read(self, query: str, args: Any = ()) -> Cursor:
        raise NotImplementedError

    def get_accounts(self, account_ids: list[str]) -> list[tuple[str, str, str]]:
        found = []
        for account_id in sorted(set(account_ids)):
            row = self._read(self.sql.account, (account_id,)).fetchone()
            if row is not None:
                found.append((str(row[0]), str(row[1]), str(row[2])))
        return found

    def fleet_summary(self, account_id: str, changed_since: str | None) -> list[FleetRow]:
        if changed_since is None:
            cursor = self._read(self.sql.fleet_summary, (account_id,))
        else:
            args = (account_id, changed_since, changed_since)
            cursor = self._read(self.sql.fleet_summary_since, args)
        return [fleet_row(row) for row in cursor.fetchall()]

    def fleet_activity(self, account_id: str) -> FleetActivity:
        counts = self._read(self.sql.fleet_event_counts, (account_id,)).fetchall()
        pending = self._read(self.sql.fleet_pending_interrupts, (account_id,)).fetchall()
        return FleetActivity(
            events=[(str(cid), str(k), int(n)) for cid, k, n in counts],
            pending_interrupts=frozenset(str(row[0]) for row in pending),
        )

    def _count_events(self, conn: Connection, cpk: int, kinds: Iterable[str]) -> None:
        """After an event batch is inserted: add its new events (``kinds``: one kind per
        event stored now, duplicates left out) to the connector's counts by kind."""
        for k, n in Counter(kinds).items():  # a batch holds a few kinds (29 at most)
            conn.execute(self.sql.count_events, (cpk, k, n))

    def _keep_health(self, conn: Connection, cpk: int, snapshots: list[NewSnapshot]) -> None:
        """After a snapshot batch is inserted: keep the two newest health records."""
        batch = [(s.t, s.summary) for s in snapshots if s.summary is not None]
        if not batch:
            return
        row = conn.execute(self.sql.health_records, (cpk,)).fetchone()
        stored = (
            None if row[1] is None else (float(row[0]), bytes(row[1])),
            None if row[3] is None else (float(row[2]), bytes(row[3])),
        )
        latest, previous = merge_health(stored, batch)
        if (latest, previous) == stored:
            return
        assert latest is not None
        prev_t, prev = (None, None) if previous is None else previous
        conn.execute(self.sql.keep_health, (latest[0], latest[1], prev_t, prev, cpk))

    def _keep_failure(
        self, conn: Connection, cpk: int, rows: Sequence[Sequence[Any]], t: int, n: int, k: int
    ) -> None:
        """After an event batch with a failure (``has_failure``) is inserted: keep its
        newest failure, if it is newer than the one kept. ``rows`` are the batch's rows,
        whose columns ``t``, ``n`` and ``k`` hold those."""
        newest = newest_failure(rows, t, n, k)
        if newest is not None:
            nt, nn, nk = newest
            conn.execute(self.sql.keep_failure, (nt, nn, nk, cpk, nt, nt, nn))


def fleet_row(row: Sequence[Any]) -> FleetRow:
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


def has_failure(events: Sequence[NewEvent]) -> bool:
    """Whether a batch has a failure event: asked before the write lock is taken, so that
    the common batch, without one, costs the lock nothing (one pass in C)."""
    return not FAILURE_KINDS.isdisjoint(map(attrgetter("k"), events))


def newest_failure(
    rows: Sequence[Sequence[Any]], t: int, n: int, k: int
) -> tuple[float, float, str] | None:
    """``(t, n, k)`` of the newest failure event among ``rows``."""
    failures = [(row[t], row[n], row[k]) for row in rows if row[k] in FAILURE_KINDS]
    return max(failures) if failures else None
