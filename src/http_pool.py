"""One pooled HTTP client per provider or health source, kept for the worker's lifetime.

A new `httpx.AsyncClient` per request costs a TLS context and a connection each time; under
load that was most of the worker's CPU. The client is made on first use, in the running event
loop, and made again if it is later used from another loop.

A pooled keep-alive connection may have been closed by the server while it sat idle; the next
request on it fails with `RemoteProtocolError` or `ReadError` before any answer arrives.
Two things keep that from failing a read:

- the pool drops a connection after `KEEPALIVE_SECONDS` idle, below the idle timeout of the
  servers changegate talks to (uvicorn, which serves the fleet and the API, closes after
  5 s), so the client lets go of a connection before the server does;
- `get` retries such a read once, on a fresh connection, and only when the client has
  served a request before (so a pooled connection was possible): a GET is idempotent, and
  one retry keeps a server restart from becoming a failed measurement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import httpx

STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError)
"""What a request on a pooled connection the server already closed fails with."""

Params = Mapping[str, str | Sequence[str]]

KEEPALIVE_SECONDS = 2.0
"""How long an idle pooled connection is kept: below uvicorn's 5 s keep-alive timeout (the
API client keeps its connections to the changegate API no longer either)."""


class HttpPool:
    """Hands out the same `httpx.AsyncClient` to every call made in one event loop."""

    def __init__(
        self,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        """Clients get this timeout, idle connections live `keepalive` seconds, and (for
        tests of an HTTP mapping) requests go through `transport`."""
        self._timeout = timeout
        self._limits = httpx.Limits(keepalive_expiry=keepalive)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._served = False

    def client(self) -> httpx.AsyncClient:
        """The pooled client for the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport, limits=self._limits
            )
            self._loop = loop
            self._served = False
        return self._client

    async def get(self, url: str, *, params: Params | None = None) -> httpx.Response:
        """GET `url`, retried once if a reused connection turns out to be closed."""
        client = self.client()
        reused = self._served
        try:
            response = await client.get(url, params=params)
        except STALE_CONNECTION:
            if not reused:
                raise
            response = await client.get(url, params=params)
        self._served = True
        return response

    async def aclose(self) -> None:
        """Close the client, if one was made."""
        if self._client is not None and not self._client.is_closed:
            await self._client.aclose()
        self._client = None
