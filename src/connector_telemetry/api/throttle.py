"""Failed authentications throttled per client address: ``AuthThrottle``.

Each process counts, per client address, the authentications that failed in the last
minute. Past ``auth_failures_per_minute`` of them, a further failure from that address is
answered as Cloudflare answers a client over its limit (429, code 971, ``retry-after``:
the seconds until the oldest counted failure leaves the window) instead of 400/401/403.
A valid credential is never slowed, whatever its address: it is verified (from the
cache, else the store) and served as always, so a client sharing an address (a NAT, a
proxy) with someone guessing keeps working. The counts are per worker process: with W
workers an address may fail up to W x the limit before every worker answers 429 (the
README says so).

The client address is the connection's peer. Behind a reverse proxy every peer is the
proxy, so ``trusted_proxies`` names the proxies (IP addresses or networks) whose
``X-Forwarded-For`` is believed: the address is then the right-most entry of that header
that is not itself a trusted proxy. From any other peer the header is ignored, so a client
cannot pick the address it is counted under.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque

from connector_telemetry.errors import ApiError
from connector_telemetry.settings import parse_proxies

WINDOW_SECONDS = 60.0
#: Addresses tracked at most (oldest forgotten first): memory stays bounded under a flood
#: of spoofed-looking sources.
MAX_ADDRESSES = 100_000


class TooManyFailures(ApiError):
    status, code = 429, 971

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Please wait and consider throttling your request speed",
            headers=[("retry-after", str(retry_after))],
        )


def peer_host(peer: str) -> str:
    """``127.0.0.1:5050`` / ``[::1]:5050`` / ``::1`` -> the host part."""
    if peer.startswith("["):
        return peer[1 : peer.find("]")]
    if peer.count(":") == 1:
        return peer.rpartition(":")[0]
    return peer


class AuthThrottle:
    def __init__(self, per_minute: int, trusted_proxies: str = ""):
        self.limit = per_minute
        self.proxies = parse_proxies(trusted_proxies)
        self._failures: dict[str, deque[float]] = {}

    def client(self, peer: str, forwarded_for: str | None) -> str:
        host = peer_host(peer)
        if not self.proxies or forwarded_for is None or not self._trusted(host):
            return host
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            if hop and not self._trusted(hop):
                return hop
        return host

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def failed(self, client: str, exc: ApiError) -> ApiError:
        """Count a failed authentication; the answer it gets (``exc``, or 429 past the
        limit)."""
        if self.limit <= 0 or not client:
            return exc
        now = time.monotonic()
        seen = self._failures.get(client)
        if seen is None:
            if len(self._failures) >= MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            seen = self._failures[client] = deque()
        while seen and now - seen[0] >= WINDOW_SECONDS:
            seen.popleft()
        over = len(seen) >= self.limit
        if len(seen) < 2 * self.limit:  # enough to know when the window frees up
            seen.append(now)
        if over:
            return TooManyFailures(max(1, int(WINDOW_SECONDS - (now - seen[0])) + 1))
        return exc
