"""A blocking client for Python programs that do not run an event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from changegate.client.credentials import Credentials
from changegate.client.http import ChangeClient
from changegate.models import ChangeRef, ChangeRequest, ChangeStatus
from changegate.settings import Settings

T = TypeVar("T")


class SyncChangeClient:
    """The same operations as `ChangeClient`, blocking; use as a context manager.

    It runs its own event loop on a background thread, so it works from any thread of a
    program that has no loop of its own.
    """

    def __init__(
        self, credentials: Credentials | None = None, *, settings: Settings | None = None
    ) -> None:
        """Talk to the API the credentials (default: the environment or stored login) name."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._changes = self._call(self._make(credentials, settings))

    @staticmethod
    async def _make(credentials: Credentials | None, settings: Settings | None) -> ChangeClient:
        return ChangeClient(credentials, settings=settings)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, request: ChangeRequest) -> str:
        """Submit a change; its id (or `Refused`)."""
        return self._call(self._changes.submit(request))

    def status(self, change_id: str) -> ChangeStatus:
        """The change's full status."""
        return self._call(self._changes.status(change_id))

    def wait(self, change_id: str, *, timeout: float | None = None) -> ChangeStatus:
        """Block until the change ends (`TimeoutError` after `timeout` seconds)."""
        return self._call(self._changes.wait(change_id, timeout=timeout))

    def approve(self, change_id: str, *, reason: str = "") -> dict[str, Any]:
        """Approve as the token's holder."""
        return self._call(self._changes.approve(change_id, reason=reason))

    def reject(self, change_id: str, *, reason: str) -> dict[str, Any]:
        """Reject as the token's holder."""
        return self._call(self._changes.reject(change_id, reason=reason))

    def pause(self, change_id: str, *, reason: str = "") -> None:
        """Hold the change at its next safe point."""
        self._call(self._changes.control(change_id, "pause", reason=reason))

    def resume(self, change_id: str, *, reason: str = "") -> None:
        """Continue a held change."""
        self._call(self._changes.control(change_id, "resume", reason=reason))

    def abort(self, change_id: str, *, reason: str = "") -> None:
        """Abort, rolling back whatever was applied."""
        self._call(self._changes.control(change_id, "abort", reason=reason))

    def list_changes(self, **filters: Any) -> list[ChangeRef]:
        """Changes, newest first (`agent`, `target`, `stage`, `pending`, `limit`)."""
        return self._call(self._changes.list_changes(**filters))

    def close(self) -> None:
        """Close the connections and stop the background loop."""
        self._call(self._changes.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SyncChangeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
