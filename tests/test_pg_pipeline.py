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
from connector_telemetry.store.pg_pipeline import LinkLost, Lookups, Pipeline, array_text
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

    async def fetch(self, query: str, args: Any, *, again: bool = True) -> list[Any]:
        self.sent.append(len(args[0]))
        if self.fail is not None:
            raise self.fail
        return await self.pipeline.fetch(query, args, again=again)

    def fetch_now(self, query: str, args: Any) -> asyncio.Future[list[Any]] | None:
        if self.fail is not None:
            self.sent.append(len(args[0]))
            failed: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            failed.set_exception(self.fail)
            return failed
        future = self.pipeline.fetch_now(query, args)
        if future is not None:
            self.sent.append(len(args[0]))
        return future  # (None: the lookups call ``fetch``, which counts)


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


class Held:
    """A pipeline whose statements land when the test says (answers: each key's value)."""

    def __init__(self) -> None:
        self.flying: list[tuple[list[Any], asyncio.Future[list[Any]]]] = []
        self.sent: list[list[Any]] = []  # each statement's keys
        self.fetched: list[bool] = []  # ``fetch``'s ``again``, each time it is called
        self.lost_again = False

    def fetch_now(self, query: str, args: Any) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.sent.append(list(args[0]))
        self.flying.append((list(args[0]), future))
        return future

    async def fetch(self, query: str, args: Any, *, again: bool = True) -> list[Any]:
        self.fetched.append(again)
        if self.lost_again:
            raise LinkLost("lost again")
        return [(i, f"v{key}") for i, key in enumerate(args[0], 1)]

    def land(self, error: BaseException | None = None) -> None:
        keys, future = self.flying.pop(0)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result([(i, f"v{key}") for i, key in enumerate(keys, 1)])


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_while_a_statement_flies_requests_wait_for_it_unless_fill_of_them_do() -> None:
    held = Held()
    lookups = Lookups(held, "q", depth=2, fill=4)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        asked = [asyncio.ensure_future(lookups.get([(0,)]))]
        await turns()
        assert held.sent == [[0]]  # alone: it left at once
        asked += [asyncio.ensure_future(lookups.get([(k,)])) for k in (1, 2, 3)]
        await turns()
        assert held.sent == [[0]]  # three wait for the one in flight
        asked.append(asyncio.ensure_future(lookups.get([(4,)])))
        await turns()
        assert held.sent == [[0], [1, 2, 3, 4]]  # four (fill) leave together
        asked += [asyncio.ensure_future(lookups.get([(k,)])) for k in range(5, 11)]
        await turns()
        assert held.sent == [[0], [1, 2, 3, 4]]  # depth 2 in flight: the rest wait
        held.land()
        await turns()
        assert held.sent[2:] == [list(range(5, 11))]  # a slot free and six waiting
        asked += [asyncio.ensure_future(lookups.get([(k,)])) for k in (11, 12)]
        held.land()
        await turns()
        assert len(held.sent) == 3  # two waiting, one still in flight: they wait for it
        held.land()
        await turns()
        assert held.sent[3:] == [[11, 12]]  # nothing in flight: they leave
        held.land()
        return await asyncio.gather(*asked)

    assert asyncio.run(main()) == [f"v{k}" for k in range(13)]


@pytest.mark.parametrize("lost_again", [False, True])
def test_a_connection_lost_under_a_statement_sends_it_again_once(lost_again: bool) -> None:
    held = Held()
    held.lost_again = lost_again
    lookups = Lookups(held, "q")  # type: ignore[arg-type]

    async def main() -> list[Any]:
        asked = [asyncio.ensure_future(lookups.get([(k,)])) for k in range(3)]
        await turns()
        held.land(LinkLost("the read connection broke"))
        return await asyncio.gather(*asked, return_exceptions=True)

    answers = asyncio.run(main())
    assert held.fetched == [False]  # sent again once, and told not to try a third time
    if lost_again:
        assert all(isinstance(answer, LinkLost) for answer in answers), answers
    else:
        assert answers == ["v0", "v1", "v2"]
    assert lookups._flying == 0
