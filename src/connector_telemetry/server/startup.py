"""Start-up failures of ``ctel serve`` as one clear line, never a traceback or a hung
master.

The master checks what it can before granian starts (``check_address``; the store is
opened, migrated and tried for writing by ``serve``). What only a worker meets (the
database gone between the master's check and the worker's open, too many open files,
the port taken in between) is caught by ``run_worker``, granian's RSGI worker in a
wrapper: the worker writes the explained failure to a report file and asks the master
to stop (SIGTERM, as an operator would), then waits to be stopped with the rest.
granian stops every worker and returns, and ``WorkerReport.raise_if_any`` raises the
reported failure, so the server exits with that message instead of serving nothing or
respawning a worker that cannot start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import tempfile
import time
import traceback
from typing import Any

from connector_telemetry import failures
from connector_telemetry.errors import ResourceError
from connector_telemetry.settings import Settings


def address_problem(host: str, port: int, code: int | None, reason: str = "") -> str:
    if code == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use; pick another with --port (or CTEL_PORT), "
            "or stop the process using it"
        )
    if code == errno.EACCES and port < 1024:
        return (
            f"not permitted to listen on port {port}: ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE; pick a port of 1024 or more with --port"
        )
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; use --host 127.0.0.1 (this machine "
            "only), 0.0.0.0 (every interface) or one of its addresses"
        )
    return f"cannot listen on {host}:{port}: {reason or os.strerror(code or 0)}"


def check_address(host: str, port: int) -> None:
    """Fail now, before any database work, if ``host:port`` cannot be listened on. The
    probe goes without SO_REUSEPORT, which granian's workers set: it is refused where
    another server (another ctel too) listens, which granian's own bind is not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Connections of an earlier run waiting out TIME_WAIT do not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ResourceError(address_problem(host, port, exc.errno, exc.strerror or "")) from exc


def bind_failure(host: str, port: int, exc: RuntimeError) -> ResourceError | None:
    """granian's own bind failing (the port taken since ``check_address``) is a
    ``RuntimeError`` carrying the OS error."""
    found = re.search(r"\(os error (\d+)\)", str(exc))
    if found is None:
        return None
    return ResourceError(address_problem(host, port, int(found[1])))


class WorkerReport:
    """The file where a failing worker writes why: one line per worker, its exit code
    first. A path rather than an inherited descriptor, so that it works alike whether
    granian forks or spawns its workers."""

    def __enter__(self) -> WorkerReport:
        fd, self.path = tempfile.mkstemp(prefix="ctel-workers-", suffix=".txt")
        os.close(fd)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.unlink(self.path)

    def failure(self) -> failures.Explained | None:
        """The first worker's failure, if one failed."""
        with open(self.path) as file:
            first = file.readline().rstrip("\n")
        if not first:
            return None
        code, message = first.split(" ", 1)
        return failures.Explained(int(code), message)


def stop_starting_workers_on_sigterm() -> None:
    """A granian start-up hook, run in the master once it has set its signal handlers and
    before it forks the workers. A forked worker inherits the master's SIGTERM handler,
    which only sets a flag, until granian gives it its own: a worker stopped by the master
    in that window would go on starting and serving, and the master wait for it forever
    (seen when a worker died while its sibling was being forked). Here the handler, in
    any process but the master, does what SIGTERM does by default: end the process."""
    master = os.getpid()
    handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if os.getpid() != master:
            try:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            except OSError:  # "ignored due to race condition": a second signal meanwhile
                pass
            os._exit(128 + signum)  # still here: end as the default action would
        elif callable(handler):
            handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def run_worker(report: str, settings: Settings, *args: Any) -> None:
    """granian's RSGI worker (``args`` are granian's); a failure is reported to the master."""
    from granian.server.mp import MPServer

    try:
        MPServer._spawn_rsgi_worker(*args)
    except Exception as exc:
        failure: BaseException = exc
        if isinstance(exc, RuntimeError):  # granian's own bind, or another OS error
            failure = bind_failure(settings.host, settings.port, exc) or exc
        code, message = failures.explain(failure, settings.db)
        if settings.debug:
            traceback.print_exc()
        worker = args[0] if args else "?"
        with open(report, "a") as file:
            file.write(f"{code} worker {worker} failed: {message}\n")
        # Stop the master, then wait to be stopped with the other workers: exiting at
        # once would be an "unexpected exit" that granian logs and answers on its own.
        with contextlib.suppress(OSError):  # (a signal arriving meanwhile: see on_sigterm)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # granian's, if it set its own
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(60)
        os._exit(code)  # not stopped: no clean-up either, this process served nothing
