"""PostgreSQL's text formats (values, array literals: also store.pg_pipeline's parameters),
and statements written out with their parameters as literals, to be sent after a ``COPY``
in one simple query (store.pg_ingest, ``copy_then``): PostgreSQL runs a simple query's
statements in order, reads the ``COPY``'s rows when it reaches it, and runs the rest in
the same implicit transaction, committed when the last one ends. So the common ingest
batch costs two round trips: the query (answered by "send the rows"), then the rows
(answered once everything is committed).

``Script`` stands in for a connection for the functions that write a batch's last
statements (``conn.execute(query, params)``), so that each statement is written once
whichever way it is sent. It needs no connection, so a batch's statements are written
while it is prepared, before it has one (api.writer's "Overlap"). Literals: numbers as
Python writes them (``repr`` of a float reads back as the same float8), text quoted as
libpq's ``PQescapeLiteral`` does (quotes doubled; with a backslash, an ``E''`` string with
backslashes doubled: read the same whatever ``standard_conforming_strings`` is), arrays as
array literals (``'{...}'``), the binary ones of store.pg_binary from the values they were
built from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from connector_telemetry.store.pg_binary import Float8Array, TextArray

_PLACEHOLDER = re.compile(r"%[sb]")
_PLAIN = re.compile(r"[A-Za-z0-9_.:+-]+\Z")  # an array element that needs no quotes
_PLAIN_LIST = re.compile(r"[A-Za-z0-9_.:+-]+(?:,[A-Za-z0-9_.:+-]+)*\Z")  # such, joined by ","


class Script:
    """Statements collected as text (``execute`` as a connection's, nothing sent)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, query: str, params: Sequence[Any] = (), binary: bool = False) -> None:
        if "%%" in query:
            raise ValueError("a literal % in a scripted statement")
        values = iter(params)
        self.statements.append(_PLACEHOLDER.sub(lambda _: self._literal(next(values)), query))

    def text(self) -> bytes:
        return "; ".join(self.statements).encode()

    def _literal(self, value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return _float(value)
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Float8Array | TextArray):
            value = value.values
        if isinstance(value, list | tuple):
            return self._text(array_literal(value))
        raise TypeError(f"no literal for {type(value).__name__}")

    @staticmethod
    def _text(text: str) -> str:
        if "\x00" in text:
            raise ValueError("a NUL character in a text literal")
        quoted = text.replace("'", "''")
        if "\\" in text:
            return " E'" + quoted.replace("\\", "\\\\") + "'"
        return "'" + quoted + "'"


def _float(value: float) -> str:
    if math.isfinite(value):
        return repr(value) + "::float8"
    return f"'{value!r}'::float8"  # 'inf', '-inf', 'nan': PostgreSQL's spellings too


def text_value(value: Any) -> str:
    """A scalar in PostgreSQL's text format (floats exactly: ``repr``)."""
    return repr(value) if isinstance(value, float) else str(value)


def array_literal(values: Sequence[Any]) -> str:
    """Scalars (or None: NULL) as a PostgreSQL array literal, elements quoted as needed."""
    kinds = set(map(type, values))
    if kinds == {float}:  # an ingest batch's times: every repr is plain, "inf" and "nan" too
        return "{" + ",".join(map(repr, values)) + "}"
    if kinds == {str}:  # its kinds: plain words, checked at once
        joined = ",".join(values)
        plain = joined.count(",") == len(values) - 1 and _PLAIN_LIST.match(joined)
        if plain and "NULL" not in joined.upper():
            return "{" + joined + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    text = text_value(value)  # (a float's: inf, -inf, nan read back as such)
    if _PLAIN.match(text) and text.upper() != "NULL":
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
