"""store.pg_script: statements written out with literal parameters read back exactly the
values a prepared statement would have bound (a real PostgreSQL reads them)."""

from __future__ import annotations

import math

import psycopg
import pytest

from connector_telemetry.service.events import KINDS
from connector_telemetry.store.pg_binary import Float8Array, TextArray
from connector_telemetry.store.pg_script import Script

FLOATS = [0.0, -0.0, 1.5, 1700000000.123456, 1e-300, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
TEXTS = [
    "plain",
    "it's",
    'a "quoted" word',
    "back\\slash",
    "{braces},commas",
    "NULL",
    "null",
    "",
    " spaced ",
    "ünïcödé ✓",
    "new\nline",
]


def read_back(url: str, query: str, params: tuple[object, ...]) -> tuple[object, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        script = Script()
        script.execute(query, params)
        got = conn.execute(script.text().decode()).fetchone()
        bound = conn.execute(query, params).fetchone()
    assert got is not None and bound is not None
    assert got == bound  # the same as the values bound by a prepared statement
    return tuple(got)


def test_numbers_and_text_read_back_exactly(postgres_url: str) -> None:
    for value in FLOATS:
        (got,) = read_back(postgres_url, "SELECT %s::float8", (value,))
        assert got == value and math.copysign(1, got) == math.copysign(1, value)  # type: ignore[arg-type]
    for value in TEXTS:
        assert read_back(postgres_url, "SELECT %s::text", (value,)) == (value,)
    assert read_back(postgres_url, "SELECT %s::int8, %s::bool, %s::text", (2**62, True, None)) == (
        2**62,
        True,
        None,
    )


def test_text_reads_back_the_same_whatever_standard_conforming_strings_is(
    postgres_url: str,
) -> None:
    """Quoted without a connection (libpq's ``PQescapeLiteral`` needs one): a backslash
    makes an ``E''`` string, read the same with ``standard_conforming_strings`` off."""
    for setting in ("on", "off"):
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"SET standard_conforming_strings = {setting}")
            for value in [*TEXTS, "a\\'b", "\\", "'", "''"]:
                script = Script()
                script.execute("SELECT %s::text, %s::text[]", (value, [value, "x"]))
                got = conn.execute(script.text().decode()).fetchone()
                assert got == (value, [value, "x"]), (setting, value)


def test_arrays_read_back_exactly(postgres_url: str) -> None:
    floats, ints = [*FLOATS, math.inf, -math.inf], [0, -1, 2**62]
    got = read_back(
        postgres_url,
        "SELECT %s::float8[], %s::text[], %s::int8[], %b::float8[], %b::text[]",
        (floats, TEXTS, ints, Float8Array(FLOATS), TextArray(TEXTS)),
    )
    assert got == (floats, TEXTS, ints, FLOATS, TEXTS)


def test_arrays_of_one_type_read_back_exactly(postgres_url: str) -> None:
    """The lists an ingest batch writes (all floats; all plain words, its kinds) take a
    shorter way to their literal: every shape of it reads back as bound."""
    words = [*KINDS, "a:b", "v1.2-3+x"]
    lists: list[list[object]] = [
        [*FLOATS, math.inf, -math.inf],
        words,
        ["Nullable", "x"],  # holds "NULL" once upper-cased: the long way
        ["NULL", "Init"],
        ["a,b", "c"],  # a comma inside an element
        ["a", ""],
        ["Init"],
    ]
    for values in lists:
        for query in ("SELECT %s::text[]", "SELECT %s::float8[]"):
            if query.endswith("float8[]") != (type(values[0]) is float):
                continue
            assert read_back(postgres_url, query, (values,)) == (values,)
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # (nan is not nan: no ==)
        script = Script()
        script.execute("SELECT %s::float8[]", ([math.nan, 1.0],))
        row = conn.execute(script.text().decode()).fetchone()
    assert row is not None and math.isnan(row[0][0]) and row[0][1] == 1.0


def test_several_statements_run_in_order(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        script = Script()
        script.execute("CREATE TEMP TABLE x (t float8, k text)")
        script.execute("INSERT INTO x VALUES (%s, %s)", (0.1, "it's"))
        script.execute("INSERT INTO x SELECT * FROM unnest(%b::float8[], %b::text[])", (
            Float8Array([0.2, 0.3]), TextArray(["a", 'b"'])
        ))  # fmt: skip
        conn.execute(script.text().decode())
        rows = conn.execute("SELECT t, k FROM x ORDER BY t").fetchall()
    assert rows == [(0.1, "it's"), (0.2, "a"), (0.3, 'b"')]


def test_what_it_cannot_write_is_refused() -> None:
    script = Script()
    with pytest.raises(TypeError, match="no literal for bytes"):
        script.execute("SELECT %s", (b"raw",))
    with pytest.raises(ValueError, match="literal %"):
        script.execute("SELECT '100%%'", ())
    with pytest.raises(ValueError, match="NUL"):
        script.execute("SELECT %s", ("a\x00b",))
