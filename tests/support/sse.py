"""A server-sent events client for tests: a stream read on a thread of its own, its
messages (and comments) collected as they arrive."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from support.server import LiveServer
from support.tenants import Tenant


@dataclass
class Message:
    id: str | None
    event: str | None
    data: str
    received: float = field(default=0.0)

    @property
    def item(self) -> Any:
        return json.loads(self.data)


class Listener:
    """``GET url`` as a stream. ``status`` and ``headers`` once connected; ``take(n)``
    the next n messages; ``comments`` the comment lines seen; ``ended`` once the server
    ended the stream (cleanly: ``error`` stays None)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        params: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ):
        self.messages: queue.Queue[Message] = queue.Queue()
        self.comments: list[str] = []
        self.status: int | None = None
        self.body = b""
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._connected = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, read=60))
        self._thread = threading.Thread(
            target=self._run, args=(url, headers, params or {}), daemon=True
        )
        self._thread.start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"no answer from {url}")

    def _run(self, url: str, headers: dict[str, str], params: dict[str, Any]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers, params=params) as response:
                self.status = response.status_code
                self.headers = response.headers
                stream = response.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream else None
                if response.status_code != 200:
                    self.body = response.read()
                    self._connected.set()
                    return
                self._connected.set()
                event: str | None = None
                message_id: str | None = None
                data: list[str] = []
                for line in response.iter_lines():
                    if line == "":
                        if data:
                            message = Message(message_id, event, "\n".join(data), time.time())
                            self.messages.put(message)
                        event, message_id, data = None, None, []
                    elif line.startswith(":"):
                        self.comments.append(line)
                    else:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "id":
                            message_id = value
                        elif name == "event":
                            event = value
                        elif name == "data":
                            data.append(value)
        except (httpx.HTTPError, RuntimeError) as exc:
            if not self._closing:
                self.error = exc
        finally:
            self._connected.set()
            self.ended.set()

    _closing = False
    _socket: socket.socket | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def take(self, count: int, timeout: float = 10.0) -> list[Message]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {count} messages: {out[-3:]}")
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                continue
        return out

    def quiet(self, seconds: float = 0.5) -> list[Message]:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        time.sleep(seconds)
        out = []
        while not self.messages.empty():
            out.append(self.messages.get())
        return out

    def close(self) -> None:
        """Hang up (as a client that goes away)."""
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._client.close()
        self._thread.join(5)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


T0 = 1_700_000_000


def account_stream(live: LiveServer, tenant: Tenant) -> str:
    return f"{live.api}/accounts/{tenant.account_id}/magic/connectors/telemetry/stream"


def post(live: LiveServer, tenant: Tenant, path: str, body: list[dict[str, Any]]) -> Any:
    got = httpx.post(live.api + path, json=body, headers=tenant.write, timeout=30)
    assert got.status_code == 200, got.text
    return got.json()["result"]


def event(k: str, t: float, n: int | None = None, **payload: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"e": {"k": k, **payload}, "t": t}
    if n is not None:
        out["n"] = n
    return out
