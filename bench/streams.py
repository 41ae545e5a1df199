"""Live streams (issue 10), measured (``python -m bench --only streams``).

- **Delivery latency**: N subscribers (1, 100, 1000) on one connector's event stream of one
  ``ctel serve``, read by a separate client process (uvloop, one ``asyncio.Protocol`` per
  connection that stamps each message's arrival in ``data_received``: ~9 us of client CPU
  per message, where a task awaiting ``asyncio.wait`` on two futures per read took ~35 us
  on the same two cores and so inflated the latencies it measured); an ingest client
  posts one event every 50 ms and notes when each answer arrives (the acknowledgement); a
  subscriber notes when each event's message arrives. Latency = arrival - acknowledgement,
  p50 and p99 over every (subscriber, event).
- **Memory per idle subscriber**: the workers' resident memory (VmRSS) with 1000 idle
  subscribers connected minus before, divided by 1000, measured first, on the fresh server
  (after the latency runs the heap has grown and the figure drops to 2-9 KB).
- **Poller cost at idle**: the workers' CPU time over ``seconds`` with no subscriber, and
  with 1000 idle ones (the 50 ms poller, the credential re-checks), as a share of one core.
- **Ingest with subscribers**: events/s of 4 clients posting 1000-event batches with no
  subscriber, with 100 subscribers of another connector (the cost of the notification:
  the poller and the fan-out's read, nothing delivered), and with one subscriber of the
  account stream (every item delivered), in alternating rounds; ratios per round, medians.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import uvloop

from bench import fixtures
from bench.measure import post_all
from bench.procs import Ctel, children
from connector_telemetry.api.streams import LOOK_SECONDS

_T = re.compile(rb'"t":([0-9]+)')


# -- the subscribers' process ------------------------------------------------------------


class _Reader(asyncio.Protocol):
    """One subscriber's connection: it sends the request, checks the answer's status line,
    then notes the arrival time of every message as its bytes are handed over (when the
    loop reads the socket: no task, no future per read)."""

    def __init__(self, request: bytes, parse: bool, ready: asyncio.Future[None]):
        self.request = request
        self.parse = parse
        self.ready = ready
        self.head = b""
        #: The bytes after the last complete message (a message split by the network).
        self.rest = b""
        self.got: list[tuple[int, float]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.ready.done():
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.ready.set_exception(RuntimeError(head[:200].decode(errors="replace")))
                return
            self.ready.set_result(None)
        if self.parse:
            data = self.rest + data
            cut = data.rfind(b"\n\n") + 2
            self.rest = data[cut:]
            self.got.extend((int(t), now) for t in _T.findall(data, 0, cut))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or RuntimeError("the server closed the stream"))


def _subscribers(port: int, paths: list[str], token: str, parse: bool, pipe: Connection) -> None:
    """The child process (uvloop, one ``asyncio.Protocol`` per subscriber): connect every
    subscriber, say how many are ready, read until told to stop, send back what each
    received."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        readers = []
        for i, path in enumerate(paths):
            request = (
                f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
            reader = _Reader(request, parse, loop.create_future())
            await loop.create_connection(lambda reader=reader: reader, "127.0.0.1", port)
            readers.append(reader)
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        await asyncio.gather(*(reader.ready for reader in readers))
        pipe.send(len(readers))
        await loop.run_in_executor(None, pipe.recv)
        for reader in readers:
            if reader.transport is not None:
                reader.transport.close()
        pipe.send([reader.got for reader in readers] if parse else [])

    uvloop.run(main())


class Subscribers:
    """``len(paths)`` subscribers in a process of their own."""

    def __init__(self, port: int, paths: list[str], token: str, parse: bool = True):
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(
            target=_subscribers, args=(port, paths, token, parse, child), daemon=True
        )
        self.process.start()
        if not self.pipe.poll(120):
            raise RuntimeError("the subscribers did not connect")
        self.connected = self.pipe.recv()

    def stop(self) -> list[list[tuple[int, float]]]:
        self.pipe.send("stop")
        received: list[list[tuple[int, float]]] = self.pipe.recv()
        self.process.join(10)
        time.sleep(LOOK_SECONDS + 1)  # the server lets them go (api/streams.py)
        return received


# -- the server's side ---------------------------------------------------------------------


def _rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latency(server: Ctel, base: str, token: str, count: int, seconds: float) -> dict[str, Any]:
    subs = Subscribers(server.port, [base + "/stream"] * count, token)
    acked: dict[int, float] = {}
    t = fixtures.T0 + 50_000_000 + count * 100_000  # keys of their own
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t += 1
            answer = http.post(server.url + base, json=[{"e": {"k": "Init"}, "t": t, "n": 0}])
            acked[t] = time.time()
            answer.raise_for_status()
            time.sleep(0.05)
    time.sleep(1.0)  # the last ones arrive
    received = subs.stop()
    latencies = [(when - acked[t]) * 1000 for mine in received for t, when in mine if t in acked]
    expected = len(acked) * count
    return {
        "subscribers": count,
        "events": len(acked),
        "delivered": len(latencies),
        "expected": expected,
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }


def _idle(server: Ctel, base: str, token: str, seconds: float) -> dict[str, Any]:
    pids = children(server.process.pid) if server.process else []
    time.sleep(1)
    before_kb = _rss_kb(pids)
    cpu0 = _cpu_seconds(pids)
    time.sleep(seconds)
    idle_cpu = _cpu_seconds(pids) - cpu0
    subs = Subscribers(server.port, [base + "/stream"] * 1000, token, parse=False)
    time.sleep(2)
    after_kb = _rss_kb(pids)
    cpu0 = _cpu_seconds(pids)
    time.sleep(seconds)
    busy_cpu = _cpu_seconds(pids) - cpu0
    subs.stop()
    return {
        "rss_kb_before": before_kb,
        "rss_kb_with_1000_idle": after_kb,
        "kb_per_idle_subscriber": round((after_kb - before_kb) / 1000, 1),
        "cpu_share_no_subscriber": round(idle_cpu / seconds, 4),
        "cpu_share_1000_idle": round(busy_cpu / seconds, 4),
        "seconds": seconds,
    }


def _ingest(
    server: Ctel, token: str, paths: list[str], account_stream: str, rounds: int, batches: int
) -> dict[str, Any]:
    """Rounds alternate: no subscriber; 100 subscribers of another connector's stream (the
    notification and fan-out read, nothing delivered to them); one subscriber of the account
    stream (every item delivered)."""
    figures: dict[str, list[float]] = {"none": [], "notified": [], "delivered": []}
    per_round = max(batches // rounds, 10)
    other = paths[-1] + "/stream"
    for r in range(rounds):
        for i, (name, subscribed) in enumerate(
            (("none", []), ("notified", [other] * 100), ("delivered", [account_stream]))
        ):
            offset = (3 * r + i) * per_round
            bodies = [orjson.dumps(b) for b in fixtures.event_batches(per_round, 1000, offset)]
            subs = Subscribers(server.port, subscribed, token, parse=False) if subscribed else None
            figures[name].append(post_all(server.port, paths[3 * r + i], token, bodies, 4))
            if subs is not None:
                subs.stop()
    out: dict[str, Any] = {"rounds": rounds, "batches_per_round": per_round}
    for name in ("none", "notified", "delivered"):
        out[f"events_per_s_{name}"] = round(statistics.median(figures[name]))
    for name in ("notified", "delivered"):
        ratios = [w / o for w, o in zip(figures[name], figures["none"], strict=True)]
        out[f"ratio_{name}"] = round(statistics.median(ratios), 3)
        out[f"ratio_{name}_per_round"] = [round(x, 2) for x in ratios]
    return out


def run(db: str, workers: int, seconds: float, rounds: int, batches: int) -> dict[str, Any]:
    """Every figure of this part on ``db`` (a new SQLite file or PostgreSQL database)."""
    token, paths = fixtures.ingest_target(db, "events", 3 * rounds + 1)
    account_stream = paths[0].rpartition("/magic/connectors/")[0] + (
        "/magic/connectors/telemetry/stream"
    )
    out: dict[str, Any] = {"workers": workers}
    # every open stream is a request in progress: granian's default (backlog / workers, 512
    # per worker here) would turn the 1000th subscriber of an unevenly balanced node away
    with Ctel(db, workers, env={"CTEL_MAX_CONCURRENT_REQUESTS": "4096"}) as server:
        out["serve_command"] = " ".join(server.command())
        # first, on the fresh server: after the latency runs the workers' heaps have grown
        # and the next 1000 streams reuse that memory (2-9 KB each instead of ~35)
        print("  idle: memory and poller ...", flush=True)
        out["idle"] = _idle(server, paths[-1], token, seconds)
        print(" ", out["idle"], flush=True)
        for count in (1, 100, 1000):
            print(f"  latency, {count} subscriber(s) ...", flush=True)
            out[f"latency_{count}"] = _latency(server, paths[-1], token, count, seconds)
            print(" ", out[f"latency_{count}"], flush=True)
        print("  ingest with and without subscribers ...", flush=True)
        out["ingest"] = _ingest(server, token, paths, account_stream, rounds, batches)
        print(" ", out["ingest"], flush=True)
    return out
