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

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from connector_telemetry.errors import MethodNotAllowed, NoRoute, UnroutableId
from connector_telemetry.numbers import event_key_candidates, parse_decimal

if TYPE_CHECKING:
    from connector_telemetry.api.request import Request

#: Reads are plain functions (no coroutine per request on the hot path); handlers
#: that write are coroutines, since they wait for the writer thread.
Handler = Callable[["Request"], Awaitable[bytes]] | Callable[["Request"], bytes]
Access = Literal["public", "read", "write", "self"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    access: Access
    operation_id: str
    summary: str
    #: Whether a connector's own license key may call it (for its own connector).
    device: bool = False

    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))


def _unroutable(path: str) -> UnroutableId:
    return UnroutableId(f"Could not route to {path}, perhaps your object identifier is invalid?")


def _account_id(raw: str) -> str | None:
    return raw if len(raw) <= 32 else None


def _plain_id(raw: str) -> str | None:
    return raw if len(raw) <= 128 else None


def _event_id(raw: str) -> list[tuple[float, float]] | None:
    return event_key_candidates(raw) or None


#: Path parameter -> (name handlers see, converter returning None when malformed).
CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "account_id": ("account_id", _account_id),
    "connector_id": ("connector_id", _plain_id),
    "event_id": ("event_t.event_n", _event_id),
    "snapshot_t": ("snapshot_t", parse_decimal),
}


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


def _picker(positions: tuple[int, ...]) -> Callable[[list[str]], tuple[str, ...]]:
    """A function picking the segments at ``positions`` out of a split path, as a tuple."""
    if len(positions) <= 1:
        return lambda parts: tuple(parts[i] for i in positions)
    return itemgetter(*positions)


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

        # Slow path: templates as regular expressions ({connector_id} may span segments).
        Converters = tuple[tuple[str, Any], ...]
        self._templates: list[tuple[re.Pattern[str], dict[str, Route], Converters]] = []
        converters_of: dict[str, Converters] = {}
        for template in sorted(templates, key=specificity):
            pattern = _pattern(template)
            converters_of[template] = tuple(CONVERTERS[name] for name in pattern.groupindex)
            self._templates.append((pattern, templates[template], converters_of[template]))

        # Fast path: every id a single segment (the common case). Per segment count, the
        # "shapes" (which positions are literal), most specific first; per shape, the
        # literal segments -> the template's routes, its parameters' picker and converters.
        # A match is one dict lookup per shape, the segments picked out in C (itemgetter).
        Hit = tuple[dict[str, Route], Callable[[list[str]], tuple[str, ...]], Converters]
        shapes: dict[int, dict[tuple[int, ...], dict[tuple[str, ...], Hit]]] = {}
        for template in sorted(templates, key=specificity):
            segments = template.strip("/").split("/")
            literal = tuple(i for i, seg in enumerate(segments) if not seg.startswith("{"))
            params = tuple(i for i, seg in enumerate(segments) if seg.startswith("{"))
            by_literals = shapes.setdefault(len(segments), {}).setdefault(literal, {})
            by_literals[tuple(segments[i] for i in literal)] = (
                templates[template],
                _picker(params),
                converters_of[template],
            )
        self._shapes = {
            count: [(_picker(literal), by_literals) for literal, by_literals in found.items()]
            for count, found in shapes.items()
        }

    def match(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        if not path.startswith(self.prefix):
            raise NoRoute("No route for that URI")
        rest = path[len(self.prefix) :]
        if rest.endswith("/"):
            rest = rest[:-1]
        parts = rest.split("/")
        for literal, by_literals in self._shapes.get(len(parts), ()):
            hit = by_literals.get(literal(parts))
            if hit is not None:
                raw = hit[1](parts)
                if "" not in raw:
                    return self._route(method, path, hit[0], hit[2], raw)
        for pattern, by_method, converters in self._templates:
            found = pattern.fullmatch(rest)
            if found is not None:
                return self._route(method, path, by_method, converters, found.groups())
        raise NoRoute("No route for that URI")

    @staticmethod
    def _route(
        method: str,
        path: str,
        by_method: dict[str, Route],
        converters: tuple[tuple[str, Any], ...],
        raw: Sequence[str],
    ) -> tuple[Route, dict[str, Any]]:
        route = by_method.get(method)
        if route is None:
            allowed = ", ".join(by_method)
            raise MethodNotAllowed(
                f"method {method} is not allowed on {path}; allowed: {allowed}",
                headers=[("allow", allowed)],
            )
        params = {}
        for (name, convert), value in zip(converters, raw, strict=True):
            converted = convert(value)
            if converted is None:
                raise _unroutable(path)
            params[name] = converted
        return route, params
