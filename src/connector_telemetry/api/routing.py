"""A small router for our ~15 routes.

Servers hand us the percent-decoded path (granian's RSGI has no raw path), so a
connector id such as ``a/b`` arrives as two segments. Templates are therefore
matched as regular expressions in which ``{connector_id}`` may span segments
(shortest match first), tried most specific first: ``.../events/latest`` before
``.../events/{event_t}.{event_n}`` before ``.../{connector_id}``. The template
decides the route; the method then picks among that template's routes (405 with
``Allow`` otherwise). Malformed ids answer 7003 before anything else runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from connector_telemetry.errors import MethodNotAllowed, NoRoute, UnroutableId
from connector_telemetry.numbers import event_key_candidates, parse_decimal

if TYPE_CHECKING:
    from connector_telemetry.api.request import Request

Handler = Callable[["Request"], Awaitable[bytes]]
Access = Literal["public", "read", "write", "self"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    access: Access
    operation_id: str
    summary: str


def _convert(name: str, raw: str, path: str) -> Any:
    unroutable = UnroutableId(
        f"Could not route to {path}, perhaps your object identifier is invalid?"
    )
    if name == "account_id":
        if not raw or len(raw) > 32:
            raise unroutable
        return raw
    if name == "event_t.event_n":
        keys = event_key_candidates(raw)
        if not keys:
            raise unroutable
        return keys
    if name == "snapshot_t":
        value = parse_decimal(raw)
        if value is None:
            raise unroutable
        return value
    if not raw or len(raw) > 128:
        raise unroutable
    return raw


def _pattern(template: str) -> re.Pattern[str]:
    out = []
    for segment in template.strip("/").split("/"):
        if segment == "{connector_id}":
            out.append("(?P<connector_id>.+?)")
        elif segment == "{event_t}.{event_n}":
            out.append("(?P<event_id>[^/]+)")
        elif segment.startswith("{"):
            out.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(segment))
    return re.compile("/".join(out))


_PARAM_NAMES = {"event_id": "event_t.event_n"}


class Router:
    def __init__(self, prefix: str, routes: list[Route]):
        self.prefix = prefix.rstrip("/") + "/"
        self.routes = routes
        templates: dict[str, dict[str, Route]] = {}
        for route in routes:
            templates.setdefault(route.template, {})[route.method] = route

        def specificity(template: str) -> tuple[int, list[bool]]:
            segments = template.strip("/").split("/")
            return -len(segments), [s.startswith("{") for s in segments]

        self._templates = [(_pattern(t), templates[t]) for t in sorted(templates, key=specificity)]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        if not path.startswith(self.prefix):
            raise NoRoute("No route for that URI")
        rest = path[len(self.prefix) :]
        if rest.endswith("/"):
            rest = rest[:-1]
        for pattern, by_method in self._templates:
            found = pattern.fullmatch(rest)
            if found is None:
                continue
            route = by_method.get(method)
            if route is None:
                allowed = ", ".join(by_method)
                raise MethodNotAllowed(
                    f"method {method} is not allowed on {path}; allowed: {allowed}",
                    headers=[("allow", allowed)],
                )
            params = {
                _PARAM_NAMES.get(k, k): _convert(_PARAM_NAMES.get(k, k), v, path)
                for k, v in found.groupdict().items()
            }
            return route, params
        raise NoRoute("No route for that URI")
