"""``python -m bench``: where ctel stands against this machine's limits.

Every figure is a ratio against a baseline measured in the same run (these
machines are shared and noisy). See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench import fixtures, measure
from bench.baselines import TABLES, bare_postgres, bare_sqlite
from bench.report import machine, markdown

HERE = Path(__file__).parent
DATA = HERE / ".data"
RESULTS = HERE / "results"
PARTS = (
    "get",
    "ingest",
    "scale",
    "snapshots",
    "postgres",
    "pg-purge",
    "dashboard",
    "backup",
    "metrics",
    "fleet-scrape",
    "testkit",
    "streams",
)


def fleet(size: int, kind: str = "events") -> fixtures.Fleet:
    """A cached SQLite database with ``size`` events or snapshots (built once, reused by
    later runs)."""
    DATA.mkdir(exist_ok=True)
    db = DATA / f"{kind}-{size}.db"
    meta = db.with_suffix(".json")
    if db.exists() and meta.exists():
        m = json.loads(meta.read_text())
        return fixtures.Fleet(str(db), m["account_id"], m["token"], m["connector_ids"], size, kind)
    for stale in DATA.glob(f"{kind}-{size}.db*"):
        stale.unlink()
    started = time.perf_counter()
    built = fixtures.build(str(db), size, kind)
    meta.write_text(
        json.dumps(
            {
                "account_id": built.account_id,
                "token": built.token,
                "connector_ids": built.connector_ids,
            }
        )
    )
    print(f"  built {size:,} {kind} in {time.perf_counter() - started:.0f} s", flush=True)
    return built


#: this run's scratch databases (ingest targets, baselines), removed when it ends: its own
#: folder, so that two runs at once (on a shared machine) do not delete each other's files
SCRATCH = DATA / f"run-{os.getpid()}"


def fresh_sqlite(name: str) -> str:
    """The path of a new, empty SQLite database in this run's scratch folder."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for stale in SCRATCH.glob(f"{name}.db*"):
        stale.unlink()
    return str(SCRATCH / f"{name}.db")


def sqlite_baselines(kind: str) -> dict[str, measure.Baseline]:
    """In-process sqlite3 ``executemany`` of the same items: with sqlite3's defaults, and
    (stricter, suffix ``_wal``) in WAL mode with synchronous=FULL as our store runs."""
    table, path = TABLES[kind], Path(fresh_sqlite("bare"))
    return {
        "": partial(bare_sqlite, table, path=path, wal=False),
        "_wal": partial(bare_sqlite, table, path=path, wal=True),
    }


# -- the parts -------------------------------------------------------------------------


def bench_get_event(args: argparse.Namespace) -> dict[str, Any]:
    return measure.versus_nginx(fleet(1_000_000), args.workers, args.seconds)


def bench_ingest(args: argparse.Namespace) -> dict[str, Any]:
    return measure.ingest_rounds(
        fresh_sqlite("ingest"),
        "events",
        sqlite_baselines("events"),
        args.workers,
        args.clients,
        args.batches,
        1000,
        args.rounds,
    )


def bench_scale(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    return measure.scale([fleet(size) for size in sizes], args.workers, args.requests)


def bench_snapshots(args: argparse.Namespace) -> dict[str, Any]:
    print("  snapshot ingest vs bare executemany ...", flush=True)
    ingest = measure.ingest_rounds(
        fresh_sqlite("ingest-snapshots"),
        "snapshots",
        sqlite_baselines("snapshots"),
        args.workers,
        args.clients,
        args.snapshot_batches,
        args.snapshot_batch,
        args.rounds,
    )
    print(" ", ingest, flush=True)
    print("  get snapshot vs nginx ...", flush=True)
    get = measure.versus_nginx(fleet(args.snapshot_size, "snapshots"), args.workers, args.seconds)
    return {"ingest": ingest, "get": get}


def bench_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """Get Event, List Events (1000-item pages), Latest, ingest, scale and memory on a
    durable throwaway PostgreSQL cluster, its fixtures built in each run (the cluster, in
    /tmp, goes when the run ends); then, for each round trip of ``--pg-rtts`` above 0,
    the same reads and ingest with ``bench/netdelay.py`` between ctel and PostgreSQL."""
    from bench import multinode
    from bench.netdelay import ProxyProcess, round_trip_ms
    from connector_telemetry.testing import TemporaryPostgres

    sizes = sorted(int(s) for s in args.pg_sizes.split(","))
    rtts = [float(x) for x in args.pg_rtts.split(",")]
    nodes = [int(x) for x in args.pg_nodes.split(",")]
    pg = TemporaryPostgres(durable=True, use_database_url=False)
    try:
        fleets = []
        for size in sizes:
            started = time.perf_counter()
            fleets.append(fixtures.build(pg.new_database(f"bench_{size}"), size))
            print(
                f"  built {size:,} events on PostgreSQL in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        out: dict[str, Any] = {"sizes": sizes, "network": {}}
        wanted = set(args.pg_parts.split(","))
        for rtt in rtts:
            if rtt <= 0:
                out.update(_pg_reads_and_ingest(args, pg, fleets[-1], None, wanted))
                if "scale" in wanted:
                    print("  scale ...", flush=True)
                    out["scale"] = measure.scale(fleets, args.workers, args.requests)
                if "nodes" in wanted:
                    print("  nodes behind nginx ...", flush=True)
                    out["nodes"] = multinode.run(fleets[-1], pg.data, nodes, args.seconds)
                continue
            print(f"  through bench/netdelay.py, {rtt} ms round trip ...", flush=True)
            with ProxyProcess(("127.0.0.1", pg.port), rtt / 2) as proxy:
                part = _pg_reads_and_ingest(args, pg, fleets[-1], proxy, wanted)
                if "nodes" in wanted:
                    print("  nodes behind nginx ...", flush=True)
                    part["nodes"] = multinode.run(
                        fleets[-1], pg.data, nodes, args.seconds, proxy.url(fleets[-1].db)
                    )
                part["rtt_ms_set"] = rtt
                part["select_1_ms_direct"] = round_trip_ms(fleets[-1].db)
                part["select_1_ms_proxied"] = round_trip_ms(proxy.url(fleets[-1].db))
            out["network"][str(rtt)] = part
            print(" ", {k: v for k, v in part.items() if not isinstance(v, dict)}, flush=True)
    finally:
        pg.stop()
    parts = [out.get(k) for k in ("get_event", "list", "latest", "ingest")]
    rss = [p["peak_rss_mb"] for p in parts if p]
    rss += [out["scale"][str(size)]["peak_rss_mb"] for size in sizes if "scale" in out]
    out["peak_rss_mb"] = max((max(r) for r in rss if r), default=0.0)
    return out


def _pg_reads_and_ingest(
    args: argparse.Namespace, pg: Any, big: fixtures.Fleet, proxy: Any, wanted: set[str]
) -> dict[str, Any]:
    """Get Event, List, Latest against nginx and ingest against bare psycopg, ctel (and
    the bare baselines) talking to PostgreSQL directly (``proxy`` None: its Unix socket)
    or through ``proxy``; with a proxy, its CPU seconds per request too. ``wanted``:
    ``reads``, ``ingest`` (``--pg-parts``)."""
    serve = None if proxy is None else proxy.url(big.db)
    out: dict[str, Any] = {}
    reads = (("get_event", None), ("list", "list"), ("latest", "latest"))
    for key, page in reads if "reads" in wanted else ():
        print(f"  {key} vs nginx ...", flush=True)
        cpu = proxy.cpu_seconds() if proxy else 0.0
        out[key] = measure.versus_nginx(big, args.workers, args.seconds, page=page, serve_db=serve)
        if proxy is not None:
            requests = out[key]["ctel_rps"] * (args.seconds + 2) * out[key]["rounds"]
            spent = proxy.cpu_seconds() - cpu
            out[key]["proxy_cpu_us_per_request"] = round(spent / requests * 1e6, 1)
        print(" ", out[key], flush=True)
    if "ingest" not in wanted:
        return out
    print("  ingest vs bare psycopg ...", flush=True)
    bare_db, table = pg.new_database("bench_bare"), TABLES["events"]
    target = pg.new_database("bench_ingest")
    if proxy is not None:
        bare_db, target = proxy.url(bare_db), proxy.url(target)
    cpu = proxy.cpu_seconds() if proxy else 0.0
    out["ingest"] = measure.ingest_rounds(
        target,
        "events",
        {
            "": partial(bare_postgres, table, url=bare_db, copy=False),
            "_copy": partial(bare_postgres, table, url=bare_db, copy=True),
        },
        args.workers,
        args.clients,
        args.batches,
        1000,
        args.rounds,
    )
    if proxy is not None:  # ctel's batches and the two baselines' went through it
        batches = 3 * out["ingest"]["batches"]
        out["ingest"]["proxy_cpu_ms_per_1000_event_batch"] = round(
            (proxy.cpu_seconds() - cpu) / batches * 1e3, 2
        )
    print(" ", out["ingest"], flush=True)
    return out


def bench_pg_purge(args: argparse.Namespace) -> dict[str, Any]:
    """Purging a month of ``--purge-rows`` events: the partition dropped vs a batched
    DELETE of as many rows (bench/pg_purge.py), on a durable throwaway cluster."""
    from bench import pg_purge
    from connector_telemetry.testing import TemporaryPostgres

    with TemporaryPostgres(durable=True, use_database_url=False) as pg:
        return pg_purge.run(pg.new_database("bench_purge"), args.purge_rows)


def bench_dashboard(args: argparse.Namespace) -> dict[str, Any]:
    """The dashboard in Chromium: the fleet page with 10,000 connectors, a week of
    one-minute snapshots drawn, the bytes of a first load (bench/dashboard.py)."""
    from bench import dashboard

    DATA.mkdir(exist_ok=True)
    return dashboard.run(DATA / "dashboard.db", args.workers, args.browser_rounds)


def bench_backup(args: argparse.Namespace) -> dict[str, Any]:
    """``ctel backup`` of the 100k-snapshot store (~1 GB) vs a plain copy (bench/backup.py)."""
    from bench import backup

    return backup.run(fleet(args.snapshot_size, "snapshots").db, SCRATCH, args.rounds)


def bench_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """Get Event with ctel's own metrics on vs off (measure.metrics_cost)."""
    size = max(int(x) for x in args.sizes.split(","))
    SCRATCH.mkdir(parents=True, exist_ok=True)
    return measure.metrics_cost(
        fleet(min(size, 1_000_000)),
        str(SCRATCH / "metrics-ingest.db"),
        args.workers,
        args.seconds,
        args.rounds,
    )


def bench_fleet_scrape(args: argparse.Namespace) -> dict[str, Any]:
    """``/metrics/accounts/{id}`` for 10,000 connectors (bench/fleet_scrape.py)."""
    from bench import fleet_scrape

    DATA.mkdir(exist_ok=True)
    return fleet_scrape.run(DATA / "fleet-scrape.db", args.workers, args.rounds)


def bench_testkit(args: argparse.Namespace) -> dict[str, Any]:
    """The testing kit's start and reset times (bench/testkit.py)."""
    from bench import testkit

    return testkit.run(args.rounds)


def bench_streams(args: argparse.Namespace) -> dict[str, Any]:
    """Live streams (issue 10): delivery latency with 1, 100 and 1000 subscribers, memory
    per idle subscriber, the poller's cost at idle, ingest with subscribers; on SQLite and
    on a durable throwaway PostgreSQL (bench/streams.py)."""
    from bench import streams
    from connector_telemetry.testing import TemporaryPostgres

    out = {
        "sqlite": streams.run(
            fresh_sqlite("streams"), args.workers, args.seconds, args.rounds, args.batches
        )
    }
    if "postgres" not in args.stream_stores.split(","):
        return out
    pg = TemporaryPostgres(durable=True, use_database_url=False)
    try:
        print("  on PostgreSQL ...", flush=True)
        out["postgres"] = streams.run(
            pg.new_database("bench_streams"), args.workers, args.seconds, args.rounds, args.batches
        )
    finally:
        pg.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run only this part (repeatable)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--sizes", default="10000,1000000,10000000", help="scale: event counts")
    parser.add_argument("--clients", type=int, default=4, help="ingest: concurrent clients")
    parser.add_argument(
        "--batches",
        type=int,
        default=1000,
        help="event ingest: 1000-event batches in all (rounds of ~1 s: steady state)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="ingest: alternating rounds")
    parser.add_argument("--requests", type=int, default=2000, help="scale: Get Event requests")
    parser.add_argument(
        "--snapshot-size", type=int, default=100_000, help="Get Snapshot: stored snapshots"
    )
    parser.add_argument(
        "--snapshot-batch", type=int, default=100, help="snapshot ingest: snapshots per batch"
    )
    parser.add_argument(
        "--snapshot-batches", type=int, default=500, help="snapshot ingest: batches in all"
    )
    parser.add_argument(
        "--pg-sizes",
        default="10000,1000000",
        help="PostgreSQL: event counts built for scale; the largest serves Get Event",
    )
    parser.add_argument(
        "--pg-rtts",
        default="0,0.5",
        help="PostgreSQL: round trips (ms) between ctel and PostgreSQL; 0 is direct, "
        "others go through bench/netdelay.py with half of it each way",
    )
    parser.add_argument(
        "--pg-nodes", default="1,2,3", help="PostgreSQL: node counts behind nginx (1 worker each)"
    )
    parser.add_argument(
        "--pg-parts",
        default="reads,ingest,scale,nodes",
        help="PostgreSQL: which of reads (Get Event, List, Latest), ingest, scale, nodes",
    )
    parser.add_argument(
        "--purge-rows", type=int, default=10_000_000, help="pg-purge: events in the month purged"
    )
    parser.add_argument(
        "--browser-rounds", type=int, default=5, help="dashboard: page loads per figure"
    )
    parser.add_argument(
        "--stream-stores", default="sqlite,postgres", help="streams: sqlite, or both stores"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="folder for latest.json and latest.md (default bench/results; another one for "
        "trial runs that should not replace the recorded results)",
    )
    args = parser.parse_args()
    # SIGTERM (``timeout``, a CI job's end) unwinds like Ctrl-C: every server, nginx and
    # the PostgreSQL cluster is stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = [part for part in PARTS if part in (args.only or PARTS)]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": machine(),
    }
    steps = {
        "get": ("get_event", "get event vs nginx", bench_get_event),
        "ingest": ("ingest", "ingest vs bare executemany", bench_ingest),
        "scale": ("scale", "scale", bench_scale),
        "snapshots": ("snapshots", "snapshots", bench_snapshots),
        "postgres": ("postgres", "postgresql", bench_postgres),
        "pg-purge": ("pg_purge", "postgresql: purging a month", bench_pg_purge),
        "dashboard": ("dashboard", "dashboard in chromium", bench_dashboard),
        "backup": ("backup", "ctel backup vs a plain copy", bench_backup),
        "metrics": ("metrics", "get event and ingest, metrics on vs off", bench_metrics),
        "fleet-scrape": ("fleet_scrape", "the fleet scrape, 10,000 connectors", bench_fleet_scrape),
        "testkit": ("testkit", "testing kit: start and reset", bench_testkit),
        "streams": ("streams", "live streams", bench_streams),
    }
    try:
        for part in only:
            key, title, run = steps[part]
            print(f"{title} ...", flush=True)
            started = time.perf_counter()
            report[key] = run(args)
            if part in ("get", "ingest"):
                print(" ", report[key], flush=True)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results / "latest.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
