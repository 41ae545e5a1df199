"""The three measuring methods every part shares, whatever it stores (events or
snapshots) and wherever (SQLite or PostgreSQL):

- :func:`versus_nginx`: wrk against ``ctel serve`` and nginx serving the same response
  bytes, in alternating rounds (medians of the throughput and latency ratios);
- :func:`ingest_rounds`: HTTP ingest against in-process baselines, in rounds that
  alternate them (medians of the per-round figures and ratios);
- :func:`scale`: single-client latency of Get Event and of a deep List page on several
  database sizes served at once and queried in turn.
"""

from __future__ import annotations

import http.client
import random
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench import fixtures
from bench.procs import Ctel, Nginx, WrkResult, wrk
from connector_telemetry.service.cursors import encode_cursor, fingerprint
from connector_telemetry.store import is_postgres

SCRIPT = Path(__file__).parent / "random_key.lua"
PAGES = Path(__file__).parent / "pages.lua"

#: a baseline's items/s for one round's batches
Baseline = Callable[[fixtures.Batches], float]


def warm(db: str) -> None:
    """Read a SQLite database file once, so the OS page cache holds it as it would on a
    server in steady state: the figures compare index depth, not a cold disk. (A
    PostgreSQL fixture was just built: its pages are in the page cache already.)"""
    if is_postgres(db):
        return
    for path in (Path(db), Path(db + "-wal")):
        if path.exists():
            with path.open("rb") as stream:
                while stream.read(1 << 24):
                    pass


def _get(port: int, path: str, token: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, (path, body[:300])
    return body


def _probe(f: fixtures.Fleet, page: str | None) -> str:
    """The path whose answer nginx serves: one stored item, a 1000-item page, or Latest."""
    if page == "latest":
        return f.base(f.connector_ids[0]) + "/latest"
    if page == "list":
        span = int(f.wrk_env()["CTEL_SPAN"])
        start = fixtures.T0 + span // 2
        return f"{f.base(f.connector_ids[0])}?from={start}&to={fixtures.T0 + span}&limit=1000"
    return f.probe()


def versus_nginx(
    f: fixtures.Fleet,
    workers: int,
    seconds: int,
    rounds: int = 3,
    page: str | None = None,
    serve_db: str | None = None,
) -> dict[str, Any]:
    """``ctel serve --workers N`` on ``f``, wrk -t1 -c64 asking for random stored items,
    against nginx serving one stored item's response bytes with the same worker count,
    script and settings. Both run side by side (the idle one takes no CPU) and wrk
    alternates between them, ``rounds`` times (2 s warm-up, then ``seconds``, each), so
    the machine's noise falls on both alike; the figures are medians over the rounds.

    ``page``: List Events pages ("list": 1000 items from a random stored t) or Latest
    Events ("latest") instead of Get Event (``pages.lua``), nginx serving one such page.
    Pages are asked by 8 connections (``-c8``), not 64 (a 1000-item page takes a few ms).
    ``serve_db``: what ctel serves ``f`` through (another URL of its database: a proxy)."""
    env, script, connections = f.wrk_env(), SCRIPT, 64
    if page is not None:  # pages take longer: fewer connections, none timed out
        env, script, connections = {**env, "CTEL_PAGE": page}, PAGES, 8
    warm(f.db)
    ours: list[WrkResult] = []
    theirs: list[WrkResult] = []
    with Ctel(serve_db or f.db, workers) as server:
        body = _get(server.port, _probe(f, page), f.token)
        with Nginx(body, workers) as nginx:
            for _ in range(rounds):
                for url, results in ((server.url, ours), (nginx.url, theirs)):
                    wrk(url, script, env, 2, connections)  # warm-up
                    results.append(wrk(url, script, env, seconds, connections))
        rss, master = server.peak_rss(), server.master_rss()
        serve_command = " ".join(server.command())
    if any(r.non_2xx for r in theirs):
        raise RuntimeError(f"nginx answered non-2xx: {[r.non_2xx for r in theirs]}")
    if any(r.non_2xx or r.socket_errors for r in ours):
        bad = [(r.non_2xx, r.socket_errors) for r in ours]
        print(f"  warning: (non-2xx, socket errors) per round: {bad}", flush=True)
    rps_ratios = [o.rps / t.rps for o, t in zip(ours, theirs, strict=True)]
    p99_ratios = [o.p99_ms / t.p99_ms for o, t in zip(ours, theirs, strict=True)]

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "ctel_rps": round(median([r.rps for r in ours])),
        "ctel_p50_ms": median([r.p50_ms for r in ours]),
        "ctel_p99_ms": median([r.p99_ms for r in ours]),
        "ctel_non_2xx": sum(r.non_2xx for r in ours),
        "ctel_socket_errors": sum(r.socket_errors for r in ours),
        "nginx_rps": round(median([r.rps for r in theirs])),
        "nginx_p50_ms": median([r.p50_ms for r in theirs]),
        "nginx_p99_ms": median([r.p99_ms for r in theirs]),
        "rps_ratio": round(median(rps_ratios), 3),
        "rps_ratio_per_round": [round(x, 3) for x in rps_ratios],
        "p99_ratio": round(median(p99_ratios), 2),
        "p99_ratio_per_round": [round(x, 2) for x in p99_ratios],
        "rounds": rounds,
        "peak_rss_mb": rss,
        "master_peak_rss_mb": master,
        "response_bytes": len(body),
        "stored": f.total,
        "command": ours[0].command,
        "serve_command": serve_command,
        "workers": workers,
    }


def metrics_cost(
    f: fixtures.Fleet, scratch: str, workers: int, seconds: int, rounds: int = 3
) -> dict[str, Any]:
    """Get Event with ctel's own metrics on (``CTEL_METRICS=token``, the default) against
    the same server with them off, side by side, wrk alternating between them as in
    ``versus_nginx``; ingest likewise (``_ingest_on_off``).

    Two figures each, medians over the rounds: the ratio of throughputs (on / off), which
    on two shared cores moves by 10-25 % from round to round, and the ratio of the
    servers' CPU time per request (off / on: above 1 when metrics cost nothing), from
    ``/proc`` of each server's processes over its round, which the scheduler's noise
    barely moves. A cost of metrics is CPU per request; the second figure measures it.
    Rounds alternate which server goes first (ABBA), so a drift or an order effect (such as
    WAL checkpoints paid by the next writer) falls on both alike."""
    env = f.wrk_env()
    warm(f.db)
    on: list[tuple[WrkResult, float]] = []
    off: list[tuple[WrkResult, float]] = []
    with (
        Ctel(f.db, workers, env={"CTEL_METRICS": "token"}) as a,
        Ctel(f.db, workers, env={"CTEL_METRICS": "off"}) as b,
    ):
        for r in range(rounds):
            pairs = ((a, on), (b, off))
            for server, results in pairs if r % 2 == 0 else pairs[::-1]:  # ABBA: drift cancels
                wrk(server.url, SCRIPT, env, 2)  # warm-up
                cpu = server.cpu_seconds()
                result = wrk(server.url, SCRIPT, env, seconds)
                results.append((result, server.cpu_seconds() - cpu))
    ingest = _ingest_on_off(scratch, workers, rounds)
    ratios = [x.rps / y.rps for (x, _), (y, _) in zip(on, off, strict=True)]
    us_on = [cpu / max(r.requests, 1) * 1e6 for r, cpu in on]
    us_off = [cpu / max(r.requests, 1) * 1e6 for r, cpu in off]
    cpu_ratios = [y / x for x, y in zip(us_on, us_off, strict=True)]
    return {
        **ingest,
        "metrics_on_rps": round(statistics.median([r.rps for r, _ in on])),
        "metrics_off_rps": round(statistics.median([r.rps for r, _ in off])),
        "rps_ratio": round(statistics.median(ratios), 3),
        "rps_ratio_per_round": [round(x, 3) for x in ratios],
        "cpu_us_per_request_on": round(statistics.median(us_on), 2),
        "cpu_us_per_request_off": round(statistics.median(us_off), 2),
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
        "cpu_ratio_per_round": [round(x, 3) for x in cpu_ratios],
        "p99_on_ms": statistics.median([r.p99_ms for r, _ in on]),
        "p99_off_ms": statistics.median([r.p99_ms for r, _ in off]),
        "rounds": rounds,
        "command": on[0][0].command,
    }


def _ingest_on_off(db: str, workers: int, rounds: int, batches: int = 40) -> dict[str, Any]:
    """Event ingest (1000-event batches, 4 clients) into two servers of a new database
    ``db``, metrics on and off, alternating round by round, each round on a fresh
    connector: events/s and the servers' CPU time per event (as in ``metrics_cost``)."""
    token, paths = fixtures.ingest_target(db, "events", 2 * rounds)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    cpu_us: dict[str, list[float]] = {"on": [], "off": []}
    with (
        Ctel(db, workers, env={"CTEL_METRICS": "token"}) as on,
        Ctel(db, workers, env={"CTEL_METRICS": "off"}) as off,
    ):
        for r in range(rounds):
            # ABBA: whoever commits after the other pays its WAL checkpoints, so alternate
            pairs = (("on", on), ("off", off))
            for k, (name, server) in enumerate(pairs if r % 2 == 0 else pairs[::-1]):
                bodies = [orjson.dumps(b) for b in fixtures.event_batches(batches, 1000, 0)]
                cpu = server.cpu_seconds()
                rates[name].append(post_all(server.port, paths[2 * r + k], token, bodies, 4))
                cpu_us[name].append((server.cpu_seconds() - cpu) / (batches * 1000) * 1e6)
    ratios = [x / y for x, y in zip(rates["on"], rates["off"], strict=True)]
    cpu_ratios = [y / x for x, y in zip(cpu_us["on"], cpu_us["off"], strict=True)]
    return {
        "ingest_metrics_on_events_per_s": round(statistics.median(rates["on"])),
        "ingest_metrics_off_events_per_s": round(statistics.median(rates["off"])),
        "ingest_ratio": round(statistics.median(ratios), 3),
        "ingest_ratio_per_round": [round(x, 3) for x in ratios],
        "ingest_cpu_us_per_event_on": round(statistics.median(cpu_us["on"]), 2),
        "ingest_cpu_us_per_event_off": round(statistics.median(cpu_us["off"]), 2),
        "ingest_cpu_ratio": round(statistics.median(cpu_ratios), 3),
        "ingest_cpu_ratio_per_round": [round(x, 3) for x in cpu_ratios],
    }


def post_all(port: int, path: str, token: str, bodies: list[bytes], clients: int) -> float:
    """Items/s accepted for ``bodies`` (JSON arrays) posted by ``clients`` concurrent
    connections; the answer to each comes after its batch is committed."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    accepted = [0]
    failures: list[str] = []
    lock = threading.Lock()

    def client(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for body in mine:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status} {raw[:300]!r}")
                with lock:
                    accepted[0] += orjson.loads(raw)["result"]["accepted"]
        except Exception as exc:
            failures.append(f"POST {path}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError("; ".join(failures))
    return accepted[0] / elapsed


def ingest_rounds(
    db: str,
    kind: str,
    baselines: dict[str, Baseline],
    workers: int,
    clients: int,
    batches: int,
    batch: int,
    rounds: int,
) -> dict[str, Any]:
    """Rounds alternate the baselines and ctel, each on fresh keys (ctel: a fresh
    connector per round), so the machine's noise falls on all alike; the figures are
    medians over the rounds. ``baselines`` maps a key suffix ("" for the main one) to
    a function giving its rows/s for the round's batches; ``db`` is a new, empty
    database (a SQLite file or a PostgreSQL URL) for ctel to serve."""
    token, paths = fixtures.ingest_target(db, kind, rounds)
    make = fixtures.event_batches if kind == "events" else fixtures.snapshot_batches
    per_round = max(batches // rounds, 10)
    bare: dict[str, list[float]] = {suffix: [] for suffix in baselines}
    ours: list[float] = []
    with Ctel(db, workers) as server:
        for r in range(rounds):
            batch_list = make(per_round, batch, r * per_round)
            for suffix, run in baselines.items():
                bare[suffix].append(run(batch_list))
            bodies = [orjson.dumps(b) for b in batch_list]
            ours.append(post_all(server.port, paths[r], token, bodies, clients))
            assert ours[-1] > 0
        rss, master = server.peak_rss(), server.master_rss()
        serve_command = " ".join(server.command())
    out: dict[str, Any] = {f"ctel_{kind}_per_s": round(statistics.median(ours))}
    for suffix, values in bare.items():
        ratios = [o / b for o, b in zip(ours, values, strict=True)]
        out[f"bare{suffix}_rows_per_s"] = round(statistics.median(values))
        out[f"ratio{suffix}"] = round(statistics.median(ratios), 3)
        out[f"ratio{suffix}_per_round"] = [round(x, 2) for x in ratios]
    out.update(
        {
            "clients": clients,
            "batch": batch,
            "batches": per_round * rounds,
            "rounds": rounds,
            "peak_rss_mb": rss,
            "master_peak_rss_mb": master,
            "serve_command": serve_command,
            "workers": workers,
        }
    )
    return out


def _paths(f: fixtures.Fleet, rng: random.Random, requests: int) -> tuple[list[str], list[str]]:
    """Random Get Event paths, and List pages deep inside the range (from the connector's
    start, continuing after a random stored event, as a client paging with cursors)."""
    size = f.total
    gets, lists = [], []
    for _ in range(requests):
        cid, t, n = f.key(rng.randrange(size))
        gets.append(f"{f.base(cid)}/{t}.{n}")
    to = fixtures.T0 + 10**7
    query = fingerprint(float(fixtures.T0), float(to), None)
    for _ in range(max(requests // 10, 20)):
        cid, t, n = f.key(rng.randrange(max(size - 1000, 1)))
        cursor = encode_cursor(query, (float(t), float(n)))
        lists.append(f"{f.base(cid)}?from={fixtures.T0}&to={to}&limit=1000&cursor={cursor}")
    return gets, lists


def scale(fleets: list[fixtures.Fleet], workers: int, requests: int) -> dict[str, Any]:
    """All sizes served at once and queried in turn, request by request, so that whatever
    else the machine does falls on every size alike."""
    rng = random.Random(5)
    plans = [_paths(f, rng, requests) for f in fleets]
    for f in fleets:
        warm(f.db)
    times: list[dict[str, list[float]]] = [{"get": [], "list": []} for _ in fleets]
    with ExitStack() as stack:
        servers = [stack.enter_context(Ctel(f.db, workers)) for f in fleets]
        conns = [http.client.HTTPConnection("127.0.0.1", s.port) for s in servers]
        for kind, index in (("get", 0), ("list", 1)):
            count = len(plans[0][index])
            for r in range(-min(200, count // 5), count):  # negative: warm-up, not kept
                for k, (f, conn) in enumerate(zip(fleets, conns, strict=True)):
                    started = time.perf_counter()
                    conn.request(
                        "GET", plans[k][index][r], headers={"Authorization": f"Bearer {f.token}"}
                    )
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, plans[k][index][r]
                    if r >= 0:
                        times[k][kind].append((time.perf_counter() - started) * 1000)
        for conn in conns:
            conn.close()
        rss = [s.peak_rss() for s in servers]
        masters = [s.master_rss() for s in servers]
    out: dict[str, Any] = {}
    for k, f in enumerate(fleets):
        out[str(f.total)] = {
            "get_p50_ms": round(statistics.median(times[k]["get"]), 3),
            "list_1000_p50_ms": round(statistics.median(times[k]["list"]), 3),
            "peak_rss_mb": rss[k],
            "master_peak_rss_mb": masters[k],
        }
        print(f"  scale {f.total:,}: {out[str(f.total)]}", flush=True)
    small, large = out[str(fleets[0].total)], out[str(fleets[-1].total)]
    out["get_ratio_largest_vs_smallest"] = round(large["get_p50_ms"] / small["get_p50_ms"], 2)
    out["list_ratio_largest_vs_smallest"] = round(
        large["list_1000_p50_ms"] / small["list_1000_p50_ms"], 2
    )
    return out
