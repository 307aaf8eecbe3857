"""Repository functions for API tokens: issued once in plaintext, kept only as a sha256."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from sqlmodel import Session, col, select

from changegate.store.tables import TokenRow

Role = Literal["agent", "approver", "admin"]
"""What a token may do: submit changes, decide on them, or run the service."""

_PREFIX = "cg_"


def token_hash(token: str) -> str:
    """The sha256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    *,
    session: Session,
    name: str,
    role: Role,
    agent_id: str | None = None,
    roles: Iterable[Role] = (),
    at: datetime | None = None,
) -> str:
    """Issue a token and return its plaintext, which is not stored and cannot be shown again.

    `roles` lists what the token may do besides `role`; the stored list holds both.
    """
    if role == "agent" and agent_id is None:
        raise ValueError(
            f"token {name!r} has role 'agent' but no agent_id; an agent token acts as "
            "exactly one agent, so pass the agent_id it is for"
        )
    token = _PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        token_id="tok-" + secrets.token_hex(8),
        name=name,
        role=role,
        agent_id=agent_id,
        roles=list(dict.fromkeys([role, *roles])),
        hash=token_hash(token),
        created_at=at or datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return token


def verify_token(*, session: Session, token: str) -> TokenRow | None:
    """The token's row if it was issued and is not revoked, else None."""
    statement = select(TokenRow).where(
        TokenRow.hash == token_hash(token), col(TokenRow.revoked).is_(False)
    )
    return session.exec(statement).first()


def revoke_token(*, session: Session, token_id: str) -> bool:
    """Revoke a token for good; False when there is no such token."""
    row = session.get(TokenRow, token_id)
    if row is None:
        return False
    row.revoked = True
    session.add(row)
    session.flush()
    return True


def list_tokens(*, session: Session) -> list[TokenRow]:
    """Every token issued, oldest first; hashes only, never plaintext."""
    statement = select(TokenRow).order_by(col(TokenRow.created_at), col(TokenRow.token_id))
    return list(session.exec(statement))
