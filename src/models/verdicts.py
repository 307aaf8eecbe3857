"""Verdicts of policy on one change: its risk tier, and whether a decision counts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from changegate.models.request import Contract, RiskLevel

DecisionVerdict = Literal["approve", "reject"]


class RiskAssessment(Contract):
    """A change's tier, why, and what that tier demands of approval and canary."""

    tier: RiskLevel
    reasons: list[str] = Field(default_factory=list)
    required_approvals: int = Field(ge=1)
    roles: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    """The listed approvers whose decision counts for this tier (empty: the policy lists none)."""
    canary_units: int = Field(ge=1)
    canary_bake_seconds: float = Field(ge=0)


class DecisionJudgement(Contract):
    """Whether a decision counts; `rule` names the refusal when it does not."""

    counted: bool
    reason: str
    rule: str | None = None
    principal: str | None = None
    """Who decided, as the front door's signed proof says (None when unauthenticated)."""
    nonce: str | None = None
    """The proof's nonce: a proof counts once, however often it is sent."""
