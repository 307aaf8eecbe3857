"""Heartbeats while an activity runs, so Temporal notices a worker that died within seconds.

Without heartbeats a lost activity is retried only after its start-to-close timeout; with a
`heartbeat_timeout` in the workflow's activity options and these beats, after that timeout.
The beats come from a background task on the worker's event loop: they say the worker is
alive, and they keep coming while the body waits on the network or a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
T = TypeVar("T")

HEARTBEAT_INTERVAL_SECONDS = 1.0
"""How often a running activity heartbeats (the SDK batches them to its heartbeat timeout)."""


@contextlib.asynccontextmanager
async def heartbeating(interval: float = HEARTBEAT_INTERVAL_SECONDS) -> AsyncIterator[None]:
    """Heartbeat every `interval` seconds while the block runs; nothing outside an activity."""
    if not activity.in_activity():
        yield
        return
    beats = asyncio.create_task(_beat(interval))
    try:
        yield
    finally:
        beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beats


def heartbeats(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate an async activity (under `@activity.defn`) to heartbeat while it runs."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        async with heartbeating():
            return await fn(*args, **kwargs)

    return wrapper


async def _beat(interval: float) -> None:
    # The task copies the activity's context, so `heartbeat` knows which activity it is.
    while True:
        activity.heartbeat()
        await asyncio.sleep(interval)
