"""Regressions found while measuring changegate at scale.

- A pooled connection the server closed while it sat idle is read again on a fresh one,
  against a real local server that drops a kept-alive connection unanswered; the API client
  does the same for a read and never sends a write twice.
- The pool and the API client let go of idle connections before uvicorn (fleet, API, MCP)
  closes them.
- A health read that fails is an `error` measurement, and the analysis measures again
  instead of deciding on it: one miss never holds a change for a human.
- Twenty concurrent first submissions through a fresh client all pass admission, and the
  client opens (and migrates) its audit store once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

import changegate.service.changes as service_module
from changegate.activities.health import HealthActivities
from changegate.client import ChangeClient
from changegate.client.credentials import Credentials
from changegate.client.errors import Unavailable
from changegate.health import HealthSourceRegistry
from changegate.health.analysis import evaluate
from changegate.health.sources import FleetMetricsSource
from changegate.http_pool import KEEPALIVE_SECONDS, HttpPool
from changegate.models import AnalysisLimits, HealthCheck, MeasureInput, Measurement
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import open_store, recent_changes
from tests.support import make_request

METRICS = (
    'fleet_error_ratio{service="checkout",instance="checkout-0"} 0.0\n'
    'fleet_latency_p99_seconds{service="checkout",instance="checkout-0"} 0.05\n'
)


@dataclass
class Seen:
    """What the server saw: connections opened, requests answered, requests dropped."""

    connections: int = 0
    answered: int = 0
    dropped: int = 0


@contextlib.asynccontextmanager
async def idle_closing_server(
    *, answer_first: int, body: str = METRICS, content_type: str = "text/plain; version=0.0.4"
) -> AsyncIterator[tuple[str, Seen]]:
    """An HTTP/1.1 server on loopback that keeps connections alive but, like a server whose
    idle timeout fired as the request arrived, closes a connection unanswered on its
    request number `answer_first + 1`. A fresh connection is answered again, with `body`."""
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    return
                if served == answer_first:
                    seen.dropped += 1
                    return
                served += 1
                seen.answered += 1
                answer = body.encode()
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n".encode()
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_a_kept_alive_connection_the_server_dropped_is_read_again() -> None:
    async with idle_closing_server(answer_first=1) as (url, seen):
        pool = HttpPool(timeout=5.0)
        try:
            first = await pool.get(f"{url}/metrics")
            second = await pool.get(f"{url}/metrics")
        finally:
            await pool.aclose()
    assert first.status_code == second.status_code == 200
    assert second.text == METRICS
    # The second read went out on the kept-alive connection, was dropped, and was sent
    # again on a new one.
    assert (seen.connections, seen.answered, seen.dropped) == (2, 2, 1)


def test_the_pool_lets_idle_connections_go_before_uvicorn_closes_them() -> None:
    # The fleet, the API and the MCP server run uvicorn with its default keep-alive timeout.
    server_idle = uvicorn.Config(app="changegate.fleet:app").timeout_keep_alive
    assert server_idle > KEEPALIVE_SECONDS
    pool = HttpPool(timeout=5.0)
    assert pool._limits.keepalive_expiry == KEEPALIVE_SECONDS
    # So does the API client (the CLI's, the demo's): it had kept them as long as uvicorn.
    client = ChangeClient(Credentials(api_url="http://127.0.0.1:1", token="t"))
    assert client._http._transport._pool._keepalive_expiry == KEEPALIVE_SECONDS  # type: ignore[attr-defined]


async def test_the_api_client_reads_again_on_a_dropped_connection_but_never_resends_a_write() -> (
    None
):
    answer = {"detail": "ok"}
    async with (
        idle_closing_server(
            answer_first=1, body=json.dumps(answer), content_type="application/json"
        ) as (url, seen),
        ChangeClient(Credentials(api_url=url, token="t")) as client,
    ):
        assert await client.call("GET", "/whoami") == answer
        # The server drops the kept-alive connection: the read goes out again, fresh.
        assert await client.call("GET", "/whoami") == answer
        assert (seen.connections, seen.answered, seen.dropped) == (2, 2, 1)
        # A write the server drops is not sent again (it may have landed): it is
        # reported as the API not answering, naming the rule.
        with pytest.raises(Unavailable) as refused:
            await client.call("POST", "/changes", json={})
    assert refused.value.rule == "api.unreachable"
    # No third connection: the dropped POST was sent once.
    assert (seen.connections, seen.answered, seen.dropped) == (2, 2, 2)


async def test_a_failed_health_read_is_an_error_measured_again_not_a_hold() -> None:
    # Every connection is dropped unanswered: the source cannot be read at all.
    async with idle_closing_server(answer_first=0) as (url, seen):
        source = FleetMetricsSource(url)
        activities = HealthActivities(HealthSourceRegistry([source]))
        data = MeasureInput(
            target_kind="fleet",
            selector={"service": "checkout"},
            unit_ids=["checkout-0"],
            checks=[HealthCheck(metric="error_rate", max=0.05)],
        )
        try:
            measurement = await ActivityEnvironment().run(activities.measure_health, data)
        finally:
            await source.aclose()
    assert seen.dropped >= 1
    assert measurement.phase == "error"
    assert "could not scrape" in measurement.reason
    # An analysis of one measurement does not decide on that miss: it measures again.
    limits = AnalysisLimits(count=1, failure_limit=0, inconclusive_limit=0)
    assert evaluate([measurement], limits) is None
    ok = Measurement(phase="successful", reason="all within thresholds")
    verdict = evaluate([measurement, ok], limits)
    assert verdict is not None and verdict.phase == "successful"
    # Errors in a row still end the analysis as an error.
    verdict = evaluate([measurement] * limits.consecutive_error_limit, limits)
    assert verdict is not None and verdict.phase == "error"


POLICY = """
agents:
  "*": {targets: ["fleet:*"], operations: [set_config], changes_per_hour: 1000,
        max_in_flight: 1000}
"""


async def test_concurrent_first_submissions_through_a_fresh_client(
    client: Client, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    fresh = settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "policy_file": policy,
            "database_url": None,
            # No worker polls this queue: the workflows only need to start.
            "task_queue": f"{settings.task_queue}-first-submissions",
        }
    )
    opened: list[str] = []
    real_open = open_store

    def counting_open(url: str) -> object:
        opened.append(url)
        return real_open(url)

    monkeypatch.setattr(service_module, "open_store", counting_open)
    changes = ChangeService(client, fresh)
    n = 20
    ids: list[str] = []
    try:
        ids = await asyncio.gather(
            *(
                changes.submit(make_request(service=f"first-{i}", agent_id="agent-first"))
                for i in range(n)
            )
        )
    finally:
        changes.close()
        for change_id in ids:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(change_id).terminate("test cleanup")
    assert len(set(ids)) == n
    assert len(opened) == 1
    with open_store(fresh.store_url()) as store, store.session() as session:
        rows = recent_changes(session=session, agent_id="agent-first")
    assert sorted(r.change_id for r in rows) == sorted(ids)
