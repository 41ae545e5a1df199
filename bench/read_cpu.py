"""CPU per PostgreSQL read, as served (issue 13): ``ctel serve`` (granian) on a durable
throwaway cluster with 10,000 events, wrk -t1 -c64 for 5 s per figure (Get Event, Get
latest Events), the workers' and PostgreSQL's CPU seconds from ``/proc/<pid>/stat``
divided by the requests served. With ``--old-src DIR`` (another checkout's ``src``, e.g.
``git archive main src | tar -x -C /tmp/old``) the old code is measured too, alternating
round by round (the servers get ``PYTHONPATH=DIR``). One JSON line per figure::

    python -m bench.read_cpu --workers 1 --rounds 2 --old-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import suppress
from pathlib import Path

from bench.fixtures import build
from bench.multinode import postgres_pids
from bench.netdelay import cpu_seconds
from bench.procs import Ctel, wrk
from connector_telemetry.testing.postgres import TemporaryPostgres

HERE = Path(__file__).parent


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(FileNotFoundError, ProcessLookupError):  # a backend that ended
            total += cpu_seconds(pid)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--old-src", help="another checkout's src folder, measured too")
    args = parser.parse_args()
    codes = [("new", os.environ.get("PYTHONPATH", ""))]
    if args.old_src:
        codes.append(("old", args.old_src))
    routes = [
        ("get", HERE / "random_key.lua", {}),
        ("latest", HERE / "pages.lua", {"CTEL_PAGE": "latest"}),
    ]
    pg = TemporaryPostgres(durable=True, use_database_url=False)  # (started)
    try:
        url = pg.new_database("bench_read_cpu")
        fleet = build(url, 10_000)
        for round_ in range(args.rounds):
            for code, path in codes:
                env = {"PYTHONPATH": path}
                with Ctel(url, args.workers, env=env) as ctel:
                    workers = ctel.worker_pids()
                    for route, script, extra in routes:
                        wrk_env = {**fleet.wrk_env(), **extra}
                        wrk(ctel.url, script, wrk_env, 1)  # warm
                        node = _cpu(workers)
                        db = _cpu(postgres_pids(pg.data))
                        result = wrk(ctel.url, script, wrk_env, args.seconds)
                        node = _cpu(workers) - node
                        db = _cpu(postgres_pids(pg.data)) - db
                        served = result.rps * args.seconds
                        line = {
                            "round": round_,
                            "code": code,
                            "route": route,
                            "workers": args.workers,
                            "rps": round(result.rps),
                            "p99_ms": result.p99_ms,
                            "node_cpu_us": round(node / served * 1e6, 1),
                            "postgres_cpu_us": round(db / served * 1e6, 1),
                            "non_2xx": result.non_2xx,
                        }
                        print(json.dumps(line), flush=True)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
