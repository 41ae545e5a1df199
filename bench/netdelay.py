"""A TCP proxy that adds a set one-way delay in each direction (issue 13): the network
between ctel and a PostgreSQL on another host, on a machine whose kernel has no netem.

Each accepted connection gets its own connection to the target and, per direction, a
reader thread (reads whatever arrived, stamps it with ``now + delay``) and a sender
thread (sends each chunk, in order, once its time has come). A request and its answer
therefore each wait ``delay`` once: the round trip grows by ``2 * delay`` (0.25 ms each
way: 0.5 ms), however many bytes flow, and a pipelined stream stays pipelined (the
delay is latency, not bandwidth). Threads, not asyncio: asyncio's timers wait whole
milliseconds (epoll), far too coarse for 0.25 ms. Two corrections keep the delay the one
set: a chunk's time starts when the kernel received it (``SO_TIMESTAMPNS``), not when the
reader thread woke up to read it, and each sender learns how much its sleeps overshoot and
wakes that much sooner (without them a ``SELECT 1`` took 0.67-0.81 ms through 0.25 ms each
way). What remains is reported by the benchmark (``SELECT 1`` direct and through).

``drop_all()`` cuts every open connection at once (both sides see it closed mid-query),
as a failing network or a restarted load balancer would; new connections are accepted
as before. ``cpu_seconds()`` is the proxy's own CPU time (the whole process when it runs
on its own, ``python -m bench.netdelay``; SIGUSR1 then drops every connection).

In the tests: ``support.netdelay`` (the same class).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

from bench.procs import cpu_seconds

_CHUNK = 1 << 16
#: Linux's SO_TIMESTAMPNS (its control message, SCM_TIMESTAMPNS, the same number)
_SO_TIMESTAMPNS = 35
_STAMP_ROOM = socket.CMSG_SPACE(16)
_LEARN = 4e-6  # s: a sender's step towards its sleeps' median overshoot


class NetDelay:
    """``127.0.0.1:<port>`` forwarding to ``target`` with ``delay_ms`` each way."""

    def __init__(self, target: tuple[str, int], delay_ms: float, port: int = 0) -> None:
        self.target = target
        self.delay = delay_ms / 1000
        self._listener = socket.create_server(("127.0.0.1", port), backlog=256)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self.accepted = 0
        self.dropped = 0
        self._acceptor = threading.Thread(target=self._accept, name="netdelay", daemon=True)

    def __enter__(self) -> NetDelay:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> NetDelay:
        return self.__enter__()

    def url(self, url: str) -> str:
        """``url`` (a libpq URL of the target) through this proxy: over TCP, this port."""
        return through(url, self.port)

    # -- the connections ------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._open.update((client, server))
                self.accepted += 1
            for src, dst in ((client, server), (server, client)):
                self._pipe(src, dst)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        stamped = _stamp_arrivals(src)

        def read() -> None:
            try:
                while True:
                    if stamped:
                        data, ancillary, _, _ = src.recvmsg(_CHUNK, _STAMP_ROOM)
                    else:
                        data, ancillary = src.recv(_CHUNK), []
                    if not data:
                        break
                    chunks.put((_arrived(ancillary) + self.delay, data))
            except OSError:
                pass
            chunks.put((0.0, b""))

        def send() -> None:
            early = 0.0  # how much before its due time a sleep must end: its overshoot
            # (learned a few microseconds a chunk towards the median overshoot: a mean
            # would follow the rare long ones and send most chunks early)
            try:
                while True:
                    due, data = chunks.get()
                    if not data:
                        break
                    wait = due - time.perf_counter() - early
                    if wait > 0:
                        time.sleep(wait)
                        late = time.perf_counter() - due
                        early = min(max(early + (_LEARN if late > 0 else -_LEARN), 0.0), self.delay)
                    dst.sendall(data)
            except OSError:
                pass
            self._close_pair(src, dst)

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=send, daemon=True).start()

    def _close_pair(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop_all(self) -> int:
        """Cut every open connection now (both ends see it closed); returns how many
        sockets were cut. The proxy goes on accepting new connections."""
        with self._lock:
            socks, self._open = list(self._open), set()
            self.dropped += len(socks) // 2
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(socks)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.drop_all()
        if self._acceptor.is_alive():
            self._acceptor.join(5)


def _stamp_arrivals(sock: socket.socket) -> bool:
    """Have the kernel tell, with each read, when the data read arrived (Linux)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _arrived(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the data just read arrived, on ``time.perf_counter``'s clock: the kernel's
    stamp (its last packet's) if there is one, else now."""
    now = time.perf_counter()
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            ago = (time.time_ns() - (sec * 1_000_000_000 + nsec)) / 1e9
            return now - min(max(ago, 0.0), 0.01)  # (a clock step: at most 10 ms back)
    return now


def through(url: str, port: int) -> str:
    """``url`` (``postgresql://...``, any host) as a ``postgresql://`` URL of the same
    database, user and options on ``127.0.0.1:port`` (what ctel recognizes as PostgreSQL)."""
    from urllib.parse import quote, urlencode

    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = conninfo_to_dict(url)
    for key in ("host", "hostaddr", "port"):
        params.pop(key, None)
    user, password = params.pop("user", ""), params.pop("password", None)
    dbname = params.pop("dbname", "")
    auth = quote(str(user)) + (f":{quote(str(password))}" if password else "")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}@127.0.0.1:{port}/{quote(str(dbname))}{query}"


class ProxyProcess:
    """``python -m bench.netdelay`` in a process of its own (its CPU apart from the
    benchmark's and ctel's, measured by ``cpu_seconds``)."""

    def __init__(self, target: tuple[str, int], delay_ms: float) -> None:
        import subprocess

        self.delay_ms = delay_ms
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.netdelay", f"{target[0]}:{target[1]}",
             "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"bench.netdelay did not start: {line!r}")
        self.port = int(line)

    def url(self, url: str) -> str:
        return through(url, self.port)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def drop_all(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def round_trip_ms(url: str, count: int = 300) -> float:
    """The median time of ``SELECT 1`` on one connection to ``url``, ms."""
    import statistics

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def fine_timers() -> None:
    """Linux lets a sleeping thread oversleep by its timer slack (50 us by default);
    1 ns here, so that 0.25 ms is 0.25 ms (best effort: nothing happens elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def main() -> int:
    fine_timers()
    parser = argparse.ArgumentParser(prog="python -m bench.netdelay", description=__doc__)
    parser.add_argument("target", help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.25, help="one-way delay (ms)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    proxy = NetDelay((host, int(port)), args.delay_ms, args.port)
    signal.signal(signal.SIGUSR1, lambda *_: proxy.drop_all())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with proxy:
        print(proxy.port, flush=True)  # the parent reads the port from the first line
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main())
