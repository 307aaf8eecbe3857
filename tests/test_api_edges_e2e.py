"""The API's edge for real: logging in, cookies, throttled guessing, bounded refusals, outages.

Tests that count failures or break a dependency build an app of their own (over the
session's Temporal and store, or a store that is down), so no other test sees a throttled
address or an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig

from changegate.api import create_app
from changegate.api.limits import AUTH_FAILURE_LIMIT, REFUSAL_ROWS_PER_TOKEN
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, create_token, list_refusals
from tests.support import free_port

pytestmark = pytest.mark.e2e

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEXT = re.compile(r'name="next" value="([^"]*)"')


@pytest.fixture(scope="module")
def tokens(store: Store) -> dict[str, str]:
    """An approver and an agent of this module's own."""
    with store.session() as session:
        return {
            "approver": create_token(session=session, name="edge-approver", role="approver"),
            "agent": create_token(
                session=session, name="edge-agent", role="agent", agent_id="edge-agent"
            ),
        }


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's API with its own cookie jar."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as session:
        yield session


@pytest.fixture
def own_app(client: Client, settings: Settings) -> Iterator[FastAPI]:
    """An app of its own over the session's Temporal and store: its throttle is its own."""
    changes = ChangeService(client, settings)
    yield create_app(settings=settings, changes=changes)
    changes.close()


def from_address(app: FastAPI, host: str, *, base: str = "http://127.0.0.1") -> httpx.AsyncClient:
    """A client of `app` in this process, calling from `host`."""
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def log_in(
    http: httpx.AsyncClient, token: str, *, next_page: str | None = None
) -> httpx.Response:
    """Post the login form as a browser does: the form's CSRF token, its cookie, the token."""
    form = await http.get("/ui/login")
    data = {"csrf": csrf_of(form), "token": token}
    if next_page is not None:
        data["next"] = next_page
    return await http.post("/ui/login", data=data)


async def test_a_token_in_the_login_url_does_not_log_in(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    linked = await http.get("/ui/login", params={"token": tokens["approver"]})
    assert linked.status_code == 200
    assert "changegate_session" not in linked.cookies
    assert "A token in a link does not log in" in linked.text
    assert tokens["approver"] not in linked.text
    anonymous = await http.get("/ui/")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"


async def test_login_needs_the_forms_csrf_token(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    bare = await http.post("/ui/login", data={"token": tokens["approver"]})
    assert bare.status_code == 403 and "changegate_session" not in bare.cookies
    await http.get("/ui/login")  # the form's cookie, but not its field
    guessed = await http.post("/ui/login", data={"token": tokens["approver"], "csrf": "guess"})
    assert guessed.status_code == 403 and "changegate_session" not in guessed.cookies

    agent = await log_in(http, tokens["agent"])
    assert agent.status_code == 403 and "may not decide" in agent.text
    logged_in = await log_in(http, tokens["approver"])
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/ui/"
    cookie = logged_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert "secure" not in cookie  # the session's settings leave cookie_secure off
    page = await http.get("/ui/")
    assert page.status_code == 200 and "signed in as edge-approver (approver)" in page.text


async def test_login_lands_on_the_page_asked_for_and_only_on_this_sites_pages(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    wanted = "/ui/changes/chg-edge-none"
    anonymous = await http.get(wanted)
    assert anonymous.status_code == 303
    login_url = anonymous.headers["location"]
    assert login_url == "/ui/login?next=%2Fui%2Fchanges%2Fchg-edge-none"
    form = await http.get(login_url)
    assert NEXT.findall(form.text) == [wanted]
    landed = await http.post(
        "/ui/login", data={"csrf": csrf_of(form), "token": tokens["approver"], "next": wanted}
    )
    assert landed.status_code == 303 and landed.headers["location"] == wanted

    for elsewhere in (
        "https://evil.example.com/ui/",
        "//evil.example.com/ui/",
        "/\\evil.example.com",
        "/ui/../api/v1/whoami",
        "/ui//evil.example.com",
        "/api/v1/whoami",
        "javascript:alert(1)",
    ):
        offered = await http.get("/ui/login", params={"next": elsewhere})
        assert NEXT.findall(offered.text) == ["/ui/"], elsewhere
        answer = await log_in(http, tokens["approver"], next_page=elsewhere)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/", elsewhere


async def test_logout_without_the_sessions_csrf_token_keeps_the_session(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    assert (await log_in(http, tokens["approver"])).status_code == 303
    page = await http.get("/ui/")
    assert page.status_code == 200

    for data in ({}, {"csrf": "guess"}):
        refused = await http.post("/ui/logout", data=data)
        assert refused.status_code == 403 and "csrf" in refused.text
        assert "changegate_session" not in refused.headers.get("set-cookie", "")
        assert (await http.get("/ui/")).status_code == 200

    ended = await http.post("/ui/logout", data={"csrf": csrf_of(page)})
    assert ended.status_code == 303 and ended.headers["location"] == "/ui/login"
    assert (await http.get("/ui/")).status_code == 303


async def test_cookies_are_secure_when_the_setting_says_so(
    client: Client, settings: Settings, tokens: dict[str, str]
) -> None:
    secure = settings.model_copy(update={"cookie_secure": True})
    changes = ChangeService(client, secure)
    app = create_app(settings=secure, changes=changes)
    try:
        async with from_address(app, "127.0.0.1", base="https://testserver") as http:
            form = await http.get("/ui/login")
            assert "; secure" in form.headers["set-cookie"].lower()
            logged_in = await log_in(http, tokens["approver"])
            assert logged_in.status_code == 303
            cookies = logged_in.headers.get_list("set-cookie")
            session_cookie = next(c for c in cookies if c.startswith("changegate_session="))
            assert "; secure" in session_cookie.lower()
            page = await http.get("/ui/")
            assert page.status_code == 200
            ended = await http.post("/ui/logout", data={"csrf": csrf_of(page)})
            assert "; secure" in ended.headers["set-cookie"].lower()
    finally:
        changes.close()


async def test_repeated_bad_tokens_are_throttled_per_address(
    own_app: FastAPI, tokens: dict[str, str]
) -> None:
    async with (
        from_address(own_app, "203.0.113.7") as guesser,
        from_address(own_app, "203.0.113.8") as neighbour,
    ):
        for attempt in range(AUTH_FAILURE_LIMIT - 1):
            wrong = await guesser.get("/api/v1/whoami", headers=bearer(f"cg_guess-{attempt}"))
            assert wrong.status_code == 401
        # Another address's success resets nothing.
        fine = await neighbour.get("/api/v1/whoami", headers=bearer(tokens["agent"]))
        assert fine.status_code == 200
        last = await guesser.get("/api/v1/whoami", headers=bearer("cg_guess-last"))
        assert last.status_code == 401

        throttled = await guesser.get("/api/v1/whoami", headers=bearer("cg_guess-more"))
        assert throttled.status_code == 429
        error = throttled.json()["error"]
        assert error["rule"] == "auth.throttled" and "203.0.113.7" in error["reason"]
        assert error["would_pass"]
        wait = int(throttled.headers["retry-after"])
        assert error["retry_after"] == wait and wait >= 1
        # While throttled, even a valid token is not checked: that would keep guessing open.
        valid = await guesser.get("/api/v1/whoami", headers=bearer(tokens["agent"]))
        assert valid.status_code == 429 and "retry-after" in valid.headers
        fine = await neighbour.get("/api/v1/whoami", headers=bearer(tokens["agent"]))
        assert fine.status_code == 200


async def test_repeated_failed_logins_are_throttled(
    own_app: FastAPI, tokens: dict[str, str]
) -> None:
    async with from_address(own_app, "203.0.113.9") as browser:
        for attempt in range(AUTH_FAILURE_LIMIT):
            wrong = await log_in(browser, f"cg_guess-{attempt}")
            assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
        throttled = await log_in(browser, tokens["approver"])
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        assert "Too many failed logins" in throttled.text
        assert "changegate_session" not in throttled.cookies
        # The bearer API shares the count: it is the same address guessing.
        api = await browser.get("/api/v1/whoami", headers=bearer(tokens["agent"]))
        assert api.status_code == 429 and api.json()["error"]["rule"] == "auth.throttled"


async def test_repeated_refusals_add_bounded_rows(http: httpx.AsyncClient, store: Store) -> None:
    agent_id = f"edge-prober-{uuid.uuid4().hex[:8]}"
    with store.session() as session:
        token = create_token(session=session, name=agent_id, role="agent", agent_id=agent_id)

    same = 25
    for _ in range(same):
        refused = await http.get("/api/v1/killswitches", headers=bearer(token))
        assert refused.status_code == 403 and refused.json()["error"]["rule"] == "auth.role"
    with store.session() as session:
        rows = list_refusals(session=session, agent_id=agent_id)
    assert len(rows) == 1
    assert rows[0].target_label == "killswitches" and rows[0].request["count"] == same

    probes = REFUSAL_ROWS_PER_TOKEN + 10
    for i in range(probes):
        refused = await http.post(f"/api/v1/changes/chg-edge-{i}/approve", headers=bearer(token))
        assert refused.status_code == 403
    with store.session() as session:
        rows = list_refusals(session=session, agent_id=agent_id)
    # The token's budget of distinct rows, then one row for the rest of its `auth.role` ones.
    assert len(rows) == REFUSAL_ROWS_PER_TOKEN + 1
    [pooled] = [r for r in rows if r.request["action"] == "*"]
    assert pooled.rule == "auth.role" and pooled.target_label == "*"
    assert pooled.request["count"] == probes - (REFUSAL_ROWS_PER_TOKEN - 1)
    assert sum(r.request["count"] for r in rows) == same + probes


async def test_an_unreachable_store_answers_503_naming_it(
    client: Client, settings: Settings
) -> None:
    closed = f"postgresql://changegate@127.0.0.1:{free_port()}/changegate"
    down = settings.model_copy(update={"database_url": closed})
    changes = ChangeService(client, down)
    app = create_app(settings=down, changes=changes)
    try:
        async with from_address(app, "127.0.0.1") as http:
            api = await http.get("/api/v1/whoami", headers=bearer("cg_any"))
            assert api.status_code == 503 and api.headers["retry-after"] == "5"
            error = api.json()["error"]
            assert error["rule"] == "service.unavailable"
            assert error["dependency"] == "audit_store" and error["retry_after"] == 5
            assert "audit store" in error["reason"] and "127.0.0.1" not in error["reason"]

            form = await http.get("/ui/login")
            page = await http.post("/ui/login", data={"csrf": csrf_of(form), "token": "cg_x"})
            assert page.status_code == 503 and page.headers["retry-after"] == "5"
            assert "service.unavailable" in page.text
    finally:
        changes.close()


class Relay:
    """A TCP relay to Temporal that can be cut, connections and all: a real outage."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_an_unreachable_temporal_answers_503_naming_it(
    client: Client, settings: Settings, tokens: dict[str, str]
) -> None:
    relay = Relay(client.service_client.config.target_host)
    await relay.start()
    relayed = await Client.connect(
        relay.address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        retry_config=RetryConfig(max_retries=1, max_elapsed_time_millis=2000),
    )
    changes = ChangeService(relayed, settings)
    app = create_app(settings=settings, changes=changes)
    try:
        async with from_address(app, "127.0.0.1") as http:
            path, auth = "/api/v1/changes/chg-edge-none", bearer(tokens["approver"])
            assert (await http.get(path, headers=auth)).status_code == 404
            await relay.cut()
            down = await http.get(path, headers=auth)
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            error = down.json()["error"]
            assert error["rule"] == "service.unavailable" and error["dependency"] == "temporal"
            assert "Temporal" in error["reason"]
    finally:
        changes.close()
