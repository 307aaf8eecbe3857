"""Providers by `kind`: the one place a target kind is resolved to its provider."""

from __future__ import annotations

from collections.abc import Iterable

from changegate.errors import ConfigurationError, InvalidTarget
from changegate.models import Target
from changegate.providers.base import Provider, ReadOnlyProvider
from changegate.providers.selectors import KIND_RULE


class ProviderRegistry:
    """Looks providers up by kind; read-only views for the stages before approval."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        """Register each provider under its `kind`."""
        self._providers = {p.kind: p for p in providers}

    async def aclose(self) -> None:
        """Close every provider."""
        for provider in self._providers.values():
            await provider.aclose()

    def kinds(self) -> list[str]:
        """The kinds registered, sorted."""
        return sorted(self._providers)

    def resolve(self, target: Target) -> Target:
        """The canonical target its kind's provider resolves it to; `InvalidTarget` if none can."""
        provider = self._providers.get(target.kind)
        if provider is None:
            known = ", ".join(repr(kind) for kind in self.kinds())
            raise InvalidTarget(
                rule=KIND_RULE,
                field="target.kind",
                reason=f"target.kind {target.kind!a} is not a kind this changegate knows; "
                f"known kinds: {known}",
                would_pass=f"a target of one of the known kinds: {known}",
            )
        return provider.resolve(target)

    def get(self, kind: str) -> Provider:
        """The full provider for `kind`; only rollout activities call this."""
        try:
            return self._providers[kind]
        except KeyError:
            raise ConfigurationError(
                f"no provider for target kind {kind!r}; known kinds: {', '.join(self.kinds())}"
            ) from None

    def read_only(self, kind: str) -> ReadOnlyProvider:
        """The provider for `kind`, typed so that only its read-only methods can be called."""
        return self.get(kind)
