"""What changegate's full pipeline costs over a bare Temporal workflow doing the same Temporal work.

Run `python -m bench.overhead [--changes K] [--concurrency C]`. On one real Temporal dev server
(SQLite in WAL mode) and one real fleet process, with the worker in a process of its own:

1. calibrate: one real change runs through ChangeWorkflow; its history gives the number and
   order of activities, timers (with their durations), signals and search attribute upserts;
2. phase A: K `BareWorkflow` runs replay exactly those commands with a no-op activity;
3. phase B: K real changes (each on its own fleet service) are submitted with `ChangeService`,
   approved as soon as they await approval, and must all end DONE.

Both phases run C at a time, poll the same way for the approval point, and are measured the
same way: wall time, the worker process's CPU time (from /proc), per-workflow latency. Every
workflow's history is checked afterwards to hold exactly the calibrated counts.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.bare import BareInput, BareScript, BareWorkflow
from bench.history import EventCounts, count_events, script_from_history
from bench.procs import (
    THREAD_GROUPS,
    cpu_seconds,
    own_cpu_seconds,
    thread_cpu_seconds,
)
from bench.stack import (
    NEW_POOL_SIZE,
    BenchFailure,
    Children,
    load_note,
    make_request,
    progress,
    run_bench,
    start_stack,
)
from bench.worker_proc import bare_queue
from changegate.models import Decision, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.workflows import ChangeWorkflow

INSTANCES = 4
APPROVER = Decision(actor="bench-approver", reason="benchmark")
WORKFLOW_DEADLINE = 120.0


@dataclass
class Probe:
    """CPU counters of the processes involved, read at one moment."""

    worker: float
    threads: dict[str, float]
    server: float
    fleet: float
    driver: float
    wall: float

    @classmethod
    def read(cls, worker: int, server: int, fleet: int) -> Probe:
        """Read all counters now."""
        return cls(
            worker=cpu_seconds(worker),
            threads=thread_cpu_seconds(worker),
            server=cpu_seconds(server),
            fleet=cpu_seconds(fleet),
            driver=own_cpu_seconds(),
            wall=time.perf_counter(),
        )


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    wall: float = 0.0
    worker_cpu: float = 0.0
    worker_threads: dict[str, float] = field(default_factory=dict)
    server_cpu: float = 0.0
    fleet_cpu: float = 0.0
    driver_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    queries: int = 0
    workflow_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counts: list[EventCounts] = field(default_factory=list)


async def run_change(
    changes: ChangeService, change_id: str, service: str, poll: float, phase: Phase
) -> None:
    """Submit one change, approve it once it awaits approval, and require DONE."""
    await changes.submit(make_request(service, instances=INSTANCES), change_id=change_id)
    while True:
        status = await changes.status(change_id)
        phase.queries += 1
        if status.stage == Stage.AWAITING_APPROVAL or status.ended:
            break
        await asyncio.sleep(poll)
    if not status.ended:
        # The approve signal (as the Temporal web UI sends it), so both phases take one signal.
        await client_signal_approve(changes, change_id)
    final = await changes.wait(change_id)
    if final.outcome != Outcome.DONE:
        last = final.timeline[-1].message if final.timeline else "no timeline"
        outcome = final.outcome.value if final.outcome else "no outcome"
        phase.failures.append(f"{change_id} ended {outcome}: {last}")


async def client_signal_approve(changes: ChangeService, change_id: str) -> None:
    """Approve by a signed signal rather than by the `decide` update (one signal, as the
    bare workflow takes), signed by the front door's key as `decide` would sign it."""
    proof = changes.signer.proof(
        change_id=change_id,
        principal=APPROVER.actor,
        verdict="approve",
        reason=APPROVER.reason,
        now=datetime.now(UTC),
    )
    handle = changes.temporal.get_workflow_handle_for(ChangeWorkflow.run, change_id)
    await handle.signal(ChangeWorkflow.approve, APPROVER.model_copy(update={"proof": proof}))


async def run_bare(
    client: Client,
    settings: Settings,
    workflow_id: str,
    script: BareScript,
    poll: float,
    phase: Phase,
) -> None:
    """Start one bare workflow, signal it whenever it waits, and require DONE."""
    handle = await client.start_workflow(
        BareWorkflow.run,
        BareInput(script=script),
        id=workflow_id,
        task_queue=bare_queue(settings.task_queue),
    )
    sent = 0
    for step in script.steps:
        if step.kind != "signal":
            continue
        while not await handle.query(BareWorkflow.waiting):
            phase.queries += 1
            await asyncio.sleep(poll)
        phase.queries += 1
        while sent < step.signals:
            await handle.signal(BareWorkflow.proceed)
            sent += 1
    result = await handle.result()
    if result != "DONE":
        phase.failures.append(f"{workflow_id} ended {result}")


async def measure(
    name: str,
    ids: Sequence[str],
    concurrency: int,
    one: Callable[[str, Phase], Awaitable[None]],
    children: Children,
) -> Phase:
    """Run `one` for every id, `concurrency` at a time, and measure the whole phase."""
    assert children.worker and children.server and children.fleet
    phase = Phase(name=name, workflow_ids=list(ids))
    gate = asyncio.Semaphore(concurrency)
    done = 0
    step = max(1, len(ids) // 4)

    async def slot(workflow_id: str) -> None:
        nonlocal done
        async with gate:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(one(workflow_id, phase), timeout=WORKFLOW_DEADLINE)
            except TimeoutError:
                phase.failures.append(f"{workflow_id} did not end within {WORKFLOW_DEADLINE:g} s")
            phase.latencies.append(time.perf_counter() - started)
            done += 1
            if done % step == 0 or done == len(ids):
                progress(f"  {name}: {done}/{len(ids)} ended")

    pids = (children.worker.pid, children.server.process.pid, children.fleet.pid)
    before = Probe.read(*pids)
    await asyncio.gather(*(slot(i) for i in ids))
    after = Probe.read(*pids)
    phase.wall = after.wall - before.wall
    phase.worker_cpu = after.worker - before.worker
    phase.worker_threads = {
        group: after.threads[group] - before.threads[group] for group in THREAD_GROUPS
    }
    # Threads that ended during the phase took their time with them from the listing; the
    # SDK's executors keep their threads, so count any such rest with the Python threads.
    rest = phase.worker_cpu - sum(phase.worker_threads.values())
    phase.worker_threads["other Python threads"] += rest
    phase.server_cpu = after.server - before.server
    phase.fleet_cpu = after.fleet - before.fleet
    phase.driver_cpu = after.driver - before.driver
    return phase


async def check_histories(client: Client, phase: Phase, expected: EventCounts) -> None:
    """Count every workflow's history; any that differs from the calibration is a failure."""
    for workflow_id in phase.workflow_ids:
        counts = count_events(await client.get_workflow_handle(workflow_id).fetch_history())
        phase.counts.append(counts)
        if counts.matched() != expected.matched():
            phase.failures.append(
                f"{workflow_id}: history has (activities, timers, timer s, signals, upserts) = "
                f"{counts.matched()}, calibration had {expected.matched()}"
            )


async def check_fleet(fleet_url: str, services: Sequence[str], phase: Phase) -> None:
    """Every instance of every changed service must hold the new pool size."""
    async with httpx.AsyncClient(base_url=fleet_url, timeout=5) as http:
        for service in services:
            body = (await http.get(f"/services/{service}")).json()
            wrong = [
                i["instance"]
                for i in body["instances"]
                if i["config"]["pool_size"] != NEW_POOL_SIZE
            ]
            if wrong or len(body["instances"]) != INSTANCES:
                phase.failures.append(f"fleet service {service}: not changed on {wrong}")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def report(args: argparse.Namespace, run: Comparison) -> str:
    """The result table."""
    expected, script, bare, pipe = run.expected, run.script, run.bare, run.pipe
    waits = [s for s in script.steps if s.kind == "signal"]
    fired = [s for s in script.steps if s.kind == "timer"]
    rows: list[tuple[str, float, float, str]] = []

    def row(label: str, a: float, b: float, fmt: str = "{:.2f}") -> None:
        rows.append((label, a, b, fmt))

    def mean(phase: Phase, value: Callable[[EventCounts], float]) -> float:
        return sum(value(c) for c in phase.counts) / len(phase.counts)

    per = args.changes
    row("wall seconds", bare.wall, pipe.wall)
    row("worker CPU seconds", bare.worker_cpu, pipe.worker_cpu)
    for group in THREAD_GROUPS:
        row(f"  {group}", bare.worker_threads[group], pipe.worker_threads[group])
    row("worker CPU ms / workflow", 1000 * bare.worker_cpu / per, 1000 * pipe.worker_cpu / per)
    row("latency p50 seconds", percentile(bare.latencies, 0.5), percentile(pipe.latencies, 0.5))
    row("latency p95 seconds", percentile(bare.latencies, 0.95), percentile(pipe.latencies, 0.95))
    row(
        "fired-timer wait s / workflow",
        mean(bare, lambda c: c.timer_wait),
        mean(pipe, lambda c: c.timer_wait),
    )
    row("temporal server CPU seconds", bare.server_cpu, pipe.server_cpu)
    row("fleet CPU seconds", bare.fleet_cpu, pipe.fleet_cpu)
    row("bench client CPU seconds", bare.driver_cpu, pipe.driver_cpu)
    row("status queries (polls)", bare.queries, pipe.queries, "{:.0f}")
    row(
        "history events / workflow",
        mean(bare, lambda c: c.events),
        mean(pipe, lambda c: c.events),
        "{:.0f}",
    )
    row(
        "workflow tasks / workflow",
        mean(bare, lambda c: c.workflow_tasks),
        mean(pipe, lambda c: c.workflow_tasks),
        "{:.0f}",
    )
    row(
        "history KiB / workflow",
        mean(bare, lambda c: c.history_bytes) / 1024,
        mean(pipe, lambda c: c.history_bytes) / 1024,
        "{:.1f}",
    )
    lines = [
        "",
        f"changegate pipeline overhead: K={args.changes} workflows per phase, concurrency "
        f"C={args.concurrency}, approval-point poll every {args.poll:g} s, "
        f"{load_note()}",
        f"matched per workflow (counted from ChangeWorkflow history {run.calibration_id}):",
        f"  activities {expected.activities} ({expected.audit_activities} audit writes), "
        f"timers {expected.timers}, "
        f"signals {expected.signals}, search attribute upserts {expected.upserts}",
        f"  timers: {len(fired)} fired ({' + '.join(f'{s.seconds:g}' for s in fired)} = "
        f"{sum(s.seconds for s in fired):.2f} s requested), "
        f"{len(waits)} approval wait ({', '.join(f'{s.seconds:g} s' for s in waits)} timeout) "
        "cancelled by the signal",
        "",
        f"{'':32}{'bare (A)':>10}{'pipeline (B)':>14}{'ratio B/A':>11}",
    ]
    for label, a, b, fmt in rows:
        ratio = f"{b / a:.2f}x" if a else "-"
        lines.append(f"{label:32}{fmt.format(a):>10}{fmt.format(b):>14}{ratio:>11}")
    lines += [
        "",
        f"RATIO wall time  pipeline/bare: {pipe.wall / bare.wall:.2f}x",
        f"RATIO worker CPU pipeline/bare: {pipe.worker_cpu / bare.worker_cpu:.2f}x",
        f"all {per} bare workflows and {per} changes ended DONE with the calibrated counts",
    ]
    return "\n".join(lines)


async def within(work: Awaitable[None], what: str) -> None:
    """Await `work`, failing the benchmark if it takes longer than one workflow may."""
    try:
        await asyncio.wait_for(work, timeout=WORKFLOW_DEADLINE)
    except TimeoutError:
        raise BenchFailure(f"{what} did not end within {WORKFLOW_DEADLINE:g} s") from None


@dataclass
class Comparison:
    """Both phases of one run, with the calibration they were checked against."""

    calibration_id: str
    expected: EventCounts
    script: BareScript
    bare: Phase
    pipe: Phase


async def compare(args: argparse.Namespace, children: Children, data_dir: Path) -> Comparison:
    """Start everything, calibrate, and run both phases, K workflows C at a time."""
    k, c = args.changes, args.concurrency
    services = [f"svc{i}" for i in range(k)]
    spec = ",".join(f"{name}={INSTANCES}" for name in ["cal", *services])
    stack = await start_stack(children, data_dir, services=spec)
    settings, changes = stack.settings, stack.changes
    client = changes.temporal

    progress("calibrating: one real change on service 'cal' to count its Temporal work")
    calibration = Phase(name="calibration")
    calibration_id = f"bench-cal-{uuid.uuid4().hex[:6]}"
    await within(run_change(changes, calibration_id, "cal", args.poll, calibration), "calibration")
    if calibration.failures:
        raise BenchFailure("calibration change failed: " + "; ".join(calibration.failures))
    history = await client.get_workflow_handle(calibration_id).fetch_history()
    expected = count_events(history)
    script = script_from_history(history)
    progress(
        f"calibrated: {expected.activities} activities ({expected.audit_activities} audit "
        f"writes), {expected.timers} timers ({expected.timer_seconds:g} s of timeouts), "
        f"{expected.signals} signal(s), {expected.upserts} upserts"
    )
    warmup = Phase(name="warm-up")
    await within(
        run_bare(client, settings, "bench-bare-warmup", script, args.poll, warmup), "warm-up"
    )
    if warmup.failures:
        raise BenchFailure("bare warm-up failed: " + "; ".join(warmup.failures))

    run = uuid.uuid4().hex[:6]
    progress(f"phase A (bare): {k} BareWorkflow runs, {c} at a time")
    bare = await measure(
        "phase A",
        [f"bench-bare-{run}-{i}" for i in range(k)],
        c,
        lambda wid, ph: run_bare(client, settings, wid, script, args.poll, ph),
        children,
    )
    progress(f"phase A done in {bare.wall:.2f} s, worker CPU {bare.worker_cpu:.2f} s")
    await check_histories(client, bare, expected)
    if bare.failures:
        raise BenchFailure("phase A: " + "; ".join(bare.failures[:5]))

    ids = {f"bench-chg-{run}-{i}": services[i] for i in range(k)}
    progress(f"phase B (pipeline): {k} changes through ChangeWorkflow, {c} at a time")
    pipe = await measure(
        "phase B",
        list(ids),
        c,
        lambda wid, ph: run_change(changes, wid, ids[wid], args.poll, ph),
        children,
    )
    progress(f"phase B done in {pipe.wall:.2f} s, worker CPU {pipe.worker_cpu:.2f} s")
    await check_histories(client, pipe, expected)
    await check_fleet(stack.fleet_url, services, pipe)
    if pipe.failures:
        raise BenchFailure("phase B: " + "; ".join(pipe.failures[:5]))
    return Comparison(calibration_id, expected, script, bare, pipe)


def parse_args(
    argv: Sequence[str] | None,
    *,
    prog: str = "python -m bench.overhead",
    changes: int = 20,
    concurrency: int = 5,
    what: str | None = __doc__,
) -> argparse.Namespace:
    """The command line (`--changes 100` is the K=100 run)."""
    parser = argparse.ArgumentParser(prog=prog, description=what.splitlines()[0] if what else None)
    parser.add_argument("--changes", type=int, default=changes, help="workflows per phase (K)")
    parser.add_argument(
        "--concurrency", type=int, default=concurrency, help="workflows at a time (C)"
    )
    parser.add_argument(
        "--poll", type=float, default=0.1, help="seconds between approval-point polls"
    )
    args = parser.parse_args(argv)
    if args.changes < 1 or args.concurrency < 1 or args.poll <= 0:
        parser.error("--changes and --concurrency must be at least 1, --poll positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 with a table on success, 1 with the reason otherwise."""
    args = parse_args(argv)

    async def bench(children: Children, data_dir: Path) -> str:
        run = await compare(args, children, data_dir)
        return report(args, run)

    return run_bench(bench, prefix="changegate-bench-")


if __name__ == "__main__":
    sys.exit(main())
