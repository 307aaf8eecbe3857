"""The benchmarks' stack: a dev server, the fleet and the worker, each a process of its own.

`start_stack` starts a real Temporal dev server (SQLite in WAL mode), the fleet with the
given services and `python -m bench.worker_proc` (changegate's worker plus the bare
workflow's), under a policy whose limits admit a benchmark's burst, and connects a
`ChangeService` to them. `Children` stops them all whatever happens. `load_note` is the
machine's load, which every benchmark prints beside its figures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench.procs import ProcessFailed, free_port, start_fleet, start_worker, stop
from changegate.admission import Gate
from changegate.models import ChangeRequest
from changegate.runtime import DevServer, start_dev_server
from changegate.service import ChangeService, connect
from changegate.settings import Settings

# The default policy's rate limits would refuse a benchmark's burst of changes.
BENCH_POLICY = """
agents:
  "*": {targets: ["fleet:*"], operations: [set_config], changes_per_hour: 100000,
        max_in_flight: 100000}
"""
NEW_POOL_SIZE = 24
FAST_ROLLOUT: dict[str, Any] = {
    "canary_units": 1,
    "waves": 2,
    "canary_bake_seconds": 0.5,
    "wave_bake_seconds": 0.2,
    "analysis_interval_seconds": 0.4,
    "analysis_count": 2,
    "failure_limit": 0,
    "inconclusive_limit": 1,
    "approval_timeout_seconds": 3600,
}


def progress(message: str) -> None:
    """One line of progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_note() -> str:
    """The machine's load averages and CPU count, to print beside any figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPU(s)"


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_request(
    service: str,
    *,
    instances: int,
    rollout: dict[str, Any] | None = None,
    agent: str = "bench-agent",
) -> ChangeRequest:
    """A valid set_config change on one fleet service."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": agent, "model": "bench-model", "session_id": "bench"},
            "intent": f"Raise the connection pool of {service} for a benchmark.",
            "target": {"kind": "fleet", "selector": {"service": service}},
            "change": {"operation": "set_config", "parameters": {"pool_size": NEW_POOL_SIZE}},
            "assumptions": {"unit_count": instances},
            "evidence": [{"source": "bench", "excerpt": "synthetic load"}],
            "rollout": rollout or FAST_ROLLOUT,
        }
    )


@dataclass
class Children:
    """Every process a benchmark started, so that any exit can stop them all."""

    server: DevServer | None = None
    fleet: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    services: list[ChangeService] = field(default_factory=list)

    def stop_all(self) -> None:
        """Close the clients' stores, stop the worker, then the fleet, then the server."""
        for service in self.services:
            service.close()
        stop(self.worker)
        stop(self.fleet)
        if self.server is not None:
            self.server.stop()

    def pids(self) -> tuple[int, int, int]:
        """Worker, Temporal server and fleet process ids."""
        assert self.worker and self.server and self.fleet
        return self.worker.pid, self.server.process.pid, self.fleet.pid


@dataclass
class Stack:
    """A started stack: its settings, a change client and the fleet's URL."""

    settings: Settings
    changes: ChangeService
    fleet_url: str


async def start_stack(
    children: Children,
    data_dir: Path,
    *,
    services: str,
    gate: type[Gate] | None = None,
) -> Stack:
    """Start the dev server, the fleet with `services` (`name=count,...`) and the worker.

    The change client's gate is the real `Gate`, or `gate` (a subclass measuring it).
    """
    progress(f"starting the Temporal dev server (SQLite WAL in {data_dir})")
    children.server = await start_dev_server(
        data_dir=data_dir / "temporal", port=free_port(), ui_port=free_port()
    )
    fleet_port = free_port()
    fleet_url = f"http://127.0.0.1:{fleet_port}"
    progress(f"starting the fleet at {fleet_url}")
    children.fleet = await start_fleet(fleet_port, services, data_dir / "fleet.log")
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
    if gate is not None:
        real = changes.gate
        changes = ChangeService(
            client,
            settings,
            gate=gate(store=real.store, policy=real.policy, validate=changes.validate),
        )
    children.services.append(changes)
    return Stack(settings=settings, changes=changes, fleet_url=fleet_url)


class BenchFailure(RuntimeError):
    """The benchmark could not produce an honest figure."""


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_bench(bench: Callable[[Children, Path], Coroutine[Any, Any, str]], *, prefix: str) -> int:
    """Run `bench` in a fresh data directory and print its report; stop every child after.

    0 with the report on success; 1 with the reason (and the logs kept) otherwise.
    """
    # Ctrl-C must stop the run and its children even where SIGINT was inherited as ignored
    # (a background job of a non-interactive shell); asyncio.run turns it into cancellation.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    children = Children()
    keep_logs = False
    try:
        table = asyncio.run(bench(children, data_dir))
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
