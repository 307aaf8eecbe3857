"""The command kind's contract harness: the real tfvars script over three workspace files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.kinds.contract import Harness, register

from changegate.kinds.command import CommandTarget
from changegate.models import Target
from changegate.settings import Settings

SCRIPT = Path(__file__).parent / "command_scripts" / "tfvars.py"
WORKSPACES = {
    "staging": {"instance_type": "t3.small", "replicas": 2, "region": "eu-west-1"},
    "prod-a": {"instance_type": "t3.large", "replicas": 4, "region": "eu-west-1"},
    "prod-b": {"instance_type": "t3.large", "replicas": 4, "region": "us-east-1"},
}


@register("command")
def command_harness(request: pytest.FixtureRequest) -> Harness:
    """Target `tfvars` (tests/kinds/command_scripts/tfvars.py) with its files in `tmp_path`."""
    tmp: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    root = tmp / "tfvars"
    root.mkdir()
    for name, values in WORKSPACES.items():
        (root / f"{name}.tfvars.json").write_text(json.dumps(values))
    tfvars = CommandTarget(
        argv=[sys.executable, str(SCRIPT)],
        timeout_seconds=20,
        env_allowlist=["TFVARS_DIR"],
        keys=["instance_type", "replicas", "region"],  # the script's variables
    )
    # The kind builds its provider from its own settings, read from the environment.
    monkeypatch.setenv("TFVARS_DIR", str(root))
    monkeypatch.setenv("CHANGEGATE_COMMAND_TARGETS", json.dumps({"tfvars": tfvars.model_dump()}))
    return Harness(
        settings=Settings(data_dir=tmp),
        target=Target(kind="command", selector={"command": "tfvars"}),
        operation="set_values",
        parameters={"instance_type": "m5.xlarge", "replicas": 6},
        spellings=[
            (
                Target(
                    kind="command",
                    selector={"command": "tfvars", "instances": "staging,prod-a,staging"},
                ),
                Target(
                    kind="command", selector={"command": "tfvars", "instances": "prod-a,staging"}
                ),
            )
        ],
        bad_selectors=[
            ({"command": "Tfvars"}, "target.selector.command"),
            ({"command": "terraform"}, "target.selector.command"),
            ({"command": "tfvars", "argv": "/bin/sh"}, "target.selector.argv"),
            ({"command": "tfvars", "instances": "a,,b"}, "target.selector.instances"),
            ({"command": "tfvars", "instances": "../etc"}, "target.selector.instances"),
            ({"instances": "staging"}, "target.selector.command"),
        ],
        bad_parameters=[
            ({"instance_type": ["m5.large"]}, "change.parameters.instance_type"),
            ({"replicas": {"min": 2}}, "change.parameters.replicas"),
            ({"ami": "ami-123"}, "change.parameters.ami"),
            ({"bad key": 1}, "change.parameters.bad key"),
            ({}, "change.parameters"),
        ],
    )
