"""The events changegate tells people of where they are (chat, paging, webhooks)."""

from __future__ import annotations

from enum import StrEnum

from changegate.models.incident import IncidentSeverity


class NoticeKind(StrEnum):
    """Every event a notice is sent for; a channel may subscribe to a subset."""

    AWAITING_APPROVAL = "awaiting_approval"
    ESCALATION = "escalation"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    BLOCKED = "blocked"
    BREAKER_TRIPPED = "breaker_tripped"
    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    KILL_SWITCH_RELEASED = "kill_switch_released"


PAGED_SEVERITIES = frozenset({IncidentSeverity.SEV1, IncidentSeverity.SEV2})
"""Severities a paging channel (PagerDuty) is triggered for."""
