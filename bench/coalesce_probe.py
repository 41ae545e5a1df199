"""PostgreSQL's CPU per Get Event, two ways (issue 13): 10 prepared executes in one pipeline
sync vs one statement joining ``unnest()`` of the 10 keys (what ``store/pg_pipeline.py``'s
``Lookups`` now sends for a batch's Get Events). Serial, one connection, the
Unix socket, a durable throwaway cluster with 10,000 events; the backend's CPU from /proc.

    python -m bench.coalesce_probe
"""

from __future__ import annotations

import random
import time

import psycopg

from bench.fixtures import build
from bench.netdelay import cpu_seconds
from connector_telemetry.store.postgres import EVENTS_BY_KEY
from connector_telemetry.testing.postgres import TemporaryPostgres

SINGLE = "SELECT doc FROM events WHERE cpk=%s AND t=%s AND n=%s"
MANY = EVENTS_BY_KEY  # what the store sends (``pg_pipeline.Lookups``)
GETS, BATCH = 20_000, 10


def main() -> None:
    pg = TemporaryPostgres(durable=True, use_database_url=False)
    try:
        url = pg.new_database("bench_coalesce")
        build(url, 10_000)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")
            (backend,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (0,)
            (cpk,) = conn.execute("SELECT cpk FROM events LIMIT 1").fetchone() or (0,)
            keys = conn.execute("SELECT t, n FROM events WHERE cpk=%s", (cpk,)).fetchall()
            rng = random.Random(1)
            for round_ in range(3):
                for mode in ("pipeline", "unnest"):
                    picks = [rng.choice(keys) for _ in range(GETS)]
                    server, client = cpu_seconds(backend), time.process_time()
                    for i in range(0, GETS, BATCH):
                        chunk = picks[i : i + BATCH]
                        if mode == "pipeline":
                            with conn.pipeline():
                                cursors = [
                                    conn.cursor().execute(
                                        SINGLE, (cpk, t, n), prepare=True, binary=True
                                    )
                                    for t, n in chunk
                                ]
                            assert all(cur.fetchone() for cur in cursors)
                        else:
                            args = (
                                [cpk] * len(chunk),
                                [t for t, _ in chunk],
                                [n for _, n in chunk],
                            )
                            rows = conn.execute(MANY, args, prepare=True, binary=True).fetchall()
                            assert len(rows) == len(chunk)
                    server = cpu_seconds(backend) - server
                    client = time.process_time() - client
                    print(
                        f"round {round_}, {mode}: PostgreSQL {1e6 * server / GETS:.1f} us per Get"
                        f" Event; this client {1e6 * client / GETS:.1f} us (psycopg's, not ctel's)"
                    )
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
