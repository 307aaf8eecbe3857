"""The front door's change operations: admit and start, sign decisions, control, read.

Identity is the caller's business (the API authenticates tokens); what this class adds is
the signature: every started workflow carries an admission ticket, every decision a proof
naming its principal. Workers verify both with the same key.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from changegate.admission import AdmissionRefused, Gate
from changegate.authority import Signer, load_signing_key, policy_digest
from changegate.errors import ChangeNotFound, NoWorker, Refused
from changegate.kinds import KindRegistry
from changegate.models import (
    ChangeInput,
    ChangeRef,
    ChangeRequest,
    ChangeStatus,
    Control,
    ControlAction,
    Decision,
    DecisionJudgement,
    DecisionRequest,
    HaltCause,
    Outcome,
    Stage,
)
from changegate.notify import notify_hook
from changegate.policy import load_policy
from changegate.providers import ProviderRegistry
from changegate.redaction import redact_text
from changegate.service.operations import Operations
from changegate.service.visibility import change_query
from changegate.settings import Settings
from changegate.store import open_store
from changegate.workflows import ChangeWorkflow
from changegate.workflows.options import CHANGE_AGENT, CHANGE_OUTCOME, CHANGE_STAGE, CHANGE_TARGET

__all__ = ["ChangeNotFound", "ChangeRef", "ChangeService"]

QUERY_PATIENCE_SECONDS = 3.0
"""How long a status query may go unanswered before the front door checks for a worker."""

POLLER_FRESHNESS = timedelta(seconds=90)
"""How recently a worker must have polled to count as present (its long poll lasts ~60 s)."""


class ChangeService:
    """Talks to changegate's workflows through a connected Temporal client.

    Every submission is resolved to its canonical target and passes the admission gate
    (the audit store and policy come from settings) before its workflow starts with a
    signed ticket. Only the front door builds one: it holds the signing key.
    """

    def __init__(
        self,
        client: Client,
        settings: Settings,
        *,
        gate: Gate | None = None,
        kinds: KindRegistry | None = None,
    ) -> None:
        """Use `client`, connected with the pydantic data converter; the target kinds are
        `kinds` (by default every installed one)."""
        self._client = client
        self._settings = settings
        self._gate = gate
        # Concurrent first submissions share one gate and one signer: the store is opened
        # (and migrated) and the key read (or made) once, not once per thread.
        self._gate_lock = threading.Lock()
        self._signer: Signer | None = None
        self._kinds = kinds or KindRegistry()
        self._providers: ProviderRegistry | None = None

    @property
    def signer(self) -> Signer:
        """The signer, with the key from settings or the data directory."""
        with self._gate_lock:
            if self._signer is None:
                self._signer = Signer(load_signing_key(self._settings))
            return self._signer

    @property
    def temporal(self) -> Client:
        """The underlying Temporal client."""
        return self._client

    @property
    def gate(self) -> Gate:
        """The admission gate, opening the store and loading the policy on first use."""
        with self._gate_lock:
            return self._gate_once()

    def _gate_once(self) -> Gate:
        if self._gate is None:
            self._settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._gate = Gate(
                store=open_store(self._settings.store_url()),
                policy=load_policy(self._settings.policy_file),
                validate=self.validate,
            )
        return self._gate

    def validate(self, request: ChangeRequest) -> ChangeRequest:
        """The request on its canonical target once its kind accepts the change (or
        `InvalidTarget` / `InvalidChange` naming the field); pure, nothing is contacted."""
        if self._providers is None:
            # Providers connect on first use only; resolve never does.
            self._providers = self._kinds.providers(self._settings)
        return self._kinds.validate(request, providers=self._providers)

    def operations(self) -> Operations:
        """Kill switches, breakers and incidents through this front door; each engage,
        release and trip is also a notice when a notify channel is configured."""
        hook = None
        if self._settings.notify_kinds():
            hook = notify_hook(self._client, settings=self._settings)
        return Operations(self, on_event=hook)

    def close(self) -> None:
        """Release the store's connections."""
        if self._gate is not None:
            self._gate.store.close()

    async def submit(self, request: ChangeRequest, *, change_id: str | None = None) -> str:
        """Admit the request (or raise `AdmissionRefused`), start its workflow, return its id."""
        change_id = change_id or f"chg-{uuid.uuid4().hex[:12]}"
        gate = await asyncio.to_thread(lambda: self.gate)
        signer = await asyncio.to_thread(lambda: self.signer)
        now = datetime.now(UTC)
        try:
            request = await asyncio.to_thread(gate.admit, request, change_id=change_id, now=now)
        except AdmissionRefused as refused:
            if refused.trip is not None:
                # The trip is stored with its kill switch; hold what the agent has in flight.
                await self.operations().tripped(refused.trip)
            raise
        ticket = signer.ticket(
            change_id=change_id,
            request=request,
            policy=policy_digest(gate.policy),
            now=now,
            ttl=timedelta(seconds=self._settings.ticket_ttl_seconds),
        )
        try:
            await self._start(
                ChangeInput(
                    change_id=change_id,
                    request=request,
                    ticket=ticket,
                    notify=self._settings.notify_kinds(),
                )
            )
        except BaseException:
            await asyncio.to_thread(
                gate.withdraw, request, change_id=change_id, now=datetime.now(UTC)
            )
            raise
        return change_id

    async def _start(self, data: ChangeInput) -> None:
        change_id, request = data.change_id, data.request
        await self._client.start_workflow(
            ChangeWorkflow.run,
            data,
            id=change_id,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            task_queue=self._settings.task_queue,
            # Where a worker shares this client (`changegate up`), the server hands it the
            # first workflow task in the start's answer: no poll, no dispatch wait.
            request_eager_start=True,
            static_summary=f"{request.agent.agent_id}: {request.change.operation} on "
            f"{request.target.label()}",
            static_details=request.intent,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(CHANGE_AGENT, request.agent.agent_id),
                    SearchAttributePair(CHANGE_TARGET, request.target.label()),
                    SearchAttributePair(CHANGE_STAGE, "RECON"),
                ]
            )
            if self._settings.search_attributes
            else None,
        )

    async def status(self, change_id: str) -> ChangeStatus:
        """The change's full status (running or ended); `NoWorker` if nothing can answer.

        A closed workflow is read from Temporal's history, so it needs no worker; a running
        one is queried, and a query nobody answers soon is told apart from a slow one by
        asking whether any worker polls the workflow's task queue.
        """
        handle = self._handle(change_id)
        with _not_found(f"no change {change_id!r} in namespace {self._settings.namespace!r}"):
            described = await handle.describe()
            if described.status == WorkflowExecutionStatus.RUNNING:
                return await self._query(handle, described.task_queue)
            if described.status == WorkflowExecutionStatus.COMPLETED:
                result: ChangeStatus = await handle.result()
                return result
            return await self._closed_early(handle, described)

    async def _query(
        self, handle: WorkflowHandle[ChangeWorkflow, ChangeStatus], task_queue: str
    ) -> ChangeStatus:
        query = asyncio.ensure_future(handle.query(ChangeWorkflow.status))
        try:
            # Without a worker Temporal holds the query until its own deadline (~30 s).
            done, _ = await asyncio.wait({query}, timeout=QUERY_PATIENCE_SECONDS)
            if not done and not await self.has_worker(task_queue):
                raise NoWorker(
                    task_queue=task_queue, namespace=self._client.namespace, change_id=handle.id
                )
            return await query
        finally:
            query.cancel()

    async def has_worker(self, task_queue: str) -> bool:
        """Whether a worker has polled `task_queue` for workflow tasks lately."""
        described = await self._client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        # Temporal lists a poller for minutes after its worker is gone; a live one renews its
        # long poll at least every minute, so an older entry is a worker that stopped.
        fresh = datetime.now(UTC) - POLLER_FRESHNESS
        return any(p.last_access_time.ToDatetime(tzinfo=UTC) >= fresh for p in described.pollers)

    async def _closed_early(
        self,
        handle: WorkflowHandle[ChangeWorkflow, ChangeStatus],
        described: WorkflowExecutionDescription,
    ) -> ChangeStatus:
        """A workflow terminated, cancelled, failed or timed out: it never wrote an outcome."""
        if await self.has_worker(described.task_queue):
            last = await self._query(handle, described.task_queue)
        else:
            last = await self._started_with(handle)
        if last.outcome is not None:
            return last
        how = described.status.name if described.status else "CLOSED"
        cancelled = described.status == WorkflowExecutionStatus.CANCELED
        return last.model_copy(
            update={
                "stage": Stage.ENDED,
                "outcome": Outcome.ABORTED,
                "halt_cause": HaltCause.CANCELLED if cancelled else HaltCause.ABORTED,
                "halt_reason": f"its workflow was {how} in Temporal during {last.stage}, "
                "outside changegate: nothing was rolled back; check the units it had applied",
            }
        )

    async def _started_with(
        self, handle: WorkflowHandle[ChangeWorkflow, ChangeStatus]
    ) -> ChangeStatus:
        """The change as submitted, from its first history event (no worker needed)."""
        async for event in handle.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [data] = await self._client.data_converter.decode(payloads, [ChangeInput])
            return ChangeStatus(change_id=data.change_id, request=data.request, stage=Stage.RECON)
        raise ChangeNotFound(f"change {handle.id!r} has no history")

    async def approve(self, change_id: str, decision: Decision) -> DecisionJudgement:
        """Approve as `decision.actor`, whom the caller authenticated; counted or why not."""
        return await self.decide(
            change_id,
            DecisionRequest(actor=decision.actor, verdict="approve", reason=decision.reason),
        )

    async def reject(self, change_id: str, decision: Decision) -> DecisionJudgement:
        """Reject; answered with whether the rejection counted and, if not, why."""
        return await self.decide(
            change_id,
            DecisionRequest(actor=decision.actor, verdict="reject", reason=decision.reason),
        )

    async def decide(self, change_id: str, request: DecisionRequest) -> DecisionJudgement:
        """Sign the decision for its (authenticated) actor, send it, return the judgement.

        The reason is redacted before it is signed, so history only ever holds the redacted
        text; the workflow records the signed reason as it is.
        """
        request = request.model_copy(update={"reason": redact_text(request.reason)})
        signer = await asyncio.to_thread(lambda: self.signer)
        proof = signer.proof(
            change_id=change_id,
            principal=request.actor,
            verdict=request.verdict,
            reason=request.reason,
            now=datetime.now(UTC),
        )
        request = request.model_copy(update={"proof": proof})
        with _not_found(_NOT_RUNNING.format(change_id=change_id)):
            judgement: DecisionJudgement = await self._handle(change_id).execute_update(
                ChangeWorkflow.decide, request
            )
        return judgement

    async def pause(self, change_id: str, control: Control) -> None:
        """Hold the change at its next safe point."""
        await self._signal(
            change_id, ChangeWorkflow.pause, self._signed(change_id, "pause", control)
        )

    async def resume(self, change_id: str, control: Control) -> None:
        """Continue a held change."""
        signed = self._signed(change_id, "resume", control)
        await self._signal(change_id, ChangeWorkflow.resume, signed)

    async def abort(self, change_id: str, control: Control) -> None:
        """Abort the change, rolling back whatever was applied."""
        await self._signal(
            change_id, ChangeWorkflow.abort, self._signed(change_id, "abort", control)
        )

    async def withdraw(self, change_id: str, *, agent_id: str, note: str = "") -> ChangeStatus:
        """Withdraw `agent_id`'s own change while it still waits for approval.

        It amounts to an abort sent by the agent with the reason `withdrawn by <agent>` (and
        `note`, the agent's why), so the timeline and the audit store record it like any
        abort; nothing was applied, so the change ends ABORTED. `Refused` names the rule when
        the change is another agent's (`withdraw.not_own`) or already approved, applied or
        ended (`withdraw.not_pending`). Returns the status the decision was taken on.
        """
        status = await self.status(change_id)
        owner = status.request.agent.agent_id
        if owner != agent_id:
            raise Refused(
                403,
                rule="withdraw.not_own",
                reason=f"{change_id} was not proposed by {agent_id!r}; an agent withdraws only "
                "its own changes",
                would_pass="a change id of your own; an operator aborts another agent's change",
            )
        if status.ended or status.stage not in _PENDING:
            where = (
                f"has already ended {status.outcome}"
                if status.outcome is not None
                else f"is past approval, at {status.stage}"
            )
            raise Refused(
                409,
                rule="withdraw.not_pending",
                reason=f"{change_id} {where}; only a change that still waits for approval "
                "can be withdrawn",
                would_pass="an operator's abort, which rolls back whatever was applied",
            )
        reason = f"withdrawn by {agent_id}" + (f": {note}" if note else "")
        await self.abort(change_id, Control(actor=agent_id, reason=reason))
        return status

    def _signed(self, change_id: str, action: ControlAction, control: Control) -> Control:
        """The control with a proof that its (authenticated) actor sent it."""
        proof = self.signer.control_proof(
            change_id=change_id,
            principal=control.actor,
            action=action,
            kill_switch=control.kill_switch,
            now=datetime.now(UTC),
        )
        return control.model_copy(update={"proof": proof, "reason": redact_text(control.reason)})

    async def wait(self, change_id: str) -> ChangeStatus:
        """Block until the change ends and return its final status."""
        result: ChangeStatus = await self._handle(change_id).result()
        return result

    async def watch(self, change_id: str, *, interval: float = 0.5) -> AsyncIterator[ChangeStatus]:
        """Yield the status each time its timeline grows, until the change ends."""
        seen = -1
        while True:
            status = await self.status(change_id)
            if len(status.timeline) != seen or status.ended:
                seen = len(status.timeline)
                yield status
            if status.ended:
                return
            await asyncio.sleep(interval)

    async def list(self, query: str | None = None, *, limit: int = 100) -> list[ChangeRef]:
        """Changes matching `query` (built by `change_query`; None: every change), newest first."""
        refs = []
        async for wf in self._client.list_workflows(query or change_query(), limit=limit):
            attrs = wf.typed_search_attributes
            refs.append(
                ChangeRef(
                    change_id=wf.id,
                    workflow_status=(wf.status or WorkflowExecutionStatus.RUNNING).name,
                    agent=attrs.get(CHANGE_AGENT),
                    target=attrs.get(CHANGE_TARGET),
                    stage=attrs.get(CHANGE_STAGE),
                    outcome=attrs.get(CHANGE_OUTCOME),
                )
            )
        return refs

    def _handle(self, change_id: str) -> WorkflowHandle[ChangeWorkflow, ChangeStatus]:
        return self._client.get_workflow_handle_for(ChangeWorkflow.run, change_id)

    async def _signal(self, change_id: str, signal: object, arg: Decision | Control) -> None:
        with _not_found(_NOT_RUNNING.format(change_id=change_id)):
            await self._handle(change_id).signal(signal, arg)  # type: ignore[call-overload]


_PENDING = frozenset({Stage.RECON, Stage.VALIDATE, Stage.SUMMARY, Stage.AWAITING_APPROVAL})
"""Stages before any approval counted in full: nothing has been applied yet."""

_NOT_RUNNING = "no running change {change_id!r}: it does not exist or has already ended"


@contextmanager
def _not_found(message: str) -> Iterator[None]:
    """Temporal's NOT_FOUND as `ChangeNotFound` with `message`; other errors unchanged."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ChangeNotFound(message) from exc
        raise
