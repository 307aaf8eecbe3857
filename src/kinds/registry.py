"""The one registry of target kinds, loaded from the `changegate.targets` entry points.

A third party adds a kind by installing a package whose metadata has one line, e.g.
`[project.entry-points."changegate.targets"] widget = "acme_widget:KIND"`: the worker, the API,
the MCP server, the CLI and validation all learn it from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from changegate.errors import ConfigurationError, InvalidTarget
from changegate.kinds.base import KindInfo, TargetKind
from changegate.kinds.checks import check_change, parameter_summary
from changegate.models import ChangeRequest
from changegate.providers.registry import ProviderRegistry
from changegate.providers.selectors import KIND_RULE

if TYPE_CHECKING:
    from changegate.health.prometheus import TemplateLookup
    from changegate.health.sources import HealthSource, HealthSourceRegistry
    from changegate.settings import Settings

ENTRY_POINT_GROUP = "changegate.targets"
"""The entry-point group every kind registers in; the entry point's name is the kind's name."""


class KindRegistry:
    """Every installed target kind by name."""

    def __init__(self, kinds: Iterable[TargetKind] | None = None) -> None:
        """The given kinds, or (by default) every kind the installed entry points name."""
        self._kinds: dict[str, TargetKind] = {}
        for kind in _installed() if kinds is None else kinds:
            if kind.name in self._kinds:
                raise ConfigurationError(
                    f"two target kinds are named {kind.name!r}; uninstall one of the packages "
                    f"that register it in {ENTRY_POINT_GROUP!r}"
                )
            self._kinds[kind.name] = kind

    def kinds(self) -> list[TargetKind]:
        """Every kind, sorted by name."""
        return [self._kinds[name] for name in self.names()]

    def names(self) -> list[str]:
        """The kinds' names, sorted."""
        return sorted(self._kinds)

    def get(self, name: str) -> TargetKind:
        """The kind called `name`, or `InvalidTarget` (rule `target.kind`) listing the kinds."""
        try:
            return self._kinds[name]
        except KeyError:
            known = ", ".join(repr(kind) for kind in self.names()) or "none installed"
            raise InvalidTarget(
                rule=KIND_RULE,
                field="target.kind",
                reason=f"target.kind {name!a} is not a kind this changegate knows; "
                f"known kinds: {known}",
                would_pass=f"a target of one of the known kinds: {known}",
            ) from None

    def info(self) -> list[KindInfo]:
        """Each kind as the edges describe it: selector keys, operations, parameters, metrics."""
        return [
            KindInfo(
                name=kind.name,
                description=kind.description,
                selector_keys=list(kind.selector.model_fields),
                operations={name: op.description for name, op in kind.operations.items()},
                metrics={name: m.description for name, m in kind.metrics.items()},
                parameters={
                    name: parameter_summary(op.parameters) for name, op in kind.operations.items()
                },
            )
            for kind in self.kinds()
        ]

    def providers(self, settings: Settings) -> ProviderRegistry:
        """A provider of every kind, configured from `settings`."""
        return ProviderRegistry([kind.provider(settings) for kind in self.kinds()])

    def health_sources(
        self, settings: Settings, *, templates: TemplateLookup | None = None
    ) -> HealthSourceRegistry:
        """A health source of every kind that has one.

        A kind without its own measures through Prometheus with its metrics' default queries
        when `settings.prometheus_url` is set; otherwise a check on it fails as an analysis
        Error naming the missing source.
        """
        from changegate.health import HealthSourceRegistry, PrometheusSource

        sources: list[HealthSource] = []
        for kind in self.kinds():
            source = kind.health_source(settings)
            if source is None and settings.prometheus_url:
                source = _prometheus(kind, settings.prometheus_url, templates)
            elif isinstance(source, PrometheusSource) and templates is not None:
                source.use_templates(templates, defaults=_queries(kind))
            if source is not None:
                sources.append(source)
        return HealthSourceRegistry(sources)

    def validate(self, request: ChangeRequest, *, providers: ProviderRegistry) -> ChangeRequest:
        """The request on its canonical target, once its kind accepts the change.

        Raises `InvalidTarget` for the target (its kind's provider resolves it, purely) and
        `InvalidChange` for the operation, its parameters and the health checks' metrics.
        """
        kind = self.get(request.target.kind)
        target = providers.resolve(request.target)
        self.check(kind, request)
        return request.model_copy(update={"target": target})

    def check(self, kind: TargetKind, request: ChangeRequest) -> None:
        """`InvalidChange` if `kind` refuses the request's operation, parameters or metrics."""
        check_change(kind, request)


def _installed() -> list[TargetKind]:
    kinds = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value!r} in {ENTRY_POINT_GROUP!r}"
        try:
            kind = point.load()
        except Exception as exc:
            raise ConfigurationError(
                f"{where} could not be loaded: {exc!r}; reinstall or uninstall its package"
            ) from exc
        if not isinstance(kind, TargetKind):
            raise ConfigurationError(f"{where} names {kind!r}, which is not a TargetKind")
        if kind.name != point.name:
            raise ConfigurationError(
                f"{where} names the kind {kind.name!r}; the entry point's name must be the "
                "kind's name"
            )
        kinds.append(kind)
    return kinds


def _queries(kind: TargetKind) -> dict[str, str]:
    return {name: metric.query for name, metric in kind.metrics.items()}


def _prometheus(kind: TargetKind, url: str, templates: TemplateLookup | None) -> HealthSource:
    from changegate.health import PrometheusSource

    queries = _queries(kind)
    return PrometheusSource(
        url, kind=kind.name, queries=queries, templates=templates, defaults=queries
    )
