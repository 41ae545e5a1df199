"""How a route declares its contract, from which the dispatcher (app.py) serves it, the
router (api/routing.py) finds it, OpenAPI (api/openapi.py) describes it and the tests
walk it (auth matrix, fuzzer).

A ``Route`` says:

- where it lives: ``method`` and ``template``, under the API prefix (``mount="api"``) or
  at the server's root (``mount="root"``: health checks; later ``/metrics``, the
  dashboard's files at ``/``, test-mode routes under ``/_ctel/`` added only when enabled);
- who may call it: ``access`` (``public``, ``read``, ``write``, or ``self`` for a route
  that checks its caller itself) and ``device`` (a connector's license key, on its own
  connector);
- what it takes: path parameters (from the template, ``PATH_PARAMS``), ``query``
  (``Param``: each one parses what the handler sees and documents it, so its limits are
  those it enforces), ``body`` (``Body``: its schema);
- what it returns: ``result`` (the JSON schema of the envelope's ``result``, or of the
  whole body for a ``Raw`` answer) and ``answer``, how the handler's return value becomes
  the body: ``Envelope`` (Cloudflare's envelope around an object, or around JSON bytes
  already serialized) or ``Raw`` (bytes with a content type). Streams (server-sent
  events) and files (ETag/304) are further ``Answer`` kinds, with their own branch in the
  dispatcher; ``headers`` go on every answer of the route, errors included
  (``Cache-Control``, security headers), and ``head`` answers HEAD as GET without a body;
- whether it writes: ``writes`` routes run on the process's single writer thread, sent
  there by the dispatcher (handlers never call the writer themselves). Every handler is
  a plain function ``(Request) -> result``: a read runs inline, with no coroutine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from connector_telemetry.api import envelope
from connector_telemetry.errors import InvalidQuery
from connector_telemetry.numbers import event_key_candidates, parse_decimal, parse_query_number
from connector_telemetry.service.credentials import ACCOUNT_ID_MAX

if TYPE_CHECKING:
    from connector_telemetry.api.request import Request

Schema = dict[str, Any]
Handler = Callable[["Request"], Any]
AsyncHandler = Callable[["Request"], Awaitable[Any]]
Access = Literal["public", "read", "write", "self"]
Mount = Literal["api", "root"]
Headers = list[tuple[str, str]]
#: ``(status, headers, body)``: bytes, or a ``Streamed`` body (only from a ``Stream`` route).
Response = tuple[int, Headers, "bytes | Streamed"]
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
#: The longest connector id a path may carry (ours are 32 hex characters).
CONNECTOR_ID_MAX = 128


def ref(name: str) -> Schema:
    """A reference to one of the document's component schemas (api/schemas.py)."""
    return {"$ref": f"#/components/schemas/{name}"}


# -- what a route takes -----------------------------------------------------------------


@dataclass(frozen=True)
class PathParam:
    """A path parameter: the name handlers see, a converter returning None when the raw
    segment is malformed (7003), and its OpenAPI parameters (``{event_t}.{event_n}`` is
    one segment, two parameters)."""

    name: str
    convert: Callable[[str], Any]
    schemas: dict[str, Schema]
    #: Whether it may span segments (a connector id with a ``/``; a file's path).
    spans: bool = False


def _account_id(raw: str) -> str | None:
    return raw if len(raw) <= ACCOUNT_ID_MAX else None


def _connector_id(raw: str) -> str | None:
    return raw if len(raw) <= CONNECTOR_ID_MAX else None


def _fault_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


def _event_id(raw: str) -> list[tuple[float, float]] | None:
    return event_key_candidates(raw) or None


_NUMBER: Schema = {"type": "number"}
#: Template parameter (the regex group name) -> its declaration.
PATH_PARAMS: dict[str, PathParam] = {
    "account_id": PathParam(
        "account_id",
        _account_id,
        {"account_id": {"type": "string", "maxLength": ACCOUNT_ID_MAX, "minLength": 1}},
    ),
    "connector_id": PathParam(
        "connector_id",
        _connector_id,
        {"connector_id": {"type": "string", "minLength": 1, "maxLength": CONNECTOR_ID_MAX}},
        spans=True,
    ),
    "event_id": PathParam("event_t.event_n", _event_id, {"event_t": _NUMBER, "event_n": _NUMBER}),
    "snapshot_t": PathParam("snapshot_t", parse_decimal, {"snapshot_t": _NUMBER}),
    # A test-mode fault rule (issue 11: DELETE /_ctel/faults/{fault_id}).
    "fault_id": PathParam("fault_id", _fault_id, {"fault_id": {"type": "integer", "minimum": 1}}),
    # A file below a root route (the dashboard's assets): looked up, never opened by name.
    "file": PathParam("file", lambda raw: raw, {"file": {"type": "string"}}, spans=True),
}


@dataclass(frozen=True)
class Param:
    """A query parameter: ``parse`` turns the raw value (None when absent) into what the
    handler sees in ``req.args``, or raises ``InvalidQuery``; ``schema`` describes it."""

    name: str
    schema: Schema
    required: bool = False
    parse: Callable[[str | None], Any] = lambda raw: raw


def number(name: str, *, required: bool) -> Param:
    """A number as the SDKs write it (``1e+16``, ``inf``): epoch seconds."""

    def parse(raw: str | None) -> float | None:
        if raw is None:
            if required:
                raise InvalidQuery(f"{name}: required query parameter (epoch seconds) is missing")
            return None
        value = parse_query_number(raw)
        if value is None:
            raise InvalidQuery(f"{name}: expected a number, got {raw!r}")
        return value

    return Param(name, _NUMBER, required, parse)


def limit(default: int, maximum: int) -> Param:
    """``limit``: a whole number from 1 to ``maximum`` (``10.0`` is fine), ``default``
    when absent; anything else is refused, never clamped."""

    def parse(raw: str | None) -> int:
        if raw is None:
            return default
        value = parse_query_number(raw)
        if value is None:
            raise InvalidQuery(f"limit: expected a number, got {raw!r}")
        if not value.is_integer() or not 1 <= value <= maximum:
            raise InvalidQuery(f"limit: must be a whole number from 1 to {maximum}, got {raw!r}")
        return int(value)

    return Param("limit", {"type": "integer", "minimum": 1, "maximum": maximum}, parse=parse)


def choice(name: str, values: tuple[str, ...], what: str) -> Param:
    """One of ``values`` (``what`` names them in the error), or None when absent."""
    allowed = frozenset(values)

    def parse(raw: str | None) -> str | None:
        if raw is not None and raw not in allowed:
            raise InvalidQuery(f"{name}: unknown {what} {raw!r}")
        return raw

    return Param(name, {"type": "string", "enum": list(values)}, parse=parse)


#: An opaque cursor (checked by the service against the query it was issued for).
CURSOR = Param("cursor", {"type": "string"}, parse=lambda raw: raw or None)


@dataclass(frozen=True)
class Body:
    """A request body: a JSON document described by ``schema``; with ``ndjson``, also
    ``application/x-ndjson`` (one item of the array per line)."""

    schema: Schema
    ndjson: bool = False


# -- what a route answers ---------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """Cloudflare's envelope ``{result, success, errors, messages}`` around the handler's
    result: an object to serialize, or ``bytes`` of JSON already serialized (the hot path:
    stored documents are copied in). ``messages`` are the success messages."""

    messages: tuple[dict[str, Any], ...] = ()
    content_type: str = "application/json"

    def responder(self, headers: Headers) -> Callable[[Any], Response]:
        """``result -> (200, headers, body)``, in one call (it runs on every request)."""
        if self.messages:
            messages = list(self.messages)
            return lambda result: (200, headers, envelope.ok_with_messages(result, messages))
        ok, head, tail = envelope.ok, envelope.OK_HEAD, envelope.OK_TAIL
        return lambda result: (
            200,
            headers,
            head + result + tail if type(result) is bytes else ok(result),
        )


@dataclass(frozen=True)
class Raw:
    """The handler's bytes as they are, with this content type (the OpenAPI document)."""

    content_type: str

    def responder(self, headers: Headers) -> Callable[[Any], Response]:
        return lambda result: (200, headers, result)


@dataclass(frozen=True)
class Prepared:
    """The handler answers with ``(status, headers, body)`` itself, HEAD included (the
    dashboard's files: a content type per file, ETag and 304, gzip by Accept-Encoding);
    the route's own ``headers`` are added."""

    content_type: str = "application/octet-stream"  # (documentation only)

    def responder(self, headers: Headers) -> Callable[[Any], Response]:
        extra = [h for h in headers if h[0] != "content-type"]
        return lambda result: (result[0], [*result[1], *extra], result[2])


class Streamed(Protocol):
    """A streaming answer's body (``Stream``): its chunks as they come, and ``close`` (the
    client went away, or the server is stopping). The dispatcher sets ``backlog``: how
    many bytes sent are still queued in the kernel for the client (None: unknown)."""

    backlog: Callable[[], int | None]

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Stream:
    """The handler returns a ``Streamed`` body, sent chunk by chunk as it yields them
    (server-sent events): RSGI ``response_stream``, ASGI ``more_body``."""

    content_type: str = "text/event-stream"

    def responder(self, headers: Headers) -> Callable[[Any], Response]:
        return lambda result: (200, headers, result)


Answer = Envelope | Raw | Prepared | Stream
ENVELOPE = Envelope()


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler
    access: Access
    operation_id: str
    summary: str
    #: The JSON schema of the answer's ``result`` (of the whole body for ``Raw``). Required:
    #: OpenAPI refuses to build without it.
    result: Schema | None = None
    query: tuple[Param, ...] = ()
    body: Body | None = None
    writes: bool = False
    device: bool = False
    mount: Mount = "api"
    answer: Answer = ENVELOPE
    headers: tuple[tuple[str, str], ...] = ()
    head: bool = False
    #: The error statuses it answers, when not those of its ``access`` (api/openapi.py).
    errors: tuple[str, ...] | None = None
    #: ``handler``'s twin awaiting the store's reads on the event loop, used when the store
    #: has them (``Store.reads_on_loop``: PostgreSQL's pipeline); None: none.
    awaiting: AsyncHandler | None = None

    #: Whether the dispatcher finishes it in a coroutine (a body to read, or the writer).
    deferred: bool = field(init=False)
    #: ``result -> (200, headers, body)``.
    respond: Callable[[Any], Response] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deferred", self.writes or self.method in BODY_METHODS)
        headers = [("content-type", self.answer.content_type), *self.headers]
        if self.method == "HEAD" and not isinstance(self.answer, Prepared):
            # the GET route's answer, without a body
            object.__setattr__(self, "respond", lambda result: (200, headers, b""))
        else:
            object.__setattr__(self, "respond", self.answer.responder(headers))

    def parse_query(self, req: Request) -> dict[str, Any]:
        """What the handler sees of the query string: each declared parameter, parsed."""
        raw = req.query()
        args = {}
        for param in self.query:  # (a loop: a comprehension is a function call per request)
            args[param.name] = param.parse(raw.get(param.name))
        return args
