"""`/ui`: the approval web page, server-rendered, for approver and admin tokens.

Security: templates autoescape; the change page's only script carries a per-response nonce
and fills live data with `textContent`; the Content-Security-Policy allows no other script;
forms carry the session's CSRF token and cookies are HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from changegate.api import views
from changegate.api.auth import Principal, authenticate
from changegate.api.changes import ChangeId, decide
from changegate.api.errors import ApiError
from changegate.api.pages import render
from changegate.api.sessions import LOGIN_COOKIE, SESSION_COOKIE, WebSession
from changegate.api.state import Services, services
from changegate.client import ChangeNotFound
from changegate.models import DecisionVerdict, Stage

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


def _cookie(response: Response, name: str, value: str, *, path: str) -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="strict")


async def _user(request: Request) -> tuple[WebSession, Principal] | None:
    session = services(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    principal = await authenticate(services(request), session.token)
    if principal is None or not principal.can("approver"):
        services(request).sessions.close(request.cookies.get(SESSION_COOKIE))
        return None
    return session, principal


def _to_login() -> Response:
    return RedirectResponse("/ui/login", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("")
async def root() -> Response:
    """The pending list lives at `/ui/`."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/login")
async def login_page(
    request: Request, token: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    """The login form; `?token=` logs in straight away (the link `changegate up` prints)."""
    if token:
        return await _login(request, token)
    return _login_form(request)


def _login_form(request: Request, *, error: str = "", status: int = 200) -> Response:
    csrf = secrets.token_urlsafe(32)
    response = render(request, "login.html", {"csrf": csrf, "error": error}, status=status)
    _cookie(response, LOGIN_COOKIE, csrf, path="/ui/login")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Log in with a pasted approver or admin token."""
    form = await _form(request)
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
        return _login_form(request, error="The form expired; paste the token again.", status=403)
    return await _login(request, form.get("token", "").strip())


async def _login(request: Request, token: str) -> Response:
    principal = await authenticate(services(request), token) if token else None
    if principal is None:
        return _login_form(request, error="That token is unknown or revoked.", status=401)
    if not principal.can("approver"):
        return _login_form(
            request,
            error=f"{principal.label} may not decide on changes; use an approver or admin token.",
            status=403,
        )
    response = RedirectResponse("/ui/", status_code=303)
    _cookie(response, SESSION_COOKIE, services(request).sessions.open(token), path="/ui")
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    user = await _user(request)
    if user is not None and user[0].csrf_ok((await _form(request)).get("csrf")):
        services(request).sessions.close(request.cookies.get(SESSION_COOKIE))
    response = _to_login()
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.get("/")
async def pending(request: Request) -> Response:
    """Changes awaiting approval, with risk tier and age, and the latest others."""
    user = await _user(request)
    if user is None:
        return _to_login()
    session, principal = user
    svc = services(request)
    running = "ExecutionStatus = 'Running'"
    if svc.settings.search_attributes:
        running += " AND ChangeStage = 'AWAITING_APPROVAL'"
    refs = await svc.changes.list(query=running, limit=100)
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
    recent = await svc.changes.list(limit=20)
    context = {"user": principal, "csrf": session.csrf, "flash": session.take_flash()}
    return render(request, "pending.html", {**context, "rows": rows, "recent": recent})


@router.get("/changes/{change_id}")
async def change_page(request: Request, change_id: ChangeId) -> Response:
    """One change: what the agent did not know, blast radius, plan, progress, decision."""
    user = await _user(request)
    if user is None:
        return _to_login()
    session, principal = user
    svc = services(request)
    status = await svc.changes.status(change_id)
    policy = await asyncio.to_thread(lambda: svc.changes.gate.policy)
    view = views.change_page(status, policy=policy, now=datetime.now(UTC))
    context = {
        "user": principal,
        "csrf": session.csrf,
        "flash": session.take_flash(),
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
    try:
        status = await services(request).changes.status(change_id)
    except ChangeNotFound as exc:
        return JSONResponse({"error": {"rule": "not_found", "reason": str(exc)}}, 404)
    body = {**views.live(status), "updated": datetime.now(UTC).strftime("%H:%M:%S")}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _decide(request: Request, change_id: str, verdict: DecisionVerdict) -> Response:
    user = await _user(request)
    if user is None:
        return _to_login()
    session, principal = user
    form = await _form(request)
    if not session.csrf_ok(form.get("csrf")):
        raise ApiError(
            403,
            rule="csrf",
            reason="the form's CSRF token does not match this session",
            would_pass="the form as the change page serves it (reload the page)",
        )
    svc: Services = services(request)
    comment = form.get("comment", "").strip()[:2000]
    try:
        answer = await decide(svc, principal, change_id, verdict, comment)
        session.say("ok", f"{verdict} by {answer.actor} counted: {answer.reason}")
    except ApiError as exc:
        if exc.status != 409:
            raise
        session.say("refused", f"{verdict} not counted ({exc.rule}): {exc.reason}")
    return RedirectResponse(f"/ui/changes/{change_id}", status_code=303)


@router.post("/changes/{change_id}/approve")
async def approve(request: Request, change_id: ChangeId) -> Response:
    """Approve from the page, as the logged-in approver."""
    return await _decide(request, change_id, "approve")


@router.post("/changes/{change_id}/reject")
async def reject(request: Request, change_id: ChangeId) -> Response:
    """Reject from the page, as the logged-in approver."""
    return await _decide(request, change_id, "reject")
