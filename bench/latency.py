"""Latency of the front door: submit -> AWAITING_APPROVAL, and approve -> first canary apply.

Run `python -m bench.latency [--changes N] [--concurrency C] [--client]`. It starts the real
stack as `changegate up` does: the embedded Temporal dev server, a worker and the HTTP API
in one process on free loopback ports, and the real fleet process with one two-instance
service per change (concurrent changes on one target would void each other's approvals
through drift, as they should), under a temporary policy with limits high enough to admit
every change. Then N changes are submitted through `POST /api/v1/changes`, C at a time; each
is approved through `POST .../approve` as soon as it awaits approval, and runs on to DONE.
With `--client` the same goes through the Python client (`ChangeService.submit`, `.status`,
`.approve`) in the benchmark's process instead of the HTTP API.

Both latencies are read from the change's own timeline, so polling does not inflate them:

- submit: from just before the POST to the `entered AWAITING_APPROVAL` event;
- approve: from just before the approve POST to the first `applied` event of the canary.

Timeline times are workflow time (the start of the workflow task that recorded the event),
on the same machine clock as the benchmark. Every change must then end DONE.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench.procs import free_port, start_fleet, stop
from bench.stack import BenchFailure, load_note
from changegate.api import running_api
from changegate.http_pool import KEEPALIVE_SECONDS
from changegate.models import ChangeRequest, Decision
from changegate.runtime import running_stack
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import create_token

POLICY = """\
agents:
  "*":
    targets: ["fleet:*"]
    operations: [set_config]
    max_units: 20
    changes_per_hour: 1000
    max_in_flight: 1000
risk_tiers:
  low: {approvals: 1}
  medium: {approvals: 1}
  high: {approvals: 1}
loop_detection: {max_repeats: 100, window_minutes: 60, flip_flop_window_minutes: 60}
"""
ROLLOUT = {
    "canary_units": 1,
    "waves": 1,
    "canary_bake_seconds": 0.2,
    "wave_bake_seconds": 0.2,
    "analysis_interval_seconds": 0.2,
    "analysis_count": 1,
    "failure_limit": 0,
    "inconclusive_limit": 1,
    "approval_timeout_seconds": 600,
}
DEADLINE = 120.0


APPROVER = Decision(actor="bench-approver", reason="benchmark")


@dataclass
class Sample:
    """The two latencies of one change, in seconds, and how it ended."""

    change_id: str
    submit: float
    approve: float
    outcome: str


def service(index: int) -> str:
    """The fleet service change `index` works on."""
    return f"svc{index:03d}"


def request(index: int) -> dict[str, Any]:
    """A change request raising the pool of its own service to 24."""
    return {
        "agent": {"agent_id": "bench-agent", "model": "bench", "session_id": f"s-{index}"},
        "intent": f"Benchmark change {index}: raise {service(index)}'s connection pool to 24.",
        "target": {"kind": "fleet", "selector": {"service": service(index)}},
        "change": {"operation": "set_config", "parameters": {"pool_size": 24}},
        "evidence": [{"source": "bench", "excerpt": "latency benchmark"}],
        "rollout": ROLLOUT,
    }


def at(event: dict[str, Any]) -> datetime:
    """An event's time, timezone-aware."""
    return datetime.fromisoformat(event["at"])


class Front(Protocol):
    """The front door a change goes through: the HTTP API or the Python client."""

    async def submit(self, index: int) -> str:
        """Submit change `index`; its id."""
        ...

    async def status(self, change_id: str) -> dict[str, Any]:
        """The change's status as the API renders it (JSON)."""
        ...

    async def approve(self, change_id: str) -> None:
        """Approve it; a decision that does not count fails the benchmark."""
        ...


@dataclass
class HttpFront:
    """`POST /api/v1/changes`, `GET .../{id}` and `POST .../{id}/approve`."""

    agent: httpx.AsyncClient
    approver: httpx.AsyncClient

    async def submit(self, index: int) -> str:
        """POST the request."""
        response = await self.agent.post("/api/v1/changes", json=request(index))
        if response.status_code != 201:
            raise BenchFailure(f"change {index} refused: {response.text}")
        change_id: str = response.json()["change_id"]
        return change_id

    async def status(self, change_id: str) -> dict[str, Any]:
        """GET the change."""
        response = await self.approver.get(f"/api/v1/changes/{change_id}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def approve(self, change_id: str) -> None:
        """POST the approval."""
        path = f"/api/v1/changes/{change_id}/approve"
        decision = await self.approver.post(path, json={"reason": "benchmark"})
        if decision.status_code != 200:
            raise BenchFailure(f"approval of {change_id} not counted: {decision.text}")


@dataclass
class ClientFront:
    """`ChangeService.submit`, `.status` and `.approve` in the benchmark's process."""

    changes: ChangeService

    async def submit(self, index: int) -> str:
        """Submit through the client."""
        return await self.changes.submit(ChangeRequest.model_validate(request(index)))

    async def status(self, change_id: str) -> dict[str, Any]:
        """Query the workflow."""
        return (await self.changes.status(change_id)).model_dump(mode="json")

    async def approve(self, change_id: str) -> None:
        """Approve through the signed `decide` update."""
        judgement = await self.changes.approve(change_id, APPROVER)
        if not judgement.counted:
            raise BenchFailure(f"approval of {change_id} not counted: {judgement.reason}")


async def poll(front: Front, change_id: str, done: Any, *, every: float) -> dict[str, Any]:
    """Read the change until `done(body)` holds; the body."""
    deadline = time.monotonic() + DEADLINE
    while True:
        body = await front.status(change_id)
        if done(body):
            return body
        if time.monotonic() > deadline:
            last = "; ".join(
                f"{e['at']} {e['stage']} {e['kind']}: {e['message']}" for e in body["timeline"]
            )
            raise BenchFailure(
                f"{change_id} did not reach the expected state within {DEADLINE:.0f}s: stage "
                f"{body['stage']}, paused {body['paused']}, approvals {body['approvals']} of "
                f"{body['approvals_required']}; events: {last}"
            )
        await asyncio.sleep(every)


async def one_change(index: int, *, front: Front, gate: asyncio.Semaphore) -> Sample:
    """Submit, approve once it awaits approval, and measure both latencies from its timeline."""
    async with gate:
        submitted_at = datetime.now(UTC)
        change_id = await front.submit(index)
        status = await poll(
            front,
            change_id,
            lambda s: s["stage"] == "AWAITING_APPROVAL" or s["outcome"],
            every=0.1,
        )
        if status["outcome"]:
            raise BenchFailure(f"{change_id} ended {status['outcome']} before approval")
        approved_at = datetime.now(UTC)
        await front.approve(change_id)
    final = await poll(front, change_id, lambda s: s["outcome"], every=0.5)
    awaiting = next(
        e for e in final["timeline"] if e["kind"] == "stage" and e["stage"] == "AWAITING_APPROVAL"
    )
    applied = [e for e in final["timeline"] if e["kind"] == "applied" and e["stage"] == "CANARY"]
    if not applied:
        raise BenchFailure(f"{change_id} ended {final['outcome']} without a canary apply")
    return Sample(
        change_id=change_id,
        submit=(at(awaiting) - submitted_at).total_seconds(),
        approve=(at(applied[0]) - approved_at).total_seconds(),
        outcome=final["outcome"],
    )


def say(message: str) -> None:
    """Progress, on stderr."""
    print(f"· {message}", file=sys.stderr)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def measure(
    *, changes: int, concurrency: int, data_dir: Path, via_client: bool = False
) -> tuple[list[Sample], float]:
    """Run the stack and the changes; every sample in submission order, and their wall time."""
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        ui_url=f"http://127.0.0.1:{free_port()}",
        fleet_url=f"http://127.0.0.1:{free_port()}",
        data_dir=data_dir,
        policy_file=policy,
        task_queue="bench-latency",
    )
    fleet_port = int(settings.fleet_url.rsplit(":", 1)[1])
    services = ",".join(f"{service(i)}=2" for i in range(changes))
    say(f"starting the fleet: {changes} services of 2 instances")
    fleet = await start_fleet(fleet_port, services, data_dir / "fleet.log")
    try:
        return await _measure(
            settings, changes=changes, concurrency=concurrency, via_client=via_client
        )
    finally:
        stop(fleet)


async def _measure(
    settings: Settings, *, changes: int, concurrency: int, via_client: bool
) -> tuple[list[Sample], float]:
    async with running_stack(settings, embedded_temporal=True, progress=say) as stack:
        client = ChangeService(stack.client, settings)
        try:
            store = await asyncio.to_thread(lambda: client.gate.store)

            def issue() -> tuple[str, str]:
                with store.session() as session:
                    return (
                        create_token(
                            session=session,
                            name="bench-agent",
                            role="agent",
                            agent_id="bench-agent",
                        ),
                        create_token(session=session, name="bench-approver", role="approver"),
                    )

            agent_token, approver_token = await asyncio.to_thread(issue)
            gate = asyncio.Semaphore(concurrency)
            if via_client:
                say(f"Python client; submitting {changes} changes, {concurrency} at a time")
                return await _run(ClientFront(client), changes, gate)
            async with running_api(settings=settings, changes=client, port=0) as base:
                say(f"API at {base}; submitting {changes} changes, {concurrency} at a time")
                async with (
                    _http(base, agent_token) as agent,
                    _http(base, approver_token) as approver,
                ):
                    return await _run(HttpFront(agent, approver), changes, gate)
        finally:
            client.close()


async def _run(front: Front, changes: int, gate: asyncio.Semaphore) -> tuple[list[Sample], float]:
    started = time.monotonic()
    samples = await asyncio.gather(*(one_change(i, front=front, gate=gate) for i in range(changes)))
    return list(samples), time.monotonic() - started


def _http(base: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        # As the product's client: idle connections go before uvicorn's 5 s timeout does.
        limits=httpx.Limits(max_connections=100, keepalive_expiry=KEEPALIVE_SECONDS),
    )


def report(
    samples: Sequence[Sample], *, concurrency: int, wall: float, via_client: bool = False
) -> str:
    """The figures, one per line."""
    outcomes = {s.outcome for s in samples}
    front = "the Python client" if via_client else "the HTTP API"
    lines = [
        f"{len(samples)} changes through {front}, {concurrency} at a time, "
        f"in {wall:.1f}s; outcomes: {', '.join(sorted(outcomes))}; {load_note()}",
    ]
    for name, values in (
        ("submit -> AWAITING_APPROVAL", [s.submit for s in samples]),
        ("approve -> first canary apply", [s.approve for s in samples]),
    ):
        lines.append(
            f"  {name:<30} p50 {percentile(values, 50) * 1000:7.0f} ms   "
            f"p95 {percentile(values, 95) * 1000:7.0f} ms   "
            f"max {max(values) * 1000:7.0f} ms"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print p50/p95 of both latencies; exit 1 unless all end DONE."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument(
        "--client", action="store_true", help="through the Python client, not the HTTP API"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="changegate-latency-") as tmp:
        samples, wall = asyncio.run(
            measure(
                changes=args.changes,
                concurrency=args.concurrency,
                data_dir=Path(tmp),
                via_client=args.client,
            )
        )
        print(report(samples, concurrency=args.concurrency, wall=wall, via_client=args.client))
    return 0 if all(s.outcome == "DONE" for s in samples) else 1


if __name__ == "__main__":
    raise SystemExit(main())
