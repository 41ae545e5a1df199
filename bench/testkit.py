"""``python -m bench --only testkit``: how fast the testing kit (issue 11) starts and resets.

- **Start**: ``CtelServer()`` from ``start()`` to ready with its credentials (a new process
  ``ctel serve --test-mode``, a new SQLite database migrated, granian's worker forked,
  ``/healthz`` answering, ``POST /_ctel/accounts``), median and worst of ``rounds`` starts;
  ``stop()`` timed too. Baseline, alternating with it: ``python -m connector_telemetry
  --version`` (a new interpreter importing the CLI), the floor any start pays.
- **Reset**: ``reset()`` (``POST /_ctel/reset``) with a simulated fleet in the store (3
  connectors, a day of events and 5-minute snapshots, refilled before each reset) and on an
  empty store; baseline: ``GET /healthz`` on the same server (one HTTP round trip that does
  nothing), alternating with it.

Targets (the issue): start < 1 s, reset < 50 ms. Standalone: ``python -m bench.testkit``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from connector_telemetry.testing import CtelServer


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def _ms(seconds: float) -> float:
    return seconds * 1000


def starts(rounds: int) -> dict[str, Any]:
    start, stop, floor = [], [], []
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "connector_telemetry", "--version"],
            check=True,
            capture_output=True,
        )
        floor.append(_ms(time.perf_counter() - began))
        server = CtelServer()
        began = time.perf_counter()
        server.start()
        start.append(_ms(time.perf_counter() - began))
        began = time.perf_counter()
        server.stop()
        stop.append(_ms(time.perf_counter() - began))
    return {
        "start_ms": _median(start),
        "start_max_ms": round(max(start), 2),
        "stop_ms": _median(stop),
        "interpreter_and_cli_ms": _median(floor),
        "ratio": round(statistics.median(start) / statistics.median(floor), 2),
        "rounds": rounds,
    }


def resets(rounds: int) -> dict[str, Any]:
    full, empty, health = [], [], []
    removed: dict[str, int] = {}
    with CtelServer() as server:
        for i in range(rounds):
            server.simulate(connectors=3, days=1, seed=i, start=1_700_000_000)
            began = time.perf_counter()
            removed = server.reset()
            full.append(_ms(time.perf_counter() - began))
            began = time.perf_counter()
            server.reset()
            empty.append(_ms(time.perf_counter() - began))
            began = time.perf_counter()
            with urllib.request.urlopen(server.url + "/healthz") as answer:
                answer.read()
            health.append(_ms(time.perf_counter() - began))
    return {
        "reset_ms": _median(full),
        "reset_max_ms": round(max(full), 2),
        "removed": removed,
        "reset_empty_ms": _median(empty),
        "healthz_ms": _median(health),
        "ratio": round(statistics.median(full) / statistics.median(health), 2),
        "rounds": rounds,
    }


def run(rounds: int) -> dict[str, Any]:
    print("  CtelServer start vs a bare CLI start ...", flush=True)
    start = starts(max(rounds, 3))
    print(" ", start, flush=True)
    print("  reset (3 simulated connectors, a day) vs GET /healthz ...", flush=True)
    reset = resets(max(rounds, 3))
    print(" ", reset, flush=True)
    return {"start": start, "reset": reset}


def markdown_rows(part: dict[str, Any]) -> list[str]:
    s, r = part["start"], part["reset"]
    removed = r["removed"]
    return [
        f"| Testing kit: `CtelServer()` start to ready with credentials (median of "
        f"{s['rounds']}; worst {s['start_max_ms']:,} ms; stop {s['stop_ms']:,} ms) | "
        f"{s['start_ms']:,} ms | `python -m connector_telemetry --version` "
        f"{s['interpreter_and_cli_ms']:,} ms | {s['ratio']} | < 1000 ms |",
        f"| Testing kit: `reset()` with {removed.get('connectors', 0)} connectors, "
        f"{removed.get('events', 0):,} events, {removed.get('snapshots', 0):,} snapshots "
        f"(median of {r['rounds']}; worst {r['reset_max_ms']:,} ms; empty "
        f"{r['reset_empty_ms']:,} ms) | {r['reset_ms']:,} ms | GET /healthz "
        f"{r['healthz_ms']:,} ms | {r['ratio']} | < 50 ms |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.testkit", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
