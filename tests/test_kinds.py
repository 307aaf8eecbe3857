"""Kinds as plug-ins: a kind installed from its own package (tests/kinds/extkind, through its
`changegate.targets` entry point) is found by the registry, listed by the CLI, and runs a
change end to end through the real worker, with no line of changegate naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from changegate.kinds import ENTRY_POINT_GROUP, KindRegistry
from changegate.models import ChangeRequest, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.worker import running_worker
from tests.support import TEST_POLICY, approve_fully, make_request, wait_for_stage

ROOT = Path(__file__).parent.parent
INSTALL = "run ./scripts/venv.sh, which installs tests/kinds/extkind through its entry point"


def test_the_registry_finds_the_separately_installed_kind() -> None:
    registry = KindRegistry()
    assert "memo" in registry.names(), INSTALL
    memo = registry.get("memo")
    assert type(memo).__module__ == "memo_kind.kind"
    assert not (ROOT / "src").joinpath("kinds", "memo").exists()
    changegate_source = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py")
    )
    assert "memo_kind" not in changegate_source


def test_the_cli_lists_every_kind_with_keys_operations_and_metrics() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "changegate", "kinds", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    kinds = {k["name"]: k for k in json.loads(done.stdout)}
    assert kinds["memo"]["selector_keys"] == ["board", "instances"]
    assert "set_note" in kinds["memo"]["operations"]
    assert kinds["memo"]["parameters"]["set_note"]["priority"].startswith("integer 0..9")
    assert list(kinds["memo"]["metrics"]) == ["error_rate"]
    assert kinds["fleet"]["selector_keys"] == ["service", "instances"]
    assert set(kinds["fleet"]["metrics"]) == {"error_rate", "latency_p99_ms"}
    text = subprocess.run(
        [sys.executable, "-m", "changegate", "kinds"], capture_output=True, text=True, check=True
    ).stdout
    assert "- memo:" in text and "operation set_note" in text


def test_a_kind_whose_entry_point_is_misnamed_is_a_configuration_error() -> None:
    from changegate.errors import ConfigurationError
    from changegate.kinds.fleet import KIND

    with pytest.raises(ConfigurationError, match="two target kinds are named 'fleet'"):
        KindRegistry([KIND, KIND])
    assert ENTRY_POINT_GROUP == "changegate.targets"


# ---- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def memo_settings(
    client: Client, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    """A worker whose policy lets agents change memo boards; the memo file in its data dir."""
    policy = tmp_path_factory.mktemp("memo-policy") / "policy.yaml"
    policy.write_text(
        TEST_POLICY.read_text(encoding="utf-8").replace(
            'targets: ["fleet:*"]\n    operations: [set_config]',
            'targets: ["fleet:*", "memo:*"]\n    operations: [set_config, set_note]',
            1,
        )
    )
    own = settings.model_copy(
        update={
            "policy_file": policy,
            "task_queue": f"memo-{uuid.uuid4().hex[:8]}",
            "data_dir": tmp_path_factory.mktemp("memo-data"),
        }
    )
    async with running_worker(client, own):
        yield own


def memo_request(**parameters: object) -> ChangeRequest:
    base = make_request(assumptions={"unit_count": 3})
    return base.model_copy(
        update={
            "target": base.target.model_copy(update={"kind": "memo", "selector": {"board": "ops"}}),
            "change": base.change.model_copy(
                update={"operation": "set_note", "parameters": parameters}
            ),
        }
    )


@pytest.mark.e2e
async def test_a_change_on_the_separately_installed_kind_runs_to_done(
    client: Client, memo_settings: Settings
) -> None:
    path = memo_settings.data_dir / "memo.json"
    notes = {f"n-{i}": {"text": "hello", "priority": 1} for i in range(3)}
    path.write_text(json.dumps({"boards": {"ops": notes}, "receipts": {}, "writes": 0}))
    changes = ChangeService(client, memo_settings)
    try:
        change_id = await changes.submit(memo_request(text="ship it", priority=3))
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await approve_fully(changes, change_id)
        status = await changes.wait(change_id)
    finally:
        changes.close()
    assert status.outcome == Outcome.DONE, status.halt_reason
    written = json.loads(path.read_text())
    assert all(
        note == {"text": "ship it", "priority": 3} for note in written["boards"]["ops"].values()
    )
    assert written["writes"] == 3


@pytest.mark.e2e
async def test_the_front_door_refuses_a_parameter_the_kind_refuses(
    client: Client, memo_settings: Settings
) -> None:
    from changegate.admission import AdmissionRefused

    changes = ChangeService(client, memo_settings)
    try:
        with pytest.raises(AdmissionRefused) as caught:
            await changes.submit(memo_request(priority=10))
    finally:
        changes.close()
    assert caught.value.rule == "change.parameters"
    assert "change.parameters.priority" in caught.value.reason
