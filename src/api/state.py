"""What every route reaches through the app: settings, the change client, web sessions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from changegate.api.sessions import WebSessions
from changegate.service import ChangeService, Operations
from changegate.settings import Settings
from changegate.store import Store

__all__ = ["Services", "services"]


@dataclass
class Services:
    """The app's collaborators, built once by `create_app`."""

    settings: Settings
    changes: ChangeService
    sessions: WebSessions = field(default_factory=WebSessions)

    @property
    def operations(self) -> Operations:
        """Kill switches and incidents, through the same change client."""
        return self.changes.operations()

    async def store(self) -> Store:
        """The audit store, opened (and migrated) off the event loop on first use."""
        return await asyncio.to_thread(lambda: self.changes.gate.store)


def services(request: Request) -> Services:
    """The services of the app serving `request`."""
    found: Services = request.app.state.services
    return found
