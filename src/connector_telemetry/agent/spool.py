"""The agent's spool: every event and snapshot is written here first, and leaves only
once the server has acknowledged it.

A spool is a directory of record files, one per event or snapshot, named by a
monotonic sequence number (``000000000042.snapshot.json``) and holding the exact JSON
sent to the server, so a replay is byte-identical to the first attempt and the server
counts it as a duplicate. A record is written to a temporary file, fsync'd, renamed
into place and the directory fsync'd before it counts as recorded. ``state.json``
keeps what must survive a restart: the next event sequence number ``n`` and the last
snapshot ``t`` (so a restarted agent never reuses an event key or a snapshot key).
A ``lock`` file (flock) keeps a second agent off the same spool.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

EVENT = "event"
SNAPSHOT = "snapshot"

_NAME = re.compile(r"^(\d{12,})\.(event|snapshot)\.json$")


class SpoolLocked(Exception):
    """Another agent holds this spool directory."""


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str  # EVENT or SNAPSHOT
    path: str

    def body(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = open(os.path.join(directory, "lock"), "a+b")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolLocked(f"another agent is using the spool {directory}") from None
        for name in os.listdir(directory):
            if name.startswith(".tmp-"):  # a write interrupted before its rename
                os.unlink(os.path.join(directory, name))
        state = self._read_state()
        self._next_n = int(state.get("next_n", 0))
        self._last_t = float(state.get("last_t", 0.0))
        last_seq = max((r.seq for r in self.pending()), default=-1)
        self._next_seq = max(int(state.get("next_seq", 0)), last_seq + 1)

    def close(self) -> None:
        self._lock.close()

    # -- state --------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.directory, "state.json"), "rb") as f:
                value = json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError:  # written atomically, so only a hand edit gets here
            return {}  # event keys stay unique by t; snapshot t by the clock
        return value if isinstance(value, dict) else {}

    def _write_atomic(self, name: str, data: bytes) -> None:
        """``name`` holds ``data`` whole, or is untouched: a write that fails (a full disk)
        leaves no partial file behind and raises."""
        tmp = os.path.join(self.directory, f".tmp-{name}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.replace(tmp, os.path.join(self.directory, name))
        _fsync_dir(self.directory)

    def _save_state(self) -> None:
        state = {"next_n": self._next_n, "last_t": self._last_t, "next_seq": self._next_seq}
        self._write_atomic("state.json", _dumps(state))

    # -- recording ----------------------------------------------------------------------

    def _append(self, kind: str, item: dict[str, Any]) -> Record:
        seq = self._next_seq
        self._next_seq += 1
        self._save_state()  # keys are spent before they are used: a crash skips, never reuses
        name = f"{seq:012d}.{kind}.json"
        self._write_atomic(name, _dumps(item))
        return Record(seq, kind, os.path.join(self.directory, name))

    def record_event(self, kind: str, version: str, **payload: Any) -> tuple[Record, float, int]:
        """Spool an event ``{"e": {"k": kind, **payload}, "t", "n", "v"}``: ``t`` the time
        now, ``n`` the spool's next sequence number. Returns the record and its (t, n)."""
        t, n = time.time(), self._next_n
        self._next_n += 1
        return (
            self._append(EVENT, {"e": {"k": kind, **payload}, "t": t, "n": n, "v": version}),
            t,
            n,
        )

    def next_snapshot_t(self) -> float:
        """A snapshot key for now: epoch seconds to the millisecond, always later than
        any earlier snapshot of this spool (even if the clock stepped back)."""
        t = max(round(time.time(), 3), round(self._last_t + 0.001, 3))
        self._last_t = t
        return t

    def record_snapshot(self, snapshot: dict[str, Any]) -> Record:
        """Spool a snapshot whose ``t`` came from :meth:`next_snapshot_t`."""
        return self._append(SNAPSHOT, snapshot)

    # -- replay ---------------------------------------------------------------------------

    def pending(self) -> list[Record]:
        """Records not yet acknowledged, oldest first."""
        out = []
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m:
                out.append(Record(int(m.group(1)), m.group(2), os.path.join(self.directory, name)))
        return sorted(out, key=lambda r: r.seq)

    def remove(self, records: list[Record]) -> None:
        """Forget records: the server acknowledged them (or refused them for good)."""
        for r in records:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(r.path)
        if records:
            _fsync_dir(self.directory)
