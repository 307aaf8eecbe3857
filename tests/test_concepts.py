"""One of each concept: the error table, the visibility query, kill-switch scopes, principals."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from changegate.admission import AdmissionRefused
from changegate.api.errors import install_error_handlers
from changegate.api.schemas import KillSwitchAction
from changegate.authority import Principal
from changegate.cli.context import run
from changegate.errors import (
    ERROR_TABLE,
    ApiError,
    ChangegateError,
    ChangeNotFound,
    ConfigurationError,
    ExitCode,
    InvalidInput,
    InvalidToken,
    NotFound,
    NoWorker,
    Refused,
    TargetUnavailable,
    TemporalUnreachable,
    Unauthenticated,
    Unavailable,
    answer_class,
    http_status,
    kind_of,
)
from changegate.mcp_server.auth import refusal
from changegate.models import ChangeRef, KillSwitchScope, Outcome, Stage
from changegate.policy.state import Admission
from changegate.service import ChangeService
from changegate.service.visibility import change_query, quote
from tests.support import Fleet, make_request, wait_until

# Every module that defines a changegate error, so the walk below sees them all.
_ERROR_HOMES = [
    "changegate.admission",
    "changegate.api",
    "changegate.client",
    "changegate.context",
    "changegate.mcp_server",
    "changegate.policy",
    "changegate.providers",
    "changegate.service",
]


def _tree(cls: type[ChangegateError]) -> Iterator[type[ChangegateError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _tree(sub)


def _changegate_errors() -> list[type[ChangegateError]]:
    for home in _ERROR_HOMES:
        importlib.import_module(home)
    # Subclasses a test module defines for itself are not part of the tree.
    return [c for c in _tree(ChangegateError) if c.__module__.startswith("changegate.")]


# ---- errors --------------------------------------------------------------------------------


def test_the_table_has_a_row_for_every_error_in_the_tree_and_no_other() -> None:
    classes = _changegate_errors()
    names = [c.__name__ for c in classes]
    assert len(names) == len(set(names)), "two changegate errors share a name"
    assert sorted(set(names) - set(ERROR_TABLE)) == []
    assert sorted(set(ERROR_TABLE) - set(names)) == []


def test_errors_outside_the_tree_came_in_and_keep_their_builtin_base() -> None:
    from changegate import client, mcp_server, service

    assert service.ChangeNotFound is ChangeNotFound and issubclass(ChangeNotFound, LookupError)
    assert service.TemporalUnreachable is TemporalUnreachable
    assert issubclass(TemporalUnreachable, ConnectionError)
    assert mcp_server.InvalidToken is InvalidToken and issubclass(InvalidToken, ValueError)
    assert client.Refused is Refused and issubclass(client.ApiError, ChangegateError)


@pytest.mark.parametrize(
    ("cls", "exit_code", "status"),
    [
        (ChangeNotFound, ExitCode.NOT_FOUND, 404),
        (NotFound, ExitCode.NOT_FOUND, 404),
        (InvalidInput, ExitCode.INVALID, 422),
        (InvalidToken, ExitCode.INVALID, 401),
        (ConfigurationError, ExitCode.INVALID, 500),
        (TemporalUnreachable, ExitCode.UNREACHABLE, 503),
        (NoWorker, ExitCode.UNREACHABLE, 503),
        (Unavailable, ExitCode.UNREACHABLE, 503),
        (Unauthenticated, ExitCode.REFUSED, 401),
        (Refused, ExitCode.REFUSED, 403),
        (AdmissionRefused, ExitCode.REFUSED, 409),
    ],
)
def test_the_codes_the_cli_and_api_have_always_used(
    cls: type[ChangegateError], exit_code: ExitCode, status: int
) -> None:
    assert kind_of(cls) == ERROR_TABLE[cls.__name__]
    assert (kind_of(cls).exit_code, kind_of(cls).http_status) == (exit_code, status)


def test_a_class_without_a_row_takes_its_nearest_ancestors() -> None:
    class PluginTimeout(TargetUnavailable):
        pass

    assert kind_of(PluginTimeout) is ERROR_TABLE["TargetUnavailable"]


def test_statuses_that_depend_on_the_instance() -> None:
    def refused(rule: str) -> AdmissionRefused:
        return AdmissionRefused(Admission.refuse(rule, reason="r", would_pass="w"))

    assert [http_status(refused(r)) for r in ("rate.agent", "scope.target", "target.x")] == [
        429,
        403,
        422,
    ]
    assert http_status(refused("one_active_change")) == 409
    assert http_status(Refused(409, rule="change.ended", reason="r")) == 409
    assert Refused(rule="auth.role", reason="r").status == 403
    assert [answer_class(s) for s in (401, 403, 404, 409, 422, 429, 503, 500)] == [
        Unauthenticated,
        Refused,
        NotFound,
        Refused,
        InvalidInput,
        Refused,
        Unavailable,
        ApiError,
    ]


def _samples() -> list[ChangegateError]:
    return [
        ChangeNotFound("no change 'chg-x'"),
        TemporalUnreachable("cannot reach Temporal"),
        NoWorker(task_queue="q", namespace="default", change_id="chg-x"),
        AdmissionRefused(Admission.refuse("rate.agent", reason="too many", would_pass="later")),
        AdmissionRefused(Admission.refuse("one_active_change", reason="busy", would_pass="wait")),
        Refused(409, rule="change.ended", reason="it ended"),
        NotFound(rule="not_found", reason="no incident"),
        TargetUnavailable("the fleet did not answer"),
        ConfigurationError("no such kind"),
    ]


@pytest.mark.parametrize("error", _samples(), ids=lambda e: type(e).__name__)
def test_the_cli_exits_with_the_tables_code(error: ChangegateError) -> None:
    @run
    async def command() -> None:
        raise error

    with pytest.raises(SystemExit) as ended:
        command()
    assert ended.value.code == kind_of(error).exit_code


@pytest.mark.parametrize("error", _samples(), ids=lambda e: type(e).__name__)
async def test_the_api_answers_with_the_tables_status(error: ChangegateError) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        answer = await http.get("/boom")
    assert answer.status_code == http_status(error)
    assert set(answer.json()["error"]) >= {"rule", "reason", "would_pass"}


# ---- visibility queries --------------------------------------------------------------------


def _parse(query: str) -> tuple[str, list[str]]:
    """The query with each string literal as `?`, and the literals' values, as Temporal reads
    them: a backslash escapes the next character, a bare quote ends the literal."""
    skeleton, literals, i = [], [], 0
    while i < len(query):
        if query[i] != "'":
            skeleton.append(query[i])
            i += 1
            continue
        value, i = [], i + 1
        while query[i] != "'":
            if query[i] == "\\":
                i += 1
            value.append(query[i])
            i += 1
        literals.append("".join(value))
        skeleton.append("?")
        i += 1
    return "".join(skeleton), literals


HOSTILE = [
    "plain",
    "it's",
    "x' OR ChangeAgent != '",
    "ends with a backslash\\",
    "\\' OR 'a' = 'a",
    "a\\\\'b",
    "'",
    "\\",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_stays_one_literal_whatever_it_holds(value: str) -> None:
    query = change_query(agent=value, target=value, running=True)
    skeleton, literals = _parse(query)
    assert skeleton == (
        "WorkflowType = ? AND ChangeAgent = ? AND ChangeTarget = ? AND ExecutionStatus = ?"
    )
    assert literals == ["ChangeWorkflow", value, value, "Running"]
    assert _parse(quote(value)) == ("?", [value])


def test_the_query_has_one_clause_per_filter() -> None:
    assert change_query() == "WorkflowType = 'ChangeWorkflow'"
    skeleton, literals = _parse(
        change_query(stage=Stage.ENDED, outcome=Outcome.ROLLED_BACK, risk="high", running=False)
    )
    assert skeleton == (
        "WorkflowType = ? AND ChangeStage = ? AND ChangeOutcome = ? AND ChangeRisk = ? "
        "AND ExecutionStatus != ?"
    )
    assert literals == ["ChangeWorkflow", "ENDED", "ROLLED_BACK", "high", "Running"]


@pytest.mark.e2e
async def test_temporal_reads_an_escaped_value_as_one_literal(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request())
    target = "fleet:service=checkout"

    async def listed() -> list[ChangeRef]:
        return [
            r for r in await changes.list(change_query(target=target)) if r.change_id == change_id
        ]

    [ref] = await wait_until(listed, what=f"{change_id} in the listing")
    assert (ref.agent, ref.target, ref.workflow_status) == ("agent-7", target, "RUNNING")
    # Unescaped, this would read `ChangeTarget = '...' OR ChangeTarget != ''`: every change.
    for value in (f"{target}' OR ChangeTarget != '", f"{target}\\", "\\' OR '1' = '1"):
        assert await changes.list(change_query(target=value)) == []


# ---- kill-switch scopes --------------------------------------------------------------------


def test_a_scope_parses_and_formats() -> None:
    assert KillSwitchScope("global") is not KillSwitchScope.GLOBAL
    assert KillSwitchScope("global") == KillSwitchScope.GLOBAL == "global"
    assert KillSwitchScope.GLOBAL.is_global and KillSwitchScope.GLOBAL.agent_id is None
    agent = KillSwitchScope("agent:agent-7")
    assert agent == KillSwitchScope.for_agent("agent-7") == KillSwitchScope.of("agent-7")
    assert (agent.agent_id, agent.is_global, str(agent)) == ("agent-7", False, "agent:agent-7")
    assert KillSwitchScope.of(None) == KillSwitchScope.GLOBAL
    assert KillSwitchScope.for_agent("team/bot@v2:1").agent_id == "team/bot@v2:1"


def test_a_scope_covers_its_agent_or_everyone() -> None:
    assert KillSwitchScope.GLOBAL.covers("agent-7")
    assert KillSwitchScope.for_agent("agent-7").covers("agent-7")
    assert not KillSwitchScope.for_agent("agent-7").covers("agent-8")


@pytest.mark.parametrize(
    "text",
    [
        *("", "Global", "global ", "team:a", "agent", "agents:a", "agent:", "agent: a"),
        *("agent:'a", "agent:a\n", "agent:-a", "agent:" + "a" * 129),
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="neither 'global' nor 'agent:<agent id>'"):
        KillSwitchScope(text)
    with pytest.raises(ValidationError):
        KillSwitchAction.model_validate({"scope": text, "action": "engage", "reason": "r"})


def test_a_scope_is_a_string_in_json_and_a_scope_in_python() -> None:
    class Holder(BaseModel):
        scope: KillSwitchScope

    held = Holder.model_validate_json('{"scope": "agent:a"}')
    assert type(held.scope) is KillSwitchScope and held.scope.agent_id == "a"
    assert held.model_dump_json() == '{"scope":"agent:a"}'
    schema = Holder.model_json_schema()["properties"]["scope"]
    assert schema["type"] == "string" and schema["pattern"] == KillSwitchScope.PATTERN
    body = KillSwitchAction.model_validate({"action": "engage", "reason": "r"})
    assert body.scope == KillSwitchScope.GLOBAL


# ---- principals ----------------------------------------------------------------------------


def _principal(role: str, agent_id: str | None = None, *roles: str) -> Principal:
    return Principal(token_id="tok-1", name="n", role=role, agent_id=agent_id, roles=(role, *roles))


def test_an_agent_token_acts_only_for_its_own_agent() -> None:
    agent = _principal("agent", "agent-7")
    assert agent.can("agent") and not agent.can("approver") and not agent.can("admin")
    assert agent.acts_for("agent-7") and not agent.acts_for("agent-8")
    assert agent.reads("agent-7") and not agent.reads("agent-8")


def test_an_admin_token_acts_for_any_agent_even_when_bound_to_one() -> None:
    for admin in (_principal("admin"), _principal("admin", "agent-7")):
        assert admin.can("agent") and admin.can("approver") and admin.can("admin")
        assert admin.acts_for("agent-7") and admin.acts_for("agent-8")
        assert refusal(admin) is None


def test_an_approver_reads_every_agent_but_acts_for_none() -> None:
    approver = _principal("approver")
    assert approver.reads("agent-7") and not approver.acts_for("agent-7")
    assert refusal(approver) is not None and "role(s) approver" in str(refusal(approver))
    both = _principal("approver", "agent-7", "agent")
    assert both.acts_for("agent-7") and not both.acts_for("agent-8") and both.reads("agent-8")


def test_a_token_without_a_capability_can_do_nothing() -> None:
    sre = _principal("sre")
    assert sre.capabilities == frozenset()
    assert not any(sre.can(c) for c in ("agent", "approver", "admin"))
    assert not sre.acts_for("agent-7") and not sre.reads("agent-7")
    unbound = Principal(token_id="t", name="n", role="approver", agent_id=None, roles=("agent",))
    assert unbound.can("agent") and not unbound.acts_for("agent-7")
    assert refusal(unbound) is not None


def test_the_api_and_the_mcp_server_share_the_principal() -> None:
    from changegate import api, mcp_server

    assert api.Principal is mcp_server.Principal is Principal


# ---- listings ------------------------------------------------------------------------------


def test_one_listing_shape_everywhere() -> None:
    from changegate import service
    from changegate.api.changes import router
    from changegate.mcp_server import ChangeList

    assert service.ChangeRef is ChangeRef
    assert ChangeList.model_fields["changes"].annotation == list[ChangeRef]
    [listing] = [r for r in router.routes if getattr(r, "name", "") == "list_changes"]
    assert getattr(listing, "response_model", None) == list[ChangeRef]
    assert set(ChangeRef.model_fields) == {
        "change_id",
        "workflow_status",
        "agent",
        "target",
        "stage",
        "outcome",
    }
