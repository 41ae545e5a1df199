"""Live streams (issue 10): the fan-out of an account's feed (store/feed.py) to its
subscribers, in arrival (commit) order, exactly once.

One ``Hub`` per process (per worker). Its poller wakes every ``poll_seconds`` (50 ms):
when something may have been committed (SQLite: ``PRAGMA data_version`` moved; PostgreSQL:
always), it reads the heads of the accounts that have subscribers, and for each account
whose head moved reads the new items once, up to that head, and hands each to the account's
*live* subscribers whose filter wants it. Only what some live subscriber wants is read: the
distinct filters of the live subscribers (a connector, a kind, an event kind) go into the
statement, so items nobody follows are neither read with their documents nor framed; with
no live subscriber nothing is read. On PostgreSQL these reads run on the read threads, not
on the event loop. Everything committed on any worker or node is seen: the feed is in the
database.

A subscriber starts at a position (a seq: "now" is the head; a resume token; the position
before ``from``). While it is behind the hub's position it *catches up*: its stream reads
the feed itself, a batch at a time, at the pace its client reads; once it has reached the
hub's position it is live. A live subscriber whose queue grows past ``buffer_bytes`` (its
client reads slower than items arrive) drops its queue and catches up again from the last
item it sent: the server never holds more than that for it, and it misses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

from connector_telemetry.errors import InvalidCursor, ResumeTokenExpired
from connector_telemetry.models import FeedFilter, FeedItem
from connector_telemetry.store.base import Store

log = logging.getLogger("connector_telemetry")
T = TypeVar("T")

#: Rows of the feed read per statement (fan-out and catch-up).
READ_BATCH = 500
#: Past this many distinct filters among an account's live subscribers, the fan-out reads
#: every item (one statement with that many ORed conditions is no cheaper).
MAX_FILTERS = 16
_TOKEN = re.compile(r"s([0-9]{1,18})")

#: An item as its stream's message (the api layer frames it; ``account``: with its
#: connector's id, for the account stream).
Frame = Callable[[FeedItem, bool], bytes]


def encode_token(seq: int) -> str:
    """A resume token: opaque to clients (``s`` and the item's position in the feed)."""
    return f"s{seq}"


def decode_token(raw: str, where: str) -> int:
    found = _TOKEN.fullmatch(raw.strip())
    if found is None:
        raise InvalidCursor(f"{where}: malformed resume token {raw[:64]!r} (use a message's id)")
    return int(found[1])


def resume_position(store: Store, account_id: str, raw: str, where: str) -> int:
    """The position a resume token names: 400 when it is malformed or was never issued
    here, 410 when items after it were removed by retention."""
    seq = decode_token(raw, where)
    head = store.feed_head(account_id)
    if seq > head:
        raise InvalidCursor(f"{where}: resume token {raw!r} was not issued by this server")
    if seq < head:
        floor = store.feed_floor(account_id)
        if floor is None or floor > seq + 1:
            raise ResumeTokenExpired(
                f"{where}: resume token {raw!r} is older than the items still kept "
                "(retention); start again without it, or with from=<epoch seconds>"
            )
    return seq


class Subscriber:
    """One open stream: its filter, position, and the messages waiting to be sent."""

    __slots__ = (
        "account",
        "account_id",
        "buffer_bytes",
        "closed",
        "connector_id",
        "live",
        "pos",
        "queue",
        "queued",
        "sent",
        "waiter",
        "which",
    )

    def __init__(
        self,
        account_id: str,
        connector_id: str | None,
        which: FeedFilter,
        pos: int,
        buffer_bytes: int,
    ):
        self.account_id = account_id
        self.connector_id = connector_id
        self.account = connector_id is None
        self.which = which
        #: Every item up to here was delivered, queued or filtered out.
        self.pos = pos
        #: The last item handed to the stream (where to catch up from after an overflow).
        self.sent = pos
        self.live = False
        self.closed = False
        self.queue: deque[tuple[int, bytes]] = deque()
        self.queued = 0
        self.buffer_bytes = buffer_bytes
        #: What its stream awaits while idle (a bare future: cheaper than an Event's task).
        self.waiter: asyncio.Future[None] | None = None

    def notify(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause(self) -> None:
        """Leave live delivery: forget the queue; the stream reads the feed from the last
        item it sent, at its own pace."""
        self.queue.clear()
        self.queued = 0
        self.live = False
        self.pos = self.sent
        self.notify()

    def offer(self, seq: int, message: bytes) -> None:
        if self.queued + len(message) > self.buffer_bytes:
            self.pause()  # too slow for live delivery
        else:
            self.queue.append((seq, message))
            self.queued += len(message)
            self.notify()

    def take(self) -> list[bytes]:
        """The queued messages (and the position of the last)."""
        if not self.queue:
            return []
        out = [message for _, message in self.queue]
        self.sent = self.queue[-1][0]
        self.queue.clear()
        self.queued = 0
        return out

    def close(self) -> None:
        self.closed = True
        self.notify()


class _Account:
    __slots__ = ("pos", "subscribers")

    def __init__(self, pos: int):
        self.pos = pos
        self.subscribers: set[Subscriber] = set()


class Hub:
    def __init__(
        self,
        store: Store,
        frame: Frame,
        poll_seconds: float = 0.05,
        read_on: Executor | None = None,
    ):
        self.store = store
        #: Where the poller's reads run (None: inline on the event loop).
        self.read_on = read_on
        self.frame = frame
        self.poll_seconds = poll_seconds
        self.accounts: dict[str, _Account] = {}
        self._poller: asyncio.Task[None] | None = None
        self.closed = False
        self._failing = False
        #: Poller rounds that read the heads, and that found something new (the bench's).
        self.polls = 0
        self.reads = 0

    # -- subscribers ----------------------------------------------------------------

    def subscribe(
        self,
        account_id: str,
        connector_id: str | None,
        which: FeedFilter,
        start: int | None,
        buffer_bytes: int,
    ) -> Subscriber:
        """A subscriber from ``start`` (None: now). Call on the event loop."""
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = _Account(self.store.feed_head(account_id))
        if start is None:
            start = account.pos
        sub = Subscriber(account_id, connector_id, which, start, buffer_bytes)
        sub.live = start >= account.pos
        account.subscribers.add(sub)
        if self.closed:
            sub.close()
        elif self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        account = self.accounts.get(sub.account_id)
        if account is not None:
            account.subscribers.discard(sub)
            if not account.subscribers:
                del self.accounts[sub.account_id]

    def catch_up(self, sub: Subscriber) -> list[bytes]:
        """The next batch of a subscriber that is behind (it turns live once it has
        reached the hub's position)."""
        account = self.accounts[sub.account_id]
        if sub.pos < account.pos:
            upto = account.pos
            items, sub.pos = self.store.read_feed(
                sub.account_id, sub.pos, upto, sub.which, READ_BATCH
            )
            frames = [self.frame(item, sub.account) for item in items]
            if items:
                sub.sent = items[-1].seq
            if sub.pos < upto:
                return frames
        else:
            frames = []
        sub.live = True
        sub.sent = max(sub.sent, sub.pos)
        return frames

    @staticmethod
    def pause(sub: Subscriber) -> None:
        sub.pause()

    def close(self) -> None:
        """End every stream (SIGTERM): each ends cleanly, its client resumes elsewhere."""
        self.closed = True
        for account in self.accounts.values():
            for sub in account.subscribers:
                sub.close()
        if self._poller is not None:
            self._poller.cancel()

    # -- the poller -----------------------------------------------------------------

    async def _poll(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.poll_seconds)
            if not self.accounts:
                continue
            try:
                await self.poll()
            except Exception as exc:  # the store is unreachable: next round (said once)
                if not self._failing:
                    log.warning("streams: reading the feed failed (retrying): %s", exc)
                self._failing = True
            else:
                if self._failing:
                    log.warning("streams: reading the feed again")
                self._failing = False

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a read thread when the store has them (PostgreSQL: the event
        loop does not wait for the database while it serves the streams), else inline."""
        if self.read_on is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.read_on, fn, *args)

    async def poll(self) -> None:
        """One round: deliver what is new in every account whose head moved."""
        if not self.store.feed_changed():
            return
        self.polls += 1
        heads = await self._read(self.store.feed_heads, list(self.accounts))
        for account_id, head in heads.items():
            account = self.accounts.get(account_id)
            if account is not None and head > account.pos:
                await self._fan_out(account_id, account, head)

    async def _fan_out(self, account_id: str, account: _Account, head: int) -> None:
        """Hand the account's items up to ``head`` to its live subscribers. Only what some
        live subscriber wants is read: its filters go into the statement (a subscriber of
        one connector costs nothing when another connector ingests); with no live
        subscriber nothing is read (the ones catching up read the feed themselves)."""
        while account.pos < head and self.accounts.get(account_id) is account:
            filters = {sub.which for sub in account.subscribers if sub.live and not sub.closed}
            if not filters:
                account.pos = head
                return
            wanted = list(filters) if len(filters) <= MAX_FILTERS else [FeedFilter()]
            start = account.pos
            items, reached = await self._read(
                self.store.read_feed_any, account_id, start, head, wanted, READ_BATCH
            )
            if self.accounts.get(account_id) is not account or account.pos != start:
                return  # everyone left meanwhile (or the hub closed)
            self.reads += 1
            self._offer(account, items, reached, None if FeedFilter() in wanted else filters)

    def _offer(
        self,
        account: _Account,
        items: list[FeedItem],
        reached: int,
        read: set[FeedFilter] | None,
    ) -> None:
        """Offer ``items`` (every one up to ``reached`` that the filters ``read`` select;
        None: every item) to the live subscribers."""
        live = [sub for sub in account.subscribers if sub.live and not sub.closed]
        # Subscribers with the same filter are asked once per item (many dashboards
        # follow the same connector).
        groups: dict[FeedFilter, list[Subscriber]] = {}
        for sub in live:
            if read is None or sub.which in read:
                groups.setdefault(sub.which, []).append(sub)
            else:  # live since the read began (off the loop), with a filter not read
                sub.pause()
        for item in items:
            framed: list[bytes | None] = [None, None]
            for (cpk, kind, k), subs in groups.items():
                cid = subs[0].connector_id
                if (
                    (cpk is not None and item.connector_id != cid)
                    or (kind is not None and item.kind != kind)
                    or (k is not None and item.k != k)
                ):
                    continue
                message = framed[cid is None]
                if message is None:
                    message = framed[cid is None] = self.frame(item, cid is None)
                for sub in subs:
                    if item.seq > sub.pos and sub.live:
                        sub.offer(item.seq, message)
        for subs in groups.values():
            for sub in subs:
                if sub.live:
                    sub.pos = max(sub.pos, reached)
        account.pos = reached

    def subscribers(self) -> Iterable[Subscriber]:
        for account in self.accounts.values():
            yield from account.subscribers
