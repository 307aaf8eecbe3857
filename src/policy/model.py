"""The policy file's model: scopes, approvers, risk tiers, windows, topology and limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from changegate.health.templates import AnalysisTemplate, TemplateName
from changegate.models import Contract, RiskLevel
from changegate.policy.breakers import AgentBreakers
from changegate.policy.targets import matches_any
from changegate.policy.windows import Window

FindingAction = Literal["block", "extra_approver", "warn"]

DEFAULT_FINDING_ACTIONS: dict[str, FindingAction] = {
    "stale-assumption": "warn",
    "maintenance-window": "block",
    "dependency-change-active": "extra_approver",
    "target-change-active": "extra_approver",
    "open-incident": "block",
    "flag": "warn",
}

RISK_LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high")

_Pattern = Annotated[str, Field(min_length=1, max_length=300)]


class AgentScope(Contract):
    """What an agent may propose (target globs, operations) and its budgets; None = no limit."""

    targets: list[_Pattern]
    operations: list[_Pattern]
    max_units: int | None = Field(default=None, ge=1)
    changes_per_hour: int | None = Field(default=None, ge=1)
    max_in_flight: int | None = Field(default=None, ge=1)


class Approver(Contract):
    """A person who may decide on changes, and the roles they hold."""

    roles: list[str] = Field(default_factory=list)


class RiskTier(Contract):
    """What a tier demands: a quorum, the roles that may approve, and canary minimums."""

    approvals: int = Field(default=1, ge=1, le=20)
    roles: list[str] = Field(default_factory=list)
    canary_units: int = Field(default=1, ge=1, le=100)
    canary_bake_seconds: float = Field(default=0.0, ge=0, le=86_400)


class RiskTiers(Contract):
    """The three tiers every change falls into."""

    low: RiskTier = Field(default_factory=RiskTier)
    medium: RiskTier = Field(default_factory=RiskTier)
    high: RiskTier = Field(default_factory=lambda: RiskTier(approvals=2))

    def get(self, level: RiskLevel) -> RiskTier:
        """The tier named `level`."""
        return {"low": self.low, "medium": self.medium, "high": self.high}[level]


class LoopDetection(Contract):
    """How many failed repeats of one change, and which reversals, count as a loop."""

    max_repeats: int = Field(default=3, ge=1, le=100)
    window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    flip_flop_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


class FileSource(Contract):
    """Context read from a local JSON or YAML file."""

    kind: Literal["file"]
    path: str = Field(min_length=1)


class HttpSource(Contract):
    """Context read from an HTTP endpoint returning JSON."""

    kind: Literal["http"]
    url: str = Field(pattern=r"^https?://\S+$")


ContextSource = Annotated[FileSource | HttpSource, Field(discriminator="kind")]


class AnalysisTemplates(Contract):
    """Named analysis templates for a kind, or for targets whose label matches a glob."""

    kinds: dict[str, dict[TemplateName, AnalysisTemplate]] = Field(default_factory=dict)
    targets: dict[_Pattern, dict[TemplateName, AnalysisTemplate]] = Field(default_factory=dict)

    def resolve(self, name: str, *, kind: str, label: str) -> AnalysisTemplate | None:
        """The template `name` for a target: the first matching target glob's, else the kind's."""
        for pattern, templates in self.targets.items():
            if name in templates and matches_any(label, [pattern]):
                return templates[name]
        return self.kinds.get(kind, {}).get(name)

    def names(self, *, kind: str, label: str) -> list[str]:
        """Every template name a target of `kind` labelled `label` may reference."""
        found = set(self.kinds.get(kind, {}))
        for pattern, templates in self.targets.items():
            if matches_any(label, [pattern]):
                found.update(templates)
        return sorted(found)


class Policy(Contract):
    """Everything admission, validation and approval consult; see `default.yaml`."""

    agents: dict[str, AgentScope] = Field(default_factory=dict)
    approvers: dict[str, Approver] = Field(default_factory=dict)
    risk_tiers: RiskTiers = Field(default_factory=RiskTiers)
    freeze_windows: list[Window] = Field(default_factory=list)
    maintenance_windows: list[Window] = Field(default_factory=list)
    topology: dict[str, list[str]] = Field(default_factory=dict)
    loop_detection: LoopDetection = Field(default_factory=LoopDetection)
    one_change_per_target: bool = True
    incident_cooling_off_minutes: int = Field(default=15, ge=0, le=7 * 24 * 60)
    """How long a contained, restored SEV3 or SEV4 freezes its target after it opened."""
    context_sources: list[ContextSource] = Field(default_factory=list)
    findings: dict[str, FindingAction] = Field(
        default_factory=lambda: dict(DEFAULT_FINDING_ACTIONS)
    )
    analysis_templates: AnalysisTemplates = Field(default_factory=AnalysisTemplates)
    breakers: dict[str, AgentBreakers] = Field(default_factory=dict)
    """Circuit breakers by agent id, `"*"` for every agent without its own entry."""

    @field_validator("findings")
    @classmethod
    def _keep_default_actions(cls, value: dict[str, FindingAction]) -> dict[str, FindingAction]:
        return {**DEFAULT_FINDING_ACTIONS, **value}

    @field_validator("topology")
    @classmethod
    def _no_self_dependency(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        loops = sorted(label for label, needs in value.items() if label in needs)
        if loops:
            raise ValueError(f"a target cannot depend on itself: {', '.join(loops)}")
        return value

    @field_validator("freeze_windows", "maintenance_windows")
    @classmethod
    def _unique_names(cls, value: list[Window]) -> list[Window]:
        names = [w.name for w in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"window names must be unique; repeated: {', '.join(twice)}")
        return value

    @model_validator(mode="after")
    def _quorums_reachable(self) -> Policy:
        if not self.approvers:
            return self
        problems = []
        for level in RISK_LEVELS:
            tier = self.risk_tiers.get(level)
            eligible = sorted(self.eligible_approvers(tier))
            if len(eligible) < tier.approvals:
                held = f"roles {', '.join(tier.roles)}" if tier.roles else "any role"
                problems.append(
                    f"risk_tiers.{level}: needs {tier.approvals} approval(s) from {held}, "
                    f"but only {len(eligible)} listed approver(s) qualify "
                    f"({', '.join(eligible) or 'none'})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def scope_for(self, agent_id: str) -> tuple[str, AgentScope] | None:
        """The agent's own scope, else the `"*"` default, with the key it came from."""
        for key in (agent_id, "*"):
            if key in self.agents:
                return key, self.agents[key]
        return None

    def breakers_for(self, agent_id: str) -> AgentBreakers | None:
        """The agent's own breakers, else the `"*"` default; None when neither is set."""
        return self.breakers.get(agent_id, self.breakers.get("*"))

    def eligible_approvers(self, tier: RiskTier) -> set[str]:
        """Listed approvers holding one of the tier's roles (any listed one if it has none)."""
        return {
            name
            for name, approver in self.approvers.items()
            if not tier.roles or set(tier.roles) & set(approver.roles)
        }

    def lookback(self) -> timedelta:
        """How far back the change history handed to `admit` must reach."""
        loops = self.loop_detection
        minutes = max(60, loops.window_minutes, loops.flip_flop_window_minutes)
        return timedelta(minutes=minutes)
