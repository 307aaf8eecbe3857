"""One pooled HTTP client per provider or health source, kept for the worker's lifetime.

A new `httpx.AsyncClient` per request costs a TLS context and a connection each time; under
load that was most of the worker's CPU. The client is made on first use, in the running event
loop, and made again if it is later used from another loop.
"""

from __future__ import annotations

import asyncio

import httpx


class HttpPool:
    """Hands out the same `httpx.AsyncClient` to every call made in one event loop."""

    def __init__(
        self, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """Clients get this timeout and (for tests of an HTTP mapping) transport."""
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        """The pooled client for the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the client, if one was made."""
        if self._client is not None and not self._client.is_closed:
            await self._client.aclose()
        self._client = None
