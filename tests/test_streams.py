"""Live streams (issue 10, sentences 1-2 and 4): server-sent events of a connector's events
and snapshots and of a whole account, in arrival order, exactly once; resume tokens,
``from``, ``k``; errors. On both stores (the ``live`` fixture)."""

from __future__ import annotations

import random
import threading

import httpx
import pytest

from support import LiveServer, Tenant, create_connector, events_path, snapshots_path
from support.feed import SNAPSHOT
from support.sse import T0, Listener, account_stream, event, post


def test_the_events_stream_delivers_each_item_as_get_event_returns_it(
    live: LiveServer, tenant: Tenant, connector_id: str, http: httpx.Client
) -> None:
    path = events_path(tenant.account_id, connector_id)
    with Listener(live.api + path + "/stream", tenant.read) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["x-accel-buffering"] == "no"  # nginx passes it on unbuffered
        # arrival order, not (t, n): the second batch is older than the first
        post(live, tenant, path, [event("Init", T0 + 10, 0), event("Leave", T0 + 11, 0)])
        post(live, tenant, path, [event("Reconcile", T0 + 1, 0)])
        got = stream.take(3)
    assert [m.event for m in got] == ["event"] * 3
    assert [m.item["t"] for m in got] == [T0 + 10, T0 + 11, T0 + 1]
    ids = [m.id for m in got]
    assert len(set(ids)) == 3 and all(i and i.startswith("s") for i in ids)
    for message in got:
        item = message.item
        one = http.get(f"{path}/{item['t']}.{item['n']}", headers=tenant.read)
        assert one.json()["result"] == item
        # byte for byte: the data line is the stored document Get Event answers with
        assert message.data.encode() in one.content


def test_the_snapshots_stream_and_the_account_stream(
    live: LiveServer, tenant: Tenant, http: httpx.Client
) -> None:
    first = create_connector(live.api, tenant)["id"]
    second = create_connector(live.api, tenant)["id"]
    with (
        Listener(
            live.api + snapshots_path(tenant.account_id, first) + "/stream", tenant.read
        ) as snaps,
        Listener(account_stream(live, tenant), tenant.legacy) as everything,
    ):
        post(live, tenant, events_path(tenant.account_id, first), [event("Init", T0, 0)])
        post(live, tenant, snapshots_path(tenant.account_id, first), [{**SNAPSHOT, "t": T0}])
        post(live, tenant, snapshots_path(tenant.account_id, second), [{**SNAPSHOT, "t": T0}])
        got = snaps.take(1)
        assert snaps.quiet(0.3) == []  # the other connector's snapshot and the event: not here
        all_three = everything.take(3)
    assert got[0].event == "snapshot"
    stored = http.get(snapshots_path(tenant.account_id, first) + f"/{T0}", headers=tenant.read)
    assert got[0].item == stored.json()["result"]
    assert [(m.event, m.item["connector_id"]) for m in all_three] == [
        ("event", first),
        ("snapshot", first),
        ("snapshot", second),
    ]
    tagged = all_three[1].item
    assert tagged.pop("connector_id") == first and tagged == got[0].item
    assert next(iter(all_three[0].item)) == "connector_id"


def test_exactly_once_under_concurrent_ingest_with_out_of_order_times(
    live: LiveServer, tenant: Tenant
) -> None:
    """Four clients send batches with shuffled ``t`` (and resend some: duplicates are not
    fed again); every new item reaches both streams once, in one order (ids increasing)."""
    connectors = [create_connector(live.api, tenant)["id"] for _ in range(2)]
    sent: dict[tuple[str, float, int], None] = {}
    lock = threading.Lock()

    def client(number: int) -> None:
        rng = random.Random(number)
        cid = connectors[number % 2]
        path = events_path(tenant.account_id, cid)
        for batch in range(8):
            items = [
                event("Reconcile", T0 + rng.randrange(0, 10_000), number * 1000 + batch * 10 + i)
                for i in range(5)
            ]
            rng.shuffle(items)
            post(live, tenant, path, items)
            post(live, tenant, path, items[:2])  # a retry: duplicates
            with lock:
                for item in items:
                    sent[(cid, item["t"], item["n"])] = None

    path0 = events_path(tenant.account_id, connectors[0])
    with (
        Listener(account_stream(live, tenant), tenant.read) as everything,
        Listener(live.api + path0 + "/stream", tenant.read) as one,
    ):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got = everything.take(len(sent))
        got_one = one.take(sum(1 for key in sent if key[0] == connectors[0]))
        assert everything.quiet(0.5) == [] and one.quiet(0) == []
    keys = [(m.item["connector_id"], m.item["t"], m.item["n"]) for m in got]
    assert sorted(keys) == sorted(sent)
    seqs = [int(str(m.id)[1:]) for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [(connectors[0], m.item["t"], m.item["n"]) for m in got_one] == [
        k for k in keys if k[0] == connectors[0]
    ]


def test_resume_after_an_id_with_the_header_or_after(
    live: LiveServer, tenant: Tenant, connector_id: str
) -> None:
    path = events_path(tenant.account_id, connector_id)
    url = live.api + path + "/stream"
    with Listener(url, tenant.read) as stream:
        post(live, tenant, path, [event("Init", T0 + i, 0) for i in range(3)])
        first = stream.take(3)
    post(live, tenant, path, [event("Init", T0 - 5, 0)])  # while nobody listens; older t
    with Listener(url, {**tenant.read, "Last-Event-ID": str(first[0].id)}) as again:
        got = again.take(3)
        assert again.quiet(0.3) == []
    assert [m.item["t"] for m in got] == [T0 + 1, T0 + 2, T0 - 5]
    with Listener(url, tenant.read, params={"after": first[2].id}) as again:
        assert [m.item["t"] for m in again.take(1)] == [T0 - 5]


def test_from_replays_what_arrived_since_then_continues_live(
    live: LiveServer, tenant: Tenant, connector_id: str
) -> None:
    import time

    path = events_path(tenant.account_id, connector_id)
    post(live, tenant, path, [event("Init", T0, 0)])
    time.sleep(0.05)
    since = time.time()
    post(live, tenant, path, [event("Leave", T0 - 100, 0), event("Init", T0 + 100, 0)])
    with Listener(live.api + path + "/stream", tenant.read, params={"from": since}) as stream:
        replayed = stream.take(2)
        post(live, tenant, path, [event("Reconcile", T0 + 1, 0)])
        live_one = stream.take(1)
    assert [m.item["e"]["k"] for m in replayed + live_one] == ["Leave", "Init", "Reconcile"]


def test_k_filters_events_by_kind(live: LiveServer, tenant: Tenant, connector_id: str) -> None:
    path = events_path(tenant.account_id, connector_id)
    with (
        Listener(live.api + path + "/stream", tenant.read, params={"k": "Leave"}) as leaves,
        Listener(account_stream(live, tenant), tenant.read, params={"k": "Leave"}) as account,
    ):
        post(live, tenant, path, [event("Init", T0, 0), event("Leave", T0 + 1, 0)])
        post(live, tenant, snapshots_path(tenant.account_id, connector_id), [{**SNAPSHOT, "t": T0}])
        post(live, tenant, path, [event("Init", T0 + 2, 0), event("Leave", T0 + 3, 0)])
        got, got_account = leaves.take(2), account.take(2)
        assert leaves.quiet(0.3) == [] and account.quiet(0) == []
    assert [m.item["t"] for m in got] == [T0 + 1, T0 + 3]
    assert [m.item["t"] for m in got_account] == [T0 + 1, T0 + 3]


@pytest.mark.parametrize(
    ("where", "value"),
    [("Last-Event-ID", "nonsense"), ("after", "s-1"), ("after", "12"), ("Last-Event-ID", "s")],
)
def test_a_malformed_token_is_400_naming_where(
    live: LiveServer, tenant: Tenant, connector_id: str, where: str, value: str
) -> None:
    path = live.api + events_path(tenant.account_id, connector_id) + "/stream"
    if where == "after":
        got = httpx.get(path, params={"after": value}, headers=tenant.read)
    else:
        got = httpx.get(path, headers={**tenant.read, where: value})
    assert got.status_code == 400, got.text
    error = got.json()["errors"][0]
    assert error["code"] == 1005 and error["message"].startswith(f"{where}: malformed")


def test_a_token_not_issued_here_and_bad_queries_are_400(
    live: LiveServer, tenant: Tenant, connector_id: str
) -> None:
    path = live.api + events_path(tenant.account_id, connector_id) + "/stream"
    got = httpx.get(path, params={"after": "s999999999"}, headers=tenant.read)
    assert got.status_code == 400 and "not issued" in got.json()["errors"][0]["message"]
    got = httpx.get(path, params={"k": "Nope"}, headers=tenant.read)
    assert got.status_code == 400 and got.json()["errors"][0]["code"] == 1002
    got = httpx.get(path, params={"from": "yesterday"}, headers=tenant.read)
    assert got.status_code == 400 and got.json()["errors"][0]["message"].startswith("from:")


def test_unknown_connectors_and_license_keys(
    live: LiveServer, tenant: Tenant, http: httpx.Client
) -> None:
    made = http.post(
        f"/accounts/{tenant.account_id}/magic/connectors",
        json={"device": {"provision_license": True}},
        headers=tenant.write,
    ).json()["result"]
    path = live.api + events_path(tenant.account_id, made["id"]) + "/stream"
    device = {"Authorization": f"Bearer {made['license_key']}"}
    got = httpx.get(path, headers=device)
    assert got.status_code == 403 and got.json()["errors"][0]["code"] == 10000
    missing = live.api + events_path(tenant.account_id, "f" * 32) + "/stream"
    assert httpx.get(missing, headers=tenant.read).status_code == 404
