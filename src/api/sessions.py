"""Web sessions for the approval page: kept in the audit store, each with its CSRF token.

The browser holds a random session id in an HttpOnly, SameSite=Strict cookie (Secure with
`cookie_secure`); the store keeps only the id's sha256 and the id of the token the browser
logged in with, never the token or the cookie itself. Every request looks the session up
with its token, so a revoked token ends its sessions, logging out deletes the row, and a
session outlives a restart of the API (or is served by another API process on the same
store). The CSRF token is derived from the session id, one way: a page shows it, but it
reveals nothing of the cookie. Every form, logout included, carries it, compared in
constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from changegate.authority import Principal
from changegate.store import Store
from changegate.store.web_sessions import (
    add_flash,
    close_web_session,
    find_web_session,
    open_web_session,
    take_flash,
)

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "SESSION_TTL_SECONDS", "WebSession", "WebSessions"]

SESSION_COOKIE = "changegate_session"
LOGIN_COOKIE = "changegate_login"
SESSION_TTL_SECONDS = 12 * 3600


@dataclass(frozen=True)
class WebSession:
    """One logged-in browser: its session id, who it is, and messages waiting for it."""

    session_id: str
    principal: Principal
    pending_flash: bool = field(default=False, compare=False)

    @property
    def csrf(self) -> str:
        """The CSRF token every form of this session carries."""
        return hmac.new(self.session_id.encode(), b"changegate.csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, submitted: str | None) -> bool:
        """True when a form's CSRF field matches this session's token."""
        return submitted is not None and hmac.compare_digest(submitted, self.csrf)


class WebSessions:
    """The approval page's sessions in the audit store; every call runs off the event loop."""

    def __init__(self, *, ttl: float = SESSION_TTL_SECONDS) -> None:
        """Sessions expire `ttl` seconds after login."""
        self._ttl = timedelta(seconds=ttl)

    async def open(self, store: Store, principal: Principal) -> str:
        """Start a session for a verified principal; returns the id for the cookie."""

        def opened() -> str:
            with store.session() as session:
                return open_web_session(
                    session=session,
                    token_id=principal.token_id,
                    at=datetime.now(UTC),
                    ttl=self._ttl,
                )

        return await asyncio.to_thread(opened)

    async def get(self, store: Store, session_id: str | None) -> WebSession | None:
        """The live session with this id whose token is unrevoked, else None."""
        if not session_id or len(session_id) > 200:
            return None

        def found() -> WebSession | None:
            with store.session() as session:
                hit = find_web_session(session=session, session_id=session_id, at=datetime.now(UTC))
            if hit is None:
                return None
            row, token = hit
            return WebSession(session_id, Principal.of(token), pending_flash=bool(row.flash))

        return await asyncio.to_thread(found)

    async def close(self, store: Store, session_id: str | None) -> None:
        """End a session (logout); nothing happens for an unknown id."""
        if not session_id:
            return

        def closed() -> None:
            with store.session() as session:
                close_web_session(session=session, session_id=session_id)

        await asyncio.to_thread(closed)

    async def say(self, store: Store, web: WebSession, kind: str, message: str) -> None:
        """Queue a message (`ok` or `refused`) for the next page this session loads."""

        def added() -> None:
            with store.session() as session:
                add_flash(session=session, session_id=web.session_id, kind=kind, message=message)

        await asyncio.to_thread(added)

    async def take_flash(self, store: Store, web: WebSession) -> list[tuple[str, str]]:
        """The queued messages, emptying the queue (no write when there are none)."""
        if not web.pending_flash:
            return []

        def taken() -> list[tuple[str, str]]:
            with store.session() as session:
                return take_flash(session=session, session_id=web.session_id)

        return await asyncio.to_thread(taken)
