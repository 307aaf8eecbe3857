"""`changegate policy check FILE`: validate a policy file and print the policy in effect."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from changegate.cli.context import EXIT_OUTCOME, Context, fail, pass_context
from changegate.policy import PolicyError, load_policy

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Check policy files before changegate runs with them (`CHANGEGATE_POLICY_FILE`)."""


@policy.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_context
def check(ctx: Context, file: Path) -> None:
    """Validate FILE: each problem by its path (exit 1), else the effective policy.

    The effective policy is the file with every default filled in, as YAML (JSON with
    --json): what admission, validation and approval will consult.
    """
    try:
        effective = load_policy(file)
    except PolicyError as exc:
        problems = exc.problems
        if not problems:
            fail(str(exc), EXIT_OUTCOME, rule="policy.invalid")
        lines = [f"{file} is not a valid policy ({len(problems)} problem(s)):"]
        lines += [f"  {problem}" for problem in problems]
        fail(
            "\n".join(lines),
            EXIT_OUTCOME,
            rule="policy.invalid",
            reason=f"{file} is not a valid policy ({len(problems)} problem(s))",
            would_pass="the same file with each listed path corrected; "
            "src/policy/default.yaml documents every section",
            fields=[{"path": p.path, "message": p.reason} for p in problems],
        )
    data = effective.model_dump(mode="json")
    ctx.emit(data, yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
