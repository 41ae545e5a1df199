"""The agent's HTTP side: post spooled records, fetch interrupts, and sort every answer
into delivered, "try again later" or "refused for good".

Only httpx and the standard library; nothing from the server's modules. The wire is
the service's public API (README, "Recording events"; reference §4.8), authenticated
with the connector's license key.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

#: error codes of a 400 that are about the agent's configuration (credentials, URL, ids),
#: not about the batch: the records stay spooled until the operator fixes it.
_CONFIG_CODES = frozenset({9106, 6003, 6111, 7000, 7003})
#: statuses that say nothing against the batch itself: retry it later
_RETRY_STATUSES = frozenset({401, 403, 404, 405, 408, 425, 429})


def api_root(server: str) -> str:
    """``http://host:8787`` or ``http://host:8787/client/v4`` -> the latter."""
    root = server.rstrip("/")
    return root if root.endswith("/client/v4") else root + "/client/v4"


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # 2xx: the server stored it (or already had it)
    UNREACHABLE = "unreachable"  # network error, timeout, 5xx, throttled, misconfigured
    REFUSED = "refused"  # the server will never take this batch (bad data, conflict)


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    detail: str  # for the log: status and the server's message, or the network error
    result: Any = None


def _describe(response: httpx.Response) -> tuple[str, int | None]:
    code = None
    message = response.text[:300]
    try:
        body = response.json()
        error = body["errors"][0]
        code = int(error["code"])
        message = str(error["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    return f"HTTP {response.status_code} code {code}: {message}", code


def classify(response: httpx.Response) -> Answer:
    if response.is_success:
        try:
            result = response.json().get("result")
        except ValueError:
            result = None
        return Answer(Outcome.DELIVERED, f"HTTP {response.status_code}", result)
    detail, code = _describe(response)
    status = response.status_code
    if status >= 500 or status in _RETRY_STATUSES or (status == 400 and code in _CONFIG_CODES):
        return Answer(Outcome.UNREACHABLE, detail)
    return Answer(Outcome.REFUSED, detail)


class Client:
    """One connector's view of the service."""

    def __init__(
        self,
        server: str,
        account_id: str,
        connector_id: str,
        license_key: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = f"{api_root(server)}/accounts/{account_id}/magic/connectors/{connector_id}"
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {license_key}", "User-Agent": "ctel-agent"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, content: bytes | None = None) -> Answer:
        headers = {"Content-Type": "application/json"} if content is not None else {}
        try:
            response = self._http.request(
                method, self.base + path, content=content, headers=headers
            )
        except httpx.TransportError as e:  # connect/read/write errors and timeouts
            return Answer(Outcome.UNREACHABLE, f"{type(e).__name__}: {e}")
        return classify(response)

    def post_events(self, bodies: list[bytes]) -> Answer:
        """POST a batch of spooled events (each one JSON object, sent as is)."""
        return self._call("POST", "/telemetry/events", b"[" + b",".join(bodies) + b"]")

    def post_snapshots(self, bodies: list[bytes]) -> Answer:
        return self._call("POST", "/telemetry/snapshots", b"[" + b",".join(bodies) + b"]")

    def list_interrupts(self) -> Answer:
        """The interrupts pending for this connector; the server marks them triggered."""
        return self._call("GET", "/interrupts")
