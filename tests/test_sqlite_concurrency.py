"""How the SQLite store shares one file between threads and processes: the event loop's held
read transaction (store.sqlite_held.HeldReader) stays exact whatever another connection or
process commits, and ends when asked; the workers' writer turns (store.sqlite_turn.WriterTurn)
follow the database's permissions and never stand in the way of a write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from connector_telemetry.service import connectors, credentials, events
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.sqlite import SQLiteStore


def _record(store: SQLiteStore, account: str, cid: str, t: int) -> None:
    body = orjson.dumps([{"e": {"k": "Init"}, "t": t, "n": 0}])
    events.record_events(store, account, cid, events.parse_batch(body, "application/json", 10))


def test_held_reads_see_every_commit_at_once(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    writer = open_store(Settings(db=db))
    writer.migrate()
    account = credentials.create_account(writer)
    connector, _ = connectors.create_connector(writer, account, {"device": {"id": "d1"}})
    reader = open_store(Settings(db=db))
    assert isinstance(reader, SQLiteStore)
    begun: list[int] = []
    reader.hold_reads(lambda: begun.append(1))

    assert reader.get_event(account, connector.id, [(1.0, 0.0)]) is None
    held = reader._held
    assert held is not None and held.conn.in_transaction and len(begun) == 1
    # Nothing committed: the same transaction serves the next reads.
    assert reader.get_event(account, connector.id, [(1.0, 0.0)]) is None
    assert len(begun) == 1
    for t in range(1, 30):
        _record(writer, account, connector.id, t)  # another connection commits ...
        assert reader.get_event(account, connector.id, [(float(t), 0.0)]) is not None  # seen
    # ... and another process.
    script = (
        "import sys, orjson\n"
        "from connector_telemetry.service import events\n"
        "from connector_telemetry.settings import Settings\n"
        "from connector_telemetry.store import open_store\n"
        "s = open_store(Settings(db=sys.argv[1]))\n"
        "b = orjson.dumps([{'e': {'k': 'Init'}, 't': 100, 'n': 0}])\n"
        "s.record_events(sys.argv[2], sys.argv[3], "
        "events.parse_batch(b, 'application/json', 10), 1.0)\n"
    )
    subprocess.run([sys.executable, "-c", script, db, account, connector.id], check=True)
    assert reader.get_event(account, connector.id, [(100.0, 0.0)]) is not None
    reader.end_reads()
    assert not held.conn.in_transaction  # reading again begins a new one
    assert len(reader.list_events(account, connector.id, 0, 1000, None, None, 100)) == 30
    assert held.conn.in_transaction and len(begun) > 1
    reader.end_reads()
    reader.close()
    writer.close()


def test_other_threads_never_read_through_the_held_transaction(tmp_path: Path) -> None:
    import threading

    db = str(tmp_path / "t.db")
    store = open_store(Settings(db=db))
    store.migrate()
    assert isinstance(store, SQLiteStore)
    store.hold_reads(lambda: None)
    held = store.reader
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.reader))
    thread.start()
    thread.join()
    assert seen[0] is not held
    store.close()


def test_writer_turns_follow_the_database_and_never_block_writes(tmp_path: Path) -> None:
    import os
    import stat

    db = tmp_path / "w.db"
    first = open_store(Settings(db=str(db)))
    first.migrate()
    first.close()
    os.chmod(db, 0o640)
    lock = Path(str(db) + "-writer.lock")
    lock.unlink()
    store = open_store(Settings(db=str(db)))
    credentials.create_account(store)  # a write, through the turn
    assert stat.S_IMODE(lock.stat().st_mode) == 0o640  # the database's permissions
    store.close()
    # A lock file this process cannot open: writes go through SQLite's own locking alone.
    lock.unlink()
    lock.mkdir()
    store = open_store(Settings(db=str(db)))
    credentials.create_account(store)
    store.close()
