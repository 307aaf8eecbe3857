"""Judging approvers' decisions against policy, and escalating changes nobody decides on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.authority import Signer
from changegate.models import DecisionJudgement, EscalationInput, JudgeInput
from changegate.policy import Policy, judge_decision

log = logging.getLogger(__name__)


class DecisionActivities:
    """Policy's word on each decision, and the escalation notice before a deadline."""

    def __init__(
        self, *, policy: Policy, signer: Signer, escalation_webhook: str | None = None
    ) -> None:
        """Judge by `policy`, trusting only proofs `signer` verifies; escalate to the webhook."""
        self._policy = policy
        self._signer = signer
        self._webhook = escalation_webhook

    @activity.defn(name="judge_decision")
    @heartbeats
    async def judge_decision(self, data: JudgeInput) -> DecisionJudgement:
        """Whether the decision counts, and the rule that refuses it when it does not.

        The principal is the one the signed proof names; the payload's `actor` is ignored.
        """
        check = self._signer.check_proof(
            data.proof, change_id=data.change_id, verdict=data.verdict, now=datetime.now(UTC)
        )
        if not check.valid or data.proof is None:
            return DecisionJudgement(counted=False, rule=check.rule, reason=check.reason)
        judgement = judge_decision(
            data.proof.principal,
            verdict=data.verdict,
            policy=self._policy,
            assessment=data.risk,
            agent=data.agent,
            prior=data.prior,
        )
        return judgement.model_copy(
            update={"principal": data.proof.principal, "nonce": data.proof.nonce}
        )

    @activity.defn(name="escalate")
    @heartbeats
    async def escalate(self, data: EscalationInput) -> bool:
        """Post an escalation notice; False when no webhook is configured."""
        if not self._webhook:
            log.warning(
                "change %s still needs %d approval(s), %.0fs left (no escalation webhook set)",
                data.change_id,
                data.approvals_required - data.approvals,
                data.seconds_left,
            )
            return False
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self._webhook, json=data.model_dump(mode="json"))
            response.raise_for_status()
        return True
