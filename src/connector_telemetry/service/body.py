"""Reading a request body as JSON: the one step every write goes through.

Ingest (events and snapshots, a JSON array or NDJSON), connectors and interrupts decode
their bodies here, so every route refuses the same bodies with 400/1001 and a message that
says what is wrong and where (README: "Request bodies", under "Authentication and errors"):

- not UTF-8 (raw surrogates included): the byte, its line and column;
- not JSON (truncated, bytes after the value, ``NaN``, an escaped lone surrogate, a number
  beyond a double, ...): orjson's reason, the line and column;
- arrays and objects nested deeper than ``MAX_DEPTH`` within one item (an event, a
  snapshot, or the whole body of the other requests): the item and the field;
- a key repeated within one object: the item, the object and the key.

A leading UTF-8 byte order mark is ignored (RFC 8259 §8.1). Integers are exact from -2**63
to 2**64-1 and read as the nearest double beyond (orjson's reading). ``Content-Encoding``
is undone before this step, by the HTTP layer.

The events fast path (``service.events``) decodes with msgspec instead, and only accepts
events whose payload is flat; it proves keys unique with ``unique_keys`` like every other
path, and a property test holds it to accepting nothing that this module refuses.
What does not belong here: any route's fields (the services check those).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from connector_telemetry.errors import BadRequest, BatchTooLarge, InvalidJson

NDJSON = "application/x-ndjson"
#: Arrays and objects one item may nest, itself included: ``{"e": {"k": "Init"}}`` is 2.
#: orjson, which writes every stored document, writes at most this deep (a test pins it).
MAX_DEPTH = 254
_BOM = b"\xef\xbb\xbf"


def without_bom(body: bytes) -> bytes:
    return body[3:] if body.startswith(_BOM) else body


# -- decoding ------------------------------------------------------------------------


def _not_utf8(text: bytes, first_line: int) -> str | None:
    try:
        text.decode()
    except UnicodeDecodeError as bad:
        line = first_line + text.count(b"\n", 0, bad.start)
        column = len(text[text.rfind(b"\n", 0, bad.start) + 1 : bad.start].decode()) + 1
        return f"is not valid UTF-8: byte 0x{text[bad.start]:02X} at line {line}, column {column}"
    return None


def _not_json(text: bytes, exc: orjson.JSONDecodeError, first_line: int = 1) -> str:
    """What is wrong with ``text`` (which orjson refused) and where; ``first_line``: the
    line number of its first line (an NDJSON line)."""
    bad_utf8 = _not_utf8(text, first_line)
    if bad_utf8 is not None:
        return bad_utf8
    where = f"line {first_line - 1 + exc.lineno}, column {exc.colno}"
    reason = exc.msg
    rest = text.decode()[exc.pos : exc.pos + 9].lstrip("-")
    if reason.startswith("depth limit"):
        return f"nests arrays and objects deeper than {MAX_DEPTH} levels (at {where})"
    if "infinity" in reason:
        reason = "number out of range (JSON numbers are read as doubles, up to about 1.8e308)"
    elif rest.startswith(("NaN", "Infinity")):
        reason = "NaN and Infinity are not JSON"
    return f"is not valid JSON: {reason} at {where}"


def read_json(body: bytes) -> Any:
    """One JSON document (the body of a connector or interrupt request), with every rule
    of this module applied."""
    text = without_bom(body)
    if not text.strip():
        raise InvalidJson("request body is empty; send a JSON object")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"request body {_not_json(text, exc)}") from None
    encoded = encode(value, "")
    if text != encoded:
        check_keys(text, None, "", encoded.count(b":"))
    return value


def read_items(body: bytes, content_type: str, max_items: int, noun: str) -> list[Any]:
    """The items of a JSON array or NDJSON body, decoded (not yet checked for depth or
    repeated keys: ``encode`` and ``check_keys``, once the caller has encoded them)."""
    text = without_bom(body)
    if not text.strip():
        raise InvalidJson(f"request body is empty; send a JSON array of {noun}")
    if content_type == NDJSON:
        items: list[Any] = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                problem = _not_json(line, exc, line_no)
                raise InvalidJson(f"{noun}[{len(items)}] {problem}") from None
    else:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidJson(f"request body {_not_json(text, exc)}") from None
        if not isinstance(parsed, list):
            raise InvalidJson(f"request body must be a JSON array of {noun}")
        items = parsed
    if not items:
        raise BadRequest(f"the batch is empty; send at least one of {noun}")
    if len(items) > max_items:
        raise BatchTooLarge(
            f"the batch has {len(items)} {noun}; at most {max_items} are accepted in one request"
        )
    return items


# -- depth -----------------------------------------------------------------------------


def encode_all(items: list[Any], noun: str) -> list[bytes]:
    """``encode`` of every item (``noun[i]``), in C unless one is too deep."""
    try:
        return list(map(orjson.dumps, items))
    except orjson.JSONEncodeError:
        return [encode(item, f"{noun}[{i}]") for i, item in enumerate(items)]


def encode(item: Any, where: str) -> bytes:
    """``item`` (decoded JSON) as compact JSON; 400 when it nests deeper than ``MAX_DEPTH``
    (``where``: the item, ``events[3]``; empty for the whole body of a request)."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError as exc:
        if "recursion" not in str(exc).lower():
            raise
        found = _first(item, lambda node, depth: depth > MAX_DEPTH)
        raise InvalidJson(
            f"{_at(where, found[0] if found else '')}: arrays and objects nested deeper than "
            f"{MAX_DEPTH} levels (at most {MAX_DEPTH} per item)"
        ) from None


def _at(where: str, path: str) -> str:
    """``events[3]`` + ``.e.x`` -> ``events[3].e.x``; a request body's own fields by name."""
    return where + path if where else path.lstrip(".") or "request body"


def _first(root: Any, found: Any) -> tuple[str, Any] | None:
    """The path (``.e.x[0]``, shortened past six steps) to the first container, in document
    order, for which ``found(node, depth)`` holds, and that container. Iterative: the
    nesting may be deeper than Python's own recursion limit."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(root, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if found(node, depth):
            return "".join(path[:6]) + ("..." if len(path) > 6 else ""), node
        steps = (
            [(f".{key}", value) for key, value in node.items()]
            if isinstance(node, dict)
            else [(f"[{i}]", value) for i, value in enumerate(node)]
        )
        for step, value in reversed(steps):
            if isinstance(value, dict | list):
                stack.append((value, depth + 1, (*path, step) if len(path) < 7 else path))
    return None


# -- repeated keys ---------------------------------------------------------------------


def unique_keys(body: bytes, lower_bound: int) -> bool:
    """Whether no object in ``body`` (valid JSON) repeats a key, proven by counting colons:
    True proves it; False proves nothing.

    Every colon of a JSON text ends a key or sits inside a string, so the body holds at
    least as many colons as the key-value pairs parsed plus the colons of their strings.
    A repeated key drops a pair (and its strings) from the decoded objects, so the decoded
    value's pairs plus the colons of its strings (what a compact re-encoding of it counts;
    ``lower_bound`` is that or less) then fall short of the body's colons. An escaped colon
    (``\\u003a``) decodes to a colon the body does not show, so such a body is not proven."""
    if body.count(b":") != lower_bound:
        return False
    return b"\\" not in body or (b"\\u003a" not in body and b"\\u003A" not in body)


def check_items_keys(body: bytes, content_type: str, noun: str, encoded: list[bytes]) -> None:
    """``check_keys`` for a batch whose items are ``encoded`` (by ``encode_all``, or as they
    will be stored): settled at once when the body is exactly those bytes."""
    if not _same_bytes(body, content_type, encoded):
        check_keys(body, content_type, noun, colons(encoded))


def _same_bytes(body: bytes, content_type: str, encoded: list[bytes]) -> bool:
    """Whether ``body`` is its items' ``encoded`` form, byte for byte, as a JSON array or
    NDJSON (what a client writing compact JSON as orjson does sends): then it repeats no
    key, as no encoding of decoded objects can."""
    joined = (b"\n" if content_type == NDJSON else b",").join(encoded)
    if content_type == NDJSON:
        return body.startswith(joined) and body[len(joined) :] in (b"", b"\n")
    return len(body) == len(joined) + 2 and body.startswith(joined, 1) and body[0] == 0x5B


def colons(encoded: list[bytes]) -> int:
    return b"".join(encoded).count(b":")


def check_keys(body: bytes, content_type: str | None, noun: str, lower_bound: int) -> None:
    """400 naming the first repeated key (``content_type`` None: one JSON document, else a
    batch of ``noun``), unless ``unique_keys`` proves there is none (the common case)."""
    if unique_keys(body, lower_bound):
        return
    text = without_bom(body)
    if content_type is None:
        found = _repeated(text, "")
    elif content_type == NDJSON:
        found = None
        lines = (line for line in text.splitlines() if line.strip())
        for index, line in enumerate(lines):
            found = _repeated(line, f"{noun}[{index}]")
            if found:
                break
    else:
        found = _repeated(text, noun, batch=True)
    if found:
        raise InvalidJson(found)


class _Repeated(dict[str, Any]):
    def __init__(self, pairs: list[tuple[str, Any]], key: str):
        super().__init__(pairs)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen = set()
    for key, _ in pairs:
        if key in seen:
            return _Repeated(pairs, key)
        seen.add(key)
    raise AssertionError("unreachable")


def _repeated(text: bytes, where: str, *, batch: bool = False) -> str | None:
    """The message for the first object of ``text`` (valid JSON) that repeats a key."""
    value = json.loads(text.decode(), object_pairs_hook=_pairs)
    items = enumerate(value) if batch and isinstance(value, list) else [(None, value)]
    for index, item in items:
        if not isinstance(item, dict | list):
            continue
        found = _first(item, lambda node, depth: isinstance(node, _Repeated))
        if found:
            path, node = found
            item_where = where if index is None else f"{where}[{index}]"
            return f"{_at(item_where, path)}: the key {node.key!r} appears more than once"
    return None
