"""A small router for our routes (declared in api/route.py).

Servers hand us the percent-decoded path (granian's RSGI has no raw path), so a
connector id such as ``a/b`` arrives as two segments. Templates are therefore
matched as regular expressions in which ``{connector_id}`` (and a root route's
``{file}``) may span segments
(shortest match first), tried most specific first: ``.../events/latest`` before
``.../events/{event_t}.{event_n}`` before ``.../{connector_id}``. The template
decides the route; the method then picks among that template's routes (405 with
``Allow`` otherwise). Malformed ids answer 7003 before anything else runs.

Routes under the API prefix and routes at the server's root (``mount``) are two tables;
a path under the prefix never reaches the root's. The fast path is one dict lookup per
path shape (which segments are literal).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any

from connector_telemetry.api.route import PATH_PARAMS, Route
from connector_telemetry.errors import MethodNotAllowed, NoPage, NoRoute, UnroutableId

Converters = tuple[tuple[str, Callable[[str], Any]], ...]


def _unroutable(path: str) -> UnroutableId:
    return UnroutableId(f"Could not route to {path}, perhaps your object identifier is invalid?")


def _pattern(template: str) -> re.Pattern[str]:
    out = []
    for segment in template.strip("/").split("/"):
        name = segment[1:-1]
        if segment.startswith("{") and name in PATH_PARAMS and PATH_PARAMS[name].spans:
            out.append(f"(?P<{name}>.+?)")
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


class _Methods:
    """One template's routes by method (HEAD too, for routes answering it), and what a
    405 says: the declared methods, and the routes' own headers."""

    __slots__ = ("allow", "by_method", "headers")

    def __init__(self, routes: list[Route]):
        self.by_method: dict[str, Route] = {}
        for route in routes:
            self.by_method[route.method] = route
            if route.head:
                self.by_method["HEAD"] = replace(route, method="HEAD")
        self.allow = ", ".join(route.method for route in routes)
        self.headers = list(routes[0].headers)


class _Table:
    """The routes of one mount, matched against the path below it."""

    def __init__(self, routes: list[Route], unknown: type[NoRoute | NoPage] = NoRoute):
        #: What a path that matches no route raises (400 under the API prefix, 404 outside).
        self.unknown = unknown
        templates: dict[str, list[Route]] = {}
        for route in routes:
            templates.setdefault(route.template, []).append(route)

        def specificity(template: str) -> tuple[int, list[bool]]:
            segments = template.strip("/").split("/")
            return -len(segments), [s.startswith("{") for s in segments]

        ordered = sorted(templates, key=specificity)
        methods = {template: _Methods(templates[template]) for template in ordered}
        # Slow path: templates as regular expressions ({connector_id} may span segments).
        self._templates: list[tuple[re.Pattern[str], _Methods, Converters]] = []
        converters_of: dict[str, Converters] = {}
        for template in ordered:
            pattern = _pattern(template)
            converters_of[template] = tuple(
                (PATH_PARAMS[name].name, PATH_PARAMS[name].convert) for name in pattern.groupindex
            )
            self._templates.append((pattern, methods[template], converters_of[template]))

        # Fast path: every id a single segment (the common case). Per segment count, the
        # "shapes" (which positions are literal), most specific first; per shape, the
        # literal segments -> the template's routes, its parameters' picker and converters.
        # A match is one dict lookup per shape, the segments picked out in C (itemgetter).
        Hit = tuple[_Methods, Callable[[list[str]], tuple[str, ...]], Converters]
        shapes: dict[int, dict[tuple[int, ...], dict[tuple[str, ...], Hit]]] = {}
        for template in ordered:
            segments = template.strip("/").split("/")
            literal = tuple(i for i, seg in enumerate(segments) if not seg.startswith("{"))
            params = tuple(i for i, seg in enumerate(segments) if seg.startswith("{"))
            by_literals = shapes.setdefault(len(segments), {}).setdefault(literal, {})
            by_literals[tuple(segments[i] for i in literal)] = (
                methods[template],
                _picker(params),
                converters_of[template],
            )
        self.shapes = {
            count: [(_picker(literal), by_literals) for literal, by_literals in found.items()]
            for count, found in shapes.items()
        }

    def match_pattern(self, method: str, path: str, rest: str) -> tuple[Route, dict[str, Any]]:
        """The slow path: a template's regular expression (an id spanning segments)."""
        for pattern, methods, converters in self._templates:
            found = pattern.fullmatch(rest)
            if found is not None:
                return _route(method, path, methods, converters, found.groups())
        raise self.unknown("No route for that URI")


def _route(
    method: str, path: str, methods: _Methods, converters: Converters, raw: Sequence[str]
) -> tuple[Route, dict[str, Any]]:
    route = methods.by_method.get(method)
    if route is None:
        raise MethodNotAllowed(
            f"method {method} is not allowed on {path}; allowed: {methods.allow}",
            headers=[*methods.headers, ("allow", methods.allow)],
        )
    params = {}
    for (name, convert), value in zip(converters, raw, strict=True):
        converted = convert(value)
        if converted is None:
            raise _unroutable(path)
        params[name] = converted
    return route, params


class Router:
    def __init__(self, prefix: str, routes: list[Route]):
        self.prefix = prefix.rstrip("/") + "/"
        self.routes = routes
        self._api = _Table([r for r in routes if r.mount == "api"])
        self._root = _Table([r for r in routes if r.mount == "root"], NoPage)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        """The route and its converted path parameters (``NoRoute``, ``MethodNotAllowed``
        or ``UnroutableId`` otherwise). Under the prefix a trailing ``/`` is ignored; at
        the root, paths are exact."""
        prefix = self.prefix
        if path.startswith(prefix):
            table, rest = self._api, path[len(prefix) :]
            if rest.endswith("/"):
                rest = rest[:-1]
        elif path.startswith("/"):
            table, rest = self._root, path[1:]
        else:
            raise NoRoute("No route for that URI")
        parts = rest.split("/")
        for literal, by_literals in table.shapes.get(len(parts), ()):
            hit = by_literals.get(literal(parts))
            if hit is not None:
                raw = hit[1](parts)
                if "" not in raw:
                    return _route(method, path, hit[0], hit[2], raw)
        return table.match_pattern(method, path, rest)
