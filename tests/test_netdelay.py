"""The benchmarks' latency-adding proxy (``bench/netdelay.py``, issue 13) adds the delay it
is set to: each way, from when the kernel received a chunk (not when a thread woke up to
read it), its sleeps' overshoot learned and taken off."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from support.netdelay import NetDelay


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server's port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]


def round_trips(port: int, count: int) -> list[float]:
    """Seconds per one-byte echo on one connection, a millisecond apart."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            conn.sendall(b"x")
            assert conn.recv(16) == b"x"
            times.append(time.perf_counter() - started)
            time.sleep(0.001)
    return times[count // 10 :]  # (the first sleeps teach each sender its overshoot)


def test_a_round_trip_takes_twice_the_delay_set(echo: int) -> None:
    with NetDelay(("127.0.0.1", echo), 0.25) as proxy:
        times = round_trips(proxy.port, 300)
    median = statistics.median(times) * 1000
    # 0.5 ms, plus the echo's own round trip; not the ~0.7 of sleeps that overshoot
    assert 0.48 <= median <= 0.9, median
    assert statistics.quantiles(times, n=20)[0] * 1000 >= 0.4  # 95% of them at least that
