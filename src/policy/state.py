"""What admission reads (the history the caller fetched from the store) and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from changegate.models import ChangeRequest, Contract, IncidentSeverity, Outcome
from changegate.models.kill_switch import KillSwitchScope
from changegate.policy.model import AgentScope, Policy
from changegate.policy.windows import as_utc


class RecentChange(Contract):
    """A change submitted earlier; `outcome` is None while it is still running."""

    change_id: str
    agent_id: str
    target_label: str
    fingerprint: str
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    outcome: Outcome | None = None
    submitted_at: datetime

    @field_validator("submitted_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @property
    def active(self) -> bool:
        """True while the change has not ended."""
        return self.outcome is None


class KillSwitch(Contract):
    """A stop an operator set, for everything (`global`) or one agent (`agent:<id>`)."""

    scope: KillSwitchScope
    mode: Literal["pause", "abort"]
    engaged: bool
    actor: str
    reason: str = ""


class OpenIncident(Contract):
    """An incident not yet closed: where, how severe, whether its change was fully restored."""

    incident_id: str
    target_label: str
    severity: IncidentSeverity
    restored: bool = False
    opened_at: datetime

    @field_validator("opened_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class AdmissionState(Contract):
    """The history admission judges against, read by the caller.

    `recent_changes` must hold every change submitted within `Policy.lookback()` of now,
    and every change still running whenever it was submitted. `incidents` holds every open
    incident; `open_incident_targets` and `open_incidents` are the older, severity-less form
    of the same, kept for callers that read only labels: a label listed there without an
    entry in `incidents` freezes its own target until closed.
    """

    recent_changes: list[RecentChange] = Field(default_factory=list)
    incidents: list[OpenIncident] = Field(default_factory=list)
    open_incident_targets: list[str] = Field(default_factory=list)
    open_incidents: dict[str, str] = Field(
        default_factory=dict, description="An open incident's id by its target label."
    )
    kill_switches: list[KillSwitch] = Field(default_factory=list)


class Admission(Contract):
    """Admitted, or refused by a named rule with why and what would be admitted instead.

    `retry_after` is the seconds after which the same request may pass, set by every rule
    whose refusal is a 429 (`rate.*`); the API sends it as `Retry-After`.
    """

    admitted: bool
    rule: str | None = None
    reason: str = ""
    would_pass: str = ""
    retry_after: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _refusal_is_explained(self) -> Admission:
        if not self.admitted and not (self.rule and self.reason and self.would_pass):
            raise ValueError("a refusal names its rule, its reason and what would pass")
        return self

    @classmethod
    def accept(cls) -> Admission:
        """The request passed every rule."""
        return cls(admitted=True)

    @classmethod
    def refuse(
        cls, rule: str, *, reason: str, would_pass: str, retry_after: float | None = None
    ) -> Admission:
        """The request broke `rule`; `retry_after` seconds from now it may pass."""
        return cls(
            admitted=False,
            rule=rule,
            reason=reason,
            would_pass=would_pass,
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class Submission:
    """One request under judgement, with everything the rules read."""

    request: ChangeRequest
    policy: Policy
    now: datetime
    state: AdmissionState
    fingerprint: str
    unit_count: int | None

    @property
    def agent_id(self) -> str:
        """The proposing agent."""
        return self.request.agent.agent_id

    @property
    def label(self) -> str:
        """The target's label."""
        return self.request.target.label()

    @property
    def scope(self) -> tuple[str, AgentScope] | None:
        """The agent's scope and the policy key it came from."""
        return self.policy.scope_for(self.agent_id)

    @property
    def scope_note(self) -> str:
        """`, from the default '*' scope` when the agent has no entry of its own."""
        scope = self.scope
        return ", from the default '*' scope" if scope and scope[0] == "*" else ""

    def since(self, minutes: float) -> list[RecentChange]:
        """Changes submitted within the last `minutes`, oldest first."""
        start = self.now - timedelta(minutes=minutes)
        recent = [c for c in self.state.recent_changes if c.submitted_at > start]
        return sorted(recent, key=lambda c: c.submitted_at)
