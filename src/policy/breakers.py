"""Circuit breakers: an agent's kill switch that trips by itself, judged by pure rules.

A breaker watches one trigger of one agent. Admission-time triggers are judged while a
submission is admitted or refused; outcome triggers when a change's outcome is recorded:

| trigger              | counts                                                   | when       |
|----------------------|----------------------------------------------------------|------------|
| `scope_refusals`     | refusals by `scope.*` or `blast_radius` in the window    | admission  |
| `loop_refusals`      | refusals by `loop` or `flip_flop` in the window          | admission  |
| `rate_refusals`      | refusals by `rate.*` in the window                       | admission  |
| `changes_per_day`    | changes admitted in the last 24 hours                    | admission  |
| `units_per_day`      | units changed (applied) in the last 24 hours             | outcome    |
| `failed_changes`     | changes that ended ROLLED_BACK or ROLLBACK_FAILED in the | outcome    |
|                      | window                                                   |            |
| `rollbacks_in_a_row` | the agent's latest changes that wrote, all rolled back   | outcome    |

A trigger fires once its count reaches `count`. Only what happened after the breaker's
last trip or release counts, so one burst trips a breaker once. The response is graduated:
the agent's n-th trip within a day (released or not) takes the n-th entry of `responses`
(the last one repeats), so an agent that offends again after a release is answered harder:

- `throttle`: the agent may submit only `throttle.changes_per_hour` changes an hour
  (refusal `rate.breaker.<trigger>`, HTTP 429 with `retry_after`);
- `pause`: the agent's kill switch is engaged in pause mode, holding its in-flight changes
  at their next safe point, and its submissions are refused (`breaker.<trigger>`);
- `abort`: as pause, with the kill switch in abort mode: in-flight changes roll back.

A breaker stays open until a person releases it; releasing resumes what its pause held.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, JsonValue, model_validator

from changegate.models import Contract, Outcome

BreakerResponse = Literal["throttle", "pause", "abort"]
"""What a trip does, mildest first."""

TriggerName = Literal[
    "scope_refusals",
    "loop_refusals",
    "rate_refusals",
    "changes_per_day",
    "units_per_day",
    "failed_changes",
    "rollbacks_in_a_row",
]

ADMISSION_TRIGGERS: tuple[TriggerName, ...] = (
    "scope_refusals",
    "loop_refusals",
    "rate_refusals",
    "changes_per_day",
)
OUTCOME_TRIGGERS: tuple[TriggerName, ...] = (
    "units_per_day",
    "failed_changes",
    "rollbacks_in_a_row",
)

_REFUSAL_TRIGGERS: dict[TriggerName, str] = {
    "scope_refusals": "scope",
    "loop_refusals": "loop or flip-flop",
    "rate_refusals": "rate",
}
_WINDOWED: frozenset[TriggerName] = frozenset(
    {"scope_refusals", "loop_refusals", "rate_refusals", "failed_changes"}
)
_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)
_SEVERITY = {"throttle": 0, "pause": 1, "abort": 2}
_PAUSE: BreakerResponse = "pause"
FAILED = frozenset({Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED})
WROTE = frozenset({Outcome.DONE, Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED})


def refusal_trigger(rule: str) -> TriggerName | None:
    """The refusal trigger a refusal by `rule` counts toward, if any."""
    if rule.startswith("scope.") or rule == "blast_radius":
        return "scope_refusals"
    if rule in ("loop", "flip_flop"):
        return "loop_refusals"
    if rule.startswith("rate."):
        return "rate_refusals"  # a throttled agent that keeps pushing escalates too
    return None


class Trigger(Contract):
    """When a breaker trips (`count` within `window_minutes`) and what each trip does."""

    count: int = Field(ge=1, le=100_000)
    window_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    responses: list[BreakerResponse] = Field(default_factory=lambda: [_PAUSE], min_length=1)

    @model_validator(mode="after")
    def _graduated(self) -> Trigger:
        ranks = [_SEVERITY[r] for r in self.responses]
        if ranks != sorted(ranks):
            raise ValueError(
                f"responses {self.responses} must grow no milder from one trip to the next "
                "(throttle, then pause, then abort), e.g. [throttle, pause]"
            )
        return self


class Throttle(Contract):
    """The lower rate a `throttle` response holds an agent to."""

    changes_per_hour: int = Field(default=2, ge=1, le=100_000)


class AgentBreakers(Contract):
    """An agent's breakers; an omitted trigger never trips."""

    scope_refusals: Trigger | None = None
    loop_refusals: Trigger | None = None
    rate_refusals: Trigger | None = None
    changes_per_day: Trigger | None = None
    units_per_day: Trigger | None = None
    failed_changes: Trigger | None = None
    rollbacks_in_a_row: Trigger | None = None
    throttle: Throttle = Field(default_factory=Throttle)

    @model_validator(mode="after")
    def _windows(self) -> AgentBreakers:
        problems = []
        for name in (*ADMISSION_TRIGGERS, *OUTCOME_TRIGGERS):
            trigger = self.trigger(name)
            if trigger is None:
                continue
            if name in _WINDOWED and trigger.window_minutes is None:
                problems.append(
                    f"{name}: needs window_minutes (e.g. {{count: 3, window_minutes: 10}})"
                )
            if name not in _WINDOWED and trigger.window_minutes is not None:
                span = "a day" if name.endswith("_per_day") else "the agent's latest changes"
                problems.append(f"{name}: takes no window_minutes; it counts over {span}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def trigger(self, name: TriggerName) -> Trigger | None:
        """The trigger `name`, if configured."""
        found: Trigger | None = getattr(self, name)
        return found


class RefusalSeen(Contract):
    """A stored refusal of the agent, as evidence."""

    refusal_id: int
    rule: str
    at: datetime


class ChangeSeen(Contract):
    """A change of the agent, as evidence; `units` it applied, `outcome` once ended."""

    change_id: str
    submitted_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    units: int = 0


class TripSeen(Contract):
    """An earlier trip of the agent's breakers."""

    trip_id: str
    breaker: TriggerName
    response: BreakerResponse
    at: datetime
    released_at: datetime | None = None

    @property
    def open(self) -> bool:
        """True until a person releases it."""
        return self.released_at is None


class BreakerHistory(Contract):
    """What the triggers read for one agent: refusals, changes, trips, last release."""

    agent_id: str
    refusals: list[RefusalSeen] = Field(default_factory=list)
    changes: list[ChangeSeen] = Field(default_factory=list)
    trips: list[TripSeen] = Field(default_factory=list)
    released_at: datetime | None = None


class Trip(Contract):
    """A breaker that fires: which trigger, what it does, why, and the evidence."""

    trip_id: str
    agent_id: str
    breaker: TriggerName
    response: BreakerResponse
    reason: str
    evidence: list[dict[str, JsonValue]]
    at: datetime

    @property
    def rule(self) -> str:
        """The rule a refusal names while the breaker is open."""
        prefix = "rate.breaker." if self.response == "throttle" else "breaker."
        return prefix + self.breaker

    @property
    def holds(self) -> bool:
        """True when the trip engages the agent's kill switch (pause or abort)."""
        return self.response != "throttle"


def lookback(breakers: AgentBreakers) -> timedelta:
    """How far back the history handed to `evaluate` must reach."""
    minutes = [t.window_minutes or 0 for n in _WINDOWED if (t := breakers.trigger(n))]
    return max([_DAY, *(timedelta(minutes=m) for m in minutes)])


def evaluate(
    breakers: AgentBreakers,
    history: BreakerHistory,
    *,
    triggers: tuple[TriggerName, ...],
    now: datetime,
    trip_id: str,
) -> Trip | None:
    """The first of `triggers` whose count is reached, as a trip; None when none fires.

    Nothing fires while a pause or abort of the agent is open: it is already held.
    """
    if any(t.open and t.response != "throttle" for t in history.trips):
        return None
    for name in triggers:
        trigger = breakers.trigger(name)
        if trigger is None:
            continue
        since = _since(history, name, trigger, now)
        found = _fired(name, trigger, history, since)
        if found is None:
            continue
        reason, evidence = found
        return Trip(
            trip_id=trip_id,
            agent_id=history.agent_id,
            breaker=name,
            response=_response(trigger, history, now),
            reason=reason,
            evidence=evidence,
            at=now,
        )
    return None


def _since(history: BreakerHistory, name: TriggerName, trigger: Trigger, now: datetime) -> datetime:
    """Where counting starts: the window, and never before this breaker's last trip or the
    last release."""
    if name.endswith("_per_day"):
        start = now - _DAY
    elif trigger.window_minutes is not None:
        start = now - timedelta(minutes=trigger.window_minutes)
    else:
        start = datetime.min.replace(tzinfo=now.tzinfo)
    marks = [t.at for t in history.trips if t.breaker == name]
    if history.released_at is not None:
        marks.append(history.released_at)
    return max([start, *marks])


def _response(trigger: Trigger, history: BreakerHistory, now: datetime) -> BreakerResponse:
    """The agent's n-th trip within a day takes the n-th response (the last repeats)."""
    earlier = [t for t in history.trips if t.at > now - _DAY]
    return trigger.responses[min(len(earlier), len(trigger.responses) - 1)]


def _fired(
    name: TriggerName, trigger: Trigger, history: BreakerHistory, since: datetime
) -> tuple[str, list[dict[str, JsonValue]]] | None:
    n = trigger.count
    window = f"{trigger.window_minutes} minutes" if trigger.window_minutes else "a day"
    if name in _REFUSAL_TRIGGERS:
        hits = [r for r in history.refusals if r.at > since and refusal_trigger(r.rule) == name]
        if len(hits) < n:
            return None
        return (
            f"{len(hits)} {_REFUSAL_TRIGGERS[name]} refusals within {window} "
            f"(the breaker trips at {n})",
            [{"refusal_id": r.refusal_id, "rule": r.rule, "at": r.at.isoformat()} for r in hits],
        )
    if name == "changes_per_day":
        hits_c = [c for c in history.changes if c.submitted_at > since]
        if len(hits_c) < n:
            return None
        return (
            f"{len(hits_c)} changes admitted within a day (the budget is {n})",
            [_change(c) for c in hits_c],
        )
    ended = sorted(
        (c for c in history.changes if c.ended_at is not None and c.ended_at > since),
        key=lambda c: c.ended_at or since,
    )
    if name == "units_per_day":
        changed = [c for c in ended if c.units]
        total = sum(c.units for c in changed)
        if total < n:
            return None
        return (
            f"{total} units changed within a day (the budget is {n})",
            [_change(c) for c in changed],
        )
    if name == "failed_changes":
        failed = [c for c in ended if c.outcome in FAILED]
        if len(failed) < n:
            return None
        return (
            f"{len(failed)} changes failed (rolled back) within {window} (the breaker trips "
            f"at {n})",
            [_change(c) for c in failed],
        )
    streak: list[ChangeSeen] = []
    for change in reversed([c for c in ended if c.outcome in WROTE]):
        if change.outcome not in FAILED:
            break
        streak.append(change)
    if len(streak) < n:
        return None
    return (
        f"the agent's last {len(streak)} changes all rolled back (the breaker trips at {n} "
        "in a row)",
        [_change(c) for c in reversed(streak)],
    )


def _change(change: ChangeSeen) -> dict[str, JsonValue]:
    return {
        "change_id": change.change_id,
        "outcome": change.outcome.value if change.outcome else None,
        "units": change.units,
    }


def throttle_refusal(
    trip: TripSeen, *, throttle: Throttle, submitted: list[datetime], now: datetime
) -> tuple[str, str, float] | None:
    """While a throttle is open: (reason, what would pass, retry_after) once the agent has
    submitted `changes_per_hour` changes since the trip within the last hour; else None."""
    start = max(trip.at, now - _HOUR)
    counted = sorted(at for at in submitted if at > start)
    limit = throttle.changes_per_hour
    if len(counted) < limit:
        return None
    frees = counted[len(counted) - limit] + _HOUR
    return (
        f"breaker {trip.breaker} ({trip.trip_id}) throttles this agent to {limit} change(s) "
        f"an hour; it submitted {len(counted)} in the last hour",
        "the same change once the hour frees a slot, or a person releases the breaker "
        "(`changegate breaker release AGENT --reason ...`)",
        max(0.0, (frees - now).total_seconds()),
    )
