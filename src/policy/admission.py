"""Admission: whether a submitted request may start, judged by named rules in a fixed order.

Rules run in the order of `ADMISSION_RULES` and the first refusal is returned:

1. `kill_switch`        an engaged global or per-agent kill switch refuses everything
2. `scope.agent`        the agent has no scope and the policy has no `"*"` default
3. `scope.target`       the target label matches none of the scope's target globs
4. `scope.operation`    the operation matches none of the scope's operations
5. `blast_radius`       the selector lists more `instances` than the scope's `max_units`
6. `freeze_window`      a freeze window on the target is open now
7. `incident_freeze`    an open incident freezes the target: SEV1/SEV2 on the target or
                        anything it depends on, until closed; a restored SEV3/SEV4 on the
                        target itself, for the policy's cooling-off (`changegate.policy.freeze`)
8. `one_active_change`  another change is still running on the target
9. `loop`               the same change (fingerprint) failed too often lately
10. `flip_flop`         the change sets a key back to the value it had before (A -> B -> A)
11. `rate.in_flight`    the agent already has `max_in_flight` changes running
12. `rate.per_hour`     the agent submitted `changes_per_hour` changes in the last hour

The `rate.*` refusals (HTTP 429) carry `retry_after`: for `rate.per_hour` the seconds until
the oldest counted change leaves the hour, for `rate.in_flight` a poll interval.

Before these the gate checks the agent's circuit breakers (`changegate.policy.breakers`):
an open pause or abort refuses with `breaker.<trigger>`, an open throttle with
`rate.breaker.<trigger>` (429, `retry_after`) once the agent used its lower rate.

Absolute stops come first, then what the agent may do at all, then the target's state,
then the history: a refusal then names the most fundamental problem.

Admission never reads the target, so `blast_radius` counts units only where the request
names them: the selector's `instances`. A selector without `instances` touches every unit
of the target, a number only RECON learns; VALIDATE holds that count to the same
`max_units` (finding `blast-radius`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from changegate.models import ChangeRequest
from changegate.models.request import UNIT_FILTER
from changegate.policy.freeze import incident_freezes
from changegate.policy.history import flip_flop_rule, in_flight_rule, loop_rule, per_hour_rule
from changegate.policy.model import Policy
from changegate.policy.state import Admission, AdmissionState, Submission
from changegate.policy.targets import matches_any
from changegate.policy.windows import as_utc, format_utc

Rule = Callable[[Submission], Admission | None]


def admit(
    request: ChangeRequest,
    *,
    policy: Policy,
    now: datetime,
    state: AdmissionState,
    fingerprint: str,
) -> Admission:
    """Run every admission rule in order; the first refusal, or an admission."""
    submission = Submission(
        request=request,
        policy=policy,
        now=as_utc(now),
        state=state,
        fingerprint=fingerprint,
        unit_count=_selected_units(request),
    )
    for _name, rule in ADMISSION_RULES:
        refusal = rule(submission)
        if refusal is not None:
            return refusal
    return Admission.accept()


def _selected_units(request: ChangeRequest) -> int | None:
    """How many units the selector's `instances` names; None when it names none."""
    listed = request.target.selector.get(UNIT_FILTER)
    if listed is None:
        return None
    return len({unit.strip() for unit in listed.split(",") if unit.strip()})


def kill_switch_rule(sub: Submission) -> Admission | None:
    """Refuse while a global or this agent's kill switch is engaged."""
    for switch in sub.state.kill_switches:
        if not switch.engaged or not switch.scope.covers(sub.agent_id):
            continue
        why = f": {switch.reason}" if switch.reason else ""
        if switch.scope.is_global:
            what, instead = "the global kill switch", "no change is admitted until it is released"
        else:
            what = f"the kill switch for {sub.agent_id}"
            instead = f"changes by other agents; {sub.agent_id}'s resume once it is released"
        return Admission.refuse(
            "kill_switch",
            reason=f"{what} is engaged (mode {switch.mode}) by {switch.actor}{why}",
            would_pass=instead,
        )
    return None


def agent_scope_rule(sub: Submission) -> Admission | None:
    """Refuse an agent the policy does not know when there is no `"*"` default."""
    if sub.scope is not None:
        return None
    known = ", ".join(sorted(sub.policy.agents)) or "none"
    return Admission.refuse(
        "scope.agent",
        reason=f"agent {sub.agent_id} has no scope in the policy and there is no '*' default",
        would_pass=f"a change from an agent the policy lists ({known}), "
        f"or a policy entry for {sub.agent_id}",
    )


def target_scope_rule(sub: Submission) -> Admission | None:
    """Refuse a target outside the agent's target globs."""
    if sub.scope is None:
        return None
    _, scope = sub.scope
    if matches_any(sub.label, scope.targets):
        return None
    allowed = ", ".join(scope.targets) or "no targets"
    return Admission.refuse(
        "scope.target",
        reason=f"target {sub.label} is outside {sub.agent_id}'s scope ({allowed}{sub.scope_note})",
        would_pass=f"propose a change on one of: {allowed}",
    )


def operation_scope_rule(sub: Submission) -> Admission | None:
    """Refuse an operation outside the agent's operations."""
    if sub.scope is None:
        return None
    _, scope = sub.scope
    operation = sub.request.change.operation
    if matches_any(operation, scope.operations):
        return None
    allowed = ", ".join(scope.operations) or "no operations"
    return Admission.refuse(
        "scope.operation",
        reason=f"operation {operation} is outside {sub.agent_id}'s scope "
        f"({allowed}{sub.scope_note})",
        would_pass=f"propose one of: {allowed}",
    )


def blast_radius_rule(sub: Submission) -> Admission | None:
    """Refuse a selector listing more `instances` than the agent's `max_units`."""
    if sub.scope is None:
        return None
    _, scope = sub.scope
    limit = scope.max_units
    if limit is None or sub.unit_count is None or sub.unit_count <= limit:
        return None
    return Admission.refuse(
        "blast_radius",
        reason=f"the selector lists {sub.unit_count} instances of {sub.label}; "
        f"{sub.agent_id} may touch at most {limit} units per change{sub.scope_note}",
        would_pass=f"a change listing at most {limit} instances: "
        f"split it into {-(-sub.unit_count // limit)} changes",
    )


def freeze_window_rule(sub: Submission) -> Admission | None:
    """Refuse while a freeze window covering the target is open."""
    open_windows = [
        (window, end)
        for window in sub.policy.freeze_windows
        if window.covers(sub.label) and (end := window.active_until(sub.now)) is not None
    ]
    if not open_windows:
        return None
    window, end = open_windows[0]
    last_end = max(end for _, end in open_windows)
    others = len(open_windows) - 1
    also = f" (and {others} more freeze window(s))" if others else ""
    return Admission.refuse(
        "freeze_window",
        reason=f"freeze window {window.describe()} is active on {sub.label} "
        f"until {format_utc(end)}{also}",
        would_pass=f"the same change submitted after {format_utc(last_end)}",
    )


def incident_freeze_rule(sub: Submission) -> Admission | None:
    """Refuse a change an open incident freezes, by its severity (`changegate.policy.freeze`)."""
    freezes = incident_freezes(
        sub.label,
        policy=sub.policy,
        now=sub.now,
        incidents=sub.state.incidents,
        labels_only=[*sub.state.open_incident_targets, *sub.state.open_incidents],
        ids=sub.state.open_incidents,
    )
    if not freezes:
        return None
    first = freezes[0]
    also = f" (and {len(freezes) - 1} more open incident(s))" if len(freezes) > 1 else ""
    if first.until is None:
        after = f"once {first.incident_id or f'the incident on {first.where}'} is closed"
    else:
        after = f"after {format_utc(first.until)}, or once {first.incident_id} is closed"
    return Admission.refuse(
        "incident_freeze",
        reason=f"{first.describe()}{also}; {first.lasts()}",
        would_pass=f"the same change {after}{first.closing()}",
    )


def one_active_change_rule(sub: Submission) -> Admission | None:
    """Refuse a second running change on the same target, naming the one that holds it."""
    if not sub.policy.one_change_per_target:
        return None
    holder = next(
        (c for c in sub.state.recent_changes if c.active and c.target_label == sub.label),
        None,
    )
    if holder is None:
        return None
    return Admission.refuse(
        "one_active_change",
        reason=f"change {holder.change_id} by {holder.agent_id} is still active on "
        f"{sub.label}; the policy allows one active change per target",
        would_pass=f"the same change after {holder.change_id} ends (or is aborted)",
    )


ADMISSION_RULES: tuple[tuple[str, Rule], ...] = (
    ("kill_switch", kill_switch_rule),
    ("scope.agent", agent_scope_rule),
    ("scope.target", target_scope_rule),
    ("scope.operation", operation_scope_rule),
    ("blast_radius", blast_radius_rule),
    ("freeze_window", freeze_window_rule),
    ("incident_freeze", incident_freeze_rule),
    ("one_active_change", one_active_change_rule),
    ("loop", loop_rule),
    ("flip_flop", flip_flop_rule),
    ("rate.in_flight", in_flight_rule),
    ("rate.per_hour", per_hour_rule),
)
