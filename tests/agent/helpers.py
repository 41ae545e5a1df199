"""Fixture hosts, and the Snapshot model checks shared by the agent's tests."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cloudflare._models import BaseModel
from cloudflare.types.magic_transit.connectors import SnapshotGetResponse

from connector_telemetry.agent import Host

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_host(name: str) -> Host:
    """A Host reading the captured tree ``fixtures/<name>``; statvfs answers from its
    meta.json (None for a mount point it has no record of)."""
    root = FIXTURES / name
    meta = json.loads((root / "meta.json").read_text())
    recorded: dict[str, dict[str, int]] = meta["statvfs"]

    def statvfs(path: str) -> Any:
        return SimpleNamespace(**recorded[path]) if path in recorded else None

    return Host(
        procfs=str(root / "proc"),
        sysfs=str(root / "sys"),
        statvfs=statvfs,
        clock_ticks=meta["clock_ticks"],
    )


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Optional[List[Model]]``, ``List[Model]``, ``Model``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def unknown_fields(data: dict[str, Any], model: type[BaseModel] = SnapshotGetResponse) -> list[str]:
    """Paths of keys the SDK's model does not declare (its models accept extras, so
    strict validation alone would not notice a misspelt field)."""
    out = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            out.append(key)
            continue
        nested = _model_of(field.annotation)
        if nested is not None:
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                out += [f"{key}[{i}].{sub}" for sub in unknown_fields(item, nested)]
    return out


def assert_valid_snapshot(data: dict[str, Any]) -> SnapshotGetResponse:
    """Only the reference's field names, and the SDK's model accepts it in strict mode."""
    assert unknown_fields(data) == []
    return SnapshotGetResponse.model_validate(data, strict=True)
