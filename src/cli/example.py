"""`changegate example [KIND]`: a complete, commented change request to start from.

Everything kind-specific comes from the `KindRegistry`: the selector keys, the first
operation and its parameters, the metrics. A value is the schema's own example where it has
one (`examples`, or an "e.g. 'x'" in the field's description), else the first enum member
or the lower bound of a range. When the kind's own checks refuse the result (a placeholder
its schema cannot guess), the first lines say so and what to fill in.
"""

from __future__ import annotations

import re
from typing import Any

import click
import yaml
from pydantic import BaseModel, ValidationError

from changegate.cli.context import Context, fail, pass_context
from changegate.errors import ChangegateError, InvalidTarget, kind_of, rule_of
from changegate.kinds import KindRegistry, TargetKind
from changegate.kinds.checks import parameter_summary
from changegate.models import ChangeRequest, RolloutSpec

_EG = re.compile(r"e\.g\. '([^']+)'")


@click.command()
@click.argument("kind", default="fleet")
@pass_context
def example(ctx: Context, kind: str) -> None:
    """Print a complete, commented change request for KIND (default: fleet), as YAML.

    Save it, edit the target and the change, then `changegate submit FILE`.
    """
    try:
        registry = KindRegistry()
        target_kind = registry.get(kind)
    except InvalidTarget as exc:
        code = kind_of(exc).exit_code
        fail(exc.reason, code, rule=rule_of(exc), would_pass=exc.would_pass)
    except ChangegateError as exc:
        fail(str(exc), kind_of(exc).exit_code, rule=rule_of(exc))
    text = example_request(target_kind)
    problem = _refusal(registry, target_kind, text)
    if problem:
        click.echo(f"# FILL IN before submitting; as printed, the kind refuses it: {problem}")
    click.echo(text, nl=False)


def _refusal(registry: KindRegistry, kind: TargetKind, text: str) -> str:
    """Why the kind would refuse `text` as a request, or "" when it accepts it."""
    try:
        registry.check(kind, ChangeRequest.model_validate(yaml.safe_load(text)))
    except (ValidationError, ChangegateError) as exc:
        return " ".join(str(exc).split())[:300]
    return ""


def example_request(kind: TargetKind) -> str:
    """The request for `kind` as commented YAML."""
    operation = next(iter(kind.operations.values()))
    selector = _values(kind.selector, required_only=True)
    parameters = _values(operation.parameters, required_only=True) or _values(
        operation.parameters, required_only=False, first=True
    )
    keys = parameter_summary(operation.parameters)
    rollout = RolloutSpec()
    lines = [
        f"# A change request for a {kind.name!r} target: {kind.description}",
        "# Submit it with `changegate submit FILE`; the API refuses what this kind does not offer.",
        "agent:",
        "  agent_id: my-agent          # your agent's stable id (your token must act for it)",
        "  model: my-model-1           # optional: model name/version",
        "  session_id: session-1       # optional: ties the change to your session",
        "intent: >-                    # why, in words (10-4000 characters)",
        "  Explain what this change fixes and how you know.",
        "target:",
        f"  kind: {kind.name}",
        f"  selector:                    # keys: {', '.join(kind.selector.model_fields)}",
        *_indented(selector, 4),
        "change:",
        f"  operation: {operation.name}  # {operation.description}",
        "  parameters:" + ("" if parameters else " {}"),
        *(f"    # {key}: {text}" for key, text in keys.items()),
        *_indented(parameters, 4),
        "assumptions: {}               # what you believe about the target, checked at VALIDATE",
        "evidence:                     # what you saw that motivates the change",
        "  - source: dashboard/my-service",
        "    excerpt: p99 latency rising since 18:00",
        "rollout:                      # the defaults; lower the bakes to move faster",
        f"  canary_units: {rollout.canary_units}",
        f"  waves: {rollout.waves}",
        f"  canary_bake_seconds: {rollout.canary_bake_seconds:g}",
        f"  wave_bake_seconds: {rollout.wave_bake_seconds:g}",
        f"  analysis_interval_seconds: {rollout.analysis_interval_seconds:g}",
        f"  analysis_count: {rollout.analysis_count}",
        f"  failure_limit: {rollout.failure_limit}",
        f"  inconclusive_limit: {rollout.inconclusive_limit}",
        f"  approval_timeout_seconds: {rollout.approval_timeout_seconds:g}",
    ]
    if kind.metrics:
        metric = next(iter(kind.metrics))
        lines += [
            f"# health_checks:               # metrics: {', '.join(kind.metrics)}",
            f"#   - metric: {metric}",
            "#     max: 0.05",
        ]
    return "\n".join(lines) + "\n"


def _values(schema: type[BaseModel], *, required_only: bool, first: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = schema.model_json_schema().get("properties", {})
    required = set(schema.model_json_schema().get("required", []))
    values = {}
    for key, prop in properties.items():
        if required_only and key not in required:
            continue
        values[key] = _value(prop)
        if first:
            break
    return values


def _value(prop: dict[str, Any]) -> Any:
    if prop.get("examples"):
        return prop["examples"][0]
    if found := _EG.search(prop.get("description", "")):
        return found.group(1)
    option = next((p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"), prop)
    if "enum" in option:
        return option["enum"][0]
    if option.get("type") in ("integer", "number"):
        return option.get("minimum", 1)
    if option.get("type") == "boolean":
        return True
    if option.get("type") == "object":
        return {}
    if option.get("type") == "array":
        return []
    return "example"


def _indented(values: dict[str, Any], indent: int) -> list[str]:
    if not values:
        return []
    text = yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    return [" " * indent + line for line in text.splitlines()]
