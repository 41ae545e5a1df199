"""Events through the front door: ingest (ours), then List / Latest / Get (Cloudflare's)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import orjson
import pytest

from connector_telemetry.service.events import KINDS
from support import Tenant, assert_error, events_path

T0 = 1_700_000_000


def event(
    kind: str = "Init", t: float = T0, n: float | None = None, **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"k": kind}
    if kind == "StartUpgrade":
        payload["url"] = "https://example.com/bundle.tar"
    if kind.startswith("Rekey"):
        payload["tunnel_id"] = "tun-1"
    item: dict[str, Any] = {"e": payload, "t": t, **extra}
    if n is not None:
        item["n"] = n
    return item


def ingest(http: httpx.Client, tenant: Tenant, cid: str, items: Any, **kw: Any) -> httpx.Response:
    return http.post(events_path(tenant.account_id, cid), json=items, headers=tenant.write, **kw)


def test_ingest_then_get_all_29_kinds(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    items = [event(k, T0 + i, 0, v="2026.1.0") for i, k in enumerate(KINDS)]
    items[0]["e"]["extra"] = {"nested": [1, 2.5, "x"]}
    response = ingest(http, tenant, connector_id, items)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"accepted": 29, "duplicates": 0}
    for item in items:
        got = http.get(
            f"{events_path(tenant.account_id, connector_id)}/{item['t']}.0", headers=tenant.read
        )
        assert got.status_code == 200, got.text
        assert got.json()["result"] == item  # kind-specific fields kept exactly as sent


def test_get_event_shape_integers_and_missing_v(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    ingest(http, tenant, connector_id, [event("Init", T0, 3)])
    got = http.get(f"{events_path(tenant.account_id, connector_id)}/{T0}.3", headers=tenant.read)
    assert got.content.startswith(b'{"result":{"e":{"k":"Init"},"n":3,"t":1700000000}')
    body = got.json()
    assert body == {
        "result": {"e": {"k": "Init"}, "n": 3, "t": T0},
        "success": True,
        "errors": [],
        "messages": [],
    }


@pytest.mark.parametrize(
    "segment",
    ["1700000000.5.3", "1700000000.5.3.0", "1.7000000005e+09.3", "1700000000.5.3e0"],
)
def test_get_event_every_sdk_number_form(
    http: httpx.Client, tenant: Tenant, connector_id: str, segment: str
) -> None:
    ingest(http, tenant, connector_id, [event("Init", T0 + 0.5, 3)])
    got = http.get(f"{events_path(tenant.account_id, connector_id)}/{segment}", headers=tenant.read)
    assert got.status_code == 200, got.text
    assert got.json()["result"]["t"] == T0 + 0.5 and got.json()["result"]["n"] == 3


def test_ambiguous_id_resolves_to_the_stored_reading(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    # "1700000000.5.3" reads as (1700000000.5, 3) or (1700000000, 5.3): only the latter exists.
    ingest(http, tenant, connector_id, [event("Init", T0, 5.3)])
    got = http.get(
        f"{events_path(tenant.account_id, connector_id)}/1700000000.5.3", headers=tenant.read
    )
    assert got.status_code == 200 and got.json()["result"]["n"] == 5.3


@pytest.mark.parametrize("segment", ["1e+16.2", "1e16.2.0", "10000000000000000.2"])
def test_huge_t_forms(http: httpx.Client, tenant: Tenant, connector_id: str, segment: str) -> None:
    ingest(http, tenant, connector_id, [event("Init", 1e16, 2)])
    got = http.get(f"{events_path(tenant.account_id, connector_id)}/{segment}", headers=tenant.read)
    assert got.status_code == 200, got.text
    assert got.json()["result"]["t"] == 10**16


@pytest.mark.parametrize("segment", ["null.1", "false.true", "abc", "1700000000"])
def test_unroutable_event_ids(
    http: httpx.Client, tenant: Tenant, connector_id: str, segment: str
) -> None:
    got = http.get(f"{events_path(tenant.account_id, connector_id)}/{segment}", headers=tenant.read)
    assert_error(got, 400, 7003, "could not route")


def test_unknown_event_and_unknown_connector(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    got = http.get(f"{events_path(tenant.account_id, connector_id)}/1.2", headers=tenant.read)
    assert_error(got, 404, 1404, "event 1.2 not found")
    for suffix in ("/1.2", "/latest", "?from=0&to=1"):
        got = http.get(events_path(tenant.account_id, "nope") + suffix, headers=tenant.read)
        assert_error(got, 404, 1404, "connector nope not found")
    assert_error(ingest(http, tenant, "nope", [event()]), 404, 1404, "connector nope")


def test_connector_without_events_gives_empty_lists(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    path = events_path(tenant.account_id, connector_id)
    assert http.get(path, params={"from": 0, "to": "inf"}, headers=tenant.read).json()[
        "result"
    ] == {"count": 0, "items": []}
    assert http.get(path + "/latest", headers=tenant.read).json()["result"] == {
        "count": 0,
        "items": [],
    }


def test_duplicates_and_conflicts(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    first = [event("Init", T0, 0), event("Reconcile", T0, 1)]
    assert ingest(http, tenant, connector_id, first).json()["result"] == {
        "accepted": 2,
        "duplicates": 0,
    }
    # Same (t, n), same content: counted, not stored again. 3 and 3.0 are one key.
    again = [event("Init", T0 * 1.0, 0.0), event("Reconcile", T0, 1), event("Leave", T0, 2)]
    assert ingest(http, tenant, connector_id, again).json()["result"] == {
        "accepted": 1,
        "duplicates": 2,
    }
    # Same (t, n), other content: the whole batch is refused, nothing stored.
    clash = [event("Leave", T0 + 9, 0), event("Leave", T0, 1)]
    response = ingest(http, tenant, connector_id, clash)
    assert_error(response, 409, 1409, "events[1]")
    assert response.headers["x-should-retry"] == "false"
    listed = http.get(
        events_path(tenant.account_id, connector_id),
        params={"from": 0, "to": "inf"},
        headers=tenant.read,
    ).json()["result"]
    assert [(i["t"], i["n"], i["k"]) for i in listed["items"]] == [
        (T0, 0, "Init"),
        (T0, 1, "Reconcile"),
        (T0, 2, "Leave"),
    ]
    # In-batch repeats: identical ones are duplicates, different ones conflict.
    same_twice = [event("Init", T0 + 50, 0), event("Init", T0 + 50, 0)]
    assert ingest(http, tenant, connector_id, same_twice).json()["result"] == {
        "accepted": 1,
        "duplicates": 1,
    }
    differ = [event("Init", T0 + 60, 0), event("Leave", T0 + 60, 0)]
    assert_error(ingest(http, tenant, connector_id, differ), 409, 1409, "events[1]")


def test_missing_n_gets_next_free_number(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    ingest(http, tenant, connector_id, [event("Init", T0, 0), event("Init", T0, 4)])
    result = ingest(
        http,
        tenant,
        connector_id,
        [event("Reconcile", T0), event("Reconcile", T0), event("Leave", T0 + 1)],
    )
    assert result.json()["result"] == {"accepted": 3, "duplicates": 0}
    listed = http.get(
        events_path(tenant.account_id, connector_id),
        params={"from": 0, "to": "inf"},
        headers=tenant.read,
    ).json()["result"]
    assert [(i["t"], i["n"]) for i in listed["items"]] == [
        (T0, 0),
        (T0, 4),
        (T0, 5),
        (T0, 6),
        (T0 + 1, 0),
    ]
    assert all(isinstance(i["a"], int | float) and i["a"] > T0 for i in listed["items"])


def test_ndjson_ingest(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    body = b"\n".join(orjson.dumps(event("Init", T0 + i, 0)) for i in range(3)) + b"\n"
    response = http.post(
        events_path(tenant.account_id, connector_id),
        content=body,
        headers={**tenant.write, "Content-Type": "application/x-ndjson"},
    )
    assert response.json()["result"] == {"accepted": 3, "duplicates": 0}
    bad = b'{"e":{"k":"Init"},"t":1}\n{"e":{"k":"Init"},"t":-1}\n'
    response = http.post(
        events_path(tenant.account_id, connector_id),
        content=bad,
        headers={**tenant.write, "Content-Type": "application/x-ndjson"},
    )
    assert_error(response, 400, 1003, "events[1].t")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ([{"e": {"k": "Nope"}, "t": 1}], "events[0].e.k: unknown event kind"),
        ([{"e": {"k": "Init"}, "t": 1}, {"e": {}, "t": 1}], "events[1].e.k"),
        ([{"t": 1}], "events[0].e"),
        ([{"e": {"k": "Init"}}], "events[0].t"),
        ([{"e": {"k": "Init"}, "t": "1"}], "events[0].t: expected a number"),
        ([{"e": {"k": "Init"}, "t": True}], "events[0].t: expected a number"),
        ([{"e": {"k": "Init"}, "t": -1}], "events[0].t"),
        ([{"e": {"k": "Init"}, "t": 1, "n": -2}], "events[0].n"),
        ([{"e": {"k": "Init"}, "t": 1, "v": 3}], "events[0].v"),
        ([{"e": {"k": "Init"}, "t": 1, "a": 3}], "events[0].a"),
        ([{"e": {"k": "StartUpgrade"}, "t": 1}], "events[0].e.url"),
        ([{"e": {"k": "RekeyStart", "tunnel_id": 5}, "t": 1}], "events[0].e.tunnel_id"),
        ([{"e": {"k": "Init"}, "t": 1}, 7], "events[1]"),
        ([], "empty"),
        ({"e": {"k": "Init"}, "t": 1}, "array"),
    ],
)
def test_bad_batches_name_index_and_field(
    http: httpx.Client, tenant: Tenant, connector_id: str, body: Any, where: str
) -> None:
    response = ingest(http, tenant, connector_id, body)
    assert response.status_code == 400
    assert where in response.json()["errors"][0]["message"], response.text
    listed = http.get(
        events_path(tenant.account_id, connector_id),
        params={"from": 0, "to": "inf"},
        headers=tenant.read,
    )
    assert listed.json()["result"]["count"] == 0  # a rejected batch stores nothing


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"", "empty"),
        (b"[{", "not valid JSON"),
        (b'[{"e":{"k":"Init"},"t":NaN}]', "JSON"),
        (b'[{"e":{"k":"Init"},"t":1e999}]', "number out of range"),
    ],
)
def test_malformed_bodies(
    http: httpx.Client, tenant: Tenant, connector_id: str, content: bytes, where: str
) -> None:
    response = http.post(
        events_path(tenant.account_id, connector_id),
        content=content,
        headers={**tenant.write, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert where in response.json()["errors"][0]["message"], response.text


def test_batch_limit(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    items = [event("Reconcile", T0 + i // 10, i % 10) for i in range(10_000)]
    response = ingest(http, tenant, connector_id, items)
    assert response.json()["result"] == {"accepted": 10_000, "duplicates": 0}
    over = [*items, event("Leave", T0 + 5000, 0)]
    assert_error(ingest(http, tenant, connector_id, over), 400, 1006, "at most 10000")


def test_unsupported_content_type(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    response = http.post(
        events_path(tenant.account_id, connector_id),
        content=b"x",
        headers={**tenant.write, "Content-Type": "text/plain"},
    )
    assert_error(response, 415, 1415, "content-type")


def _all_pages(http: httpx.Client, tenant: Tenant, cid: str, **params: Any) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        result = http.get(
            events_path(tenant.account_id, cid), params=query, headers=tenant.read
        ).json()["result"]
        assert result["count"] == len(result["items"])
        seen += result["items"]
        cursor = result.get("cursor")
        if cursor is None:
            return seen


def test_list_order_range_kind_and_paging(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    items = [event("Reconcile" if i % 3 else "Init", T0 + i // 4, i % 4) for i in range(250)]
    ingest(http, tenant, connector_id, list(reversed(items)))
    path = events_path(tenant.account_id, connector_id)
    first = http.get(path, params={"from": 0, "to": "1e+16"}, headers=tenant.read).json()
    assert first["result"]["count"] == 100 and "cursor" in first["result"]  # default limit
    every = _all_pages(http, tenant, connector_id, **{"from": 0, "to": 1e10, "limit": "7.0"})
    assert [(i["t"], i["n"]) for i in every] == [(e["t"], e["n"]) for e in items]
    ranged = _all_pages(http, tenant, connector_id, **{"from": T0 + 10, "to": T0 + 12})
    assert [(i["t"], i["n"]) for i in ranged] == [
        (T0 + d, n) for d in (10, 11, 12) for n in range(4)
    ]  # inclusive bounds
    inits = _all_pages(http, tenant, connector_id, **{"from": 0, "to": "inf", "k": "Init"})
    assert {i["k"] for i in inits} == {"Init"} and len(inits) == 84
    exact = http.get(
        path, params={"from": 0, "to": "inf", "limit": 250}, headers=tenant.read
    ).json()["result"]
    assert exact["count"] == 250 and "cursor" not in exact  # cursor only when more follows


def test_paging_stays_exact_while_ingesting(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    ingest(http, tenant, connector_id, [event("Init", T0 + i, 0) for i in range(0, 600, 2)])
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as client:
            i = 1
            while not stop.is_set() and i < 600:
                client.post(
                    events_path(tenant.account_id, connector_id),
                    json=[event("Leave", T0 + i, 0)],
                    headers=tenant.write,
                )
                i += 2

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = _all_pages(http, tenant, connector_id, **{"from": 0, "to": "inf", "limit": 10})
    finally:
        stop.set()
        thread.join()
    keys = [(i["t"], i["n"]) for i in seen]
    assert len(keys) == len(set(keys)), "an item was repeated"
    assert keys == sorted(keys)
    assert {(T0 + i, 0) for i in range(0, 600, 2)} <= set(keys), "an item was skipped"


def test_latest(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    items = [event("Init", T0 + i, n, v="1.0") for i in range(8) for n in range(2)]
    ingest(http, tenant, connector_id, items)
    path = events_path(tenant.account_id, connector_id) + "/latest"
    result = http.get(path, headers=tenant.read).json()["result"]
    assert result["count"] == 10
    assert result["items"] == list(reversed(items))[:10]
    assert http.get(path, params={"limit": 50}, headers=tenant.read).json()["result"]["count"] == 16
    assert_error(http.get(path, params={"limit": 0}, headers=tenant.read), 400, 1002, "limit")


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"to": 1}, "from: required"),
        ({"from": 1}, "to: required"),
        ({"from": "x", "to": 1}, "from: expected a number"),
        ({"from": 0, "to": 1, "limit": 1001}, "limit"),
        ({"from": 0, "to": 1, "limit": 2.5}, "limit"),
        ({"from": 0, "to": 1, "limit": 0}, "limit"),
        ({"from": 0, "to": 1, "limit": -1}, "limit"),
        ({"from": 0, "to": 1, "k": "Start Upgrade"}, "k: unknown event kind"),
        ({"from": 0, "to": 1, "cursor": "garbage"}, "cursor"),
    ],
)
def test_bad_list_queries(
    http: httpx.Client, tenant: Tenant, connector_id: str, params: Any, where: str
) -> None:
    response = http.get(
        events_path(tenant.account_id, connector_id), params=params, headers=tenant.read
    )
    assert response.status_code == 400
    assert where in response.json()["errors"][0]["message"], response.text


def test_cursor_bound_to_its_query(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    ingest(http, tenant, connector_id, [event("Init", T0 + i, 0) for i in range(5)])
    path = events_path(tenant.account_id, connector_id)
    cursor = http.get(
        path, params={"from": 0, "to": "inf", "limit": 2}, headers=tenant.read
    ).json()["result"]["cursor"]
    response = http.get(
        path, params={"from": 5, "to": "inf", "cursor": cursor}, headers=tenant.read
    )
    assert_error(response, 400, 1005, "another query")


def test_seed_curl_line_verbatim(live: Any, tenant: Tenant, connector_id: str) -> None:
    import subprocess

    http = httpx.Client(base_url=live.api)
    ingest(http, tenant, connector_id, [event("Init", 0, 0, v="v")])
    http.close()
    env = {
        "ACCOUNT_ID": tenant.account_id,
        "CONNECTOR_ID": connector_id,
        "EVENT_T": "0",
        "EVENT_N": "0",
        "CLOUDFLARE_API_TOKEN": tenant.write_token,
    }
    seed = (
        "curl https://api.cloudflare.com/client/v4/accounts/$ACCOUNT_ID/magic/connectors/"
        "$CONNECTOR_ID/telemetry/events/$EVENT_T.$EVENT_N \\\n"
        '    -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"'
    )
    line = "curl -s " + seed.removeprefix("curl ").replace("https://api.cloudflare.com", live.url)
    out = subprocess.run(["bash", "-c", line], env=env, capture_output=True, check=True)
    assert orjson.loads(out.stdout) == {
        "result": {"e": {"k": "Init"}, "n": 0, "t": 0, "v": "v"},
        "success": True,
        "errors": [],
        "messages": [],
    }


def test_payload_kept_in_order_and_compared_as_json(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    path = events_path(tenant.account_id, connector_id)
    sent = (
        b'[{"e":{"k":"StartUpgrade","url":"https://x/b","z":1,"a":[1.5,{"y":null}]},"t":7,"n":0}]'
    )
    headers = {**tenant.write, "Content-Type": "application/json"}
    assert http.post(path, content=sent, headers=headers).json()["result"]["accepted"] == 1
    got = http.get(f"{path}/7.0", headers=tenant.read)
    assert got.content.startswith(
        b'{"result":{"e":{"k":"StartUpgrade","url":"https://x/b","z":1,"a":[1.5,{"y":null}]},'
    )
    reordered = b'[{"n":0,"t":7.0,"e":{"a":[1.5,{"y":null}],"z":1.0,"url":"https://x/b","k":"StartUpgrade"}}]'
    again = http.post(path, content=reordered, headers=headers).json()["result"]
    assert again == {"accepted": 0, "duplicates": 1}
