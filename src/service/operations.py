"""Operator actions beyond one change: kill switches, circuit breakers and incidents.

Engaging or releasing a switch reaches every running change in its scope: one visibility
query lists them, then the signals go out concurrently, at most `FANOUT_CONCURRENCY` at a
time. After each engage, release and breaker trip the optional `on_event` hook hears of it
(an `OperationEvent`); a failing hook is logged and never undoes the action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, Field, JsonValue
from sqlmodel import Session

from changegate.errors import ChangeNotFound
from changegate.models import Control, KillSwitchScope
from changegate.policy.breakers import Trip
from changegate.redaction import redact_text
from changegate.service.visibility import change_query
from changegate.store import (
    BreakerTripRow,
    IncidentRecord,
    KillMode,
    KillSwitch,
    close_incident,
    get_incident,
    get_kill_switches,
    list_incidents,
    list_trips,
    release_breakers,
    set_kill_switch,
)

if TYPE_CHECKING:
    from changegate.service.changes import ChangeService

__all__ = [
    "FANOUT_CONCURRENCY",
    "BreakerRelease",
    "EventHook",
    "KillSwitchReport",
    "OperationEvent",
    "Operations",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

FANOUT_CONCURRENCY = 50
"""How many changes a kill switch signals at once."""


class OperationEvent(BaseModel):
    """What `on_event` hears: a breaker tripped, or a kill switch was engaged or released."""

    kind: Literal["breaker_tripped", "kill_switch_engaged", "kill_switch_released"]
    scope: str
    """The kill switch's scope: `global` or `agent:<id>`."""
    agent_id: str | None = None
    actor: str
    reason: str = ""
    evidence: list[dict[str, JsonValue]] = Field(default_factory=list)
    """A trip's evidence (refused or failed requests); the changes a switch reached."""
    at: datetime


EventHook = Callable[[OperationEvent], Awaitable[None]]
"""The notifier's entry point: called after every engage, release and trip."""


@dataclass
class KillSwitchReport:
    """What engaging or releasing a switch did: the changes it reached."""

    scope: KillSwitchScope
    mode: KillMode
    engaged: bool
    reached: list[str] = field(default_factory=list)


@dataclass
class BreakerRelease:
    """What releasing an agent's breakers did: the trips released and the changes resumed."""

    agent_id: str
    actor: str
    reason: str
    released: list[BreakerTripRow]
    resumed: list[str] = field(default_factory=list)


class Operations:
    """Kill switches, breakers and incidents, on top of a change client and its store."""

    def __init__(self, changes: ChangeService, *, on_event: EventHook | None = None) -> None:
        """Act through `changes` (its gate's store is the audit store); tell `on_event`."""
        self._changes = changes
        self._on_event = on_event

    async def engage(
        self, scope: str, mode: KillMode, *, actor: str, reason: str
    ) -> KillSwitchReport:
        """Persist the switch, then pause or abort every running change in its scope.

        `scope` is parsed as a `KillSwitchScope` (a ValueError for anything else).
        """
        scope = KillSwitchScope(scope)
        await self._in_store(
            lambda session: set_kill_switch(
                session=session,
                scope=scope,
                mode=mode,
                engaged=True,
                actor=actor,
                reason=reason,
                at=datetime.now(UTC),
            )
        )
        reached = await self._reach(scope, mode, actor=actor, reason=reason)
        await self._tell("kill_switch_engaged", scope, actor=actor, reason=reason, reached=reached)
        return KillSwitchReport(scope, mode, True, reached)

    async def release(self, scope: str, *, actor: str, reason: str) -> KillSwitchReport:
        """Release the switch and resume the changes it paused (`scope` as for `engage`)."""
        scope = KillSwitchScope(scope)

        def persist(session: Session) -> KillMode:
            current = {s.scope: s for s in get_kill_switches(session=session)}.get(scope)
            mode: KillMode = current.mode if current else "pause"  # type: ignore[assignment]
            set_kill_switch(
                session=session,
                scope=scope,
                mode=mode,
                engaged=False,
                actor=actor,
                reason=reason,
                at=datetime.now(UTC),
            )
            return mode

        mode = await self._in_store(persist)
        reached = await self._reach(scope, "resume", actor=actor, reason=reason)
        await self._tell("kill_switch_released", scope, actor=actor, reason=reason, reached=reached)
        return KillSwitchReport(scope, mode, False, reached)

    async def tripped(self, trip: Trip, *, closing: str | None = None) -> list[str]:
        """Hold the agent's running changes as a trip's kill switch says (already engaged in
        the store with the trip); returns the changes reached. A throttle reaches none;
        `closing`, the change whose outcome tripped it, is ending and is left alone."""
        scope = KillSwitchScope.for_agent(trip.agent_id)
        reached: list[str] = []
        if trip.response != "throttle":
            reason = f"breaker {trip.breaker} tripped ({trip.trip_id}): {trip.reason}"
            reached = await self._reach(
                scope, trip.response, actor="breaker", reason=reason, skip=closing
            )
        await self._tell(
            "breaker_tripped",
            scope,
            actor="breaker",
            reason=f"{trip.breaker} ({trip.response}): {trip.reason}",
            evidence=trip.evidence,
            at=trip.at,
        )
        return reached

    async def breakers(
        self, *, agent_id: str | None = None, open_only: bool = False
    ) -> list[BreakerTripRow]:
        """Breaker trips, oldest first; of one agent, or only unreleased ones, when asked."""
        return await self._in_store(
            lambda session: list_trips(session=session, agent_id=agent_id, open_only=open_only)
        )

    async def release_breaker(self, agent_id: str, *, actor: str, reason: str) -> BreakerRelease:
        """Release the agent's open breakers (recorded: who, why, when) and, when one held
        its kill switch, release that too, resuming what the pause held."""
        scope = KillSwitchScope.for_agent(agent_id)
        reason = redact_text(reason)

        def persist(session: Session) -> list[BreakerTripRow]:
            return release_breakers(
                session=session, agent_id=agent_id, actor=actor, reason=reason, at=datetime.now(UTC)
            )

        released = await self._in_store(persist)
        report = BreakerRelease(agent_id, actor, reason, released)
        if any(t.response != "throttle" for t in released):
            switch = await self.release(scope, actor=actor, reason=f"breaker released: {reason}")
            report.resumed = switch.reached
        return report

    async def kill_switches(self) -> list[KillSwitch]:
        """Every switch ever set, engaged or not."""
        return await self._in_store(lambda session: get_kill_switches(session=session))

    async def incidents(self, *, open_only: bool = False) -> list[IncidentRecord]:
        """Incidents, newest first."""
        return await self._in_store(
            lambda session: list_incidents(session=session, open_only=open_only)
        )

    async def incident(self, incident_id: str) -> IncidentRecord | None:
        """One incident by id."""
        return await self._in_store(
            lambda session: get_incident(session=session, incident_id=incident_id)
        )

    async def close_incident(self, incident_id: str) -> IncidentRecord | None:
        """Close an incident, lifting the freeze it put on its target."""
        return await self._in_store(
            lambda session: close_incident(
                session=session, incident_id=incident_id, at=datetime.now(UTC)
            )
        )

    async def _reach(
        self,
        scope: KillSwitchScope,
        action: Literal["pause", "abort", "resume"],
        *,
        actor: str,
        reason: str,
        skip: str | None = None,
    ) -> list[str]:
        """Signal every running change in `scope` but `skip`, `FANOUT_CONCURRENCY` at a time,
        from one visibility query; the changes reached (one that ended meanwhile is passed)."""
        changes = self._changes
        what = "released" if action == "resume" else f"({action})"
        control = Control(
            actor=actor, reason=f"kill switch {scope} {what}: {reason}", kill_switch=scope
        )
        send = {"pause": changes.pause, "abort": changes.abort, "resume": changes.resume}[action]
        refs = await changes.list(change_query(agent=scope.agent_id, running=True), limit=10_000)
        refs = [ref for ref in refs if ref.change_id != skip]
        gate = asyncio.Semaphore(FANOUT_CONCURRENCY)

        async def one(change_id: str) -> None:
            async with gate:
                # One that ended between the query and the signal has nothing to hold.
                with contextlib.suppress(ChangeNotFound):
                    await send(change_id, control)

        await asyncio.gather(*(one(ref.change_id) for ref in refs))
        return [ref.change_id for ref in refs]

    async def _tell(
        self,
        kind: Literal["breaker_tripped", "kill_switch_engaged", "kill_switch_released"],
        scope: KillSwitchScope,
        *,
        actor: str,
        reason: str,
        evidence: list[dict[str, JsonValue]] | None = None,
        reached: list[str] | None = None,
        at: datetime | None = None,
    ) -> None:
        if self._on_event is None:
            return
        event = OperationEvent(
            kind=kind,
            scope=str(scope),
            agent_id=scope.agent_id,
            actor=actor,
            reason=reason,
            evidence=evidence
            if evidence is not None
            else [{"change_id": c} for c in reached or []],
            at=at or datetime.now(UTC),
        )
        try:
            await self._on_event(event)
        except Exception:
            log.exception("on_event hook failed for %s on %s", kind, scope)

    async def _in_store(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one store transaction, off the event loop."""
        store = self._changes.gate.store

        def run() -> T:
            with store.session() as session:
                return work(session)

        return await asyncio.to_thread(run)
