"""The agent's spool and delivery, with the server faked by httpx.MockTransport: records
survive an unreachable server and restarts, go out oldest first and byte-identical,
and only what the server refuses for good is dropped."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.helpers import assert_valid_snapshot, fixture_host
from connector_telemetry.agent import Spool, interrupts
from connector_telemetry.agent.client import Client, Outcome, api_root, classify
from connector_telemetry.agent.interrupts import Interrupt, parse_interrupts, run_interrupt
from connector_telemetry.agent.runner import Agent
from connector_telemetry.agent.spool import SpoolLocked


class FakeServer:
    """Answers like the service (or fails like a dead one), and remembers every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.down = False
        self.refuse: Callable[[dict[str, Any]], tuple[int, int] | None] = lambda item: None
        self.stored: dict[str, list[Any]] = {"events": [], "snapshots": []}
        self.interrupts: list[dict[str, Any]] = []
        #: None: reads Content-Encoding: gzip; else the (status, code) it answers such a body
        self.no_gzip: tuple[int, int] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method == "GET" and request.url.path.endswith("/interrupts"):
            found, self.interrupts = self.interrupts, []
            return httpx.Response(200, json={"result": found, "success": True})
        kind = request.url.path.rsplit("/", 1)[1]
        content = request.content
        if request.headers.get("content-encoding") == "gzip":
            if self.no_gzip is not None:
                status, code = self.no_gzip
                return httpx.Response(status, json={"errors": [{"code": code, "message": "no"}]})
            content = gzip.decompress(content)
        items = json.loads(content)
        for item in items:
            refusal = self.refuse(item)
            if refusal is not None:
                status, code = refusal
                body = {
                    "result": None,
                    "success": False,
                    "errors": [{"code": code, "message": "no"}],
                }
                return httpx.Response(status, json=body)
        self.stored[kind] += items
        return httpx.Response(200, json={"result": {"accepted": len(items), "duplicates": 0}})


_open: list[Agent] = []


def _agent(spool_dir: Path, server: FakeServer, **kw: Any) -> Agent:
    client = Client(
        "http://ctel.invalid:8787", "acc", "c1", "k" * 40, transport=httpx.MockTransport(server)
    )
    agent = Agent(client, Spool(str(spool_dir)), fixture_host("vm-6.18-x86_64"), "9.9.9", **kw)
    _open.append(agent)
    return agent


@pytest.fixture(autouse=True)
def _close_agents() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def test_api_root() -> None:
    assert api_root("http://h:8787") == "http://h:8787/client/v4"
    assert api_root("http://h:8787/") == "http://h:8787/client/v4"
    assert api_root("http://h:8787/client/v4/") == "http://h:8787/client/v4"


def test_records_wait_while_unreachable_then_go_in_order(tmp_path: Path) -> None:
    server = FakeServer()
    agent = _agent(tmp_path, server)
    server.down = True
    agent.start()
    for _ in range(3):
        agent.tick()
    assert [r.kind for r in agent.spool.pending()] == ["event", "snapshot", "snapshot", "snapshot"]
    assert agent.counters.transmit_failures == 4
    server.down = False
    agent.tick()
    agent.stop()
    assert agent.spool.pending() == []
    # the Init event, the four snapshots in one batch, then Leave
    posts = [r for r in server.requests if r.method == "POST"]
    delivered = posts[-3:]
    assert [r.url.path.rsplit("/", 1)[1] for r in delivered] == ["events", "snapshots", "events"]
    assert [e["e"]["k"] for e in server.stored["events"]] == ["Init", "Leave"]
    ts = [s["t"] for s in server.stored["snapshots"]]
    assert ts == sorted(ts) and len(set(ts)) == 4
    # each snapshot reports the failures seen before it was recorded
    assert [s["count_transmit_failures"] for s in server.stored["snapshots"]] == [1, 2, 3, 4]
    for s in server.stored["snapshots"]:
        assert s["v"] == "9.9.9" and s["cpu_count"] == 2
        assert_valid_snapshot(s)


def test_a_replay_is_byte_identical(tmp_path: Path) -> None:
    server = FakeServer()
    agent = _agent(tmp_path, server)
    server.down = True
    agent.start()
    server.down = False
    agent.flush()
    first, second = (r.content for r in server.requests)
    assert first == second
    event = json.loads(first)[0]
    assert set(event) == {"e", "t", "n", "v"} and event["e"] == {"k": "Init"}


def test_a_restart_keeps_pending_records_and_never_reuses_keys(tmp_path: Path) -> None:
    server = FakeServer()
    server.down = True
    agent = _agent(tmp_path, server)
    agent.start()
    agent.tick()
    agent.stop()
    agent.close()
    before = [r.path for r in agent.spool.pending()]
    assert len(before) == 3  # Init, snapshot, Leave

    again = _agent(tmp_path, server)
    assert [r.path for r in again.spool.pending()] == before
    server.down = False
    again.start()
    again.tick()
    kinds = [(e["e"]["k"], e["n"]) for e in server.stored["events"]]
    assert kinds == [("Init", 0), ("Leave", 1), ("Init", 2)]
    ts = [s["t"] for s in server.stored["snapshots"]]
    assert len(ts) == 2 and ts[0] < ts[1]


def test_bodies_of_1_kib_and_more_go_out_gzip_compressed(tmp_path: Path) -> None:
    server = FakeServer()
    agent = _agent(tmp_path, server)
    agent.start()  # Init: a small body
    agent.record_snapshot()  # ~4 KB of JSON
    agent.flush()
    event, snapshot = (r for r in server.requests if r.method == "POST")
    assert "content-encoding" not in event.headers
    assert snapshot.headers["content-encoding"] == "gzip"
    sent = gzip.decompress(snapshot.content)
    assert json.loads(sent) == server.stored["snapshots"] and len(snapshot.content) < len(sent) / 2


@pytest.mark.parametrize("refusal", [(415, 1415), (400, 1001)])
def test_a_server_that_does_not_read_gzip_gets_bodies_as_is(
    tmp_path: Path, refusal: tuple[int, int]
) -> None:
    """415, or the 400/1001 of a server that ignores Content-Encoding: the agent resends the
    batch uncompressed and sends uncompressed from then on; nothing is dropped."""
    server = FakeServer()
    server.no_gzip = refusal
    agent = _agent(tmp_path, server)
    for _ in range(3):
        agent.record_snapshot()
        agent.flush()
    assert agent.spool.pending() == []
    assert len(server.stored["snapshots"]) == 3
    encodings = [r.headers.get("content-encoding") for r in server.requests]
    assert encodings == ["gzip", None, None, None]
    assert agent.client.gzip is False


def test_a_batch_refused_for_its_content_keeps_gzip_on(tmp_path: Path) -> None:
    server = FakeServer()
    server.refuse = lambda item: (400, 1001)  # e.g. not valid UTF-8
    agent = _agent(tmp_path, server)
    agent.record_snapshot()
    agent.flush()
    assert agent.spool.pending() == []  # refused for good, dropped
    assert [r.headers.get("content-encoding") for r in server.requests] == ["gzip", None]
    assert agent.client.gzip is True


def test_one_agent_per_spool(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    with pytest.raises(SpoolLocked):
        Spool(str(tmp_path))
    spool.close()
    Spool(str(tmp_path)).close()


def test_an_interrupted_write_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / ".tmp-000000000007.snapshot.json").write_text('{"t": 1')
    spool = Spool(str(tmp_path))
    assert spool.pending() == []
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    spool.close()


def test_a_refused_record_is_dropped_alone(tmp_path: Path) -> None:
    """A batch is stored whole or not at all, so the agent retries a refused batch one
    record at a time and drops only the record the server refuses."""
    server = FakeServer()
    agent = _agent(tmp_path, server)
    server.down = True
    for _ in range(4):
        agent.record_snapshot()
    bad_t = json.loads(agent.spool.pending()[2].body())["t"]
    server.down = False
    server.refuse = lambda item: (400, 1003) if item["t"] == bad_t else None
    assert agent.flush() is True
    assert agent.spool.pending() == []
    assert len(server.stored["snapshots"]) == 3
    assert bad_t not in [s["t"] for s in server.stored["snapshots"]]


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (409, 1409, Outcome.REFUSED),  # same key, other content
        (400, 1003, Outcome.REFUSED),  # bad field
        (413, 1413, Outcome.REFUSED),
        (400, 9106, Outcome.UNREACHABLE),  # credentials missing: configuration, keep
        (403, 9109, Outcome.UNREACHABLE),  # key revoked: keep until it is fixed
        (404, 1404, Outcome.UNREACHABLE),
        (429, 1429, Outcome.UNREACHABLE),
        (500, 1500, Outcome.UNREACHABLE),
        (503, 1503, Outcome.UNREACHABLE),
        (200, 0, Outcome.DELIVERED),
    ],
)
def test_classify(status: int, code: int, outcome: Outcome) -> None:
    body = {"result": None, "success": status < 300, "errors": [{"code": code, "message": "m"}]}
    assert classify(httpx.Response(status, json=body)).outcome is outcome


def test_kept_on_auth_failure_dropped_on_conflict(tmp_path: Path) -> None:
    server = FakeServer()
    agent = _agent(tmp_path, server)
    server.refuse = lambda item: (403, 9109)
    agent.record_snapshot()
    assert agent.flush() is False
    assert len(agent.spool.pending()) == 1
    server.refuse = lambda item: (409, 1409)
    assert agent.flush() is True
    assert agent.spool.pending() == []


def test_interrupts_run_their_command(tmp_path: Path) -> None:
    server = FakeServer()
    out = tmp_path / "ran"
    cmd = f'echo "$CTEL_INTERRUPT_KIND $CTEL_INTERRUPT_PURGE $CTEL_INTERRUPT_ID" >> {out}'
    agent = _agent(tmp_path / "spool", server, commands={"restart": cmd})
    server.interrupts = [
        {"id": "i1", "submitted_at": "x", "triggered_at": "y", "restart": {"purge": True}},
        {"id": "i2", "submitted_at": "x", "reboot": {}},  # no --on-reboot: only logged
    ]
    agent.tick()
    assert out.read_text() == "restart 1 i1\n"
    agent.tick()  # picked up once only
    assert out.read_text() == "restart 1 i1\n"


def test_parse_interrupts_skips_malformed_items() -> None:
    found = parse_interrupts(
        [
            {"id": "a", "shutdown": {"purge": False}},
            {"id": "b", "reboot": {}, "restart": {}},
            {"id": "c"},
            "nonsense",
        ]
    )
    assert found == [Interrupt("a", "shutdown", False)]
    assert parse_interrupts(None) == []


def test_interrupt_command_timeout_and_status(tmp_path: Path) -> None:
    reboot = Interrupt("x", "reboot", False)
    assert run_interrupt(reboot, {"reboot": "exit 3"}, timeout=5) == 3
    assert run_interrupt(reboot, {"reboot": "sleep 5"}, timeout=0.2) is None
    assert run_interrupt(reboot, {}, timeout=5) is None


def test_a_stop_does_not_wait_for_the_command(tmp_path: Path) -> None:
    """``--on-restart "systemctl restart ctel-agent"`` waits for the agent to stop."""
    stopping = threading.Event()
    stopping.set()
    started = time.monotonic()
    restart = Interrupt("x", "restart", False)
    assert run_interrupt(restart, {"restart": "sleep 5"}, 10, stopping) is None
    assert time.monotonic() - started < 2
    while interrupts._detached:
        left = interrupts._detached.pop()
        left.kill()
        left.wait()
