"""Operator actions beyond one change: kill switches and incidents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlmodel import Session

from changegate.models import Control, KillSwitchScope
from changegate.service.changes import ChangeService
from changegate.service.visibility import change_query
from changegate.store import (
    IncidentRecord,
    KillMode,
    KillSwitch,
    close_incident,
    get_incident,
    get_kill_switches,
    list_incidents,
    set_kill_switch,
)

T = TypeVar("T")


@dataclass
class KillSwitchReport:
    """What engaging or releasing a switch did: the changes it reached."""

    scope: KillSwitchScope
    mode: KillMode
    engaged: bool
    reached: list[str] = field(default_factory=list)


def _query(scope: KillSwitchScope) -> str:
    """The running changes a switch with `scope` reaches."""
    return change_query(agent=scope.agent_id, running=True)


class Operations:
    """Kill switches and incidents, on top of a change client and its audit store."""

    def __init__(self, changes: ChangeService) -> None:
        """Act through `changes` (its gate's store is the audit store)."""
        self._changes = changes

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
        control = Control(
            actor=actor, reason=f"kill switch {scope} ({mode}): {reason}", kill_switch=scope
        )
        send = self._changes.pause if mode == "pause" else self._changes.abort
        refs = await self._changes.list(_query(scope), limit=10_000)
        await asyncio.gather(*(send(ref.change_id, control) for ref in refs))
        return KillSwitchReport(scope, mode, True, [ref.change_id for ref in refs])

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
        control = Control(
            actor=actor, reason=f"kill switch {scope} released: {reason}", kill_switch=scope
        )
        refs = await self._changes.list(_query(scope), limit=10_000)
        await asyncio.gather(*(self._changes.resume(ref.change_id, control) for ref in refs))
        return KillSwitchReport(scope, mode, False, [ref.change_id for ref in refs])

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

    async def _in_store(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one store transaction, off the event loop."""
        store = self._changes.gate.store

        def run() -> T:
            with store.session() as session:
                return work(session)

        return await asyncio.to_thread(run)
