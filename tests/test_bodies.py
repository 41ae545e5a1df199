"""Request bodies, on every write route and both content types (README, "Request bodies"):
every way a body can fail to decode is a 400/1001 in the envelope saying what and where; one
depth limit on every path; a key repeated in one object is refused, naming it; gzip is taken,
bounded by ``max_body_bytes`` once inflated; and a refused request stores nothing."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from connector_telemetry.service.body import MAX_DEPTH
from support import Tenant, assert_error

SNAPSHOT = (
    b'"t":1700000000,"v":"1","count_reclaim_failures":0,"count_reclaimed_paths":0,'
    b'"count_record_failed":0,"count_transmit_failures":0'
)


@dataclass(frozen=True)
class Write:
    """A write route, with a body holding one value ``@`` where the route keeps (or checks)
    whatever JSON it is given, and what it answers a good body with."""

    method: str
    path: str  # under the connector ("" is the connectors collection)
    content_type: str
    template: bytes
    good: bytes  # a value for ``@`` that the route accepts
    where: str  # how messages name ``@``
    levels_above: int  # arrays and objects around ``@`` within the item

    def body(self, value: bytes) -> bytes:
        return self.template.replace(b"@", value)


WRITES = {
    "events": Write(
        "POST",
        "/telemetry/events",
        "application/json",
        b'[{"e":{"k":"Init","x":@},"t":1700000000,"n":0}]',
        b'"ok"',
        "events[0].e.x",
        2,
    ),
    "events-ndjson": Write(
        "POST",
        "/telemetry/events",
        "application/x-ndjson",
        b'{"e":{"k":"Init"},"t":1700000000,"n":0}\n{"e":{"k":"Init","x":@},"t":1700000000,"n":1}\n',
        b'"ok"',
        "events[1].e.x",
        2,
    ),
    "snapshots": Write(
        "POST",
        "/telemetry/snapshots",
        "application/json",
        b"[{" + SNAPSHOT + b',"x":@}]',
        b'"ok"',
        "snapshots[0].x",
        1,
    ),
    "snapshots-ndjson": Write(
        "POST",
        "/telemetry/snapshots",
        "application/x-ndjson",
        b"{" + SNAPSHOT + b',"x":@}\n',
        b'"ok"',
        "snapshots[0].x",
        1,
    ),
    "connectors.create": Write(
        "POST", "", "application/json", b'{"device":{"id":"d1"},"notes":@}', b'"ok"', "notes", 1
    ),
    "connectors.update": Write("PUT", "/", "application/json", b'{"notes":@}', b'"ok"', "notes", 1),
    "connectors.edit": Write("PATCH", "/", "application/json", b'{"notes":@}', b'"ok"', "notes", 1),
    "interrupts.create": Write(
        "POST",
        "/interrupts",
        "application/json",
        b'{"reboot":{"purge":@}}',
        b"true",
        "reboot.purge",
        2,
    ),
}


def nested(depth: int) -> bytes:
    """A value of ``depth`` levels of arrays and objects."""
    half = depth // 2
    return b'{"a":[' * half + b"[]" * (depth % 2) + b"]}" * half


def send(
    http: httpx.Client,
    tenant: Tenant,
    connector_id: str,
    write: Write,
    content: bytes,
    **headers: str,
) -> httpx.Response:
    path = f"/accounts/{tenant.account_id}/magic/connectors"
    if write.path:
        path += "/" + connector_id + write.path.rstrip("/")
    return http.request(
        write.method,
        path,
        content=content,
        headers={**tenant.write, "Content-Type": write.content_type, **headers},
    )


def assert_nothing_stored(http: httpx.Client, tenant: Tenant, connector_id: str) -> None:
    base = f"/accounts/{tenant.account_id}/magic/connectors"
    one = f"{base}/{connector_id}"
    window = {"from": 0, "to": "inf"}
    for kind in ("events", "snapshots"):
        listed = http.get(f"{one}/telemetry/{kind}", params=window, headers=tenant.read)
        assert listed.json()["result"]["count"] == 0, listed.text
    connectors = http.get(base, headers=tenant.read).json()["result"]
    assert [c["id"] for c in connectors] == [connector_id]
    assert connectors[0]["notes"] == "" and "last_heartbeat" not in connectors[0]
    assert http.get(f"{one}/interrupts", headers=tenant.read).json()["result"] == []


# -- what cannot be decoded: 400/1001, saying what and where ----------------------------

Mangle = Callable[[Write], bytes]
UNDECODABLE: dict[str, tuple[Mangle, str]] = {
    "invalid UTF-8 in a string": (lambda w: w.body(b'"\xff\xfe"'), "not valid UTF-8: byte 0xFF"),
    "invalid UTF-8 in a key": (
        lambda w: w.body(b'{"\xc3":1}'),
        "not valid UTF-8: byte 0xC3",
    ),
    "a raw surrogate": (lambda w: w.body(b'"\xed\xa0\x80"'), "not valid UTF-8: byte 0xED"),
    "an escaped lone surrogate": (lambda w: w.body(b'"\\ud800"'), "no low surrogate"),
    "nested one level too deep": (
        lambda w: w.body(nested(MAX_DEPTH - w.levels_above + 1)),
        f"nested deeper than {MAX_DEPTH} levels",
    ),
    "nested 600 deep": (lambda w: w.body(nested(600)), f"nested deeper than {MAX_DEPTH} levels"),
    "nested 5,000 deep": (lambda w: w.body(nested(5_000)), f"deeper than {MAX_DEPTH} levels"),
    "nested 100,000 deep": (lambda w: w.body(nested(100_000)), f"deeper than {MAX_DEPTH} levels"),
    "a number beyond a double": (lambda w: w.body(b"1e400"), "number out of range"),
    "a 400-digit integer": (lambda w: w.body(b"-" + b"9" * 400), "number out of range"),
    "NaN": (lambda w: w.body(b"NaN"), "NaN and Infinity are not JSON"),
    "-Infinity": (lambda w: w.body(b"-Infinity"), "NaN and Infinity are not JSON"),
    "a repeated key": (lambda w: w.body(b'{"a":1,"a":2}'), "the key 'a' appears more than once"),
    "a repeated key, one of them escaped": (
        lambda w: w.body(b'{"a":1,"\\u0061":2}'),
        "the key 'a' appears more than once",
    ),
    "a repeated key hidden by an escaped colon": (
        lambda w: w.body(b'{"a":1,"a":1,"b":"\\u003a"}'),
        "the key 'a' appears more than once",
    ),
    "truncated": (lambda w: w.body(w.good).rstrip()[:-1], "not valid JSON"),
    "bytes after the value": (lambda w: w.body(w.good).rstrip() + b"}", "not valid JSON"),
    "empty": (lambda w: b" \n", "empty"),
}
WHERE = {  # the cases whose message names the item and field (the others: line and column)
    "nested one level too deep",
    "nested 600 deep",
    "a repeated key",
    "a repeated key, one of them escaped",
    "a repeated key hidden by an escaped colon",
}


def problems_with(response: httpx.Response, what: str, where: str | None) -> str | None:
    """What is wrong with the answer to an undecodable body: it must be a 400/1001 in the
    envelope whose message says ``what`` and where (``where``, else line and column)."""
    try:
        assert_error(response, 400, 1001, what)
    except AssertionError as failed:
        return str(failed)[:300]
    message = response.json()["errors"][0]["message"]
    if where is not None and not message.startswith(where):
        return f"does not start with {where!r}: {message}"
    if where is None and not ("line " in message and "column " in message):
        return f"says no line and column: {message}"
    return None


@pytest.mark.parametrize("write", WRITES)
def test_what_cannot_be_decoded_is_a_400_saying_what_and_where(
    http: httpx.Client, tenant: Tenant, connector_id: str, write: str
) -> None:
    route = WRITES[write]
    problems = {}
    for case, (mangle, what) in UNDECODABLE.items():
        response = send(http, tenant, connector_id, route, mangle(route))
        where = route.where if case in WHERE else None
        problem = problems_with(response, what, "request body" if case == "empty" else where)
        if problem:
            problems[case] = problem
    assert not problems, problems
    assert_nothing_stored(http, tenant, connector_id)


@pytest.mark.parametrize("write", WRITES)
def test_the_depth_limit_is_the_same_on_every_route(
    http: httpx.Client, tenant: Tenant, connector_id: str, write: str
) -> None:
    """Exactly ``MAX_DEPTH`` levels in one item pass the decoding step on every route (the
    fields' own checks then take or refuse the value); one more is refused by it."""
    route = WRITES[write]
    deepest = route.body(nested(MAX_DEPTH - route.levels_above))
    response = send(http, tenant, connector_id, route, deepest)
    if route.path.startswith("/telemetry"):
        assert response.status_code == 200, response.text  # payloads are kept as sent
    else:
        assert_error(response, 400, 1003, route.where)  # a field that takes no array
    too_deep = route.body(nested(MAX_DEPTH - route.levels_above + 1))
    assert_error(send(http, tenant, connector_id, route, too_deep), 400, 1001, "254 levels")


# -- what decodes --------------------------------------------------------------------------


@pytest.mark.parametrize("write", WRITES)
def test_a_byte_order_mark_and_gzip_are_taken(
    http: httpx.Client, tenant: Tenant, connector_id: str, write: str
) -> None:
    route = WRITES[write]
    good = route.body(route.good)
    if write == "interrupts.create":  # one may be pending: the second goes to another action
        second = good.replace(b"reboot", b"restart")
    else:
        second = good.replace(b"d1", b"d2")
    response = send(http, tenant, connector_id, route, b"\xef\xbb\xbf" + good)
    assert response.status_code == 200, response.text
    compressed = gzip.compress(second)
    response = send(http, tenant, connector_id, route, compressed, **{"Content-Encoding": "gzip"})
    if write == "interrupts.create":
        assert_error(response, 409, 1409, "pending")  # decoded, then refused as a second one
    else:
        assert response.status_code == 200, response.text


def test_keys_with_colons_and_escapes_are_not_taken_for_repeated_ones(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    route = WRITES["events"]
    value = b'{"url":"https://h:8443/a","a\\u003ab":"c:d","\\"q\\"":"\\u003a","a:b\\\\":1}'
    response = send(http, tenant, connector_id, route, route.body(value))
    assert response.status_code == 200, response.text
    stored = http.get(
        f"/accounts/{tenant.account_id}/magic/connectors/{connector_id}/telemetry/events/"
        "1700000000.0",
        headers=tenant.read,
    ).json()["result"]
    assert stored["e"]["x"] == {"url": "https://h:8443/a", "a:b": "c:d", '"q"': ":", "a:b\\": 1}


def test_numbers_beyond_64_bits_are_read_as_doubles_on_every_path(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    """Integers are exact from -2**63 to 2**64-1; beyond, they are read as the nearest double,
    whichever path (fast or precise, array or NDJSON) the batch takes."""
    base = f"/accounts/{tenant.account_id}/magic/connectors/{connector_id}/telemetry/events"
    limits = [-(2**63), 2**63 - 1, 2**64 - 1, 2**64, -(2**63) - 1]
    for n, content_type in enumerate(("application/json", "application/x-ndjson")):
        for i, number in enumerate(limits):
            event = b'{"e":{"k":"Init","x":%d},"t":5,"n":%d}' % (number, 10 * n + i)
            sent = http.post(
                base,
                content=event if "ndjson" in content_type else b"[" + event + b"]",
                headers={**tenant.write, "Content-Type": content_type},
            )
            assert sent.status_code == 200, sent.text
            stored = http.get(f"{base}/5.{10 * n + i}", headers=tenant.read).json()["result"]
            exact = -(2**63) <= number < 2**64
            assert stored["e"]["x"] == (number if exact else float(number)), stored
            assert isinstance(stored["e"]["x"], int if exact else float), stored


# -- Content-Encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("write", ["events", "connectors.create"])
def test_a_decompression_bomb_is_refused_with_413(
    http: httpx.Client, tenant: Tenant, connector_id: str, write: str
) -> None:
    route = WRITES[write]
    bomb = gzip.compress(route.body(b'"' + b"0" * (65 << 20) + b'"'), compresslevel=9)
    assert len(bomb) < 100_000
    response = send(http, tenant, connector_id, route, bomb, **{"Content-Encoding": "gzip"})
    assert_error(response, 413, 1413, "once decompressed")
    assert_nothing_stored(http, tenant, connector_id)


@pytest.mark.parametrize(
    ("encoding", "content", "status", "code", "message"),
    [
        ("br", b"\x0b\x02\x80[]\x03", 415, 1415, "Content-Encoding 'br' is not supported"),
        ("gzip, gzip", b"", 415, 1415, "'gzip, gzip'"),
        ("gzip", gzip.compress(b"[]")[:-5], 400, 1001, "truncated"),
        ("gzip", b"[]", 400, 1001, "not valid gzip"),
        ("gzip", gzip.compress(b"[]") + b"junk", 400, 1001, "not valid gzip"),
    ],
)
def test_content_encodings_refused(
    http: httpx.Client,
    tenant: Tenant,
    connector_id: str,
    encoding: str,
    content: bytes,
    status: int,
    code: int,
    message: str,
) -> None:
    route = WRITES["events"]
    if encoding == "gzip, gzip":
        content = gzip.compress(gzip.compress(route.body(route.good)))
    response = send(http, tenant, connector_id, route, content, **{"Content-Encoding": encoding})
    assert_error(response, status, code, message)
    if status == 415:
        assert response.headers["accept-encoding"] == "gzip"


def test_gzip_members_are_read_one_after_the_other(
    http: httpx.Client, tenant: Tenant, connector_id: str
) -> None:
    route = WRITES["events-ndjson"]
    body = route.body(route.good)
    half = body.index(b"\n") + 1
    content = gzip.compress(body[:half]) + gzip.compress(body[half:])
    response = send(http, tenant, connector_id, route, content, **{"Content-Encoding": "x-gzip"})
    assert response.json()["result"] == {"accepted": 2, "duplicates": 0}, response.text
