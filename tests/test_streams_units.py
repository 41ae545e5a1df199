"""The streams' small rules, without a server: tokens, framing, the subscriber's bound."""

from __future__ import annotations

import orjson
import pytest

from connector_telemetry.api.backlog import _hex
from connector_telemetry.api.streams import frame, with_connector_id
from connector_telemetry.errors import InvalidCursor
from connector_telemetry.models import FeedFilter, FeedItem
from connector_telemetry.service.streams import Subscriber, decode_token, encode_token


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
