"""Byte-level fuzzing of every write route, on each store: valid bodies of every write route
(events and snapshots as a JSON array and as NDJSON, connectors create/update/edit,
interrupts) with their bytes mutated: bit flips, invalid UTF-8 and NUL inserted, nesting
around the depth limit and far beyond it, repeated keys, huge and tiny numbers, truncation
at every position of a short body, wrong and missing content types, gzip (valid, broken,
a bomb) and unknown encodings.

Every answer must be a 2xx, or a 4xx in Cloudflare's envelope; never a 5xx, never a dropped
connection (and the server's log must show no 500: conftest fails any test whose servers
logged one). At the end the store must hold exactly what the 2xx answers acknowledged:
the events and snapshots of every accepted body (decoded here independently, by the rules
the README states), nothing of a refused one; the connectors created, the last state of the
edited one, the interrupts created.

Sizes (cases per store): CI 3,000; ``CTEL_FULL=1`` 100,000. Cases are derandomized (seeded).
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
import pytest

from connector_telemetry.service.body import MAX_DEPTH
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from support import (
    STORES,
    LiveServer,
    Tenant,
    create_connector,
    fresh_db,
    start_server,
    stop_server,
)
from support.reliability import report, size

pytestmark = pytest.mark.slow

CASES = size(3_000, 100_000)
SECONDS = size(240, 7_200)  # a bound, not a target
JSON_TYPE, NDJSON_TYPE = "application/json", "application/x-ndjson"
SNAPSHOT_FIELDS = (
    b'"v":"1","count_reclaim_failures":0,"count_reclaimed_paths":0,'
    b'"count_record_failed":0,"count_transmit_failures":0'
)
# What a mutation inserts: invalid UTF-8, NUL, escapes, tokens that are not JSON, structure.
INSERTS = [
    *(b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\x7f"),
    *(b"\\u0000", b"\\ud800", b"\\udc00", b"\\u003a", b"\\", b'"', b"\xef\xbb\xbf"),
    *(b"NaN", b"-Infinity", b"1e400", b"18446744073709551616", b"-0", b"01", b".5", b"1."),
    *(b"[", b"]", b"{", b"}", b",", b":", b" ", b"\n", b"\r", b"\t", b"\x0c", b"null"),
]
NUMBERS = [
    *(b"1e400", b"-1e400", b"1e-400", b"-0", b"0.1", b"5e-324", b"1.7976931348623157e308"),
    *(b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809"),
    *(b"9" * 400, b"-" + b"9" * 30, b"1" + b"0" * 5000),
]
DEPTHS = [1, 2, MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 600]
DEPTHS += [1023, 1024, 1025, 5_000, 100_000]
REPEATED = [b'{"a":1,"a":2}', b'{"a":1,"\\u0061":1}', b'[{"b":1,"b":1,"c":"\\u003a"}]']
CONTENT_TYPES = [
    *("text/plain", "application/xml", JSON_TYPE, NDJSON_TYPE, "application/x+json"),
    *("application/json; charset=utf-8", "", "APPLICATION/JSON", "multipart/form-data"),
]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str  # under the connector ("" is the connectors collection)
    content_type: str

    def url(self, tenant: Tenant, connector_id: str) -> str:
        base = f"/accounts/{tenant.account_id}/magic/connectors"
        return base + (f"/{connector_id}{self.path}" if self.path != "" else "")


ROUTES = [
    Route("events", "POST", "/telemetry/events", JSON_TYPE),
    Route("events-ndjson", "POST", "/telemetry/events", NDJSON_TYPE),
    Route("snapshots", "POST", "/telemetry/snapshots", JSON_TYPE),
    Route("snapshots-ndjson", "POST", "/telemetry/snapshots", NDJSON_TYPE),
    Route("connectors.create", "POST", "", JSON_TYPE),
    Route("connectors.update", "PUT", "/", JSON_TYPE),
    Route("connectors.edit", "PATCH", "/", JSON_TYPE),
    Route("interrupts.create", "POST", "/interrupts", JSON_TYPE),
]


def nested(depth: int) -> bytes:
    half = depth // 2
    return b'{"a":[' * half + b"[]" * (depth % 2) + b"]}" * half


def hole_value(rng: random.Random, route: Route) -> bytes:
    """Something for the one place of each body that takes (or checks) any JSON value:
    often what the route takes there, else numbers, nesting, repeated keys, text."""
    pick = rng.random()
    if pick < 0.4:
        if route.name == "interrupts.create":
            return rng.choice([b"true", b"false"])
        return rng.choice([b'"ok"', b'"https://h:8443/x"', b'"\\u003a\\u00e9"', b'"\xc3\xa9"'])
    if pick < 0.55:
        return rng.choice(NUMBERS)
    if pick < 0.75:
        return nested(rng.choice(DEPTHS))
    if pick < 0.85:
        return rng.choice(REPEATED)
    text = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(8)))
    return json.dumps(text, ensure_ascii=rng.random() < 0.5).encode()


def valid_body(route: Route, case: int, rng: random.Random, value: bytes) -> bytes:
    """A body of ``route`` with ``value`` in its open place; keys unique to ``case``."""
    t = 1_000_000 + case
    if route.name.startswith("events"):
        events = [
            b'{"e":{"k":"Init","x":%s},"t":%d,"n":0,"v":"1"}' % (value, t),
            b'{"e":{"k":"StartUpgrade","url":"https://u:1/b"},"t":%d,"n":1}' % t,
            b'{"t":%d.25,"e":{"k":"Leave"}}' % (t + 2_000_000),  # numbered by the server
        ][: rng.randrange(1, 4)]
        if route.content_type == NDJSON_TYPE:
            return b"\n".join(events) + b"\n" * rng.randrange(2)
        return b"[" + b",".join(events) + b"]"
    if route.name.startswith("snapshots"):
        snaps = [b'{"t":%d,%s,"x":%s}' % (t, SNAPSHOT_FIELDS, value)]
        snaps.append(b'{"t":%d.5,%s,"disks":[{"name":"sda"}]}' % (t, SNAPSHOT_FIELDS))
        snaps = snaps[: rng.randrange(1, 3)]
        if route.content_type == NDJSON_TYPE:
            return b"\n".join(snaps)
        return b"[" + b",".join(snaps) + b"]"
    if route.name == "connectors.create":
        return b'{"device":{"id":"fz-%d"},"notes":%s,"activated":true}' % (case, value)
    if route.name.startswith("connectors"):
        return b'{"notes":%s,"interrupt_window_hour_of_day":%d}' % (value, case % 24)
    return b'{"%s":{"purge":%s}}' % (rng.choice([b"reboot", b"restart", b"shutdown"]), value)


def mutate(rng: random.Random, body: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        at = rng.randrange(len(body) + 1)
        action = rng.random()
        if action < 0.35 and body:
            at = min(at, len(body) - 1)
            body = body[:at] + bytes([body[at] ^ (1 << rng.randrange(8))]) + body[at + 1 :]
        elif action < 0.7:
            body = body[:at] + rng.choice(INSERTS) + body[at:]
        elif action < 0.85:
            body = body[:at]
        else:  # repeat a slice: a key and its value twice, among others
            end = rng.randrange(at, len(body) + 1)
            body = body[:end] + body[at:end] + body[end:]
    return body


def encoded(rng: random.Random, body: bytes) -> tuple[bytes, dict[str, str]]:
    pick = rng.random()
    if pick < 0.5:
        return gzip.compress(body, 1), {"Content-Encoding": "gzip"}
    if pick < 0.65:
        packed = gzip.compress(body, 1)
        return packed[: rng.randrange(len(packed))], {"Content-Encoding": "gzip"}
    if pick < 0.75:
        packed = bytearray(gzip.compress(body, 1))
        packed[rng.randrange(len(packed))] ^= 0xFF
        return bytes(packed), {"Content-Encoding": "x-gzip"}
    if pick < 0.8:
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    if pick < 0.82:  # a bomb: 64 MiB and more once inflated
        return bomb(), {"Content-Encoding": "gzip"}
    return body, {"Content-Encoding": rng.choice(["br", "identity", "GZIP", "gzip, identity", ""])}


@cache
def bomb() -> bytes:
    """~65 KB that inflate to over 64 MiB (``max_body_bytes``)."""
    return gzip.compress(b"[" + b" " * (65 << 20) + b"]", 9)


def case_request(route: Route, case: int, rng: random.Random) -> tuple[bytes, dict[str, str]]:
    body = valid_body(route, case, rng, hole_value(rng, route))
    headers = {"Content-Type": route.content_type}
    pick = rng.random()
    if pick < 0.45:
        body = mutate(rng, body)
    elif pick < 0.55:
        body = b"\xef\xbb\xbf" + body
    elif pick < 0.65:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
        if rng.random() < 0.3:
            del headers["Content-Type"]
    elif pick < 0.8:
        body, extra = encoded(rng, mutate(rng, body) if rng.random() < 0.3 else body)
        headers.update(extra)
    return body, headers


def truncations() -> Iterator[tuple[Route, bytes]]:
    """Every prefix of a short body of every route."""
    for route in ROUTES:
        value = b"true" if route.name == "interrupts.create" else b'"ok"'
        short = valid_body(route, 0, random.Random(0), value)
        for end in range(len(short)):
            yield route, short[:end]


# -- the rules the README states, applied here on our own -----------------------------------


class Refused(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise Refused("repeated key")
    return dict(pairs)


def _int(text: str) -> int | float:
    number = int(text)
    if -(2**63) <= number < 2**64:
        return number
    try:
        return float(number)
    except OverflowError:
        raise Refused("number out of range") from None


def _float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise Refused("number out of range")
    return number


def _not_json(constant: str) -> Any:
    raise Refused(f"{constant} is not JSON")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack += [(v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def reference_decode(body: bytes, headers: dict[str, str], content_type: str) -> list[Any]:
    """The items (or the one document) of a body the server accepted, by the stated rules."""
    if headers.get("Content-Encoding", "").strip().lower() in ("gzip", "x-gzip"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise Refused(f"not gzip: {exc}") from None
    body = body.removeprefix(b"\xef\xbb\xbf")
    lines = [body] if content_type != NDJSON_TYPE else [x for x in body.splitlines() if x.strip()]
    try:
        docs = [
            json.loads(
                line.decode("utf-8"),
                object_pairs_hook=_pairs,
                parse_int=_int,
                parse_float=_float,
                parse_constant=_not_json,
            )
            for line in lines
        ]
        json.dumps(docs, ensure_ascii=False).encode("utf-8")  # lone surrogates
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise Refused(str(exc)) from None
    items = docs if content_type == NDJSON_TYPE else docs[0]
    if content_type in (JSON_TYPE, NDJSON_TYPE) and isinstance(items, list):
        for item in items:
            if _depth(item) > MAX_DEPTH:
                raise Refused("too deep")
    elif _depth(items) > MAX_DEPTH:
        raise Refused("too deep")
    return items  # type: ignore[no-any-return]


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Expected:
    """What the 2xx answers acknowledged."""

    events: dict[tuple[float, float], Any] = field(default_factory=dict)
    numbered: dict[float, list[Any]] = field(default_factory=dict)  # sent without n, by t
    snapshots: dict[float, Any] = field(default_factory=dict)
    connectors: set[str] = field(default_factory=set)
    edited: dict[str, Any] | None = None
    interrupts: set[str] = field(default_factory=set)


@dataclass
class Fuzz:
    server: LiveServer
    tenant: Tenant
    ingest: str  # connector ids
    edit: str
    interrupts: str
    device_key: str
    expected: Expected = field(default_factory=Expected)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: dict[str, str] = field(default_factory=dict)

    def problem(self, kind: str, example: str) -> None:
        if kind not in self.problems and len(self.problems) < 30:
            self.problems[kind] = example[:800]


def envelope_problem(response: httpx.Response) -> str | None:
    status = response.status_code
    if status >= 500 or status < 200 or 300 <= status < 400:
        return f"HTTP {status}"
    if response.headers.get("content-type") != "application/json":
        return f"HTTP {status}: Content-Type {response.headers.get('content-type')!r}"
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {status}: not JSON"
    if not isinstance(body, dict) or set(body) != {"result", "success", "errors", "messages"}:
        return f"HTTP {status}: not the envelope"
    if body["success"] is not (status < 300):
        return f"HTTP {status} with success={body['success']!r}"
    errors = body["errors"]
    if status >= 400 and not (
        body["result"] is None
        and errors
        and all(type(e.get("code")) is int and e.get("message") for e in errors)
    ):
        return f"HTTP {status}: malformed errors {errors!r}"
    return None


def acknowledge(
    fuzz: Fuzz, route: Route, body: bytes, headers: dict[str, str], result: Any
) -> None:
    content_type = headers.get("Content-Type", JSON_TYPE).split(";")[0].strip().lower()
    try:
        items = reference_decode(body, headers, content_type or JSON_TYPE)
    except Refused as exc:
        fuzz.problem(f"accepted a body the stated rules refuse ({exc})", repr(body[:300]))
        return
    expected = fuzz.expected
    if route.path.startswith("/telemetry"):
        counts = {"accepted": result["accepted"], "duplicates": len(items) - result["accepted"]}
        if result != counts:
            fuzz.problem("counts do not add up", f"{result} for {len(items)} items")
    if route.name.startswith("events"):
        for item in items:
            t = float(item["t"])
            content = {"e": item["e"], "v": item.get("v")}
            if item.get("n") is None:
                expected.numbered.setdefault(t, []).append(content)
                continue
            key = (t, float(item["n"]))
            if expected.events.setdefault(key, content) != content:
                fuzz.problem("the same key acknowledged with other content", repr(body[:300]))
    elif route.name.startswith("snapshots"):
        for item in items:
            t = float(item["t"])
            content = {k: v for k, v in item.items() if k != "t"}
            if expected.snapshots.setdefault(t, content) != content:
                fuzz.problem(
                    "the same snapshot t acknowledged with other content", repr(body[:300])
                )
    elif route.name == "connectors.create":
        expected.connectors.add(result["id"])
    elif route.name.startswith("connectors"):
        expected.edited = {k: v for k, v in result.items() if k != "license_key"}
    else:
        expected.interrupts.add(result["id"])


def send(
    fuzz: Fuzz, http: httpx.Client, route: Route, body: bytes, headers: dict[str, str]
) -> None:
    target = {
        "events": fuzz.ingest,
        "snapshots": fuzz.ingest,
        "connectors": fuzz.edit,
        "interrupts": fuzz.interrupts,
    }[route.name.split("-")[0].split(".")[0]]
    try:
        response = http.request(
            route.method, route.url(fuzz.tenant, target), content=body, headers=headers
        )
    except httpx.TransportError as exc:
        fuzz.problem(f"dropped connection: {type(exc).__name__}", f"{route.name} {body[:300]!r}")
        return
    fuzz.statuses[response.status_code] += 1
    found = envelope_problem(response)
    if found:
        fuzz.problem(found, f"{route.name} {headers} {body[:300]!r} -> {response.text[:300]}")
    elif response.status_code < 300:
        acknowledge(fuzz, route, body, headers, response.json()["result"])
        if route.name == "interrupts.create":  # the connector checks in: the next may pend
            http.get(
                route.url(fuzz.tenant, target),
                headers={"Authorization": f"Bearer {fuzz.device_key}"},
            ).raise_for_status()


def check_store(fuzz: Fuzz) -> None:
    """The store holds exactly what the 2xx answers acknowledged."""
    tenant, expected = fuzz.tenant, fuzz.expected
    store = open_store(Settings(db=str(fuzz.server.db)))
    try:
        found: dict[tuple[float, float], Any] = {}
        after = None
        while True:
            page = store.list_events(tenant.account_id, fuzz.ingest, 0, math.inf, None, after, 1000)
            for meta in page:
                doc = store.get_event(tenant.account_id, fuzz.ingest, [(meta.t, meta.n)])
                assert doc is not None
                found[(meta.t, meta.n)] = json.loads(doc)
            if len(page) < 1000:
                break
            after = (page[-1].t, page[-1].n)
        for key, content in expected.events.items():
            stored = found.pop(key, None)
            assert stored is not None, f"acknowledged event {key} is not stored"
            assert {"e": stored["e"], "v": stored.get("v")} == content, (key, stored, content)
        others: dict[float, list[Any]] = {}
        for (t, _), stored in found.items():
            others.setdefault(t, []).append({"e": stored["e"], "v": stored.get("v")})
        for t in set(others) | set(expected.numbered):
            numbered_here(t, others.get(t, []), expected)
        snaps = store.list_snapshots(tenant.account_id, fuzz.ingest, 0, math.inf, None, 10**6)
        assert {t for _, t in snaps} == set(expected.snapshots)
        for t, content in expected.snapshots.items():
            doc = json.loads(store.get_snapshot(tenant.account_id, fuzz.ingest, t) or b"{}")
            assert {k: v for k, v in doc.items() if k not in ("t", "a")} == content, t
        interrupts = store.list_interrupts(tenant.account_id, fuzz.interrupts)
        assert {str(i.id) for i in interrupts} == expected.interrupts
    finally:
        store.close()
    http = httpx.Client(base_url=fuzz.server.api, headers=tenant.read, timeout=60)
    with http:
        connectors = http.get(f"/accounts/{tenant.account_id}/magic/connectors").json()["result"]
        ours = {fuzz.ingest, fuzz.edit, fuzz.interrupts}
        assert {c["id"] for c in connectors} == ours | expected.connectors
        edited = next(c for c in connectors if c["id"] == fuzz.edit)
        if expected.edited is not None:
            assert edited == expected.edited


def numbered_here(t: float, stored: list[Any], expected: Expected) -> None:
    """The events stored at ``t`` beyond those acknowledged with their ``n`` are exactly the
    ones acknowledged without ``n`` (each a new event), less any that a later batch sent
    again with the number the server had given it (acknowledged as a duplicate)."""
    sent = list(expected.numbered.get(t, []))
    for content in stored:
        assert content in sent, f"an event at t={t} stored but never acknowledged: {content}"
        sent.remove(content)
    explicit = [c for (key_t, _), c in expected.events.items() if key_t == t]
    assert all(content in explicit for content in sent), f"acknowledged events at t={t} lost"


@pytest.mark.parametrize("store_name", STORES)
def test_byte_fuzz(
    store_name: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path_factory.mktemp(f"byte-fuzz-{store_name}")
    url = None
    if store_name == "postgres":
        url = request.getfixturevalue("postgres_server").new_database("ctel_byte_fuzz")
    db, tenant = fresh_db(folder, url)
    server = start_server(db, workers=1, log_path=folder / "ctel.log")
    started = time.monotonic()
    sent = 0
    try:
        api = server.api
        irq = httpx.post(
            f"{api}/accounts/{tenant.account_id}/magic/connectors",
            json={"device": {"provision_license": True}},
            headers=tenant.write,
            timeout=30,
        ).json()["result"]
        fuzz = Fuzz(
            server,
            tenant,
            create_connector(api, tenant)["id"],
            create_connector(api, tenant)["id"],
            irq["id"],
            irq["license_key"],
        )
        rng = random.Random(f"byte-fuzz-{store_name}")
        deadline = started + SECONDS
        with httpx.Client(base_url=api, headers=tenant.write, timeout=120) as http:
            for route, body in truncations():
                send(fuzz, http, route, body, {"Content-Type": route.content_type})
                sent += 1
            while sent < CASES and time.monotonic() < deadline:
                route = rng.choice(ROUTES)
                body, headers = case_request(route, sent, rng)
                send(fuzz, http, route, body, headers)
                sent += 1
        assert server.process.poll() is None, "the server died"
        assert not fuzz.problems, f"{len(fuzz.problems)} distinct problem(s):\n\n" + "\n\n".join(
            f"{kind}\n    {example}" for kind, example in fuzz.problems.items()
        )
        check_store(fuzz)
    finally:
        stop_server(server)
    elapsed = time.monotonic() - started
    report(
        request.config,
        f"byte fuzz ({store_name}): {sent} requests over {len(ROUTES)} write routes in "
        f"{elapsed:.1f} s ({sent / elapsed:.0f}/s); "
        f"statuses {dict(sorted(fuzz.statuses.items()))}; "
        f"acknowledged {len(fuzz.expected.events) + sum(map(len, fuzz.expected.numbered.values()))}"
        " events, "
        f"{len(fuzz.expected.snapshots)} snapshots, {len(fuzz.expected.connectors)} connectors, "
        f"{len(fuzz.expected.interrupts)} interrupts",
    )
    assert sent >= min(CASES, 1_000), f"only {sent} cases in {SECONDS} s"
