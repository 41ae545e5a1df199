"""The snapshot fast path (msgspec, in C) never accepts what the precise checks refuse,
stores the same bytes when it accepts, and is the path real snapshots take."""

from __future__ import annotations

import copy
import typing
from functools import cache
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connector_telemetry.errors import ApiError
from connector_telemetry.service import snapshots
from connector_telemetry.service.snapshot_schema import SCHEMA
from connector_telemetry.simulate import SimConfig, generate_fleet


@cache
def _fleet_snapshots() -> tuple[dict[str, Any], ...]:
    fleet = generate_fleet(SimConfig(start=1.7e9, connectors=2, days=0.1, seed=3, interval=300))
    return tuple(snap for sim in fleet for snap in sim.snapshots())


def simulated(count: int) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_fleet_snapshots()[:count]))


def precise(items: list[dict[str, Any]]) -> list[bytes] | str:
    try:
        return [snapshots.check_snapshot(i, item).doc for i, item in enumerate(items)]
    except ApiError as exc:
        return exc.message


def test_real_snapshots_take_the_fast_path_and_store_the_same_bytes() -> None:
    items = simulated(50)
    assert len(items) == 50
    fast = snapshots._fast_batch(copy.deepcopy(items))
    assert fast is not None
    assert [s.doc for s in fast] == precise(copy.deepcopy(items))


INTEGERS = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON decoders take
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    INTEGERS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.lists(INTEGERS, max_size=2),
    st.dictionaries(st.sampled_from(["name", "status", "x"]), st.text(max_size=3), max_size=2),
    st.lists(
        st.dictionaries(st.sampled_from(["name", "status", "x"]), st.text(max_size=3)),
        max_size=2,
    ),
)
FIELDS = [*SCHEMA["Snapshot"], "a", "unknown_extra"]
NESTED = [name for name, (kind, _) in SCHEMA["Snapshot"].items() if isinstance(kind, tuple)]


@settings(max_examples=400, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=4),
    drop=st.lists(st.sampled_from(FIELDS), max_size=2),
    nested=st.sampled_from(NESTED),
    nested_value=JSON_VALUES,
)
def test_fast_path_never_accepts_what_the_precise_checks_refuse(
    changes: dict[str, Any], drop: list[str], nested: str, nested_value: Any
) -> None:
    base = simulated(1)[0]
    item = {**base, **changes}
    for name in drop:
        item.pop(name, None)
    if isinstance(item.get(nested), list) and item[nested] and isinstance(item[nested][0], dict):
        item[nested] = [{**item[nested][0], "name": nested_value}]
    item = orjson.loads(orjson.dumps(item))  # as the body would decode
    fast = snapshots._fast_batch([copy.deepcopy(item)])
    if fast is not None:
        assert [s.doc for s in fast] == precise([item])


def _schema_of(model: type[Any]) -> dict[str, dict[str, tuple[Any, bool]]]:
    """The SCHEMA table of the SDK's pydantic model and the models it nests."""
    names = {float: "number", str: "string", bool: "boolean"}
    found: dict[str, dict[str, tuple[Any, bool]]] = {}

    def walk(model: type[Any], name: str) -> None:
        fields: dict[str, tuple[Any, bool]] = {}
        for field_name, info in model.model_fields.items():
            annotation = info.annotation
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if typing.get_origin(annotation) is typing.Union:
                annotation = args[0]
            if typing.get_origin(annotation) is list:
                (item,) = typing.get_args(annotation)
                nested = item.__name__
                walk(item, nested)
                fields[info.alias or field_name] = (("array", nested), info.is_required())
            else:
                fields[info.alias or field_name] = (names[annotation], info.is_required())
        found[name] = fields

    walk(model, "Snapshot")
    return found


def test_the_schema_is_the_official_sdks_model() -> None:
    """service/snapshot_schema.py is the SDK's Snapshot model, field for field."""
    from cloudflare.types.magic_transit.connectors import SnapshotGetResponse

    assert _schema_of(SnapshotGetResponse) == SCHEMA
