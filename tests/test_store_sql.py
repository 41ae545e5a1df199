"""The SQL both stores share: one statement set, adapted per dialect in one place, and one
migrations loader (a change both databases make in the same words is one file)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from connector_telemetry.store.postgres import POSTGRES
from connector_telemetry.store.sql import SQL, migrations
from connector_telemetry.store.sqlite import SQLITE


def test_one_statement_set_adapted_per_dialect() -> None:
    sql = SQL()
    sqlite = sql.adapted(SQLITE)  # written in SQLite's words; FOR UPDATE means nothing there
    for field in fields(sql):
        original = getattr(sql, field.name)
        assert getattr(sqlite, field.name) == original.replace(" FOR UPDATE", "")
    assert "FOR UPDATE" in sql.lock_connector and "FOR UPDATE" not in sqlite.lock_connector
    postgres = sql.adapted(POSTGRES)
    assert postgres.get_event == "SELECT doc FROM events WHERE cpk=%s AND t=%s AND n=%s"
    assert postgres.lock_connector.endswith("WHERE account_id=%s AND id=%s FOR UPDATE")
    assert SQL(ping="SELECT 1 FROM accounts WHERE id=? FOR UPDATE").adapted(SQLITE).ping == (
        "SELECT 1 FROM accounts WHERE id=?"
    )
    assert POSTGRES.adapt("SELECT '%' || ?") == "SELECT '%%' || %s"  # psycopg's escape


def _folder(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        (tmp_path / name).write_text(f"-- {name}\n")
    return tmp_path


def test_migrations_shared_or_per_dialect(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        ["0001_a.sqlite.sql", "0001_a.postgres.sql", "0002_b.sql", "0003_c.sqlite.sql"],
    )
    assert migrations("sqlite", folder) == [
        (1, "-- 0001_a.sqlite.sql\n"),
        (2, "-- 0002_b.sql\n"),
        (3, "-- 0003_c.sqlite.sql\n"),
    ]
    # a version with the other dialect's file only changes nothing here, but is counted
    assert migrations("postgres", folder) == [
        (1, "-- 0001_a.postgres.sql\n"),
        (2, "-- 0002_b.sql\n"),
        (3, ""),
    ]


@pytest.mark.parametrize(
    "names",
    [["0001_a.sql", "0003_c.sql"], ["0001_a.sql", "0001_a.sqlite.sql"]],
    ids=["a gap", "shared and per dialect"],
)
def test_migrations_refuse_an_ambiguous_folder(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(AssertionError):
        migrations("sqlite", _folder(tmp_path, names))
