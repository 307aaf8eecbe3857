"""The change request an agent submits: who it is, what it wants, and what it believes."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.:@/-]{0,127}$"

RiskLevel = Literal["low", "medium", "high"]

OperationClass = Literal["config", "scale", "deploy", "destructive"]
"""How risk reads an operation a kind offers: `deploy` is at least medium, `destructive` high."""

UNIT_FILTER = "instances"


class Contract(BaseModel):
    """Base of every changegate contract: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class AgentIdentity(Contract):
    """Who proposes the change: the agent, the model behind it, and the session it acted in."""

    agent_id: Annotated[str, Field(pattern=_NAME, description="Stable id of the agent.")]
    model: str | None = Field(default=None, max_length=200, description="Model name/version.")
    session_id: str | None = Field(
        default=None, max_length=200, description="Session or trace id of the agent run."
    )
    on_behalf_of: str | None = Field(
        default=None, max_length=200, description="The human the agent acts for, if any."
    )


class Target(Contract):
    """What the change touches: a provider kind and a selector that provider understands."""

    kind: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_-]{0,62}$",
            description="An installed target kind, e.g. 'fleet' (`changegate kinds` lists them).",
        ),
    ]
    selector: dict[str, str] = Field(
        min_length=1, description="Provider-specific selector, e.g. {'service': 'checkout'}."
    )

    def label(self) -> str:
        """A short stable label such as `fleet:service=checkout`.

        `instances` narrows which units of the target change; it is not part of the
        target's identity, so scopes, freezes and one-change-per-target see the whole target.
        """
        parts = ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()) if k != UNIT_FILTER)
        return f"{self.kind}:{parts}"


class DesiredChange(Contract):
    """The operation the agent wants and its parameters."""

    operation: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_]{0,62}$",
            description="An operation the target's kind offers, e.g. 'set_config' for fleet.",
        ),
    ]
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict, description="The operation's parameters, e.g. {'pool_size': 24}."
    )


class Evidence(Contract):
    """Something the agent read before proposing: where, and an excerpt or digest of it."""

    source: Annotated[
        str,
        Field(min_length=1, max_length=500, description="Where it was read: a URL, path or name."),
    ]
    excerpt: str | None = Field(
        default=None, max_length=4000, description="The words that matter, as read."
    )
    digest: str | None = Field(
        default=None, max_length=200, description="A digest of what was read, instead of it."
    )

    @model_validator(mode="after")
    def _excerpt_or_digest(self) -> Evidence:
        if self.excerpt is None and self.digest is None:
            raise ValueError("evidence needs an excerpt or a digest of what was read")
        return self


class HealthCheck(Contract):
    """A health metric and the threshold that a healthy unit stays under.

    The metric is one the target's kind offers; the kind registry checks it at admission
    (`changegate kinds` lists each kind's metrics).
    """

    metric: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_]{0,62}$",
            description="A metric the target's kind offers, e.g. 'error_rate' for fleet.",
        ),
    ]
    max: Annotated[
        float, Field(ge=0, description="The threshold a healthy unit's value stays at or under.")
    ]
    template: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_.-]{0,62}$",
        description="An analysis template (defined in policy for the target's kind or label, "
        "or one of the kind's metrics) whose query and conditions measure this metric; "
        "`max` stays a failure bound the request may tighten, never loosen.",
    )


class RolloutSpec(Contract):
    """How the change rolls out: canary, waves, bakes and the analysis that gates each step."""

    canary_units: Annotated[
        int, Field(ge=1, le=100, description="Units changed first, alone (policy may raise it).")
    ] = 1
    waves: Annotated[
        int, Field(ge=1, le=20, description="Waves the remaining units are changed in.")
    ] = 2
    canary_bake_seconds: Annotated[
        float, Field(ge=0, le=86_400, description="Wait after the canary before its analysis.")
    ] = 30.0
    wave_bake_seconds: Annotated[
        float, Field(ge=0, le=86_400, description="Wait after each wave before its analysis.")
    ] = 15.0
    analysis_interval_seconds: Annotated[
        float, Field(gt=0, le=3_600, description="Wait between two health measurements.")
    ] = 5.0
    analysis_count: Annotated[
        int, Field(ge=1, le=100, description="Measurements each analysis takes.")
    ] = 3
    failure_limit: Annotated[
        int, Field(ge=0, le=100, description="Failed measurements tolerated per analysis.")
    ] = 0
    inconclusive_limit: Annotated[
        int, Field(ge=0, le=100, description="Inconclusive measurements tolerated per analysis.")
    ] = 1
    approval_timeout_seconds: Annotated[
        float,
        Field(gt=0, le=7 * 86_400, description="How long approval may take before it expires."),
    ] = 3_600.0

    @model_validator(mode="after")
    def _limits_fit_count(self) -> RolloutSpec:
        if self.failure_limit >= self.analysis_count:
            raise ValueError(
                f"failure_limit ({self.failure_limit}) must be below analysis_count "
                f"({self.analysis_count}), or a failing change could pass analysis"
            )
        return self


_PATH = re.compile(r"^[A-Za-z0-9_*.-]+(\.[A-Za-z0-9_*-]+)*$")


class ChangeRequest(Contract):
    """A change proposed by an agent; the single input every entry point accepts."""

    agent: AgentIdentity
    intent: Annotated[str, Field(min_length=10, max_length=4000, description="Why, in words.")]
    target: Target
    change: DesiredChange
    assumptions: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Live values the agent believes are current, keyed by observation path.",
    )
    evidence: list[Evidence] = Field(
        default_factory=list, max_length=50, description="What the agent read before proposing."
    )
    risk_hint: RiskLevel | None = Field(
        default=None, description="The agent's own view of the risk; it can only raise the tier."
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    health_checks: list[HealthCheck] = Field(
        default_factory=lambda: [HealthCheck(metric="error_rate", max=0.05)],
        min_length=1,
        description="The metrics and thresholds that gate every canary and wave.",
    )

    @field_validator("assumptions")
    @classmethod
    def _paths_are_paths(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for path in value:
            if not _PATH.match(path):
                raise ValueError(
                    f"assumption key {path!r} is not an observation path; "
                    "use dotted paths such as 'unit_count' or 'units.checkout-0.pool_size'"
                )
        return value
