"""The fleet provider's one HTTP boundary: each answer the fleet can give, as one typed error.

`httpx.MockTransport` stands in for the fleet here only to reach answers the real fleet
rarely gives (a 500, a dropped connection); the end-to-end tests drive the real process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from changegate.errors import (
    ProviderError,
    TargetNotFound,
    TargetTimeout,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.kinds.fleet import FleetProvider
from changegate.models import Target, UnitChange

FLEET_URL = "http://127.0.0.1:9"
TARGET = Target(kind="fleet", selector={"service": "checkout"})
UNIT = UnitChange(unit_id="checkout-0", phase="canary", before={"pool_size": 20}, after={})

Call = Callable[[FleetProvider], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "observe": lambda p: p.observe(TARGET),
    "read_unit": lambda p: p.read_unit(TARGET, "checkout-0"),
    "apply": lambda p: p.apply(TARGET, UNIT, idempotency_key="k"),
    "revert": lambda p: p.revert(TARGET, UNIT, idempotency_key="k"),
}


def answering(status: int, body: Any) -> httpx.MockTransport:
    """A fleet that answers every request with `status` and the JSON `body`."""
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


async def failure(transport: httpx.MockTransport, call: Call) -> ProviderError:
    provider = FleetProvider(FLEET_URL, transport=transport)
    try:
        with pytest.raises(ProviderError) as caught:
            await call(provider)
    finally:
        await provider.aclose()
    return caught.value


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, TargetNotFound),
        (400, UnsupportedOperation),
        (409, UnsupportedOperation),
        (422, UnsupportedOperation),
        (401, TargetUnavailable),
        (429, TargetUnavailable),
        (500, TargetUnavailable),
        (503, TargetUnavailable),
    ],
)
async def test_each_error_status_is_one_typed_error(
    call: Call, status: int, error: type[ProviderError]
) -> None:
    got = await failure(answering(status, {"error": f"the fleet says {status}"}), call)
    assert type(got) is error
    assert f"the fleet says {status}" in str(got)
    # Only an unavailable target is worth retrying; the activities read this flag.
    assert got.retryable is (error is TargetUnavailable)


async def test_messages_name_the_request_and_the_fleets_reason() -> None:
    got = await failure(answering(409, {"error": "stale write"}), CALLS["apply"])
    assert str(got) == (
        "the fleet refused PUT /services/checkout/instances/checkout-0/config: stale write"
    )
    got = await failure(answering(503, {"error": "draining"}), CALLS["observe"])
    assert str(got) == "the fleet answered GET /services/checkout with 503: draining"
    got = await failure(answering(404, {"error": "no service 'checkout'"}), CALLS["observe"])
    assert str(got) == "no service 'checkout'"


async def test_a_body_that_is_not_json_is_quoted_as_text() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))
    got = await failure(transport, CALLS["read_unit"])
    assert type(got) is TargetUnavailable
    assert str(got).endswith("with 502: Bad Gateway")


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("x")],
)
async def test_a_fleet_that_does_not_answer_is_a_timeout(
    call: Call, exc: httpx.TransportError
) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise exc

    got = await failure(httpx.MockTransport(drop), call)
    assert type(got) is TargetTimeout
    assert isinstance(got, TargetUnavailable)
    assert got.retryable
    assert str(got).startswith(f"the fleet at {FLEET_URL} did not answer ")
    assert "is `changegate fleet` running there?" in str(got)
    assert got.__cause__ is exc


async def test_a_success_is_the_json_body() -> None:
    transport = answering(200, {"config": {"pool_size": 20}})
    provider = FleetProvider(FLEET_URL, transport=transport)
    try:
        assert await provider.read_unit(TARGET, "checkout-0") == {"pool_size": 20}
    finally:
        await provider.aclose()
