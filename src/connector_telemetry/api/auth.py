"""Credentials on the wire -> a ``Principal``, with Cloudflare's codes.

Verified credentials are cached per process (in memory only, keyed by the header as presented),
for ``auth_cache_seconds``; the cache is emptied whenever the store's
credentials version moves (any token or user change, from any process). The
version is read at most every 20 ms, so a revocation is honoured within 20 ms (plus, on
PostgreSQL under load, one round trip to it).

Where the store reads on the event loop (PostgreSQL's pipeline), a process that checked the
version within the last 40 ms reads it again without waiting: the request goes on with the
cache, and the answer, one round trip later, empties it if the version moved (a query that
waited on the loop's thread stalled every request of the process for that round trip: ~3%
of Get Events through a 0.5 ms network). After a longer quiet time, or if that read failed,
the version is read before the request is answered, as everywhere else.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from connector_telemetry import clock
from connector_telemetry.api.request import Headers
from connector_telemetry.api.route import Route
from connector_telemetry.errors import Forbidden, InvalidHeaders, MissingCredentials
from connector_telemetry.models import Principal
from connector_telemetry.service import credentials
from connector_telemetry.store.base import Store

_CACHE_MAX = 10_000
#: How often (at most) the store's credentials version is read: a revoked or
#: replaced credential stops working within this time, in every process.
RECHECK_SECONDS = 0.02
_BAD_AUTHORIZATION = (6111, "Invalid format for Authorization header")
_BAD_EMAIL = (6102, "Invalid format for X-Auth-Email header")
_BAD_KEY = (6103, "Invalid format for X-Auth-Key header")


def bearer_secret(header: str, *, licenses: bool = False) -> str:
    """The secret of ``Bearer <secret>``: an API token, or (``licenses``) a license key."""
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() == "bearer" and (
        credentials.TOKEN_SHAPE.match(secret)
        or (licenses and credentials.LICENSE_SHAPE.match(secret))
    ):
        return secret
    raise InvalidHeaders([_BAD_AUTHORIZATION])


class Authenticator:
    def __init__(self, store: Store, cache_seconds: float):
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._version = -1
        self._checked_at = -math.inf
        self._rechecking: asyncio.Task[None] | None = None  # the version read on the loop

    def authenticate(self, headers: Headers) -> Principal:
        authorization = headers.get("authorization")
        if authorization is not None:
            if "ctel_lic_" in authorization:
                # License keys change over HTTP (re-provision, delete) and are never on
                # the read hot path: always checked against the store.
                return credentials.license_principal(
                    self.store, bearer_secret(authorization, licenses=True)
                )
            return self._cached(authorization, lambda: self._token(authorization))
        email, key = headers.get("x-auth-email"), headers.get("x-auth-key")
        if email is None and key is None:
            raise MissingCredentials()
        chain = []
        if email is None or not credentials.EMAIL_SHAPE.match(email.strip()):
            chain.append(_BAD_EMAIL)
        if key is None or not credentials.API_KEY_SHAPE.match(key.strip()):
            chain.append(_BAD_KEY)
        if chain:
            raise InvalidHeaders(chain)
        email, key = email.strip().lower(), key.strip()
        return self._cached(
            email + "\0" + key, lambda: credentials.user_principal(self.store, email, key)
        )

    def _seen(self, version: int) -> None:
        if version != self._version:
            self._cache.clear()
            self._version = version

    def _recheck_on_loop(self, now: float) -> bool:
        """Whether the version is (being) read without waiting (see the module's doc)."""
        if not self.store.reads_on_loop or now - self._checked_at > 2 * RECHECK_SECONDS:
            return False
        if self._rechecking is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # (a thread without a loop: read it there and then)
                return False
            self._checked_at = now
            self._rechecking = loop.create_task(self._recheck())
        return True

    async def _recheck(self) -> None:
        try:
            self._seen(await self.store.credentials_version_async())
        except Exception:
            self._checked_at = -math.inf  # the next request reads it, and fails as it must
        finally:
            self._rechecking = None

    def _token(self, header: str) -> Principal:
        return credentials.token_principal(self.store, bearer_secret(header))[0]

    def _cached(self, key: str, verify: Callable[[], Principal]) -> Principal:
        if self.cache_seconds <= 0:
            return verify()
        now = time.monotonic()
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        if now - self._checked_at > RECHECK_SECONDS and not self._recheck_on_loop(now):
            self._checked_at = now
            self._seen(self.store.credentials_version())
        hit = self._cache.get(key)
        if hit is not None and now - hit[1] < self.cache_seconds:
            principal = hit[0]
            if principal.expires_at is None or principal.expires_at > clock.now():
                return principal
        principal = verify()
        self._cache[key] = (principal, now)
        return principal


def authorize(principal: Principal, route: Route, params: dict[str, Any]) -> None:
    """403/10000 unless the principal may call the route on these ids: a token or user
    key by its permission on the account, a license key only on its own connector's
    device routes. The answer is the same whether or not anything named exists."""
    have = principal.permission_on(params["account_id"])
    if have == "device":
        if not route.device or params.get("connector_id") != principal.id:
            raise Forbidden()
    elif have is None or (route.access == "write" and have != "write"):
        raise Forbidden()
