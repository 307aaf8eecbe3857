"""Kill switch: from engaging it to every change in its scope paused or ended.

Run `python -m bench.killswitch [--n N]`. On the benchmark stack, four groups of N changes
each (one agent per group, one two-instance fleet service per change) are brought to a
state and then stopped by a kill switch on their agent (`agent:<id>`), through
`Operations.engage` as the API and CLI call it:

- parked, pause: N changes waiting for approval; done when every one reads paused;
- parked, abort: the same; done when every one has ended (nothing was applied);
- mid-bake, pause: N approved changes baking their canary; done when every one is paused;
- mid-bake, abort: the same; halted when every one is rolling back or ended, rolled back
  when every one has ended. A rollback is bounded by the targets, so it is reported apart
  from halting.

Times run from just before `engage`; `signalled` is when `engage` returned. Halting and
ending are counted by Temporal visibility every 0.1 s (the stage and outcome search
attributes). A pause has no search attribute: it holds from the workflow task that ran the
pause signal's handler, and that task's completion is read from each change's history (the
server's clock, the same machine's). So measuring asks no workflow anything, and a status
query at the end only confirms that every change reads paused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bench.parking import statuses, submit_all, wait_all, wait_count, wait_signal_taken
from bench.stack import (
    BenchFailure,
    Children,
    load_note,
    progress,
    run_bench,
    start_stack,
)
from changegate.models import ChangeStatus, Decision, Outcome, Stage
from changegate.service import ChangeService
from changegate.service.operations import Operations
from changegate.service.visibility import change_query

INSTANCES = 2
PARKED = {"canary_units": 1, "waves": 1, "approval_timeout_seconds": 86400}
BAKING = {**PARKED, "canary_bake_seconds": 3600}
APPROVER = Decision(actor="bench-approver", reason="benchmark")
Where = Literal["parked", "mid-bake"]
Mode = Literal["pause", "abort"]


@dataclass
class Result:
    """One group's figures, in seconds from engage."""

    where: Where
    mode: Mode
    signalled: float
    halted: float
    ended: float | None
    outcomes: str
    load: float


def baking(status: ChangeStatus) -> bool:
    """The canary is applied, so its (hour-long) bake runs (or the change ended)."""
    applied = any(e.kind == "applied" for e in status.timeline)
    return status.ended or (status.stage == Stage.CANARY and applied)


async def prepare(
    changes: ChangeService, where: Where, services: list[str], agent: str
) -> list[str]:
    """N changes of `agent` parked at approval or, approved, baking their canary."""
    submitted = await submit_all(
        changes,
        services,
        instances=INSTANCES,
        concurrency=20,
        rollout=PARKED if where == "parked" else BAKING,
        agent=agent,
        prefix=agent,
    )
    ids = submitted.ids
    deadline = 60.0 + len(ids)
    waiting = change_query(agent=agent, stage=Stage.AWAITING_APPROVAL, running=True)
    await wait_count(changes, waiting, len(ids), what="awaiting approval", deadline=deadline)
    if where == "mid-bake":
        for change_id in ids:
            judgement = await changes.approve(change_id, APPROVER)
            if not judgement.counted:
                raise BenchFailure(f"approval of {change_id} not counted: {judgement.reason}")
        await wait_all(changes, ids, baking, what="baking the canary", deadline=deadline)
        ended = [i for i, s in (await statuses(changes, ids)).items() if s.ended]
        if ended:
            raise BenchFailure(f"{len(ended)} changes ended before the bake: {ended[:5]}")
    return ids


async def one_group(changes: ChangeService, where: Where, mode: Mode, n: int) -> Result:
    """Prepare N changes, engage the switch on their agent, and time the stop."""
    agent = f"ks-{where}-{mode}"
    services = [f"{agent}-{i:04d}" for i in range(n)]
    progress(f"{where}, {mode}: bringing {n} changes into place")
    ids = await prepare(changes, where, services, agent)
    progress(f"{where}, {mode}: engaging agent:{agent}")
    operations = Operations(changes)
    since = datetime.now(UTC)
    started = time.perf_counter()
    await operations.engage(f"agent:{agent}", mode, actor="bench-operator", reason="benchmark")
    signalled = time.perf_counter() - started
    deadline = 120.0 + n
    if mode == "pause":
        taken = await wait_signal_taken(changes, ids, "pause", since=since, deadline=deadline)
        halt, end = max(taken.values()), None
    else:
        ours = change_query(agent=agent)
        halting = f"{ours} AND (ChangeStage = 'ROLLBACK' OR ExecutionStatus != 'Running')"
        ended = change_query(agent=agent, running=False)
        count = {"deadline": deadline, "started": started, "interval": 0.1}
        halt = await wait_count(changes, halting, n, what="halted", **count)
        end = await wait_count(changes, ended, n, what="ended", **count)
    final = await statuses(changes, ids)
    counts: dict[str, int] = {}
    for status in final.values():
        key = status.outcome.value if status.outcome else ("paused" if status.paused else "running")
        counts[key] = counts.get(key, 0) + 1
    if mode == "abort" and set(counts) - {Outcome.ABORTED.value, Outcome.ROLLED_BACK.value}:
        raise BenchFailure(f"{where}, abort: outcomes {counts}")
    if mode == "pause" and counts != {"paused": n}:
        raise BenchFailure(f"{where}, pause: took the signal, but reads {counts}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return Result(where, mode, signalled, halt, end, outcomes, os.getloadavg()[0])


async def killswitch(args: argparse.Namespace, children: Children, data_dir: Path) -> str:
    """Every group, one after another, on one stack."""
    n: int = args.n
    groups: list[tuple[Where, Mode]] = [
        (where, mode) for where in ("parked", "mid-bake") for mode in ("pause", "abort")
    ]
    spec = ",".join(
        f"ks-{where}-{mode}-{i:04d}={INSTANCES}" for where, mode in groups for i in range(n)
    )
    stack = await start_stack(children, data_dir, services=spec)
    results = [await one_group(stack.changes, where, mode, n) for where, mode in groups]
    lines = [
        f"kill switch: {n} changes in flight per group; {load_note()}",
        f"{'group':<18}{'signalled s':>12}{'halted s':>10}{'rolled back s':>15}"
        f"{'load 1m':>9}  outcomes",
    ]
    for r in results:
        ended = f"{r.ended:.2f}" if r.ended is not None else "-"
        lines.append(
            f"{r.where + ', ' + r.mode:<18}{r.signalled:>12.2f}{r.halted:>10.2f}{ended:>15}"
            f"{r.load:>9.2f}  {r.outcomes}"
        )
    lines.append("halted: paused (pause) or rolling back / ended (abort); rolled back: ended")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the kill switch on every group and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.killswitch",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--n", type=int, default=200, help="changes in flight per group")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")

    async def bench(children: Children, data_dir: Path) -> str:
        return await killswitch(args, children, data_dir)

    return run_bench(bench, prefix="changegate-killswitch-")


if __name__ == "__main__":
    sys.exit(main())
