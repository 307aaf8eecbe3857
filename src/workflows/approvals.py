"""Approval: waiting for a quorum of signed decisions by distinct people, judging each one.

A decision counts only with the front door's signed proof, once per proof, and once per
principal toward the quorum. Judging runs as an activity (the key stays out of history);
the count is settled in the workflow after it returns, with no await in between, so
concurrent decisions cannot both pass the same check.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from changegate.models import (
        AgentIdentity,
        ApprovalProof,
        Decision,
        DecisionJudgement,
        DecisionRecord,
        DecisionRequest,
        Finding,
        HaltCause,
        JudgeInput,
        Outcome,
        Stage,
    )
    from changegate.policy.approvals import quorum_reached
    from changegate.policy.drift import Drift
    from changegate.workflows.controls import Controls, Halt
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.notify import Notices
    from changegate.workflows.steps import Steps, failure_message

# Escalate when this share of the approval window has passed without a quorum.
ESCALATE_AT = 0.8

_UNSIGNED = (
    "the decision carries no signed proof of who made it; decide through "
    "`changegate approve`, the approval page or the HTTP API"
)


class Approvals:
    """The change's decisions: what counted, what did not and why, and the quorum."""

    def __init__(
        self,
        ledger: Ledger,
        steps: Steps,
        controls: Controls,
        agent: AgentIdentity,
        notices: Notices,
    ) -> None:
        """Judge decisions on a change `agent` proposed, recording them in `ledger`."""
        self._ledger = ledger
        self._steps = steps
        self._controls = controls
        self._agent = agent
        self._notices = notices
        self._nonces: set[str] = set()
        self._rejection: Decision | None = None

    async def wait(self, window: float) -> ApprovalProof:
        """Wait for a quorum (escalating near the deadline); `Halt` on reject or expiry."""
        status = self._ledger.status
        deadline = workflow.now() + timedelta(seconds=window)
        status.approval_deadline = deadline
        await self._notices.awaiting_approval()
        try:
            try:
                await workflow.wait_condition(
                    self._decided, timeout=window * ESCALATE_AT, timeout_summary="escalation point"
                )
            except TimeoutError:
                await self._escalate((deadline - workflow.now()).total_seconds())
                await workflow.wait_condition(
                    self._decided,
                    timeout=max((deadline - workflow.now()).total_seconds(), 0.001),
                    timeout_summary="approval deadline",
                )
        except TimeoutError:
            raise Halt(
                Outcome.EXPIRED, HaltCause.EXPIRED, f"no decision within {window:g}s"
            ) from None
        if self._rejection is not None:
            who, why = self._rejection.actor, self._rejection.reason
            raise Halt(Outcome.REJECTED, HaltCause.REJECTED, f"rejected by {who}: {why}")
        await self._controls.checkpoint("approval")
        return ApprovalProof(approved_by=[d.actor for d in status.approvals])

    def void(self, drift: list[Drift]) -> None:
        """The target moved after approval: every approval is void, a new decision needed."""
        status = self._ledger.status
        described = "; ".join(str(d) for d in drift)
        voided = ", ".join(d.actor for d in status.approvals)
        status.findings.append(
            Finding(
                code="approval-voided",
                severity="warn",
                message=f"the target changed after approval ({described}); "
                f"the approval of {voided} was voided and the change needs a new decision",
            )
        )
        self._ledger.event("approval-voided", f"drift since approval: {described}")
        status.approvals = []
        # Earlier decisions no longer count toward anything; their proofs stay spent.
        for record in status.decisions:
            record.counted = False

    def _decided(self) -> bool:
        status = self._ledger.status
        quorum = (
            quorum_reached([d.actor for d in status.approvals], status.risk)
            if status.risk is not None
            else len(status.approvals) >= status.approvals_required
        )
        return quorum or self._rejection is not None or self._controls.aborted is not None

    async def _escalate(self, left: float) -> None:
        self._ledger.event("escalated", f"{left:.0f}s left and no quorum yet")
        await self._notices.escalation(left)

    # ---- one decision --------------------------------------------------------------------

    async def decide(self, request: DecisionRequest) -> DecisionJudgement:
        """Judge one decision and, if it counts, count it; answer with the judgement."""
        status = self._ledger.status
        judgement = self._not_awaiting()
        if judgement is None and request.proof is None:
            judgement = _refused("approval.unauthenticated", _UNSIGNED)
        if judgement is None and status.risk is not None:
            judgement = await self._judge(
                JudgeInput(
                    change_id=status.change_id,
                    actor=request.actor,
                    verdict=request.verdict,
                    proof=request.proof,
                    agent=self._agent,
                    risk=status.risk,
                    prior=[(d.principal or "", d.verdict) for d in status.decisions if d.counted],
                )
            )
            judgement = self._not_awaiting() or self._once(judgement, request)
        assert judgement is not None
        self._record(request, judgement)
        return judgement

    def _record(self, request: DecisionRequest, judgement: DecisionJudgement) -> None:
        status = self._ledger.status
        who = judgement.principal
        reason = request.proof.reason if request.proof is not None and who else request.reason
        if not judgement.counted:
            claimed = "" if who else f" (unauthenticated, claiming to be {request.actor!r})"
            self._ledger.event(
                "decision-refused",
                f"{request.verdict}{claimed} not counted ({judgement.rule}): {judgement.reason}",
                actor=who,
            )
        elif request.verdict == "approve":
            assert who is not None
            status.approvals.append(Decision(actor=who, reason=reason))
            need = status.approvals_required
            self._ledger.event(
                "approved", f"{reason or 'approved'} ({len(status.approvals)}/{need})", actor=who
            )
        else:
            assert who is not None
            self._rejection = Decision(actor=who, reason=reason)
            self._ledger.event("rejected", reason or "rejected", actor=who)
        if judgement.counted and judgement.nonce is not None:
            self._nonces.add(judgement.nonce)
        status.decisions.append(
            DecisionRecord(
                seq=len(status.timeline) - 1,
                at=workflow.now(),
                verdict=request.verdict,
                principal=who,
                claimed=request.actor,
                reason=reason,
                counted=judgement.counted,
                rule=judgement.rule,
            )
        )

    async def _judge(self, data: JudgeInput) -> DecisionJudgement:
        try:
            return await self._steps.judge(data)
        except ActivityError as exc:
            # Handlers must not fail the workflow; an unjudged decision simply does not count.
            return _refused("approval.unjudged", failure_message(exc))

    def _once(self, judgement: DecisionJudgement, request: DecisionRequest) -> DecisionJudgement:
        """Refuse a replayed proof, and a second decision of the same kind by one principal."""
        if not judgement.counted:
            return judgement
        if judgement.nonce in self._nonces:
            return _deny(judgement, "approval.replayed", "this signed decision already counted")
        who = (judgement.principal or "").strip().casefold()
        earlier = [
            d.verdict
            for d in self._ledger.status.decisions
            if d.counted and (d.principal or "").strip().casefold() == who
        ]
        if earlier and (request.verdict == "approve" or "reject" in earlier):
            return _deny(
                judgement,
                "approval.duplicate",
                f"{judgement.principal} already decided ({earlier[0]}) on this change; "
                "each approver counts once",
            )
        return judgement

    def _not_awaiting(self) -> DecisionJudgement | None:
        status = self._ledger.status
        if status.stage == Stage.AWAITING_APPROVAL and status.outcome is None:
            if self._rejection is None:
                return None
            return _refused("approval.decided", "the change was already rejected")
        return _refused(
            "approval.not_awaiting",
            f"the change is in {status.stage.value}, not awaiting approval",
        )


def _refused(rule: str, reason: str) -> DecisionJudgement:
    return DecisionJudgement(counted=False, rule=rule, reason=reason)


def _deny(judgement: DecisionJudgement, rule: str, reason: str) -> DecisionJudgement:
    """A signed decision that does not count: who made it stays known."""
    return judgement.model_copy(update={"counted": False, "rule": rule, "reason": reason})
