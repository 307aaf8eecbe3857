"""Pure rules: what the agent assumed against what is true, admission and approval."""

from changegate.models import DecisionJudgement, DecisionVerdict, RiskAssessment
from changegate.policy.actions import apply_finding_actions, extra_approvals, severity_for
from changegate.policy.admission import ADMISSION_RULES, admit
from changegate.policy.approvals import approvers_left, judge_decision, quorum_reached
from changegate.policy.assumptions import check_assumptions
from changegate.policy.context import ActiveChange, context_findings
from changegate.policy.loader import PolicyError, load_policy, parse_policy
from changegate.policy.model import (
    DEFAULT_FINDING_ACTIONS,
    RISK_LEVELS,
    AgentScope,
    Approver,
    ContextSource,
    FileSource,
    FindingAction,
    HttpSource,
    LoopDetection,
    Policy,
    RiskTier,
    RiskTiers,
)
from changegate.policy.risk import operation_class, risk_tier
from changegate.policy.state import (
    Admission,
    AdmissionState,
    KillSwitch,
    OpenIncident,
    RecentChange,
)
from changegate.policy.windows import WeeklySchedule, Window

__all__ = [
    "ADMISSION_RULES",
    "DEFAULT_FINDING_ACTIONS",
    "RISK_LEVELS",
    "ActiveChange",
    "Admission",
    "AdmissionState",
    "AgentScope",
    "Approver",
    "ContextSource",
    "DecisionJudgement",
    "DecisionVerdict",
    "FileSource",
    "FindingAction",
    "HttpSource",
    "KillSwitch",
    "LoopDetection",
    "OpenIncident",
    "Policy",
    "PolicyError",
    "RecentChange",
    "RiskAssessment",
    "RiskTier",
    "RiskTiers",
    "WeeklySchedule",
    "Window",
    "admit",
    "apply_finding_actions",
    "approvers_left",
    "check_assumptions",
    "context_findings",
    "extra_approvals",
    "judge_decision",
    "load_policy",
    "operation_class",
    "parse_policy",
    "quorum_reached",
    "risk_tier",
    "severity_for",
]
