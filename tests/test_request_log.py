"""Request ids on every answer, and one JSON log line per request (``log_format = json``),
on a live server (issue 12, logs)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_telemetry.app import create_app
from connector_telemetry.settings import Settings
from support import (
    LiveServer,
    Tenant,
    create_connector,
    events_path,
    fresh_db,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Tenant, Path]]:
    folder = tmp_path_factory.mktemp("requestlog")
    db, tenant = fresh_db(folder)
    log = folder / "server.log"
    server = start_server(db, "--log-format", "json", workers=2, log_path=log)
    try:
        yield server, tenant, log
    finally:
        stop_server(server)


def request_lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            if item.get("logger") == "connector_telemetry.access":
                out.append(item)
    return out


def test_every_answer_has_a_request_id(served: tuple[LiveServer, Tenant, Path]) -> None:
    server, tenant, _ = served
    seen = set()
    with httpx.Client(timeout=10) as http:
        for url, headers in [
            (server.api + f"/accounts/{tenant.account_id}/magic/connectors", tenant.read),
            (server.api + f"/accounts/{tenant.account_id}/magic/connectors", {}),
            (server.api + "/no/such/route", tenant.read),
            (server.url + "/", {}),
            (server.url + "/healthz", {}),
        ]:
            answer = http.get(url, headers=headers)
            rid = answer.headers["x-request-id"]
            assert 1 <= len(rid) <= 128 and rid not in seen, rid
            seen.add(rid)
        mine = http.get(server.url + "/healthz", headers={"x-request-id": "client-id_1.2:3"})
        assert mine.headers["x-request-id"] == "client-id_1.2:3"
        forgeries: list[str | bytes] = ["a b", "x" * 129, b"id\xe9", "", "a\tb"]
        for forged in forgeries:
            answer = http.get(server.url + "/healthz", headers={"x-request-id": forged})
            assert answer.headers["x-request-id"] not in (forged, ""), forged


def test_one_json_line_per_request(served: tuple[LiveServer, Tenant, Path]) -> None:
    server, tenant, log = served
    connector_id = create_connector(server.api, tenant)["id"]
    url = server.api + events_path(tenant.account_id, connector_id)
    body = json.dumps([{"e": {"k": "Init"}, "t": 1_700_000_000, "n": 0}]).encode()
    with httpx.Client(timeout=10) as http:
        sent = http.post(
            url,
            content=body,
            headers={**tenant.write, "content-type": "application/json", "x-request-id": "w1"},
        )
        assert sent.status_code == 200
        got = http.get(f"{url}/1700000000.0", headers={**tenant.read, "x-request-id": "r1"})
        assert got.status_code == 200
        missing = http.get(f"{url}/1700000001.0", headers={**tenant.read, "x-request-id": "m1"})
        assert missing.status_code == 404
    deadline = time.monotonic() + 5
    while True:
        lines = {line["request_id"]: line for line in request_lines(log)}
        if {"w1", "r1", "m1"} <= set(lines) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    write, read, absent = lines["w1"], lines["r1"], lines["m1"]
    assert write["method"] == "POST" and write["status"] == 200
    assert write["bytes_in"] == len(body) and write["bytes_out"] == len(sent.content)
    assert read["route"] == absent["route"] != write["route"]
    assert read["status"] == 200 and absent["status"] == 404
    for line in (write, read, absent):
        assert line["account_id"] == tenant.account_id
        assert line["connector_id"] == connector_id
        assert line["level"] == "info" and line["duration_ms"] >= 0
        assert line["time"].endswith("Z")
        assert set(line) == {
            "time", "level", "logger", "request_id", "method", "route", "status",
            "duration_ms", "account_id", "connector_id", "bytes_in", "bytes_out",
        }  # fmt: skip
    text = log.read_text()
    assert tenant.write_token not in text and tenant.read_token not in text
    assert "Init" not in text  # never a body


def test_a_500_names_the_request_id(tmp_path: Path) -> None:
    from connector_telemetry.api.requestlog import REQUEST_ID

    app = create_app(Settings(db=str(tmp_path / "x.db")))
    token = REQUEST_ID.set("abc123")
    try:
        status, _, body = app._fail(RuntimeError("boom"), "GET", "/x", None)
    finally:
        REQUEST_ID.reset(token)  # the test's thread goes on to other tests
        app.ctx.close()
    assert status == 500 and b"request id abc123" in body


def test_text_mode_logs_no_request_lines(tmp_path: Path) -> None:
    db, _ = fresh_db(tmp_path)
    server = start_server(db, log_path=tmp_path / "text.log")
    try:
        answer = httpx.get(server.url + "/healthz", timeout=10)
        assert answer.headers["x-request-id"]
    finally:
        stop_server(server)
    assert "connector_telemetry.access" not in (tmp_path / "text.log").read_text()
