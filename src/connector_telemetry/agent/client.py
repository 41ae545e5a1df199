"""The agent's HTTP side: post spooled records, fetch interrupts, and sort every answer
into delivered, "try again later" or "refused for good".

Only httpx and the standard library; nothing from the server's modules. The wire is
the service's public API (README, "Recording events"; reference §4.8), authenticated
with the connector's license key.
"""

from __future__ import annotations

import enum
import gzip
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
#: bodies from this size on go out gzip-compressed (README, "Request bodies"); smaller ones
#: would hardly shrink
GZIP_FROM_BYTES = 1024


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
    status: int | None = None  # of a refusal
    code: int | None = None  # its error code


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
    return Answer(Outcome.REFUSED, detail, status=status, code=code)


def _maybe_encoding(answer: Answer) -> bool:
    """Whether a refusal may be about the body's compression: 415, or a body that could
    not be decoded (400, code 1001: what a server that ignores Content-Encoding answers)."""
    return answer.status == 415 or (answer.status == 400 and answer.code == 1001)


class Client:
    """One connector's view of the service. Bodies of 1 KiB and more are sent gzip-compressed
    while the server takes them."""

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
        self.gzip = True  # until the server shows it does not read gzip

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, content: bytes | None = None) -> Answer:
        if content is None or not self.gzip or len(content) < GZIP_FROM_BYTES:
            return self._send(method, path, content, compressed=False)
        answer = self._send(method, path, gzip.compress(content, 6), compressed=True)
        if answer.outcome is not Outcome.REFUSED or not _maybe_encoding(answer):
            return answer
        # A server that does not read gzip refuses what it cannot decode: send it as is,
        # and if that goes through, keep sending as is.
        plain = self._send(method, path, content, compressed=False)
        if plain.outcome is not Outcome.REFUSED:
            log.warning("the server does not take gzip (%s); sending bodies as is", answer.detail)
            self.gzip = False
        return plain

    def _send(self, method: str, path: str, content: bytes | None, *, compressed: bool) -> Answer:
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if compressed:
            headers["Content-Encoding"] = "gzip"
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
