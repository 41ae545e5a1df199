"""Tenants: an account with its credentials, one per test, so tests can share a server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connector_telemetry.service import credentials
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store


@dataclass
class Tenant:
    account_id: str
    write_token: str
    read_token: str
    email: str
    api_key: str

    @property
    def write(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_token}"}

    @property
    def read(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_token}"}

    @property
    def legacy(self) -> dict[str, str]:
        return {"X-Auth-Email": self.email, "X-Auth-Key": self.api_key}


def make_tenant(store: Store) -> Tenant:
    account_id = credentials.create_account(store)
    _, write = credentials.create_token(store, account_id, "Magic WAN Write")
    _, read = credentials.create_token(store, account_id, "Magic WAN Read")
    email = f"user-{account_id[:12]}@example.com"
    key = credentials.create_user(store, email, [account_id])
    return Tenant(account_id, write, read, email, key)


def fresh_db(folder: Path, url: str | None = None) -> tuple[str, Tenant]:
    """A new, migrated database (a SQLite file in ``folder``, or the empty PostgreSQL
    database at ``url``) with one tenant (whose account also keeps ``ctel serve`` from
    bootstrapping its own)."""
    db = url or str(folder / "ctel.db")
    store = open_store(Settings(db=db))
    try:
        store.migrate()
        tenant = make_tenant(store)
    finally:
        store.close()
    return db, tenant


#: The tables each schema version after 4 created (a new migration adds its line here).
TABLES_OF_SCHEMA = {
    5: ("event_counts",),
    6: ("feed", "feed_heads"),
    7: ("meta", "test_state", "test_faults", "test_rate", "test_journal"),
}


def downgrade_and_migrate(db: str, version: int, statements: list[str]) -> None:
    """Undo the schema back to ``version`` (``statements`` undo what it changed itself; the
    tables of later versions, ``TABLES_OF_SCHEMA``, are dropped here), check it, then
    migrate it up again as a newer ctel would: for tests of a migration on old data."""
    later = [t for v, tables in TABLES_OF_SCHEMA.items() if v > version for t in tables]
    statements = [*statements, *(f"DROP TABLE IF EXISTS {table}" for table in later)]
    store = open_store(Settings(db=db))
    try:
        with store._write() as conn:  # type: ignore[attr-defined]
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"DELETE FROM schema_version WHERE version > {int(version)}")
        assert store.schema_version() == version
        store.migrate()
    finally:
        store.close()
