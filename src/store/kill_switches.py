"""Repository functions for kill switches: a global stop and one per agent."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from changegate.models import KillSwitchScope
from changegate.store.tables import KillSwitch, table_of
from changegate.store.upsert import upsert

KillMode = Literal["pause", "abort"]
"""What an engaged switch does to in-flight changes."""

GLOBAL_SCOPE = KillSwitchScope.GLOBAL
"""The global switch's scope (`KillSwitchScope.GLOBAL`, kept for the store's exports)."""

agent_scope = KillSwitchScope.for_agent
"""The scope of one agent's switch (`KillSwitchScope.for_agent`, kept for the store's exports)."""


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
    """Engage or release the switch of `scope`, recording who did it and why.

    `scope` is parsed as a `KillSwitchScope`: anything else is a ValueError.
    """
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
        row={"scope": str(KillSwitchScope(scope)), **values},
        keys=["scope"],
        update=values,
    )


def get_kill_switches(*, session: Session) -> list[KillSwitch]:
    """Every switch ever set, engaged or not, global first."""
    statement = select(KillSwitch).order_by(
        col(KillSwitch.scope) != str(KillSwitchScope.GLOBAL), col(KillSwitch.scope)
    )
    return list(session.exec(statement))


def active_kill_switch_for(*, session: Session, agent_id: str) -> KillSwitch | None:
    """The engaged switch that stops this agent: the global one first, then its own."""
    for scope in (KillSwitchScope.GLOBAL, KillSwitchScope.for_agent(agent_id)):
        switch = session.get(KillSwitch, str(scope))
        if switch is not None and switch.engaged:
            return switch
    return None
