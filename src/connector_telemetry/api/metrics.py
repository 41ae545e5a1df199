"""ctel's own metrics, for Prometheus: ``Metrics`` (the per-request hook and the counters)
and the ``/metrics`` route.

Exact across granian's worker processes (each worker's counts reach the scrape within a
second; the worker that answers a scrape, at once): ``ctel serve`` gives every server a fresh folder
in ``PROMETHEUS_MULTIPROC_DIR`` before its workers start, each worker writes its values to
its own memory-mapped files there (``prometheus_client``'s multiprocess mode), and a scrape,
answered by any worker, sums every worker's files. In a process without that folder (an app
built by tests, or served by another server) the values are this process's own.

Names follow Prometheus' conventions (``ctel_`` prefix, seconds, ``_total``). No label
carries an account, connector or token id: routes are named by their operation id
(``events.get``), so the number of series is fixed by the code, not by the fleet.

``/metrics`` (at the server's root, beside ``/healthz``) answers, by ``metrics``:
``token`` (the default) any valid API token, Read or Write, of any account (Prometheus:
``authorization: {credentials: TOKEN}``), and nothing else (user keys and license keys
are refused); ``public`` anyone (for a private scrape network); ``off``: the route does
not exist and nothing is counted. The Prometheus text format, or OpenMetrics when the
scraper's ``Accept`` asks for it.
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connector_telemetry import __version__
from connector_telemetry.api.route import Prepared, Route
from connector_telemetry.errors import Forbidden
from connector_telemetry.service import fleet_metrics

if TYPE_CHECKING:
    from connector_telemetry.api.context import Context
    from connector_telemetry.api.request import Request
    from connector_telemetry.store.base import Store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Request durations: from 0.25 ms (a cached Get Event) to 10 s (a write waiting its turn).
#: How often each worker hands its counts to prometheus_client (a scrape sees them then;
#: the worker answering a scrape flushes first).
FLUSH_SECONDS = 0.25
BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self) -> None:
        # Imported here, not at module level: prometheus_client picks its storage
        # (multiprocess files or memory) when first imported, which must come after
        # ``ctel serve`` has set PROMETHEUS_MULTIPROC_DIR for its workers.
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ctel_http_requests_total",
            "HTTP requests answered, by route (operation id), method and status.",
            ("route", "method", "status"),
            registry=r,
        )
        self.duration = Histogram(
            "ctel_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ("route",),
            buckets=BUCKETS,
            registry=r,
        )
        self.ingested = Counter(
            "ctel_ingest_items_total",
            "Events and snapshots in acknowledged ingest requests, by kind and outcome "
            "(accepted: stored now; duplicate: already stored).",
            ("kind", "outcome"),
            registry=r,
        )
        self.refused = Counter(
            "ctel_ingest_refused_total",
            "Ingest requests refused, by kind and the answer's error code.",
            ("kind", "code"),
            registry=r,
        )
        self.writes = Histogram(
            "ctel_store_write_seconds",
            "Time a write request spent on the writer thread, queue wait included.",
            buckets=BUCKETS,
            registry=r,
        )
        self.reads = Histogram(
            "ctel_store_read_seconds",
            "Time a read request spent reading on the event loop (its store queries and "
            "the answer's assembly; the loop answers nothing else meanwhile).",
            buckets=BUCKETS,
            registry=r,
        )
        self.steps = {
            step: Histogram(name, text, buckets=BUCKETS, registry=r)
            for step, name, text in (
                (
                    "write",
                    "ctel_store_write_transaction_seconds",
                    "Time a write transaction took, from its start to its commit.",
                ),
                (
                    "writer_turn",
                    "ctel_store_writer_turn_wait_seconds",
                    "SQLite: time a write waited for the database's cross-process writer turn.",
                ),
                (
                    "pool",
                    "ctel_store_pool_wait_seconds",
                    "PostgreSQL: time a write waited for a pooled connection.",
                ),
            )
        }
        self.pool = Gauge(
            "ctel_store_pool_connections",
            "PostgreSQL: the write pools' connections (all workers), by state: open (idle, "
            "in use or being opened) and idle; max: the pools' limit.",
            ("state",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self._store: Store | None = None
        self.streams = Gauge(
            "ctel_streams_open",
            "Live streams (server-sent events) open, all workers.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._open_streams: Callable[[], int] | None = None
        info = Gauge(
            "ctel_build_info",
            "Always 1; the version of connector-telemetry serving.",
            ("version",),
            registry=r,
            multiprocess_mode="max",
        )
        info.labels(__version__).set(1)
        # A request only appends its duration to its (route, method, status)'s list;
        # ``flush`` sorts each list and counts its buckets by bisection (in C), and hands
        # the totals to prometheus_client (whose own objects cost ~5-8 us per request),
        # every ``FLUSH_SECONDS`` on the event loop and before each scrape.
        #: The durations of the requests answered since the flush, by (route, method,
        #: status).
        self.done: dict[tuple[str, str, int], list[float]] = {}
        #: Seconds of each read answered on the event loop since the flush.
        self.read_times: list[float] = []

    def watch(self, store: Store, open_streams: Callable[[], int] | None = None) -> None:
        """Time ``store``'s write steps; at each flush, report its pool and the number of
        open streams (``open_streams()``)."""
        self._store = store
        self._open_streams = open_streams
        steps = self.steps
        store.observe = lambda step, seconds: steps[step].observe(seconds)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered."""
        taken = self.done.get((route, method, status))
        if taken is None:
            self.done[(route, method, status)] = [seconds]
        else:
            taken.append(seconds)

    def read_took(self, started: float) -> None:
        self.read_times.append(time.perf_counter() - started)

    def flush(self) -> None:
        """Hand what was counted since the last flush to prometheus_client (on the event
        loop's thread, like the appends: no lock needed)."""
        done, self.done = self.done, {}
        reads = self.read_times[:]
        self.read_times.clear()
        by_route: dict[str, list[float]] = {}
        for (route, method, status), taken in done.items():
            self.requests.labels(route, method, str(status)).inc(len(taken))
            by_route.setdefault(route, []).extend(taken)
        for route, taken in by_route.items():
            _observe_many(self.duration.labels(route), taken)
        if reads:
            _observe_many(self.reads, reads)
        if self._open_streams is not None:
            self.streams.set(self._open_streams())
        state = self._store.pool_state() if self._store is not None else None
        if state is not None:
            opened, idle, most = state
            self.pool.labels("open").set(opened)
            self.pool.labels("idle").set(idle)
            self.pool.labels("max").set(most)

    def flush_every(self, loop: Any, seconds: float = FLUSH_SECONDS) -> None:
        def tick() -> None:
            self.flush()
            loop.call_later(seconds, tick)

        loop.call_later(seconds, tick)

    def ingest(self, kind: str, accepted: int, duplicates: int) -> None:
        self.ingested.labels(kind, "accepted").inc(accepted)
        if duplicates:
            self.ingested.labels(kind, "duplicate").inc(duplicates)

    def refuse(self, route: str, code: int) -> None:
        if route.endswith(".record"):
            self.refused.labels(route.partition(".")[0], str(code)).inc()

    def write_took(self, started: float) -> None:
        self.writes.observe(time.perf_counter() - started)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        from prometheus_client import CollectorRegistry, exposition, multiprocess

        self.flush()
        registry = self.registry
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        encoder, content_type = exposition.choose_encoder(accept or "")
        return encoder(registry), content_type


def _observe_many(histogram: Any, seconds: list[float]) -> None:
    """Observe each of ``seconds`` (sorted here): prometheus_client keeps a child's buckets,
    non-cumulative with +Inf last, and its sum as values; there is no public "observe n
    times", and one ``observe`` per value costs ~2 us in its multiprocess mode."""
    seconds.sort()
    below = 0
    for bound, bucket in zip((*BUCKETS, math.inf), histogram._buckets, strict=True):
        upto = bisect_right(seconds, bound)
        if upto > below:
            bucket.inc(upto - below)
        below = upto
    histogram._sum.inc(math.fsum(seconds))


def routes(ctx: Context, metrics: Metrics | None, mode: str) -> list[Route]:
    if metrics is None:
        return []

    def scrape(req: Request) -> Any:
        if mode != "public":
            principal = ctx.auth.authenticate(req.headers)
            if principal.kind != "token":
                raise Forbidden("/metrics takes an API token (Magic WAN Read or Write)")
        body, content_type = metrics.exposition(req.headers.get("accept"))
        return 200, [("content-type", content_type)], body

    return [
        Route(
            "GET",
            "/metrics",
            scrape,
            "self",
            "metrics",
            "ctel's own metrics (Prometheus text format, or OpenMetrics by Accept)",
            result={"type": "string"},
            mount="root",
            answer=Prepared("text/plain; version=0.0.4"),
            headers=(("cache-control", "no-store"),),
        )
    ]


def fleet_routes(ctx: Context) -> list[Route]:
    """``/metrics/accounts/{account_id}``: the account's fleet for Prometheus
    (service.fleet_metrics), for a Magic WAN Read (or Write) credential of that account."""
    store = ctx.store

    def scrape_fleet(req: Request) -> Any:
        body = fleet_metrics.fleet_exposition(store, req.account_id)
        return 200, [("content-type", "text/plain; version=0.0.4; charset=utf-8")], body

    return [
        Route(
            "GET",
            "/metrics/accounts/{account_id}",
            scrape_fleet,
            "read",
            "metrics.fleet",
            "The account's connectors as Prometheus metrics (node_exporter's names)",
            result={"type": "string"},
            mount="root",
            answer=Prepared("text/plain; version=0.0.4"),
            headers=(("cache-control", "no-store"),),
        )
    ]
