"""The front door's change operations: admit and start, sign decisions, control, read.

Identity is the caller's business (the API authenticates tokens); what this class adds is
the signature: every started workflow carries an admission ticket, every decision a proof
naming its principal. Workers verify both with the same key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from changegate.admission import AdmissionRefused, Gate
from changegate.authority import Signer, load_signing_key, policy_digest
from changegate.errors import InvalidTarget
from changegate.models import (
    ChangeInput,
    ChangeRequest,
    ChangeStatus,
    Control,
    Decision,
    DecisionJudgement,
    DecisionRequest,
)
from changegate.policy import Admission, load_policy
from changegate.providers import FleetProvider, ProviderRegistry
from changegate.settings import Settings
from changegate.store import open_store
from changegate.workflows import ChangeWorkflow
from changegate.workflows.options import CHANGE_AGENT, CHANGE_STAGE, CHANGE_TARGET


class ChangeNotFound(LookupError):
    """No change with that id exists in the namespace."""


@dataclass(frozen=True)
class ChangeRef:
    """A change in a listing: its id and searchable attributes."""

    change_id: str
    status: str
    agent: str | None
    target: str | None
    stage: str | None


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
        providers: ProviderRegistry | None = None,
    ) -> None:
        """Use `client`, connected with the pydantic data converter."""
        self._client = client
        self._settings = settings
        self._gate = gate
        self._signer: Signer | None = None
        self._providers = providers or ProviderRegistry([FleetProvider(settings.fleet_url)])

    @property
    def signer(self) -> Signer:
        """The signer, with the key from settings or the data directory."""
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
        if self._gate is None:
            self._settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._gate = Gate(
                store=open_store(self._settings.store_url()),
                policy=load_policy(self._settings.policy_file),
            )
        return self._gate

    def close(self) -> None:
        """Release the store's connections."""
        if self._gate is not None:
            self._gate.store.close()

    def canonical(self, request: ChangeRequest) -> ChangeRequest:
        """The request on its canonical target, or `AdmissionRefused` naming the field."""
        try:
            target = self._providers.resolve(request.target)
        except InvalidTarget as exc:
            raise AdmissionRefused(
                Admission.refuse(exc.rule, reason=exc.reason, would_pass=exc.would_pass)
            ) from exc
        return request.model_copy(update={"target": target})

    async def submit(self, request: ChangeRequest, *, change_id: str | None = None) -> str:
        """Admit the request (or raise `AdmissionRefused`), start its workflow, return its id."""
        change_id = change_id or f"chg-{uuid.uuid4().hex[:12]}"
        request = self.canonical(request)
        gate = await asyncio.to_thread(lambda: self.gate)
        signer = await asyncio.to_thread(lambda: self.signer)
        now = datetime.now(UTC)
        request = await asyncio.to_thread(gate.admit, request, change_id=change_id, now=now)
        ticket = signer.ticket(
            change_id=change_id,
            request=request,
            policy=policy_digest(gate.policy),
            now=now,
            ttl=timedelta(seconds=self._settings.ticket_ttl_seconds),
        )
        try:
            await self._start(ChangeInput(change_id=change_id, request=request, ticket=ticket))
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
        """The change's full status (works for running and ended changes)."""
        with _not_found(f"no change {change_id!r} in namespace {self._settings.namespace!r}"):
            status: ChangeStatus = await self._handle(change_id).query(ChangeWorkflow.status)
        return status

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
        """Sign the decision for its (authenticated) actor, send it, return the judgement."""
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
        await self._signal(change_id, ChangeWorkflow.pause, control)

    async def resume(self, change_id: str, control: Control) -> None:
        """Continue a held change."""
        await self._signal(change_id, ChangeWorkflow.resume, control)

    async def abort(self, change_id: str, control: Control) -> None:
        """Abort the change, rolling back whatever was applied."""
        await self._signal(change_id, ChangeWorkflow.abort, control)

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

    async def list(self, *, query: str = "", limit: int = 100) -> list[ChangeRef]:
        """Changes matching a visibility query, newest first."""
        full = "WorkflowType = 'ChangeWorkflow'" + (f" AND {query}" if query else "")
        refs = []
        async for wf in self._client.list_workflows(full, limit=limit):
            attrs = wf.typed_search_attributes
            refs.append(
                ChangeRef(
                    change_id=wf.id,
                    status=wf.status.name if wf.status else WorkflowExecutionStatus.RUNNING.name,
                    agent=attrs.get(CHANGE_AGENT),
                    target=attrs.get(CHANGE_TARGET),
                    stage=attrs.get(CHANGE_STAGE),
                )
            )
        return refs

    def _handle(self, change_id: str) -> WorkflowHandle[ChangeWorkflow, ChangeStatus]:
        return self._client.get_workflow_handle_for(ChangeWorkflow.run, change_id)

    async def _signal(self, change_id: str, signal: object, arg: Decision | Control) -> None:
        with _not_found(_NOT_RUNNING.format(change_id=change_id)):
            await self._handle(change_id).signal(signal, arg)  # type: ignore[call-overload]


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
