"""The official ``cloudflare`` SDK against the live server, three ways (the ``sdk``
fixture): the sync ``Cloudflare`` client, ``AsyncCloudflare`` on its default httpx client,
and ``AsyncCloudflare`` on ``DefaultAioHttpClient``, always with strict response
validation. A scenario is written once, as a coroutine driving ``cf``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cloudflare import (
    APIStatusError,
    AsyncCloudflare,
    Cloudflare,
    DefaultAioHttpClient,
    DefaultAsyncHttpxClient,
    DefaultHttpxClient,
)

MODES = ("sync", "async-httpx", "async-aiohttp")
T0 = 1_700_000_000
UNKNOWN_ID = "0" * 32


class _Awaitable:
    """The sync client behind the async client's interface: every method call becomes a
    coroutine (the request itself is the sync client's), so one scenario drives both."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return _Awaitable(value)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return value(*args, **kwargs)

        return call


@dataclass
class SDK:
    mode: str
    api: str

    @contextlib.asynccontextmanager
    async def client(
        self,
        token: str | None = None,
        *,
        email: str | None = None,
        key: str | None = None,
        max_retries: int = 0,
        on_request: Callable[[httpx.Request], None] | None = None,
    ) -> AsyncIterator[Any]:
        """A strict client of this mode; ``on_request`` sees every request it sends."""
        options: dict[str, Any] = {
            "api_token": token,
            "api_email": email,
            "api_key": key,
            "base_url": self.api,
            "max_retries": max_retries,
            "_strict_response_validation": True,
        }
        if self.mode == "sync":
            hooks = {"request": [on_request]} if on_request else {}
            http_client = DefaultHttpxClient(event_hooks=hooks) if on_request else None
            with Cloudflare(**options, http_client=http_client) as cf:
                yield _Awaitable(cf)
            return

        async def async_hook(request: httpx.Request) -> None:
            assert on_request is not None
            on_request(request)

        async_hooks = {"request": [async_hook]} if on_request else {}
        if self.mode == "async-aiohttp":
            async_client: httpx.AsyncClient | None = DefaultAioHttpClient(event_hooks=async_hooks)
        else:  # the SDK's default httpx client, unless we need to watch requests
            async_client = DefaultAsyncHttpxClient(event_hooks=async_hooks) if on_request else None
        async with AsyncCloudflare(**options, http_client=async_client) as cf:
            yield cf

    def run(
        self, scenario: Callable[[Any], Awaitable[None]], token: str | None = None, **auth: Any
    ) -> None:
        """Run ``scenario(cf)`` with one client of this mode."""

        async def main() -> None:
            async with self.client(token, **auth) as cf:
                await scenario(cf)

        asyncio.run(main())

    def run_many(self, scenario: Callable[[], Awaitable[None]]) -> None:
        """Run a scenario that opens its own clients with ``self.client``."""
        asyncio.run(scenario())


@pytest.fixture(params=MODES)
def sdk(request: pytest.FixtureRequest, live: Any, monkeypatch: pytest.MonkeyPatch) -> SDK:
    for name in (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_KEY",
        "CLOUDFLARE_EMAIL",
        "CLOUDFLARE_API_USER_SERVICE_KEY",
        "CLOUDFLARE_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)  # only what the tests pass may authenticate
    return SDK(request.param, live.api)


# -- helpers ---------------------------------------------------------------------------


@contextlib.contextmanager
def raises(cls: type[APIStatusError], code: int) -> Iterator[pytest.ExceptionInfo[Any]]:
    """The SDK raises exactly ``cls`` with Cloudflare's error envelope carrying ``code``."""
    with pytest.raises(APIStatusError) as info:
        yield info
    exc = info.value
    assert type(exc) is cls, (type(exc), exc.body)
    assert exc.errors and exc.errors[0].code == code, exc.body
    assert isinstance(exc.body, dict), exc.body
    assert exc.body["errors"][0]["code"] == code and exc.body["errors"][0]["message"]
    assert exc.body["success"] is False and exc.body["result"] is None


def connectors(cf: Any) -> Any:
    return cf.magic_transit.connectors


def payload(kind: str) -> dict[str, Any]:
    """The smallest valid ``e`` of a kind (some kinds need a field)."""
    e: dict[str, Any] = {"k": kind}
    if kind == "StartUpgrade":
        e["url"] = "https://updates.example.com/connector-2026.2.0.img"
    if kind.startswith("Rekey"):
        e["tunnel_id"] = f"tunnel-{kind.lower()}"
    return e


def event(kind: str, t: float, n: float, **extra: Any) -> dict[str, Any]:
    return {"e": {**payload(kind), **extra}, "t": t, "n": n, "v": "2026.1.0"}
