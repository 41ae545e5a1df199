"""Credentials on the wire -> a ``Principal``, with Cloudflare's codes.

Verified credentials are cached per process (in memory only, keyed by the header as presented),
for ``auth_cache_seconds``; the cache is emptied whenever the store's
credentials version moves (any token or user change, from any process). The
version is read at most every 20 ms, so a revocation is honoured within 20 ms.
"""

from __future__ import annotations

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
        self._checked_at = -1.0

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

    def _token(self, header: str) -> Principal:
        return credentials.token_principal(self.store, bearer_secret(header))[0]

    def _cached(self, key: str, verify: Callable[[], Principal]) -> Principal:
        if self.cache_seconds <= 0:
            return verify()
        now = time.monotonic()
        if now - self._checked_at > RECHECK_SECONDS or len(self._cache) >= _CACHE_MAX:
            self._checked_at = now
            version = self.store.credentials_version()
            if version != self._version or len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
                self._version = version
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
