"""The event loop's held read transaction on SQLite (used by store.sqlite)."""

from __future__ import annotations

import mmap
import sqlite3
from collections.abc import Callable


class HeldReader:
    """The event loop's reads, in one read transaction kept open across statements for as
    long as nothing is committed anywhere.

    In WAL mode every autocommit statement begins and ends a read transaction, which takes
    and drops a lock on the ``-shm`` file: ~3 us of a ~5 us Get Event lookup (measured).
    Reads stay exact: before each use, the WAL index header (the first 48 bytes of the
    ``-shm`` file, which every commit rewrites before it returns; format:
    sqlite.org/walformat.html) is compared with its copy taken just before the transaction
    began; any difference begins a new transaction. A commit acknowledged before a request
    is therefore always visible to it. The header is read before the transaction takes its
    snapshot (at its first statement), so the copy can only be older than the snapshot,
    never newer: a change can cause a needless refresh, never a stale read.
    ``on_begin`` lets the caller end the transaction soon (the HTTP layer: at the next turn
    of the event loop), so an idle worker never holds an old snapshot that would keep WAL
    checkpoints from completing.
    """

    def __init__(self, conn: sqlite3.Connection, shm: mmap.mmap, on_begin: Callable[[], None]):
        self.conn, self._shm, self._on_begin = conn, shm, on_begin
        self._header = b""

    def get(self) -> sqlite3.Connection:
        header = self._shm[:48]
        conn = self.conn
        if conn.in_transaction:
            if header == self._header:
                return conn
            conn.execute("COMMIT")
        self._header = header
        conn.execute("BEGIN")
        self._on_begin()
        return conn

    def end(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self._shm.close()
        self.conn.close()
