"""PostgreSQL helpers for tests that look under the store (catalog, partitions, rows)."""

from __future__ import annotations

from typing import Any

import psycopg


def sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """One statement on a connection of its own; its rows (none for a command)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), args or None)
        return cur.fetchall() if cur.description else []
