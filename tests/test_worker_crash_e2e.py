"""A worker killed with SIGKILL mid-rollout: a new worker finishes the change, each unit once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from changegate.models import Decision, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from tests.support import Fleet, make_request, wait_for_stage, wait_until, worker_polling

pytestmark = pytest.mark.e2e


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "changegate", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigkilled_worker_mid_wave_is_replaced_and_units_apply_once(
    client: Client, settings: Settings, cli_env: dict[str, str], fleet: Fleet, tmp_path: Path
) -> None:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    env = {**cli_env, "CHANGEGATE_TASK_QUEUE": queue}
    changes = ChangeService(client, settings.model_copy(update={"task_queue": queue}))
    first = _start_worker(env, tmp_path / "worker1.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        await worker_polling(changes, queue)
        request = make_request(
            service="search",
            assumptions={"unit_count": 3},
            rollout={"waves": 2, "wave_bake_seconds": 1.5, "canary_bake_seconds": 0.3},
        )
        change_id = await changes.submit(request)
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await changes.approve(change_id, Decision(actor="alice"))

        async def in_first_wave() -> bool:
            status = await changes.status(change_id)
            return sum(u.status == "applied" for u in status.units) >= 2

        await wait_until(in_first_wave, within=30, what="first wave applied")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

        second = _start_worker(env, tmp_path / "worker2.log")
        final = await changes.wait(change_id)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)

    assert final.outcome == Outcome.DONE, final.timeline
    writes = fleet.writes()
    assert {k: v for k, v in writes.items() if k.startswith("search/")} == {
        "search/search-0": 1,
        "search/search-1": 1,
        "search/search-2": 1,
    }
    assert all(c["pool_size"] == 24 for c in fleet.configs("search").values())
