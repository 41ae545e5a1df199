"""Running the app: migrate and bootstrap the store, then serve it with granian's
RSGI interface (one process per worker, each with its own reader connection). How the
processes stop: server.lifecycle."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Iterator
from functools import partial

from connector_telemetry.api import requestlog
from connector_telemetry.api.metrics import MULTIPROC_ENV
from connector_telemetry.app import App, create_app
from connector_telemetry.errors import ResourceError
from connector_telemetry.server import lifecycle
from connector_telemetry.server.startup import (
    WorkerReport,
    bind_failure,
    check_address,
    run_worker,
    stop_starting_workers_on_sigterm,
)
from connector_telemetry.service import credentials, testmode
from connector_telemetry.settings import Settings
from connector_telemetry.store import describe, open_store
from connector_telemetry.store.base import Store

TEST_MODE_WARNING = """\
ctel: ************************************************************************
ctel: * WARNING: TEST MODE (--test-mode). Anyone who can reach this server may,  *
ctel: * without credentials, under /_ctel/: delete every connector and all its   *
ctel: * telemetry (reset), create accounts and tokens, inject faults, read the   *
ctel: * request journal and move the clock. For test suites only: never serve    *
ctel: * real data with it.                                                       *
ctel: ************************************************************************"""


@contextlib.contextmanager
def _metrics_folder(settings: Settings) -> Iterator[None]:
    """A fresh folder for the workers' metric files (api.metrics), removed at the end."""
    if settings.metrics == "off":
        yield
        return
    folder = tempfile.mkdtemp(prefix="ctel-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _load_app(settings: Settings, master_pid: int | None = None) -> App:
    requestlog.configure(settings.log_format)
    if master_pid is None:  # loaded by another server (`granian connector_telemetry.server:...`)
        return create_app(settings)
    lifecycle.die_with_parent(master_pid)
    return lifecycle.WorkerApp(settings, open_store(settings), master_pid)


def bootstrap(settings: Settings, store: Store, demo: bool) -> None:
    """On an empty store: an account, a write token, printed once with a curl line;
    with ``demo``, a small fleet with a week of events."""
    if not store.is_empty():
        if demo:
            print("ctel: --demo ignored, the database already has data", file=sys.stderr)
        return
    account_id = credentials.create_account(store, name="Default account")
    _, secret = credentials.create_token(store, account_id, "Magic WAN Write", "bootstrap")
    connector_id = None
    if demo:
        connector_id = _fill_demo(settings, account_id, secret)
    base = f"http://{settings.host}:{settings.port}{settings.prefix}"
    auth = '-H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"'
    lines = [
        f"ctel: new database {describe(settings.db)}",
        f"  account id : {account_id}",
        f"  API token  : {secret}   (Magic WAN Write; shown only this once)",
        "",
        f"  export ACCOUNT_ID={account_id} CLOUDFLARE_API_TOKEN={secret}",
        f"  curl {base}/accounts/$ACCOUNT_ID/magic/connectors {auth}",
    ]
    if connector_id:
        lines.append(
            f"  curl {base}/accounts/$ACCOUNT_ID/magic/connectors/{connector_id}"
            f"/telemetry/events/latest {auth}"
        )
    print("\n".join(lines), flush=True)


def _fill_demo(settings: Settings, account_id: str, token: str) -> str:
    """Three connectors and a week of history from the simulator, sent through the API
    to an in-process app (the server is not listening yet)."""
    from connector_telemetry import clock
    from connector_telemetry.simulate import SimConfig, default_start, simulate
    from connector_telemetry.simulate.inprocess import BASE, client_for

    app = create_app(settings)
    try:
        config = SimConfig(start=default_start(clock.now(), 7), seed=0, connectors=3, days=7)
        with client_for(app) as client:
            ids = simulate(client, BASE, token, account_id, config, prefix=settings.prefix)
        return ids[0]
    finally:
        app.ctx.close()


def raise_open_files_limit() -> None:
    """Every connection is a file descriptor: the soft limit (often 1,024) goes up to the
    hard one, as nginx and PostgreSQL do, so thousands of clients (idle ones included) do
    not exhaust it. The workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(settings: Settings, demo: bool = False) -> int:
    """Serve until stopped. What keeps it from serving raises (``failures`` words it):
    the address and the store are checked here, before granian starts, and a worker
    that fails stops the server with its reason (``startup``)."""
    from granian.constants import HTTPModes, Interfaces, Loops, TaskImpl
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.mp import MPServer

    check_address(settings.host, settings.port)
    raise_open_files_limit()
    store = open_store(settings)
    try:
        created = store.schema_version() == 0
        store.migrate()
        store.check_writable()
        if settings.test_mode:
            testmode.refuse_unmarked(store, created, describe(settings.db))
        bootstrap(settings, store, demo)
    finally:
        store.close()
    if settings.test_mode:
        print(TEST_MODE_WARNING, file=sys.stderr, flush=True)
    print(
        f"ctel: serving {describe(settings.db)} on http://{settings.host}:{settings.port}"
        f"{settings.prefix} with {settings.worker_count} worker(s); "
        f"the dashboard at http://{settings.host}:{settings.port}/",
        file=sys.stderr,
        flush=True,
    )
    server = MPServer(
        "connector_telemetry.server:_load_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.worker_count,
        log_level=LogLevels(settings.log_level),
        log_access=False,
        websockets=False,
        http=HTTPModes.http1,
        # Hostile clients (README, "Limits"): slow or huge heads are cut off by granian.
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout_seconds * 1000),
            max_buffer_size=settings.max_header_bytes,
        ),
        backlog=settings.backlog,
        backpressure=settings.max_concurrent_requests or None,
        loop=Loops.uvloop,  # measured: asyncio 0.40 of nginx, rloop 0.42, uvloop 0.45
        # Not TaskImpl.rust: it measured ~7% more Get Event throughput, but leaked ~1-3 KB
        # per request with a body (found by the soak test); asyncio tasks stay flat.
        task_impl=TaskImpl.asyncio,
        # Typed int, used as a join() timeout: a fraction of a second is honoured.
        workers_kill_timeout=lifecycle.kill_by(settings.shutdown_timeout_seconds),  # type: ignore[arg-type]
    )
    purger = None
    if settings.retention_days > 0:
        # A child process (started before granian forks its workers) purges every 5 minutes
        # in bounded batches; only one per node, whatever the number of workers.
        purger = lifecycle.start_child(
            [
                sys.executable,
                "-m",
                "connector_telemetry",
                "purge",
                "--db",
                settings.db,
                "--retention-days",
                str(settings.retention_days),
                "--every",
                "300",
            ]
        )
    server.on_startup(stop_starting_workers_on_sigterm)
    with WorkerReport() as report, _metrics_folder(settings):
        try:
            server.serve(
                spawn_target=partial(run_worker, report.path, settings),
                target_loader=partial(_load_app, settings, os.getpid()),
                wrap_loader=False,
            )
        except RuntimeError as exc:  # granian's bind, when the port was taken meanwhile
            taken = bind_failure(settings.host, settings.port, exc)
            if taken is None:
                raise
            raise taken from exc
        except SystemExit as exc:  # granian's answer to a worker that exited on its own
            raise report.failure() or ResourceError(
                "a worker exited unexpectedly, and the server stopped with it"
            ) from exc
        finally:
            if purger is not None:
                lifecycle.stop_child(purger, lifecycle.margin(settings.shutdown_timeout_seconds))
        failure = report.failure()
        if failure is not None:
            raise failure
    return 0
