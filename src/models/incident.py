"""Incident records: what changegate writes down when a change goes wrong."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from changegate.models.request import Contract


class IncidentCategory(StrEnum):
    """A taxonomy of agent-initiated failures, for changes that wrote to their target.

    Scope breaches and loops are refused at admission (rules `scope.*` and `loop`) before
    anything is written, so they are refusals; repeated, they trip a circuit breaker, whose
    trip is an `agent-guardrail-breach` incident of the agent rather than of a change.
    """

    CONTEXT_BOUNDARY = "context-boundary"
    HEALTH_REGRESSION = "health-regression"
    APPLY_ERROR = "apply-error"
    ROLLBACK_FAILURE = "rollback-failure"
    TIMEOUT = "timeout"
    APPROVAL_VOIDED = "approval-voided"
    OPERATOR_ABORT = "operator-abort"
    AGENT_GUARDRAIL_BREACH = "agent-guardrail-breach"


class IncidentSeverity(StrEnum):
    """SEV1 is the worst: production left changed with no verified way back."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class Incident(Contract):
    """One incident, with its pre-filled post-incident review."""

    incident_id: str
    change_id: str
    category: IncidentCategory
    severity: IncidentSeverity
    title: str
    opened_at: datetime
    agent_id: str
    target_label: str
    units_touched: list[str] = Field(default_factory=list)
    restored: bool
    suggestion: str
    review_markdown: str
