"""Admission races through the front door: two `changegate api` processes on one store.

Each pair is two submissions on one target, one to each API process, released together by a
barrier. The store's lock (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) must
let exactly one through (201) and refuse the other with `one_active_change` (409). The
admitted change is then aborted through the API and the next pair waits until the store
records its outcome, so every pair races on a free target.

The two APIs and an in-process worker share one data directory (the signing key) and one
store (a SQLite file there, or a PostgreSQL schema of this test's own), on a task queue of
their own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from changegate.models import Outcome
from changegate.settings import Settings
from changegate.store import (
    Store,
    active_changes,
    create_token,
    get_change,
    list_refusals,
    open_store,
    recent_changes,
)
from changegate.worker import running_worker
from tests.support import (
    TEST_POLICY,
    Fleet,
    free_port,
    make_request,
    postgres_schema,
    terminate_running,
    wait_until,
)

pytestmark = pytest.mark.e2e

PAIRS = 20
AGENT = "race-agent"
SERVICE = "checkout"
TARGET = f"fleet:service={SERVICE}"
START_WITHIN = 30.0


@dataclass(frozen=True)
class Stack:
    """The two API processes' base URLs, the store they share, and tokens issued in it."""

    apis: tuple[str, str]
    store: Store
    agent_token: str
    admin_token: str
    logs: tuple[Path, Path]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite (the store is `changegate.db` in the shared data directory), else a
    PostgreSQL URL whose search path is a schema of this test's own."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_schema("cg_api_race") as scoped:
        yield scoped.render_as_string(hide_password=False)


def _api_env(own: Settings, config_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CHANGEGATE_TEMPORAL_ADDRESS": own.temporal_address,
        "CHANGEGATE_TASK_QUEUE": own.task_queue,
        "CHANGEGATE_DATA_DIR": str(own.data_dir),
        "CHANGEGATE_POLICY_FILE": str(TEST_POLICY),
        "CHANGEGATE_FLEET_URL": own.fleet_url,
        # `api` logs the local CLI in: keep that login out of the developer's own config.
        "CHANGEGATE_CONFIG_DIR": str(config_dir),
        "NO_COLOR": "1",
    }
    env.pop("CHANGEGATE_SIGNING_KEY", None)  # the key is the data directory's, as the worker's
    env.pop("CHANGEGATE_DATABASE_URL", None)
    if own.database_url is not None:
        env["CHANGEGATE_DATABASE_URL"] = own.database_url
    return env


async def _wait_answering(
    base: str, token: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the API answers an authenticated call (its store and port are both up)."""
    deadline = time.monotonic() + START_WITHIN
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while True:
            assert process.poll() is None, f"{base} exited: {log.read_text()}"
            try:
                response = await http.get("/api/v1/whoami", headers=bearer(token))
            except httpx.HTTPError:
                pass
            else:
                assert response.status_code == 200, response.text
                return
            assert time.monotonic() < deadline, f"{base} did not answer: {log.read_text()}"
            await asyncio.sleep(0.1)


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def stack(
    client: Client,
    settings: Settings,
    database_url: str | None,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """A worker in this process and two API processes, sharing a data directory and store."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    own = settings.model_copy(
        update={
            "task_queue": f"api-race-{uuid.uuid4().hex[:8]}",
            "data_dir": data_dir,
            "database_url": database_url,
        }
    )
    async with AsyncExitStack() as exits:
        store = open_store(own.store_url())  # migrated here, before anyone else opens it
        exits.callback(store.close)
        with store.session() as session:
            agent_token = create_token(session=session, name=AGENT, role="agent", agent_id=AGENT)
            admin_token = create_token(session=session, name="race-admin", role="admin")
        # The worker makes the signing key in the data directory the APIs then read.
        await exits.enter_async_context(running_worker(client, own))
        # Unwound before the worker stops: nothing of this module outlives it.
        exits.push_async_callback(terminate_running, client, own.task_queue, "race tests over")
        assert (data_dir / "signing.key").exists()

        processes: list[subprocess.Popen[bytes]] = []
        exits.callback(_stop_all, processes)
        bases, logs = [], []
        for n in range(2):
            port, log = free_port(), tmp_path / f"api-{n}.log"
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "changegate", "api", "--port", str(port)],
                        env=_api_env(own, tmp_path / f"config-{n}"),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            bases.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        started = zip(bases, processes, logs, strict=True)
        await asyncio.gather(*(_wait_answering(b, agent_token, p, g) for b, p, g in started))
        yield Stack(
            apis=(bases[0], bases[1]),
            store=store,
            agent_token=agent_token,
            admin_token=admin_token,
            logs=(logs[0], logs[1]),
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method), in the values' unit."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class Reply:
    side: int
    status: int
    body: dict[str, Any]
    seconds: float


async def _submit_at(
    http: httpx.AsyncClient, side: int, token: str, body: dict[str, Any], go: asyncio.Event
) -> Reply:
    await go.wait()
    started = time.perf_counter()
    response = await http.post("/api/v1/changes", json=body, headers=bearer(token))
    return Reply(side, response.status_code, response.json(), time.perf_counter() - started)


async def test_two_api_processes_admit_one_change_per_racing_pair(
    stack: Stack, fleet_process: str
) -> None:
    fleet = Fleet(fleet_process)
    writes_before = len(fleet.write_log())
    body = make_request(service=SERVICE, agent_id=AGENT).model_dump(mode="json")
    admitted: list[str] = []
    admit_seconds: list[float] = []
    refuse_seconds: list[float] = []
    winners: Counter[int] = Counter()

    def outcome_of(change_id: str) -> str | None:
        with stack.store.session() as session:
            row = get_change(session=session, change_id=change_id)
            return None if row is None else row.outcome

    async with (
        httpx.AsyncClient(base_url=stack.apis[0], timeout=30) as first,
        httpx.AsyncClient(base_url=stack.apis[1], timeout=30) as second,
    ):
        https = (first, second)
        for i in range(PAIRS):
            go = asyncio.Event()
            racing = asyncio.gather(
                *(_submit_at(http, n, stack.agent_token, body, go) for n, http in enumerate(https))
            )
            await asyncio.sleep(0)  # both are parked at the barrier
            go.set()
            replies = sorted(await racing, key=lambda r: r.status)

            assert [r.status for r in replies] == [201, 409], f"pair {i}: {replies}"
            won, lost = replies
            assert lost.body["error"]["rule"] == "one_active_change", f"pair {i}: {lost}"
            change_id = won.body["change_id"]
            assert change_id not in admitted, f"pair {i} admitted {change_id} again"
            admitted.append(change_id)
            admit_seconds.append(won.seconds)
            refuse_seconds.append(lost.seconds)
            winners[won.side] += 1

            # Abort through the other process than the one that admitted it.
            aborted = await https[1 - won.side].post(
                f"/api/v1/changes/{change_id}/abort",
                json={"reason": "race test: free the target for the next pair"},
                headers=bearer(stack.admin_token),
            )
            assert aborted.status_code == 202, aborted.text
            ended = await wait_until(
                functools.partial(outcome_of, change_id),
                within=30,
                interval=0.05,
                what=f"pair {i}: {change_id} has an outcome in the store",
            )
            assert ended == Outcome.ABORTED.value, f"pair {i}: {change_id} ended {ended}"

    with stack.store.session() as session:
        rows = recent_changes(session=session, target_label=TARGET)
        refusals = list_refusals(session=session)
        still_active = active_changes(session=session)
    assert sorted(r.change_id for r in rows) == sorted(admitted)
    assert len(set(admitted)) == PAIRS
    assert [r.rule for r in refusals] == ["one_active_change"] * PAIRS
    assert still_active == []
    assert len(fleet.write_log()) == writes_before, "an aborted change wrote to the fleet"

    database = stack.store.engine.dialect.name
    print(
        f"\n{database}: {PAIRS} pairs through two API processes; admitted by process "
        f"0/1: {winners[0]}/{winners[1]}\n"
        f"  admitted (201) latency p50 {percentile(admit_seconds, 50) * 1000:.1f} ms, "
        f"p95 {percentile(admit_seconds, 95) * 1000:.1f} ms, "
        f"max {max(admit_seconds) * 1000:.1f} ms\n"
        f"  refused  (409) latency p50 {percentile(refuse_seconds, 50) * 1000:.1f} ms, "
        f"p95 {percentile(refuse_seconds, 95) * 1000:.1f} ms, "
        f"max {max(refuse_seconds) * 1000:.1f} ms"
    )
