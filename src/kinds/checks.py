"""The checks a kind applies to a change before anyone is asked to approve it.

Parameters are validated against the operation's `Parameters` schema in strict mode: a wrong
type, a value out of range, an unknown key, NaN or Infinity is refused with the field's path,
never coerced (JSON's `NaN` and `1e400` reach us as float nan and inf, and would otherwise be
stored as null). The request keeps the parameters exactly as sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import JsonValue, ValidationError

from changegate.errors import InvalidChange
from changegate.kinds.base import Operation, Parameters, TargetKind
from changegate.models import ChangeRequest, HealthCheck

OPERATION_RULE = "change.operation"
PARAMETERS_RULE = "change.parameters"
HEALTH_RULE = "change.health_checks"

_SHOWN_MAX = 80


def check_change(kind: TargetKind, request: ChangeRequest) -> None:
    """Refuse an operation `kind` lacks, parameters its schema refuses, or unknown metrics."""
    operation = operation_of(kind, request.change.operation)
    check_parameters(operation, request.change.parameters)
    check_metrics(kind, request.health_checks)


def operation_of(kind: TargetKind, name: str) -> Operation:
    """The operation `name` of `kind`, or `InvalidChange` listing the ones it offers."""
    try:
        return kind.operations[name]
    except KeyError:
        offered = ", ".join(sorted(kind.operations)) or "none"
        raise InvalidChange(
            rule=OPERATION_RULE,
            field="change.operation",
            reason=f"change.operation {_shown(name)} is not an operation of kind {kind.name!r}; "
            f"it offers: {offered}",
            would_pass=f"change.operation one of: {offered}",
        ) from None


def check_parameters(operation: Operation, parameters: dict[str, JsonValue]) -> None:
    """Refuse parameters outside `operation.parameters`, naming the first field at fault."""
    for path, value in _non_finite(parameters, ()):
        field = _field(path)
        raise InvalidChange(
            rule=PARAMETERS_RULE,
            field=field,
            reason=f"{field} is {value!r}, which is not a number JSON can carry; it would be "
            "stored as null and fail only when applied",
            would_pass=f"a finite value; {operation.name} takes {describe(operation.parameters)}",
        )
    try:
        operation.parameters.model_validate(parameters, strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error.get("loc", ()))
        field = _field(loc)
        if error["type"] == "extra_forbidden":
            problem = f"is not a parameter of {operation.name}"
        else:
            got = "" if error["type"] == "missing" else f" (got {_shown(error.get('input'))})"
            problem = f"is refused: {error['msg']}{got}"
        raise InvalidChange(
            rule=PARAMETERS_RULE,
            field=field,
            reason=f"{field} {problem}",
            would_pass=f"{operation.name} takes {describe(operation.parameters)}",
        ) from None


def check_metrics(kind: TargetKind, checks: Sequence[HealthCheck]) -> None:
    """Refuse a health check on a metric the kind does not offer."""
    offered = ", ".join(sorted(kind.metrics)) or "none"
    for index, check in enumerate(checks):
        if check.metric not in kind.metrics:
            field = f"health_checks.{index}.metric"
            raise InvalidChange(
                rule=HEALTH_RULE,
                field=field,
                reason=f"{field} {_shown(check.metric)} is not a metric of kind "
                f"{kind.name!r}; it measures: {offered}",
                would_pass=f"health checks on: {offered}",
            )


def describe(schema: type[Parameters]) -> str:
    """The keys a parameter schema takes, each with its type and range, on one line."""
    return "; ".join(f"{key}: {text}" for key, text in parameter_summary(schema).items())


def parameter_summary(schema: type[Parameters]) -> dict[str, str]:
    """Each key of a parameter schema with its type, range and description."""
    properties: dict[str, Any] = schema.model_json_schema().get("properties", {})
    required = set(schema.model_json_schema().get("required", []))
    summary = {}
    for key, prop in properties.items():
        text = _type_text(prop)
        if key in required:
            text += ", required"
        if prop.get("description"):
            text += f" ({prop['description']})"
        summary[key] = text
    return summary


def _type_text(prop: dict[str, Any]) -> str:
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    return " or ".join(_one_type(p) for p in options) or "any JSON value"


def _one_type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {prop['const']!r}"
    text = str(prop.get("type", "any JSON value"))
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is not None or high is not None:
        text += f" {'' if low is None else low}..{'' if high is None else high}"
    if "minLength" in prop or "maxLength" in prop:
        text += f" of {prop.get('minLength', 0)}-{prop.get('maxLength', '')} characters"
    return text


def _non_finite(value: JsonValue, path: tuple[str | int, ...]) -> Iterator[tuple[Any, float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, index))


def _field(loc: tuple[str | int, ...]) -> str:
    return ".".join(["change.parameters", *(str(part) for part in loc)])


def _shown(value: object) -> str:
    text = ascii(value)
    return text if len(text) <= _SHOWN_MAX else f"{text[: _SHOWN_MAX - 3]}..."
