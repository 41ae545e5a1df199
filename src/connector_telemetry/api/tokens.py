"""Token verification, as Cloudflare answers it (``/user/tokens/verify``)."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api.auth import bearer_secret
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Envelope, Route, ref
from connector_telemetry.errors import (
    InvalidAccessToken,
    InvalidApiToken,
    MissingAuthorization,
    MissingCredentials,
)
from connector_telemetry.service import credentials

_VALID = {"code": 10000, "message": "This API Token is valid and active", "type": None}


def routes(ctx: Context) -> list[Route]:
    def verify(req: Request, account_id: str | None) -> Any:
        header = req.headers.get("authorization")
        if header is None:
            if req.headers.get("x-auth-key") is None and req.headers.get("x-auth-email") is None:
                raise MissingCredentials()
            raise MissingAuthorization()
        secret = bearer_secret(header)
        try:
            _, token = credentials.token_principal(ctx.store, secret)
        except InvalidAccessToken as exc:
            raise InvalidApiToken() from exc
        if account_id is not None and token.account_id != account_id:
            raise InvalidApiToken()
        result: dict[str, Any] = {"id": token.id, "status": "active"}
        if token.expires_on is not None:
            result["expires_on"] = token.expires_on
        return result

    def verify_user_token(req: Request) -> Any:
        return verify(req, None)

    def verify_account_token(req: Request) -> Any:
        return verify(req, req.account_id)

    answer = Envelope(messages=(_VALID,))

    return [
        Route(
            "GET",
            "/user/tokens/verify",
            verify_user_token,
            "self",
            "user.tokens.verify",
            "Verify Token",
            result=ref("TokenVerify"),
            answer=answer,
        ),
        Route(
            "GET",
            "/accounts/{account_id}/tokens/verify",
            verify_account_token,
            "self",
            "accounts.tokens.verify",
            "Verify Token (account-owned)",
            result=ref("TokenVerify"),
            answer=answer,
        ),
    ]
