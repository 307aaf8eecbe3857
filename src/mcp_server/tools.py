"""The tools an agent calls; each one resolves and checks its caller before anything else."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from changegate.admission import AdmissionRefused
from changegate.authority import Principal
from changegate.errors import (
    ChangegateError,
    ChangeNotFound,
    NoWorker,
    Refused,
    TemporalUnreachable,
)
from changegate.mcp_server.auth import Authenticator, describe
from changegate.mcp_server.backend import Backend
from changegate.mcp_server.views import (
    ChangeList,
    ChangeView,
    Observation,
    Proposal,
    WaitResult,
    Withdrawal,
    progress_message,
)
from changegate.models import ChangeRequest, ChangeStatus, Outcome, Stage, Target
from changegate.service import ChangeService
from changegate.service.visibility import change_query

PROGRESS_SECONDS = 1.0
"""How often `wait_for_change` reads the status and reports progress."""

ChangeId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="The id propose_change returned, e.g. chg-1a2b3c4d5e6f.",
    ),
]


class ChangegateTools:
    """Bound to one backend and authenticator; `build_server` publishes them as tools."""

    def __init__(self, *, backend: Backend, auth: Authenticator) -> None:
        """Act through `backend` for callers that `auth` vouches for."""
        self._backend = backend
        self._auth = auth

    async def propose_change(self, request: ChangeRequest) -> Proposal:
        """Submit a change request as the authenticated agent."""
        caller = await self._auth.caller()
        if not caller.acts_for(request.agent.agent_id):
            raise ToolError(
                f"refused: request.agent.agent_id is {request.agent.agent_id!r} but this token "
                f"acts as {describe(caller)!r}; an agent proposes only as itself, so set "
                f"agent.agent_id to {caller.agent_id!r}"
            )
        changes = await self._changes()
        try:
            change_id = await changes.submit(request)
        except AdmissionRefused as exc:
            wait = exc.retry_after
            retry = "" if wait is None else f"\nretry_after: {math.ceil(wait)} (seconds)"
            raise ToolError(
                f"refused by admission rule {exc.rule}; nothing was started.\n"
                f"why: {exc.reason}\nwould pass: {exc.would_pass}{retry}"
            ) from exc
        return Proposal(
            change_id=change_id,
            web_ui_url=self._backend.settings.workflow_url(change_id),
            next_step=(
                "The change runs RECON and VALIDATE, then waits for a human approver; nothing "
                "is applied before approval. Call get_change to read its summary and findings, "
                "or wait_for_change to block until it ends."
            ),
        )

    async def get_change(self, change_id: ChangeId) -> ChangeView:
        """One of the caller's changes: stage, outcome, summary, findings, units, timeline."""
        status = await self._owned(await self._auth.caller(), change_id)
        return self._view(status)

    async def wait_for_change(
        self,
        change_id: ChangeId,
        ctx: Context,
        timeout_seconds: Annotated[
            float,
            Field(
                gt=0,
                le=600,
                description="How long to wait, in seconds (at most 600); call again to go on.",
            ),
        ] = 120.0,
    ) -> WaitResult:
        """Block until the change ends or the timeout runs out, reporting progress meanwhile.

        Each poll sends a progress notification (seconds waited of `timeout_seconds`) with
        where the change is, when the client asked for progress.
        """
        status = await self._owned(await self._auth.caller(), change_id)
        changes = await self._changes()
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_seconds):
                while not status.ended:
                    waited = time.monotonic() - started
                    await ctx.report_progress(waited, timeout_seconds, progress_message(status))
                    await asyncio.sleep(PROGRESS_SECONDS)
                    status = await changes.status(change_id)
        except TimeoutError:
            pass
        if status.outcome is not None:
            message = f"{change_id} ended {status.outcome.value}"
        else:
            message = f"still running at {status.stage.value}" + (
                " (paused)" if status.paused else ""
            )
        return WaitResult(
            finished=status.outcome is not None, message=message, change=self._view(status)
        )

    async def withdraw_change(
        self,
        change_id: ChangeId,
        reason: Annotated[
            str,
            Field(max_length=500, description="Why you take it back; added to the timeline."),
        ] = "",
    ) -> Withdrawal:
        """Withdraw the caller's own change while it still waits for approval."""
        caller = await self._auth.caller()
        if caller.agent_id is None:
            raise ToolError(
                f"{describe(caller)!r} is not an agent: withdraw_change takes back an agent's "
                "own proposal; an operator stops any change with `changegate abort`"
            )
        changes = await self._changes()
        try:
            await changes.withdraw(change_id, agent_id=caller.agent_id, note=reason)
        except ChangeNotFound as exc:
            raise ToolError(f"{exc}; list_my_changes shows the ids you can read") from exc
        except Refused as exc:
            raise ToolError(
                f"refused by rule {exc.rule}; nothing was changed.\nwhy: {exc.reason}\n"
                f"would pass: {exc.would_pass}"
            ) from exc
        except NoWorker as exc:
            raise ToolError(str(exc)) from exc
        return Withdrawal(
            change_id=change_id,
            message=f"withdrawn by {caller.agent_id}: the change ends ABORTED at its next safe "
            "point; wait_for_change shows it end",
        )

    async def list_my_changes(
        self,
        stage: Annotated[
            Stage | None, Field(description="Only changes at this stage; ENDED for finished.")
        ] = None,
        outcome: Annotated[
            Outcome | None,
            Field(description="Only changes that ended so: DONE, ROLLED_BACK, BLOCKED, ..."),
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=100, description="At most this many changes, newest first.")
        ] = 20,
    ) -> ChangeList:
        """The caller's changes, newest first, each with its outcome once it has ended."""
        caller = await self._auth.caller()
        if not self._backend.settings.search_attributes:
            raise ToolError(
                "listing needs changegate's search attributes, which this deployment has "
                "turned off (CHANGEGATE_SEARCH_ATTRIBUTES=false); keep the ids propose_change "
                "returns and use get_change"
            )
        changes = await self._changes()
        refs = await changes.list(
            change_query(agent=caller.agent_id, stage=stage, outcome=outcome), limit=limit
        )
        return ChangeList(agent_id=caller.agent_id, changes=refs)

    async def observe_target(
        self,
        kind: Annotated[
            str, Field(description="A target kind (the tool's description lists them).")
        ],
        selector: Annotated[
            dict[str, str], Field(description="The kind's selector, e.g. {'service': 'checkout'}.")
        ],
    ) -> Observation:
        """Read a target through its provider's read-only half."""
        await self._auth.caller()
        try:
            target = Target(kind=kind, selector=selector)
        except ValidationError as exc:
            raise ToolError(f"invalid target: {exc}") from exc
        try:
            target = self._backend.providers.resolve(target)
            provider = self._backend.providers.read_only(target.kind)
            observation = await provider.observe(target)
        except ChangegateError as exc:
            raise ToolError(str(exc)) from exc
        return Observation.of(observation)

    async def _changes(self) -> ChangeService:
        try:
            return await self._backend.changes()
        except TemporalUnreachable as exc:
            raise ToolError(str(exc)) from exc

    async def _owned(self, caller: Principal, change_id: str) -> ChangeStatus:
        changes = await self._changes()
        try:
            status = await changes.status(change_id)
        except ChangeNotFound as exc:
            raise ToolError(f"{exc}; list_my_changes shows the ids you can read") from exc
        except NoWorker as exc:
            raise ToolError(str(exc)) from exc
        if not caller.reads(status.request.agent.agent_id):
            raise ToolError(
                f"change {change_id!r} was not proposed by {describe(caller)!r}; agents may "
                "read only their own changes (list_my_changes shows them)"
            )
        return status

    def _view(self, status: ChangeStatus) -> ChangeView:
        return ChangeView.of(
            status, web_ui_url=self._backend.settings.workflow_url(status.change_id)
        )
