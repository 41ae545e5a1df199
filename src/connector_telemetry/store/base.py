"""The storage interface: one method per query the services need, named like them.

Implementations raise ``errors.NotFound`` / ``errors.Conflict`` where the domain
says so; they never build HTTP answers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Sequence
from contextvars import ContextVar
from typing import Any, ParamSpec, Protocol, TypeVar

from connector_telemetry.errors import ApiError
from connector_telemetry.models import (
    Connector,
    EventMeta,
    FeedFilter,
    FeedItem,
    FleetActivity,
    FleetRow,
    IngestResult,
    Interrupt,
    NewEvent,
    NewSnapshot,
    Permission,
    Token,
    User,
)

#: The moment (``time.monotonic()``) by which the write running in this context must have
#: its connection, else it answers 503 (``errors.Unavailable``). Set by whoever queued the
#: write (``api.writer``), so that the time it waited in the queue counts too.
WRITE_DEADLINE: ContextVar[float | None] = ContextVar("WRITE_DEADLINE", default=None)


T = TypeVar("T")
P = ParamSpec("P")
#: A write in steps (``Store.record_events_staged``, api.writer's "Overlap"): it yields
#: first once prepared (what came before needed no database), then while the database
#: runs what it sent, if it can; and returns its result.
Staged = Generator[None, None, T]


def run_staged(staged: Staged[T]) -> T:
    """``staged`` run to its end, without doing anything else meanwhile."""
    while True:
        try:
            next(staged)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def at_once(fn: Callable[P, T]) -> Callable[P, Staged[T]]:
    """``fn`` as a staged write with nothing to prepare and nothing to overlap."""

    def staged(*args: P.args, **kwargs: P.kwargs) -> Staged[T]:
        yield
        return fn(*args, **kwargs)

    return staged


class SchemaTooNew(Exception):
    """The database's schema is newer than this ctel knows: refused, never touched."""


def ignore_step(step: str, seconds: float) -> None:
    """The default ``Store.observe``: timings go nowhere."""


class Store(Protocol):
    #: Called with how long each step of a write took, from the thread that ran it:
    #: ``"write"`` (a write transaction, from its start to its commit or rollback),
    #: ``"writer_turn"`` (SQLite: waiting for this database's cross-process writer turn),
    #: ``"pool"`` (PostgreSQL: waiting for a pooled connection). ``ignore_step`` unless
    #: someone (api.metrics) listens.
    observe: Callable[[str, float], None]
    #: Driver exceptions that mean "busy or unreachable, retry later" (answered 503).
    unavailable_errors: tuple[type[Exception], ...]
    #: How long a write may wait to start (queued, then for a connection) before it is
    #: answered 503; None: as long as it takes (SQLite: each write has its busy timeout).
    write_timeout: float | None
    #: The newest schema version this code knows (its last migration).
    known_schema_version: int
    #: Threads that answer reads concurrently, each calling ``bind_reader`` first (its own
    #: connection); 0: reads are answered inline on the event loop (SQLite).
    read_threads: int
    #: Whether the hot reads' ``..._async`` twins (Get Event, Latest, List Events) keep
    #: several statements in flight on the calling event loop (PostgreSQL's pipeline); the
    #: dispatcher then awaits them there instead of using a read thread.
    reads_on_loop: bool

    def migrate(self) -> int: ...
    #: The answer to one of ``unavailable_errors`` (503 busy; SQLite: 507 on a full disk).
    def refusal(self, exc: Exception) -> ApiError: ...
    #: Raises the driver's error when this process may not write (a read-only file or
    #: standby, no privilege); writes nothing.
    def check_writable(self) -> None: ...
    def schema_version(self) -> int: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
    def is_empty(self) -> bool: ...
    def credentials_version(self) -> int: ...
    #: ``credentials_version`` awaited on the event loop (where ``reads_on_loop``).
    async def credentials_version_async(self) -> int: ...
    #: Reads on the calling thread may share one read transaction until ``end_reads``
    #: (``on_begin`` is called when one begins); a no-op where that gains nothing.
    def hold_reads(self, on_begin: Callable[[], None]) -> None: ...
    def end_reads(self) -> None: ...
    #: Gives the calling thread (one of ``read_threads``) a read connection of its own.
    def bind_reader(self) -> None: ...
    #: ``(open, idle, max)`` connections of this process's write pool; None without one.
    def pool_state(self) -> tuple[int, int, int] | None: ...

    # accounts and credentials
    def create_account(self, account_id: str, name: str, created_at: str) -> None: ...
    def account_exists(self, account_id: str) -> bool: ...
    #: ``(id, name, created_at)`` of the accounts among these that exist (List Accounts).
    def get_accounts(self, account_ids: list[str]) -> list[tuple[str, str, str]]: ...
    def create_token(self, token: Token, secret_hash: bytes) -> None: ...
    def list_tokens(self) -> list[Token]: ...
    def revoke_token(self, token_id: str, revoked_at: str) -> bool: ...
    def find_token(self, secret_hash: bytes) -> tuple[Token, bytes] | None: ...
    def create_user(self, user: User, created_at: str) -> None: ...
    def find_user(self, email: str) -> User | None: ...
    def find_license(self, key_hash: bytes) -> tuple[str, str] | None: ...

    # connectors
    def list_connectors(self, account_id: str, device_type: str | None) -> list[Connector]: ...
    #: False (nothing written) when the account already has a connector with the same
    #: device id or serial number, checked inside the write transaction.
    def create_connector(self, connector: Connector) -> bool: ...
    def get_connector(self, account_id: str, connector_id: str) -> Connector | None: ...
    #: Read, ``change`` and write back in one write transaction (nothing written meanwhile
    #: by another worker or node is lost); None when there is no such connector.
    def change_connector(
        self, account_id: str, connector_id: str, change: Callable[[Connector], None]
    ) -> Connector | None: ...
    def delete_connector(self, account_id: str, connector_id: str) -> Connector | None: ...
    #: Every connector of the account with its fleet summary columns (store/fleet.py; only
    #: those whose heartbeat or settings changed at or after ``changed_since``, RFC 3339).
    def fleet_summary(self, account_id: str, changed_since: str | None) -> list[FleetRow]: ...
    #: The account's stored events counted by connector and kind, and its connectors with a
    #: pending interrupt: one query each, however large the fleet (the fleet's metrics).
    def fleet_activity(self, account_id: str) -> FleetActivity: ...

    # telemetry events
    def record_events(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> IngestResult: ...
    #: ``record_events`` for the writer thread, staged (``Staged``; api.writer's
    #: "Overlap"): PostgreSQL builds the batch's rows before its first ``yield`` and
    #: yields again while the database runs its statements.
    def record_events_staged(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> Staged[IngestResult]: ...
    def list_events(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        kind: str | None,
        after: tuple[float, float] | None,
        limit: int,
    ) -> list[EventMeta]: ...
    def latest_events(self, account_id: str, connector_id: str, limit: int) -> list[bytes]: ...
    async def list_events_async(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        kind: str | None,
        after: tuple[float, float] | None,
        limit: int,
    ) -> list[EventMeta]: ...
    async def latest_events_async(
        self, account_id: str, connector_id: str, limit: int
    ) -> list[bytes]: ...
    async def get_event_async(
        self, account_id: str, connector_id: str, keys: list[tuple[float, float]]
    ) -> bytes | None: ...
    def get_event(
        self, account_id: str, connector_id: str, keys: list[tuple[float, float]]
    ) -> bytes | None: ...

    # telemetry snapshots
    def record_snapshots(
        self,
        account_id: str,
        connector_id: str,
        snapshots: list[NewSnapshot],
        collected_at: float,
    ) -> IngestResult: ...
    def list_snapshots(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        after: float | None,
        limit: int,
    ) -> list[tuple[float, float]]: ...
    def latest_snapshots(self, account_id: str, connector_id: str, limit: int) -> list[bytes]: ...
    def get_snapshot(self, account_id: str, connector_id: str, t: float) -> bytes | None: ...

    # the feed: every new event and snapshot in arrival (commit) order per account, for
    # the live streams (issue 10; store/feed.py)
    #: Whether anything may have been committed since the last call (cheap; may say True).
    def feed_changed(self) -> bool: ...
    def feed_heads(self, account_ids: Collection[str]) -> dict[str, int]: ...
    def feed_head(self, account_id: str) -> int: ...
    #: The oldest seq still kept (None: none).
    def feed_floor(self, account_id: str) -> int | None: ...
    #: The position before the first item that arrived at or after ``a`` (else the head).
    def feed_since(self, account_id: str, a: float) -> int: ...
    #: Items after ``after`` up to ``upto`` selected by ``which`` (at most ``limit`` rows
    #: examined), and the position reached.
    def read_feed(
        self, account_id: str, after: int, upto: int, which: FeedFilter, limit: int
    ) -> tuple[list[FeedItem], int]: ...
    #: The same for the items any of ``which`` selects (the fan-out: one read for every
    #: filter its live subscribers follow).
    def read_feed_any(
        self, account_id: str, after: int, upto: int, which: Sequence[FeedFilter], limit: int
    ) -> tuple[list[FeedItem], int]: ...
    #: The connector's key (``NotFound`` otherwise).
    def connector_pk(self, account_id: str, connector_id: str) -> int: ...

    # interrupts
    def create_interrupt(
        self, account_id: str, connector_id: str, action: str, purge: bool, submitted_at: str
    ) -> Interrupt: ...
    def list_interrupts(self, account_id: str, connector_id: str) -> list[Interrupt]: ...
    def pick_up_interrupts(
        self, account_id: str, connector_id: str, triggered_at: str
    ) -> list[Interrupt]: ...

    # retention, export and import
    def purge_telemetry(self, before_t: float, batch: int) -> int:
        """Delete at most ``batch`` events and snapshots recorded before ``before_t``
        (whole partitions where the store has them); returns how many went. Callers
        loop until it returns 0. Connectors, credentials and interrupts are never purged."""
        ...

    def export_events(
        self, account_id: str, connector_id: str, after: tuple[float, float] | None, limit: int
    ) -> list[tuple[float, float, float, str, bytes]]:
        """``(t, n, a, k, doc)`` oldest first after ``after``: for streaming exports."""
        ...

    def export_snapshots(
        self, account_id: str, connector_id: str, after: float | None, limit: int
    ) -> list[tuple[float, float, bytes]]:
        """``(t, a, doc)`` oldest first after ``after``."""
        ...

    def import_connector(self, connector: Connector) -> bool:
        """Store a connector as exported (its id, device, license hash); False when a
        connector with that id is already in the account (left as it is)."""
        ...

    def import_events(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, float, str, bytes]]
    ) -> int:
        """Store ``(t, n, a, k, doc)`` rows as exported, skipping keys already stored;
        returns how many were new."""
        ...

    def import_snapshots(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, bytes]]
    ) -> int: ...

    # test mode (issue 11; service/testmode.py): never called unless the server runs with
    # ``--test-mode`` (the purger reads ``test_clock`` once per run)
    #: When the database was created by a test-mode server (RFC 3339), else None.
    def test_marker(self) -> str | None: ...
    def mark_test_mode(self, created_at: str) -> None: ...
    #: ``(clock_offset, rate_requests, rate_period, active_faults)``, read afresh (what
    #: another worker committed a moment ago included).
    def test_state(self) -> tuple[float, int | None, float | None, int]: ...
    #: The clock offset of a test database, 0.0 for any other.
    def test_clock(self) -> float: ...
    def set_clock_offset(self, offset: float) -> None: ...
    #: Sets (or, with None, switches off) the rate limit; the counts start again.
    def set_rate_limit(self, requests: int | None, period: float | None) -> None: ...
    #: This request of ``credential`` counted in window ``window``; the count so far.
    def rate_hit(self, credential: str, window: int) -> int: ...
    def add_fault(
        self,
        route: str,
        method: str | None,
        status: int | None,
        delay_ms: int | None,
        close: bool,
        count: int | None,
    ) -> int: ...
    #: ``(id, route, method, status, delay_ms, close, count, remaining)`` oldest first.
    def list_faults(self) -> list[tuple[Any, ...]]: ...
    def delete_fault(self, fault_id: int) -> bool: ...
    def clear_faults(self) -> int: ...
    #: The oldest rule matching this request, its remaining count taken down by one in the
    #: same statement: ``(status, delay_ms, close)``, or None.
    def take_fault(self, route: str, method: str) -> tuple[Any, ...] | None: ...
    def add_journal(self, row: tuple[Any, ...]) -> None: ...
    #: The journal's rows (the columns of ``add_journal``) matching every filter given.
    def list_journal(self, filters: dict[str, Any]) -> list[tuple[Any, ...]]: ...
    def clear_journal(self) -> int: ...
    #: Every connector, event, snapshot and interrupt removed, the test state cleared, in
    #: one write transaction; how many of each went.
    def reset_test_data(self) -> dict[str, int]: ...


__all__ = ["Permission", "SchemaTooNew", "Store", "ignore_step"]
