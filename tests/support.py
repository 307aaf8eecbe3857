"""Shared helpers for tests: requests, polling, ports, and reading the real fleet.

Test modules and `conftest.py` import what they share from here; `conftest.py` holds only
fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from changegate.models import ChangeRequest, ChangeStatus, Decision, Stage
from changegate.runtime.devserver import dev_server_args
from changegate.store import create_engine_for

if TYPE_CHECKING:
    from temporalio.client import Client

    from changegate.service import ChangeService

TEST_POLICY = Path(__file__).parent / "policy.yaml"
FLEET_SERVICES = "checkout=4,search=3,payments=3,ledger=2,inventory=2"
DEV_SERVER_ARGS = dev_server_args()
"""What changegate gives its own dev server: SQLite in WAL mode and its dynamic config."""
CLI_USERS = {
    "agent-7": {"role": "agent", "agent_id": "agent-7"},
    "alice": {"role": "approver", "roles": ["sre", "dev"]},
    "bob": {"role": "approver", "roles": ["sre"]},
    "ops-admin": {"role": "admin"},
}
"""The CLI users the session's tokens are made for: the agent, two approvers, an admin."""

FAST_ROLLOUT = {
    "canary_units": 1,
    "waves": 2,
    "canary_bake_seconds": 0.5,
    "wave_bake_seconds": 0.2,
    "analysis_interval_seconds": 0.4,
    "analysis_count": 2,
    "failure_limit": 0,
    "inconclusive_limit": 1,
    "approval_timeout_seconds": 120,
}


def make_request(
    *,
    service: str = "checkout",
    parameters: dict[str, Any] | None = None,
    assumptions: dict[str, Any] | None = None,
    rollout: dict[str, Any] | None = None,
    agent_id: str = "agent-7",
) -> ChangeRequest:
    """A valid change request on the demo fleet with fast bakes."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": agent_id, "model": "demo-model-1", "session_id": "s-1"},
            "intent": "Raise the connection pool so checkout stops queueing at peak.",
            "target": {"kind": "fleet", "selector": {"service": service}},
            "change": {
                "operation": "set_config",
                "parameters": parameters if parameters is not None else {"pool_size": 24},
            },
            "assumptions": assumptions if assumptions is not None else {"unit_count": 4},
            "evidence": [{"source": "dashboard/checkout", "excerpt": "p99 rising at 18:00"}],
            "rollout": {**FAST_ROLLOUT, **(rollout or {})},
        }
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, *, within: float = 15.0) -> bool:
    """True once `url` answers 200, False if it has not within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


async def wait_until(
    check: Callable[[], Any], *, within: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll an async or sync `check` until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(interval)


async def worker_polling(changes: ChangeService, task_queue: str) -> None:
    """Wait until a worker process just started polls `task_queue`: until then the front
    door rightly answers `NoWorker` to a status query."""
    await wait_until(lambda: changes.has_worker(task_queue), within=60, what="the worker to poll")


async def wait_for_stage(
    changes: ChangeService, change_id: str, stage: Stage, *, within: float = 30.0
) -> ChangeStatus:
    """Poll the status query until the change is in `stage`."""

    seen: list[ChangeStatus] = []

    async def check() -> ChangeStatus | None:
        status = await changes.status(change_id)
        seen[:] = [status]
        return status if status.stage == stage else None

    try:
        result: ChangeStatus = await wait_until(check, within=within, what=f"stage {stage}")
    except AssertionError as exc:
        last = seen[0] if seen else None
        where = f"{last.stage} {last.outcome}: {last.timeline[-3:]}" if last else "no status"
        raise AssertionError(f"{exc}; {change_id} is at {where}") from None
    return result


class Fleet:
    """The real fleet process, read over its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=5).json()

    def reset(self) -> None:
        httpx.post(self.url + "/reset", timeout=5).raise_for_status()

    def writes(self) -> dict[str, int]:
        return {k: v for k, v in self._get("/writes")["counts"].items()}

    def write_log(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/writes")["writes"]
        return result

    def configs(self, service: str) -> dict[str, dict[str, Any]]:
        return {i["instance"]: i["config"] for i in self._get(f"/services/{service}")["instances"]}

    def set(self, service: str, instance: str, key: str, **config: Any) -> None:
        httpx.put(
            f"{self.url}/services/{service}/instances/{instance}/config",
            json={"config": config},
            headers={"Idempotency-Key": key},
            timeout=5,
        ).raise_for_status()


async def approve_fully(changes: ChangeService, change_id: str) -> None:
    """Approve as alice, then bob if the change's tier needs a second sre approver."""
    await changes.approve(change_id, Decision(actor="alice", reason="ok"))
    status = await changes.status(change_id)
    if (
        status.stage == Stage.AWAITING_APPROVAL
        and len(status.approvals) < status.approvals_required
    ):
        await changes.approve(change_id, Decision(actor="bob", reason="ok"))


def as_user(env: dict[str, str], name: str) -> dict[str, str]:
    """The CLI environment (`cli_env`) with `name`'s token instead of agent-7's."""
    return {**env, "CHANGEGATE_TOKEN": env[f"TEST_TOKEN_{name}"]}


POSTGRES_URL = os.environ.get(
    "CHANGEGATE_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def postgres_schema(prefix: str = "cg", base: str = POSTGRES_URL) -> Iterator[URL]:
    """A URL on a PostgreSQL schema of its own (dropped afterwards); skipped when the
    server is down, unless on CI, where the store tests must run on PostgreSQL."""
    admin = create_engine_for(
        make_url(base).update_query_dict({"connect_timeout": "3"}).render_as_string(False)
    )
    try:
        try:
            with admin.connect():
                pass
        except sa.exc.OperationalError as exc:
            message = f"PostgreSQL at {base} is unreachable: {exc.orig}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


async def terminate_running(client: Client, task_queue: str, reason: str) -> None:
    """End every change still running on `task_queue`: a module's changes must not outlive
    its worker, or later modules' queries meet them and get `NoWorker`."""
    from temporalio.service import RPCError, RPCStatusCode

    running = f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"'
    async for found in client.list_workflows(running):
        try:
            await client.get_workflow_handle(found.id).terminate(reason)
        except RPCError as exc:  # it ended after visibility listed it
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
