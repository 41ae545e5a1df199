"""Sending a simulated fleet through the public API, like any client would: create
each connector, then post its events and snapshots in batches.

Only httpx, orjson and the standard library; nothing from the server's modules, so
the same code backfills a remote service or, given a client bound to an in-process
app, the database ``ctel serve --demo`` is about to serve. Every event carries its
``t`` and ``n`` and every snapshot its ``t``, so posting a batch twice (a retry after
a lost answer) stores nothing new.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from connector_telemetry.simulate.fleet import SimConnector, generate_connector
from connector_telemetry.simulate.plan import SimConfig, releases
from connector_telemetry.simulate.progress import Progress

PREFIX = "/client/v4"
BATCH_MAX = 5000  # items per request
BATCH_BYTES = 8 << 20  # bytes per request: well under the server's max_body_bytes
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_RETRIES = 5


class SimulateError(Exception):
    """The service refused or could not be reached; the message says what and why."""


def api_base(server: str, prefix: str = PREFIX) -> str:
    """``http://host:8787`` or ``http://host:8787/client/v4`` -> the latter (``prefix``:
    a server's ``prefix`` setting, when it is not the default)."""
    root, prefix = server.rstrip("/"), "/" + prefix.strip("/")
    return root if root.endswith(prefix) else root + prefix


def _server_message(response: httpx.Response) -> str:
    try:
        error = response.json()["errors"][0]
        return f"HTTP {response.status_code}, code {error['code']}: {error['message']}"
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:300]!r}"


class Api:
    """The few calls the simulator makes, with retries where they are safe."""

    def __init__(
        self, client: httpx.Client, base: str, token: str, account: str, prefix: str = PREFIX
    ) -> None:
        self.client = client
        self.base = api_base(base, prefix)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connectors = f"{self.base}/accounts/{account}/magic/connectors"
        self.account = account

    def post(self, url: str, body: bytes, *, retry: bool = True) -> httpx.Response:
        """POST ``body``; a network error, 429 or 5xx is retried (with back-off) when
        ``retry``, which is safe for telemetry since the server dedupes it."""
        delay = 0.5
        for attempt in range(_RETRIES + 1):
            last = attempt == _RETRIES or not retry
            try:
                response = self.client.post(url, content=body, headers=self.headers)
            except httpx.TransportError as exc:
                if last:
                    raise SimulateError(f"cannot reach {url}: {exc}") from exc
            else:
                if response.status_code not in _RETRY_STATUSES or last:
                    return response
                after = response.headers.get("retry-after", "")
                delay = float(after) if after.isdigit() else delay
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    def create_connector(self, body: dict[str, Any]) -> str:
        serial = body["device"].get("serial_number")
        response = self.post(self.connectors, orjson.dumps(body), retry=False)
        if response.status_code == 409:
            raise SimulateError(
                f"a connector with serial number {serial} already exists in account "
                f"{self.account}: an earlier `ctel simulate` with this --seed created it. "
                "Use another --seed or a fresh account (or delete the SIM-* connectors). "
                f"The server said: {_server_message(response)}"
            )
        if not response.is_success:
            raise SimulateError(f"creating connector {serial}: {_server_message(response)}")
        return str(response.json()["result"]["id"])

    def record(self, connector_id: str, what: str, count: int, body: bytes) -> None:
        url = f"{self.connectors}/{connector_id}/telemetry/{what}"
        response = self.post(url, body)
        if not response.is_success:
            raise SimulateError(
                f"posting {count} {what} to connector {connector_id}: {_server_message(response)}"
            )


def _encode(
    what: str, items: Iterable[dict[str, Any]], max_items: int, max_bytes: int
) -> Iterator[tuple[str, int, bytes]]:
    """JSON array bodies of at most ``max_items`` items and (unless one item is
    larger) ``max_bytes`` bytes."""
    parts: list[bytes] = []
    size = 2
    for item in items:
        raw = orjson.dumps(item)
        if parts and (len(parts) == max_items or size + len(raw) + 1 > max_bytes):
            yield what, len(parts), b"[" + b",".join(parts) + b"]"
            parts, size = [], 2
        parts.append(raw)
        size += len(raw) + 1
    if parts:
        yield what, len(parts), b"[" + b",".join(parts) + b"]"


def send_connector(
    api: Api,
    sim: SimConnector,
    progress: Progress,
    batch_size: int = BATCH_MAX,
    on_created: Callable[[str], None] | None = None,
) -> str:
    """Create one connector and post its whole history; returns its id. While the
    server stores one batch, the next is generated: one request in flight at a time,
    in time order."""
    connector_id = api.create_connector(sim.create_body)
    if on_created is not None:
        on_created(connector_id)
    progress.advance(connectors=1)
    bodies = itertools.chain(
        _encode("events", sim.events, batch_size, BATCH_BYTES),
        _encode("snapshots", sim.snapshots(), batch_size, BATCH_BYTES),
    )
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="ctel-simulate") as pool:
            pending: tuple[str, int, Future[None]] | None = None
            for what, count, body in bodies:
                if pending is not None:
                    _wait(pending, progress)
                pending = (what, count, pool.submit(api.record, connector_id, what, count, body))
            if pending is not None:
                _wait(pending, progress)
    except SimulateError as exc:
        raise SimulateError(
            f"{exc}\n(connector {connector_id} was created but its history is incomplete)"
        ) from exc
    return connector_id


def _wait(pending: tuple[str, int, Future[None]], progress: Progress) -> None:
    what, count, future = pending
    future.result()
    progress.advance(**{what: count})


def send_fleet(
    client: httpx.Client,
    base: str,
    token: str,
    account: str,
    fleet: Iterable[SimConnector],
    *,
    progress: Progress | None = None,
    on_created: Callable[[str], None] | None = None,
    batch_size: int = BATCH_MAX,
    prefix: str = PREFIX,
) -> list[str]:
    """Create and backfill every connector of ``fleet`` in order; returns their ids.
    ``base`` is the service root or its ``/client/v4`` URL; ``on_created`` is told
    each id as soon as the connector exists."""
    if not 1 <= batch_size <= BATCH_MAX:
        raise ValueError(f"batch_size must be between 1 and {BATCH_MAX}")
    api = Api(client, base, token, account, prefix)
    progress = progress or Progress.disabled()
    ids = []
    for sim in fleet:
        ids.append(send_connector(api, sim, progress, batch_size, on_created))
    progress.close()
    return ids


def simulate(
    client: httpx.Client,
    base: str,
    token: str,
    account: str,
    config: SimConfig,
    *,
    progress: Progress | None = None,
    on_created: Callable[[str], None] | None = None,
    prefix: str = PREFIX,
) -> list[str]:
    """Generate ``config``'s fleet and send it (see :func:`send_fleet`). Events are
    generated up front (they size the progress bar); snapshots, the bulk, batch by
    batch while sending, so memory does not grow with ``days / interval``."""
    fleet_releases = releases(config)
    fleet = [generate_connector(config, i, fleet_releases) for i in range(config.connectors)]
    if progress is not None:
        progress.start(
            connectors=len(fleet),
            events=sum(len(sim.events) for sim in fleet),
            snapshots=sum(sim.snapshot_count for sim in fleet),
        )
    return send_fleet(
        client, base, token, account, fleet, progress=progress, on_created=on_created, prefix=prefix
    )
