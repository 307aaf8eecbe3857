"""Tool input schemas completed from the kind registry, so an agent learns the valid names.

The models describe every field in general terms; what only the running deployment knows
(its installed kinds, their operations, parameter keys, selector keys and metrics) is added
here: enums where the names are exhaustive, descriptions where they guide.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

from changegate.kinds.base import KindInfo

__all__ = ["registry_tool", "with_registry"]

Schema = dict[str, Any]


def _per_kind(infos: Sequence[KindInfo], what: Callable[[KindInfo], Sequence[str]]) -> str:
    return "; ".join(f"{i.name}: {', '.join(what(i)) or 'none'}" for i in infos)


def _target(props: Schema, infos: Sequence[KindInfo]) -> None:
    """A target's `kind` and `selector`, wherever a schema has them."""
    if "kind" in props:
        props["kind"]["enum"] = [i.name for i in infos]
        props["kind"]["description"] = "The target kind: " + ", ".join(
            f"{i.name} ({i.description})" for i in infos
        )
    if "selector" in props:
        props["selector"]["description"] = (
            "The kind's selector, e.g. {'service': 'checkout'}. Keys by kind: "
            + _per_kind(infos, lambda i: i.selector_keys)
        )


def _change(props: Schema, infos: Sequence[KindInfo]) -> None:
    """A change's `operation` and `parameters`."""
    props["operation"]["enum"] = sorted({op for i in infos for op in i.operations})
    props["operation"]["description"] = "The operation, one its kind offers. By kind: " + (
        _per_kind(infos, lambda i: list(i.operations))
    )
    keys = [
        f"{i.name}.{op}: {', '.join(i.parameters[op])}"
        for i in infos
        for op in i.operations
        if i.parameters.get(op)
    ]
    props["parameters"]["description"] = (
        "The operation's parameters, e.g. {'pool_size': 24}. Keys by kind and operation: "
        + "; ".join(keys)
    )


def _metric(props: Schema, infos: Sequence[KindInfo]) -> None:
    props["metric"]["enum"] = sorted({m for i in infos for m in i.metrics})
    props["metric"]["description"] = "A metric the target's kind offers. By kind: " + (
        _per_kind(infos, lambda i: list(i.metrics))
    )


def with_registry(parameters: Schema, infos: Sequence[KindInfo]) -> Schema:
    """`parameters` (a tool's input schema) with the registry's kinds, operations, keys and
    metrics in the fields that name them; the schema given is left as it was."""
    schema = copy.deepcopy(parameters)
    defs: dict[str, Schema] = schema.get("$defs", {})
    _target(schema.get("properties", {}), infos)
    if "Target" in defs:
        _target(defs["Target"]["properties"], infos)
    if "DesiredChange" in defs:
        _change(defs["DesiredChange"]["properties"], infos)
    if "HealthCheck" in defs:
        _metric(defs["HealthCheck"]["properties"], infos)
    return schema


def registry_tool(
    fn: Callable[..., Any],
    *,
    description: str,
    annotations: ToolAnnotations,
    infos: Sequence[KindInfo],
) -> Tool:
    """A tool from `fn` whose input schema names what the registry holds."""
    tool = Tool.from_function(fn, description=description, annotations=annotations)
    return tool.model_copy(update={"parameters": with_registry(tool.parameters, infos)})
