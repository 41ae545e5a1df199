"""How a node's processes stop: granian's master, its workers, and the purger.

SIGTERM (or SIGINT) stops a node within ``shutdown_timeout_seconds`` (B), whatever the
store's state. The master stops accepting and sends SIGTERM to each worker; a worker lets
its in-flight requests finish, and at ``answer_by`` (B minus two margins) answers every
request still waiting for a write with 503; at ``kill_by`` (B minus one margin) the master
kills the workers that are still running (granian's ``workers_kill_timeout``). The margin
is a tenth of B, at most a second.

Workers never outlive their master: each asks Linux to send it SIGTERM when the master
dies (``PR_SET_PDEATHSIG``), however it dies, and then stops as above, by itself (a
watchdog thread ends it at ``kill_by``). The purger child gets the same signal.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from connector_telemetry.app import App
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store

log = logging.getLogger("connector_telemetry")

_PR_SET_PDEATHSIG = 1


def answer_by(bound: float) -> float:
    """Seconds after SIGTERM by which every request still waiting is answered."""
    return max(bound, 0.1) - 2 * margin(bound)


def kill_by(bound: float) -> float:
    """Seconds after SIGTERM by which every worker has exited or is killed."""
    return max(bound, 0.1) - margin(bound)


def margin(bound: float) -> float:
    return min(1.0, max(bound, 0.1) / 10)


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM to this process when ``parent_pid`` (its parent) exits; exit now if it has
    already (Linux; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(0)


def start_child(args: list[str]) -> subprocess.Popen[bytes]:
    """A child process that gets SIGTERM when this one dies."""
    parent = os.getpid()
    return subprocess.Popen(args, preexec_fn=lambda: die_with_parent(parent))


def stop_child(child: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class WorkerApp(App):
    """The app as a granian worker process runs it (see the module's docstring)."""

    def __init__(self, settings: Settings, store: Store, master_pid: int):
        super().__init__(settings, store)
        self.master_pid = master_pid
        self._stopping_since: float | None = None

    def __rsgi_init__(self, loop: Any) -> None:
        # What start-up built (modules, the app, its schemas) lives as long as the worker:
        # out of the collector's sight, a full collection walks only what requests made
        # (a full collection of it all paused the worker 25-50 ms, several times a second
        # under load: that was the p99 of Get Event on PostgreSQL; bench/README.md).
        gc.freeze()
        # granian has set its own SIGTERM/SIGINT handlers by now (through the loop): ours
        # runs first, then theirs.
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def on_signal(signum: int, frame: Any, previous: Any = previous) -> None:
                self._stop(loop)
                if callable(previous):
                    previous(signum, frame)

            signal.signal(signum, on_signal)

    def _stop(self, loop: Any) -> None:
        if self._stopping_since is not None:
            return
        self._stopping_since = now = time.monotonic()
        bound = self.settings.shutdown_timeout_seconds
        loop.call_soon_threadsafe(self.streams.close)  # open streams end now: clients resume
        loop.call_soon_threadsafe(loop.call_later, answer_by(bound), self._answer_all)
        threading.Thread(
            target=self._exit_at, args=(now + kill_by(bound),), name="ctel-stop", daemon=True
        ).start()

    def _answer_all(self) -> None:
        count = self.ctx.writer.give_up("the server is shutting down; retry shortly")
        if count:
            log.warning("shutting down: %d write(s) not done in time answered 503", count)

    @staticmethod
    def _exit_at(moment: float) -> None:
        """The last resort, when the master cannot kill this worker (it died)."""
        time.sleep(max(0.0, moment - time.monotonic()))
        log.warning("worker %d: not stopped in time; exiting", os.getpid())
        os._exit(1)

    def __rsgi_del__(self, loop: Any) -> None:
        self.streams.close()
        bound = self.settings.shutdown_timeout_seconds
        since = self._stopping_since
        left = kill_by(bound) - (0.0 if since is None else time.monotonic() - since)
        self.ctx.close(timeout=max(0.0, left - margin(bound)))
