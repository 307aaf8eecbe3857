"""Pure rules: what the agent assumed against what is true, admission and approval."""

from changegate.policy.assumptions import check_assumptions

__all__ = ["check_assumptions"]
