"""Many changes at once: submit them, and wait until every one reaches a state.

`submit_all` submits through a `ChangeService` whose gate is a `TimedGate`, so that the
admission time of each submission is known apart from the workflow start. `statuses`
queries many changes with bounded concurrency; `wait_all` polls until a predicate holds for
every change and returns, per change, when it was first seen to hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.stack import BenchFailure, make_request, progress
from changegate.admission import Gate
from changegate.models import ChangeRequest, ChangeStatus
from changegate.service import ChangeService

QUERY_CONCURRENCY = 20


class TimedGate(Gate):
    """The real gate, remembering how long each admission took, in call order: wall seconds
    (`seconds`, which include waiting for the admission lock) and the calling thread's CPU
    seconds (`cpu`, which a loaded machine inflates far less)."""

    def __init__(self, **kwargs: Any) -> None:
        """As `Gate`."""
        super().__init__(**kwargs)
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def admit(self, request: ChangeRequest, *, change_id: str, now: datetime) -> ChangeRequest:
        """Admit as the gate does, timing it."""
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return super().admit(request, change_id=change_id, now=now)
        finally:
            self.cpu.append(time.thread_time() - cpu)
            self.seconds.append(time.perf_counter() - started)


@dataclass
class Submitted:
    """What submitting many changes took."""

    ids: list[str]
    wall: float
    submit_seconds: list[float] = field(default_factory=list)
    """Each `ChangeService.submit` (admission and workflow start), in submission order."""


async def submit_all(
    changes: ChangeService,
    services: Sequence[str],
    *,
    instances: int,
    concurrency: int,
    rollout: dict[str, Any],
    agent: str = "bench-agent",
    prefix: str = "bench",
) -> Submitted:
    """Submit one change per service, `concurrency` at a time; every one must be admitted."""
    gate = asyncio.Semaphore(concurrency)
    ids = [f"{prefix}-{i:05d}" for i in range(len(services))]
    seconds = [0.0] * len(services)
    step = max(1, len(services) // 5)

    async def one(index: int) -> None:
        async with gate:
            request = make_request(
                services[index], instances=instances, rollout=rollout, agent=agent
            )
            started = time.perf_counter()
            await changes.submit(request, change_id=ids[index])
            seconds[index] = time.perf_counter() - started
            if (index + 1) % step == 0:
                progress(f"  submitted {index + 1}/{len(services)}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(services))))
    return Submitted(ids=ids, wall=time.perf_counter() - started, submit_seconds=seconds)


async def statuses(changes: ChangeService, ids: Iterable[str]) -> dict[str, ChangeStatus]:
    """The status of each change, `QUERY_CONCURRENCY` queries at a time."""
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(change_id: str) -> tuple[str, ChangeStatus]:
        async with gate:
            return change_id, await changes.status(change_id)

    return dict(await asyncio.gather(*(one(i) for i in ids)))


async def wait_all(
    changes: ChangeService,
    ids: Sequence[str],
    done: Callable[[ChangeStatus], bool],
    *,
    what: str,
    deadline: float,
    started: float | None = None,
) -> dict[str, float]:
    """Poll until `done` holds for every change; seconds from `started` to when each was
    first seen done (a round of queries is the resolution)."""
    started = time.perf_counter() if started is None else started
    seen: dict[str, float] = {}
    while len(seen) < len(ids):
        pending = [i for i in ids if i not in seen]
        for change_id, status in (await statuses(changes, pending)).items():
            if done(status):
                seen[change_id] = time.perf_counter() - started
        if time.perf_counter() - started > deadline:
            raise BenchFailure(
                f"{len(ids) - len(seen)} of {len(ids)} changes not {what} within {deadline:g} s"
            )
        if len(seen) < len(ids):
            await asyncio.sleep(0.2)
    return seen


async def wait_count(
    changes: ChangeService,
    query: str,
    n: int,
    *,
    what: str,
    deadline: float,
    started: float | None = None,
    interval: float = 0.5,
) -> float:
    """Seconds from `started` (by default now) until the visibility `query` counts `n`
    workflows, counted every `interval` seconds (so polling queries no workflow: a parked
    change the worker evicted is not replayed to answer, and the worker is left alone)."""
    started = time.perf_counter() if started is None else started
    while (await changes.temporal.count_workflows(query)).count < n:
        if time.perf_counter() - started > deadline:
            raise BenchFailure(f"fewer than {n} changes {what} within {deadline:g} s")
        await asyncio.sleep(interval)
    return time.perf_counter() - started
