"""A synchronous ``httpx.Client`` for an ASGI app in this process, so the simulator
can fill a database through the very API it serves before any port is open (what
``ctel serve --demo`` needs). httpx ships an ASGI transport for async clients only;
this one runs each request to completion on a private event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

#: the URL in-process requests are made to; any host works, nothing is resolved
BASE = "http://ctel.invalid"


class SyncAsgiTransport(httpx.BaseTransport):
    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._runner = asyncio.Runner()
        self._lock = threading.Lock()  # one request at a time, from any thread

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def roundtrip() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        with self._lock:
            return self._runner.run(roundtrip())

    def close(self) -> None:
        with self._lock:
            self._runner.close()


def client_for(app: Any, timeout: float = 120.0) -> httpx.Client:
    """A client whose requests go straight to ``app`` (an ASGI callable)."""
    return httpx.Client(transport=SyncAsgiTransport(app), base_url=BASE, timeout=timeout)
