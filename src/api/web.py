"""`/ui`: the approval web page, server-rendered, for approver and admin tokens.

Security: templates autoescape; the change page's only script carries a per-response nonce
and fills live data with `textContent`; the Content-Security-Policy allows no other script;
forms carry the session's CSRF token and cookies are HttpOnly, SameSite=Strict and, with
`cookie_secure`, Secure. Logging in is a POST of the login form only: a token in a URL
would end up in logs and browser history. The form may carry `next`, a local `/ui/` page to
land on afterwards. Failed logins count against the client's address like bad bearer
tokens (429 past the limit).

A change's page is `/ui/changes/{id}` (`page_path`; `Settings.page_url` is the same page
under the API's URL, the link notifications carry). While the change awaits approval, a
decision bar at its top approves or rejects it. A rejection needs a reason (422 without
one, recording nothing) and is confirmed on a second page that repeats what will be
rejected before anything is sent.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from changegate.api import views
from changegate.api.auth import Principal, authenticate
from changegate.api.changes import ChangeId, checked_reason, decide
from changegate.api.errors import answer_headers
from changegate.api.limits import auth_throttle, client_address
from changegate.api.pages import render
from changegate.api.sessions import LOGIN_COOKIE, SESSION_COOKIE, WebSession
from changegate.api.state import Services, services
from changegate.errors import ApiError, ChangeNotFound, Refused
from changegate.models import DecisionVerdict, Stage
from changegate.service.visibility import change_query

__all__ = ["page_path", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


_HOME = "/ui/"
# What a `next` page may contain: a path and query, nothing that could leave this site.
_PAGE_CHARS = frozenset(string.ascii_letters + string.digits + "/-._~%?=&+:@")


def _cookie(request: Request, response: Response, name: str, value: str, *, path: str) -> None:
    secure = services(request).settings.cookie_secure
    response.set_cookie(name, value, path=path, httponly=True, samesite="strict", secure=secure)


def _forget(request: Request, response: Response, name: str, *, path: str) -> None:
    secure = services(request).settings.cookie_secure
    response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=secure)


def page_path(change_id: str) -> str:
    """The approval page of one change: the link notifications and listings point to."""
    return f"/ui/changes/{change_id}"


def _local_page(candidate: str | None) -> str:
    """`candidate` when it is a page of this site under `/ui/`, else `/ui/`: no open redirect."""
    if not candidate or len(candidate) > 500 or not set(candidate) <= _PAGE_CHARS:
        return _HOME
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not parts.path.startswith(_HOME):
        return _HOME
    if ".." in parts.path.split("/") or "//" in parts.path:
        return _HOME
    return candidate


async def _user(request: Request) -> tuple[WebSession, Principal] | None:
    svc = services(request)
    store = await svc.store()
    session = await svc.sessions.get(store, request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    if not session.principal.can("approver"):
        await svc.sessions.close(store, session.session_id)
        return None
    return session, session.principal


async def _flash(request: Request, session: WebSession) -> list[tuple[str, str]]:
    svc = services(request)
    return await svc.sessions.take_flash(await svc.store(), session)


def _to_login(page: str = _HOME) -> Response:
    """To the login form, which lands on `page` afterwards."""
    wanted = _local_page(page)
    query = "" if wanted == _HOME else "?" + urlencode({"next": wanted})
    return RedirectResponse(f"/ui/login{query}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("")
async def root() -> Response:
    """The pending list lives at `/ui/`."""
    return RedirectResponse(_HOME, status_code=307)


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The login form, landing on `?next=` (a `/ui/` page) afterwards; a URL token is ignored."""
    notice = ""
    if "token" in request.query_params:
        notice = (
            "A token in a link does not log in: links end up in logs and browser history. "
            "Paste the token here instead."
        )
    landing = _local_page(request.query_params.get("next"))
    return _login_form(request, landing=landing, error=notice)


def _login_form(
    request: Request,
    *,
    landing: str,
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    csrf = secrets.token_urlsafe(32)
    context = {"csrf": csrf, "error": error, "next": landing}
    response = render(request, "login.html", context, status=status)
    response.headers.update(headers or {})
    _cookie(request, response, LOGIN_COOKIE, csrf, path="/ui/login")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Log in with a pasted approver or admin token and the form's CSRF token."""
    form = await _form(request)
    landing = _local_page(form.get("next"))
    throttle, client = auth_throttle(request), client_address(request)
    try:
        throttle.check(client)
    except Refused as exc:
        return _login_form(
            request,
            landing=landing,
            error=f"Too many failed logins from this address; try again in "
            f"{exc.retry_after} seconds.",
            status=429,
            headers=answer_headers(exc),
        )
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
        error = "The form expired; paste the token again."
        return _login_form(request, landing=landing, error=error, status=403)
    token = form.get("token", "").strip()
    principal = await authenticate(services(request), token) if token else None
    if principal is None:
        if token:
            throttle.failed(client)
        error = "That token is unknown or revoked."
        return _login_form(request, landing=landing, error=error, status=401)
    if not principal.can("approver"):
        return _login_form(
            request,
            landing=landing,
            error=f"{principal.label} may not decide on changes; use an approver or admin token.",
            status=403,
        )
    svc = services(request)
    session_id = await svc.sessions.open(await svc.store(), principal)
    response = RedirectResponse(landing, status_code=303)
    _cookie(request, response, SESSION_COOKIE, session_id, path="/ui")
    _forget(request, response, LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session; the form must carry the session's CSRF token, or it stays open."""
    svc = services(request)
    store = await svc.store()
    session_id = request.cookies.get(SESSION_COOKIE)
    session = await svc.sessions.get(store, session_id)
    if session is not None and not session.csrf_ok((await _form(request)).get("csrf")):
        raise Refused(
            403,
            rule="csrf",
            reason="the logout form's CSRF token does not match this session, which stays open",
            would_pass="the log out button of a page this session loaded (reload the page)",
        )
    await svc.sessions.close(store, session_id)
    response = RedirectResponse("/ui/login", status_code=303)
    if session_id is not None:
        # Only a cookie that was sent is cleared: a cross-site post carries none to clear.
        _forget(request, response, SESSION_COOKIE, path="/ui")
    return response


@router.get("/")
async def pending(request: Request) -> Response:
    """Changes awaiting approval, with risk tier and age, and the latest others."""
    user = await _user(request)
    if user is None:
        return _to_login()
    session, principal = user
    svc = services(request)
    # Without search attributes every running change is read and filtered by its status.
    awaiting = Stage.AWAITING_APPROVAL if svc.settings.search_attributes else None
    refs = await svc.changes.list(change_query(stage=awaiting, running=True), limit=100)
    statuses = await asyncio.gather(
        *(svc.changes.status(r.change_id) for r in refs), return_exceptions=True
    )
    now = datetime.now(UTC)
    rows = [
        views.pending_row(s, now=now)
        for s in statuses
        if not isinstance(s, BaseException)
        and s.stage == Stage.AWAITING_APPROVAL
        and s.outcome is None
    ]
    recent = [views.listing_row(ref) for ref in await svc.changes.list(limit=20)]
    context = {"user": principal, "csrf": session.csrf, "flash": await _flash(request, session)}
    return render(request, "pending.html", {**context, "rows": rows, "recent": recent})


@router.get("/changes/{change_id}")
async def change_page(request: Request, change_id: ChangeId) -> Response:
    """One change: the decision bar while it awaits approval, then what the agent did not
    know, blast radius, plan, progress, timeline and the full summary."""
    user = await _user(request)
    if user is None:
        return _to_login(page_path(change_id))
    session, principal = user
    svc = services(request)
    status = await svc.changes.status(change_id)
    policy = await asyncio.to_thread(lambda: svc.changes.gate.policy)
    view = views.change_page(status, policy=policy, now=datetime.now(UTC), viewer=principal.name)
    context = {
        "user": principal,
        "csrf": session.csrf,
        "flash": await _flash(request, session),
        "c": view,
        "workflow_url": svc.settings.workflow_url(change_id),
    }
    return render(request, "change.html", context)


@router.get("/changes/{change_id}/live")
async def change_live(request: Request, change_id: ChangeId) -> Response:
    """The parts of the change page that move, as JSON for the page's poller."""
    user = await _user(request)
    if user is None:
        return JSONResponse({"error": {"rule": "auth.session", "reason": "log in"}}, 401)
    svc = services(request)
    try:
        status = await svc.changes.status(change_id)
    except ChangeNotFound as exc:
        return JSONResponse({"error": {"rule": "not_found", "reason": str(exc)}}, 404)
    policy = await asyncio.to_thread(lambda: svc.changes.gate.policy)
    body = {
        **views.live(status),
        "left": views.approvers_left(status, policy=policy, viewer=user[1].name)["who"],
        "updated": datetime.now(UTC).strftime("%H:%M:%S"),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _decision_form(
    request: Request, change_id: str
) -> tuple[WebSession, Principal, dict[str, str]] | Response:
    """The logged-in approver and the form they posted, its CSRF token checked."""
    user = await _user(request)
    if user is None:
        return _to_login(page_path(change_id))
    session, principal = user
    form = await _form(request)
    if not session.csrf_ok(form.get("csrf")):
        raise Refused(
            403,
            rule="csrf",
            reason="the form's CSRF token does not match this session",
            would_pass="the form as the change page serves it (reload the page)",
        )
    return session, principal, form


async def _decide(
    request: Request,
    change_id: str,
    verdict: DecisionVerdict,
    *,
    session: WebSession,
    principal: Principal,
    reason: str,
) -> Response:
    svc: Services = services(request)
    store = await svc.store()
    try:
        answer = await decide(svc, principal, change_id, verdict, reason)
        await svc.sessions.say(
            store, session, "ok", f"{verdict} by {answer.actor} counted: {answer.reason}"
        )
    except ApiError as exc:
        if exc.status != 409:
            raise
        await svc.sessions.say(
            store, session, "refused", f"{verdict} not counted ({exc.rule}): {exc.reason}"
        )
    return RedirectResponse(page_path(change_id), status_code=303)


@router.post("/changes/{change_id}/approve")
async def approve(request: Request, change_id: ChangeId) -> Response:
    """Approve from the page, as the logged-in approver, with an optional comment."""
    posted = await _decision_form(request, change_id)
    if isinstance(posted, Response):
        return posted
    session, principal, form = posted
    comment = form.get("comment", "").strip()[:2000]
    return await _decide(
        request, change_id, "approve", session=session, principal=principal, reason=comment
    )


@router.post("/changes/{change_id}/reject")
async def reject(request: Request, change_id: ChangeId) -> Response:
    """Reject from the page: a reason is required, and a confirmation page comes first.

    Without `confirm=yes` the answer is the confirmation page, repeating the change and the
    reason; nothing is sent until that page's form is posted.
    """
    posted = await _decision_form(request, change_id)
    if isinstance(posted, Response):
        return posted
    session, principal, form = posted
    # Browsers send a textarea's line breaks as CRLF; the history keeps plain newlines.
    reason = checked_reason("reject", form.get("reason", ""))
    if form.get("confirm") != "yes":
        svc = services(request)
        status = await svc.changes.status(change_id)
        policy = await asyncio.to_thread(lambda: svc.changes.gate.policy)
        view = views.change_page(
            status, policy=policy, now=datetime.now(UTC), viewer=principal.name
        )
        context = {"user": principal, "csrf": session.csrf, "c": view, "reason": reason}
        return render(request, "reject.html", context)
    return await _decide(
        request, change_id, "reject", session=session, principal=principal, reason=reason
    )
