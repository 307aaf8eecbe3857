"""The benchmark's worker process: changegate's worker plus the bare workflow's worker.

Run as `python -m bench.worker_proc` with `CHANGEGATE_TEMPORAL_ADDRESS`,
`CHANGEGATE_TASK_QUEUE` and `CHANGEGATE_FLEET_URL` set. It polls the change task queue with
`changegate.worker.running_worker` and `<task queue>-bare` with `BareWorkflow` and its no-op
activity, in one process, so that the benchmark can read this process's CPU time alone. It
prints `ready` once both workers poll and stops cleanly on SIGTERM or SIGINT.

With `BENCH_PROFILE=<path>` the event loop's thread runs under `cProfile` and its stats are
written to `<path>` on exit (read them with `python -m pstats <path>`): a profile of where the
worker's asyncio thread spends its time, at about twice the CPU.

With `BENCH_TRACEMALLOC=<path>` the worker traces its Python allocations and, on SIGUSR1,
dumps a `tracemalloc` snapshot to `<path>`: what it holds at that moment, by where it was
allocated (`tracemalloc.Snapshot.load(path).statistics("filename")`). `bench.scale` sends the
signal once all N changes are parked. Memory the SDK's Rust core holds is not in it; the
bench's RSS figure covers both.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import os
import signal
import sys
import tracemalloc

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench.bare import BareWorkflow, bare_noop
from changegate.service import connect
from changegate.settings import Settings
from changegate.worker import running_worker, workflow_runner

MAX_CONCURRENT_ACTIVITIES = 50
TRACEMALLOC_FRAMES = 1
"""Frames kept per allocation with `BENCH_TRACEMALLOC`: with 8, the traced worker was so slow
that activities missed their heartbeats and 300 changes never all parked."""


def bare_queue(task_queue: str) -> str:
    """The task queue of the bare workflow, beside changegate's own."""
    return f"{task_queue}-bare"


def bare_runner() -> SandboxedWorkflowRunner:
    """changegate's sandbox, also passing `bench` through, as `changegate` is for its workflow."""
    runner = workflow_runner()
    return SandboxedWorkflowRunner(
        restrictions=runner.restrictions.with_passthrough_modules("bench")
    )


async def serve(settings: Settings) -> None:
    """Run both workers until SIGTERM or SIGINT."""
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    trace_to = os.environ.get("BENCH_TRACEMALLOC")
    if trace_to:
        loop.add_signal_handler(signal.SIGUSR1, dump_snapshot, trace_to)
    change_worker = running_worker(
        client, settings, max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES
    )  # an async context manager that also closes the providers' HTTP clients
    bare_worker = Worker(
        client,
        task_queue=bare_queue(settings.task_queue),
        workflows=[BareWorkflow],
        activities=[bare_noop],
        workflow_runner=bare_runner(),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
    )
    async with change_worker, bare_worker:
        print("ready", flush=True)
        await stop.wait()


def dump_snapshot(path: str) -> None:
    """Write what the traced worker holds now to `path` (written whole, then renamed)."""
    partial = f"{path}.partial"
    tracemalloc.take_snapshot().dump(partial)
    os.replace(partial, path)


def main() -> None:
    """Read the settings from the environment and serve (profiled with `BENCH_PROFILE`,
    memory traced with `BENCH_TRACEMALLOC`)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    profile_to = os.environ.get("BENCH_PROFILE")
    if os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start(TRACEMALLOC_FRAMES)
    if not profile_to:
        asyncio.run(serve(Settings()))
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(asyncio.run, serve(Settings()))
    finally:
        profiler.dump_stats(profile_to)


if __name__ == "__main__":
    main()
