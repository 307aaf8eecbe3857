"""The approval page in headless Chromium: a deep link through login to the decision bar,
approve, reject with a reason and a confirmation, log out; agent text never runs as markup."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from changegate.models import ChangeRequest, Control, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, create_token, get_change, list_decisions
from tests.support import make_request, wait_for_stage, wait_until

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
"""A laptop screen: the decision bar must fit in it without scrolling."""
SCREENSHOT = Path("/tmp/changegate-decision-bar.png")
PAYLOAD = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1">'


def expect(locator: Any) -> Any:
    """Playwright's retrying assertions (imported late: the package may be absent)."""
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(locator)


def _missing_browser() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; skipped locally if absent, never in CI."""
    missing = _missing_browser()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the web tests must run in CI: {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def site(api_url: str) -> str:
    """The session's API and approval page."""
    return api_url


@pytest.fixture(scope="module")
def alice(store: Store) -> str:
    with store.session() as session:
        return create_token(session=session, name="alice", role="approver", roles=["sre", "dev"])


@pytest.fixture
async def page(browser: Browser, site: str, alice: str) -> AsyncIterator[Page]:
    """A fresh browser context logged in as alice through the login form."""
    context = await browser.new_context(base_url=site, viewport=VIEWPORT)
    opened = await context.new_page()
    try:
        await opened.goto("/ui/login")
        await opened.fill("#token", alice)
        await opened.click("button[type=submit]")
        await opened.wait_for_url(f"{site}/ui/")
        assert "signed in as alice (approver)" in (await opened.text_content("header") or "")
        yield opened
    finally:
        await context.close()


async def released(store: Store, change_id: str) -> None:
    """Until the audit store records the change as ended, freeing its target."""

    def ended() -> bool:
        with store.session() as session:
            row = get_change(session=session, change_id=change_id)
            return row is not None and row.outcome is not None

    await wait_until(ended, within=60, interval=0.2, what=f"{change_id} released")


async def test_an_approver_approves_from_the_page_and_the_change_runs(
    page: Page,
    changes: ChangeService,
    settings: Settings,
    store: Store,
    tmp_path: Path,
) -> None:
    change_id = await changes.submit(make_request(agent_id="web-agent"))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

    link = f"a[href='/ui/changes/{change_id}']"

    async def listed() -> bool:
        await page.goto("/ui/")
        return await page.locator(f"table {link}").count() > 0

    await wait_until(listed, within=20, interval=0.5, what="the change on the pending page")
    row = page.locator("tr", has=page.locator(link))
    assert "web-agent" in (await row.first.inner_text())
    await page.screenshot(path=str(tmp_path / "pending.png"), full_page=True)
    await page.locator(link).first.click()
    await page.wait_for_url(f"**/ui/changes/{change_id}")

    assert await page.text_content("#state") == Stage.AWAITING_APPROVAL.value
    assert "What the agent did not know" in (await page.text_content("#findings") or "")
    assert "CHANGE " + change_id in (await page.text_content("#summary") or "")
    assert await page.locator("#plan tbody tr").count() == 4
    workflow = page.locator("a", has_text="Temporal web UI")
    assert await workflow.get_attribute("href") == settings.workflow_url(change_id)
    await page.screenshot(path=str(tmp_path / "change-page.png"), full_page=True)

    await page.fill("#comment", "pool math checks out")
    await page.click("#approve")
    await page.wait_for_url(f"**/ui/changes/{change_id}")
    assert "approve by alice counted" in await page.inner_text(".flash-ok")

    async def moved_on() -> bool:
        status = await changes.status(change_id)
        return status.stage in (Stage.CANARY, Stage.ROLLOUT, Stage.VERIFY, Stage.ENDED)

    await wait_until(moved_on, within=30, what="the change to leave AWAITING_APPROVAL")
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE, final.timeline
    assert [d.actor for d in final.approvals] == ["alice"]
    assert final.approvals[0].reason == "pool math checks out"

    # The open page follows the change live, without a reload.
    await expect(page.locator("#state")).to_have_text("DONE", timeout=20_000)
    await expect(page.locator("#live-note")).to_have_text("ended")
    await expect(page.locator("#timeline tr")).to_have_count(len(final.timeline))
    await expect(page.locator("#decide")).to_be_hidden()
    await released(store, change_id)


async def test_agent_text_renders_as_text_never_as_markup(
    page: Page, changes: ChangeService, store: Store, tmp_path: Path
) -> None:
    data = make_request(
        service="payments",
        parameters={"log_level": "error"},
        assumptions={},
        agent_id="web-agent",
    ).model_dump(mode="json")
    data["intent"] = f"Quiet the logs {PAYLOAD}"
    data["evidence"] = [{"source": "the agent's notes", "excerpt": f"read this {PAYLOAD}"}]
    change_id = await changes.submit(ChangeRequest.model_validate(data))
    try:
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await page.goto(f"/ui/changes/{change_id}")
        # Once the live poller has replaced the tables, they must still hold only text.
        await expect(page.locator("#live-note")).to_contain_text("updated", timeout=10_000)

        assert PAYLOAD in (await page.text_content("#intent") or "")
        assert PAYLOAD in await page.inner_text("#agent")
        assert PAYLOAD in (await page.text_content("#summary") or "")
        assert await page.evaluate("typeof window.pwned") == "undefined"
        scripts: list[dict[str, Any]] = await page.evaluate(
            "Array.from(document.scripts).map(s => ({src: s.src, text: s.textContent}))"
        )
        assert len(scripts) == 1 and "pwned" not in scripts[0]["text"]
        assert await page.locator("img").count() == 0
        await page.screenshot(path=str(tmp_path / "hostile-change.png"), full_page=True)
    finally:
        await changes.abort(change_id, Control(actor="test", reason="test over"))
        await released(store, change_id)


async def test_a_deep_link_survives_login_and_the_log_out_button_ends_the_session(
    browser: Browser, site: str, alice: str
) -> None:
    context = await browser.new_context(base_url=site)
    try:
        opened = await context.new_page()
        await opened.goto("/ui/changes/chg-web-deep-link")
        await opened.wait_for_url("**/ui/login?next=*")
        await opened.fill("#token", alice)
        await opened.click("button[type=submit]")
        await opened.wait_for_url(f"{site}/ui/changes/chg-web-deep-link")
        assert "not_found" in (await opened.text_content("main") or "")

        await opened.goto("/ui/")
        await opened.click("header button[type=submit]")
        await opened.wait_for_url(f"{site}/ui/login")
        await opened.goto("/ui/")
        await opened.wait_for_url(f"{site}/ui/login")
        assert all(c["name"] != "changegate_session" for c in await context.cookies())
    finally:
        await context.close()


async def in_first_viewport(page: Page, selector: str) -> bool:
    """True when the element is visible and wholly inside the viewport, scrolled to the top."""
    await page.evaluate("window.scrollTo(0, 0)")
    box = await page.locator(selector).bounding_box()
    if box is None or not await page.locator(selector).is_visible():
        return False
    return box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"]


async def test_a_deep_link_leads_through_login_to_the_decision_bar_above_the_fold(
    browser: Browser,
    site: str,
    alice: str,
    changes: ChangeService,
    settings: Settings,
    store: Store,
) -> None:
    request = make_request(service="search", assumptions={"unit_count": 3}, agent_id="web-agent")
    change_id = await changes.submit(request)
    context = await browser.new_context(base_url=site, viewport=VIEWPORT)
    try:
        status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        assert status.risk is not None
        opened = await context.new_page()
        # The link notifications carry (`Settings.page_url`), on this test's API port.
        link = urlsplit(settings.page_url(change_id))
        await opened.goto(link.path)
        await opened.wait_for_url(f"**/ui/login?next=%2Fui%2Fchanges%2F{change_id}")
        await opened.fill("#token", alice)
        await opened.click("button[type=submit]")
        await opened.wait_for_url(f"{site}/ui/changes/{change_id}")

        for part in ("#decide", "#approve", "#reject", "#reason", "#comment"):
            assert await in_first_viewport(opened, part), f"{part} is below the fold"
        bar = await opened.inner_text("#decide")
        assert change_id in bar
        assert await opened.text_content("#bar-state") == Stage.AWAITING_APPROVAL.value
        assert f"risk {status.risk.tier}" in bar
        assert await opened.text_content("#bar-approvals") == f"0/{status.approvals_required}"
        # tests/policy.yaml lists alice, bob, carol and recorder; the tier may demand a role.
        left = await opened.text_content("#approvers-left") or ""
        assert "alice" in left and "web-agent" not in left
        assert await opened.locator("#not-you").count() == 0
        # The full summary is still on the page, below the bar.
        summary = opened.locator("#summary")
        assert "CHANGE " + change_id in (await summary.text_content() or "")
        assert not await in_first_viewport(opened, "#summary")
        await opened.screenshot(path=str(SCREENSHOT))
    finally:
        await context.close()
        await changes.abort(change_id, Control(actor="test", reason="test over"))
        await released(store, change_id)


async def test_a_rejection_needs_a_reason_and_a_confirmation_and_is_recorded_with_it(
    page: Page, site: str, changes: ChangeService, store: Store, alice: str
) -> None:
    request = make_request(service="search", assumptions={"unit_count": 3}, agent_id="web-agent")
    change_id = await changes.submit(request)
    try:
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await page.goto(f"/ui/changes/{change_id}")

        # Blank (spaces pass the browser's `required`): the server refuses, records nothing.
        await page.fill("#reason", "   ")
        async with page.expect_response(re.compile(r".*/reject$")) as answered:
            await page.click("#reject")
        assert (await answered.value).status == 422
        assert "decision.reason_required" in (await page.text_content("main") or "")
        # The same without a browser form: a POST with the session and CSRF, no reason.
        await page.goto(f"/ui/changes/{change_id}")
        token = await page.get_attribute("#decide input[name=csrf]", "value")
        assert token
        posted = await page.request.post(
            f"/ui/changes/{change_id}/reject", form={"csrf": token, "confirm": "yes"}
        )
        assert posted.status == 422
        assert "a rejection needs a reason" in await posted.text()
        status = await changes.status(change_id)
        assert status.stage == Stage.AWAITING_APPROVAL and status.decisions == []
        with store.session() as session:
            assert list_decisions(session=session, change_id=change_id) == []

        # With a reason: a confirmation page repeats it, and only its button records it.
        reason = "pool already sized for peak\n<b>see capacity dashboard</b>"
        await page.fill("#reason", reason)
        await page.click("#reject")
        await page.wait_for_selector("#confirm-reject")
        assert await page.text_content("#confirm-reason") == reason
        assert change_id in (await page.text_content("#confirm-reject h1") or "")
        assert (await changes.status(change_id)).decisions == []
        await page.click("#confirm-reject-button")
        await page.wait_for_url(f"{site}/ui/changes/{change_id}")
        assert "reject by alice counted" in await page.inner_text(".flash-ok")

        final = await changes.wait(change_id)
        assert final.outcome == Outcome.REJECTED
        [decision] = final.decisions
        assert (decision.verdict, decision.principal, decision.reason) == (
            "reject",
            "alice",
            reason,
        )
        await released(store, change_id)
        with store.session() as session:
            [row] = list_decisions(session=session, change_id=change_id)
        assert (row.verdict, row.actor, row.reason, row.counted) == (
            "reject",
            "alice",
            reason,
            True,
        )
        # The HTTP API shows the same decision, with its reason.
        answer = await page.request.get(
            f"{site}/api/v1/changes/{change_id}", headers={"Authorization": f"Bearer {alice}"}
        )
        [shown] = (await answer.json())["decisions"]
        assert (shown["verdict"], shown["principal"], shown["reason"]) == (
            "reject",
            "alice",
            reason,
        )
    finally:
        if (await changes.status(change_id)).outcome is None:
            await changes.abort(change_id, Control(actor="test", reason="test over"))
        await released(store, change_id)
