"""What a target kind is: one package that tells changegate everything about one kind.

A kind names itself, says which selector keys and operations it accepts (typed schemas
with ranges), how each operation is classed for risk and whether it is reversible, which
health metrics it offers (with default PromQL), and builds its provider and health source
from settings. Kinds register through the `changegate.targets` entry-point group; the
worker, the API, the MCP server, the CLI and policy validation learn them from one
`KindRegistry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from changegate.models.request import OperationClass

if TYPE_CHECKING:
    from changegate.health.sources import HealthSource
    from changegate.providers.base import Provider
    from changegate.settings import Settings


_CLASS_ORDER: tuple[OperationClass, ...] = ("config", "scale", "deploy", "destructive")


class Parameters(BaseModel):
    """Base of an operation's parameter schema: unknown keys, NaN and infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


@dataclass(frozen=True)
class Operation:
    """One operation a kind offers."""

    name: str
    description: str
    parameters: type[Parameters]
    operation_class: OperationClass = "config"
    reversible: bool = True
    key_classes: Mapping[str, OperationClass] = field(default_factory=dict)
    """Parameter keys that raise the class when a change sets them (`version`: `deploy`)."""

    def class_for(self, parameters: Mapping[str, object]) -> OperationClass:
        """The operation's class for these parameters: the highest of its own and its keys'."""
        keys = [self.key_classes[k] for k in parameters if k in self.key_classes]
        return max([self.operation_class, *keys], key=_CLASS_ORDER.index)


@dataclass(frozen=True)
class Metric:
    """A health metric a kind offers, and how to query it by default.

    `query` is PromQL with placeholders: `{{unit}}` (one unit's id), `{{units}}` (a regex
    alternation of the measured units) and `{{selector.KEY}}` (a selector value).
    """

    name: str
    description: str
    query: str
    higher_is_worse: bool = True


@runtime_checkable
class TargetKind(Protocol):
    """Everything changegate needs to know about one kind of target."""

    name: str
    description: str
    selector: type[BaseModel]
    operations: Mapping[str, Operation]
    metrics: Mapping[str, Metric]

    def provider(self, settings: Settings) -> Provider:
        """The kind's provider, configured from settings (credentials never from requests)."""
        ...

    def health_source(self, settings: Settings) -> HealthSource | None:
        """The kind's own health source, or None to use Prometheus with `metrics` queries."""
        ...


@dataclass
class KindInfo:
    """A kind as the edges describe it (CLI, MCP, API): names, keys, operations, metrics."""

    name: str
    description: str
    selector_keys: list[str] = field(default_factory=list)
    operations: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each operation's parameter keys, each with its type, range and description."""
