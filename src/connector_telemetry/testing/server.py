"""``CtelServer``: a real ``ctel serve --test-mode`` for a test suite, and its test API.

``start()`` runs ``python -m connector_telemetry serve --test-mode`` (this interpreter) on a
free port of 127.0.0.1, in a process group of its own, on its own database: a SQLite file in
a temporary folder (``store="sqlite"``), a new database in a throwaway PostgreSQL cluster
(``store="postgresql"``: :class:`TemporaryPostgres`, or ``$DATABASE_URL``'s server), or the
database a ``postgresql://`` URL names (empty, or made by an earlier test-mode server: ctel
refuses test mode on any other). It is ready when ``/healthz`` answers; its credentials
come from ``POST /_ctel/accounts``. ``stop()`` stops the process group and removes the
folder (and the PostgreSQL database or cluster it made). The server's output goes to
``log_path`` (``log()`` reads it); a server that fails to start raises with that output.

The test API (README, "Test mode API") is called with ``urllib`` only: the kit adds no
dependency. Bad input the server refuses raises :class:`CtelApiError` with its message.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from connector_telemetry.testing.postgres import TemporaryPostgres

if TYPE_CHECKING:
    from cloudflare import AsyncCloudflare, Cloudflare

_STARTUP_TIMEOUT = 30.0
_T = TypeVar("_T")


class CtelApiError(Exception):
    """The test API refused a call (bad input: the message names the field), or the server
    could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _known(cls: type[_T], item: dict[str, Any]) -> _T:
    """A dataclass from a JSON object, ignoring keys a newer server may add."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in item.items() if k in names})


@dataclass(frozen=True)
class Fault:
    """A fault rule (``POST /_ctel/faults``'s result). ``count``/``remaining`` are ``None``
    for a rule that takes every matching request until removed."""

    id: int
    route: str
    method: str | None
    status: int | None
    delay_ms: int | None
    close: bool
    count: int | None
    remaining: int | None


@dataclass(frozen=True)
class JournalEntry:
    """One request the server received (the journal, ``GET /_ctel/requests``)."""

    time: float
    method: str
    path: str
    route: str | None
    query: str
    status: int
    bytes_in: int
    bytes_out: int
    account_id: str | None = None
    credential: dict[str, str] | None = None


class Faults:
    """``server.faults``: answer the next matching requests with an error, a delay, or a
    closed connection."""

    def __init__(self, server: CtelServer) -> None:
        self._server = server

    def add(
        self,
        route: str,
        status: int | None = None,
        count: int | None = 1,
        method: str | None = None,
        delay_ms: int | None = None,
        close: bool = False,
    ) -> Fault:
        """A rule for ``route`` (a route name such as ``"events.get"``, or ``"*"``):
        ``count`` matching requests (``None``: every one until cleared) answer ``status``
        (429, 500, 502, 503, 504) in Cloudflare's envelope, or see the connection closed
        (``close``), after ``delay_ms`` if given (a delay alone answers normally, late)."""
        body: dict[str, Any] = {"route": route, "count": count}
        if status is not None:
            body["status"] = status
        if method is not None:
            body["method"] = method
        if delay_ms is not None:
            body["delay_ms"] = delay_ms
        if close:
            body["close"] = True
        return _known(Fault, self._server.call("POST", "/_ctel/faults", body))

    def list(self) -> list[Fault]:
        """Every rule, oldest first (used-up ones too, with ``remaining == 0``)."""
        return [_known(Fault, f) for f in self._server.call("GET", "/_ctel/faults")]

    def remove(self, fault_id: int) -> None:
        self._server.call("DELETE", f"/_ctel/faults/{int(fault_id)}")

    def clear(self) -> int:
        """Remove every rule; returns how many there were."""
        return int(self._server.call("DELETE", "/_ctel/faults")["removed"])


class Clock:
    """``server.clock``: the server's time (collection time ``a``, ``last_heartbeat``,
    token expiry, interrupt times, retention), set or advanced without sleeping. Time keeps
    running from the point set."""

    def __init__(self, server: CtelServer) -> None:
        self._server = server

    def now(self) -> float:
        return float(self._server.call("GET", "/_ctel/clock")["now"])

    def set_time(self, epoch: float) -> float:
        return float(self._server.call("PUT", "/_ctel/clock", {"now": epoch})["now"])

    def advance(self, seconds: float) -> float:
        return float(self._server.call("PUT", "/_ctel/clock", {"advance": seconds})["now"])

    def reset_time(self) -> float:
        """Back to real time."""
        return float(self._server.call("DELETE", "/_ctel/clock")["now"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CtelServer:
    """A ``ctel serve --test-mode`` with its own database (see the module's docstring).

    ``store``: ``"sqlite"`` (default), ``"postgresql"``, or a ``postgresql://`` URL.
    ``workers``: granian worker processes. ``seed``: the default seed of ``simulate()``.
    ``env``: more environment for the server (settings, ``CTEL_<NAME>``).
    """

    def __init__(
        self,
        store: str = "sqlite",
        workers: int = 1,
        seed: int | None = None,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        if store not in ("sqlite", "postgresql", "postgres") and not store.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(f"store: 'sqlite', 'postgresql' or a postgresql:// URL, not {store!r}")
        if workers < 1:
            raise ValueError(f"workers: at least 1, not {workers!r}")
        self.store = store
        self.workers = workers
        self.seed = seed
        self.env = dict(env or {})
        self.faults = Faults(self)
        self.clock = Clock(self)
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None
        self._postgres: TemporaryPostgres | None = None
        self._log: IO[bytes] | None = None
        self.url = ""  # the service root, http://127.0.0.1:PORT
        self.base_url = ""  # the API, http://127.0.0.1:PORT/client/v4
        self.account_id = self.token = self.read_token = self.email = self.api_key = ""
        self.db = ""
        self.port = 0
        self.startup_seconds = 0.0

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> CtelServer:
        if self.process is not None:
            raise RuntimeError("this CtelServer is already running")
        began = time.monotonic()
        self.folder = Path(tempfile.mkdtemp(prefix="ctel-test-"))
        try:
            self.db = self._database()
            self._spawn()
            self._wait_ready(began)
            account = self.call("POST", "/_ctel/accounts", {"name": "ctel testing"})
        except BaseException:
            self.stop()
            raise
        self.account_id = account["account_id"]
        self.token = account["token"]
        self.read_token = account["read_token"]
        self.email = account["email"]
        self.api_key = account["api_key"]
        self.startup_seconds = time.monotonic() - began
        atexit.register(self.stop)
        return self

    def _database(self) -> str:
        assert self.folder is not None
        if self.store == "sqlite":
            return str(self.folder / "ctel.db")
        if self.store in ("postgresql", "postgres"):
            self._postgres = TemporaryPostgres()
            return self._postgres.new_database("ctel_testing")
        return self.store

    def _spawn(self) -> None:
        assert self.folder is not None
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/client/v4"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # tests make failed authentications from 127.0.0.1 on purpose: no throttle
            "CTEL_AUTH_FAILURES_PER_MINUTE": "0",
            **self.env,
        }
        for name in ("CTEL_DB", "CTEL_PORT", "CTEL_HOST", "CTEL_WORKERS", "CTEL_PREFIX"):
            if name not in self.env:
                env.pop(name, None)
        command = [
            sys.executable, "-m", "connector_telemetry", "serve", "--test-mode",
            "--db", self.db, "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() ends it all, workers too
        )

    def _wait_ready(self, began: float) -> None:
        assert self.process is not None
        while time.monotonic() - began < _STARTUP_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"ctel serve --test-mode exited at start:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    answer.read()
                return
            except OSError:  # not listening yet (URLError is an OSError)
                time.sleep(0.01)
        raise RuntimeError(f"ctel serve did not answer in {_STARTUP_TIMEOUT:g} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its folder and database.
        Safe to call twice."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is not None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def __enter__(self) -> CtelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        assert self.folder is not None, "the server is not running"
        return self.folder / "server.log"

    def log(self) -> str:
        """What the server printed so far (its warnings and errors)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (AssertionError, FileNotFoundError):
            return ""

    # -- the test API -----------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One test-API call (``path`` from the root, e.g. ``/_ctel/faults``); returns the
        envelope's ``result``, raises :class:`CtelApiError` on an error answer."""
        if not self.url:
            raise RuntimeError("the server is not running: call start() first")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())["result"]
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                errors = json.loads(raw)["errors"]
                message = "; ".join(f"{e.get('message')} (code {e.get('code')})" for e in errors)
            except (ValueError, KeyError, TypeError, AttributeError):
                message = raw.decode(errors="replace")[:500]
            raise CtelApiError(exc.code, f"{method} {path}: {message}") from None

    def reset(self) -> dict[str, int]:
        """Remove every connector, event, snapshot and interrupt (accounts and credentials
        stay); clear faults, the journal and the rate limit; real time again. Returns how
        many of each were removed."""
        return dict(self.call("POST", "/_ctel/reset")["removed"])

    def create_account(self, name: str | None = None) -> dict[str, str]:
        """Another account (to test tenant isolation): ``account_id``, ``token``,
        ``read_token``, ``email``, ``api_key``."""
        return dict(self.call("POST", "/_ctel/accounts", {} if name is None else {"name": name}))

    def rate_limit(self, requests: int | None = 1200, period_seconds: float = 300) -> None:
        """Cloudflare's limit per credential (by default its 1,200 requests per 300 s),
        or other numbers (``rate_limit(10, 1)``); ``rate_limit(None)`` switches it off."""
        if requests is None:
            self.call("DELETE", "/_ctel/rate-limit")
        else:
            body = {"requests": requests, "period_seconds": period_seconds}
            self.call("PUT", "/_ctel/rate-limit", body)

    def requests(
        self,
        route: str | None = None,
        method: str | None = None,
        status: int | None = None,
        account_id: str | None = None,
        since: float | None = None,
    ) -> list[JournalEntry]:
        """The requests the server received under the API (the journal), oldest first;
        test-API calls are never in it."""
        query = {
            name: str(value)
            for name, value in [
                ("route", route),
                ("method", method),
                ("status", status),
                ("account_id", account_id),
                ("since", since),
            ]
            if value is not None
        }
        path = "/_ctel/requests" + ("?" + urllib.parse.urlencode(query) if query else "")
        return [_known(JournalEntry, item) for item in self.call("GET", path)]

    def clear_requests(self) -> int:
        return int(self.call("DELETE", "/_ctel/requests")["removed"])

    def simulate(
        self,
        connectors: int = 3,
        days: float = 7,
        seed: int | None = None,
        start: float | None = None,
        interval: float = 300,
    ) -> list[str]:
        """Fill this server's account with a simulated fleet (``ctel simulate``'s: the
        same seed and start give the same data); returns the connector ids. ``seed``
        defaults to the server's ``seed`` (else 0), ``start`` to the server's clock minus
        ``days``. After a reset the same seed can be simulated again."""
        import httpx

        from connector_telemetry.simulate import SimConfig, default_start
        from connector_telemetry.simulate.send import simulate

        if start is None:
            start = default_start(self.clock.now(), days)
        chosen = seed if seed is not None else (self.seed if self.seed is not None else 0)
        config = SimConfig(
            start=start, seed=chosen, connectors=connectors, days=days, interval=interval
        )
        with httpx.Client(timeout=120) as client:
            return simulate(client, self.url, self.token, self.account_id, config)

    # -- the official SDK ---------------------------------------------------------

    def client(self, **options: Any) -> Cloudflare:
        """The official SDK's ``Cloudflare`` bound to this server and ``token`` (``options``
        go to its constructor: ``api_token=server.read_token``, ``api_email``/``api_key``,
        ``max_retries``, ``_strict_response_validation``, ...)."""
        _sdk()
        from cloudflare import Cloudflare

        _credentials(self, options)
        return Cloudflare(base_url=self.base_url, **options)

    def async_client(self, **options: Any) -> AsyncCloudflare:
        """The official SDK's ``AsyncCloudflare``, as ``client()``."""
        _sdk()
        from cloudflare import AsyncCloudflare

        _credentials(self, options)
        return AsyncCloudflare(base_url=self.base_url, **options)


def _credentials(server: CtelServer, options: dict[str, Any]) -> None:
    """The Write token, unless the caller chose a credential (``api_email``/``api_key``:
    the account's user; ``api_token``: another token, ``server.read_token`` say)."""
    if not {"api_token", "api_email", "api_key"} & options.keys():
        options["api_token"] = server.token


def _sdk() -> None:
    try:
        import cloudflare  # noqa: F401
    except ImportError:
        raise ImportError(
            "CtelServer.client() needs Cloudflare's official Python SDK: pip install "
            "'cloudflare>=5.9,<6' (or connector-telemetry[client])"
        ) from None
