"""SQLite's writer turns across processes (used by store.sqlite).

Many processes may open the same file. SQLite serializes their writers, but a writer
that finds the file locked sleeps 1, 2, 5, 10, ... ms between tries (its default busy
handler), so the workers of one server, handing the write lock to one another hundreds
of times a second, would spend much of each turn asleep. They take turns on an advisory
``flock`` of a lock file beside the database first, polled at a fine grain; SQLite's busy
timeout still covers writers that do not take part (a ``sqlite3`` shell).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from contextlib import suppress


class WriterTurn:
    """Cross-process writer turns: an exclusive ``flock`` on ``<database>-writer.lock``.

    Polled without blocking, sleeping 50 us at first and at most 500 us between tries, so a
    turn passes within a fraction of a millisecond of its release; after ``timeout_s``,
    ``sqlite3.OperationalError`` (answered 503, as SQLite's own busy timeout is). A process
    that dies holding it releases it with its file descriptors. The file gets the
    database's permissions (and, for root, its owner), as SQLite's ``-wal`` and ``-shm``
    files do; a process that cannot open it takes turns through SQLite's locking alone.
    """

    def __init__(self, db_path: str, timeout_s: float):
        self.timeout_s = timeout_s
        self.fd = -1
        try:
            db = os.stat(db_path)
        except OSError:
            return
        try:
            self.fd = os.open(
                db_path + "-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, db.st_mode & 0o666
            )
        except OSError:
            return
        if os.geteuid() == 0 and (db.st_uid, db.st_gid) != (0, 0):
            with suppress(OSError):
                os.fchown(self.fd, db.st_uid, db.st_gid)

    def acquire(self) -> None:
        if self.fd < 0:
            return
        deadline = 0.0
        pause = 50e-6
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if not deadline:
                deadline = now + self.timeout_s
            elif now > deadline:
                raise sqlite3.OperationalError("database is locked (writer turn timed out)")
            time.sleep(pause)
            pause = min(pause * 2, 500e-6)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
