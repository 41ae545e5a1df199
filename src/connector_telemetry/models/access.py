"""Who may do what: principals (the caller of a request), API tokens, users, and the
names of Magic WAN's permissions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Permission = Literal["read", "write", "device"]
PERMISSION_NAMES: dict[str, Permission] = {"Magic WAN Read": "read", "Magic WAN Write": "write"}
PERMISSION_LABELS: dict[Permission, str] = {v: k for k, v in PERMISSION_NAMES.items()}


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API token (one account), a user key (its accounts), or a
    connector's license key (``device``: its own connector only, ``id`` is its id)."""

    kind: Literal["token", "user", "device"]
    id: str
    grants: dict[str, Permission]
    expires_at: float | None = None

    def permission_on(self, account_id: str) -> Permission | None:
        return self.grants.get(account_id)


@dataclass(frozen=True)
class Token:
    id: str
    account_id: str
    name: str
    permission: Permission
    created_at: str
    expires_on: str | None = None
    revoked_at: str | None = None


@dataclass(frozen=True)
class User:
    id: str
    email: str
    key_hash: bytes
    account_ids: tuple[str, ...]
