"""Repository functions for kill switches: a global stop and one per agent."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from changegate.store.tables import KillSwitch, table_of
from changegate.store.upsert import upsert

KillMode = Literal["pause", "abort"]
"""What an engaged switch does to in-flight changes."""

GLOBAL_SCOPE = "global"


def agent_scope(agent_id: str) -> str:
    """The scope of one agent's kill switch: `agent:<id>`."""
    return f"agent:{agent_id}"


def _check_scope(scope: str) -> None:
    if scope == GLOBAL_SCOPE or (scope.startswith("agent:") and len(scope) > len("agent:")):
        return
    raise ValueError(f"kill switch scope {scope!r} is neither 'global' nor 'agent:<agent id>'")


def set_kill_switch(
    *,
    session: Session,
    scope: str,
    mode: KillMode,
    engaged: bool,
    actor: str,
    reason: str = "",
    at: datetime,
) -> None:
    """Engage or release the switch of `scope`, recording who did it and why."""
    _check_scope(scope)
    values = {
        "mode": mode,
        "engaged": engaged,
        "actor": actor,
        "reason": reason,
        "updated_at": at,
    }
    upsert(
        session=session,
        table=table_of(KillSwitch),
        row={"scope": scope, **values},
        keys=["scope"],
        update=values,
    )


def get_kill_switches(*, session: Session) -> list[KillSwitch]:
    """Every switch ever set, engaged or not, global first."""
    statement = select(KillSwitch).order_by(
        col(KillSwitch.scope) != GLOBAL_SCOPE, col(KillSwitch.scope)
    )
    return list(session.exec(statement))


def active_kill_switch_for(*, session: Session, agent_id: str) -> KillSwitch | None:
    """The engaged switch that stops this agent: the global one first, then its own."""
    for scope in (GLOBAL_SCOPE, agent_scope(agent_id)):
        switch = session.get(KillSwitch, scope)
        if switch is not None and switch.engaged:
            return switch
    return None
