"""The writer threads (``api.writer``): one for SQLite, several for PostgreSQL, so that
one write runs while another waits for the database; deadlines and shutdown hold for all."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from connector_telemetry.api.writer import Writer
from connector_telemetry.errors import Unavailable
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.postgres import PostgresStore


def blocked_then_quick(writer: Writer) -> tuple[list[str], threading.Event]:
    """A write that waits for an event, then a quick one; the order they finished in."""
    done: list[str] = []
    release = threading.Event()

    def slow() -> None:
        assert release.wait(10)
        done.append("slow")

    async def main() -> None:
        first = asyncio.ensure_future(writer.run(slow))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(writer.run(done.append, "quick"))
        await asyncio.sleep(0.3)
        release.set()
        await asyncio.gather(first, second)

    asyncio.run(main())
    return done, release


def test_several_threads_run_a_write_while_another_waits() -> None:
    writer = Writer(None, threads=2)
    done, _ = blocked_then_quick(writer)
    assert done == ["quick", "slow"]
    assert writer.close(5)


def test_one_thread_runs_writes_in_turn() -> None:
    writer = Writer(None)
    done, _ = blocked_then_quick(writer)
    assert done == ["slow", "quick"]
    assert writer.close(5)


def test_a_write_queued_past_its_deadline_is_answered_503_whatever_the_threads() -> None:
    writer = Writer(0.3, threads=2)
    release = threading.Event()

    async def main() -> list[object]:
        stuck = [asyncio.ensure_future(writer.run(release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"took no write for 0\.3 s"):
            await writer.run(time.sleep, 0)
        assert time.monotonic() - started < 2
        release.set()
        return list(await asyncio.gather(*stuck))

    assert asyncio.run(main()) == [True, True]
    assert writer.close(5)


def test_close_waits_for_every_thread_and_reports_one_still_running() -> None:
    writer = Writer(None, threads=3)
    release = threading.Event()

    async def main() -> None:
        running = asyncio.ensure_future(writer.run(release.wait, 10))
        await asyncio.sleep(0.1)
        assert not running.done()

    asyncio.run(main())
    started = time.monotonic()
    assert not writer.close(0.3)  # one still runs: left to die with the process
    assert time.monotonic() - started < 2
    release.set()


def test_postgresql_writes_on_half_the_pool_sqlite_on_one(tmp_path: Path, pg_url: str) -> None:
    store = open_store(Settings(db=pg_url, pool_max_size=6))
    try:
        assert isinstance(store, PostgresStore)
        assert store.write_threads == 3
    finally:
        store.close()
    assert PostgresStore(pg_url, pool_max_size=1).write_threads == 1
    sqlite = open_store(Settings(db=str(tmp_path / "ctel.db")))
    try:
        assert sqlite.write_threads == 1
    finally:
        sqlite.close()
