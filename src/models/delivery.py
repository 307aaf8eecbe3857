"""Notices and their delivery: what is told, to which channels, and what they answered.

A notice carries only what may be shown anywhere: no channel URL or key. The workflow
records it in history; the worker resolves the channels from its own settings.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, JsonValue

from changegate.models.incident import IncidentSeverity
from changegate.models.notice import NoticeKind
from changegate.models.request import Contract
from changegate.models.status import Outcome
from changegate.models.verdicts import RiskAssessment


class Notice(Contract):
    """One event to tell people of; `event_id` makes its delivery happen once."""

    event_id: str
    """Unique per event, the same however often it is sent: delivery happens once per id."""
    kind: NoticeKind
    at: datetime
    title: str
    """One line: what happened, to what."""
    summary: str = ""
    """The change summary's first lines, or the operator's reason."""
    change_id: str | None = None
    target: str | None = None
    agent: str | None = None
    on_behalf_of: str | None = None
    """The person the agent acts for: like the agent, never among who can approve."""
    actor: str | None = None
    """Who acted (the operator of a kill switch), when someone did."""
    risk: RiskAssessment | None = None
    approvers: list[str] = Field(default_factory=list)
    """Who can approve: filled in by the worker from policy for `awaiting_approval`."""
    approvals: int = 0
    approvals_required: int = 0
    deadline: datetime | None = None
    seconds_left: float | None = None
    outcome: Outcome | None = None
    incident_id: str | None = None
    severity: IncidentSeverity | None = None
    """The incident's severity; filled in by the worker from the audit store if unset."""
    details: dict[str, JsonValue] = Field(default_factory=dict)
    signature: str = ""
    """The front door's HMAC over the rest, for a notice no change sent (a kill switch, a
    breaker); a change's own notices are vouched for by being its child instead."""


class NoticeCheck(Contract):
    """Input of `resolve_notice`: the notice and the workflow that sent it, if any."""

    notice: Notice
    parent_id: str | None = None
    """The workflow id of the change that started the delivery; None for the front door's."""


class ResolvedNotice(Contract):
    """A notice completed from policy and the store, and the channels that take it."""

    notice: Notice
    channels: list[str] = Field(default_factory=list)
    """Channel names only: their URLs and keys stay in the worker's settings."""


class Delivery(Contract):
    """Input of `deliver_notice`: one notice to one channel, by name."""

    notice: Notice
    channel: str


class DeliveryReceipt(Contract):
    """What a channel answered."""

    channel: str
    status_code: int


class NoticeReceipt(Contract):
    """The result of delivering one notice: channels that took it, and those that did not."""

    event_id: str
    delivered: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
