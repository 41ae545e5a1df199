"""``python -m bench.testmode``: what test mode (issue 11) costs a request when no fault or
limit is set: Get Connector and List Connectors served by ``ctel serve --test-mode``
against the same database served by a plain ``ctel serve``, side by side, wrk alternating
between them (as ``measure.metrics_cost`` does); the ratio of throughputs (test / plain),
median over the rounds, and the per-request cost it implies (1/rps_test - 1/rps_plain per
worker). In test mode every API request also reads the test state and writes its journal
line before answering.

    .venv/bin/python -m bench.testmode --seconds 5 --rounds 3 --workers 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.procs import Ctel, _ms


def _wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    cmd = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(out.split("Requests/sec:")[1].split()[0])
    p50 = _ms(out.split(" 50%")[1].split()[0])
    p99 = _ms(out.split(" 99%")[1].split()[0])
    bad = out.split("Non-2xx or 3xx responses:")[1].split()[0] if "Non-2xx" in out else "0"
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(bad)}


def run(workers: int, seconds: int, rounds: int, connections: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="ctel-bench-testmode-"))
    db = str(folder / "test.db")
    test_env = {"CTEL_TEST_MODE": "true", "CTEL_AUTH_FAILURES_PER_MINUTE": "0"}
    results: dict[str, Any] = {}
    with Ctel(db, workers, env=test_env) as test, Ctel(db, workers) as plain:
        made = httpx.post(test.url + "/_ctel/accounts", json={}).json()["result"]
        base = f"/client/v4/accounts/{made['account_id']}/magic/connectors"
        auth = {"Authorization": f"Bearer {made['token']}"}
        for i in range(5):
            httpx.post(test.url + base, json={"device": {"serial_number": f"B{i}"}}, headers=auth)
        cid = httpx.get(test.url + base, headers=auth).json()["result"][0]["id"]
        for name, path in (("connectors.get", f"{base}/{cid}"), ("connectors.list", base)):
            on: list[dict[str, float]] = []
            off: list[dict[str, float]] = []
            for _ in range(rounds):
                for server, out in ((test, on), (plain, off)):
                    _wrk(server.url + path, made["token"], 1, connections)  # warm-up
                    out.append(_wrk(server.url + path, made["token"], seconds, connections))
                httpx.delete(test.url + "/_ctel/requests")  # the journal stays small
            ratios = [a["rps"] / b["rps"] for a, b in zip(on, off, strict=True)]
            test_rps = statistics.median(r["rps"] for r in on)
            plain_rps = statistics.median(r["rps"] for r in off)
            results[name] = {
                "test_mode_rps": round(test_rps),
                "plain_rps": round(plain_rps),
                "rps_ratio": round(statistics.median(ratios), 3),
                "rps_ratio_per_round": [round(x, 3) for x in ratios],
                "added_ms_per_request_per_worker": round(
                    (1 / test_rps - 1 / plain_rps) * 1000 * workers, 3
                ),
                "p99_test_ms": statistics.median(r["p99_ms"] for r in on),
                "p99_plain_ms": statistics.median(r["p99_ms"] for r in off),
                "non_2xx": sum(r["non_2xx"] for r in on + off),
            }
    results["settings"] = {
        "workers": workers,
        "seconds": seconds,
        "rounds": rounds,
        "connections": connections,
        "store": "sqlite",
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.testmode", description=__doc__)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(run(args.workers, args.seconds, args.rounds, args.connections), indent=2))


if __name__ == "__main__":
    main()
