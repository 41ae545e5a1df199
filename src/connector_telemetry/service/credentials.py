"""Accounts, API tokens and user keys: issuing, revoking, and checking them.

Secrets are shown once and stored as SHA-256 digests (they are long random
strings, so a fast hash is the right one); a presented secret is hashed and the
stored digest compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from typing import Any

from connector_telemetry import clock
from connector_telemetry.errors import (
    BadRequest,
    Forbidden,
    InvalidAccessToken,
    NotFound,
    UnknownApiKey,
    check_text,
)
from connector_telemetry.models import PERMISSION_NAMES, Principal, Token, User
from connector_telemetry.store.base import Store

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{40}\Z")
API_KEY_SHAPE = re.compile(r"[0-9a-f]{37}\Z")
LICENSE_SHAPE = re.compile(r"ctel_lic_[A-Za-z0-9_-]{43}\Z")
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\Z")
ACCOUNT_ID_MAX = 32


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_id() -> str:
    return uuid.uuid4().hex


def create_account(store: Store, account_id: str | None = None, name: str | None = None) -> str:
    account_id = new_id() if account_id is None else account_id
    if not account_id or len(account_id) > ACCOUNT_ID_MAX or "/" in account_id:
        raise BadRequest("account id must be 1 to 32 characters without '/'")
    check_text("account id", account_id)
    if name is not None:
        check_text("account name", name)
    store.create_account(account_id, name or f"Account {account_id[:8]}", clock.rfc3339())
    return account_id


def create_token(
    store: Store,
    account_id: str,
    permission: str,
    name: str | None = None,
    expires_on: str | None = None,
) -> tuple[Token, str]:
    """Issue a token; returns it with its secret (the only time the secret exists)."""
    if name is not None:
        check_text("token name", name)
    if permission not in PERMISSION_NAMES:
        raise BadRequest(f"permission must be one of {', '.join(PERMISSION_NAMES)}")
    if not store.account_exists(account_id):
        raise NotFound(f"account {account_id} not found")
    if expires_on is not None:
        try:
            expires_on = clock.rfc3339(clock.parse_rfc3339(expires_on))
        except ValueError as exc:
            raise BadRequest(f"expires_on: not an ISO 8601 time: {expires_on!r}") from exc
    secret = new_token_secret()
    token = Token(
        id=new_id(),
        account_id=account_id,
        name=name or f"{permission} token",
        permission=PERMISSION_NAMES[permission],
        created_at=clock.rfc3339(),
        expires_on=expires_on,
    )
    store.create_token(token, digest(secret))
    return token, secret


def new_token_secret() -> str:
    """40 characters like Cloudflare's tokens, never starting with ``-``.

    A secret that began with ``-`` (1 in 64 of ``token_urlsafe``'s) would be read as an option
    by every command line that takes it as ``--token SECRET`` (argparse, curl's ``-H`` aside).
    """
    while True:
        secret = secrets.token_urlsafe(30)
        if not secret.startswith("-"):
            return secret


def revoke_token(store: Store, token_id: str) -> None:
    if not store.revoke_token(token_id, clock.rfc3339()):
        raise NotFound(f"no active token with id {token_id}")


def create_user(store: Store, email: str, account_ids: list[str]) -> str:
    """Create a user with a Global API Key over ``account_ids``; returns the key."""
    email = check_text("email", email.strip().lower())
    if not EMAIL_SHAPE.match(email):
        raise BadRequest(f"not an email address: {email!r}")
    for account_id in account_ids:
        if not store.account_exists(account_id):
            raise NotFound(f"account {account_id} not found")
    key = secrets.token_hex(19)[:37]
    store.create_user(
        User(new_id(), email, digest(key), tuple(dict.fromkeys(account_ids))), clock.rfc3339()
    )
    return key


def token_principal(store: Store, secret: str) -> tuple[Principal, Token]:
    """The principal behind a well-formed token secret, or ``InvalidAccessToken``."""
    wanted = digest(secret)
    found = store.find_token(wanted)
    if found is None or not hmac.compare_digest(found[1], wanted):
        raise InvalidAccessToken()
    token = found[0]
    expires_at = clock.parse_rfc3339(token.expires_on) if token.expires_on else None
    if token.revoked_at is not None or (expires_at is not None and expires_at <= clock.now()):
        raise InvalidAccessToken()
    principal = Principal("token", token.id, {token.account_id: token.permission}, expires_at)
    return principal, token


def license_principal(store: Store, key: str) -> Principal:
    """A connector's own credential: its license key (only its connector, device routes)."""
    found = store.find_license(digest(key))
    if found is None:
        raise InvalidAccessToken()
    account_id, connector_id = found
    return Principal("device", connector_id, {account_id: "device"})


def user_principal(store: Store, email: str, key: str) -> Principal:
    user = store.find_user(email.strip().lower())
    # Hash even when the user is unknown, so both failures take the same time.
    wanted = digest(key)
    if user is None or not hmac.compare_digest(user.key_hash, wanted):
        raise UnknownApiKey()
    return Principal("user", user.id, dict.fromkeys(user.account_ids, "write"))


def list_accounts(
    store: Store, principal: Principal, name: str | None = None
) -> list[dict[str, Any]]:
    """The accounts a token or user key may use (the dashboard's sign-in), by id,
    as Cloudflare's Account objects, each with what the credential may do there in
    ``permissions.magic_wan`` (Cloudflare's membership style); ``name``: only those whose
    name contains it (case-insensitive)."""
    if principal.kind == "device":
        raise Forbidden()
    grants = principal.grants
    wanted = None if name is None else name.lower()
    return [
        {
            "id": account_id,
            "name": account_name,
            "type": "standard",
            "created_on": created_at,
            "settings": {"enforce_twofactor": False},
            "permissions": {"magic_wan": {"read": True, "write": grants[account_id] == "write"}},
        }
        for account_id, account_name, created_at in store.get_accounts(list(grants))
        if wanted is None or wanted in account_name.lower()
    ]
