"""Admission rules read from the change history: loops, flip-flops and the agent's budgets.

Loop: the request's fingerprint ended ROLLED_BACK, REJECTED, ROLLBACK_FAILED or BLOCKED
at least `loop_detection.max_repeats` times within `loop_detection.window_minutes`.

Flip-flop: for some parameter key K the request sets to A, the last two changes on the same
target that completed (outcome DONE) and set K, both within `flip_flop_window_minutes`, set
it to A and then to B != A. The request would undo the latest change: A -> B -> A.
"""

from __future__ import annotations

from datetime import timedelta

from changegate.models import Outcome
from changegate.policy.state import Admission, RecentChange, Submission
from changegate.policy.windows import format_utc

FAILED_OUTCOMES = frozenset(
    {Outcome.ROLLED_BACK, Outcome.REJECTED, Outcome.ROLLBACK_FAILED, Outcome.BLOCKED}
)
_HOUR = timedelta(hours=1)

IN_FLIGHT_POLL_SECONDS = 30.0
"""The `retry_after` of `rate.in_flight`: when a running change ends is unknowable, so poll."""


def loop_rule(sub: Submission) -> Admission | None:
    """Refuse a change that already failed `max_repeats` times within the window."""
    limits = sub.policy.loop_detection
    failures = [
        c
        for c in sub.since(limits.window_minutes)
        if c.fingerprint == sub.fingerprint and c.outcome in FAILED_OUTCOMES
    ]
    if len(failures) < limits.max_repeats:
        return None
    listed = ", ".join(f"{c.change_id} {c.outcome}" for c in failures)
    window = timedelta(minutes=limits.window_minutes)
    clears = failures[len(failures) - limits.max_repeats].submitted_at + window
    return Admission.refuse(
        "loop",
        reason=f"this change (fingerprint {sub.fingerprint}) already failed {len(failures)} "
        f"times in the last {limits.window_minutes} minutes ({listed}); the policy stops "
        f"a change after {limits.max_repeats} failures",
        would_pass="a different change that addresses why those failed, "
        f"or the same change after {format_utc(clears)}",
    )


def flip_flop_rule(sub: Submission) -> Admission | None:
    """Refuse setting a key back to the value the latest completed change moved it from."""
    minutes = sub.policy.loop_detection.flip_flop_window_minutes
    done = [
        c for c in sub.since(minutes) if c.target_label == sub.label and c.outcome == Outcome.DONE
    ]
    for key, value in sub.request.change.parameters.items():
        setters = [c for c in done if key in c.parameters]
        if len(setters) < 2:
            continue
        first, last = setters[-2], setters[-1]
        before, after = first.parameters[key], last.parameters[key]
        if before != value or after == value:
            continue
        leaves = first.submitted_at + timedelta(minutes=minutes)
        return Admission.refuse(
            "flip_flop",
            reason=f"{key} on {sub.label} would flip back to {value!r}: within the last "
            f"{minutes} minutes {first.change_id} set it to {before!r}, then "
            f"{last.change_id} set it to {after!r} (A -> B -> A)",
            would_pass=f"keep {key} at {after!r} or choose a value other than {before!r}, "
            f"or the same change after {format_utc(leaves)}",
        )
    return None


def in_flight_rule(sub: Submission) -> Admission | None:
    """Refuse when the agent already has `max_in_flight` changes running."""
    limit = sub.scope[1].max_in_flight if sub.scope else None
    running = [c for c in sub.state.recent_changes if c.active and c.agent_id == sub.agent_id]
    if limit is None or len(running) < limit:
        return None
    ids = _ids(running)
    return Admission.refuse(
        "rate.in_flight",
        reason=f"{sub.agent_id} already has {len(running)} changes in flight ({ids}); "
        f"at most {limit} may run at once{sub.scope_note}; when one ends cannot be known, so "
        f"retry_after is a poll interval ({IN_FLIGHT_POLL_SECONDS:g} s), not a promise",
        would_pass=f"the same change once one of {ids} ends",
        retry_after=IN_FLIGHT_POLL_SECONDS,
    )


def per_hour_rule(sub: Submission) -> Admission | None:
    """Refuse when the agent submitted `changes_per_hour` changes within the last hour."""
    limit = sub.scope[1].changes_per_hour if sub.scope else None
    mine = [c for c in sub.since(60) if c.agent_id == sub.agent_id]
    if limit is None or len(mine) < limit:
        return None
    frees = mine[len(mine) - limit]
    leaves = frees.submitted_at + _HOUR
    return Admission.refuse(
        "rate.per_hour",
        reason=f"{sub.agent_id} submitted {len(mine)} changes in the last hour; "
        f"the limit is {limit} per hour{sub.scope_note}",
        would_pass=f"the same change after {format_utc(leaves)}, "
        f"when {frees.change_id} leaves the hour",
        retry_after=max(0.0, (leaves - sub.now).total_seconds()),
    )


def _ids(changes: list[RecentChange]) -> str:
    return ", ".join(c.change_id for c in changes)
