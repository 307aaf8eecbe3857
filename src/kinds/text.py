"""Kinds described in plain text, as the CLI prints them and the MCP tools tell an agent."""

from __future__ import annotations

from collections.abc import Sequence

from changegate.kinds.base import KindInfo


def describe_kinds(infos: Sequence[KindInfo]) -> str:
    """Every kind with its selector keys, operations and their parameters, and metrics."""
    if not infos:
        return "Target kinds: none installed."
    lines = ["Target kinds:"]
    for info in infos:
        lines.append(f"- {info.name}: {info.description}")
        lines.append(f"  selector keys: {', '.join(info.selector_keys)}")
        for name, description in info.operations.items():
            lines.append(f"  operation {name}: {description}")
            for key, text in info.parameters.get(name, {}).items():
                lines.append(f"    {key}: {text}")
        lines.append(f"  health metrics: {', '.join(info.metrics) or 'none'}")
    return "\n".join(lines)
