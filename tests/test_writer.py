"""api.writer: one write at a time, a queued write's deadline, and the overlap of staged
writes (the next batch prepared while the one before it runs in the database)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from typing import Any

import pytest

from connector_telemetry.api.writer import Writer
from connector_telemetry.errors import BadRequest, Unavailable


class Staged:
    """A staged write that logs its steps. ``gate``: an event its preparing waits for (so
    that the test queues more meanwhile); ``hold``: one it waits for while its statements
    "run"; ``bad``: its preparing fails."""

    staged = True

    def __init__(
        self,
        log: list[str],
        hold: threading.Event | None = None,
        bad: bool = False,
        gate: threading.Event | None = None,
    ):
        self.log, self.hold, self.bad, self.gate = log, hold, bad, gate

    def __call__(self, name: str) -> Generator[None, None, str]:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.log.append(f"{name} prepared")
        if self.bad:
            raise BadRequest(f"{name}: a bad body")
        yield
        self.log.append(f"{name} sent")
        yield
        if self.hold is not None:
            assert self.hold.wait(10)
        self.log.append(f"{name} done")
        return name


async def queued_behind(writer: Writer, first: Any, *later: tuple[Any, str]) -> list[Any]:
    """``first`` (``(fn, name)``) run, and ``later`` queued while it is being prepared
    (it waits for its ``gate``, opened here once they are queued)."""
    fn, name = first
    tasks = [asyncio.create_task(writer.run(fn, name))]
    await asyncio.sleep(0.05)
    tasks += [asyncio.create_task(writer.run(f, n)) for f, n in later]
    await asyncio.sleep(0.05)
    fn.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_the_next_staged_write_is_prepared_while_the_one_before_runs() -> None:
    log: list[str] = []
    hold = threading.Event()
    writer = Writer(timeout=5)

    async def main() -> list[Any]:
        threading.Timer(0.2, hold.set).start()
        first = Staged(log, hold, gate=threading.Event())
        return await queued_behind(writer, (first, "A"), (Staged(log), "B"), (Staged(log), "C"))

    assert asyncio.run(main()) == ["A", "B", "C"]
    writer.close(1)
    # one write at a time in the database: B is sent only once A is done
    assert log == [
        *("A prepared", "A sent", "B prepared", "A done"),
        *("B sent", "C prepared", "B done", "C sent", "C done"),
    ]


def test_a_write_that_is_not_staged_is_never_run_ahead() -> None:
    log: list[str] = []
    hold = threading.Event()
    writer = Writer(timeout=5)

    def plain(name: str) -> str:
        log.append(f"{name} ran")
        return name

    async def main() -> list[Any]:
        threading.Timer(0.2, hold.set).start()
        first = Staged(log, hold, gate=threading.Event())
        return await queued_behind(writer, (first, "A"), (plain, "B"))

    assert asyncio.run(main()) == ["A", "B"]
    writer.close(1)
    assert log == ["A prepared", "A sent", "A done", "B ran"]


def test_a_bad_body_prepared_ahead_is_answered_at_once() -> None:
    log: list[str] = []
    hold = threading.Event()
    writer = Writer(timeout=5)

    async def main() -> tuple[float, Any]:
        gate = threading.Event()
        first = asyncio.create_task(writer.run(Staged(log, hold, gate=gate), "A"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        bad = asyncio.create_task(writer.run(Staged(log, bad=True), "B"))
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(BadRequest, match="B: a bad body"):
            await bad
        answered = time.monotonic() - started
        assert not first.done()  # A still runs in the database
        hold.set()
        return answered, await first

    answered, first = asyncio.run(main())
    writer.close(1)
    assert first == "A" and answered < 2
    assert log == ["A prepared", "A sent", "B prepared", "A done"]


def test_a_write_prepared_ahead_still_answers_503_at_its_deadline_and_never_runs() -> None:
    """The one before it is stuck (a commit waiting for a standby): the write prepared
    ahead has not started, so its deadline holds, and once answered it is dropped."""
    log: list[str] = []
    hold = threading.Event()
    writer = Writer(timeout=0.3)

    async def main() -> tuple[float, list[Any]]:
        gate = threading.Event()
        first = asyncio.create_task(writer.run(Staged(log, hold, gate=gate), "A"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        late = asyncio.create_task(writer.run(Staged(log), "B"))
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(Unavailable):
            await late
        waited = time.monotonic() - started
        hold.set()
        return waited, await asyncio.gather(first, writer.run(Staged(log), "C"))

    waited, results = asyncio.run(main())
    writer.close(1)
    assert 0.25 < waited < 2 and results == ["A", "C"]
    assert log[:3] == ["A prepared", "A sent", "B prepared"]  # B prepared ahead, then late
    assert "B sent" not in log and log[-3:] == ["C prepared", "C sent", "C done"]


def test_closing_while_a_write_runs_lets_it_finish() -> None:
    log: list[str] = []
    hold = threading.Event()
    writer = Writer(timeout=5)

    async def main() -> str:
        threading.Timer(0.2, hold.set).start()
        return await writer.run(Staged(log, hold), "A")

    assert asyncio.run(main()) == "A"
    assert writer.close(1)
    assert log == ["A prepared", "A sent", "A done"]
