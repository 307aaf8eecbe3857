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
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from temporalio.client import Client

from bench.bare import BareInput, BareScript, BareWorkflow
from bench.history import EventCounts, count_events, script_from_history
from bench.procs import (
    THREAD_GROUPS,
    ProcessFailed,
    cpu_seconds,
    free_port,
    own_cpu_seconds,
    start_fleet,
    start_worker,
    stop,
    thread_cpu_seconds,
)
from bench.worker_proc import bare_queue
from changegate.models import ChangeRequest, Decision, Outcome, Stage
from changegate.runtime import DevServer, start_dev_server
from changegate.service import ChangeService, connect
from changegate.settings import Settings
from changegate.workflows import ChangeWorkflow

INSTANCES = 4
NEW_POOL_SIZE = 24
FAST_ROLLOUT = {
    "canary_units": 1,
    "waves": 2,
    "canary_bake_seconds": 0.5,
    "wave_bake_seconds": 0.2,
    "analysis_interval_seconds": 0.4,
    "analysis_count": 2,
    "failure_limit": 0,
    "inconclusive_limit": 1,
    "approval_timeout_seconds": 300,
}
APPROVER = Decision(actor="bench-approver", reason="benchmark")
# The default policy's rate limits would refuse a benchmark's burst of changes.
BENCH_POLICY = """
agents:
  "*": {targets: ["fleet:*"], operations: [set_config], changes_per_hour: 100000,
        max_in_flight: 1000}
"""
WORKFLOW_DEADLINE = 120.0


class BenchFailure(RuntimeError):
    """The benchmark could not produce an honest comparison."""


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


@dataclass
class Children:
    """Every process the benchmark started, so that any exit can stop them all."""

    server: DevServer | None = None
    fleet: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    def stop_all(self) -> None:
        """Stop the worker, then the fleet, then the Temporal server."""
        stop(self.worker)
        stop(self.fleet)
        if self.server is not None:
            self.server.stop()


def progress(message: str) -> None:
    """One line of progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_request(service: str) -> ChangeRequest:
    """A valid set_config change on one fleet service, with a fast rollout spec."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": "bench-agent", "model": "bench-model", "session_id": "bench"},
            "intent": f"Raise the connection pool of {service} for the overhead benchmark.",
            "target": {"kind": "fleet", "selector": {"service": service}},
            "change": {"operation": "set_config", "parameters": {"pool_size": NEW_POOL_SIZE}},
            "assumptions": {"unit_count": INSTANCES},
            "evidence": [{"source": "bench", "excerpt": "synthetic load"}],
            "rollout": FAST_ROLLOUT,
        }
    )


async def run_change(
    changes: ChangeService, change_id: str, service: str, poll: float, phase: Phase
) -> None:
    """Submit one change, approve it once it awaits approval, and require DONE."""
    await changes.submit(make_request(service), change_id=change_id)
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
    """Approve by signal rather than by the `decide` update."""
    handle = changes.temporal.get_workflow_handle_for(ChangeWorkflow.run, change_id)
    await handle.signal(ChangeWorkflow.approve, APPROVER)


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


def report(
    args: argparse.Namespace,
    calibration_id: str,
    expected: EventCounts,
    script: BareScript,
    bare: Phase,
    pipe: Phase,
) -> str:
    """The result table."""
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
        f"{os.cpu_count()} CPU(s)",
        f"matched per workflow (counted from ChangeWorkflow history {calibration_id}):",
        f"  activities {expected.activities}, timers {expected.timers}, "
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


async def benchmark(args: argparse.Namespace, children: Children, data_dir: Path) -> str:
    """Start everything, calibrate, run both phases and return the report."""
    k, c = args.changes, args.concurrency
    progress(f"starting the Temporal dev server (SQLite WAL in {data_dir})")
    children.server = await start_dev_server(
        data_dir=data_dir / "temporal", port=free_port(), ui_port=free_port()
    )
    services = [f"svc{i}" for i in range(k)]
    spec = ",".join(f"{name}={INSTANCES}" for name in ["cal", *services])
    fleet_url = f"http://127.0.0.1:{free_port()}"
    progress(f"starting the fleet at {fleet_url} ({k + 1} services x {INSTANCES} instances)")
    children.fleet = await start_fleet(
        int(fleet_url.rsplit(":", 1)[1]), spec, data_dir / "fleet.log"
    )
    policy = data_dir / "policy.yaml"
    policy.write_text(BENCH_POLICY)
    settings = Settings(
        temporal_address=children.server.address,
        task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        fleet_url=fleet_url,
        data_dir=data_dir,
        policy_file=policy,
    )
    env = {
        **os.environ,
        "CHANGEGATE_TEMPORAL_ADDRESS": settings.temporal_address,
        "CHANGEGATE_TASK_QUEUE": settings.task_queue,
        "CHANGEGATE_FLEET_URL": settings.fleet_url,
        "CHANGEGATE_DATA_DIR": str(data_dir),
        "CHANGEGATE_POLICY_FILE": str(policy),
    }
    progress("starting the worker process (python -m bench.worker_proc)")
    children.worker = await start_worker(env, data_dir / "worker.log")
    client = await connect(settings)
    changes = ChangeService(client, settings)

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
        f"calibrated: {expected.activities} activities, {expected.timers} timers "
        f"({expected.timer_seconds:g} s of timeouts), {expected.signals} signal(s), "
        f"{expected.upserts} upserts"
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
    await check_fleet(fleet_url, services, pipe)
    if pipe.failures:
        raise BenchFailure("phase B: " + "; ".join(pipe.failures[:5]))
    return report(args, calibration_id, expected, script, bare, pipe)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.overhead",
        description="Measure changegate's pipeline against a bare Temporal workflow doing "
        "the same Temporal work, on the same server in the same run.",
    )
    parser.add_argument("--changes", type=int, default=20, help="workflows per phase (K)")
    parser.add_argument("--concurrency", type=int, default=5, help="workflows at a time (C)")
    parser.add_argument(
        "--poll", type=float, default=0.1, help="seconds between approval-point polls"
    )
    args = parser.parse_args(argv)
    if args.changes < 1 or args.concurrency < 1 or args.poll <= 0:
        parser.error("--changes and --concurrency must be at least 1, --poll positive")
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 with a table on success, 1 with the reason otherwise."""
    args = parse_args(argv)
    # Ctrl-C must stop the run and its children even where SIGINT was inherited as ignored
    # (a background job of a non-interactive shell); asyncio.run turns it into cancellation.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    data_dir = Path(tempfile.mkdtemp(prefix="changegate-bench-"))
    children = Children()
    keep_logs = False
    try:
        table = asyncio.run(benchmark(args, children, data_dir))
    except (BenchFailure, ProcessFailed) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        keep_logs = True
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        keep_logs = True
        raise
    finally:
        children.stop_all()
        if keep_logs:
            print(f"logs kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
