"""Live streams' routes (issue 10): server-sent events of a connector's events, of its
snapshots, and of every connector of an account, in arrival order (service/streams.py).

Each message is ``id: <resume token>``, ``event: event|snapshot`` and ``data: <the item
exactly as Get Event / Get Snapshot return it>`` (on the account stream with its
``connector_id`` first). A stream starts now, after ``Last-Event-ID`` (or ``?after=``),
or (``?from=<epoch>``) with the items that arrived from then on; ``?k=`` keeps one event
kind. An idle stream sends ``: keep-alive`` every ``stream_heartbeat_seconds``; its
credential is checked again every ``auth_cache_seconds`` (a revoked one ends it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson

from connector_telemetry.api.backlog import GONE
from connector_telemetry.api.context import Context
from connector_telemetry.api.events import KIND
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Param, Route, Stream, number
from connector_telemetry.errors import ApiError, Forbidden
from connector_telemetry.models import FeedFilter, FeedItem
from connector_telemetry.service.streams import Hub, Subscriber, resume_position

HEARTBEAT = b": keep-alive\n\n"
#: How often a stream idle that long asks whether its client is still connected
#: (api/backlog.py).
LOOK_SECONDS = 2.0
#: Before reading the kernel's send queue to confirm a client reads, let granian write.
_SETTLE_SECONDS = 0.01
#: The first bytes of every stream: how long an EventSource waits before it reconnects.
OPENING = b"retry: 2000\n\n"
AFTER = Param("after", {"type": "string"}, parse=lambda raw: raw)
FROM = number("from", required=False)
_AUTH_HEADERS = ("authorization", "x-auth-email", "x-auth-key")
_ERRORS = ("400", "403", "404", "410")
#: On every answer of a stream route: never cached, and passed on unbuffered by nginx.
_HEADERS = (("cache-control", "no-store"), ("x-accel-buffering", "no"))


def _result(what: str) -> dict[str, str]:
    return {
        "type": "string",
        "description": (
            f"Server-sent events: {what}, in arrival (commit) order. Each message: "
            "`id:` (opaque resume token), `event:` (`event` or `snapshot`), `data:` (the item "
            "as Get Event / Get Snapshot return it). Resume with the `Last-Event-ID` header "
            "or `after`; `from` (epoch seconds) replays what arrived since then first. "
            "A token older than retention: 410/1410. `: keep-alive` comments when idle."
        ),
    }


def with_connector_id(doc: bytes, connector_id: str) -> bytes:
    """The document (a JSON object) with ``connector_id`` as its first member."""
    head = b'{"connector_id":' + orjson.dumps(connector_id)
    rest = doc.lstrip()[1:]
    return head + (b"}" if rest.strip() == b"}" else b"," + rest)


def frame(item: FeedItem, account: bool) -> bytes:
    """One server-sent event (``account``: the account stream's form of the item)."""
    doc = with_connector_id(item.doc, item.connector_id) if account else item.doc
    data = b"data: " + doc.replace(b"\n", b"\ndata: ") if b"\n" in doc else b"data: " + doc
    return b"id: s%d\nevent: %s\n%s\n\n" % (item.seq, item.kind.encode(), data)


class EventStream:
    """One open stream's body (``route.Streamed``): its subscriber's messages as they
    come, a heartbeat when idle, the credential checked again as the auth cache expires."""

    def __init__(
        self,
        hub: Hub,
        sub: Subscriber,
        recheck: Callable[[], None],
        heartbeat: float,
        auth_every: float,
    ):
        self.hub = hub
        self.sub = sub
        self.recheck = recheck
        self.heartbeat = heartbeat
        self.auth_every = auth_every
        #: Set by the dispatcher (the kernel's send queue of the connection, read from a
        #: table at most ``fresh`` seconds old).
        self.backlog: Callable[..., int | None] = lambda fresh=0.0: None
        #: Bytes sent since the client was last seen to have read (nearly) everything.
        self.unconfirmed = 0

    def close(self) -> None:
        self.hub.unsubscribe(self.sub)

    async def _keeps_up(self) -> bool:
        """With more than ``stream_buffer_bytes`` sent unconfirmed: False when the client
        has stopped reading. The kernel's send queue is asked; while it stays over half
        that, the stream pauses (its items stay in the feed, none held here) for up to two
        heartbeat periods, then gives up on the client."""
        limit = self.sub.buffer_bytes
        # A reading from before granian wrote what it was handed would show an empty queue
        # and confirm bytes the client never read: let it write, then read afresh.
        await asyncio.sleep(_SETTLE_SECONDS)
        queued = self.backlog(_SETTLE_SECONDS / 2)
        if queued == GONE:
            return False
        if queued is None or queued <= limit // 2:
            self.unconfirmed = queued or 0
            return True
        self.hub.pause(self.sub)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.heartbeat
        while loop.time() < deadline and not self.sub.closed:
            await asyncio.sleep(0.05)
            queued = self.backlog(0.05)
            if queued == GONE:
                return False
            if queued is None or queued <= limit // 2:
                self.unconfirmed = queued or 0
                return True
        return False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        hub, sub = self.hub, self.sub
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_auth, last_sent, next_look = now + self.auth_every, now, now + LOOK_SECONDS
        timer: asyncio.TimerHandle | None = None
        due, rang = now, [True]

        def ring() -> None:
            rang[0] = True
            sub.notify()

        try:
            yield OPENING
            while not sub.closed:
                now = loop.time()
                if now >= next_look:  # a client that hung up while idle: let it go
                    # (only when idle: a stream that sends learns it from its writes, and
                    # the look reads the kernel's whole socket table)
                    if now - last_sent < LOOK_SECONDS:
                        next_look = last_sent + LOOK_SECONDS
                    elif self.backlog() == GONE:
                        return
                    else:
                        next_look = now + LOOK_SECONDS
                if now >= next_auth:
                    try:
                        self.recheck()
                    except ApiError:
                        return  # revoked, expired or no longer allowed: the stream ends
                    next_auth = now + self.auth_every
                if not sub.live:
                    frames = hub.catch_up(sub)
                    if frames:
                        chunk = b"".join(frames)
                        yield chunk
                        last_sent = loop.time()
                        self.unconfirmed += len(chunk)
                        if self.unconfirmed > sub.buffer_bytes and not await self._keeps_up():
                            return  # too slow: it resumes later with Last-Event-ID
                    else:
                        await asyncio.sleep(0)
                    continue
                wait = min(last_sent + self.heartbeat, next_auth, next_look) - now
                if not sub.queue and sub.live and not sub.closed and wait > 0:
                    # One timer serves many waits: the deadline only moves later as
                    # messages are sent, and waking early is harmless (the loop goes round).
                    if rang[0] or due > now + wait:
                        if timer is not None:
                            timer.cancel()
                        rang[0] = False
                        timer, due = loop.call_later(wait, ring), now + wait
                    sub.waiter = loop.create_future()
                    try:
                        await sub.waiter
                    finally:
                        sub.waiter = None
                messages = sub.take()
                if messages:
                    chunk = b"".join(messages)
                    yield chunk
                    last_sent = loop.time()
                    self.unconfirmed += len(chunk)
                    if self.unconfirmed > sub.buffer_bytes and not await self._keeps_up():
                        return
                elif not sub.closed and loop.time() - last_sent >= self.heartbeat:
                    yield HEARTBEAT
                    last_sent = loop.time()
                    # bytes sent unconfirmed and nothing since: has the client read them?
                    if self.unconfirmed and not await self._keeps_up():
                        return
        finally:
            if timer is not None:
                timer.cancel()
            hub.unsubscribe(sub)


def routes(ctx: Context, hub: Hub) -> list[Route]:
    """The stream routes (none when the ``streams`` setting is off)."""
    settings, store = ctx.settings, ctx.store
    if not settings.streams:
        return []
    auth_every = settings.auth_cache_seconds if settings.auth_cache_seconds > 0 else 1.0

    def start(req: Request) -> int | None:
        header = req.headers.get("last-event-id")
        if header:
            return resume_position(store, req.account_id, str(header), "Last-Event-ID")
        if req.args["after"] is not None:
            return resume_position(store, req.account_id, req.args["after"], "after")
        if req.args["from"] is not None:
            return store.feed_since(req.account_id, req.args["from"])
        return None

    def open_stream(req: Request, connector_id: str | None, kind: str | None) -> EventStream:
        account_id = req.account_id
        cpk = None if connector_id is None else store.connector_pk(account_id, connector_id)
        which = FeedFilter(cpk, kind, req.args.get("k"))
        position = start(req)
        headers = {name: req.headers.get(name) for name in _AUTH_HEADERS}
        present = {name: value for name, value in headers.items() if value is not None}

        def recheck() -> None:
            principal = ctx.auth.authenticate(present)
            if principal.permission_on(account_id) not in ("read", "write"):
                raise Forbidden()

        sub = hub.subscribe(account_id, connector_id, which, position, settings.stream_buffer_bytes)
        return EventStream(hub, sub, recheck, settings.stream_heartbeat_seconds, auth_every)

    def events_stream(req: Request) -> EventStream:
        return open_stream(req, req.connector_id, "event")

    def snapshots_stream(req: Request) -> EventStream:
        return open_stream(req, req.connector_id, "snapshot")

    def account_stream(req: Request) -> EventStream:
        return open_stream(req, None, "event" if req.args["k"] is not None else None)

    connector = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry"
    answer = Stream()
    return [
        Route(
            "GET",
            connector + "/events/stream",
            events_stream,
            "read",
            "events.stream",
            "Stream Events (ctel)",
            result=_result("the connector's events"),
            query=(AFTER, FROM, KIND),
            answer=answer,
            errors=_ERRORS,
            headers=_HEADERS,
        ),
        Route(
            "GET",
            connector + "/snapshots/stream",
            snapshots_stream,
            "read",
            "snapshots.stream",
            "Stream Snapshots (ctel)",
            result=_result("the connector's snapshots"),
            query=(AFTER, FROM),
            answer=answer,
            errors=_ERRORS,
            headers=_HEADERS,
        ),
        Route(
            "GET",
            # "telemetry" is never a connector id (ids are 32 lowercase hex characters)
            "/accounts/{account_id}/magic/connectors/telemetry/stream",
            account_stream,
            "read",
            "telemetry.stream",
            "Stream the account's telemetry (ctel)",
            result=_result(
                "events and snapshots of every connector of the account, each with its "
                "`connector_id`"
            ),
            query=(AFTER, FROM, KIND),
            answer=answer,
            errors=_ERRORS,
            headers=_HEADERS,
        ),
    ]
