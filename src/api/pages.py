"""Rendering a page: autoescaped Jinja2 templates, a script nonce and a strict CSP."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

__all__ = ["render", "templates"]

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
"""Every page's templates; autoescaping is on for all of them, whatever their name."""


def _csp(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def render(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    """The template `name` with a fresh nonce, under a CSP that allows only that nonce."""
    nonce = secrets.token_urlsafe(16)
    response: Response = templates.TemplateResponse(
        request, name, {"nonce": nonce, **context}, status_code=status
    )
    response.headers["Content-Security-Policy"] = _csp(nonce)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
