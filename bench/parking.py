"""Many changes at once: submit them, and wait until every one reaches a state.

`submit_all` submits through a `ChangeService` whose gate is a `TimedGate`, so that the
admission time of each submission is known apart from the workflow start. `statuses`
queries many changes with bounded concurrency; `wait_all` polls until a predicate holds for
every change and returns, per change, when it was first seen to hold. `wait_signal_taken`
reads histories instead: when the workflow task that took a signal completed, as the server
recorded it, so that measuring asks the worker nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType

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


async def signal_taken_at(changes: ChangeService, change_id: str, signal: str) -> datetime | None:
    """When the first workflow task after the change's first `signal` completed (the server's
    clock), or None while it has not. A signal that arrives during a workflow task is
    recorded after that task, so the next completed task is the one that ran its handler."""
    handle = changes.temporal.get_workflow_handle(change_id)
    signalled = False
    async for event in handle.fetch_history_events():
        if (
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == signal
        ):
            signalled = True
        elif signalled and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return event.event_time.ToDatetime(tzinfo=UTC)
    return None


async def wait_signal_taken(
    changes: ChangeService,
    ids: Sequence[str],
    signal: str,
    *,
    since: datetime,
    deadline: float,
    interval: float = 0.5,
) -> dict[str, float]:
    """Poll histories until every change has taken `signal`; seconds from `since` to when
    each took it, by the server's event times (so the polling's pace is not the resolution)."""
    started = time.perf_counter()
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)
    taken: dict[str, float] = {}

    async def one(change_id: str) -> None:
        async with gate:
            at = await signal_taken_at(changes, change_id, signal)
        if at is not None:
            taken[change_id] = (at - since).total_seconds()

    while len(taken) < len(ids):
        await asyncio.gather(*(one(i) for i in ids if i not in taken))
        if len(taken) == len(ids):
            break
        if time.perf_counter() - started > deadline:
            raise BenchFailure(
                f"{len(ids) - len(taken)} of {len(ids)} changes did not take {signal!r} "
                f"within {deadline:g} s"
            )
        await asyncio.sleep(interval)
    return taken
