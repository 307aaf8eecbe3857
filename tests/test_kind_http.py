"""The `http` kind against the real fleet process's config API, and its HTTP error mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from changegate.errors import (
    ConfigurationError,
    InvalidTarget,
    ProviderError,
    TargetNotFound,
    TargetTimeout,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.kinds.base import TargetKind
from changegate.kinds.http import (
    KIND,
    HttpEndpoint,
    HttpHealthSource,
    HttpKindSettings,
    HttpProvider,
)
from changegate.kinds.http.pointer import PointerError, find, nest
from changegate.models import ChangeRequest, HealthCheck, Outcome, Stage, Target, UnitChange
from changegate.settings import Settings
from tests.kinds.command_scripts.pipeline import kinds_pipeline
from tests.support import FAST_ROLLOUT, Fleet, approve_fully, wait_for_stage


def fleet_endpoints(url: str) -> dict[str, HttpEndpoint]:
    """`checkout` listed through its service document; `search` with fixed units."""
    common = {
        "url": url,
        "pointer": "/config",
        "write_pointer": "/config",
        "healthy_pointer": "/health/status",
        "health_pointers": {
            "error_rate": "/health/error_rate",
            "latency_p99_ms": "/health/latency_p99_ms",
        },
    }
    return {
        "checkout": HttpEndpoint.model_validate(
            {
                **common,
                "list_path": "/services/checkout",
                "list_pointer": "/instances",
                "id_pointer": "/instance",
                "item_path": "/services/checkout/instances/{unit}",
                "write_path": "/services/checkout/instances/{unit}/config",
            }
        ),
        "search": HttpEndpoint.model_validate(
            {
                **common,
                "units": ["search-0", "search-1"],
                "item_path": "/services/search/instances/{unit}",
                "write_path": "/services/search/instances/{unit}/config",
            }
        ),
    }


@pytest.fixture
def fleet(fleet_process: str) -> Iterator[Fleet]:
    f = Fleet(fleet_process)
    f.reset()
    yield f
    f.reset()


@pytest.fixture
async def provider(fleet: Fleet) -> AsyncIterator[HttpProvider]:
    opened = HttpProvider(fleet_endpoints(fleet.url))
    yield opened
    await opened.aclose()


def target(endpoint: str = "checkout", **selector: str) -> Target:
    return Target(kind="http", selector={"endpoint": endpoint, **selector})


def request(parameters: dict[str, object], endpoint: str = "checkout") -> ChangeRequest:
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": "agent-7"},
            "intent": "Raise the pool so checkout stops queueing at peak.",
            "target": {"kind": "http", "selector": {"endpoint": endpoint}},
            "change": {"operation": "set_values", "parameters": parameters},
            "rollout": {"canary_units": 1, "waves": 2},
        }
    )


# resolve and settings


def test_resolve_makes_the_selector_canonical(provider: HttpProvider) -> None:
    resolved = provider.resolve(target(instances="checkout-2,checkout-0,checkout-2"))
    assert resolved.selector == {"endpoint": "checkout", "instances": "checkout-0,checkout-2"}
    assert resolved.label() == "http:endpoint=checkout"


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        ({"endpoint": "checkout", "url": "http://evil.example.com"}, "target.selector.url"),
        ({"endpoint": "http://evil.example.com"}, "target.selector.endpoint"),
        ({"endpoint": "billing"}, "target.selector.endpoint"),
        ({"endpoint": "Checkout"}, "target.selector.endpoint"),
        ({"endpoint": "checkout", "instances": "checkout-0/../x"}, "target.selector.instances"),
        ({"endpoint": "search", "instances": "search-9"}, "target.selector.instances"),
        ({"instances": "a"}, "target.selector.endpoint"),
    ],
)
def test_resolve_refuses_what_it_cannot_vouch_for(
    provider: HttpProvider, selector: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidTarget) as refused:
        provider.resolve(Target(kind="http", selector=selector))
    assert refused.value.field == field


def test_endpoints_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = {"url": "http://127.0.0.1:1", "units": ["a"], "item_path": "/flags/{unit}"}
    monkeypatch.setenv("CHANGEGATE_HTTP_ENDPOINTS", json.dumps({"flags": endpoint}))
    assert HttpKindSettings().endpoints["flags"].method == "PUT"
    assert isinstance(KIND, TargetKind)
    provider = KIND.provider(Settings())
    assert provider.resolve(target("flags")).label() == "http:endpoint=flags"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"url": "ftp://x"}, "http"),
        ({"url": "http://x.example.com/path"}, "no path"),
        ({"item_path": "/flags"}, "exactly once"),
        ({"item_path": "/../{unit}"}, r"\.\."),
        ({"pointer": "config"}, "start with '/'"),
        ({"units": None}, "exactly one of"),
    ],
)
def test_endpoint_settings_are_checked(change: dict[str, object], match: str) -> None:
    base = {"url": "http://127.0.0.1:1", "units": ["a"], "item_path": "/flags/{unit}"}
    with pytest.raises(ValueError, match=match):
        HttpEndpoint.model_validate({**base, **change})


def test_endpoint_names_and_fixed_units_are_labels() -> None:
    bad = HttpEndpoint.model_validate(
        {"url": "http://127.0.0.1:1", "units": ["A b"], "item_path": "/f/{unit}"}
    )
    with pytest.raises(ConfigurationError):
        HttpProvider({"flags": bad})


def test_json_pointers_follow_rfc_6901() -> None:
    document = {"a/b": {"m~n": [10, 20]}, "": 1}
    assert find(document, "/a~1b/m~0n/1") == 20
    assert find(document, "/") == 1
    assert find(document, "") == document
    for bad in ("/a~1b/m~0n/01", "/a~1b/m~0n/2", "/x", "a", "/a~2b"):
        with pytest.raises(PointerError):
            find(document, bad)
    assert nest("/config", {"k": 1}) == {"config": {"k": 1}}


# observe, plan, apply, revert on the real fleet


async def test_observe_lists_units_and_reads_each_config(provider: HttpProvider) -> None:
    observation = await provider.observe(target())
    assert [u.unit_id for u in observation.units] == [f"checkout-{i}" for i in range(4)]
    assert all(u.state["pool_size"] == 20 and u.healthy for u in observation.units)
    fixed = await provider.observe(target("search", instances="search-1"))
    assert [u.unit_id for u in fixed.units] == ["search-1"]


async def test_observe_of_a_missing_unit_is_target_not_found(provider: HttpProvider) -> None:
    with pytest.raises(TargetNotFound, match="checkout-9"):
        await provider.observe(target(instances="checkout-9"))


async def test_plan_sets_known_keys_canary_first(provider: HttpProvider) -> None:
    change = request({"pool_size": 24})
    plan = await provider.plan(change, await provider.observe(change.target))
    assert [len(phase) for phase in plan.phases] == [1, 2, 1]
    assert plan.unit("checkout-0").before == {"pool_size": 20}
    assert plan.unit("checkout-0").after == {"pool_size": 24}


@pytest.mark.parametrize(
    ("parameters", "match"),
    [
        ({"nope": 1}, "not in every unit's config"),
        ({"pool_size": float("inf")}, "finite"),
        ({"pool_size": {"nested": 1}}, "JSON scalar"),
    ],
)
async def test_plan_refuses_parameters(
    provider: HttpProvider, parameters: dict[str, object], match: str
) -> None:
    change = request(parameters)
    with pytest.raises(UnsupportedOperation, match=match):
        await provider.plan(change, await provider.observe(change.target))


async def test_apply_is_idempotent_under_a_repeated_key_and_revert_restores(
    provider: HttpProvider, fleet: Fleet
) -> None:
    unit = UnitChange(
        unit_id="checkout-1", phase="canary", before={"pool_size": 20}, after={"pool_size": 24}
    )
    await provider.apply(target(), unit, idempotency_key="chg-h/checkout-1/apply")
    await provider.apply(target(), unit, idempotency_key="chg-h/checkout-1/apply")
    assert (await provider.read_unit(target(), "checkout-1"))["pool_size"] == 24
    assert fleet.writes()["checkout/checkout-1"] == 1
    await provider.revert(target(), unit, idempotency_key="chg-h/checkout-1/revert")
    await provider.revert(target(), unit, idempotency_key="chg-h/checkout-1/revert")
    assert (await provider.read_unit(target(), "checkout-1"))["pool_size"] == 20
    assert fleet.writes()["checkout/checkout-1"] == 2


async def test_the_service_refusing_a_value_is_unsupported_operation(
    provider: HttpProvider,
) -> None:
    unit = UnitChange(unit_id="checkout-0", phase="canary", before={}, after={"pool_size": -5})
    with pytest.raises(UnsupportedOperation, match="refused \\(422\\)"):
        await provider.apply(target(), unit, idempotency_key="k-bad")


async def test_a_reused_key_with_another_body_is_unsupported_operation(
    provider: HttpProvider,
) -> None:
    first = UnitChange(unit_id="checkout-0", phase="canary", before={}, after={"pool_size": 21})
    second = first.model_copy(update={"after": {"pool_size": 22}})
    await provider.apply(target(), first, idempotency_key="k-reuse")
    with pytest.raises(UnsupportedOperation, match="409"):
        await provider.apply(target(), second, idempotency_key="k-reuse")


async def test_health_reads_each_units_document(fleet: Fleet) -> None:
    source = HttpHealthSource(fleet_endpoints(fleet.url))
    checks = [
        HealthCheck(metric="error_rate", max=0.5),
        HealthCheck(metric="latency_p99_ms", max=1),
    ]
    try:
        values = await source.measure({"endpoint": "search"}, ["search-0"], checks)
    finally:
        await source.aclose()
    assert [v.metric for v in values] == ["error_rate", "latency_p99_ms"]
    assert all(isinstance(v.value, float) for v in values)


# the HTTP-to-error mapping, once, in `request_json`


def mapped(status: int, body: bytes = b'{"error": "told so"}') -> HttpProvider:
    def answer(req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=body, headers={"Location": "http://elsewhere.example.com/"}
        )

    endpoints = {
        "flags": HttpEndpoint.model_validate(
            {"url": "http://127.0.0.1:9", "units": ["a"], "item_path": "/flags/{unit}"}
        )
    }
    return HttpProvider(endpoints, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (404, TargetNotFound, False),
        (409, UnsupportedOperation, False),
        (401, ProviderError, False),
        (403, ProviderError, False),
        (302, ProviderError, False),
        (429, TargetUnavailable, True),
        (503, TargetUnavailable, True),
    ],
)
async def test_statuses_map_to_typed_errors(
    status: int, error: type[ProviderError], retryable: bool
) -> None:
    with pytest.raises(error) as raised:
        await mapped(status).read_unit(Target(kind="http", selector={"endpoint": "flags"}), "a")
    assert type(raised.value) is error and raised.value.retryable is retryable


async def test_a_body_that_is_not_json_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="not JSON"):
        await mapped(200, b"<html>").read_unit(
            Target(kind="http", selector={"endpoint": "flags"}), "a"
        )


async def test_a_slow_endpoint_is_a_timeout() -> None:
    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=req)

    endpoints = {
        "flags": HttpEndpoint.model_validate(
            {"url": "http://127.0.0.1:9", "units": ["a"], "item_path": "/flags/{unit}"}
        )
    }
    provider = HttpProvider(endpoints, transport=httpx.MockTransport(slow))
    with pytest.raises(TargetTimeout):
        await provider.read_unit(Target(kind="http", selector={"endpoint": "flags"}), "a")


async def test_the_token_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("Authorization"))
        return httpx.Response(200, json={"on": True})

    endpoints = {
        "flags": HttpEndpoint.model_validate(
            {
                "url": "http://127.0.0.1:9",
                "units": ["a"],
                "item_path": "/flags/{unit}",
                "token_env": "FLAGS_TOKEN",
            }
        )
    }
    provider = HttpProvider(endpoints, transport=httpx.MockTransport(record))
    flags = Target(kind="http", selector={"endpoint": "flags"})
    with pytest.raises(ConfigurationError, match="FLAGS_TOKEN"):
        await provider.read_unit(flags, "a")
    monkeypatch.setenv("FLAGS_TOKEN", "t0k")
    assert await provider.read_unit(flags, "a") == {"on": True}
    assert seen == ["Bearer t0k"]


# end to end: the real dev server, a real worker, the real fleet through the http kind


@pytest.mark.e2e
async def test_a_change_through_the_http_kind_rolls_back_when_health_fails(
    temporal: WorkflowEnvironment,
    fleet: Fleet,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoints = {name: e.model_dump() for name, e in fleet_endpoints(fleet.url).items()}
    monkeypatch.setenv("CHANGEGATE_HTTP_ENDPOINTS", json.dumps(endpoints))
    async with kinds_pipeline(
        temporal.client, tmp_path_factory.mktemp("http-e2e"), KIND
    ) as changes:
        change_id = await changes.submit(
            ChangeRequest.model_validate(
                {
                    "agent": {"agent_id": "agent-7"},
                    "intent": "Roll checkout forward to the release candidate build.",
                    "target": {"kind": "http", "selector": {"endpoint": "checkout"}},
                    "change": {
                        "operation": "set_values",
                        "parameters": {"version": "1.5.0-rc1"},
                    },
                    "rollout": FAST_ROLLOUT,
                    "health_checks": [{"metric": "error_rate", "max": 0.05}],
                }
            )
        )
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        assert fleet.write_log() == []  # nothing written before approval
        await approve_fully(changes, change_id)
        final = await changes.wait(change_id)

    assert final.outcome == Outcome.ROLLED_BACK, final.timeline
    assert all(c["version"] == "1.4.2" for c in fleet.configs("checkout").values())
    writes = fleet.writes()
    # The canary was written twice (apply, revert), with the kind's idempotency keys; no
    # other instance was ever written.
    assert writes["checkout/checkout-0"] == 2
    assert all(v == 0 for k, v in writes.items() if k != "checkout/checkout-0")
    assert [u.status for u in final.units if u.unit_id == "checkout-0"] == ["reverted"]
    assert any(e.kind == "analysis" and "failed" in e.message for e in final.timeline)
