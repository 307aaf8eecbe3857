"""Notices: telling people of a change where they are, without ever holding it up.

A change sends a notice by starting `NotifyWorkflow` as an abandoned child whose workflow id
is the notice's event id: a second start of the same id is refused by Temporal, so each
event is delivered at most once however often it is sent, and the change never waits for
delivery (nor fails with it). The change sends only the kinds its input lists as having a
channel (`ChangeInput.notify`, from the front door's settings): with no channel configured,
no child is ever started.

`NotifyWorkflow` asks the worker which channels take the notice (filling in who can approve
and the incident's severity), then delivers to each in parallel, retrying each for a few
minutes. Channel URLs and keys stay in the worker's settings; history holds channel names.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from changegate.models import (
        Delivery,
        DeliveryReceipt,
        Notice,
        NoticeCheck,
        NoticeKind,
        NoticeReceipt,
        Outcome,
        ResolvedNotice,
    )
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.options import HEARTBEAT, READ_RETRY, READ_TIMEOUT
    from changegate.workflows.steps import failure_message

NOTIFY_WORKFLOW = "NotifyWorkflow"

OUTCOME_NOTICES: dict[Outcome, NoticeKind] = {
    Outcome.ROLLED_BACK: NoticeKind.ROLLED_BACK,
    Outcome.ROLLBACK_FAILED: NoticeKind.ROLLBACK_FAILED,
    Outcome.BLOCKED: NoticeKind.BLOCKED,
}
"""The outcomes people are told of, and the notice each one sends."""

DELIVER_WITHIN = timedelta(minutes=5)
"""How long one channel is retried before the notice is given up on for it."""
DELIVER_TIMEOUT = timedelta(seconds=15)
DELIVER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,  # bounded by DELIVER_WITHIN instead
    non_retryable_error_types=["NotificationRejected", "ConfigurationError"],
)


class Notices:
    """The notices one change sends: awaiting approval, escalation, and its outcome."""

    def __init__(self, ledger: Ledger, kinds: list[NoticeKind]) -> None:
        """Send, of the change `ledger` records, only notices whose kind is in `kinds`."""
        self._ledger = ledger
        self._kinds = frozenset(kinds)

    async def awaiting_approval(self) -> None:
        """The change awaits a decision: who can approve it, until when."""
        status = self._ledger.status
        await self._send(
            NoticeKind.AWAITING_APPROVAL,
            f"{status.change_id} awaits approval: {_headline(status.summary)}",
        )

    async def escalation(self, seconds_left: float) -> None:
        """The approval deadline is near and the quorum is not there."""
        status = self._ledger.status
        await self._send(
            NoticeKind.ESCALATION,
            f"{status.change_id} still needs approval, {seconds_left:.0f}s left: "
            f"{_headline(status.summary)}",
            seconds_left=seconds_left,
        )

    async def outcome(self) -> None:
        """The change ended in an outcome people must hear of (if it did)."""
        status = self._ledger.status
        kind = OUTCOME_NOTICES.get(status.outcome) if status.outcome else None
        if kind is None or status.outcome is None:
            return
        final = next(
            (e.message for e in reversed(status.timeline) if e.kind == "outcome"),
            status.outcome.value,
        )
        await self._send(
            kind,
            f"{status.change_id} on {status.request.target.label()}: {final}",
            outcome=status.outcome,
            incident_id=status.incident_id,
        )

    async def _send(
        self,
        kind: NoticeKind,
        title: str,
        *,
        seconds_left: float | None = None,
        outcome: Outcome | None = None,
        incident_id: str | None = None,
    ) -> None:
        if kind not in self._kinds:
            return
        status = self._ledger.status
        request = status.request
        # The timeline's length makes the id unique within the change and stable on replay.
        event_id = f"notice-{status.change_id}-{kind.value}-{len(status.timeline)}"
        notice = Notice(
            event_id=event_id,
            kind=kind,
            at=workflow.now(),
            title=title,
            summary=status.summary or "",
            change_id=status.change_id,
            target=request.target.label(),
            agent=request.agent.agent_id,
            on_behalf_of=request.agent.on_behalf_of,
            risk=status.risk,
            approvals=len(status.approvals),
            approvals_required=status.approvals_required,
            deadline=status.approval_deadline,
            seconds_left=seconds_left,
            outcome=outcome,
            incident_id=incident_id,
        )
        # A refused start means this event was delivered already, or is being delivered.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                NOTIFY_WORKFLOW,
                notice,
                id=event_id,
                result_type=NoticeReceipt,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"notify: {kind.value}",
            )


@workflow.defn(name=NOTIFY_WORKFLOW)
class NotifyWorkflow:
    """Delivers one notice to every channel that takes it; never fails for a channel."""

    @workflow.run
    async def run(self, notice: Notice) -> NoticeReceipt:
        """Check who sent it, resolve the channels, deliver to each, report which took it."""
        parent = workflow.info().parent
        resolved: ResolvedNotice = await workflow.execute_activity(
            "resolve_notice",
            NoticeCheck(notice=notice, parent_id=parent.workflow_id if parent else None),
            result_type=ResolvedNotice,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=READ_RETRY,
            summary=f"channels for {notice.kind.value}",
        )
        names = resolved.channels
        outcomes = await asyncio.gather(*(self._deliver(resolved.notice, n) for n in names))
        failed = {name: why for name, why in zip(names, outcomes, strict=True) if why}
        delivered = [name for name in names if name not in failed]
        return NoticeReceipt(event_id=notice.event_id, delivered=delivered, failed=failed)

    async def _deliver(self, notice: Notice, channel: str) -> str | None:
        """None once `channel` took the notice; why not, once retrying is over."""
        try:
            await workflow.execute_activity(
                "deliver_notice",
                Delivery(notice=notice, channel=channel),
                result_type=DeliveryReceipt,
                start_to_close_timeout=DELIVER_TIMEOUT,
                schedule_to_close_timeout=DELIVER_WITHIN,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=DELIVER_RETRY,
                summary=f"deliver {notice.kind.value} to {channel}",
            )
        except ActivityError as exc:
            workflow.logger.warning("notice %s not delivered to %s", notice.event_id, channel)
            return failure_message(exc)
        return None


def _headline(summary: str | None) -> str:
    lines = (summary or "").strip().splitlines()
    return lines[0] if lines else "(no summary yet)"
