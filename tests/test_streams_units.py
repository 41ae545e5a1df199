"""The streams' small rules, without a server: tokens, framing, the subscriber's bound."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector_telemetry.api.backlog import _hex
from connector_telemetry.api.streams import frame, with_connector_id
from connector_telemetry.errors import InvalidCursor
from connector_telemetry.models import FeedFilter, FeedItem
from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.service.streams import Hub, Subscriber, decode_token, encode_token
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.base import Store

T0 = 1_700_000_000


def test_tokens_round_trip_and_malformed_ones_name_where() -> None:
    assert decode_token(encode_token(1042), "after") == 1042
    for raw in ("", "s", "1042", "s-1", "s1.5", "x1", "s" + "9" * 19):
        with pytest.raises(InvalidCursor, match=r"^Last-Event-ID: malformed"):
            decode_token(raw, "Last-Event-ID")


def test_the_account_stream_puts_the_connector_id_first() -> None:
    assert orjson.loads(with_connector_id(b'{"t":1,"n":0}', "ab")) == {
        "connector_id": "ab",
        "t": 1,
        "n": 0,
    }
    assert with_connector_id(b"{}", "ab") == b'{"connector_id":"ab"}'
    assert next(iter(orjson.loads(with_connector_id(b'{"t":1}', "ab")))) == "connector_id"


def test_a_message_is_an_id_an_event_and_data_lines() -> None:
    item = FeedItem(7, "ab", "event", "Init", b'{"t":1}')
    assert frame(item, False) == b'id: s7\nevent: event\ndata: {"t":1}\n\n'
    odd = FeedItem(8, "ab", "snapshot", None, b'{\n"t":1}')
    assert frame(odd, False) == b'id: s8\nevent: snapshot\ndata: {\ndata: "t":1}\n\n'


def test_a_subscriber_past_its_buffer_drops_its_queue_and_catches_up() -> None:
    sub = Subscriber("acc", None, FeedFilter(), 10, buffer_bytes=100)
    sub.live = True
    sub.offer(11, b"x" * 60)
    assert sub.take() == [b"x" * 60] and sub.sent == 11
    sub.offer(12, b"x" * 60)
    sub.offer(13, b"x" * 60)  # over 100 bytes queued: back to reading the feed after 11
    assert not sub.live and sub.pos == 11 and sub.take() == []


def test_proc_net_tcp_addresses() -> None:
    assert _hex("127.0.0.1", "8787") == "0100007F:2253"
    assert _hex("::1", "80") == "00000000000000000000000001000000:0050"
    assert _hex("not-an-ip", "1") is None


def _store(tmp_path: Path) -> tuple[Store, str, list[str], list[int]]:
    """A SQLite store with an account and two connectors (ids, pks)."""
    store = open_store(Settings(db=str(tmp_path / "feed.db")))
    store.migrate()
    account = credentials.create_account(store)
    made = [
        connectors.create_connector(store, account, {"device": {"id": f"d{i}"}}) for i in (0, 1)
    ]
    ids = [connector.id for connector, _ in made]
    return store, account, ids, [store.connector_pk(account, cid) for cid in ids]


def _feed(store: Store, account: str, ids: list[str]) -> None:
    """Init, Leave (events) and a snapshot of each connector: feed seqs 1-6."""
    snapshot = {"v": "1", "count_reclaim_failures": 0, "count_reclaimed_paths": 0}
    snapshot |= {"count_record_failed": 0, "count_transmit_failures": 0, "t": T0}
    for cid in ids:
        body = orjson.dumps(
            [{"e": {"k": "Init"}, "t": T0, "n": 0}, {"e": {"k": "Leave"}, "t": T0 + 1}]
        )
        events.record_events(store, account, cid, events.parse_batch(body, "", 10))
        body = orjson.dumps([snapshot])
        snapshots.record_snapshots(store, account, cid, snapshots.parse_batch(body, "", 10))


def test_the_feed_reads_what_any_of_several_filters_selects(tmp_path: Path) -> None:
    store, account, ids, (a, b) = _store(tmp_path)
    _feed(store, account, ids)
    try:

        def seqs(*which: FeedFilter) -> list[int]:
            items, reached = store.read_feed_any(account, 0, 6, which, 100)
            assert reached == 6
            return [item.seq for item in items]

        assert seqs(FeedFilter()) == seqs() == [1, 2, 3, 4, 5, 6]
        assert seqs(FeedFilter(a, "event")) == [1, 2]
        assert seqs(FeedFilter(a, "event"), FeedFilter(b, "snapshot")) == [1, 2, 6]
        assert seqs(FeedFilter(None, "event", "Leave"), FeedFilter(b, "snapshot")) == [2, 5, 6]
        assert seqs(FeedFilter(a, "snapshot"), FeedFilter()) == [1, 2, 3, 4, 5, 6]
        items, reached = store.read_feed_any(account, 0, 6, [FeedFilter(b)], 2)
        assert [item.seq for item in items] == [4, 5] and reached == 5
    finally:
        store.close()


def test_the_fan_out_reads_only_what_its_live_subscribers_want(tmp_path: Path) -> None:
    """Each subscriber gets exactly its items; one that turned live while the round's read
    was in flight, with a filter the read did not include, goes back to reading the feed
    itself (it misses nothing)."""
    store, account, ids, (a, _) = _store(tmp_path)
    hub = Hub(store, frame)
    statements: list[Sequence[FeedFilter]] = []
    read_feed_any = store.read_feed_any
    late: list[Subscriber] = []

    def spy(account_id: str, after: int, upto: int, which: Any, limit: int) -> Any:
        statements.append(list(which))
        late.append(hub.subscribe(account_id, None, FeedFilter(None, "snapshot"), 0, 1 << 20))
        return read_feed_any(account_id, after, upto, which, limit)

    async def main() -> None:
        first = hub.subscribe(account, ids[0], FeedFilter(a, "event"), None, 1 << 20)
        leaves = hub.subscribe(account, None, FeedFilter(None, "event", "Leave"), None, 1 << 20)
        _feed(store, account, ids)
        store.read_feed_any = spy  # type: ignore[method-assign]
        await hub.poll()
        assert len(statements) == 1
        assert set(statements[0]) == {FeedFilter(a, "event"), FeedFilter(None, "event", "Leave")}
        assert [m.split(b"\n")[0] for m in first.take()] == [b"id: s1", b"id: s2"]
        assert [m.split(b"\n")[0] for m in leaves.take()] == [b"id: s2", b"id: s5"]
        assert not late[0].live and late[0].pos == 0  # it reads seqs 3 and 6 itself
        hub.close()

    try:
        asyncio.run(main())
    finally:
        store.close()
