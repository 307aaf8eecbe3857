"""Judging approvers' decisions against policy."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.authority import Signer
from changegate.models import DecisionJudgement, JudgeInput
from changegate.policy import Policy, judge_decision


class DecisionActivities:
    """Policy's word on each decision."""

    def __init__(self, *, policy: Policy, signer: Signer) -> None:
        """Judge by `policy`, trusting only proofs `signer` verifies."""
        self._policy = policy
        self._signer = signer

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
