"""Throughput: changes fully DONE per second, beside a bare workflow of the same shape.

Run `python -m bench.throughput [--changes N] [--concurrency C]`. It runs `bench.overhead`'s
two phases on one dev server and one worker process (N bare workflows, then N real changes
approved as soon as they await approval, C at a time; every history checked against the
calibration) and prints what a capacity planner reads: workflows DONE per second, the
worker's CPU per workflow, the audit writes per change, and the machine's load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.overhead import Comparison, Phase, compare, parse_args
from bench.stack import Children, load_note, run_bench


def report(args: argparse.Namespace, run: Comparison) -> str:
    """Throughput and CPU per workflow, bare beside pipeline."""
    n: int = args.changes

    def rate(phase: Phase) -> float:
        return n / phase.wall

    def cpu_ms(phase: Phase) -> float:
        return 1000 * phase.worker_cpu / n

    bare, pipe = run.bare, run.pipe
    lines = [
        f"throughput: {n} workflows per phase, {args.concurrency} at a time, approved by "
        f"script; {load_note()}",
        f"  one change: {run.expected.activities} activities, of them "
        f"{run.expected.audit_activities} audit writes; {run.expected.workflow_tasks} "
        f"workflow tasks, {run.expected.events} history events",
        f"{'':30}{'bare':>10}{'pipeline':>10}{'ratio':>8}",
        f"{'DONE per second':30}{rate(bare):>10.2f}{rate(pipe):>10.2f}"
        f"{rate(pipe) / rate(bare):>7.2f}x",
        f"{'worker CPU ms per workflow':30}{cpu_ms(bare):>10.0f}{cpu_ms(pipe):>10.0f}"
        f"{cpu_ms(pipe) / cpu_ms(bare):>7.2f}x",
        f"{'wall seconds':30}{bare.wall:>10.1f}{pipe.wall:>10.1f}",
        f"all {n} bare workflows and {n} changes ended DONE",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both phases and print the throughput table."""
    args = parse_args(
        argv, prog="python -m bench.throughput", changes=300, concurrency=60, what=__doc__
    )

    async def bench(children: Children, data_dir: Path) -> str:
        return report(args, await compare(args, children, data_dir))

    return run_bench(bench, prefix="changegate-throughput-")


if __name__ == "__main__":
    sys.exit(main())
