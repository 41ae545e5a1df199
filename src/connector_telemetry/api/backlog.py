"""What the kernel knows of a streaming answer's connection (Linux): the bytes still in
its TCP send queue, and whether the client has gone, from ``/proc/self/net/tcp`` and
``tcp6``.

granian's streaming answers go through an unbounded channel (``send_bytes`` never waits)
and an idle one notices a client that hung up only when it next writes. The kernel's
socket table tells both: the send queue fills only when the client stops reading (and only
then does granian's channel grow behind it), and a connection the client closed is no
longer ``ESTABLISHED``. Used by the live streams (api/streams.py). One read of the table
serves every stream of the process for ``FRESH_SECONDS``.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

#: A client that has gone (its connection no longer ESTABLISHED: it hung up).
GONE = -1
FRESH_SECONDS = 0.25
_ESTABLISHED = "01"
_TABLES = ("/proc/self/net/tcp", "/proc/self/net/tcp6")


def _hex(host: str, port: str) -> str | None:
    """``host``, ``port`` as /proc/net/tcp writes them (each 32-bit word of the address
    in host order, little-endian here), or None when they are not an address."""
    try:
        packed = ipaddress.ip_address(host.strip("[]")).packed
        number = int(port)
    except ValueError:
        return None
    words = [packed[i : i + 4][::-1] for i in range(0, len(packed), 4)]
    return b"".join(words).hex().upper() + f":{number:04X}"


class _Table:
    """``(local, peer) -> (state, send queue)`` of every TCP socket, re-read at most every
    ``FRESH_SECONDS``; empty where there is no such table (not Linux)."""

    def __init__(self) -> None:
        self.read_at = -1.0
        self.rows: dict[tuple[str, str], tuple[str, int]] = {}
        self.available = True

    def get(self, key: tuple[str, str], fresh: float = FRESH_SECONDS) -> tuple[str, int] | None:
        now = time.monotonic()
        if now - self.read_at > fresh and self.available:
            self.read_at = now
            rows: dict[tuple[str, str], tuple[str, int]] = {}
            found = False
            for table in _TABLES:
                try:
                    with open(table) as lines:
                        next(lines)
                        found = True
                        for line in lines:
                            f = line.split(None, 5)
                            rows[(f[1], f[2])] = (f[3], int(f[4].partition(":")[0], 16))
                except (OSError, StopIteration, IndexError, ValueError):
                    continue
            self.rows, self.available = rows, found
        return self.rows.get(key)


_TABLE = _Table()


def send_queue(local: str, peer: str) -> Callable[..., int | None]:
    """A function answering the bytes in the send queue of the TCP connection from
    ``local`` to ``peer`` (``ip:port`` each), ``GONE`` once the client has closed it, or
    None when it cannot tell (not Linux, addresses unknown)."""
    keys = []
    (lhost, _, lport), (phost, _, pport) = local.rpartition(":"), peer.rpartition(":")
    plain = (_hex(lhost, lport), _hex(phost, pport))
    if plain[0] is None or plain[1] is None:
        return lambda: None
    keys.append((plain[0], plain[1]))
    if ":" not in lhost:  # IPv4 on a dual-stack socket: IPv4-mapped IPv6 addresses
        mapped = (_hex("::ffff:" + lhost, lport), _hex("::ffff:" + phost, pport))
        keys.append((str(mapped[0]), str(mapped[1])))

    def queued(fresh: float = FRESH_SECONDS) -> int | None:
        if not _TABLE.available:
            return None
        for key in keys:
            row = _TABLE.get(key, fresh)
            if row is not None:
                return row[1] if row[0] == _ESTABLISHED else GONE
        return None  # not in the table (yet): a socket the client closed stays, CLOSE_WAIT

    return queued
