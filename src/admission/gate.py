"""Admission: the one function every entry point calls before a change may run.

It redacts the request, refuses secrets in parameters, reads what policy needs from the
audit store (recent and active changes, open incidents, kill switches), applies every
admission rule, and records the outcome: a refusal in the store's refusals, an admitted
change as a row that reserves its target until the change ends.

The read, the judgement and the write are one transaction holding the store's admission
lock, so concurrent submissions (other threads, other API processes) are judged one after
another, each seeing the changes admitted before it: one active change per target and the
rate limits hold however submissions interleave.

The agent's circuit breakers (`changegate.policy.breakers`) are judged in the same
transaction: an open breaker refuses first (`breaker.<trigger>`, or `rate.breaker.<trigger>`
while it throttles); a refusal is recorded and then counted by the refusal triggers; an
admission is first held to the `changes_per_day` budget. A trip is written with its kill
switch and incident before the transaction commits, and rides out on `AdmissionRefused.trip`
so the front door can hold the agent's in-flight changes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlmodel import Session

from changegate.admission.breakers import open_breaker_refusal, trip_breaker
from changegate.errors import ChangegateError, InvalidChange, InvalidTarget
from changegate.models import ChangeRequest, IncidentSeverity, Outcome, Stage, Target
from changegate.observability.metrics import admission_refused
from changegate.policy import (
    Admission,
    AdmissionState,
    KillSwitch,
    OpenIncident,
    Policy,
    RecentChange,
    admit,
)
from changegate.policy.breakers import ADMISSION_TRIGGERS, TriggerName, Trip
from changegate.redaction import redact_request
from changegate.store import (
    ChangeRow,
    Store,
    fingerprint,
    get_kill_switches,
    list_incidents,
    locked_session,
    record_refusal,
    upsert_change,
)
from changegate.store.changes import admission_history


class AdmissionRefused(ChangegateError):
    """A submission a rule refused: which rule, why, what would pass, and when to retry."""

    def __init__(self, admission: Admission, *, trip: Trip | None = None) -> None:
        """Carry the refusal; `retry_after` (seconds) is set for every 429 (`rate.*`) rule;
        `trip` is the breaker this submission tripped, if it did."""
        self.rule = admission.rule or "unknown"
        self.reason = admission.reason
        self.would_pass = admission.would_pass
        self.retry_after = admission.retry_after
        self.trip = trip
        super().__init__(f"refused by rule {self.rule}: {self.reason}; {self.would_pass}")


class Gate:
    """Admits or refuses change requests against a policy and the audit store."""

    def __init__(
        self,
        *,
        store: Store,
        policy: Policy,
        resolve: Callable[[Target], Target] | None = None,
        validate: Callable[[ChangeRequest], ChangeRequest] | None = None,
    ) -> None:
        """Judge by `policy`, with history from `store`, on targets `resolve` makes canonical;
        `validate` (the kind registry's) does that and also checks the change against its kind.
        """
        self.store = store
        self.policy = policy
        self._resolve = resolve
        self._validate = validate

    def admit(self, request: ChangeRequest, *, change_id: str, now: datetime) -> ChangeRequest:
        """The redacted request on its canonical target, reserved under `change_id`; or
        `AdmissionRefused` (recorded in the store's refusals either way)."""
        request, refused = self._canonical(request)
        redacted = redact_request(request)
        agent_id = redacted.agent.agent_id
        trip: Trip | None = None
        with self._transaction() as session:
            admission = refused or self._judge(request, redacted, session=session, now=now)
            if admission.admitted:
                trip = self._trip(session, agent_id, ("changes_per_day",), now)
                if trip is not None:
                    admission = Admission.refuse(
                        trip.rule,
                        reason=f"breaker {trip.breaker} tripped for {agent_id}: {trip.reason}",
                        would_pass=_after_trip(trip),
                    )
            if not admission.admitted:
                record_refusal(
                    session=session,
                    request=redacted,
                    rule=admission.rule or "unknown",
                    reason=admission.reason,
                    would_pass=admission.would_pass,
                    at=now,
                )
                if trip is None:
                    trip = self._trip(session, agent_id, _REFUSAL_TRIGGERS, now)
                    if trip is not None:
                        admission = _tripped(admission, trip)
            else:
                upsert_change(
                    session=session,
                    change_id=change_id,
                    request=redacted,
                    stage=Stage.RECON,
                    at=now,
                )
        if not admission.admitted:
            admission_refused(admission.rule or "unknown")
            raise AdmissionRefused(admission, trip=trip)
        return redacted

    def _trip(
        self, session: Session, agent_id: str, triggers: tuple[TriggerName, ...], now: datetime
    ) -> Trip | None:
        return trip_breaker(
            session=session, policy=self.policy, agent_id=agent_id, triggers=triggers, now=now
        )

    def judge(self, request: ChangeRequest, *, now: datetime) -> tuple[ChangeRequest, Admission]:
        """What `admit` would answer now, recording and reserving nothing (a dry run): the
        redacted request (on its canonical target when its kind accepts it) and the verdict."""
        request, refused = self._canonical(request)
        redacted = redact_request(request)
        if refused is not None:
            return redacted, refused
        with self.store.session() as session:
            return redacted, self._judge(request, redacted, session=session, now=now)

    def _canonical(self, request: ChangeRequest) -> tuple[ChangeRequest, Admission | None]:
        """The request on its canonical target, or the refusal its kind gives it."""
        try:
            if self._validate is not None:
                return self._validate(request), None
            if self._resolve is not None:
                return request.model_copy(update={"target": self._resolve(request.target)}), None
        except (InvalidTarget, InvalidChange) as exc:
            return request, Admission.refuse(exc.rule, reason=exc.reason, would_pass=exc.would_pass)
        return request, None

    def withdraw(self, request: ChangeRequest, *, change_id: str, now: datetime) -> None:
        """Release the reservation of a change that could not be started."""
        with self.store.session() as session:
            upsert_change(
                session=session,
                change_id=change_id,
                request=request,
                stage=Stage.ENDED,
                outcome=Outcome.BLOCKED,
                at=now,
            )

    def _transaction(self) -> AbstractContextManager[Session]:
        return locked_session(self.store)

    def _judge(
        self, request: ChangeRequest, redacted: ChangeRequest, *, session: Session, now: datetime
    ) -> Admission:
        breaker = open_breaker_refusal(
            session=session, policy=self.policy, agent_id=redacted.agent.agent_id, now=now
        )
        if breaker is not None:
            return breaker
        if redacted.change.parameters != request.change.parameters:
            return Admission.refuse(
                "secrets.parameters",
                reason="change.parameters carry a secret (a token, key or password); "
                "workflow history is visible to every engineer",
                would_pass="pass a reference the provider resolves (e.g. a vault path) "
                "instead of the secret itself",
            )
        state = self._state(redacted, session=session, now=now)
        return admit(
            redacted,
            policy=self.policy,
            now=now,
            state=state,
            fingerprint=fingerprint(redacted),
        )

    def _state(self, request: ChangeRequest, *, session: Session, now: datetime) -> AdmissionState:
        # Only the changes the rules read for this request: its target's, its fingerprint's
        # and, when they reach a limit, its agent's (indexed queries, not every recent row).
        scope = self.policy.scope_for(request.agent.agent_id)
        rows = admission_history(
            session=session,
            agent_id=request.agent.agent_id,
            target_label=request.target.label(),
            fingerprint=fingerprint(request),
            since=now - self.policy.lookback(),
            agent_since=now - timedelta(hours=1),
            in_flight_limit=scope[1].max_in_flight if scope else None,
            per_hour_limit=scope[1].changes_per_hour if scope else None,
        )
        return AdmissionState(
            recent_changes=[_recent(row) for row in rows],
            incidents=read_open_incidents(session=session),
            kill_switches=[
                KillSwitch(
                    scope=s.scope,
                    mode=s.mode,
                    engaged=s.engaged,
                    actor=s.actor,
                    reason=s.reason,
                )
                for s in get_kill_switches(session=session)
            ],
        )


_REFUSAL_TRIGGERS = tuple(t for t in ADMISSION_TRIGGERS if t != "changes_per_day")
"""The triggers a recorded refusal counts toward."""


def _after_trip(trip: Trip) -> str:
    if trip.response == "throttle":
        return "fewer changes: the breaker now throttles this agent until a person releases it"
    return (
        f"nothing from {trip.agent_id} until a person releases the breaker "
        f"(`changegate breaker release {trip.agent_id} --reason ...`)"
    )


def _tripped(admission: Admission, trip: Trip) -> Admission:
    """The refusal that tripped a breaker, saying so."""
    what = {"throttle": "throttled", "pause": "paused", "abort": "stopped"}[trip.response]
    return admission.model_copy(
        update={
            "reason": f"{admission.reason}; this refusal tripped breaker {trip.breaker} "
            f"({trip.reason}): {trip.agent_id} is {what} (rule {trip.rule})",
            "would_pass": f"{admission.would_pass}; then {_after_trip(trip)}",
        }
    )


def _recent(row: ChangeRow) -> RecentChange:
    return RecentChange(
        change_id=row.change_id,
        agent_id=row.agent_id,
        target_label=row.target_label,
        fingerprint=row.fingerprint,
        parameters=row.request.get("change", {}).get("parameters", {}),
        outcome=Outcome(row.outcome) if row.outcome else None,
        submitted_at=row.submitted_at,
    )


def read_open_incidents(*, session: Session) -> list[OpenIncident]:
    """Every open incident as the freeze rule judges it: target, severity, restored, age."""
    return [
        OpenIncident(
            incident_id=i.incident_id,
            target_label=i.target_label,
            severity=IncidentSeverity(i.severity),
            restored=i.data.get("restored") is True,
            opened_at=i.opened_at,
        )
        for i in list_incidents(session=session, open_only=True)
    ]
