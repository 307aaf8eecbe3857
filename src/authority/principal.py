"""Who a verified token stands for, and the one rule for what it may do and for whom.

A token's `role` and extra `roles` grant capabilities: `agent` proposes and reads its own
agent's changes, `approver` decides on, controls and reads every change, `admin` may do
everything. Other entries in `roles` (such as `sre`) are descriptive: policy judges
approvers by name. The HTTP API and the MCP server both ask this class, so a token means
the same at either door.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Capability = Literal["agent", "approver", "admin"]
"""What a token may do; an admin token holds every capability."""

CAPABILITIES: frozenset[str] = frozenset({"agent", "approver", "admin"})


class IssuedToken(Protocol):
    """What a stored token row tells about its holder (the store's `TokenRow`)."""

    @property
    def token_id(self) -> str:
        """The token's public id."""

    @property
    def name(self) -> str:
        """The holder's name: the identity every action records."""

    @property
    def role(self) -> str:
        """The token's main role."""

    @property
    def agent_id(self) -> str | None:
        """The agent the token is issued for, if any."""

    @property
    def roles(self) -> Sequence[str]:
        """Every role the token holds, its main one included."""


@dataclass(frozen=True)
class Principal:
    """The holder of a verified token: its name is the identity every action records.

    The rule, in one place: `can(c)` holds when the token grants `c`, and an admin token
    grants every capability. `acts_for(agent_id)` holds for an admin token whatever agent
    it names (one bound to an agent may still act for any other), and for any other token
    only when it was issued for exactly that `agent_id`. `reads(agent_id)` adds approvers,
    who read every agent's changes.
    """

    token_id: str
    name: str
    role: str
    agent_id: str | None
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, row: IssuedToken) -> Principal:
        """The principal behind a stored token row."""
        return cls(
            token_id=row.token_id,
            name=row.name,
            role=row.role,
            agent_id=row.agent_id,
            roles=tuple(row.roles),
        )

    @property
    def capabilities(self) -> frozenset[str]:
        """What the token grants: its role and any capability listed among its roles."""
        return frozenset({self.role, *self.roles}) & CAPABILITIES

    def can(self, capability: Capability) -> bool:
        """True when the token grants `capability` (an admin token grants every one)."""
        return "admin" in self.capabilities or capability in self.capabilities

    def acts_for(self, agent_id: str) -> bool:
        """Whether the token may propose, and read, changes as agent `agent_id`."""
        return self.can("admin") or (self.agent_id is not None and self.agent_id == agent_id)

    def reads(self, agent_id: str) -> bool:
        """Whether the token may read changes and incidents of agent `agent_id`."""
        return self.can("approver") or self.acts_for(agent_id)

    @property
    def label(self) -> str:
        """`alice (approver)`: how refusals and pages name the caller."""
        return f"{self.name} ({self.role})"


__all__ = ["CAPABILITIES", "Capability", "IssuedToken", "Principal"]
