"""`changegate policy check FILE`, run as a user runs it: problems by path, or the policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from changegate.policy import load_policy

BAD = """\
agents:
  agent-7:
    targets: [""]
    operations: [set_config]
    colour: red
risk_tiers:
  high:
    approvals: 0
context_sources:
  - kind: http
    url: ftp://example.com/flags
"""

UNREACHABLE_QUORUM = """\
approvers:
  alice: {roles: [sre]}
risk_tiers:
  medium: {approvals: 3, roles: [sre]}
  high: {approvals: 2}
"""

GOOD = """\
agents:
  agent-7:
    targets: ["fleet:service=checkout"]
    operations: [set_config]
    max_units: 4
approvers:
  alice: {roles: [sre]}
  bob: {roles: [sre]}
"""


def check(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "changegate", "policy", "check", str(path), *args],
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_each_problem_is_named_by_its_path_and_the_exit_code_is_1(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BAD)
    result = check(path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {path} is not a valid policy (4 problem(s)):"
    assert set(lines[1:]) == {
        "  agents.agent-7.targets[0]: String should have at least 1 character",
        "  agents.agent-7.colour: unknown field 'colour'; expected one of: targets, "
        "operations, max_units, changes_per_hour, max_in_flight",
        "  risk_tiers.high.approvals: Input should be greater than or equal to 1",
        "  context_sources[0].url: String should match pattern '^https?://\\S+$'",
    }


def test_a_whole_policy_check_names_each_tier_on_its_own_path(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(UNREACHABLE_QUORUM)
    result = check(path, "--json")
    assert result.returncode == 1
    error = json.loads(result.stderr)["error"]
    assert error["rule"] == "policy.invalid"
    assert error["reason"] == f"{path} is not a valid policy (2 problem(s))"
    assert error["would_pass"]
    assert error["fields"] == [
        {
            "path": "risk_tiers.medium",
            "message": "needs 3 approval(s) from roles sre, but only 1 listed approver(s) "
            "qualify (alice)",
        },
        {
            "path": "risk_tiers.high",
            "message": "needs 2 approval(s) from any role, but only 1 listed approver(s) "
            "qualify (alice)",
        },
    ]


def test_a_key_written_twice_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD + "agents: {}\n")
    result = check(path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {path}:9:1: not valid YAML: duplicate key 'agents' (first at line 1); keep one"
    )


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = check(tmp_path / "nowhere.yaml")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot read policy file {tmp_path / 'nowhere.yaml'}: No such file or directory"
    )


def test_a_valid_policy_prints_the_effective_policy_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    result = check(path)
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    # The file's own values ...
    assert effective["agents"]["agent-7"]["max_units"] == 4
    assert effective["approvers"]["bob"] == {"roles": ["sre"]}
    # ... and every default filled in, as changegate will run with it.
    assert effective["risk_tiers"]["high"]["approvals"] == 2
    assert effective["loop_detection"]["max_repeats"] == 3
    assert effective["findings"]["maintenance-window"] == "block"
    assert effective["one_change_per_target"] is True
    assert effective == load_policy(path).model_dump(mode="json")
    as_json = check(path, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == effective


def test_the_shipped_default_policy_checks_clean() -> None:
    shipped = Path(__file__).parents[1] / "src" / "policy" / "default.yaml"
    result = check(shipped, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == load_policy(None).model_dump(mode="json")
