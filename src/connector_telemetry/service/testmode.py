"""Test mode (issue 11): the rules of the test API under ``/_ctel/`` and of the state every
worker shares through the store (the marker, fault rules, the rate limit, the request
journal, the clock offset). The HTTP side is api/testmode.py.

- The marker: a test-mode server that creates a database writes ``('test_mode', <when>)``
  into its ``meta`` table; ``--test-mode`` on a database without it is refused
  (``refuse_unmarked``), so a reset can never wipe a database that holds real data.
- Fault rules match requests by route name (the operation id, ``events.get``) or ``*``,
  and optionally by method; the oldest rule with requests left takes a request, its
  count going down in the same statement (exact across workers).
- The rate limit counts requests per credential in fixed windows of ``period_seconds``
  (window = floor(now / period), ``now`` the server's clock, test offset included).
"""

from __future__ import annotations

import math
from typing import Any

from connector_telemetry import clock
from connector_telemetry.errors import ApiError, BadRequest, ConfigError
from connector_telemetry.service import credentials
from connector_telemetry.store.base import Store

FAULT_STATUSES = (429, 500, 502, 503, 504)
#: Cloudflare's global API rate limit: 1,200 requests per five minutes per credential.
DEFAULT_REQUESTS = 1200
DEFAULT_PERIOD_SECONDS = 300.0
THROTTLED = "Please wait and consider throttling your request speed"
_FAULT_ANSWERS = {
    429: (971, THROTTLED),
    500: (1500, "Internal server error"),
    502: (1502, "Bad gateway"),
    503: (1503, "Service temporarily unavailable"),
    504: (1504, "Gateway timeout"),
}
MAX_DELAY_MS = 300_000
#: The rate limit's bounds (a window index must fit a 64-bit integer).
MAX_REQUESTS = 1_000_000_000
PERIOD_RANGE = (0.001, 366 * 86400.0)
#: The clock may be set anywhere from 1970 to the end of 9999 (what RFC 3339 can write).
LATEST = 253402300799.0
_FAULT_FIELDS = ("route", "method", "status", "delay_ms", "close", "count")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
JOURNAL_FILTERS = ("route", "method", "status", "account_id", "since")


class Throttled(ApiError):
    """Cloudflare's answer to a client over its rate limit."""

    status, code = 429, 971

    def __init__(self, retry_after: int) -> None:
        super().__init__(THROTTLED, headers=[("retry-after", str(retry_after))])


class InjectedFault(ApiError):
    """A fault rule's answer: its status, in Cloudflare's envelope."""

    def __init__(self, status: int) -> None:
        code, message = _FAULT_ANSWERS[status]
        super().__init__(message, headers=[("retry-after", "1")] if status == 429 else None)
        self.status, self.code = status, code


# -- the marker ----------------------------------------------------------------------------


def refuse_unmarked(store: Store, created_now: bool, name: str) -> None:
    """At the start of a test-mode server, after migrating: a database it has just created
    gets the marker; one created otherwise must carry it (``ConfigError``: exit 2)."""
    if created_now:
        store.mark_test_mode(clock.rfc3339())
    elif store.test_marker() is None:
        raise ConfigError(
            f"--test-mode refused: {name} was not created in test mode (no test-mode marker), "
            "and a reset would delete its data; use a new database file or an empty "
            "PostgreSQL database"
        )


# -- bodies ---------------------------------------------------------------------------------


def _whole(body: dict[str, Any], name: str, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name}: must be a whole number of at least {low}, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value < low:
        raise BadRequest(f"{name}: must be a whole number of at least {low}, got {value!r}")
    return int(value)


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name}: must be a number, got {value!r}")
    return float(value)


def _unknown(body: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in body:
        if key not in known:
            raise BadRequest(f"{key}: unknown field; expected {', '.join(known)}")


def fault_rule(body: dict[str, Any], route_names: frozenset[str]) -> dict[str, Any]:
    """A fault rule from a POST body, every field checked (400 naming the field)."""
    _unknown(body, _FAULT_FIELDS)
    route = body.get("route")
    if not isinstance(route, str) or (route != "*" and route not in route_names):
        raise BadRequest(
            f"route: unknown route name {route!r}; expected * or one of "
            + ", ".join(sorted(route_names))
        )
    method = body.get("method")
    if method is not None:
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise BadRequest(f"method: must be one of {', '.join(_METHODS)}, got {method!r}")
        method = method.upper()
    status = body.get("status")
    if status is not None and (isinstance(status, bool) or status not in FAULT_STATUSES):
        raise BadRequest(
            f"status: must be one of {', '.join(map(str, FAULT_STATUSES))}, got {status!r}"
        )
    close = body.get("close", False)
    if not isinstance(close, bool):
        raise BadRequest(f"close: must be true or false, got {close!r}")
    delay_ms = _whole(body, "delay_ms", 0)
    if delay_ms is not None and delay_ms > MAX_DELAY_MS:
        raise BadRequest(f"delay_ms: at most {MAX_DELAY_MS} (five minutes), got {delay_ms}")
    if status is not None and close:
        raise BadRequest("close: give either status or close, not both")
    if status is None and not close and delay_ms is None:
        raise BadRequest("status: give status, close or delay_ms (what the fault does)")
    count = _whole(body, "count", 1) if "count" in body else 1
    if "count" in body and body["count"] is None:
        count = None
    return {
        "route": route,
        "method": method,
        "status": status,
        "delay_ms": delay_ms,
        "close": close,
        "count": count,
    }


def fault_item(row: tuple[Any, ...]) -> dict[str, Any]:
    fault_id, route, method, status, delay_ms, close, count, remaining = row
    return {
        "id": int(fault_id),
        "route": route,
        "method": method,
        "status": status,
        "delay_ms": delay_ms,
        "close": bool(close),
        "count": count,
        "remaining": remaining,
    }


def add_fault(store: Store, body: dict[str, Any], route_names: frozenset[str]) -> dict[str, Any]:
    rule = fault_rule(body, route_names)
    fault_id = store.add_fault(**rule)
    return {"id": fault_id, **rule, "remaining": rule["count"]}


def rate_limit(body: dict[str, Any]) -> tuple[int, float]:
    _unknown(body, ("requests", "period_seconds"))
    requests = _whole(body, "requests", 1)
    if requests is not None and requests > MAX_REQUESTS:
        raise BadRequest(f"requests: at most {MAX_REQUESTS}, got {requests}")
    period = _number(body, "period_seconds")
    low, high = PERIOD_RANGE
    if period is not None and not low <= period <= high:
        raise BadRequest(
            f"period_seconds: must be from {low:g} to {high:g} (a year), "
            f"got {body['period_seconds']!r}"
        )
    return (
        DEFAULT_REQUESTS if requests is None else requests,
        DEFAULT_PERIOD_SECONDS if period is None else period,
    )


def rate_limit_item(requests: int | None, period: float | None) -> dict[str, Any]:
    return {"enabled": requests is not None, "requests": requests, "period_seconds": period}


def window(now: float, period: float) -> tuple[int, int]:
    """The fixed window ``now`` falls in, and the whole seconds until it ends (>= 1)."""
    index = math.floor(now / period)
    return index, max(1, math.ceil((index + 1) * period - now))


def clock_offset(body: dict[str, Any], current: float) -> float:
    """The clock offset a PUT /_ctel/clock body asks for: ``now`` (epoch seconds) or
    ``advance`` (seconds, from the server's current time)."""
    _unknown(body, ("now", "advance"))
    now, advance = _number(body, "now"), _number(body, "advance")
    if (now is None) == (advance is None):
        raise BadRequest("now: give exactly one of now (epoch seconds) or advance (seconds)")
    real = clock.real_now()
    if now is not None:
        if not 0 <= now <= LATEST:
            raise BadRequest(
                f"now: must be epoch seconds from 0 to {LATEST:.0f} (9999), got {body['now']!r}"
            )
        return now - real
    assert advance is not None
    if not 0 <= real + current + advance <= LATEST:
        raise BadRequest(
            f"advance: the clock would leave 1970 to 9999 (epoch 0 to {LATEST:.0f}), "
            f"got {body['advance']!r}"
        )
    return current + advance


def clock_item() -> dict[str, Any]:
    return {"now": clock.now(), "offset_seconds": clock.offset()}


def journal_filters(args: dict[str, str]) -> dict[str, Any]:
    """The journal's filters from a query string (400 naming a malformed one)."""
    for key in args:
        if key not in JOURNAL_FILTERS:
            raise BadRequest(f"{key}: unknown filter; expected {', '.join(JOURNAL_FILTERS)}")
    out: dict[str, Any] = {
        "route": args.get("route") or None,
        "method": (args.get("method") or "").upper() or None,
        "account_id": args.get("account_id") or None,
    }
    status = args.get("status")
    if status:
        if not (status.isdigit() and len(status) == 3):
            raise BadRequest(f"status: must be an HTTP status (3 digits), got {status!r}")
        out["status"] = int(status)
    since = args.get("since")
    if since:
        try:
            value = float(since)
        except ValueError:
            try:
                value = clock.parse_rfc3339(since)
            except ValueError:
                value = math.nan
        if not math.isfinite(value):
            raise BadRequest(f"since: must be epoch seconds or an RFC 3339 time, got {since!r}")
        out["since"] = value
    return out


_KINDS = {"device": "license"}


def journal_row(
    method: str,
    path: str,
    route: str | None,
    query: str,
    status: int,
    bytes_in: int,
    bytes_out: int,
    credential: tuple[str, str] | None,
    account_id: str | None,
) -> tuple[Any, ...]:
    kind, cid = credential if credential is not None else (None, None)
    return (
        clock.now(),
        method,
        path,
        route,
        query,
        status,
        bytes_in,
        bytes_out,
        _KINDS.get(kind, kind) if kind else None,
        cid,
        account_id,
    )


def journal_item(row: tuple[Any, ...]) -> dict[str, Any]:
    time, method, path, route, query, status, bytes_in, bytes_out, kind, cid, account = row
    return {
        "time": float(time),
        "method": method,
        "path": path,
        "route": route,
        "query": query,
        "status": int(status),
        "bytes_in": int(bytes_in),
        "bytes_out": int(bytes_out),
        "account_id": account,
        "credential": None if kind is None else {"kind": kind, "id": cid},
    }


# -- accounts and reset ------------------------------------------------------------------------


def create_account(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    """An account with a Write token, a Read token and a user (email + Global API Key)."""
    _unknown(body, ("name",))
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest(f"name: must be a string, got {name!r}")
    account_id = credentials.create_account(store, name=name)
    _, token = credentials.create_token(store, account_id, "Magic WAN Write", "test mode")
    _, read_token = credentials.create_token(store, account_id, "Magic WAN Read", "test mode")
    email = f"test-{account_id}@ctel.test"
    api_key = credentials.create_user(store, email, [account_id])
    return {
        "account_id": account_id,
        "token": token,
        "read_token": read_token,
        "email": email,
        "api_key": api_key,
    }


def reset(store: Store) -> dict[str, Any]:
    """Every connector, event, snapshot and interrupt removed (accounts and credentials
    stay); faults, journal and rate limit cleared, the clock back to real time."""
    removed = store.reset_test_data()
    clock.set_offset(0.0)
    return {"removed": removed}
