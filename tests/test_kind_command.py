"""The `command` kind against a real executable: tests/kinds/command_scripts/tfvars.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from changegate.errors import (
    InvalidTarget,
    ProviderError,
    TargetNotFound,
    TargetTimeout,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.kinds.base import TargetKind
from changegate.kinds.command import (
    KIND,
    CommandHealthSource,
    CommandKindSettings,
    CommandProvider,
    CommandTarget,
)
from changegate.models import ChangeRequest, HealthCheck, Outcome, Stage, Target, UnitChange
from tests.kinds.command_scripts.pipeline import kinds_pipeline
from tests.support import FAST_ROLLOUT, approve_fully, wait_for_stage

SCRIPT = Path(__file__).parent / "kinds" / "command_scripts" / "tfvars.py"
ALLOW = ["TFVARS_DIR", "TFVARS_SLEEP", "TFVARS_FAIL"]
WORKSPACES = {
    "staging": {"instance_type": "t3.small", "replicas": 2, "region": "eu-west-1"},
    "prod-a": {"instance_type": "t3.large", "replicas": 4, "region": "eu-west-1"},
    "prod-b": {"instance_type": "t3.large", "replicas": 4, "region": "us-east-1"},
}


def tfvars_target(*, timeout: float = 20.0, allow: list[str] | None = None) -> CommandTarget:
    return CommandTarget(
        argv=[sys.executable, str(SCRIPT)],
        timeout_seconds=timeout,
        env_allowlist=ALLOW if allow is None else allow,
    )


@pytest.fixture
def workspaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, values in WORKSPACES.items():
        (tmp_path / f"{name}.tfvars.json").write_text(json.dumps(values))
    monkeypatch.setenv("TFVARS_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def provider(workspaces: Path) -> CommandProvider:
    return CommandProvider({"tfvars": tfvars_target()})


def target(**selector: str) -> Target:
    return Target(kind="command", selector={"command": "tfvars", **selector})


def request(parameters: dict[str, object], **selector: str) -> ChangeRequest:
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": "agent-7"},
            "intent": "Move the workspaces to a larger instance type for the sale.",
            "target": {"kind": "command", "selector": {"command": "tfvars", **selector}},
            "change": {"operation": "set_values", "parameters": parameters},
            "rollout": {"canary_units": 1, "waves": 2},
        }
    )


def on_disk(root: Path, unit: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((root / f"{unit}.tfvars.json").read_text())
    return loaded


def journal(root: Path) -> list[str]:
    path = root / ".changegate-keys.json"
    return json.loads(path.read_text()) if path.exists() else []  # type: ignore[no-any-return]


# resolve


def test_resolve_makes_the_selector_canonical(provider: CommandProvider) -> None:
    resolved = provider.resolve(target(instances="prod-b,prod-a,prod-b"))
    assert resolved.selector == {"command": "tfvars", "instances": "prod-a,prod-b"}
    assert resolved.label() == "command:command=tfvars"


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        ({"command": "tfvars", "argv": "/bin/sh"}, "target.selector.argv"),
        ({"command": "Tfvars"}, "target.selector.command"),
        ({"command": "other"}, "target.selector.command"),
        ({"command": "tfvars; rm -rf /"}, "target.selector.command"),
        ({"command": "tfvars", "instances": "a,,b"}, "target.selector.instances"),
        ({"command": "tfvars", "instances": "../etc"}, "target.selector.instances"),
        ({"instances": "a"}, "target.selector.command"),
    ],
)
def test_resolve_refuses_what_it_cannot_vouch_for(
    provider: CommandProvider, selector: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidTarget) as refused:
        provider.resolve(Target(kind="command", selector=selector))
    assert refused.value.field == field


def test_resolve_refuses_another_kind(provider: CommandProvider) -> None:
    with pytest.raises(InvalidTarget) as refused:
        provider.resolve(Target(kind="fleet", selector={"command": "tfvars"}))
    assert refused.value.field == "target.kind"


def test_settings_come_from_the_environment_and_refuse_relative_programs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CHANGEGATE_COMMAND_TARGETS",
        json.dumps({"tfvars": {"argv": ["/usr/bin/python3", "x.py"], "timeout_seconds": 5}}),
    )
    assert CommandKindSettings().targets["tfvars"].timeout_seconds == 5
    monkeypatch.setenv("CHANGEGATE_COMMAND_TARGETS", json.dumps({"t": {"argv": ["terraform"]}}))
    with pytest.raises(ValueError, match="absolute path"):
        CommandKindSettings()


def test_the_kind_is_a_target_kind() -> None:
    assert isinstance(KIND, TargetKind)
    assert KIND.name == "command" and set(KIND.operations) == {"set_values"}


# observe, plan


async def test_observe_reads_every_unit_through_the_script(provider: CommandProvider) -> None:
    observation = await provider.observe(target())
    assert {u.unit_id: u.state for u in observation.units} == WORKSPACES
    assert all(u.healthy for u in observation.units)
    assert observation.facts == {"workspace_count": 3}
    narrowed = await provider.observe(target(instances="staging"))
    assert [u.unit_id for u in narrowed.units] == ["staging"]


async def test_observe_of_a_missing_unit_is_target_not_found(provider: CommandProvider) -> None:
    with pytest.raises(TargetNotFound, match="nope"):
        await provider.observe(target(instances="nope,staging"))


async def test_plan_is_the_scripts_and_phased_canary_first(provider: CommandProvider) -> None:
    change = request({"instance_type": "m5.large"})
    plan = await provider.plan(change, await provider.observe(change.target))
    assert [[u.unit_id for u in phase] for phase in plan.phases] == [
        ["prod-a"],
        ["prod-b"],
        ["staging"],
    ]
    staging = plan.unit("staging")
    assert staging.before == {"instance_type": "t3.small"}
    assert staging.after == {"instance_type": "m5.large"}


@pytest.mark.parametrize(
    ("parameters", "match"),
    [
        ({"replicas": "many"}, "must be a int"),  # refused by the script (exit 2)
        ({"ami": "x"}, "not a variable"),
        ({"replicas": float("nan")}, "finite"),  # refused before the script runs
        ({"replicas": [1]}, "JSON scalar"),
        ({}, "at least one key"),
    ],
)
async def test_plan_refuses_parameters(
    provider: CommandProvider, parameters: dict[str, object], match: str
) -> None:
    change = request(parameters)
    with pytest.raises(UnsupportedOperation, match=match):
        await provider.plan(change, await provider.observe(change.target))


# apply, revert, read-back


async def test_apply_is_idempotent_under_a_repeated_key_and_revert_restores(
    provider: CommandProvider, workspaces: Path
) -> None:
    unit = UnitChange(
        unit_id="staging",
        phase="canary",
        before={"instance_type": "t3.small"},
        after={"instance_type": "m5.large"},
    )
    await provider.apply(target(), unit, idempotency_key="chg-1/staging/apply")
    assert (await provider.read_unit(target(), "staging"))["instance_type"] == "m5.large"
    # Someone changes it by hand; a retried apply with the same key must not overwrite that.
    (workspaces / "staging.tfvars.json").write_text(
        json.dumps({**WORKSPACES["staging"], "instance_type": "t3.medium"})
    )
    await provider.apply(target(), unit, idempotency_key="chg-1/staging/apply")
    assert on_disk(workspaces, "staging")["instance_type"] == "t3.medium"
    await provider.revert(target(), unit, idempotency_key="chg-1/staging/revert")
    assert on_disk(workspaces, "staging") == WORKSPACES["staging"]
    await provider.revert(target(), unit, idempotency_key="chg-1/staging/revert")
    assert journal(workspaces) == ["chg-1/staging/apply", "chg-1/staging/revert"]


async def test_writes_refuse_units_outside_the_selector(provider: CommandProvider) -> None:
    unit = UnitChange(unit_id="prod-a", phase="canary", before={}, after={"replicas": 1})
    with pytest.raises(InvalidTarget):
        await provider.apply(target(instances="staging"), unit, idempotency_key="k")
    with pytest.raises(InvalidTarget):
        await provider.read_unit(target(), "../staging")


async def test_a_missing_unit_is_target_not_found(provider: CommandProvider) -> None:
    with pytest.raises(TargetNotFound, match="no workspace 'gone'"):
        await provider.read_unit(target(), "gone")


async def test_agent_values_never_reach_a_shell(
    provider: CommandProvider, workspaces: Path
) -> None:
    payload = "$(touch pwned); `touch pwned`"
    unit = UnitChange(unit_id="staging", phase="canary", before={}, after={"region": payload})
    await provider.apply(target(), unit, idempotency_key="k-shell")
    assert on_disk(workspaces, "staging")["region"] == payload
    assert not list(workspaces.glob("pwned")) and not Path("pwned").exists()


# the executable's environment, time limit and failures


async def test_only_allowlisted_variables_reach_the_executable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGEGATE_TEST_SECRET", "s3cret")
    monkeypatch.setenv("SHOWN_TO_SCRIPT", "yes")
    echo = CommandTarget(
        argv=[
            sys.executable,
            "-c",
            "import json, os, sys; sys.stdin.read(); "
            "print(json.dumps({'state': dict(os.environ)}))",
        ],
        env_allowlist=["SHOWN_TO_SCRIPT"],
    )
    state = await CommandProvider({"echo": echo}).read_unit(
        Target(kind="command", selector={"command": "echo"}), "any"
    )
    # Python itself may set LC_CTYPE (PEP 538); nothing else comes from the worker.
    assert set(state) - {"LC_CTYPE"} == {"SHOWN_TO_SCRIPT"}


async def test_a_call_past_its_timeout_is_killed_as_a_timeout(
    workspaces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TFVARS_SLEEP", "30")
    slow = CommandProvider({"tfvars": tfvars_target(timeout=0.5)})
    with pytest.raises(TargetTimeout, match=r"did not answer within 0\.5s") as timed_out:
        await slow.observe(target())
    assert timed_out.value.retryable


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        ("75", TargetUnavailable, True),
        ("1", ProviderError, False),
        ("3", TargetNotFound, False),
        ("2", UnsupportedOperation, False),
    ],
)
async def test_exit_codes_map_to_typed_errors(
    workspaces: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    error: type[ProviderError],
    retryable: bool,
) -> None:
    monkeypatch.setenv("TFVARS_FAIL", f"apply:{code}")
    provider = CommandProvider({"tfvars": tfvars_target()})
    unit = UnitChange(unit_id="staging", phase="canary", before={}, after={"replicas": 1})
    with pytest.raises(error, match="apply failed on purpose") as raised:
        await provider.apply(target(), unit, idempotency_key="k")
    assert type(raised.value) is error and raised.value.retryable is retryable


async def test_an_answer_outside_the_contract_is_a_provider_error() -> None:
    liar = CommandTarget(
        argv=[sys.executable, "-c", "import sys; sys.stdin.read(); print('{\"units\": 3}')"]
    )
    with pytest.raises(ProviderError, match="not a valid ObserveAnswer: units"):
        await CommandProvider({"liar": liar}).observe(
            Target(kind="command", selector={"command": "liar"})
        )


async def test_a_missing_executable_is_a_provider_error() -> None:
    gone = CommandTarget(argv=["/nonexistent/changegate-script"])
    with pytest.raises(ProviderError, match="could not start"):
        await CommandProvider({"gone": gone}).observe(
            Target(kind="command", selector={"command": "gone"})
        )


# health


async def test_health_comes_from_the_scripts_health_call(
    provider: CommandProvider, workspaces: Path
) -> None:
    (workspaces / "prod-a.tfvars.json").write_text(json.dumps({"instance_type": "t3.nano"}))
    source = CommandHealthSource({"tfvars": tfvars_target()})
    values = await source.measure(
        {"command": "tfvars"}, ["prod-a", "staging"], [HealthCheck(metric="error_rate", max=0.1)]
    )
    assert [(v.unit_id, v.value) for v in values] == [("prod-a", 0.9), ("staging", 0.01)]


# end to end: the real dev server, a real worker, the real script


@pytest.mark.e2e
async def test_a_change_through_the_command_kind_rolls_back_when_health_fails(
    temporal: WorkflowEnvironment,
    workspaces: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CHANGEGATE_COMMAND_TARGETS",
        json.dumps({"tfvars": tfvars_target().model_dump()}),
    )
    async with kinds_pipeline(
        temporal.client, tmp_path_factory.mktemp("command-e2e"), KIND
    ) as changes:
        request = ChangeRequest.model_validate(
            {
                "agent": {"agent_id": "agent-7"},
                "intent": "Shrink the workspaces to t3.nano to save on idle capacity.",
                "target": {"kind": "command", "selector": {"command": "tfvars"}},
                "change": {"operation": "set_values", "parameters": {"instance_type": "t3.nano"}},
                "rollout": FAST_ROLLOUT,
                "health_checks": [{"metric": "error_rate", "max": 0.05}],
            }
        )
        change_id = await changes.submit(request)
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        assert journal(workspaces) == []  # nothing written before approval
        await approve_fully(changes, change_id)
        final = await changes.wait(change_id)

    assert final.outcome == Outcome.ROLLED_BACK, final.timeline
    # The canary (first in the script's plan) was applied, failed its gate and was reverted;
    # no other workspace was ever written.
    assert {name: on_disk(workspaces, name) for name in WORKSPACES} == WORKSPACES
    [canary] = [u for u in final.units if u.status == "reverted"]
    assert canary.unit_id == "prod-a"
    assert all(u.status == "pending" for u in final.units if u.unit_id != "prod-a")
    assert len(journal(workspaces)) == 2
