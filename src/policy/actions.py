"""What the policy does with each finding code: block, ask for another approver, or warn."""

from __future__ import annotations

from collections.abc import Sequence

from changegate.models import Finding, Severity
from changegate.policy.model import FindingAction, Policy

_SEVERITY: dict[FindingAction, Severity] = {
    "block": "block",
    "extra_approver": "warn",
    "warn": "warn",
}


def severity_for(code: str, policy: Policy) -> Severity | None:
    """The severity `policy.findings` gives `code`, or None when it does not list the code."""
    action = policy.findings.get(code)
    return None if action is None else _SEVERITY[action]


def apply_finding_actions(findings: Sequence[Finding], policy: Policy) -> list[Finding]:
    """The findings with the severity the policy gives their code; unlisted codes unchanged."""
    return [
        finding.model_copy(update={"severity": severity})
        if (severity := severity_for(finding.code, policy)) is not None
        else finding
        for finding in findings
    ]


def extra_approvals(findings: Sequence[Finding], policy: Policy) -> int:
    """How many more approvers the findings demand: one per `extra_approver` finding."""
    return sum(1 for f in findings if policy.findings.get(f.code) == "extra_approver")
