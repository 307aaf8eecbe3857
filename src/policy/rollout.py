"""The rollout a change runs with: the agent's, raised to what its risk tier demands."""

from __future__ import annotations

from changegate.models import RiskAssessment, RolloutSpec


def effective_rollout(requested: RolloutSpec, risk: RiskAssessment | None) -> RolloutSpec:
    """`requested` with the canary its risk tier demands (never smaller than asked)."""
    if risk is None:
        return requested
    return requested.model_copy(
        update={
            "canary_units": max(requested.canary_units, risk.canary_units),
            "canary_bake_seconds": max(requested.canary_bake_seconds, risk.canary_bake_seconds),
        }
    )
