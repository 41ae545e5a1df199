"""Event ids and query numbers in every form the Python, Go and JS SDKs write."""

from __future__ import annotations

import math

import pytest

from connector_telemetry.numbers import event_key_candidates, parse_query_number, wire


@pytest.mark.parametrize(
    ("segment", "first"),
    [
        ("1700000000.3", (1700000000.0, 3.0)),  # Python ints, JS
        ("1700000000.0.3.0", (1700000000.0, 3.0)),  # Python floats (after a round trip)
        ("1700000000.5.3", (1700000000.5, 3.0)),  # whole n preferred over (1700000000, 5.3)
        ("1700000000.5.3.0", (1700000000.5, 3.0)),
        ("1.7e+09.3", (1.7e9, 3.0)),  # Go %v
        ("1.7000000005e+09.3", (1700000000.5, 3.0)),
        ("1e+16.2", (1e16, 2.0)),
        ("0.0", (0.0, 0.0)),
        ("0.0.0", (0.0, 0.0)),
        ("1.25e-07.1e-05", (1.25e-07, 1e-05)),
        ("1.25e-7.0.00001", (1.25e-07, 1e-05)),  # JS
        ("1700000000.1234567.7", (1700000000.1234567, 7.0)),
    ],
)
def test_event_key_forms(segment: str, first: tuple[float, float]) -> None:
    assert event_key_candidates(segment)[0] == first


def test_ambiguous_forms_list_every_reading() -> None:
    assert event_key_candidates("1700000000.3.0") == [(1700000000.0, 3.0), (1700000000.3, 0.0)]
    assert event_key_candidates("1700000000.5.3") == [(1700000000.5, 3.0), (1700000000.0, 5.3)]


@pytest.mark.parametrize("segment", ["null.1", "false.true", "abc", "1700000000", ".", "", "1.x"])
def test_non_numeric_ids_have_no_reading(segment: str) -> None:
    assert event_key_candidates(segment) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0.0),
        ("-5", -5.0),
        ("1700000000.5", 1700000000.5),
        ("10000000000.0", 1e10),
        ("1e+16", 1e16),
        ("1e-07", 1e-07),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("10.0", 10.0),
    ],
)
def test_query_numbers(text: str, value: float) -> None:
    assert parse_query_number(text) == value


@pytest.mark.parametrize("text", ["", "abc", "nan", "1,5", "0x10", "1e"])
def test_bad_query_numbers(text: str) -> None:
    assert parse_query_number(text) is None


def test_wire_writes_whole_numbers_as_integers() -> None:
    assert wire(3.0) == 3 and isinstance(wire(3.0), int)
    assert wire(1e16) == 10**16 and isinstance(wire(1e16), int)
    assert wire(0.5) == 0.5
    assert isinstance(wire(1e300), float)
