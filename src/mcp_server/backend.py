"""What the tools reach: the audit store, read-only providers and one change client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from changegate.kinds import KindRegistry
from changegate.providers import ProviderRegistry
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, open_store

ChangesFactory = Callable[[], Awaitable[ChangeService]]
"""Makes the change client on first use; the server owns and closes what it returns."""


class Backend:
    """Opens the store and the change client on first use and closes them once at shutdown.

    Lazy so that the server starts, lists its tools and answers with a readable error when
    Temporal is down, instead of failing before an agent can ask anything.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        changes_factory: ChangesFactory,
        providers: ProviderRegistry | None = None,
        kinds: KindRegistry | None = None,
    ) -> None:
        """Build providers of every kind in `kinds` (by default every installed one) from
        `settings` unless given; nothing is opened yet."""
        self.settings = settings
        self.kinds = kinds or KindRegistry()
        self.providers = providers or self.kinds.providers(settings)
        self._changes_factory = changes_factory
        self._changes: ChangeService | None = None
        self._store: Store | None = None
        self._lock = asyncio.Lock()

    async def store(self) -> Store:
        """The audit store (where tokens are verified), opened and migrated on first use."""
        async with self._lock:
            if self._store is None:
                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                self._store = await asyncio.to_thread(open_store, self.settings.store_url())
            return self._store

    async def changes(self) -> ChangeService:
        """The change client, made by the factory on first use."""
        async with self._lock:
            if self._changes is None:
                self._changes = await self._changes_factory()
            return self._changes

    async def aclose(self) -> None:
        """Close what was opened; the next use opens it again."""
        async with self._lock:
            if self._changes is not None:
                await asyncio.to_thread(self._changes.close)
                self._changes = None
            if self._store is not None:
                await asyncio.to_thread(self._store.close)
                self._store = None
            await self.providers.aclose()
