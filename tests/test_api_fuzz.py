"""Property-based fuzzing of the API from its own OpenAPI schema: no input makes it fail.

The API under fuzz runs against a Temporal dev server and audit store of its own, in a
thread with its own event loop: generated kill switch calls must not pause the session's
changes, and the sync fuzz test must not stall the session loop.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from changegate.api import running_api
from changegate.runtime import find_binary
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import create_token, open_store
from changegate.workflows import SEARCH_ATTRIBUTES
from tests.support import DEV_SERVER_ARGS, TEST_POLICY

pytestmark = pytest.mark.e2e


class ApiThread:
    """The API, a Temporal dev server and a store, all on a thread's own event loop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.base = ""
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-api", daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise AssertionError("the fuzzed API did not start within 60s")
        if self.error is not None:
            raise self.error
        return self.base

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=find_binary("temporal"),
            dev_server_database_filename=str(self.data_dir / "temporal.db"),
            dev_server_extra_args=DEV_SERVER_ARGS,
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
        )
        async with env:
            config = Settings(
                temporal_address=env.client.service_client.config.target_host,
                task_queue=f"fuzz-{uuid.uuid4().hex[:8]}",
                data_dir=self.data_dir,
                policy_file=TEST_POLICY,
            )
            changes = ChangeService(env.client, config)
            try:
                async with running_api(settings=config, changes=changes, port=0) as base:
                    self.base = base
                    self._ready.set()
                    await self._stop.wait()
            finally:
                changes.close()


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The isolated API's base URL and an admin token for it."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    with open_store(f"sqlite:///{data_dir / 'changegate.db'}") as store, store.session() as s:
        token = create_token(session=s, name="fuzz-admin", role="admin")
    server = ApiThread(data_dir)
    try:
        yield server.start(), token
    finally:
        server.stop()


def fuzz_operation(operation: Any, *, base: str, token: str) -> None:
    """Up to 50 valid and invalid requests to one operation; none may answer 5xx."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error],
            timeout=30,
        )

    run()


def test_no_input_makes_the_api_fail(fuzzed_api: tuple[str, str]) -> None:
    base, token = fuzzed_api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    failures = []
    for operation in operations:
        try:
            fuzz_operation(operation, base=base, token=token)
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
