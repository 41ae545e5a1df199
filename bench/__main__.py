"""``python -m bench``: where ctel stands against this machine's limits.

Every figure is a ratio against a baseline measured in the same run (these
machines are shared and noisy). See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench import fixtures
from bench.procs import Ctel, Nginx, wrk
from connector_telemetry.service.ingest import encode_cursor, fingerprint

HERE = Path(__file__).parent
DATA = HERE / ".data"
RESULTS = HERE / "results"


def fleet(size: int) -> fixtures.Fleet:
    """A cached database with ``size`` events (built once, reused by later runs)."""
    DATA.mkdir(exist_ok=True)
    db = DATA / f"events-{size}.db"
    meta = db.with_suffix(".json")
    if db.exists() and meta.exists():
        m = json.loads(meta.read_text())
        return fixtures.Fleet(db, m["account_id"], m["token"], m["connector_ids"], size)
    for stale in DATA.glob(f"events-{size}.db*"):
        stale.unlink()
    started = time.perf_counter()
    built = fixtures.build(db, size)
    meta.write_text(
        json.dumps(
            {
                "account_id": built.account_id,
                "token": built.token,
                "connector_ids": built.connector_ids,
            }
        )
    )
    print(f"  built {size:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    return built


# -- 1. Get Event throughput against nginx --------------------------------------------


def bench_get_event(workers: int, seconds: int) -> dict[str, Any]:
    f = fleet(1_000_000)
    cid = f.connector_ids[0]
    base = f"/client/v4/accounts/{f.account_id}/magic/connectors/{cid}/telemetry/events"
    env = {"CTEL_BASE": base, "CTEL_TOKEN": f.token, "CTEL_SPAN": str(fixtures.PER_CONNECTOR // 4)}
    script = HERE / "random_event.lua"
    _warm(f.db)
    with Ctel(f.db, workers) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        conn.request(
            "GET", f"{base}/{fixtures.T0 + 100}.2", headers={"Authorization": f"Bearer {f.token}"}
        )
        body = conn.getresponse().read()
        conn.close()
        wrk(server.url, script, env, 2)  # warm-up
        ctel = wrk(server.url, script, env, seconds)
        rss = server.peak_rss()
    with Nginx(body, workers) as nginx:
        wrk(nginx.url, script, env, 2)
        base_line = wrk(nginx.url, script, env, seconds)
    return {
        "ctel_rps": ctel.rps,
        "ctel_p50_ms": ctel.p50_ms,
        "ctel_p99_ms": ctel.p99_ms,
        "ctel_non_2xx": ctel.non_2xx,
        "nginx_rps": base_line.rps,
        "nginx_p50_ms": base_line.p50_ms,
        "nginx_p99_ms": base_line.p99_ms,
        "rps_ratio": round(ctel.rps / base_line.rps, 3),
        "p99_ratio": round(ctel.p99_ms / base_line.p99_ms, 2),
        "peak_rss_mb": rss,
        "command": ctel.command,
        "workers": workers,
    }


# -- 2. Ingest against bare sqlite3 executemany ---------------------------------------


def _batches(count: int, size: int, offset: int) -> list[list[dict[str, Any]]]:
    kinds = ("Init", "Reconcile", "StartRotatePki", "FinishRotatePkiSuccess", "HaTransition")
    out = []
    for b in range(count):
        t_base = fixtures.T0 + (offset + b) * size
        out.append(
            [
                {
                    "e": {"k": kinds[i % len(kinds)], "seq": i},
                    "t": t_base + i // 4,
                    "n": i % 4,
                    "v": "2026.11.2",
                }
                for i in range(size)
            ]
        )
    return out


def bare_executemany(batches: list[list[dict[str, Any]]], path: Path, wal: bool) -> float:
    """Rows/s of the straightforward schema (text ids, a JSON column, a composite primary
    key), ``executemany`` with 1000 rows per transaction: sqlite3's defaults (rollback
    journal, synchronous=FULL), or WAL with synchronous=FULL as our store runs."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (account_id TEXT, connector_id TEXT, t REAL, n REAL, "
        "a REAL, k TEXT, e TEXT, v TEXT, PRIMARY KEY (account_id, connector_id, t, n))"
    )
    account, connector = "023e105f4ecef8ad9ca31a8372d0c353", "5b1d7a5f2c8e4a9b8f0e6d2c1a3b4c5d"
    started = time.perf_counter()
    rows = 0
    for batch in batches:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    account,
                    connector,
                    ev["t"],
                    ev["n"],
                    time.time(),
                    ev["e"]["k"],
                    json.dumps(ev["e"]),
                    ev["v"],
                )
                for ev in batch
            ],
        )
        conn.execute("COMMIT")
        rows += len(batch)
    elapsed = time.perf_counter() - started
    conn.close()
    return rows / elapsed


def _post_all(port: int, path: str, token: str, bodies: list[bytes], clients: int) -> float:
    """Events/s for ``bodies`` posted by ``clients`` concurrent connections."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    accepted = [0]
    lock = threading.Lock()

    def client(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in mine:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            result = orjson.loads(response.read())
            assert response.status == 200, result
            with lock:
                accepted[0] += result["result"]["accepted"]
        conn.close()

    threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert accepted[0] == len(bodies) * 1000
    return accepted[0] / elapsed


def bench_ingest(workers: int, clients: int, batches: int, rounds: int = 5) -> dict[str, Any]:
    """Rounds alternate the baselines and ctel, each on fresh keys, so the machine's noise
    falls on both alike; the figures are medians over the rounds."""
    DATA.mkdir(exist_ok=True)
    db = DATA / "ingest.db"
    for stale in DATA.glob("ingest.db*"):
        stale.unlink()
    from connector_telemetry.service import connectors, credentials
    from connector_telemetry.settings import Settings
    from connector_telemetry.store import open_store

    store = open_store(Settings(db=str(db)))
    store.migrate()
    account = credentials.create_account(store)
    _, token = credentials.create_token(store, account, "Magic WAN Write")
    paths = []
    for r in range(rounds):
        connector, _ = connectors.create_connector(store, account, {"device": {"id": f"b{r}"}})
        paths.append(
            f"/client/v4/accounts/{account}/magic/connectors/{connector.id}/telemetry/events"
        )
    store.close()
    per_round = max(batches // rounds, 10)
    bare, bare_wal, ours = [], [], []
    with Ctel(db, workers) as server:
        for r in range(rounds):
            batch_list = _batches(per_round, 1000, r * per_round)
            bare.append(bare_executemany(batch_list, DATA / "bare.db", wal=False))
            bare_wal.append(bare_executemany(batch_list, DATA / "bare.db", wal=True))
            bodies = [orjson.dumps(b) for b in batch_list]
            ours.append(_post_all(server.port, paths[r], token, bodies, clients))
        rss = server.peak_rss()
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    ratios_wal = [o / b for o, b in zip(ours, bare_wal, strict=True)]
    return {
        "ctel_events_per_s": round(statistics.median(ours)),
        "bare_rows_per_s": round(statistics.median(bare)),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_per_round": [round(x, 2) for x in ratios],
        "bare_wal_rows_per_s": round(statistics.median(bare_wal)),
        "ratio_wal": round(statistics.median(ratios_wal), 3),
        "clients": clients,
        "batch": 1000,
        "batches": per_round * rounds,
        "rounds": rounds,
        "peak_rss_mb": rss,
        "workers": workers,
    }


def _warm(db: Path) -> None:
    """Read the database file once, so the OS page cache holds it as it would on a server
    in steady state: the scale figures compare index depth, not a cold disk."""
    for path in (db, Path(str(db) + "-wal")):
        if path.exists():
            with path.open("rb") as stream:
                while stream.read(1 << 24):
                    pass


def _paths(f: fixtures.Fleet, rng: random.Random, requests: int) -> tuple[list[str], list[str]]:
    """Random Get Event paths, and List pages deep inside the range (from the connector's
    start, continuing after a random stored event, as a client paging with cursors)."""
    size = f.total
    gets, lists = [], []
    for _ in range(requests):
        cid, t, n = f.key(rng.randrange(size))
        base = f"/client/v4/accounts/{f.account_id}/magic/connectors/{cid}/telemetry/events"
        gets.append(f"{base}/{t}.{n}")
    to = fixtures.T0 + 10**7
    query = fingerprint(float(fixtures.T0), float(to), None)
    for _ in range(max(requests // 10, 20)):
        cid, t, n = f.key(rng.randrange(max(size - 1000, 1)))
        base = f"/client/v4/accounts/{f.account_id}/magic/connectors/{cid}/telemetry/events"
        cursor = encode_cursor(query, (float(t), float(n)))
        lists.append(f"{base}?from={fixtures.T0}&to={to}&limit=1000&cursor={cursor}")
    return gets, lists


def bench_scale(sizes: list[int], workers: int, requests: int) -> dict[str, Any]:
    """All sizes served at once and queried in turn, request by request, so that whatever
    else the machine does falls on every size alike."""
    rng = random.Random(5)
    fleets = [fleet(size) for size in sizes]
    plans = [_paths(f, rng, requests) for f in fleets]
    for f in fleets:
        _warm(f.db)
    times: list[dict[str, list[float]]] = [{"get": [], "list": []} for _ in sizes]
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
    out: dict[str, Any] = {}
    for k, size in enumerate(sizes):
        out[str(size)] = {
            "get_p50_ms": round(statistics.median(times[k]["get"]), 3),
            "list_1000_p50_ms": round(statistics.median(times[k]["list"]), 3),
            "peak_rss_mb": rss[k],
        }
        print(f"  scale {size:,}: {out[str(size)]}", flush=True)
    small, large = out[str(sizes[0])], out[str(sizes[-1])]
    out["get_ratio_largest_vs_smallest"] = round(large["get_p50_ms"] / small["get_p50_ms"], 2)
    out["list_ratio_largest_vs_smallest"] = round(
        large["list_1000_p50_ms"] / small["list_1000_p50_ms"], 2
    )
    return out


# -- report ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for name in ("connector-telemetry", "granian", "orjson"):
        from importlib.metadata import version

        versions[name] = version(name)
    versions["sqlite"] = sqlite3.sqlite_version
    versions["python"] = platform.python_version()
    for tool, flag in (("nginx", "-v"), ("wrk", "-v")):
        done = subprocess.run([tool, flag], capture_output=True, text=True)
        versions[tool] = (done.stderr or done.stdout).strip().splitlines()[0]
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "versions": versions,
    }


def markdown(report: dict[str, Any]) -> str:
    g, i, s = report.get("get_event"), report.get("ingest"), report.get("scale")
    lines = [
        f"# Benchmark results ({report['date']})",
        "",
        f"Machine: {report['machine']['cores']} cores, {report['machine']['cpu']}; "
        f"command: `{report['command']}`",
        "",
        "| figure | ctel | baseline | ratio | target |",
        "|---|---|---|---|---|",
    ]
    if g:
        lines.append(
            f"| Get Event req/s ({g['workers']} workers, wrk -t1 -c64) | "
            f"{g['ctel_rps']:,.0f} | nginx {g['nginx_rps']:,.0f} | {g['rps_ratio']} "
            "| >= 0.40 |"
        )
        lines.append(
            f"| Get Event p99 ms | {g['ctel_p99_ms']} | nginx {g['nginx_p99_ms']} | "
            f"{g['p99_ratio']} | <= 2 |"
        )
    if i:
        lines.append(
            f"| Ingest events/s ({i['clients']} clients x 1000-event batches, median of "
            f"{i['rounds']} alternating rounds) | "
            f"{i['ctel_events_per_s']:,} | bare executemany {i['bare_rows_per_s']:,} | "
            f"{i['ratio']} | >= 1.0 |"
        )
        lines.append(
            f"| Ingest events/s against bare executemany in WAL mode (stricter) | "
            f"{i['ctel_events_per_s']:,} | {i['bare_wal_rows_per_s']:,} | {i['ratio_wal']} | |"
        )
    if s:
        sizes = [k for k in s if k.isdigit()]
        lines.append(
            f"| Get Event p50, {int(sizes[-1]):,} vs {int(sizes[0]):,} events | "
            f"{s[sizes[-1]]['get_p50_ms']} ms | {s[sizes[0]]['get_p50_ms']} ms | "
            f"{s['get_ratio_largest_vs_smallest']} | <= 1.2 |"
        )
        lines.append(
            f"| List 1000 (a cursor page deep in the range) p50, {int(sizes[-1]):,} vs "
            f"{int(sizes[0]):,} events | "
            f"{s[sizes[-1]]['list_1000_p50_ms']} ms | {s[sizes[0]]['list_1000_p50_ms']} "
            f"ms | {s['list_ratio_largest_vs_smallest']} | <= 1.2 |"
        )
        peak = max(max(s[k]["peak_rss_mb"] or [0]) for k in sizes)
        lines.append(
            f"| Peak RSS per worker (MB, up to {int(sizes[-1]):,} events) | {peak} | | | <= 100 |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=["get", "ingest", "scale"], action="append")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    only = set(args.only or ["get", "ingest", "scale"])
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    if "get" in only:
        print("get event vs nginx ...", flush=True)
        report["get_event"] = bench_get_event(args.workers, args.seconds)
        print(" ", report["get_event"], flush=True)
    if "ingest" in only:
        print("ingest vs bare executemany ...", flush=True)
        report["ingest"] = bench_ingest(args.workers, args.clients, args.batches)
        print(" ", report["ingest"], flush=True)
    if "scale" in only:
        print("scale ...", flush=True)
        sizes = [int(s) for s in args.sizes.split(",")]
        report["scale"] = bench_scale(sizes, args.workers, args.requests)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
