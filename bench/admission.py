"""Admission latency, and double admissions of racing submissions, with and without the lock.

Run `python -m bench.admission [--samples N] [--concurrency C] [--pairs P] [--no-postgres]`.
It measures `Gate.admit` directly (no HTTP, no Temporal) on two stores: a SQLite file in a
temporary directory and a schema of its own in the PostgreSQL database at `--postgres`
(env `CHANGEGATE_BENCH_POSTGRES_URL`). Each store is measured with two gates:

- `locked`: the real gate, which reads, judges and inserts in one transaction holding the
  store's admission lock (`BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL);
- `unlocked`: the 'before' baseline, the same gate in a plain transaction. It exists only
  here, by overriding the gate's private transaction hook.

For every store and gate, on a fresh database each time:

- sequential: N admissions one after another, each on a target of its own (all admitted);
- concurrent: N admissions on distinct targets from C threads sharing one gate, as the API
  server's worker threads share it;
- double admissions: P rounds in which two processes, each with its own gate, meet at a
  barrier and submit a change on one target; a round that admits both is a double admission.

Latency is the wall time of one `admit` call. The gate reads every change of the policy's
lookback (an hour), so figures grow slowly with N. The machine's load average is printed
beside each row: on a shared machine the figures mean little without it.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session

from changegate.admission import AdmissionRefused, Gate
from changegate.models import ChangeRequest
from changegate.policy import AgentScope, Policy
from changegate.store import Store, create_engine_for, open_store

POSTGRES_URL = os.environ.get(
    "CHANGEGATE_BENCH_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
POLICY = Policy(agents={"*": AgentScope(targets=["fleet:*"], operations=["set_config"])})
TIMEOUT = 300.0


class UnlockedGate(Gate):
    """The gate as it was before the lock: read, judge and write in a plain transaction."""

    def _transaction(self) -> AbstractContextManager[Session]:
        return self.store.session()


@dataclass(frozen=True)
class Row:
    """The figures of one store and gate."""

    store: str
    gate: str
    sequential: list[float]
    concurrent: list[float]
    concurrent_wall: float
    errors: int
    doubles: int
    pairs: int
    load: float


def say(message: str) -> None:
    """Progress, on stderr."""
    print(f"· {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def request(service: str) -> ChangeRequest:
    """A change on one fleet service, admitted unless another holds the service."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": "bench-agent"},
            "intent": "Raise the connection pool so the service stops queueing at peak.",
            "target": {"kind": "fleet", "selector": {"service": service}},
            "change": {"operation": "set_config", "parameters": {"pool_size": 24}},
            "assumptions": {"unit_count": 2},
        }
    )


def make_gate(store: Store, *, locked: bool) -> Gate:
    """The real gate, or the unlocked baseline."""
    return (Gate if locked else UnlockedGate)(store=store, policy=POLICY)


def timed_admit(gate: Gate, service: str) -> tuple[float, bool]:
    """Seconds one admission took, and whether it was admitted (not refused, not failed)."""
    started = time.perf_counter()
    try:
        gate.admit(request(service), change_id=f"chg-{uuid.uuid4().hex[:12]}", now=_now())
    except AdmissionRefused:
        return time.perf_counter() - started, False
    except sa.exc.OperationalError as exc:
        say(f"admission failed: {exc.orig}")
        return time.perf_counter() - started, False
    return time.perf_counter() - started, True


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def fresh_store(kind: str, *, tmp: str, postgres: str) -> Iterator[str]:
    """The URL of a new, migrated store: a SQLite file, or a PostgreSQL schema of its own."""
    if kind == "sqlite":
        location = os.path.join(tmp, f"audit-{uuid.uuid4().hex[:8]}.db")
        open_store(location).close()
        yield location
        return
    admin = create_engine_for(postgres)
    schema = f"cg_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        scoped = make_url(postgres).update_query_dict({"options": f"-csearch_path={schema}"})
        location = scoped.render_as_string(hide_password=False)
        open_store(location).close()
        yield location
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def sequential(url: str, *, locked: bool, samples: int) -> tuple[list[float], int]:
    """Latencies of `samples` admissions one after another, and how many were not admitted."""
    with open_store(url) as store:
        gate = make_gate(store, locked=locked)
        timed = [timed_admit(gate, f"seq-{i}") for i in range(samples)]
    return [t for t, _ in timed], sum(1 for _, ok in timed if not ok)


def concurrent(
    url: str, *, locked: bool, samples: int, concurrency: int
) -> tuple[list[float], float, int]:
    """Latencies of `samples` admissions from `concurrency` threads, their wall time, misses."""
    with open_store(url) as store:
        gate = make_gate(store, locked=locked)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            timed = list(pool.map(lambda i: timed_admit(gate, f"conc-{i}"), range(samples)))
        wall = time.perf_counter() - started
    return [t for t, _ in timed], wall, sum(1 for _, ok in timed if not ok)


def _pair_child(
    url: str, locked: bool, pairs: int, start: Barrier, results: Queue[tuple[int, bool]]
) -> None:
    with open_store(url) as store:
        gate = make_gate(store, locked=locked)
        for i in range(pairs):
            start.wait(timeout=TIMEOUT)
            _, admitted = timed_admit(gate, f"pair-{i}")
            results.put((i, admitted))


def double_admissions(url: str, *, locked: bool, pairs: int) -> int:
    """In how many of `pairs` rounds two processes racing for one target were both admitted."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    children = [
        context.Process(target=_pair_child, args=(url, locked, pairs, start, results))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    admitted = [0] * pairs
    try:
        for _ in range(2 * pairs):
            i, ok = results.get(timeout=TIMEOUT)
            admitted[i] += ok
    finally:
        for child in children:
            child.join(timeout=TIMEOUT)
        results.close()
    return sum(1 for n in admitted if n > 1)


def measure(kind: str, *, locked: bool, args: argparse.Namespace, tmp: str, postgres: str) -> Row:
    """Every figure of one store and gate, each phase on a fresh database."""
    name = "locked" if locked else "unlocked"
    say(f"{kind}, {name}: {args.samples} sequential admissions")
    with fresh_store(kind, tmp=tmp, postgres=postgres) as url:
        seq, seq_misses = sequential(url, locked=locked, samples=args.samples)
    say(f"{kind}, {name}: {args.samples} admissions from {args.concurrency} threads")
    with fresh_store(kind, tmp=tmp, postgres=postgres) as url:
        conc, wall, conc_misses = concurrent(
            url, locked=locked, samples=args.samples, concurrency=args.concurrency
        )
    say(f"{kind}, {name}: {args.pairs} racing pairs from two processes")
    with fresh_store(kind, tmp=tmp, postgres=postgres) as url:
        doubles = double_admissions(url, locked=locked, pairs=args.pairs)
    return Row(
        store=kind,
        gate=name,
        sequential=seq,
        concurrent=conc,
        concurrent_wall=wall,
        errors=seq_misses + conc_misses,
        doubles=doubles,
        pairs=args.pairs,
        load=os.getloadavg()[0],
    )


def report(rows: Sequence[Row], *, concurrency: int, samples: int) -> str:
    """The figures, one row per store and gate."""

    def ms(values: Sequence[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:6.1f}"

    lines = [
        f"Gate.admit, {samples} admissions per phase; {os.cpu_count()} CPUs; "
        f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"{'store':<11}{'gate':<10}{'sequential ms':>18}{f'{concurrency} threads ms':>20}"
        f"{'adm/s':>8}{'not admitted':>14}{'double admissions':>19}{'load 1m':>9}",
        f"{'':<21}{'p50    p95':>18}{'p50    p95':>20}",
    ]
    for row in rows:
        lines.append(
            f"{row.store:<11}{row.gate:<10}"
            f"{ms(row.sequential, 50):>11} {ms(row.sequential, 95)}"
            f"{ms(row.concurrent, 50):>13} {ms(row.concurrent, 95)}"
            f"{len(row.concurrent) / row.concurrent_wall:>8.0f}{row.errors:>14}"
            f"{f'{row.doubles} / {row.pairs}':>19}{row.load:>9.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures; exit 1 if the locked gate admitted a racing pair twice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--postgres", default=POSTGRES_URL)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    kinds = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="changegate-admission-") as tmp:
        for kind in kinds:
            for locked in (True, False):
                rows.append(
                    measure(kind, locked=locked, args=args, tmp=tmp, postgres=args.postgres)
                )
    print(report(rows, concurrency=args.concurrency, samples=args.samples), flush=True)
    return 1 if any(row.doubles for row in rows if row.gate == "locked") else 0


if __name__ == "__main__":
    raise SystemExit(main())
