"""The feed (schema 6, issue 10's streams), for both stores: the ``Feed`` part of
``SQLStore``.

Every ingest transaction that stores new events or snapshots appends them to its
account's feed as its last step: ``feed_heads`` is bumped by the number of new items
(``... ON CONFLICT DO UPDATE SET seq = feed_heads.seq + excluded.seq RETURNING seq``) and
the items are numbered just below the new head. On PostgreSQL the head's row lock is held
until commit, so per account seq order is commit order on every node; SQLite's write
transactions are exclusive anyway. Items already stored (duplicates) are not fed again.
A batch's items are one row (PostgreSQL: schema 8, store.pg_feed; SQLite: schema 9,
store.sqlite_feed).

A stream reads feed rows after its position, up to a head it has read (everything up to a
committed head is committed), joined to the documents: an item whose document is gone
(its connector deleted, or purged) is skipped. Retention trims rows by arrival time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from connector_telemetry.models import FeedFilter, FeedItem

if TYPE_CHECKING:
    from connector_telemetry.store.sql import SQL, Connection, Cursor

#: ``(t, n, a, k)`` of one new item (snapshots: ``n`` 0 and ``k`` None), in batch order.
FeedEntry = tuple[float, float, float, str | None]


class Feed:
    """What ``SQLStore`` does for the feed (mixed into it)."""

    sql: ClassVar[SQL]

    def _read(self, query: str, args: Any = ()) -> Cursor:
        raise NotImplementedError

    # -- reads ------------------------------------------------------------------------

    def feed_changed(self) -> bool:
        """Whether anything may have been committed since the last call (SQLite answers
        from ``PRAGMA data_version``; elsewhere always True)."""
        return True

    def feed_heads(self, account_ids: Collection[str]) -> dict[str, int]:
        """The head (newest seq) of each of these accounts that has a feed."""
        rows = self._read(self.sql.feed_heads).fetchall()
        return {str(a): int(seq) for a, seq in rows if a in account_ids}

    def feed_head(self, account_id: str) -> int:
        row = self._read(self.sql.feed_head, (account_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def feed_floor(self, account_id: str) -> int | None:
        """The oldest seq still kept (None: none kept)."""
        row = self._read(self.sql.feed_floor, (account_id,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def feed_since(self, account_id: str, a: float) -> int:
        """The position before the first item recorded (arrived) at or after ``a``; the
        head when there is none."""
        row = self._read(self.sql.feed_since, (account_id, a)).fetchone()
        if row is None or row[0] is None:
            return self.feed_head(account_id)
        return int(row[0]) - 1

    def read_feed(
        self, account_id: str, after: int, upto: int, which: FeedFilter, limit: int
    ) -> tuple[list[FeedItem], int]:
        """The items after ``after`` up to ``upto`` that ``which`` selects, oldest first,
        at most ``limit`` of them; and the position they reach (``upto`` when every row up
        to it was examined)."""
        return self.read_feed_any(account_id, after, upto, (which,), limit)

    def read_feed_any(
        self, account_id: str, after: int, upto: int, which: Sequence[FeedFilter], limit: int
    ) -> tuple[list[FeedItem], int]:
        """``read_feed`` of the items that any of ``which`` selects (on PostgreSQL in one
        statement: the filters are ORed in SQL, so rows no filter wants are never joined
        to their documents; SQLite: store.sqlite_feed)."""
        if not which or FeedFilter() in which:
            which = (FeedFilter(),)
        return self._read_feed(account_id, after, upto, which, limit)

    def _read_feed(
        self, account_id: str, after: int, upto: int, which: Sequence[FeedFilter], limit: int
    ) -> tuple[list[FeedItem], int]:
        """``read_feed_any`` of filters made whole (each store's: store.pg_feed.read,
        store.sqlite_feed.read)."""
        raise NotImplementedError

    def connector_pk(self, account_id: str, connector_id: str) -> int:
        """The connector's key (``NotFound`` when the account has no such connector)."""
        return self._connector_pk(account_id, connector_id)

    def _connector_pk(self, account_id: str, connector_id: str) -> int:
        raise NotImplementedError

    # -- retention --------------------------------------------------------------------

    def _purge_feed(self, conn: Connection, before_a: float, batch: int) -> int:
        return int(conn.execute(self.sql.purge_feed, (before_a, batch)).rowcount)
