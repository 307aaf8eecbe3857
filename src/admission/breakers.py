"""Circuit breakers against the audit store: read an agent's history, judge, record a trip.

Called inside the caller's transaction (the gate's locked one at admission, the
`close_change` activity's when an outcome is recorded), so a trip is judged on the same
rows its evidence names and written with them: the trip, the agent's kill switch and the
`agent-guardrail-breach` incident (`changegate.store.open_breaker`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session

from changegate.admission.breach import breach_incident
from changegate.models import Outcome
from changegate.observability import breaker_tripped
from changegate.policy import Admission, Policy
from changegate.policy.breakers import (
    BreakerHistory,
    ChangeSeen,
    RefusalSeen,
    TriggerName,
    Trip,
    TripSeen,
    evaluate,
    lookback,
    throttle_refusal,
)
from changegate.store import (
    applied_units,
    changes_of,
    last_release,
    list_trips,
    open_breaker,
    refusals_of,
)

__all__ = ["open_breaker_refusal", "read_history", "trip_breaker"]


def read_history(
    *, session: Session, policy: Policy, agent_id: str, now: datetime
) -> BreakerHistory:
    """Everything the agent's triggers read, as far back as its breakers look."""
    breakers = policy.breakers_for(agent_id)
    since = now - lookback(breakers) if breakers else now
    changes = changes_of(session=session, agent_id=agent_id, since=since)
    units = applied_units(session=session, change_ids=[c.change_id for c in changes])
    return BreakerHistory(
        agent_id=agent_id,
        refusals=[
            RefusalSeen(refusal_id=r.id or 0, rule=r.rule, at=r.at)
            for r in refusals_of(session=session, agent_id=agent_id, since=since)
        ],
        changes=[
            ChangeSeen(
                change_id=c.change_id,
                submitted_at=c.submitted_at,
                ended_at=c.ended_at,
                outcome=Outcome(c.outcome) if c.outcome else None,
                units=units.get(c.change_id, 0),
            )
            for c in changes
        ],
        trips=[
            TripSeen(
                trip_id=t.trip_id,
                breaker=t.breaker,
                response=t.response,
                at=t.at,
                released_at=t.released_at,
            )
            for t in {
                row.trip_id: row
                for row in list_trips(session=session, agent_id=agent_id, open_only=True)
                + list_trips(session=session, agent_id=agent_id, since=since)
            }.values()
        ],
        released_at=last_release(session=session, agent_id=agent_id),
    )


def open_breaker_refusal(
    *, session: Session, policy: Policy, agent_id: str, now: datetime
) -> Admission | None:
    """The refusal an open breaker of the agent gives its next submission, if any.

    A pause or abort refuses everything (`breaker.<trigger>`); a throttle refuses once the
    agent used its lower rate (`rate.breaker.<trigger>`, with `retry_after`).
    """
    open_trips = list_trips(session=session, agent_id=agent_id, open_only=True)
    holding = [t for t in open_trips if t.response != "throttle"]
    if holding:
        trip = holding[-1]
        return Admission.refuse(
            f"breaker.{trip.breaker}",
            reason=f"breaker {trip.breaker} tripped for {agent_id} at "
            f"{trip.at.isoformat()} ({trip.trip_id}, {trip.response}): {trip.reason}; "
            f"see incident {trip.incident_id}",
            would_pass=f"any change once a person releases the breaker "
            f"(`changegate breaker release {agent_id} --reason ...` or "
            f"POST /api/v1/breakers/{agent_id}/release); an agent cannot release it",
        )
    breakers = policy.breakers_for(agent_id)
    if not open_trips or breakers is None:
        return None
    trip = open_trips[-1]
    seen = TripSeen(
        trip_id=trip.trip_id,
        breaker=trip.breaker,
        response="throttle",
        at=trip.at,
    )
    submitted = [
        c.submitted_at
        for c in changes_of(session=session, agent_id=agent_id, since=trip.at)
        if c.submitted_at > trip.at
    ]
    found = throttle_refusal(seen, throttle=breakers.throttle, submitted=submitted, now=now)
    if found is None:
        return None
    reason, would_pass, retry_after = found
    return Admission.refuse(
        f"rate.breaker.{trip.breaker}",
        reason=reason,
        would_pass=would_pass,
        retry_after=retry_after,
    )


def trip_breaker(
    *,
    session: Session,
    policy: Policy,
    agent_id: str,
    triggers: tuple[TriggerName, ...],
    now: datetime,
    trip_id: str | None = None,
) -> Trip | None:
    """Judge `triggers` on the agent's history; a trip that fires is recorded (with its kill
    switch and incident) and returned. `trip_id` makes a retried caller's trip the same one.
    """
    breakers = policy.breakers_for(agent_id)
    if breakers is None:
        return None
    history = read_history(session=session, policy=policy, agent_id=agent_id, now=now)
    trip = evaluate(
        breakers,
        history,
        triggers=triggers,
        now=now,
        trip_id=trip_id or f"brk-{uuid.uuid4().hex[:12]}",
    )
    if trip is None:
        return None
    open_breaker(
        session=session,
        trip=trip.model_dump(mode="python"),
        incident=breach_incident(trip),
        mode=None if trip.response == "throttle" else trip.response,
    )
    breaker_tripped(agent=trip.agent_id, trigger=trip.breaker)
    return trip
