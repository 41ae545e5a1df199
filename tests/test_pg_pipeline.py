"""Get Events gathered into one statement on PostgreSQL's pipelined reads
(``store.pg_pipeline.Lookups``, issue 13): the same answers as one lookup per key, fewer
statements under load, and a failure reaches every request it carried."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import psycopg
import pytest

from connector_telemetry.service import connectors, credentials, events
from connector_telemetry.store.pg_pipeline import Lookups, Pipeline, array_text
from connector_telemetry.store.postgres import PostgresStore

T0 = 1_700_000_000.0


@pytest.fixture
def stored(pg: PostgresStore) -> tuple[str, str, dict[tuple[float, float], bytes]]:
    """A connector with 60 events (two per second, n 0 and 1); each key's stored document."""
    account = credentials.create_account(pg)
    made, _ = connectors.create_connector(pg, account, {"device": {"provision_license": True}})
    items = [{"e": {"k": "Init", "i": i}, "t": T0 + i // 2 + 0.25, "n": i % 2} for i in range(60)]
    events.record_events(
        pg, account, made.id, events.parse_batch(orjson.dumps(items), "application/json", 1000)
    )
    docs = {}
    for item in items:
        key = (float(item["t"]), float(item["n"]))  # type: ignore[arg-type]
        doc = pg.get_event(account, made.id, [key])
        assert doc is not None
        docs[key] = doc
    return account, made.id, docs


class Counting:
    """The store's pipeline, counting the statements it sends (and optionally failing)."""

    def __init__(self, pipeline: Pipeline, fail: BaseException | None = None):
        self.pipeline, self.fail = pipeline, fail
        self.sent: list[int] = []  # how many keys each statement carried

    async def fetch(self, query: str, args: Any) -> list[Any]:
        self.sent.append(len(args[0]))
        if self.fail is not None:
            raise self.fail
        return await self.pipeline.fetch(query, args)


def test_array_literals_carry_numbers_exactly() -> None:
    assert array_text([1, None, 3]) == b"{1,NULL,3}"
    assert array_text([0.1, 1700000000.123456]) == b"{0.1,1700000000.123456}"
    assert array_text([]) == b"{}"


def test_gathered_gets_answer_like_one_lookup_per_key(
    pg: PostgresStore, stored: tuple[str, str, dict[tuple[float, float], bytes]]
) -> None:
    account, cid, docs = stored
    keys = list(docs)
    asked: list[list[tuple[float, float]]] = [[key] for key in keys]
    asked += [
        [(T0 + 999.0, 0.0)],  # nothing there
        [(T0 + 999.0, 0.0), keys[7]],  # the second way of reading the id is the one stored
        [keys[3], keys[4]],  # both stored: the first wins
        [],  # no key at all
    ]
    expected = [docs[key] for key in keys] + [None, docs[keys[7]], docs[keys[3]], None]
    assert pg._pipeline is not None
    counting = Counting(pg._pipeline)
    pg._events_by_key = Lookups(counting, pg._events_by_key._query)  # type: ignore[arg-type, union-attr]

    async def main() -> list[bytes | None]:
        return await asyncio.gather(*(pg.get_event_async(account, cid, k) for k in asked))

    answers = asyncio.run(main())
    assert answers == expected
    # asked in one turn of the loop: one statement carried them all
    assert counting.sent == [sum(len(k) for k in asked)]


def test_under_load_statements_carry_many_requests_and_at_most_depth_fly(
    pg: PostgresStore, stored: tuple[str, str, dict[tuple[float, float], bytes]]
) -> None:
    account, cid, docs = stored
    keys = list(docs)
    assert pg._pipeline is not None and pg._events_by_key is not None
    counting = Counting(pg._pipeline)
    lookups = pg._events_by_key = Lookups(counting, pg._events_by_key._query)  # type: ignore[arg-type]
    most = 0

    async def one(i: int) -> bytes | None:
        nonlocal most
        await asyncio.sleep(0.0001 * (i % 17))  # requests arrive over several turns
        most = max(most, lookups._flying)
        return await pg.get_event_async(account, cid, [keys[i % len(keys)]])

    async def main() -> list[bytes | None]:
        return await asyncio.gather(*(one(i) for i in range(600)))

    answers = asyncio.run(main())
    assert answers == [docs[keys[i % len(keys)]] for i in range(600)]
    assert most <= lookups.depth
    assert sum(counting.sent) == 600
    assert len(counting.sent) < 600 / 4, counting.sent  # gathered: far fewer statements


@pytest.mark.parametrize(
    "error", [psycopg.OperationalError("lost"), psycopg.errors.QueryCanceled()]
)
def test_a_failed_statement_fails_every_request_it_carried_and_the_next_ones_go_on(
    pg: PostgresStore,
    stored: tuple[str, str, dict[tuple[float, float], bytes]],
    error: Exception,
) -> None:
    account, cid, docs = stored
    keys = list(docs)
    assert pg._pipeline is not None and pg._events_by_key is not None
    counting = Counting(pg._pipeline, fail=error)
    pg._events_by_key = Lookups(counting, pg._events_by_key._query)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        first = await asyncio.gather(
            *(pg.get_event_async(account, cid, [key]) for key in keys[:5]),
            return_exceptions=True,
        )
        counting.fail = None
        second = await asyncio.gather(*(pg.get_event_async(account, cid, [key]) for key in keys))
        return [first, second]

    first, second = asyncio.run(main())
    assert all(answer is error for answer in first)
    assert second == [docs[key] for key in keys]


def test_a_statement_failing_before_a_first_prepare_leaves_later_batches_working(
    pg_url: str,
) -> None:
    """A statement that fails (``statement_timeout``) makes the server skip the rest of its
    batch. A statement prepared for the first time must not be in that batch: batches sent
    meanwhile use it by name (they would answer "prepared statement does not exist")."""
    store = PostgresStore(pg_url, statement_timeout_ms=300, read_pipeline=True)
    try:
        pipeline = store._pipeline
        assert pipeline is not None

        async def main() -> list[Any]:
            assert await pipeline.fetch("SELECT %s::int", [0]) == [(0,)]  # connected first
            slow = asyncio.ensure_future(pipeline.fetch("SELECT 1 FROM pg_sleep(%s)", [5.0]))
            first = asyncio.ensure_future(pipeline.fetch("SELECT %s::int + 1", [1]))
            await asyncio.sleep(0.05)  # both sent, the slow one still running
            second = await pipeline.fetch("SELECT %s::int + 1", [2])
            return [*(await asyncio.gather(slow, first, return_exceptions=True)), second]

        slow, first, second = asyncio.run(main())
        assert isinstance(slow, psycopg.errors.QueryCanceled), slow
        assert (first, second) == ([(2,)], [(3,)])
    finally:
        store.close()
