"""How many bytes of a connection's answer are still waiting in the kernel (Linux): the
send queue of its TCP socket, from ``/proc/self/net/tcp`` and ``tcp6``.

granian's streaming answers go through an unbounded channel (``send_bytes`` never waits),
so a live stream cannot learn from its writes whether its client keeps up. The kernel's
send queue tells: it fills only when the client stops reading (and only then does
granian's channel grow behind it). Used by the live streams (api/streams.py) to bound
what the server holds for a slow client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable


def _hex(address: str) -> str | None:
    """``ip:port`` as /proc/net/tcp writes it (each 32-bit word of the address in host
    order, little-endian here), or None when it is not an address."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        packed = ipaddress.ip_address(host).packed
        number = int(port)
    except ValueError:
        return None
    words = [packed[i : i + 4][::-1] for i in range(0, len(packed), 4)]
    return b"".join(words).hex().upper() + f":{number:04X}"


def send_queue(local: str, peer: str) -> Callable[[], int | None]:
    """A function answering the bytes in the send queue of the TCP connection from
    ``local`` to ``peer`` (``ip:port`` each), or None when it cannot tell (not Linux, the
    connection gone, addresses unknown)."""
    ours, theirs = _hex(local), _hex(peer)
    if ours is None or theirs is None:
        return lambda: None
    where = [("/proc/self/net/tcp6" if len(ours) > 13 else "/proc/self/net/tcp", ours, theirs)]
    if len(ours) <= 13:  # IPv4 on a dual-stack socket: an IPv4-mapped IPv6 address
        mapped = [
            _hex(f"[::ffff:{a.rpartition(':')[0]}]:{a.rpartition(':')[2]}") for a in (local, peer)
        ]
        where.append(("/proc/self/net/tcp6", str(mapped[0]), str(mapped[1])))

    def queued() -> int | None:
        for table, local_hex, peer_hex in where:
            try:
                with open(table) as rows:
                    next(rows)
                    for row in rows:
                        fields = row.split(None, 5)
                        if fields[1] == local_hex and fields[2] == peer_hex:
                            return int(fields[4].partition(":")[0], 16)
            except (OSError, StopIteration, IndexError, ValueError):
                continue
        return None

    return queued
