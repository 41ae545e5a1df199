"""Credentials on the wire -> a ``Principal``, with Cloudflare's codes.

Verified credentials are cached per process (in memory only, keyed by the header as presented),
for ``auth_cache_seconds``; the cache is emptied whenever the store's
credentials version moves (any token or user change, from any process). The
version is read at most every 20 ms, so a revocation is honoured within 20 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connector_telemetry.api.request import Headers
from connector_telemetry.errors import Forbidden, InvalidHeaders, MissingCredentials
from connector_telemetry.service import credentials
from connector_telemetry.service.models import Principal
from connector_telemetry.store.base import Store

_CACHE_MAX = 10_000
#: How often (at most) the store's credentials version is read: a revoked or
#: replaced credential stops working within this time, in every process.
RECHECK_SECONDS = 0.02
_BAD_AUTHORIZATION = (6111, "Invalid format for Authorization header")
_BAD_EMAIL = (6102, "Invalid format for X-Auth-Email header")
_BAD_KEY = (6103, "Invalid format for X-Auth-Key header")


def bearer_secret(header: str) -> str:
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not credentials.TOKEN_SHAPE.match(secret):
        raise InvalidHeaders([_BAD_AUTHORIZATION])
    return secret


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
            return self._cached(authorization, lambda: self._token(bearer_secret(authorization)))
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

    def _token(self, secret: str) -> Principal:
        return credentials.token_principal(self.store, secret)[0]

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
            if principal.expires_at is None or principal.expires_at > time.time():
                return principal
        principal = verify()
        self._cache[key] = (principal, now)
        return principal


def authorize(principal: Principal, account_id: str, need: str) -> None:
    """403/10000 unless the principal may ``need`` (read or write) on the account.

    The answer is the same whether or not the account or anything in it exists.
    """
    have = principal.permission_on(account_id)
    if have is None or (need == "write" and have != "write"):
        raise Forbidden()
