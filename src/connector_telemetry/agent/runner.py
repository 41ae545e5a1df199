"""The agent's loop: ``Init``, then every interval a snapshot and a look for interrupts,
then ``Leave`` on a clean stop.

Everything the agent reports goes through the spool first (see :mod:`.spool`) and is
then replayed oldest first, so an unreachable server costs nothing: records wait on
disk and go out in order once it answers again. Consecutive records of one kind go
in one request (the server stores a batch whole or not at all); if the server refuses
such a batch for good, its records are retried one by one so only the bad one is
dropped.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector_telemetry.agent import snapshot
from connector_telemetry.agent.client import Answer, Client, Outcome
from connector_telemetry.agent.interrupts import Interrupt, parse_interrupts, run_interrupt
from connector_telemetry.agent.spool import EVENT, Record, Spool

log = logging.getLogger(__name__)

#: most records in one request while replaying
MAX_BATCH = 100


@dataclass
class Counters:
    """The agent's own counters, reported in every snapshot (the ``count_*`` fields)."""

    transmit_failures: int = 0  # upload attempts that did not deliver
    record_failed: int = 0  # readers that failed, and snapshots that could not be spooled


@dataclass
class Agent:
    client: Client
    spool: Spool
    host: snapshot.Host
    version: str
    interval: float = 60.0
    commands: Mapping[str, str | None] = field(default_factory=dict)
    command_timeout: float = 300.0
    stop_grace: float = 5.0  # at most this long to deliver what is pending on stop
    counters: Counters = field(default_factory=Counters)
    stopping: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = ""
    _reachable: bool | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the HTTP client and the spool's lock."""
        self.client.close()
        self.spool.close()

    def request_stop(self, reason: str = "asked to") -> None:
        """Ask :meth:`run_forever` to stop after the current step (signal-handler safe)."""
        self.stop_reason = reason
        self.stopping.set()

    def run_forever(self) -> None:
        self.start()
        try:
            next_at = time.monotonic()
            while True:
                next_at += self.interval
                if self.stopping.wait(max(0.0, next_at - time.monotonic())):
                    break
                if next_at < time.monotonic():  # a slow step: skip ticks rather than burst
                    next_at = time.monotonic()
                self.tick()
        finally:
            self.stop()

    def start(self) -> None:
        self.record_event("Init")
        self._flush_safely()

    def stop(self) -> None:
        log.info("stopping (%s)", self.stop_reason or "loop ended")
        self.record_event("Leave")
        if not self._flush_safely(deadline=time.monotonic() + self.stop_grace):
            log.warning("stopping with %d records spooled", len(self.spool.pending()))

    def tick(self) -> None:
        try:
            self.record_snapshot()
            if self._flush_safely() or self._reachable:
                self.check_interrupts()
        except Exception:  # a daemon keeps going; the next tick retries
            log.exception("unexpected error in the agent loop")

    def _flush_safely(self, deadline: float | None = None) -> bool:
        try:
            return self.flush(deadline)
        except Exception:  # records stay spooled; the next flush retries them
            log.exception("unexpected error delivering the spool")
            return False

    # -- recording ---------------------------------------------------------------------------

    def record_event(self, kind: str, **payload: Any) -> None:
        try:
            _, t, n = self.spool.record_event(kind, self.version, **payload)
        except OSError as e:
            log.error("event %s NOT recorded: could not spool it (%s)%s", kind, e, _full(e))
            return
        log.info("event %s recorded t=%r n=%d", kind, t, n)

    def record_snapshot(self) -> float | None:
        t = self.spool.next_snapshot_t()
        collected = snapshot.collect(self.host)
        self.counters.record_failed += collected.failures
        body = {
            "t": t,
            "v": self.version,
            "count_reclaim_failures": 0,
            "count_reclaimed_paths": 0,
            "count_record_failed": self.counters.record_failed,
            "count_transmit_failures": self.counters.transmit_failures,
            **collected.fields,
        }
        try:
            self.spool.record_snapshot(body)
        except (OSError, ValueError) as e:
            self.counters.record_failed += 1
            log.error("snapshot t=%r NOT recorded: could not spool it (%s)%s", t, e, _full(e))
            return None
        log.debug("snapshot recorded t=%r", t)
        return t

    # -- delivery ------------------------------------------------------------------------------

    def _post(self, group: list[Record]) -> Answer:
        bodies = [r.body() for r in group]
        if group[0].kind == EVENT:
            return self.client.post_events(bodies)
        return self.client.post_snapshots(bodies)

    def _note_reachable(self, answer: Answer) -> None:
        reachable = answer.outcome is not Outcome.UNREACHABLE
        if reachable and self._reachable is False:
            log.warning("server answers again; replaying the spool")
        elif not reachable and self._reachable is not False:
            log.warning("server unreachable (%s); spooling until it answers", answer.detail)
        self._reachable = reachable

    def flush(self, deadline: float | None = None) -> bool:
        """Deliver pending records oldest first; True when the spool is empty."""
        pending = self.spool.pending()
        i = 0
        singles_until = 0  # records before this index go one per request
        while i < len(pending):
            if deadline is not None and time.monotonic() > deadline:
                return False
            limit = 1 if i < singles_until else MAX_BATCH
            group = [pending[i]]
            while (
                len(group) < limit
                and i + len(group) < len(pending)
                and pending[i + len(group)].kind == group[0].kind
            ):
                group.append(pending[i + len(group)])
            answer = self._post(group)
            self._note_reachable(answer)
            if answer.outcome is Outcome.DELIVERED:
                self.spool.remove(group)
                i += len(group)
                continue
            self.counters.transmit_failures += 1
            if answer.outcome is Outcome.UNREACHABLE:
                return False
            if len(group) > 1:
                singles_until = i + len(group)
                continue
            log.error("server refused %s, dropping it: %s", group[0].path, answer.detail)
            self.spool.remove(group)
            i += 1
        return True

    # -- interrupts ----------------------------------------------------------------------------

    def check_interrupts(self) -> list[Interrupt]:
        answer = self.client.list_interrupts()
        if answer.outcome is not Outcome.DELIVERED:
            log.log(
                logging.ERROR if answer.outcome is Outcome.REFUSED else logging.DEBUG,
                "listing interrupts failed: %s",
                answer.detail,
            )
            return []
        found = parse_interrupts(answer.result)
        for interrupt in found:
            run_interrupt(interrupt, self.commands, self.command_timeout, self.stopping)
        return found


def _full(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return "; the spool's disk is full: free space for the agent to record again"
    return ""
