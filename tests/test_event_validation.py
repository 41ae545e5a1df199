"""The events fast path (msgspec, in C) never accepts what the precise checks refuse, stores
the same bytes when it accepts, and is the path real batches take; and this test would catch
a fast path that did otherwise (mutants of it, at the end)."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from functools import cache
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connector_telemetry.errors import ApiError
from connector_telemetry.service import events
from connector_telemetry.simulate import SimConfig, generate_fleet

JSON = "application/json"
Outcome = tuple[str, Any]  # ("ok", what was accepted) or ("refused", the message)


@cache
def _fleet_events() -> tuple[dict[str, Any], ...]:
    fleet = generate_fleet(SimConfig(start=1.7e9, connectors=2, days=7, seed=3, interval=300))
    return tuple(event for sim in fleet for event in sim.timeline.events)


def accepted(found: list[Any]) -> list[tuple[Any, ...]]:
    return [(ev.index, ev.t, ev.n, ev.k, msgspec.json.encode(ev.e), ev.v, ev.doc) for ev in found]


def outcome(parse: Callable[[], list[Any] | None]) -> Outcome | None:
    """What a parse did; anything but a result or an ``ApiError`` (a 500) propagates."""
    try:
        found = parse()
    except ApiError as exc:
        return "refused", exc.message
    return None if found is None else ("ok", accepted(found))


def check(body: bytes, fast_batch: Callable[[bytes, int], list[Any] | None]) -> None:
    """The property, for one body: what the fast path accepts, the precise checks accept,
    the same way; what it refuses, they refuse."""
    fast = outcome(lambda: fast_batch(body, 10_000))
    if fast is None:
        return  # not for the fast path
    precise = outcome(lambda: events._precise_batch(body, JSON, 10_000))
    if fast[0] == "refused":
        assert precise is not None and precise[0] == "refused", (body, fast, precise)
    else:
        assert precise == fast, (body, fast, precise)


def test_real_batches_take_the_fast_path_and_store_the_same_bytes() -> None:
    batch = list(_fleet_events())
    assert len(batch) > 100 and any("url" in ev["e"] for ev in batch)  # colons in strings
    body = orjson.dumps(batch)
    fast = events._fast_batch(body, 10_000)
    assert fast is not None
    assert accepted(fast) == accepted(events._precise_batch(body, JSON, 10_000))


# -- bodies: events built from parts (some wrong), then bytes mutated ----------------------


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


SCALARS = st.one_of(
    st.sampled_from([None, True, False, 0, -0.0, 1.5, 1e300, 5e-324, 2.0**64, 2**63, 2**64]),
    st.sampled_from([-(2**63), -(2**63) - 1, 2**64 - 1, 2**70]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.sampled_from(["https://h:8443/b", "a\x00b", "\ud7ff", '"q":', "\\u003a", "é"]),
)
VALUES = st.one_of(
    SCALARS,
    st.sampled_from([[], {}, [1, [2.5]], {"a": {"b": [None]}}, {"k": "Init"}, deep(252)]),
    st.sampled_from([deep(253), deep(300)]),
)
KEYS = st.sampled_from(["x", "url", "tunnel_id", "k", "a:b", "k\u0000", "é"])
KINDS = st.sampled_from([*events.KINDS[:3], "StartUpgrade", "RekeyStart"])
GOOD_TIMES = st.integers(0, 2**64 + 5) | st.floats(min_value=0, allow_infinity=False)
BAD_TIMES = st.sampled_from([-1, -0.5, "1", True, 1e400, [1], None])
GOOD_TEXTS = st.sampled_from(["2026.1", "", "é:", "\\"])
BAD_TEXTS = st.sampled_from(["a\x00b", 5, ["x"], None])
dump = msgspec.json.encode  # writes integers of any size, as a client may


def raw_object(pairs: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from pairs as given: keys may repeat."""
    return b"{" + b",".join(dump(k) + b":" + v for k, v in pairs) + b"}"


FLAWS = ("kind", "required", "payload", "t", "n", "v", "extra", "again")


@st.composite
def event_bytes(draw: st.DrawFn, flaw: str | None) -> bytes:
    """One event, right but for ``flaw`` (which may happen to be right too)."""
    kind = draw(st.sampled_from(["Nope", "", None]) if flaw == "kind" else KINDS)
    payload = [("k", dump(kind))]
    for name in events.REQUIRED_PAYLOAD.get(kind, ()) if isinstance(kind, str) else ():
        if flaw != "required" or draw(st.booleans()):
            value = draw(SCALARS if flaw == "required" else st.text(max_size=3))
            payload.append((name, dump(value)))
    for _ in range(draw(st.integers(1, 2)) if flaw == "payload" else 0):
        payload.append((draw(KEYS), dump(draw(VALUES))))
    if draw(st.booleans()):
        payload.reverse()
    fields = [("e", raw_object(payload))]
    fields.append(("t", dump(draw(BAD_TIMES if flaw == "t" else GOOD_TIMES))))
    if flaw == "n" or draw(st.booleans()):
        fields.append(("n", dump(draw(BAD_TIMES if flaw == "n" else GOOD_TIMES))))
    if flaw == "v" or draw(st.booleans()):
        fields.append(("v", dump(draw(BAD_TEXTS if flaw == "v" else GOOD_TEXTS))))
    if flaw == "extra":
        fields.append((draw(st.sampled_from(["a", "x", "E"])), dump(draw(VALUES))))
    if flaw == "again":
        fields.append((draw(st.sampled_from(["e", "t", "n", "v"])), b"1"))
    return raw_object(draw(st.permutations(fields)))


INSERTS = st.sampled_from(
    [
        *(b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\x7f", b"\\u0000", b"\\ud800"),
        *(b"NaN", b"-Infinity", b"1e400", b"18446744073709551616", b"-0", b"01", b"1.", b".5"),
        *(b"[", b"]", b"{", b"}", b",", b":", b'"', b" ", b"\t", b"\x0c", b"\xef\xbb\xbf", b"\\"),
    ]
)


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 2))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["flip", "insert", "cut", "repeat"]))
        if action == "flip" and at < len(body):
            body = body[:at] + bytes([body[at] ^ (1 << draw(st.integers(0, 7)))]) + body[at + 1 :]
        elif action == "insert":
            body = body[:at] + draw(INSERTS) + body[at:]
        elif action == "cut":
            body = body[:at]
        else:
            end = draw(st.integers(at, len(body)))
            body = body[:end] + body[at:end] + body[end:]
    return body


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    """Real events around one made here, flawed in one respect or in its bytes (or not)."""
    real = draw(st.lists(st.sampled_from(_fleet_events()[:50]), max_size=2, unique_by=id))
    items = [orjson.dumps(event) for event in real]
    flaw = draw(st.sampled_from([None, *FLAWS, "bytes"]))
    made = draw(event_bytes(None if flaw == "bytes" else flaw))
    items.insert(draw(st.integers(0, len(items))), made)
    body = b"[" + b",".join(items) + b"]"
    return draw(mutated(body)) if flaw == "bytes" else body


PROPERTY = settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(body=batches())
def test_fast_path_never_accepts_what_the_precise_checks_refuse(body: bytes) -> None:
    check(body, events._fast_batch)


# -- mutants: each a plausible slip in the fast path, each caught by the property ------------

_SOURCE = textwrap.dedent(inspect.getsource(events._fast_batch))
MUTANTS = {
    "NUL in v not refused": ('if "\\x00" in v:', "if False:"),
    "repeated keys not looked for": ("if not body_rules.unique_keys(body, pairs):", "if False:"),
    "negative n taken": ("if not 0 <= n < _INF:", "if not n < _INF:"),
    "unknown kinds taken": ("kind not in _KIND_SET or ", ""),
    "a missing url taken": ("if kind in required and any(", "if False and any("),
    "nested payloads taken (the fast path as shipped before)": ("", ""),
}


def mutant(name: str) -> Callable[[bytes, int], list[Any] | None]:
    old, new = MUTANTS[name]
    namespace = dict(vars(events))
    if old:
        assert _SOURCE.count(old) == 1, f"the mutated line is gone from _fast_batch: {old}"
        exec(_SOURCE.replace(old, new), namespace)
    else:

        class Loose(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
            e: dict[str, Any]
            t: float
            n: float | None = None
            v: str | None = None

        namespace["_DECODE_BATCH"] = msgspec.json.Decoder(list[Loose])
        exec(_SOURCE, namespace)
    return namespace["_fast_batch"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", MUTANTS)
def test_the_property_catches_a_mutant_fast_path(name: str) -> None:
    broken = mutant(name)

    @settings(PROPERTY, phases=[Phase.generate])  # no shrinking: a failure is all it takes
    @given(body=batches())
    def property_on_the_mutant(body: bytes) -> None:
        check(body, broken)

    with pytest.raises(AssertionError):
        property_on_the_mutant()
