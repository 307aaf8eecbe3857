"""Who is calling: bearer tokens from the store, and refusals of what they may not do.

What a token may do, and for which agent, is `changegate.authority.Principal`'s rule, the
one the MCP server applies too.

Every 403 is recorded in the audit store's refusals, so a token probing beyond its role
leaves a trace, but in bounded rows (`RefusalWindow`): identical refusals within a minute
share one row whose `request` carries `count` and `last_at`, and a token's refusals beyond
20 distinct rows a minute share one row per rule, with action and subject `*`. Failed
bearer tokens count against the caller's address (`AuthThrottle`), 429 past the limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from changegate.api.errors import unauthenticated
from changegate.api.limits import RefusalWindow, auth_throttle, client_address
from changegate.api.state import Services, services
from changegate.authority import Capability, Principal
from changegate.errors import Refused
from changegate.models import ChangeRequest
from changegate.redaction import redact_request
from changegate.store import RefusalRow, Store, TokenRow, create_token, list_tokens, verify_token
from changegate.store.refusals import add_refusal, count_refusal

__all__ = [
    "Capability",
    "CurrentPrincipal",
    "Principal",
    "authenticate",
    "ensure_first_approver",
    "forbid",
    "require",
]

_bearer = HTTPBearer(auto_error=False, description="A token from `changegate token create`.")


async def authenticate(services: Services, token: str) -> Principal | None:
    """The principal of an issued, unrevoked token, else None."""
    store = await services.store()

    def lookup() -> TokenRow | None:
        with store.session() as session:
            return verify_token(session=session, token=token)

    row = await asyncio.to_thread(lookup)
    return None if row is None else Principal.of(row)


async def _current(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise unauthenticated("this call needs a token: no `Authorization: Bearer` header")
    throttle, client = auth_throttle(request), client_address(request)
    throttle.check(client)
    principal = await authenticate(services(request), credentials.credentials)
    if principal is None:
        throttle.failed(client)
        raise unauthenticated("the bearer token was never issued or has been revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_current)]
"""The verified caller of an API route (401 without a valid token)."""


async def forbid(
    services: Services,
    principal: Principal,
    *,
    rule: str,
    reason: str,
    would_pass: str,
    action: str,
    subject: str,
    request: ChangeRequest | None = None,
) -> Refused:
    """Record the refused attempt in the store's refusals and return the 403 to raise."""
    store = await services.store()
    window = _windows.get(store)
    if window is None:
        window = _windows[store] = RefusalWindow()
    await asyncio.to_thread(
        _record,
        store,
        window,
        principal=principal,
        rule=rule,
        reason=reason,
        would_pass=would_pass,
        action=action,
        subject=subject,
        request=request,
    )
    return Refused(403, rule=rule, reason=reason, would_pass=would_pass)


async def require(
    services: Services, principal: Principal, capability: Capability, *, action: str, subject: str
) -> None:
    """Raise a recorded 403 unless the principal holds `capability`."""
    if principal.can(capability):
        return
    needed = "an approver or admin" if capability == "approver" else f"an {capability}"
    raise await forbid(
        services,
        principal,
        rule="auth.role",
        reason=f"{action} needs {needed} token; {principal.label} holds "
        f"{', '.join(sorted(principal.capabilities)) or 'no capability'}",
        would_pass=f"the same call with {needed} token",
        action=action,
        subject=subject,
    )


# One window per store, kept as long as the store is: the rows it counts on are there.
_windows: weakref.WeakKeyDictionary[Store, RefusalWindow] = weakref.WeakKeyDictionary()


def _record(
    store: Store,
    window: RefusalWindow,
    *,
    principal: Principal,
    rule: str,
    reason: str,
    would_pass: str,
    action: str,
    subject: str,
    request: ChangeRequest | None,
) -> None:
    """Count the refusal on its row of this window, or open a row: caller, attempt, count."""
    at = datetime.now(UTC)
    with window.lock, store.session() as session:
        claim = window.claim((principal.token_id, rule, action, subject))
        if claim.row_id is not None and count_refusal(
            session=session, refusal_id=claim.row_id, count=claim.count, last_at=at
        ):
            return
        if claim.pooled:
            action = subject = claim.key[2]
            reason = (
                f"{principal.label} was refused more than {window.rows_per_token} distinct "
                f"calls within {window.window:g}s; its later `{rule}` refusals are counted "
                f"here. First: {reason}"
            )
            request = None
        attempt: dict[str, Any] = {
            "action": action,
            "subject": subject,
            "token_id": principal.token_id,
            "token_name": principal.name,
            "token_role": principal.role,
            "count": claim.count,
            "last_at": at.isoformat(),
        }
        if request is not None:
            attempt["request"] = redact_request(request).model_dump(mode="json")
        digest = hashlib.sha256(f"{action}\0{subject}\0{principal.token_id}".encode()).hexdigest()
        row = RefusalRow(
            at=at,
            agent_id=principal.agent_id or principal.name,
            target_label=subject,
            rule=rule,
            reason=reason,
            would_pass=would_pass,
            fingerprint=digest[:16],
            request=attempt,
        )
        window.opened(claim, add_refusal(session=session, row=row))


def ensure_first_approver(store: Store) -> str | None:
    """Issue a `local-admin` token when no approver or admin token exists; return it once."""
    with store.session() as session:
        live = [row for row in list_tokens(session=session) if not row.revoked]
        if any(Principal.of(row).can("approver") for row in live):
            return None
        return create_token(session=session, name="local-admin", role="admin")
