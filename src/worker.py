"""The changegate worker: builds providers and health sources and runs the change workflow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from changegate.activities import (
    AssessActivities,
    AuditActivities,
    AuthorityActivities,
    DecisionActivities,
    HealthActivities,
    NotifyActivities,
    ReconActivities,
    RolloutActivities,
    ValidationActivities,
    context_sources,
    render_summary,
)
from changegate.activities.audit import TripHook
from changegate.admission import Gate
from changegate.authority import Signer, load_signing_key, policy_digest
from changegate.health import HealthSourceRegistry
from changegate.kinds import KindRegistry
from changegate.notify import Notifier
from changegate.policy import Policy, load_policy
from changegate.providers import ProviderRegistry
from changegate.redaction import install_log_redaction
from changegate.service import ChangeService
from changegate.service.reconcile import reconcile
from changegate.settings import Settings
from changegate.store import Store, database_url, open_store
from changegate.workflows import ChangeWorkflow
from changegate.workflows.notify import NotifyWorkflow

log = logging.getLogger(__name__)


@dataclass
class Dependencies:
    """What the activities need, built once per worker from the settings."""

    providers: ProviderRegistry
    sources: HealthSourceRegistry
    policy: Policy
    store: Store
    signer: Signer
    kinds: KindRegistry
    notifier: Notifier | None = None
    policy_dir: Path | None = None
    on_trip: TripHook | None = None
    """Holds an agent's in-flight changes when an outcome breaker trips (`running_worker`)."""

    @classmethod
    def build(
        cls, settings: Settings, *, store: Store | None = None, kinds: KindRegistry | None = None
    ) -> Dependencies:
        """Providers and health sources for every installed target kind (`kinds`, by default
        from the entry points), policy and the audit store (`store` if given, else opened
        from settings)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kinds = kinds or KindRegistry()
        policy = load_policy(settings.policy_file)
        return cls(
            providers=kinds.providers(settings),
            sources=kinds.health_sources(settings, templates=policy.analysis_templates),
            kinds=kinds,
            policy=policy,
            store=store or open_store(settings.store_url()),
            signer=Signer(load_signing_key(settings)),
            notifier=Notifier.from_settings(settings),
            policy_dir=settings.policy_file.parent if settings.policy_file else None,
        )

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity, bound to these dependencies."""
        recon = ReconActivities(self.providers)
        rollout = RolloutActivities(self.providers)
        audit = AuditActivities(self.store, policy=self.policy, on_trip=self.on_trip)
        decisions = DecisionActivities(policy=self.policy, signer=self.signer)
        notify = NotifyActivities(
            notifier=self.notifier,
            policy=self.policy,
            store=self.store,
            signer=self.signer,
        )
        authority = AuthorityActivities(
            signer=self.signer, policy_digest=policy_digest(self.policy)
        )
        validation = ValidationActivities(
            policy=self.policy,
            store=self.store,
            sources=context_sources(self.policy, base=self.policy_dir),
            kinds=self.kinds,
        )
        return [
            authority.verify_admission,
            authority.verify_control,
            recon.observe_target,
            AssessActivities(validation, recon).assess_change,
            rollout.apply_unit,
            rollout.revert_unit,
            rollout.verify_units,
            # Kept for changes started before assessment, summary and verification were
            # merged: their histories replay and they run on to their end.
            recon.plan_change,
            validation.validate_change,
            render_summary,
            rollout.verify_unit,
            HealthActivities(self.sources).measure_health,
            audit.record_change,
            audit.close_change,
            decisions.judge_decision,
            notify.resolve_notice,
            notify.deliver_notice,
        ]

    async def aclose(self) -> None:
        """Close the providers' and sources' HTTP clients."""
        await self.providers.aclose()
        await self.sources.aclose()
        if self.notifier is not None:
            await self.notifier.aclose()
        self.store.close()


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, passing through only what the workflow imports: contracts and pure rules.

    `tests/test_workflow_imports.py` pins that the workflow's import closure holds no HTTP
    client, database driver or activity implementation.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "changegate.errors",
    "changegate.health",
    "changegate.incidents",
    "changegate.models",
    "changegate.policy",
    "changegate.summary",
)


WORKFLOW_TASK_POLLS = 8
"""Concurrent workflow task polls of a worker, split between the normal and sticky queues."""


@asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    *,
    max_concurrent_activities: int = 50,
    replace: Mapping[str, Callable[..., Any]] | None = None,
    store: Store | None = None,
    kinds: KindRegistry | None = None,
) -> AsyncIterator[Worker]:
    """A running worker on `settings.task_queue`; its dependencies are closed on exit.

    `replace` registers other implementations under activity names (for tests that need a
    health source to misbehave, say); everything else is the real thing. `store` is the
    audit store already opened (the worker closes it); by default it is opened here. `kinds`
    are the target kinds it serves (by default every installed one). Every
    `reconcile_interval_seconds` the worker also releases the targets of closed workflows.
    """
    install_log_redaction()
    deps = Dependencies.build(settings, store=store, kinds=kinds)
    # The trip's kill switch is signed like an operator's, with the key the worker holds.
    front = ChangeService(client, settings, gate=Gate(store=deps.store, policy=deps.policy))
    deps.on_trip = front.operations().tripped
    replaced = dict(replace or {})
    activities = [fn for fn in deps.activities() if _activity_name(fn) not in replaced] + list(
        replaced.values()
    )
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[ChangeWorkflow, NotifyWorkflow],
        activities=activities,
        workflow_runner=workflow_runner(),
        max_concurrent_activities=max_concurrent_activities,
        # A new change's first workflow task waits on the normal queue: poll it with more
        # than the SDK's one poller (half of these; the other half poll the sticky queue).
        max_concurrent_workflow_task_polls=WORKFLOW_TASK_POLLS,
        nonsticky_to_sticky_poll_ratio=0.5,
        max_cached_workflows=settings.max_cached_workflows,
    )
    try:
        async with worker, _reconciling(client, deps.store, settings):
            yield worker
    finally:
        await deps.aclose()


@asynccontextmanager
async def _reconciling(client: Client, store: Store, settings: Settings) -> AsyncIterator[None]:
    """Reconcile in the background while the block runs (unless the interval is 0)."""
    if settings.reconcile_interval_seconds <= 0:
        yield
        return
    task = asyncio.create_task(_reconcile_forever(client, store, settings))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _reconcile_forever(client: Client, store: Store, settings: Settings) -> None:
    interval = settings.reconcile_interval_seconds
    # A row whose workflow never started is released only once its ticket can no longer
    # start one.
    grace = timedelta(seconds=settings.ticket_ttl_seconds)
    while True:
        await asyncio.sleep(interval)
        try:
            report = await reconcile(client, store, missing_grace=grace)
        except Exception as exc:
            # An outage of Temporal or the store must never stop the worker: try next time.
            log.warning(
                "reconciler pass failed (%s: %s); next try in %ss",
                type(exc).__name__,
                _first_line(exc),
                f"{interval:g}",
            )
            continue
        for repair in report.repairs:
            if repair.written:
                log.info(
                    "reconciler released %s on %s: workflow %s, outcome %s",
                    repair.change_id,
                    repair.target_label,
                    repair.workflow_status,
                    repair.outcome.value,
                )


def _activity_name(fn: Callable[..., Any]) -> str:
    definition = activity._Definition.from_callable(fn)
    return definition.name if definition and definition.name else fn.__name__


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and run the worker until `stop` is set (or forever).

    An audit store that does not answer yet is waited for, one log line per attempt.
    """
    from changegate.observability import worker_runtime
    from changegate.service import connect

    stop = stop or asyncio.Event()
    client = await connect(settings, runtime=worker_runtime(settings))
    store = await open_store_patiently(settings.store_url(), stop=stop)
    if store is None:
        return
    async with running_worker(client, settings, store=store):
        log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
        await stop.wait()


STORE_RETRY_CAP_SECONDS = 30.0
"""The longest wait between two attempts to open an unreachable audit store."""


async def open_store_patiently(url: str, *, stop: asyncio.Event) -> Store | None:
    """The store at `url`, retried with backoff while it is unreachable; None once `stop`."""
    shown = database_url(url).render_as_string(hide_password=True)
    password = database_url(url).password
    delay = 1.0
    while not stop.is_set():
        try:
            return await asyncio.to_thread(open_store, url)
        except (OperationalError, InterfaceError) as exc:
            reason = _first_line(exc.orig if exc.orig is not None else exc)
            if password:
                reason = reason.replace(str(password), "***")
            log.warning(
                "audit store unreachable at %s: %s; retrying in %ss", shown, reason, f"{delay:g}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, STORE_RETRY_CAP_SECONDS)
    return None


def _first_line(exc: BaseException) -> str:
    """An error's message, short: drivers add hints, SQL and parameters on later lines."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0][:200]
