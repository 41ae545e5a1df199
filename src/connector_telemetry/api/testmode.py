"""Test mode over HTTP (issue 11; ``ctel serve --test-mode``): the test API at the server's
root under ``/_ctel/`` (``routes``, registered only in test mode, so that without it those
paths are 404 like any unknown route), and ``TestMode``, the dispatcher's per-request hook
(app.py calls ``TestMode.serve`` instead of ``handle`` when, and only when, test mode is on:
a server without it runs no line of this module per request, and reads no test state).

Per API request (a path under the prefix) in test mode: the shared state is read afresh
(one query: the clock offset, set process-wide for ``clock.now()``, the rate limit, whether
any fault rule is active); a matching fault rule takes the request (its count down by one
on the writer thread, exact across workers) and answers with its status, after its delay,
or by closing the connection; else a request with a credential is counted against the rate
limit (429/971 with ``retry-after`` over it); then the request is served as always, and
its journal line is written before its answer leaves. Requests under ``/_ctel/`` and at the
root (health checks, the dashboard, /metrics) are neither faulted, counted nor journaled.
The rules themselves are service/testmode.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from connector_telemetry import clock
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Headers, Request
from connector_telemetry.api.route import Body, Response, Route, Schema
from connector_telemetry.errors import ApiError, BadRequest, NotFound
from connector_telemetry.service import body as body_rules
from connector_telemetry.service import testmode

if TYPE_CHECKING:
    from connector_telemetry.api.routing import Router

log = logging.getLogger("connector_telemetry")

ROOT = "/_ctel"
#: The status line a closed connection's half-answer carries (see ``close_rsgi``).
CLOSE_STATUS = 502

_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_STR: Schema = {"type": "string"}
_NULLABLE_INT: Schema = {"type": "integer", "nullable": True}
_FAULT: Schema = {
    "type": "object",
    "required": ["id", "route", "method", "status", "delay_ms", "close", "count", "remaining"],
    "properties": {
        "id": _INT,
        "route": _STR,
        "method": {"type": "string", "nullable": True},
        "status": {"type": "integer", "nullable": True, "enum": [*testmode.FAULT_STATUSES, None]},
        "delay_ms": _NULLABLE_INT,
        "close": {"type": "boolean"},
        "count": _NULLABLE_INT,
        "remaining": _NULLABLE_INT,
    },
}
_FAULT_BODY: Schema = {
    "type": "object",
    "required": ["route"],
    "additionalProperties": False,
    "properties": {
        "route": {"type": "string", "description": "a route name (operation id), or *"},
        "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
        "status": {"type": "integer", "enum": list(testmode.FAULT_STATUSES)},
        "delay_ms": {"type": "integer", "minimum": 0},
        "close": {"type": "boolean"},
        "count": {"type": "integer", "minimum": 1, "nullable": True, "default": 1},
    },
}
_RATE: Schema = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "requests": _NULLABLE_INT,
        "period_seconds": {"type": "number", "nullable": True},
    },
}
_CLOCK: Schema = {
    "type": "object",
    "required": ["now", "offset_seconds"],
    "properties": {"now": _NUM, "offset_seconds": _NUM},
}
_ACCOUNT: Schema = {
    "type": "object",
    "required": ["account_id", "token", "read_token", "email", "api_key"],
    "properties": {
        name: _STR for name in ("account_id", "token", "read_token", "email", "api_key")
    },
}
_JOURNAL_ITEM: Schema = {
    "type": "object",
    "properties": {
        "time": _NUM,
        "method": _STR,
        "path": _STR,
        "route": {"type": "string", "nullable": True},
        "query": _STR,
        "status": _INT,
        "bytes_in": _INT,
        "bytes_out": _INT,
        "account_id": {"type": "string", "nullable": True},
        "credential": {
            "type": "object",
            "nullable": True,
            "properties": {
                "kind": {"type": "string", "enum": ["token", "user", "license"]},
                "id": _STR,
            },
        },
    },
}
_COUNTS: Schema = {"type": "object", "additionalProperties": _INT}


def _object(req: Request) -> dict[str, Any]:
    """The body as a JSON object, whatever its Content-Type (``curl -d`` sends a form's:
    a test API for any language takes JSON as it comes); an empty body is ``{}``."""
    if not req.body.strip():
        return {}
    value = body_rules.read_json(req.body)
    if not isinstance(value, dict):
        raise BadRequest("body: must be a JSON object")
    return value


def routes(ctx: Context, route_names: Callable[[], frozenset[str]]) -> list[Route]:
    """The test API (only in test mode). ``route_names``: the names a fault may match."""
    store = ctx.store

    def create_account(req: Request) -> Any:
        return testmode.create_account(store, _object(req))

    def reset(req: Request) -> Any:
        return testmode.reset(store)

    def list_faults(req: Request) -> Any:
        return [testmode.fault_item(row) for row in store.list_faults()]

    def add_fault(req: Request) -> Any:
        return testmode.add_fault(store, _object(req), route_names())

    def clear_faults(req: Request) -> Any:
        return {"removed": store.clear_faults()}

    def delete_fault(req: Request) -> Any:
        fault_id = req.params["fault_id"]
        if not store.delete_fault(fault_id):
            raise NotFound(f"no fault rule with id {fault_id}")
        return {"id": fault_id}

    def get_rate_limit(req: Request) -> Any:
        _, requests, period, _ = store.test_state()
        return testmode.rate_limit_item(requests, period)

    def put_rate_limit(req: Request) -> Any:
        requests, period = testmode.rate_limit(_object(req))
        store.set_rate_limit(requests, period)
        return testmode.rate_limit_item(requests, period)

    def delete_rate_limit(req: Request) -> Any:
        store.set_rate_limit(None, None)
        return testmode.rate_limit_item(None, None)

    def list_requests(req: Request) -> Any:
        filters = testmode.journal_filters(req.query())
        return [testmode.journal_item(row) for row in store.list_journal(filters)]

    def clear_requests(req: Request) -> Any:
        return {"removed": store.clear_journal()}

    def get_clock(req: Request) -> Any:
        clock.set_offset(store.test_state()[0])
        return testmode.clock_item()

    def put_clock(req: Request) -> Any:
        offset = testmode.clock_offset(_object(req), store.test_state()[0])
        store.set_clock_offset(offset)
        clock.set_offset(offset)
        return testmode.clock_item()

    def delete_clock(req: Request) -> Any:
        store.set_clock_offset(0.0)
        clock.set_offset(0.0)
        return testmode.clock_item()

    any_body = Body({"type": "object"})
    common: dict[str, Any] = {"mount": "root", "headers": (("cache-control", "no-store"),)}
    writes: dict[str, Any] = {**common, "writes": True}
    return [
        Route(
            "POST",
            f"{ROOT}/accounts",
            create_account,
            "public",
            "testmode.accounts.create",
            "Create an account with a Write token, a Read token and a user key",
            result=_ACCOUNT,
            body=Body({"type": "object", "properties": {"name": _STR}}),
            **writes,
        ),
        Route(
            "POST",
            f"{ROOT}/reset",
            reset,
            "public",
            "testmode.reset",
            "Remove every connector, event, snapshot and interrupt; clear the test state",
            result={"type": "object", "properties": {"removed": _COUNTS}},
            body=any_body,
            **writes,
        ),
        Route(
            "GET",
            f"{ROOT}/faults",
            list_faults,
            "public",
            "testmode.faults.list",
            "List the fault rules",
            result={"type": "array", "items": _FAULT},
            **common,
        ),
        Route(
            "POST",
            f"{ROOT}/faults",
            add_fault,
            "public",
            "testmode.faults.create",
            "Add a fault rule",
            result=_FAULT,
            body=Body(_FAULT_BODY),
            **writes,
        ),
        Route(
            "DELETE",
            f"{ROOT}/faults",
            clear_faults,
            "public",
            "testmode.faults.clear",
            "Remove every fault rule",
            result={"type": "object", "properties": {"removed": _INT}},
            **writes,
        ),
        Route(
            "DELETE",
            f"{ROOT}/faults/{{fault_id}}",
            delete_fault,
            "public",
            "testmode.faults.delete",
            "Remove one fault rule",
            result={"type": "object", "properties": {"id": _INT}},
            errors=("400", "404"),
            **writes,
        ),
        Route(
            "GET",
            f"{ROOT}/rate-limit",
            get_rate_limit,
            "public",
            "testmode.rate_limit.get",
            "The rate limit",
            result=_RATE,
            **common,
        ),
        Route(
            "PUT",
            f"{ROOT}/rate-limit",
            put_rate_limit,
            "public",
            "testmode.rate_limit.set",
            "Switch the rate limit on (Cloudflare's 1,200 per 300 s by default)",
            result=_RATE,
            body=Body(
                {
                    "type": "object",
                    "properties": {
                        "requests": {"type": "integer", "minimum": 1, "default": 1200},
                        "period_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 300},
                    },
                }
            ),
            **writes,
        ),
        Route(
            "DELETE",
            f"{ROOT}/rate-limit",
            delete_rate_limit,
            "public",
            "testmode.rate_limit.delete",
            "Switch the rate limit off",
            result=_RATE,
            **writes,
        ),
        Route(
            "GET",
            f"{ROOT}/requests",
            list_requests,
            "public",
            "testmode.requests.list",
            "The request journal, oldest first",
            result={"type": "array", "items": _JOURNAL_ITEM},
            **common,
        ),
        Route(
            "DELETE",
            f"{ROOT}/requests",
            clear_requests,
            "public",
            "testmode.requests.clear",
            "Clear the request journal",
            result={"type": "object", "properties": {"removed": _INT}},
            **writes,
        ),
        Route(
            "GET",
            f"{ROOT}/clock",
            get_clock,
            "public",
            "testmode.clock.get",
            "The server's clock",
            result=_CLOCK,
            **common,
        ),
        Route(
            "PUT",
            f"{ROOT}/clock",
            put_clock,
            "public",
            "testmode.clock.set",
            "Set (now) or advance (advance) the server's clock",
            result=_CLOCK,
            body=Body({"type": "object", "properties": {"now": _NUM, "advance": _NUM}}),
            **writes,
        ),
        Route(
            "DELETE",
            f"{ROOT}/clock",
            delete_clock,
            "public",
            "testmode.clock.delete",
            "Back to real time",
            result=_CLOCK,
            **writes,
        ),
    ]


Handle = Callable[..., Awaitable[Response]]
Fail = Callable[[Exception, str, str, "Route | None"], Response]


class TestMode:
    """The per-request hook (see the module's docstring). ``serve`` returns the answer,
    or None: close the connection without one."""

    __test__ = False  # (not a pytest class)

    def __init__(self, ctx: Context, router: Router, prefix: str):
        self.ctx = ctx
        self.store = ctx.store
        self.router = router
        self.prefix = prefix.rstrip("/") + "/"

    def route_names(self) -> frozenset[str]:
        """What a fault rule may name: every route under the API prefix."""
        return frozenset(r.operation_id for r in self.router.routes if r.mount == "api")

    def _credential(self, route: Route, headers: Headers) -> tuple[str, str] | None:
        if route.access == "public":
            return None
        try:
            principal = self.ctx.auth.authenticate(headers)
        except ApiError:
            return None
        return principal.kind, principal.id

    async def serve(
        self,
        handle: Handle,
        fail: Fail,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: Any,
        peer: str,
    ) -> Response | None:
        try:
            offset, requests, period, faults = self.store.test_state()
        except Exception as exc:  # the store busy or gone: answered as any request would be
            return fail(exc, method, path, None)
        clock.set_offset(offset)
        if not path.startswith(self.prefix):  # the root: the test API, health checks, ...
            return await handle(method, path, query, headers, body, peer)
        route: Route | None = None
        params: dict[str, Any] = {}
        credential = None
        out: Response | None
        with contextlib.suppress(ApiError):  # unrouted: served (404, 405) and journaled
            route, params = self.router.match(method, path)
        try:
            fault = None
            if faults and route is not None:
                fault = await self.ctx.write(self.store.take_fault, route.operation_id, method)
            if route is not None:
                credential = self._credential(route, headers)
            out = await self._answer(
                fault,
                credential,
                requests,
                period,
                handle,
                fail,
                method,
                path,
                query,
                headers,
                body,
                peer,
                route,
            )
        except Exception as exc:
            out = fail(exc, method, path, route)
        length = headers.get("content-length") or "0"
        row = testmode.journal_row(
            method,
            path,
            route.operation_id if route is not None else None,
            query,
            CLOSE_STATUS if out is None else out[0],
            int(length) if length.isdigit() else 0,
            0 if out is None or not isinstance(out[2], bytes) else len(out[2]),  # a stream: 0
            credential,
            params.get("account_id"),
        )
        try:
            await self.ctx.write(self.store.add_journal, row)
        except Exception as exc:  # the answer goes out regardless
            log.warning("test mode: request journal not written: %s", exc)
        return out

    async def _answer(
        self,
        fault: tuple[Any, ...] | None,
        credential: tuple[str, str] | None,
        requests: int | None,
        period: float | None,
        handle: Handle,
        fail: Fail,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: Any,
        peer: str,
        route: Route | None,
    ) -> Response | None:
        if fault is not None:
            status, delay_ms, close = fault
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            if close:
                return None
            if status:
                return fail(testmode.InjectedFault(int(status)), method, path, route)
        if requests is not None and period is not None and credential is not None:
            index, retry_after = testmode.window(clock.now(), period)
            key = f"{credential[0]}:{credential[1]}"
            if await self.ctx.write(self.store.rate_hit, key, index) > requests:
                return fail(testmode.Throttled(retry_after), method, path, route)
        return await handle(method, path, query, headers, body, peer)


async def close_rsgi(proto: Any) -> None:
    """Close the connection without a (complete) answer: RSGI has no abort, so the head of
    an answer promising a body is sent with one byte of it, and the connection closed;
    clients see a broken connection (httpx: ``RemoteProtocolError``, "peer closed
    connection without sending complete message body")."""
    stream = proto.response_stream(CLOSE_STATUS, [("content-length", "65536")])
    await stream.send_bytes(b" ")


async def close_asgi(send: Any) -> None:
    """The same under ASGI (what a client then sees is the ASGI server's doing)."""
    await send(
        {
            "type": "http.response.start",
            "status": CLOSE_STATUS,
            "headers": [(b"content-length", b"65536")],
        }
    )
    await send({"type": "http.response.body", "body": b" ", "more_body": False})
