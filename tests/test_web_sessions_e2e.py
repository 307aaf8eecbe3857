"""Approval page sessions in headless Chromium against a real `changegate api` process.

A session outlives a restart of the API process (it lives in the audit store, which holds
only a hash of the cookie), and ends for good at logout, when its token is revoked, and
for a cookie that was tampered with.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import select

from changegate.api.sessions import SESSION_COOKIE
from changegate.store import Store, create_token, revoke_token, verify_token
from changegate.store.tables import WebSessionRow
from tests.support import free_port, wait_http
from tests.test_web_e2e import browser  # noqa: F401  (the module's Chromium fixture)

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext

pytestmark = pytest.mark.e2e


@contextmanager
def api_process(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """`changegate api` in its own process on `port`, stopped with SIGTERM at the end."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "changegate", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_http(base + "/healthz", within=60), f"the API did not start; see {log}"
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def logged_in(browser: Browser, base: str, token: str) -> BrowserContext:  # noqa: F811
    """A browser context logged in through the login form."""
    context = await browser.new_context(base_url=base)
    page = await context.new_page()
    await page.goto("/ui/login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/ui/")
    return context


async def session_cookie(context: BrowserContext) -> dict[str, Any]:
    [cookie] = [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]
    return dict(cookie)


async def lands_on(browser: Browser, base: str, cookie: dict[str, Any]) -> str:  # noqa: F811
    """The path a fresh browser holding only `cookie` ends on when it opens `/ui/`."""
    context = await browser.new_context(base_url=base)
    try:
        await context.add_cookies([cookie])  # type: ignore[list-item]
        page = await context.new_page()
        await page.goto("/ui/")
        return page.url.removeprefix(base)
    finally:
        await context.close()


async def test_a_session_survives_an_api_restart_and_ends_at_logout_or_tampering(
    browser: Browser,  # noqa: F811
    cli_env: dict[str, str],
    store: Store,
    tmp_path: Path,
) -> None:
    with store.session() as session:
        token = create_token(session=session, name="carol", role="approver", roles=["dev"])
    port, log = free_port(), tmp_path / "api.log"

    with api_process(cli_env, port, log) as base:
        context = await logged_in(browser, base, token)
        cookie = await session_cookie(context)
    # The store holds a hash of the cookie, never the cookie or the token.
    with store.session() as session:
        rows = list(session.exec(select(WebSessionRow)))
    stored = repr([row.model_dump() for row in rows])
    assert cookie["value"] not in stored and token not in stored
    digest = hashlib.sha256(cookie["value"].encode()).hexdigest()
    with store.session() as session:
        row = verify_token(session=session, token=token)
        assert row is not None
        assert [r.token_id for r in rows if r.id_hash == digest] == [row.token_id]

    with api_process(cli_env, port, log) as base:
        try:
            # The same browser, after the restart: still logged in.
            page = context.pages[0]
            await page.goto("/ui/")
            assert page.url == f"{base}/ui/"
            assert "signed in as carol (approver)" in (await page.text_content("header") or "")

            # A cookie with one character changed is no session.
            last = cookie["value"][-1]
            tampered = {**cookie, "value": cookie["value"][:-1] + ("A" if last != "A" else "B")}
            assert await lands_on(browser, base, tampered) == "/ui/login"
            assert await lands_on(browser, base, cookie) == "/ui/"

            # Logging out ends the session on the server: the old cookie no longer works.
            await page.click("header button[type=submit]")
            await page.wait_for_url(f"{base}/ui/login")
            assert await lands_on(browser, base, cookie) == "/ui/login"
        finally:
            await context.close()


async def test_revoking_the_token_ends_its_sessions(
    browser: Browser,  # noqa: F811
    cli_env: dict[str, str],
    store: Store,
    tmp_path: Path,
) -> None:
    with store.session() as session:
        token = create_token(session=session, name="dave", role="approver")
        row = verify_token(session=session, token=token)
        assert row is not None
    with api_process(cli_env, free_port(), tmp_path / "api.log") as base:
        context = await logged_in(browser, base, token)
        try:
            cookie = await session_cookie(context)
            assert await lands_on(browser, base, cookie) == "/ui/"
            with store.session() as session:
                assert revoke_token(session=session, token_id=row.token_id)
            assert await lands_on(browser, base, cookie) == "/ui/login"
        finally:
            await context.close()
