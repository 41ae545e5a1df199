"""One source for the connector's fields: a field added to the table (here to a copy of it,
``Sited``, with a ``site`` field) shows up in the wire form, the row mapping, the validation
of request bodies, the OpenAPI schemas, and export/import, with nothing else written.

In the product, adding a field is the same one line in models/connector.py plus one
migration adding its column (``store/migrations/0004_connector_site.sql``:
``ALTER TABLE connectors ADD COLUMN site TEXT NOT NULL DEFAULT '';``, the same words on
both stores); the stores' statements name the columns of the table (checked below)."""

from __future__ import annotations

from dataclasses import field, fields, make_dataclass
from typing import Annotated, Any

import pytest

from connector_telemetry.api.schemas import connector_schemas
from connector_telemetry.errors import BadRequest
from connector_telemetry.models import Connector
from connector_telemetry.models.connector import Field, check_settable, settable, table
from connector_telemetry.service.transfer import connector_from_record, connector_record
from connector_telemetry.store.rows import columns, connector_from_row, connector_values
from connector_telemetry.store.sql import SQL

SITE_SCHEMA = {"type": "string", "maxLength": 8}


def _check_site(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 8:
        raise BadRequest(f"{name}: expected a string of at most 8 characters, got {value!r}")
    return value


Sited: type[Connector] = make_dataclass(
    "Sited",
    [("site", Annotated[str, Field("site", "site", SITE_SCHEMA, _check_site)], field(default=""))],
    bases=(Connector,),
)


def test_the_wire_form_follows() -> None:
    wire = Sited(account_id="acc", id="c1", site="lisbon").to_wire()  # type: ignore[call-arg]
    assert wire["site"] == "lisbon"
    assert list(wire)[:-1] == list(Connector(account_id="acc", id="c1").to_wire())


def test_the_row_mapping_follows() -> None:
    assert columns(Sited) == (*columns(), "site")
    sited = Sited(account_id="acc", id="c1", notes="n", site="porto")  # type: ignore[call-arg]
    row = connector_values(sited)
    assert row[-1] == "porto"
    assert connector_from_row(row, Sited) == sited


def test_the_stores_statements_name_every_column_of_the_table() -> None:
    sql = SQL()
    for statement in (sql.insert_connector, sql.get_connector, sql.list_connectors):
        assert all(column in statement for column in columns())
    assert all(f"{column}=?" in sql.update_connector for column in columns()[2:])


def test_the_validation_follows() -> None:
    assert settable(Sited) == (*settable(), "site")
    assert check_settable({"site": "faro", "notes": "x"}, Sited) == {"site": "faro", "notes": "x"}
    with pytest.raises(BadRequest, match="site: expected a string of at most 8"):
        check_settable({"site": "much too long"}, Sited)
    assert check_settable({"site": "faro"}) == {}  # not a field of the product's table


def test_the_openapi_schemas_follow() -> None:
    schemas = connector_schemas(Sited)
    assert schemas["Connector"]["properties"]["site"] == SITE_SCHEMA
    assert "site" in schemas["Connector"]["required"]
    assert schemas["ConnectorCreate"]["properties"]["site"] == SITE_SCHEMA
    assert schemas["ConnectorUpdate"]["properties"]["site"] == SITE_SCHEMA
    assert "site" not in connector_schemas()["Connector"]["properties"]


def test_export_and_import_follow() -> None:
    sited = Sited(account_id="acc", id="c1", site="braga", license_key_hash=b"\x01")  # type: ignore[call-arg]
    record = connector_record(sited)
    assert record["fields"]["site"] == "braga"
    assert record["fields"]["license_key_hash"] == "01"
    assert connector_from_record("acc", record, Sited) == sited
    # an export made before the field existed imports with the field's default
    del record["fields"]["site"]
    assert connector_from_record("acc", record, Sited).site == ""  # type: ignore[attr-defined]


def test_every_field_of_the_table_is_declared() -> None:
    """Each dataclass field carries its table entry (a field without one fails here)."""
    assert list(table()) == [f.name for f in fields(Connector)]
    assert all(isinstance(entry, Field) for entry in table().values())
