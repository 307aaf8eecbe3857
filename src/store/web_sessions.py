"""Repository functions for the approval page's sessions: the cookie's secret is never stored.

A session is a random id the browser holds in its cookie; the store keeps only the id's
sha256, the token the browser logged in with, an expiry and the messages for its next
page. A session counts only while its token is unrevoked, so revoking a token ends its
sessions; logging out deletes the row. Any API process on the same store reads the same
sessions, so they outlive a restart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from changegate.store.tables import TokenRow, WebSessionRow

__all__ = [
    "add_flash",
    "close_web_session",
    "find_web_session",
    "open_web_session",
    "take_flash",
]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_web_session(*, session: Session, token_id: str, at: datetime, ttl: timedelta) -> str:
    """Start a session for the token `token_id`; returns its id, which is not stored.

    Sessions already expired are deleted on the way, so the table holds live ones only.
    """
    session.exec(delete(WebSessionRow).where(col(WebSessionRow.expires_at) <= at))
    session_id = secrets.token_urlsafe(32)
    session.add(
        WebSessionRow(
            id_hash=_hash(session_id), token_id=token_id, created_at=at, expires_at=at + ttl
        )
    )
    session.flush()
    return session_id


def find_web_session(
    *, session: Session, session_id: str, at: datetime
) -> tuple[WebSessionRow, TokenRow] | None:
    """The unexpired session with this id and its unrevoked token, else None."""
    statement = (
        select(WebSessionRow, TokenRow)
        .join(TokenRow, col(WebSessionRow.token_id) == col(TokenRow.token_id))
        .where(
            WebSessionRow.id_hash == _hash(session_id),
            col(WebSessionRow.expires_at) > at,
            col(TokenRow.revoked).is_(False),
        )
    )
    found = session.exec(statement).first()
    return None if found is None else (found[0], found[1])


def close_web_session(*, session: Session, session_id: str) -> bool:
    """End a session for good (logout); False when there was none."""
    row = session.get(WebSessionRow, _hash(session_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def add_flash(*, session: Session, session_id: str, kind: str, message: str) -> None:
    """Queue a message (`ok` or `refused`) for the next page the session loads."""
    row = session.get(WebSessionRow, _hash(session_id))
    if row is not None:
        row.flash = [*row.flash, [kind, message]]
        session.add(row)
        session.flush()


def take_flash(*, session: Session, session_id: str) -> list[tuple[str, str]]:
    """The queued messages, emptying the queue."""
    row = session.get(WebSessionRow, _hash(session_id))
    if row is None or not row.flash:
        return []
    messages = [(kind, text) for kind, text in row.flash]
    row.flash = []
    session.add(row)
    session.flush()
    return messages
