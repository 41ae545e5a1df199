"""``create_app(settings, store)``: the routes, one dispatcher, and one place where
every error (expected or not, on any route, health checks included) becomes
Cloudflare's envelope (``App._fail``).

The dispatcher serves each route as it declares itself (api/route.py): it authenticates
and authorizes by the route's access, parses its declared query, reads its body, runs it
inline (a read: a plain function, no coroutine; with a store that keeps several reads
in flight, PostgreSQL, on one of its read threads: ``Context.read``) or on the writer
thread (``writes``), and renders its answer. Every answer leaves through ``prepare`` or
``finish``: the place for a per-request hook (metrics, request ids, a request journal,
fault injection).

The app is a plain object with ``handle()``; ``__rsgi__`` (granian, production)
and ``__call__`` (ASGI: tests, uvicorn, anything else) are thin adapters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from typing import Any

from connector_telemetry.api import (
    connectors,
    dashboard,
    envelope,
    events,
    health,
    interrupts,
    metrics,
    openapi,
    snapshots,
    streams,
    testmode,
    tokens,
)
from connector_telemetry.api.auth import authorize
from connector_telemetry.api.backlog import send_queue
from connector_telemetry.api.context import Context
from connector_telemetry.api.metrics import Metrics
from connector_telemetry.api.request import Headers, Request, inflated
from connector_telemetry.api.requestlog import REQUEST_ID, RequestLog, request_id
from connector_telemetry.api.route import (
    BODY_METHODS,
    AsyncHandler,
    Response,
    Route,
    Stream,
    Streamed,
)
from connector_telemetry.api.route import Headers as HeaderList
from connector_telemetry.api.routing import Router
from connector_telemetry.api.throttle import AuthThrottle
from connector_telemetry.errors import (
    ApiError,
    InternalError,
    PayloadTooLarge,
    RequestTimeout,
)
from connector_telemetry.service.streams import Hub
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store
from connector_telemetry.web import Web

log = logging.getLogger("connector_telemetry")

_JSON = [("content-type", "application/json")]
_AUTHENTICATED = frozenset(("read", "write"))
#: The route (operation id) and path parameters of a request, for its metrics and log line
#: (kept only when requests are traced).
Routed = tuple[str, dict[str, Any] | None]
_UNROUTED: Routed = ("unrouted", None)
#: The same, across the awaits of ``handle`` (ASGI, test mode); RSGI takes it from
#: ``App.routed`` right after ``prepare``, which costs less than a context variable.
_ROUTE: ContextVar[Routed] = ContextVar("_ROUTE", default=_UNROUTED)


def _offloaded(route: Route) -> bool:
    """Whether the route is a read for the store's read threads (``Context.read``): an
    authenticated one that answers at once (a stream lives on the event loop)."""
    return route.access in _AUTHENTICATED and not isinstance(route.answer, Stream)


class App:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.ctx = Context(settings, store)
        #: The live streams' fan-out (issue 10), one per process.
        self.streams = Hub(store, streams.frame, read_on=self.ctx.reads)
        routes = [
            *connectors.routes(self.ctx),
            *events.routes(self.ctx),
            *snapshots.routes(self.ctx),
            *streams.routes(self.ctx, self.streams),
            *interrupts.routes(self.ctx),
            *tokens.routes(self.ctx),
            *health.routes(self.ctx),
            *dashboard.routes(self.ctx),
            *Web(settings.prefix).routes(),  # the dashboard's page and files, at the root
        ]
        self.metrics = Metrics() if settings.metrics != "off" else None
        if self.metrics is not None:
            self.metrics.watch(store, lambda: sum(1 for _ in self.streams.subscribers()))
        self.ctx.metrics = self.metrics
        routes += metrics.routes(self.ctx, self.metrics, settings.metrics)
        routes += metrics.fleet_routes(self.ctx)
        #: Test mode's per-request hook (api/testmode.py), or None: not one line of it runs.
        self.testmode: testmode.TestMode | None = None
        if settings.test_mode:
            routes += testmode.routes(self.ctx, lambda: self._test_route_names())
        routes.append(openapi.route(lambda: self.openapi))
        self.openapi = openapi.document(routes, settings.prefix)
        self.router = Router(settings.prefix, routes)
        if settings.test_mode:
            self.testmode = testmode.TestMode(self.ctx, self.router, settings.prefix)
        self._holding = False
        self.throttle = AuthThrottle(settings.auth_failures_per_minute, settings.trusted_proxies)
        self.requests = RequestLog(settings.log_format)
        #: Whether answers are followed up (request log lines, metrics).
        self.tracing = self.requests.enabled or self.metrics is not None
        #: The last request ``prepare`` routed (when tracing); read right after it returns.
        self.routed: Routed = _UNROUTED
        #: Where each answer's and each read's figures go (``Metrics.flush`` counts them).
        self._count_request = self.metrics.request if self.metrics else None
        self._count_read = self.metrics.read_times.append if self.metrics else None
        #: The routes whose reads go to the store's read threads (``Context.read``): the
        #: authenticated reads, streams excepted (a stream lives on the event loop).
        self._threaded = frozenset(
            route.operation_id
            for route in routes
            if self.ctx.reads is not None and _offloaded(route)
        )
        #: The routes whose reads are awaited on the event loop instead (``Route.awaiting``,
        #: when the store keeps several in flight there: ``Store.reads_on_loop``).
        self._awaited = frozenset(
            route.operation_id
            for route in routes
            if store.reads_on_loop and route.awaiting is not None and _offloaded(route)
        )
        self._later = self._threaded | self._awaited

    def _test_route_names(self) -> frozenset[str]:
        assert self.testmode is not None
        return self.testmode.route_names()

    def prepare(
        self, method: str, path: str, query: str, headers: Headers, peer: str = ""
    ) -> Response | tuple[Route, Request]:
        """Route and authenticate. Reads are answered right here, with no coroutine;
        what needs the body or the writer thread goes on to ``finish``. ``peer``: the
        connection's client address (``ip:port``), for the failed-authentication
        throttle."""
        route = None
        if self.tracing:
            self.routed = _UNROUTED
        try:
            route, params = self.router.match(method, path)
            if self.tracing:
                self.routed = (route.operation_id, params)
            req = Request(method, path, query, headers, b"")
            req.params = params
            if route.access in _AUTHENTICATED:
                try:
                    principal = self.ctx.auth.authenticate(headers)
                except ApiError as exc:
                    client = self.throttle.client(peer, headers.get("x-forwarded-for"))
                    raise self.throttle.failed(client, exc) from None
                authorize(principal, route, params)
                req.principal = principal
            if route.deferred or route.operation_id in self._later:
                return route, req
            if route.query:
                req.args = route.parse_query(req)
            if self._count_read is None:
                return route.respond(route.handler(req))
            began = time.perf_counter()
            answer = route.handler(req)
            self._count_read(time.perf_counter() - began)
            return route.respond(answer)
        except Exception as exc:
            return self._fail(exc, method, path, route)

    async def finish(self, route: Route, req: Request, body: Any) -> Response:
        """``body`` is an awaitable returning the request body."""
        try:
            if req.method in BODY_METHODS:
                length = req.headers.get("content-length")
                limit = self.settings.max_body_bytes
                if length and length.isdigit() and int(length) > limit:
                    raise PayloadTooLarge(f"request body over {limit} bytes")
                try:
                    raw = await asyncio.wait_for(body(), self.settings.body_timeout_seconds)
                except TimeoutError:
                    raise RequestTimeout(
                        f"the request body did not arrive within "
                        f"{self.settings.body_timeout_seconds:g} s (body_timeout_seconds)"
                    ) from None
                if len(raw) > limit:  # sent without Content-Length
                    raise PayloadTooLarge(f"request body over {limit} bytes")
                req.body = inflated(raw, req.headers.get("content-encoding"), limit)
            if route.query:
                req.args = route.parse_query(req)
            if route.writes:
                return route.respond(await self.ctx.write(route.handler, req))
            if route.awaiting is not None and route.operation_id in self._awaited:
                return route.respond(await self._awaiting(route.awaiting, req))
            if route.operation_id in self._threaded:
                return route.respond(await self.ctx.read(route.handler, req))
            return route.respond(route.handler(req))
        except Exception as exc:
            return self._fail(exc, req.method, req.path, route)

    async def _awaiting(self, handler: AsyncHandler, req: Request) -> Any:
        if self.metrics is None:
            return await handler(req)
        began = time.perf_counter()
        try:
            return await handler(req)
        finally:
            self.metrics.read_took(began)

    async def handle(
        self, method: str, path: str, query: str, headers: Headers, body: Any, peer: str = ""
    ) -> Response:
        prepared = self.prepare(method, path, query, headers, peer)
        if self.tracing:
            _ROUTE.set(self.routed)
        if len(prepared) == 3:
            return prepared
        return await self.finish(prepared[0], prepared[1], body)

    def _fail(self, exc: Exception, method: str, path: str, route: Route | None) -> Response:
        """The one place an exception becomes an answer: Cloudflare's envelope, with the
        route's own headers (``Cache-Control`` on health checks), no body for HEAD."""
        if isinstance(exc, ApiError):
            err = exc
        elif isinstance(exc, self.ctx.store.unavailable_errors):
            err = self.ctx.store.refusal(exc)
            log.warning("store refused %s %s (%d): %s", method, path, err.status, exc)
        else:
            rid = REQUEST_ID.get() or request_id(None)
            log.error("unexpected error on %s %s (request %s)", method, path, rid, exc_info=exc)
            err = InternalError(f"internal error, request id {rid}")
        if route is None:
            return err.status, _JSON + err.headers, envelope.error_body(err)
        if self.metrics is not None:
            self.metrics.refuse(route.operation_id, err.code)
        body = b"" if route.method == "HEAD" else envelope.error_body(err)
        return err.status, [*_JSON, *route.headers, *err.headers], body

    # -- RSGI (granian) ---------------------------------------------------------

    def _hold_reads(self) -> None:
        """Reads on this (the event loop's) thread share a read transaction until the
        loop's next turn (see ``store.sqlite_held.HeldReader``)."""
        self._holding = True
        loop = asyncio.get_running_loop()
        store = self.ctx.store

        def end_soon() -> None:
            loop.call_soon(store.end_reads)

        store.hold_reads(end_soon)
        if self.metrics is not None:
            self.metrics.flush_every(loop)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if not self._holding:
            self._hold_reads()
        started = time.perf_counter()
        rid = request_id(scope.headers.get("x-request-id"))
        REQUEST_ID.set(rid)
        if self.testmode is not None:
            tested = await self.testmode.serve(
                self.handle,
                self._fail,
                scope.method,
                scope.path,
                scope.query_string,
                scope.headers,
                proto,
                scope.client,
            )
            if tested is None:
                await testmode.close_rsgi(proto)
                return
            status, headers, body = tested
            routed = _ROUTE.get()
        else:
            out = self.prepare(
                scope.method, scope.path, scope.query_string, scope.headers, scope.client
            )
            routed = self.routed
            if len(out) == 2:
                out = await self.finish(out[0], out[1], proto)
            status, headers, body = out
        if isinstance(body, bytes):
            proto.response_bytes(status, [*headers, ("x-request-id", rid)], body)
            sent = len(body)
        else:
            body.backlog = send_queue(scope.server, scope.client)
            sent = await _stream_rsgi(proto, status, [*headers, ("x-request-id", rid)], body)
        if self._count_request is not None:
            self._count_request(routed[0], scope.method, status, time.perf_counter() - started)
        if self.requests.enabled:
            self._log(rid, scope.method, scope.headers, status, started, sent, routed)

    def __rsgi_del__(self, loop: Any) -> None:
        self.streams.close()
        self.ctx.close()

    # -- ASGI -------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.streams.close()
                    self.ctx.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if not self._holding:
            self._hold_reads()
        headers = _AsgiHeaders(scope["headers"])

        async def read_body() -> bytes:
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            return b"".join(chunks)

        started = time.perf_counter()
        rid = request_id(headers.get("x-request-id"))
        REQUEST_ID.set(rid)
        # Like RSGI, hand the router the decoded path (see api.routing).
        args = (
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            read_body,
            "{}:{}".format(*scope["client"]) if scope.get("client") else "",
        )
        if self.testmode is not None:
            tested = await self.testmode.serve(self.handle, self._fail, *args)
            if tested is None:
                await testmode.close_asgi(send)
                return
            status, out, payload = tested
        else:
            status, out, payload = await self.handle(*args)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in [*out, ("x-request-id", rid)]],
            }
        )
        if isinstance(payload, bytes):
            await send({"type": "http.response.body", "body": payload})
            sent = len(payload)
        else:
            if scope.get("server") and scope.get("client"):
                ends = ("{}:{}".format(*scope["server"]), "{}:{}".format(*scope["client"]))
                payload.backlog = send_queue(*ends)
            sent = await _stream_asgi(receive, send, payload)
        if self.tracing:
            routed = _ROUTE.get()
            if self._count_request is not None:
                took = time.perf_counter() - started
                self._count_request(routed[0], scope["method"], status, took)
            if self.requests.enabled:
                self._log(rid, scope["method"], headers, status, started, sent, routed)

    def _log(
        self,
        rid: str,
        method: str,
        headers: Headers,
        status: int,
        started: float,
        out: int,
        routed: Routed,
    ) -> None:
        """After an answer: its log line."""
        route, params = routed
        length = headers.get("content-length") or "0"
        bytes_in = int(length) if length.isdigit() else 0
        self.requests.done(rid, method, route, status, started, params, bytes_in, out)


async def _stream_rsgi(proto: Any, status: int, headers: HeaderList, body: Streamed) -> int:
    """A ``Stream`` route's answer over RSGI: each chunk as it comes, until the body ends
    or the client goes away (which closes the body); how many bytes were sent."""
    transport = proto.response_stream(status, headers)
    gone = asyncio.ensure_future(proto.client_disconnect())
    gone.add_done_callback(lambda _: body.close())
    sent = 0
    try:
        async for chunk in body:
            await transport.send_bytes(chunk)
            sent += len(chunk)
    except Exception as exc:  # the connection is closed (RSGIProtocolClosed): it ends here
        log.debug("stream ended: %s", exc)
    finally:
        gone.cancel()
        body.close()
    return sent


async def _stream_asgi(receive: Any, send: Any, body: Streamed) -> int:
    """The same over ASGI (``more_body``); ``http.disconnect`` closes the body."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        body.close()

    gone = asyncio.ensure_future(watch())
    sent = 0
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        await send({"type": "http.response.body", "body": b""})
    except OSError as exc:
        log.debug("stream ended: %s", exc)
    finally:
        gone.cancel()
        body.close()
    return sent


class _AsgiHeaders(dict[str, str]):
    def __init__(self, raw: list[tuple[bytes, bytes]]):
        super().__init__((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)


def create_app(settings: Settings, store: Store | None = None) -> App:
    if store is None:
        from connector_telemetry.store import open_store

        store = open_store(settings)
    return App(settings, store)
