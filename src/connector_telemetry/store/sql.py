"""One SQL for both stores: every statement SQLite and PostgreSQL share, written once in
SQLite's placeholder style (``?``) and adapted to a dialect in one place
(``Dialect.adapt``, applied once per store class, never per query), and the loader of
the schema migrations.

What is genuinely different stays in each store's module: SQLite's writer turns and held
reads, batch inserts with ``executemany`` and savepoints; PostgreSQL's pool, partitions,
array (``unnest``) inserts and binary parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from importlib import resources
from importlib.abc import Traversable
from typing import Any, Protocol

from connector_telemetry.store.rows import CONNECTOR_COLUMNS

_COLUMNS = [column.strip() for column in CONNECTOR_COLUMNS.split(",")]
_CONNECTOR_VALUES = ", ".join("?" * len(_COLUMNS))
#: Every column but the key (account_id, id): parameters ``connector_values(c)[2:]``, then
#: the key (see ``rows.changed_connector``).
_CONNECTOR_SETS = ", ".join(f"{column}=?" for column in _COLUMNS[2:])
_INTERRUPT = "SELECT id, action, purge, submitted_at, triggered_at FROM interrupts"
#: What the fleet summary reads of a connector (store.fleet.fleet_row): schema 4's columns.
_FLEET = (
    "account_id, id, activated, notes, device_id, device_type, device_serial, last_heartbeat, "
    "last_seen_version, health_t, health, health_prev_t, health_prev, failure_t, failure_n, "
    "failure_k"
)


class Cursor(Protocol):
    """What the stores use of a DB-API cursor (sqlite3's and psycopg's alike)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the shared code uses of a connection: ``execute`` (sqlite3's and psycopg's)."""

    def execute(self, query: str, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """How one database speaks the shared SQL."""

    name: str  # "sqlite" or "postgres": also the suffix of its own migrations
    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    #: Whether ``FOR UPDATE`` locks anything. SQLite's write transactions are exclusive
    #: (``BEGIN IMMEDIATE``): the clause is dropped there, as SQLite has no such syntax.
    row_locks: bool
    #: A query that returns a row when the ``schema_version`` table exists.
    schema_table_exists: str
    #: The driver's exception for a unique constraint violated.
    unique_violation: type[Exception]
    #: Runs a migration script on a connection (SQLite's one statement at a time).
    run_script: Callable[[Any, str], None]

    def adapt(self, query: str) -> str:
        if not self.row_locks:
            query = query.replace(" FOR UPDATE", "")
        if self.placeholder != "?":
            query = query.replace("%", "%%").replace("?", self.placeholder)
        return query


@dataclass(frozen=True)
class SQL:
    """Every shared statement, in SQLite's placeholder style; ``adapted(dialect)`` is
    the same set in another dialect."""

    # -- schema and health
    create_schema_version: str = (
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
    )
    schema_version: str = "SELECT max(version) FROM schema_version"
    add_schema_version: str = "INSERT INTO schema_version VALUES (?)"
    ping: str = "SELECT 1"
    any_account: str = "SELECT 1 FROM accounts LIMIT 1"
    credentials_version: str = "SELECT version FROM credentials_version"
    bump_credentials: str = "UPDATE credentials_version SET version = version + 1"

    # -- accounts and credentials
    insert_account: str = "INSERT INTO accounts VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING"
    account_exists: str = "SELECT 1 FROM accounts WHERE id=?"
    insert_token: str = "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
    list_tokens: str = (
        "SELECT id, account_id, name, permission, created_at, expires_on, revoked_at "
        "FROM tokens ORDER BY created_at, id"
    )
    revoke_token: str = "UPDATE tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL"
    find_token: str = (
        "SELECT id, account_id, name, permission, created_at, expires_on, revoked_at, "
        "secret_hash FROM tokens WHERE secret_hash=?"
    )
    insert_user: str = "INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT (email) DO NOTHING"
    insert_user_account: str = "INSERT INTO user_accounts VALUES (?, ?)"
    find_user: str = "SELECT id, email, key_hash FROM users WHERE email=?"
    user_accounts: str = "SELECT account_id FROM user_accounts WHERE user_id=? ORDER BY account_id"
    find_license: str = "SELECT account_id, id FROM connectors WHERE license_key_hash=?"

    # -- connectors
    list_connectors: str = (
        f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=? ORDER BY pk"
    )
    list_connectors_of_type: str = (
        f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=? AND device_type=? "
        "ORDER BY pk"
    )
    #: Creations in one account take turns (across nodes too), so that two connectors
    #: can never claim the same device.
    lock_account: str = "SELECT 1 FROM accounts WHERE id=? FOR UPDATE"
    device_taken: str = (
        "SELECT 1 FROM connectors WHERE account_id=? AND (device_id=? OR device_serial=?)"
    )
    insert_connector: str = (
        f"INSERT INTO connectors ({CONNECTOR_COLUMNS}) VALUES ({_CONNECTOR_VALUES}) "
        "ON CONFLICT (account_id, id) DO NOTHING"
    )
    get_connector: str = f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=? AND id=?"
    update_connector: str = f"UPDATE connectors SET {_CONNECTOR_SETS} WHERE account_id=? AND id=?"
    lock_connector_row: str = (
        f"SELECT pk, {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=? AND id=? FOR UPDATE"
    )
    delete_connector: str = "DELETE FROM connectors WHERE pk=?"
    delete_events: str = "DELETE FROM events WHERE cpk=?"
    delete_snapshots: str = "DELETE FROM snapshots WHERE cpk=?"
    connector_pk: str = "SELECT pk FROM connectors WHERE account_id=? AND id=?"
    #: Every write of a connector's telemetry or interrupts begins here: the row locked
    #: until commit is where writers of one connector, in any process, take turns.
    lock_connector: str = "SELECT pk FROM connectors WHERE account_id=? AND id=? FOR UPDATE"
    heartbeat: str = "UPDATE connectors SET last_heartbeat=? WHERE pk=?"
    #: ingest's sign of life, and the newest item's version ``v`` (at ``t``) as the one last
    #: seen unless telemetry recorded later was seen already (an agent replaying its spool);
    #: decided on the locked row. ``(now, t, v, t, t, cpk)``; ``t``, ``v`` None: no version.
    heartbeat_seen: str = (
        "UPDATE connectors SET last_heartbeat=?, "
        "last_seen_version = CASE WHEN last_seen_t IS NULL OR ? >= last_seen_t "
        "THEN coalesce(?, last_seen_version) ELSE last_seen_version END, "
        "last_seen_t = CASE WHEN last_seen_t IS NULL OR ? >= last_seen_t "
        "THEN coalesce(?, last_seen_t) ELSE last_seen_t END WHERE pk=?"
    )

    # -- telemetry reads. A cursor's key lies within from..to (the cursor is bound to
    # them), and is the page's start: SQLite seeks to it by the row value, PostgreSQL by
    # ``t>=`` (which also prunes the months before it).
    list_events: str = (
        "SELECT a, k, n, t FROM events WHERE cpk=? AND t>=? AND t<=? ORDER BY t, n LIMIT ?"
    )
    list_events_of_kind: str = (
        "SELECT a, k, n, t FROM events WHERE cpk=? AND t>=? AND t<=? AND k=? ORDER BY t, n LIMIT ?"
    )
    list_events_after: str = (
        "SELECT a, k, n, t FROM events WHERE cpk=? AND (t, n) > (?, ?) AND t>=? AND t<=? "
        "ORDER BY t, n LIMIT ?"
    )
    list_events_of_kind_after: str = (
        "SELECT a, k, n, t FROM events WHERE cpk=? AND (t, n) > (?, ?) AND t>=? AND t<=? "
        "AND k=? ORDER BY t, n LIMIT ?"
    )
    latest_events: str = "SELECT doc FROM events WHERE cpk=? ORDER BY t DESC, n DESC LIMIT ?"
    get_event: str = "SELECT doc FROM events WHERE cpk=? AND t=? AND n=?"
    list_snapshots: str = (
        "SELECT a, t FROM snapshots WHERE cpk=? AND t>=? AND t<=? ORDER BY t LIMIT ?"
    )
    list_snapshots_after: str = (
        "SELECT a, t FROM snapshots WHERE cpk=? AND t>? AND t<=? ORDER BY t LIMIT ?"
    )
    latest_snapshots: str = "SELECT doc FROM snapshots WHERE cpk=? ORDER BY t DESC LIMIT ?"
    get_snapshot: str = "SELECT doc FROM snapshots WHERE cpk=? AND t=?"

    # -- interrupts
    insert_interrupt: str = (
        "INSERT INTO interrupts (cpk, action, purge, submitted_at) VALUES (?, ?, ?, ?)"
    )
    pending_interrupts: str = _INTERRUPT + " WHERE cpk=? AND triggered_at IS NULL ORDER BY id"
    list_interrupts: str = _INTERRUPT + " WHERE cpk=? ORDER BY id"
    trigger_interrupts: str = (
        "UPDATE interrupts SET triggered_at=? WHERE cpk=? AND triggered_at IS NULL"
    )

    # -- retention and export (bounded deletes: one short write transaction each)
    purge_events: str = (
        "DELETE FROM events WHERE t < ? AND (cpk, t, n) IN "
        "(SELECT cpk, t, n FROM events WHERE t < ? LIMIT ?)"
    )
    purge_snapshots: str = (
        "DELETE FROM snapshots WHERE t < ? AND (cpk, t) IN "
        "(SELECT cpk, t FROM snapshots WHERE t < ? LIMIT ?)"
    )
    export_events: str = "SELECT t, n, a, k, doc FROM events WHERE cpk=? ORDER BY t, n LIMIT ?"
    export_events_after: str = (
        "SELECT t, n, a, k, doc FROM events WHERE cpk=? AND (t, n) > (?, ?) ORDER BY t, n LIMIT ?"
    )
    export_snapshots: str = "SELECT t, a, doc FROM snapshots WHERE cpk=? ORDER BY t LIMIT ?"
    export_snapshots_after: str = (
        "SELECT t, a, doc FROM snapshots WHERE cpk=? AND t > ? ORDER BY t LIMIT ?"
    )

    # -- the fleet summary (issue 9; the rules in store/fleet.py)
    account: str = "SELECT id, name, created_at FROM accounts WHERE id=?"
    fleet_summary: str = f"SELECT {_FLEET} FROM connectors WHERE account_id=? ORDER BY pk"
    fleet_summary_since: str = (
        f"SELECT {_FLEET} FROM connectors WHERE account_id=? "
        "AND (last_heartbeat >= ? OR last_updated >= ?) ORDER BY pk"
    )
    health_records: str = (
        "SELECT health_t, health, health_prev_t, health_prev FROM connectors WHERE pk=?"
    )
    keep_health: str = (
        "UPDATE connectors SET health_t=?, health=?, health_prev_t=?, health_prev=? WHERE pk=?"
    )
    # -- the fleet for Prometheus (issue 12): one query each for the whole account
    fleet_event_counts: str = (
        "SELECT c.id, e.k, e.count FROM connectors c JOIN event_counts e ON e.cpk = c.pk "
        "WHERE c.account_id=?"
    )
    #: kept inside each ingest transaction: ``(cpk, k, new events of that kind)``
    count_events: str = (
        "INSERT INTO event_counts (cpk, k, count) VALUES (?, ?, ?) ON CONFLICT (cpk, k) "
        "DO UPDATE SET count = event_counts.count + excluded.count"
    )
    #: after an import: the stored events counted, where that is more than the count kept
    recount_events: str = (
        "INSERT INTO event_counts (cpk, k, count) SELECT cpk, k, count(*) FROM events "
        "WHERE cpk=? GROUP BY cpk, k ON CONFLICT (cpk, k) DO UPDATE SET count = CASE "
        "WHEN excluded.count > event_counts.count THEN excluded.count ELSE event_counts.count END"
    )
    fleet_pending_interrupts: str = (
        "SELECT c.id FROM connectors c JOIN interrupts i ON i.cpk = c.pk "
        "WHERE c.account_id=? AND i.triggered_at IS NULL"
    )
    keep_failure: str = (
        "UPDATE connectors SET failure_t=?, failure_n=?, failure_k=? WHERE pk=? "
        "AND (failure_t IS NULL OR failure_t < ? OR (failure_t = ? AND failure_n < ?))"
    )

    # -- the feed (issue 10's streams; the rules in store/feed.py)
    bump_feed_head: str = (
        "INSERT INTO feed_heads (account_id, seq) VALUES (?, ?) ON CONFLICT (account_id) "
        "DO UPDATE SET seq = feed_heads.seq + excluded.seq RETURNING seq"
    )
    feed_heads: str = "SELECT account_id, seq FROM feed_heads"
    feed_head: str = "SELECT seq FROM feed_heads WHERE account_id=?"
    #: (a row per batch: its first item is at ``seq - items + 1``)
    feed_floor: str = "SELECT seq - items + 1 FROM feed WHERE account_id=? ORDER BY seq LIMIT 1"
    feed_since: str = "SELECT min(seq - items + 1) FROM feed WHERE account_id=? AND a>=?"
    purge_feed: str = (
        "DELETE FROM feed WHERE (account_id, seq) IN (SELECT f.account_id, f.seq "
        "FROM feed_heads h JOIN feed f ON f.account_id = h.account_id AND f.a < ? LIMIT ?)"
    )

    # -- test mode (issue 11; service/testmode.py). The marker, then the state every worker
    # shares: read by test-mode servers only, never by one without ``--test-mode``.
    test_marker: str = "SELECT value FROM meta WHERE name='test_mode'"
    set_test_marker: str = "INSERT INTO meta VALUES ('test_mode', ?) ON CONFLICT (name) DO NOTHING"
    test_state: str = (
        "SELECT clock_offset, rate_requests, rate_period, "
        "(SELECT count(*) FROM test_faults WHERE remaining IS NULL OR remaining > 0) "
        "FROM test_state"
    )
    set_clock_offset: str = "UPDATE test_state SET clock_offset=?"
    set_rate_limit: str = "UPDATE test_state SET rate_requests=?, rate_period=?"
    clear_rate_hits: str = "DELETE FROM test_rate"
    #: One more request of a credential in window ``win``: the count after it, exact
    #: whatever the number of workers (one statement, in a write transaction).
    rate_hit: str = (
        "INSERT INTO test_rate VALUES (?, ?, 1) ON CONFLICT (credential) DO UPDATE SET "
        "hits = CASE WHEN test_rate.win = excluded.win THEN test_rate.hits + 1 ELSE 1 END, "
        "win = excluded.win RETURNING hits"
    )
    add_fault: str = (
        "INSERT INTO test_faults (route, method, status, delay_ms, close, count, remaining) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
    )
    list_faults: str = (
        "SELECT id, route, method, status, delay_ms, close, count, remaining FROM test_faults "
        "ORDER BY id"
    )
    delete_fault: str = "DELETE FROM test_faults WHERE id=?"
    clear_faults: str = "DELETE FROM test_faults"
    #: The oldest rule matching (route, method) with requests left takes this request: its
    #: count goes down by one in the same statement (NULL: every request, stays NULL).
    take_fault: str = (
        "UPDATE test_faults SET remaining = remaining - 1 WHERE id = ("
        "SELECT id FROM test_faults WHERE (route=? OR route='*') "
        "AND (method IS NULL OR method=?) AND (remaining IS NULL OR remaining > 0) "
        "ORDER BY id LIMIT 1) AND (remaining IS NULL OR remaining > 0) "
        "RETURNING status, delay_ms, close"
    )
    add_journal: str = (
        "INSERT INTO test_journal (time, method, path, route, query, status, bytes_in, "
        "bytes_out, credential_kind, credential_id, account_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    list_journal: str = (
        "SELECT time, method, path, route, query, status, bytes_in, bytes_out, "
        "credential_kind, credential_id, account_id FROM test_journal"
    )
    clear_journal: str = "DELETE FROM test_journal"
    #: Reset: every connector locked first (an ingest in flight finishes before, or finds
    #: its connector gone after), then their telemetry, interrupts and themselves.
    lock_all_connectors: str = "SELECT pk FROM connectors FOR UPDATE"
    reset_events: str = "DELETE FROM events"
    reset_snapshots: str = "DELETE FROM snapshots"
    reset_interrupts: str = "DELETE FROM interrupts"
    reset_connectors: str = "DELETE FROM connectors"
    #: the streams' feed goes too (its heads stay: seqs keep growing, resume tokens stay valid)
    reset_feed: str = "DELETE FROM feed"
    reset_state: str = "UPDATE test_state SET clock_offset=0, rate_requests=NULL, rate_period=NULL"

    def adapted(self, dialect: Dialect) -> SQL:
        return replace(self, **{f.name: dialect.adapt(getattr(self, f.name)) for f in fields(self)})


def migrations(dialect: str, folder: Traversable | None = None) -> list[tuple[int, str]]:
    """``(version, script)`` of every schema migration for ``dialect``, oldest first.

    ``store/migrations/`` holds ``NNNN_name.sql`` for a change both databases make in the
    same words (e.g. a new connector column), or ``NNNN_name.sqlite.sql`` and
    ``NNNN_name.postgres.sql`` where they differ. A version either dialect lacks a file for
    changes nothing there: both schemas keep the same numbers."""
    if folder is None:
        folder = resources.files("connector_telemetry.store") / "migrations"
    scripts: dict[int, dict[str, str]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            stem = entry.name.removesuffix(".sql")
            version = int(stem.split("_", 1)[0])
            kind = stem.rpartition(".")[2] if "." in stem else "both"
            scripts.setdefault(version, {})[kind] = entry.read_text()
    if sorted(scripts) != list(range(1, len(scripts) + 1)):
        raise AssertionError(f"schema migrations must be numbered 1, 2, ...: {sorted(scripts)}")
    found = []
    for version, by_kind in sorted(scripts.items()):
        if "both" in by_kind and len(by_kind) > 1:
            raise AssertionError(f"migration {version}: one shared file, or one per dialect")
        found.append((version, by_kind.get(dialect, by_kind.get("both", ""))))
    return found
