"""A blocking client for Python programs that do not run an event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from changegate.client.changes import ChangeClient, ChangeRef
from changegate.client.connection import connect
from changegate.models import (
    ChangeRequest,
    ChangeStatus,
    Control,
    Decision,
    DecisionJudgement,
)
from changegate.settings import Settings

T = TypeVar("T")


class SyncChangeClient:
    """The same operations as `ChangeClient`, blocking; use as a context manager.

    It runs its own event loop on a background thread, so it works from any thread of a
    program that has no loop of its own.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        """Connect to the Temporal that `settings` (default: the environment) names."""
        self._settings = settings or Settings()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._changes = self._call(self._connect())

    async def _connect(self) -> ChangeClient:
        return ChangeClient(await connect(self._settings), self._settings)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, request: ChangeRequest) -> str:
        """Admit and start a change; its id (or `AdmissionRefused`)."""
        return self._call(self._changes.submit(request))

    def status(self, change_id: str) -> ChangeStatus:
        """The change's full status."""
        return self._call(self._changes.status(change_id))

    def wait(self, change_id: str) -> ChangeStatus:
        """Block until the change ends."""
        return self._call(self._changes.wait(change_id))

    def approve(self, change_id: str, decision: Decision) -> DecisionJudgement:
        """Approve; whether it counted and why."""
        return self._call(self._changes.approve(change_id, decision))

    def reject(self, change_id: str, decision: Decision) -> DecisionJudgement:
        """Reject; whether it counted and why."""
        return self._call(self._changes.reject(change_id, decision))

    def pause(self, change_id: str, control: Control) -> None:
        """Hold the change at its next safe point."""
        self._call(self._changes.pause(change_id, control))

    def resume(self, change_id: str, control: Control) -> None:
        """Continue a held change."""
        self._call(self._changes.resume(change_id, control))

    def abort(self, change_id: str, control: Control) -> None:
        """Abort, rolling back whatever was applied."""
        self._call(self._changes.abort(change_id, control))

    def list(self, *, query: str = "", limit: int = 100) -> list[ChangeRef]:
        """Changes matching a visibility query."""
        return self._call(self._changes.list(query=query, limit=limit))

    def close(self) -> None:
        """Release the store and stop the background loop."""
        self._changes.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SyncChangeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
