"""Values in PostgreSQL's binary formats, built with ``struct`` (issue 13): what an ingest
batch sends (its ``COPY`` rows, the feed's arrays) costs a fraction of psycopg's general
dumpers (its array dumper is Python; ``write_row`` dumps value by value).

The formats: https://www.postgresql.org/docs/current/sql-copy.html (binary ``COPY``) and
``array_send`` in PostgreSQL's ``arrayfuncs.c`` (one dimension, from index 1, no NULLs).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import chain, repeat
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from connector_telemetry.store.rows import EventRow

_FLOAT8, _TEXT = 701, 25


class Float8Array:
    """A ``float8[]`` parameter, sent in PostgreSQL's binary format (packed by its dumper,
    in one ``struct.pack``: psycopg's own array dumper, in Python, cost an ingest batch ~2 ms
    per 1000-element array); store.pg_script writes ``values`` as a literal instead."""

    __slots__ = ("values",)

    def __init__(self, values: Sequence[float]) -> None:
        self.values = values


class TextArray:
    """A ``text[]`` parameter, sent in binary (its elements are event kinds: a handful of
    words, each encoded once)."""

    __slots__ = ("values",)

    def __init__(self, values: Sequence[str]) -> None:
        self.values = values


class _Float8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = 1022

    def dump(self, obj: Any) -> bytes:
        xs = obj.values
        body = struct.pack(">" + "id" * len(xs), *chain.from_iterable(zip(repeat(8), xs)))
        return _header(_FLOAT8, len(xs)) + body


class _TextArrayDumper(Dumper):
    format = Format.BINARY
    oid = 1009

    def dump(self, obj: Any) -> bytes:
        texts = obj.values
        return _header(_TEXT, len(texts)) + b"".join(map(text_element, texts))


psycopg.adapters.register_dumper(Float8Array, _Float8ArrayDumper)
psycopg.adapters.register_dumper(TextArray, _TextArrayDumper)


def _header(oid: int, count: int) -> bytes:
    """One dimension of ``count`` elements of type ``oid``, from index 1, no NULLs."""
    return struct.pack(">5i", 1, 0, oid, count, 1)


@cache
def text_element(text: str) -> bytes:
    """A text value as a field of a binary ``COPY`` row or array element (its length,
    then its UTF-8): kept for the handful of words passed (event kinds)."""
    data = text.encode()
    return struct.pack(">i", len(data)) + data


#: A binary ``COPY``'s start (signature, flags, extension length) and end.
COPY_START = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_END = b"\xff\xff"
_LENGTH = struct.Struct(">i").pack
_TWO_FLOAT8 = struct.Struct(">idid").pack
_FLOAT8_FIELD = struct.Struct(">id").pack


def event_rows(cpk: int, rows: Iterable[EventRow], a: float) -> bytes:
    """``COPY events (cpk, t, n, a, k, doc) FROM STDIN (FORMAT BINARY)``'s whole input."""
    first, arrived = struct.pack(">hiq", 6, 8, cpk), _FLOAT8_FIELD(8, a)
    parts = [COPY_START]
    for t, n, k, doc in rows:
        parts += (first, _TWO_FLOAT8(8, t, 8, n), arrived, text_element(k), _LENGTH(len(doc)), doc)
    parts.append(COPY_END)
    return b"".join(parts)


def snapshot_rows(cpk: int, rows: Iterable[tuple[float, bytes]], a: float) -> bytes:
    """``COPY snapshots (cpk, t, a, doc) FROM STDIN (FORMAT BINARY)``'s whole input."""
    first, arrived = struct.pack(">hiq", 4, 8, cpk), _FLOAT8_FIELD(8, a)
    parts = [COPY_START]
    for t, doc in rows:
        parts += (first, _FLOAT8_FIELD(8, t), arrived, _LENGTH(len(doc)), doc)
    parts.append(COPY_END)
    return b"".join(parts)
