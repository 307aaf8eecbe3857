"""The `command` kind object: schemas, operations, metrics, and its builders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from changegate.kinds.base import Metric, Operation
from changegate.kinds.command.health import CommandHealthSource
from changegate.kinds.command.provider import CommandProvider
from changegate.kinds.command.schema import (
    CommandKindSettings,
    CommandSelector,
)
from changegate.kinds.http.schema import SetValuesOperations

if TYPE_CHECKING:
    from changegate.settings import Settings


class CommandKind:
    """The `command` kind: its schemas, its one operation, and builders for provider and health."""

    name = "command"
    description = "Executables with a JSON contract on stdin/stdout (Terraform, Ansible, CLIs)."
    selector = CommandSelector
    operations: Mapping[str, Operation] = SetValuesOperations(
        "Set keys of each unit's state to JSON scalars; the executable plans, applies and reverts.",
        lambda: [target.keys for target in CommandKindSettings().targets.values()],
    )
    metrics: Mapping[str, Metric] = {
        "error_rate": Metric(
            name="error_rate",
            description="Fraction of requests that failed (0-1), as the executable reports it.",
            query='max(changegate_command_error_ratio{command="{{selector.command}}",'
            'unit="{{unit}}"})',
        ),
        "latency_p99_ms": Metric(
            name="latency_p99_ms",
            description="99th percentile latency in ms, as the executable reports it.",
            query='max(changegate_command_latency_p99_ms{command="{{selector.command}}",'
            'unit="{{unit}}"})',
        ),
    }

    def provider(self, settings: Settings) -> CommandProvider:
        """The provider over the targets in `CHANGEGATE_COMMAND_TARGETS`."""
        return CommandProvider(CommandKindSettings().targets)

    def health_source(self, settings: Settings) -> CommandHealthSource:
        """Health from the executable's `health` call."""
        return CommandHealthSource(CommandKindSettings().targets)


KIND = CommandKind()
"""The kind the `changegate.targets` entry point `command` names."""
