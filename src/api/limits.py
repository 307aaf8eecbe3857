"""What the API's edge bounds: request bodies, failed authentications, recorded refusals.

A body over the limit is refused with 413 before it is parsed. Failed authentications are
counted per client address and answered with 429 past a limit (`AuthThrottle`); refused
calls of a token are recorded in a bounded number of rows (`RefusalWindow`). Both counters
live in memory in this process: each API process counts on its own, and a restart forgets.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from changegate.errors import Refused

__all__ = [
    "AUTH_FAILURE_LIMIT",
    "AUTH_FAILURE_WINDOW_SECONDS",
    "MAX_BODY_BYTES",
    "REFUSAL_ROWS_PER_TOKEN",
    "REFUSAL_WINDOW_SECONDS",
    "AuthThrottle",
    "BodyLimit",
    "RefusalClaim",
    "RefusalKey",
    "RefusalWindow",
    "auth_throttle",
    "client_address",
]

MAX_BODY_BYTES = 256 * 1024
"""The largest request body accepted; a change request is a few KiB."""


class _TooLarge(HTTPException):
    """A streamed body went over the limit; the app's error handlers answer it with 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class BodyLimit:
    """ASGI middleware refusing bodies over `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        """Wrap `app`."""
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early on Content-Length; count the bytes of a streamed body as they come.

        A streamed body that goes over raises 413 from `receive`, which the app's error
        handlers answer; one that escapes them is answered here if nothing was sent yet.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send, scope)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(send, scope)

    async def _refuse(self, send: Send, scope: Scope) -> None:
        body = json.dumps(
            {
                "error": {
                    "rule": "request.size",
                    "reason": f"the request body is over the limit of {self.limit} bytes",
                    "would_pass": "a smaller body; a change request needs a few KiB",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


AUTH_FAILURE_LIMIT = 10
"""Failed authentications one client address may make within the window."""
AUTH_FAILURE_WINDOW_SECONDS = 60.0
"""How long a failed authentication counts against its client address."""
_MAX_TRACKED = 10_000


def client_address(request: Request) -> str:
    """The client's address as the server reports it; clients behind one proxy share it.

    uvicorn, by default, takes `X-Forwarded-For` from a loopback peer as the address, so a
    caller on the API's own host can name any address; serve with `proxy_headers=False`
    unless a proxy in front sets that header.
    """
    return request.client.host if request.client is not None else "unknown"


class AuthThrottle:
    """Failed authentications per client address, in this process only, in bounded memory.

    An address with `limit` failures within the last `window` seconds is refused with 429
    until the oldest of them ages out, whatever token it sends next: checking tokens while
    throttled would keep the guessing going. A success resets nothing, so one address that
    holds a valid token cannot clear its count between guesses, and no address touches
    another's. At most `max_clients` addresses are tracked (each with at most `limit`
    times); when full, expired addresses go first, then the oldest. The event loop is the
    only caller, so there is no lock.
    """

    def __init__(
        self,
        *,
        limit: int = AUTH_FAILURE_LIMIT,
        window: float = AUTH_FAILURE_WINDOW_SECONDS,
        max_clients: int = _MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Refuse an address after `limit` failures within `window` seconds."""
        self.limit = limit
        self.window = window
        self._max_clients = max_clients
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        """Raise a 429 `Refused` (`auth.throttled`, with `retry_after`) while `client` is over."""
        now = self._clock()
        failures = self._live(client, now)
        if failures is None or len(failures) < self.limit:
            return
        wait = max(1, math.ceil(failures[0] + self.window - now))
        raise Refused(
            429,
            rule="auth.throttled",
            reason=f"{len(failures)} failed authentications from {client} within "
            f"{self.window:g}s; tokens from it are not checked for {wait}s",
            would_pass=f"the same call with a valid token after {wait} seconds",
            retry_after=wait,
        )

    def failed(self, client: str) -> None:
        """Count one failed authentication by `client`."""
        now = self._clock()
        failures = self._live(client, now)
        if failures is None:
            if len(self._failures) >= self._max_clients:
                self._make_room(now)
            failures = self._failures[client] = deque(maxlen=self.limit)
        failures.append(now)

    def _live(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def _make_room(self, now: float) -> None:
        for client in list(self._failures):
            self._live(client, now)
        # Still full of live addresses: drop a tenth, oldest first, so the sweep is rare.
        while len(self._failures) >= self._max_clients * 9 // 10:
            del self._failures[next(iter(self._failures))]


def auth_throttle(request: Request) -> AuthThrottle:
    """The throttle of the app serving `request`, made on first use."""
    state = request.app.state
    found = getattr(state, "auth_throttle", None)
    if not isinstance(found, AuthThrottle):
        found = state.auth_throttle = AuthThrottle()
    return found


REFUSAL_WINDOW_SECONDS = 60.0
"""How long identical refusals share one row in the audit store."""
REFUSAL_ROWS_PER_TOKEN = 20
"""Rows one token's refusals may open within a window before they are pooled by rule."""

RefusalKey = tuple[str, str, str, str]
"""(token id, rule, action, subject): what makes two refusals the same."""
# The action and subject of the row pooling a token's refusals beyond its budget.
_ANY = "*"


@dataclass
class RefusalClaim:
    """Where to record one refusal: a new row (`row_id` None) or a count on an existing one."""

    key: RefusalKey
    row_id: int | None
    count: int

    @property
    def pooled(self) -> bool:
        """True when the refusal goes to its token's row for everything beyond the budget."""
        return self.key[2] == _ANY


@dataclass
class _Opened:
    opened: float


@dataclass
class _Row(_Opened):
    row_id: int | None
    count: int


@dataclass
class _Budget(_Opened):
    rows: int


_K = TypeVar("_K")
_V = TypeVar("_V", bound=_Opened)


class RefusalWindow:
    """Which refusals already have a row in the audit store, per window, in this process.

    Identical refusals (same token, rule, action and subject) within `window` seconds share
    one row whose count grows. A token opens at most `rows_per_token` rows a window; its
    refusals beyond those share one row per rule. So however fast a token is refused, the
    refusals table grows by at most `rows_per_token` plus one per rule, per token, per
    window. Memory holds at most `max_keys` rows and tokens. Callers hold `lock` from
    `claim` to `opened`, so two threads never open the same row twice.
    """

    def __init__(
        self,
        *,
        window: float = REFUSAL_WINDOW_SECONDS,
        rows_per_token: int = REFUSAL_ROWS_PER_TOKEN,
        max_keys: int = _MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Share rows for `window` seconds; `rows_per_token` distinct rows a token a window."""
        self.window = window
        self.rows_per_token = rows_per_token
        self.lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock
        self._rows: dict[RefusalKey, _Row] = {}
        self._budgets: dict[str, _Budget] = {}

    def claim(self, key: RefusalKey) -> RefusalClaim:
        """Count one refusal and say where it goes; a new row must be reported to `opened`."""
        now = self._clock()
        row = self._current(self._rows, key, now)
        if row is None:
            budget = self._current(self._budgets, key[0], now)
            if budget is None:
                budget = self._put(self._budgets, key[0], _Budget(opened=now, rows=0), now)
            if budget.rows >= self.rows_per_token:
                key = (key[0], key[1], _ANY, _ANY)
                row = self._current(self._rows, key, now)
            else:
                budget.rows += 1
        if row is None:
            row = self._put(self._rows, key, _Row(row_id=None, opened=now, count=0), now)
        row.count += 1
        return RefusalClaim(key=key, row_id=row.row_id, count=row.count)

    def opened(self, claim: RefusalClaim, row_id: int) -> None:
        """The row a claim opened, for the refusals after it to count on."""
        row = self._rows.get(claim.key)
        if row is not None:
            row.row_id = row_id

    def _current(self, table: dict[_K, _V], key: _K, now: float) -> _V | None:
        found = table.get(key)
        if found is not None and found.opened <= now - self.window:
            del table[key]
            return None
        return found

    def _put(self, table: dict[_K, _V], key: _K, value: _V, now: float) -> _V:
        if len(table) >= self._max_keys:
            for stale in [k for k, v in table.items() if v.opened <= now - self.window]:
                del table[stale]
            while len(table) >= self._max_keys * 9 // 10:
                del table[next(iter(table))]
        table[key] = value
        return value
