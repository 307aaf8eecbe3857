"""The HTTP API served for real on loopback, driven with httpx against the real stack."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from temporalio.client import Client

from changegate.api import create_app, ensure_first_approver
from changegate.cli.api import api as api_command
from changegate.cli.api import token as token_group
from changegate.cli.context import Context
from changegate.models import Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import (
    Store,
    create_token,
    get_change,
    list_refusals,
    open_store,
    revoke_token,
)
from tests.support import Fleet, make_request, wait_until

pytestmark = pytest.mark.e2e

AGENT = "api-agent"


@pytest.fixture
def api(api_url: str) -> str:
    """The session's API and approval page."""
    return api_url


@pytest.fixture(scope="module")
def tokens(store: Store) -> dict[str, str]:
    """One token per kind of caller; approvers named as in the test policy."""
    with store.session() as session:
        return {
            "admin": create_token(session=session, name="api-admin", role="admin"),
            "alice": create_token(
                session=session, name="alice", role="approver", roles=["sre", "dev"]
            ),
            "bob": create_token(session=session, name="bob", role="approver", roles=["sre"]),
            "agent": create_token(session=session, name=AGENT, role="agent", agent_id=AGENT),
        }


@pytest.fixture
async def http(api: str, fleet: Fleet) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's API, with the fleet, incidents and kill switches reset
    (another module's rollback must not freeze this module's targets)."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def request_body(
    service: str = "checkout", parameters: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    """A request by AGENT; by default checkout's pool to 24, as every DONE test sets it.

    Changes that end DONE keep to that value so no test leaves an A -> B -> A history
    (the `flip_flop` rule) for tests after it.
    """
    body = make_request(
        service=service,
        parameters=parameters,
        assumptions=None if service == "checkout" else {},
        agent_id=AGENT,
    ).model_dump(mode="json")
    body.update(overrides)
    return body


async def wait_released(store: Store, change_id: str) -> None:
    """Until the audit store records the change as ended, freeing its target for later tests."""

    def ended() -> bool:
        with store.session() as session:
            row = get_change(session=session, change_id=change_id)
            return row is not None and row.outcome is not None

    await wait_until(ended, within=60, interval=0.2, what=f"{change_id} released in the store")


async def submit(http: httpx.AsyncClient, token: str, body: dict[str, Any]) -> str:
    response = await http.post("/api/v1/changes", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    change_id: str = response.json()["change_id"]
    return change_id


async def status_of(http: httpx.AsyncClient, token: str, change_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/changes/{change_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_stage(
    http: httpx.AsyncClient, token: str, change_id: str, stage: Stage
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = await status_of(http, token, change_id)
        return status if status["stage"] == stage.value else None

    found: dict[str, Any] = await wait_until(check, within=60, interval=0.2, what=stage.value)
    return found


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["rule"] and error["reason"], error
    return error


async def test_submit_approve_done_with_the_tokens_identity(
    http: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    body = request_body()
    response = await http.post("/api/v1/changes", json=body, headers=bearer(tokens["agent"]))
    assert response.status_code == 201, response.text
    created = response.json()
    change_id = created["change_id"]
    assert response.headers["location"] == f"/api/v1/changes/{change_id}"
    assert created["links"]["approve"] == f"/api/v1/changes/{change_id}/approve"
    assert created["links"]["workflow"].endswith(f"/workflows/{change_id}")

    pending = await wait_stage(http, tokens["agent"], change_id, Stage.AWAITING_APPROVAL)
    assert pending["summary"] and pending["timeline"]
    listed = await http.get(
        "/api/v1/changes", params={"pending": "true"}, headers=bearer(tokens["bob"])
    )
    assert listed.status_code == 200

    decision = await http.post(
        f"/api/v1/changes/{change_id}/approve",
        json={"actor": "mallory", "reason": "looks right"},
        headers=bearer(tokens["alice"]),
    )
    assert decision.status_code == 200, decision.text
    assert decision.json()["actor"] == "alice" and decision.json()["counted"] is True

    async def ended() -> dict[str, Any] | None:
        status = await status_of(http, tokens["agent"], change_id)
        return status if status["outcome"] else None

    final = await wait_until(ended, within=90, interval=0.3, what="the change to end")
    assert final["outcome"] == Outcome.DONE.value, final["timeline"]
    assert [a["actor"] for a in final["approvals"]] == ["alice"]
    approved = [e for e in final["timeline"] if e["kind"] == "approved"]
    assert [e["actor"] for e in approved] == ["alice"]
    assert "mallory" not in json.dumps(final)
    await wait_released(store, change_id)

    again = await http.post(f"/api/v1/changes/{change_id}/approve", headers=bearer(tokens["bob"]))
    assert again.status_code == 409
    assert error_of(again)["rule"] in {"approval.not_awaiting", "change.ended"}


async def test_agent_token_on_approver_calls_is_refused_and_recorded(
    http: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    change_id = await submit(http, tokens["agent"], request_body("payments", {"log_level": "info"}))
    await wait_stage(http, tokens["agent"], change_id, Stage.AWAITING_APPROVAL)
    try:
        for verb in ("approve", "pause"):
            response = await http.post(
                f"/api/v1/changes/{change_id}/{verb}", json={}, headers=bearer(tokens["agent"])
            )
            assert response.status_code == 403, response.text
            error = error_of(response)
            assert error["rule"] == "auth.role" and AGENT in error["reason"]

        with store.session() as session:
            refusals = list_refusals(session=session, agent_id=AGENT)
        mine = [r for r in refusals if r.target_label == f"change:{change_id}"]
        assert {r.rule for r in mine} == {"auth.role"}
        assert {r.request["action"] for r in mine} == {"approve", "pause"}
        for blank in (None, {"reason": " \r\n "}):
            response = await http.post(
                f"/api/v1/changes/{change_id}/reject", json=blank, headers=bearer(tokens["bob"])
            )
            assert response.status_code == 422, response.text
            assert error_of(response)["rule"] == "decision.reason_required"
        status = await status_of(http, tokens["admin"], change_id)
        assert status["approvals"] == [] and status["stage"] == Stage.AWAITING_APPROVAL.value
    finally:
        rejected = await http.post(
            f"/api/v1/changes/{change_id}/reject",
            json={"reason": "test over"},
            headers=bearer(tokens["bob"]),
        )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["actor"] == "bob"
    await wait_released(store, change_id)


async def test_self_approval_does_not_count_and_names_its_rule(
    http: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    with store.session() as session:
        same_name = create_token(session=session, name=AGENT, role="approver")
    change_id = await submit(http, tokens["agent"], request_body("search", {"log_level": "warn"}))
    await wait_stage(http, tokens["agent"], change_id, Stage.AWAITING_APPROVAL)
    response = await http.post(f"/api/v1/changes/{change_id}/approve", headers=bearer(same_name))
    assert response.status_code == 409, response.text
    assert error_of(response)["rule"] == "approval.self"
    aborted = await http.post(
        f"/api/v1/changes/{change_id}/abort",
        json={"reason": "test over"},
        headers=bearer(tokens["admin"]),
    )
    assert aborted.status_code == 202 and aborted.json() == {
        "change_id": change_id,
        "sent": "abort",
        "actor": "api-admin",
    }
    await wait_released(store, change_id)


async def test_an_agent_token_submits_only_as_its_own_agent(
    http: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    body = request_body("search", {"log_level": "debug"})
    body["agent"]["agent_id"] = "someone-else"
    response = await http.post("/api/v1/changes", json=body, headers=bearer(tokens["agent"]))
    assert response.status_code == 403
    error = error_of(response)
    assert error["rule"] == "auth.agent_id"
    assert "someone-else" in error["reason"] and AGENT in error["would_pass"]
    with store.session() as session:
        rules = [r.rule for r in list_refusals(session=session, agent_id=AGENT)]
    assert "auth.agent_id" in rules

    other = await http.get(
        "/api/v1/changes", params={"agent": "someone-else"}, headers=bearer(tokens["agent"])
    )
    assert other.status_code == 403 and error_of(other)["rule"] == "auth.owner"


async def test_admission_refusals_name_the_rule(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    delete_all = request_body("search", {})
    delete_all["change"]["operation"] = "delete_all"
    response = await http.post("/api/v1/changes", json=delete_all, headers=bearer(tokens["agent"]))
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["rule"] == "change.operation"
    assert "delete_all" in error["reason"] and "set_config" in error["would_pass"]

    frozen = request_body("ledger", {"log_level": "debug"})
    response = await http.post("/api/v1/changes", json=frozen, headers=bearer(tokens["agent"]))
    assert response.status_code == 409, response.text
    error = error_of(response)
    assert error["rule"] == "freeze_window" and "ledger" in error["reason"]
    assert error["would_pass"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [('"lots"', "'lots'"), ("-5", "-5"), ("1e400", "inf"), ("NaN", "nan"), ("8.0", "8.0")],
)
async def test_parameters_the_kind_refuses_answer_422_naming_the_field(
    http: httpx.AsyncClient, tokens: dict[str, str], value: str, shown: str
) -> None:
    # Raw JSON: `1e400` and `NaN` are what an agent's serializer may send, and must never
    # reach the workflow as null.
    text = json.dumps(request_body("search", {"pool_size": 1})).replace(
        '"pool_size": 1', f'"pool_size": {value}'
    )
    response = await http.post(
        "/api/v1/changes",
        content=text,
        headers={**bearer(tokens["agent"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["rule"] == "change.parameters"
    assert "change.parameters.pool_size" in error["reason"] and shown in error["reason"]
    assert "pool_size: integer 1..10000" in error["would_pass"]


async def test_schema_errors_name_each_field(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = request_body("search", {"log_level": "debug"})
    body["rollout"]["canary_units"] = 0
    del body["intent"]
    response = await http.post("/api/v1/changes", json=body, headers=bearer(tokens["agent"]))
    assert response.status_code == 422
    error = error_of(response)
    assert error["rule"] == "schema"
    paths = {f["path"]: f["message"] for f in error["fields"]}
    assert "greater than or equal to 1" in paths["rollout.canary_units"]
    assert "intent" in paths

    broken = await http.post(
        "/api/v1/changes",
        content=b"{not json",
        headers={**bearer(tokens["agent"]), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422 and error_of(broken)["rule"] == "schema"


async def test_missing_or_unknown_tokens_get_401(http: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("cg_never-issued"), {"Authorization": "Basic YTpi"}):
        response = await http.get("/api/v1/changes", headers=headers)
        assert response.status_code == 401
        assert error_of(response)["rule"] == "auth.token"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_bodies_over_the_limit_get_413(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    huge = request_body("search", {"log_level": "debug"}, intent="x" * 400_000)
    response = await http.post("/api/v1/changes", json=huge, headers=bearer(tokens["agent"]))
    assert response.status_code == 413
    assert error_of(response)["rule"] == "request.size"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 10_000

    streamed = await http.post(
        "/api/v1/changes",
        content=chunks(),
        headers={**bearer(tokens["agent"]), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert error_of(streamed)["rule"] == "request.size"


async def test_other_errors_share_the_body(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    missing = await http.get("/api/v1/changes/chg-nonexistent", headers=bearer(tokens["admin"]))
    assert missing.status_code == 404 and error_of(missing)["rule"] == "not_found"
    wrong_method = await http.delete("/api/v1/changes", headers=bearer(tokens["admin"]))
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["rule"] == "method_not_allowed"
    nowhere = await http.get("/api/v1/nowhere")
    assert nowhere.status_code == 404 and error_of(nowhere)["rule"] == "not_found"
    schema = await http.get("/openapi.json")
    assert "/api/v1/changes/{change_id}/approve" in schema.json()["paths"]


async def test_an_unexpected_failure_answers_500_with_the_body(
    client: Client, settings: Settings
) -> None:
    changes = ChangeService(client, settings)
    app = create_app(settings=settings, changes=changes)

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as local:
        response = await local.get("/api/v1/boom")
    changes.close()
    assert response.status_code == 500
    error = error_of(response)
    assert error["rule"] == "internal" and "RuntimeError" in error["reason"]
    assert "a bug" not in response.text


async def _log_in(http: httpx.AsyncClient, token: str) -> httpx.Response:
    """The login form's POST with the CSRF token its page carries."""
    form = await http.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    return await http.post("/ui/login", data={"token": token, "csrf": csrf.group(1)})


async def test_the_web_page_guards_its_sessions_and_forms(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    anonymous = await http.get("/ui/")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"
    forged = await http.post("/ui/login", data={"token": tokens["alice"], "csrf": "guess"})
    assert forged.status_code == 403 and "changegate_session" not in forged.cookies
    agent = await _log_in(http, tokens["agent"])
    assert agent.status_code == 403 and "may not decide" in agent.text

    login = await _log_in(http, tokens["alice"])
    assert login.status_code == 303 and login.headers["location"] == "/ui/"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    page = await http.get("/ui/")
    assert page.status_code == 200 and "signed in as alice (approver)" in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    no_csrf = await http.post("/ui/changes/chg-none/approve", data={"csrf": "wrong"})
    assert no_csrf.status_code == 403 and "csrf" in no_csrf.text
    missing = await http.get("/ui/changes/chg-none")
    assert missing.status_code == 404 and "not_found" in missing.text


async def test_kill_switch_and_incident_routes(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    scope = "agent:api-killswitch-probe"
    engage = {"scope": scope, "action": "engage", "mode": "pause", "reason": "api test"}
    refused = await http.post("/api/v1/killswitches", json=engage, headers=bearer(tokens["agent"]))
    assert refused.status_code == 403
    engaged = await http.post("/api/v1/killswitches", json=engage, headers=bearer(tokens["bob"]))
    assert engaged.status_code == 200, engaged.text
    assert engaged.json()["engaged"] is True and engaged.json()["actor"] == "bob"
    listed = await http.get("/api/v1/killswitches", headers=bearer(tokens["bob"]))
    assert {"scope": scope, "engaged": True, "actor": "bob"}.items() <= next(
        s for s in listed.json() if s["scope"] == scope
    ).items()
    release = {**engage, "action": "release"}
    released = await http.post("/api/v1/killswitches", json=release, headers=bearer(tokens["bob"]))
    assert released.status_code == 200 and released.json()["engaged"] is False

    incidents = await http.get("/api/v1/incidents", headers=bearer(tokens["alice"]))
    assert incidents.status_code == 200
    unknown = await http.get("/api/v1/incidents/inc-none", headers=bearer(tokens["alice"]))
    assert unknown.status_code == 404 and error_of(unknown)["rule"] == "not_found"


async def test_a_revoked_token_is_refused(http: httpx.AsyncClient, store: Store) -> None:
    with store.session() as session:
        issued = create_token(session=session, name="short-lived", role="agent", agent_id=AGENT)
    me = await http.get("/api/v1/whoami", headers=bearer(issued))
    assert me.status_code == 200 and me.json()["capabilities"] == ["agent"]
    with store.session() as session:
        assert revoke_token(session=session, token_id=me.json()["token_id"])
    assert (await http.get("/api/v1/whoami", headers=bearer(issued))).status_code == 401


def test_token_commands_issue_list_and_revoke(settings: Settings, store: Store) -> None:
    runner = CliRunner()
    obj = Context(settings, as_json=True)
    created = runner.invoke(
        token_group,
        ["create", "--name", "carol", "--role", "approver", "--roles", "dev"],
        obj=obj,
    )
    assert created.exit_code == 0, created.output
    issued = json.loads(created.output)
    assert issued["token"].startswith("cg_") and issued["roles"] == ["dev"]

    listed = json.loads(runner.invoke(token_group, ["list"], obj=obj).output)
    assert issued["token"] not in json.dumps(listed)
    carol = next(t for t in reversed(listed) if t["name"] == "carol")
    assert carol["roles"] == ["approver", "dev"] and carol["revoked"] is False

    revoked = runner.invoke(token_group, ["revoke", carol["token_id"]], obj=obj)
    assert revoked.exit_code == 0, revoked.output
    missing = runner.invoke(token_group, ["revoke", "tok-none"], obj=obj)
    assert missing.exit_code == 3

    agent_without_id = runner.invoke(
        token_group, ["create", "--name", "x", "--role", "agent"], obj=obj
    )
    assert agent_without_id.exit_code == 2 and "agent_id" in agent_without_id.output
    assert ensure_first_approver(store) is None


def test_api_refuses_a_non_loopback_host_without_allow_remote(settings: Settings) -> None:
    result = CliRunner().invoke(
        api_command, ["--host", "0.0.0.0", "--port", "1"], obj=Context(settings, as_json=False)
    )
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_first_approver_is_created_once(tmp_path: Path) -> None:
    with open_store(tmp_path / "fresh.db") as fresh:
        first = ensure_first_approver(fresh)
        assert first is not None and first.startswith("cg_")
        assert ensure_first_approver(fresh) is None
