"""Scale: park N changes at approval; what admission, the worker and the server pay for it.

Run `python -m bench.scale [--n N] [--concurrency C]`. On the benchmark stack (dev server,
fleet with one two-instance service per change, worker in a process of its own), N changes
are submitted through `ChangeService`, C at a time, each on its own service, and left
waiting for approval. It prints submissions per second, the admission time (`Gate.admit`
alone) and the whole submit (admission and workflow start) for the first and the last 10%
of submissions (these include waiting for the admission lock behind concurrent ones), and
of ten admissions one at a time before the first submission and after all N are parked;
the seconds until all N wait for approval (counted through visibility), the worker's CPU
per change, and the resident memory of the worker and the Temporal server with all N
parked. Admission reads the history of the agent and the target: with every change
from one agent, the last 10% are judged with N-1 changes of that agent in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.overhead import percentile
from bench.parking import TimedGate, submit_all, wait_count
from bench.procs import cpu_seconds
from bench.stack import (
    BenchFailure,
    Children,
    load_note,
    make_request,
    progress,
    rss_mb,
    run_bench,
    start_stack,
)
from changegate.models import Stage
from changegate.service.visibility import change_query

INSTANCES = 2
PROBES = 10
ROLLOUT = {"canary_units": 1, "waves": 1, "approval_timeout_seconds": 86400}


async def probe(gate: TimedGate, label: str) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `PROBES` admissions one after another, each on a target of its
    own (the targets need not exist: admission does not contact them; no workflow starts)."""
    for i in range(PROBES):
        request = make_request(f"probe-{label}-{i}", instances=INSTANCES, rollout=ROLLOUT)
        await asyncio.to_thread(
            gate.admit, request, change_id=f"probe-{label}-{i}", now=datetime.now(UTC)
        )
    seconds, cpu = gate.seconds[-PROBES:], gate.cpu[-PROBES:]
    del gate.seconds[-PROBES:], gate.cpu[-PROBES:]
    return seconds, cpu


async def snapshot_worker(worker: int) -> str:
    """With `BENCH_TRACEMALLOC=<path>`, have the worker dump what it holds now; the path."""
    path = os.environ.get("BENCH_TRACEMALLOC")
    if not path:
        return ""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.kill(worker, signal.SIGUSR1)
    for _ in range(1200):
        if os.path.exists(path):
            return path
        await asyncio.sleep(0.1)
    raise BenchFailure(f"the worker wrote no tracemalloc snapshot to {path} in 120 s")


def tenth(values: Sequence[float], *, last: bool) -> list[float]:
    """The first or the last 10% of `values` (at least one)."""
    k = max(1, len(values) // 10)
    return list(values[-k:] if last else values[:k])


async def scale(args: argparse.Namespace, children: Children, data_dir: Path) -> str:
    """Park N changes and report."""
    n: int = args.n
    services = [f"s{i:05d}" for i in range(n)]
    stack = await start_stack(
        children,
        data_dir,
        services=",".join(f"{s}={INSTANCES}" for s in services),
        gate=TimedGate,
    )
    changes = stack.changes
    gate = changes.gate
    assert isinstance(gate, TimedGate)
    empty = await probe(gate, "empty")
    worker, server, _ = children.pids()
    before = {"worker": rss_mb(worker), "server": rss_mb(server)}
    cpu_before = cpu_seconds(worker)
    progress(f"submitting {n} changes, {args.concurrency} at a time")
    submitted = await submit_all(
        changes, services, instances=INSTANCES, concurrency=args.concurrency, rollout=ROLLOUT
    )
    progress(f"submitted in {submitted.wall:.1f} s; waiting until all {n} await approval")
    query = change_query(stage=Stage.AWAITING_APPROVAL, running=True)
    settle = await wait_count(changes, query, n, what="awaiting approval", deadline=60 + n)
    cpu = cpu_seconds(worker) - cpu_before
    after = {"worker": rss_mb(worker), "server": rss_mb(server)}
    traced = await snapshot_worker(worker)
    full = await probe(gate, "full")

    def ms(values: Sequence[float]) -> str:
        return f"{percentile(values, 0.5) * 1000:7.1f}"

    admit, submit = gate.seconds, submitted.submit_seconds
    first, last = tenth(admit, last=False), tenth(admit, last=True)
    lines = [
        f"scale: {n} changes parked at approval, {args.concurrency} submissions at a time; "
        f"{load_note()}",
        f"  submissions per second            {n / submitted.wall:8.1f}",
        f"  admission p50 ms, first 10%        {ms(first)}",
        f"  admission p50 ms, last 10%         {ms(last)}   "
        f"({percentile(last, 0.5) / percentile(first, 0.5):.2f}x the first)",
        f"  admission p50 ms, one at a time     {ms(empty[0])} with none in flight, "
        f"{ms(full[0]).strip()} with {n} parked ({PROBES} each)",
        f"  admission CPU p50 ms, one at a time {ms(empty[1])} with none in flight, "
        f"{ms(full[1]).strip()} with {n} parked",
        f"  admission CPU p50 ms, first / last 10% {ms(tenth(gate.cpu, last=False))} / "
        f"{ms(tenth(gate.cpu, last=True)).strip()}",
        f"  submit p50 ms, first / last 10%    {ms(tenth(submit, last=False))} / "
        f"{ms(tenth(submit, last=True)).strip()}",
        f"  seconds until all await approval   {settle:8.1f} (after the last submission)",
        f"  worker CPU ms per change           {1000 * cpu / n:8.1f}",
        f"  worker RSS MiB, before / parked    {before['worker']:8.0f} / {after['worker']:.0f}",
        f"  server RSS MiB, before / parked    {before['server']:8.0f} / {after['server']:.0f}",
    ]
    if traced:
        lines.append(f"  worker tracemalloc snapshot, parked {traced}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Park N changes and print the figures."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--n", type=int, default=200, help="changes to park")
    parser.add_argument("--concurrency", type=int, default=20, help="submissions at a time")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1:
        parser.error("--n and --concurrency must be at least 1")

    async def bench(children: Children, data_dir: Path) -> str:
        return await scale(args, children, data_dir)

    return run_bench(bench, prefix="changegate-scale-")


if __name__ == "__main__":
    sys.exit(main())
