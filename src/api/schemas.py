"""The HTTP API's own request and response bodies; requests, statuses and listings are reused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from changegate.models import DecisionVerdict, KillSwitchScope

__all__ = [
    "ChangeLinks",
    "ControlBody",
    "ControlResponse",
    "DecisionBody",
    "DecisionResponse",
    "ErrorBody",
    "ErrorDetail",
    "FieldError",
    "IncidentDetail",
    "IncidentItem",
    "KillSwitchAction",
    "KillSwitchItem",
    "KillSwitchReportBody",
    "SubmitResponse",
    "WhoAmI",
    "error_responses",
]


class Body(BaseModel):
    """Base of the API's request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    """One invalid field: its dotted path and what is wrong with it."""

    path: str
    message: str


class ErrorDetail(BaseModel):
    """Which rule refused the request, why, and what would pass."""

    rule: str
    reason: str
    would_pass: str = ""
    fields: list[FieldError] | None = None


class ErrorBody(BaseModel):
    """Every error the API answers has this shape."""

    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting the error body for `codes`."""
    return {code: {"model": ErrorBody} for code in codes}


class ChangeLinks(BaseModel):
    """Where to follow and act on a change."""

    status: str
    approve: str
    reject: str
    page: str
    workflow: str


class SubmitResponse(BaseModel):
    """A change admitted and started."""

    change_id: str
    links: ChangeLinks


class DecisionBody(BaseModel):
    """An approval or rejection; the actor is always the token's holder, never the body's."""

    model_config = ConfigDict(extra="ignore")

    reason: str = Field(default="", max_length=2000, description="Recorded in the history.")


class DecisionResponse(BaseModel):
    """How the workflow judged a decision."""

    change_id: str
    verdict: DecisionVerdict
    actor: str
    counted: bool
    reason: str
    rule: str | None = None


class ControlBody(BaseModel):
    """Why a change is paused, resumed or aborted; the actor is always the token's holder."""

    model_config = ConfigDict(extra="ignore")

    reason: str = Field(default="", max_length=2000)


class ControlResponse(BaseModel):
    """A control signal sent to a change."""

    change_id: str
    sent: Literal["pause", "resume", "abort"]
    actor: str


class IncidentItem(BaseModel):
    """An incident in a listing."""

    incident_id: str
    change_id: str
    category: str
    severity: str
    title: str
    target_label: str
    agent_id: str
    opened_at: datetime
    closed_at: datetime | None


class IncidentDetail(IncidentItem):
    """One incident with its post-incident review as Markdown."""

    review_markdown: str
    data: dict[str, Any]


class KillSwitchItem(BaseModel):
    """A kill switch and its state."""

    scope: KillSwitchScope
    mode: str
    engaged: bool
    actor: str
    reason: str
    updated_at: datetime


class KillSwitchAction(Body):
    """Engage or release a kill switch."""

    scope: KillSwitchScope = Field(
        default=KillSwitchScope.GLOBAL, description="`global` or `agent:<agent id>`."
    )
    action: Literal["engage", "release"]
    mode: Literal["pause", "abort"] = "pause"
    reason: str = Field(min_length=1, max_length=2000)


class KillSwitchReportBody(BaseModel):
    """What engaging or releasing a switch reached."""

    scope: KillSwitchScope
    mode: str
    engaged: bool
    actor: str
    reached: list[str]


class WhoAmI(BaseModel):
    """The caller, as its token identifies it."""

    token_id: str
    name: str
    role: str
    agent_id: str | None
    capabilities: list[str]
