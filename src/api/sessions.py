"""Web sessions for the approval page: server-side, in memory, each with its CSRF token.

The browser holds only a random session id in an HttpOnly, SameSite=Strict cookie (Secure
with `cookie_secure`); the token it logged in with stays on the server and is verified
again on every request, so a revoked token ends its sessions. Every form, logout included,
carries the session's CSRF token, compared in constant time. Sessions live in this process
only: restarting the API logs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "SESSION_TTL_SECONDS", "WebSession", "WebSessions"]

SESSION_COOKIE = "changegate_session"
LOGIN_COOKIE = "changegate_login"
SESSION_TTL_SECONDS = 12 * 3600
_MAX_SESSIONS = 10_000


@dataclass
class WebSession:
    """One logged-in browser: the token it logged in with and its CSRF token."""

    token: str
    csrf: str
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)

    def csrf_ok(self, submitted: str | None) -> bool:
        """True when a form's CSRF field matches this session's token."""
        return submitted is not None and hmac.compare_digest(submitted, self.csrf)

    def say(self, kind: str, message: str) -> None:
        """Queue a message (`ok` or `refused`) for the next page this session sees."""
        self.flash.append((kind, message))

    def take_flash(self) -> list[tuple[str, str]]:
        """The queued messages, emptying the queue."""
        messages, self.flash = self.flash, []
        return messages


class WebSessions:
    """The sessions of this process, by random id."""

    def __init__(self, *, ttl: float = SESSION_TTL_SECONDS) -> None:
        """Sessions expire `ttl` seconds after login."""
        self._ttl = ttl
        self._by_id: dict[str, WebSession] = {}

    def open(self, token: str) -> str:
        """Start a session for a verified token; returns the id for the cookie."""
        self._sweep()
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = WebSession(
            token=token, csrf=secrets.token_urlsafe(32), expires=time.monotonic() + self._ttl
        )
        return session_id

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session with this id, if any."""
        if not session_id:
            return None
        found = self._by_id.get(session_id)
        if found is None or found.expires < time.monotonic():
            self._by_id.pop(session_id, None)
            return None
        return found

    def close(self, session_id: str | None) -> None:
        """End a session (logout)."""
        if session_id:
            self._by_id.pop(session_id, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._by_id.items() if s.expires < now]:
            del self._by_id[key]
        while len(self._by_id) >= _MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
