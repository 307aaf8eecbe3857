"""Canonical targets: strict selector validation and one label per set of units."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from changegate.errors import ChangegateError, InvalidTarget
from changegate.kinds.fleet import FleetProvider
from changegate.models import ChangePlan, ChangeRequest, Target, TargetObservation, UnitChange
from changegate.providers import Provider, ProviderRegistry, ReadOnlyProvider

FLEET_URL = "http://127.0.0.1:9"


def _target(**selector: str) -> Target:
    return Target(kind="fleet", selector=selector)


def _provider(transport: httpx.AsyncBaseTransport | None = None) -> FleetProvider:
    return FleetProvider(FLEET_URL, transport=transport)


def _refusal(target: Target) -> InvalidTarget:
    with pytest.raises(InvalidTarget) as caught:
        ProviderRegistry([_provider()]).resolve(target)
    return caught.value


# --- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ("search/../checkout", "contains '/'"),
        ("..", "contains '.'"),
        (".", "contains '.'"),
        ("checkout/", "contains '/'"),
        ("checkout/..", "contains '/'"),
        ("%2e%2e", "contains '%'"),
        ("check%6fut", "contains '%'"),
        ("checkout%2F..%2Fsearch", "contains '%'"),
        ("checkout?x=1", "contains '?'"),
        ("checkout#x", "contains '#'"),
        ("checkout\\..\\search", "contains '\\\\'"),
        ("Checkout", "has uppercase letters"),
        ("CHECKOUT", "has uppercase letters"),
        ("checkout ", "contains whitespace (' ')"),
        (" checkout", "contains whitespace (' ')"),
        ("check out", "contains whitespace (' ')"),
        ("checkout\n", "contains whitespace ('\\n')"),
        ("checkout\t", "contains whitespace ('\\t')"),
        ("checkout\x00", "contains '\\x00'"),
        ("\u0441heckout", "contains U+0441 (CYRILLIC SMALL LETTER ES), not ASCII"),
        ("check\u043eut", "contains U+043E (CYRILLIC SMALL LETTER O), not ASCII"),
        ("\uff43\uff48eckout", "contains U+FF43 (FULLWIDTH LATIN SMALL LETTER C), not ASCII"),
        ("checkout\u200b", "contains U+200B (ZERO WIDTH SPACE), not ASCII"),
        ("chec\u212aout", "contains U+212A (KELVIN SIGN), not ASCII"),  # lowercases to 'k'
        ("checkout\u202e", "contains U+202E (RIGHT-TO-LEFT OVERRIDE), not ASCII"),
        ("checkout\xa0", "contains whitespace ('\\xa0')"),
        ("check_out", "contains '_'"),
        ("-checkout", "starts or ends with '-'"),
        ("checkout-", "starts or ends with '-'"),
        ("", "is empty"),
        ("a" * 64, "is 64 characters long"),
    ],
)
def test_service_names_outside_the_rule_are_refused(service: str, problem: str) -> None:
    refusal = _refusal(_target(service=service))
    assert refusal.rule == "target.selector"
    assert refusal.field == "target.selector.service"
    assert refusal.reason.startswith(f"target.selector.service {service!a} {problem}")
    assert "1-63 lowercase ASCII letters, digits and '-'" in refusal.reason


@pytest.mark.parametrize("service", ["a", "checkout", "payments-v2", "0", "a" * 63, "a-b"])
def test_service_names_inside_the_rule_pass_unchanged(service: str) -> None:
    assert _provider().resolve(_target(service=service)) == _target(service=service)


def test_a_case_or_padding_slip_is_told_the_fix_and_nothing_else_is() -> None:
    assert _refusal(_target(service="Checkout ")).would_pass == "target.selector.service 'checkout'"
    # A path, an encoding or a lookalike gets the example, not a guess at where it pointed.
    for service in ["search/../checkout", "%2e%2e", "chec\u212aout", "\u0441heckout"]:
        assert _refusal(_target(service=service)).would_pass == (
            "a fleet service name such as 'checkout'"
        )


@pytest.mark.parametrize("extra", [{"note": "x"}, {"Service": "checkout"}, {"service ": "x"}])
def test_extra_selector_keys_are_refused(extra: dict[str, str]) -> None:
    refusal = _refusal(Target(kind="fleet", selector={"service": "checkout", **extra}))
    (key,) = extra
    assert refusal.rule == "target.selector"
    assert f"unknown key(s) {key!r}" in refusal.reason
    assert "takes only 'instances', 'service'" in refusal.reason
    assert refusal.would_pass == f"the selector without {key!r}, e.g. {{'service': 'checkout'}}"


def test_unknown_key_fields_are_named_readably() -> None:
    assert _refusal(_target(service="checkout", note="x")).field == "target.selector.note"
    refusal = _refusal(Target(kind="fleet", selector={"service": "checkout", "a.b": "x"}))
    assert refusal.field == "target.selector['a.b']"


def test_refusals_stay_short_whatever_the_selector() -> None:
    refusal = _refusal(_target(service="a/" * 5000))
    assert "is 10000 characters long" in refusal.reason
    assert len(str(refusal)) < 400
    many = {f"k{i:04}": "x" for i in range(1000)}
    refusal = _refusal(Target(kind="fleet", selector={"service": "checkout", **many}))
    assert "'k0000', 'k0001', 'k0002', 'k0003', 'k0004' and 995 more;" in refusal.reason
    assert len(str(refusal)) < 600


def test_missing_service_is_refused() -> None:
    refusal = _refusal(_target(instances="checkout-0"))
    assert (refusal.rule, refusal.field) == ("target.selector", "target.selector.service")
    assert refusal.reason == "a fleet target needs target.selector.service"
    assert refusal.would_pass == "a selector such as {'service': 'checkout'}"


@pytest.mark.parametrize(
    ("instances", "fragment"),
    [
        ("", "is empty"),
        (",", "has an empty entry"),
        ("checkout-0,", "has an empty entry"),
        ("checkout-0,,checkout-1", "has an empty entry"),
        ("checkout-0, checkout-1", "entry ' checkout-1', which contains whitespace"),
        ("checkout-0;checkout-1", "which contains ';'"),
        ("checkout-0,../search-0", "which contains '.'"),
        ("checkout-0,search-0/config", "which contains '/'"),
        ("Checkout-0", "which has uppercase letters"),
        ("checkout-0,%2e%2e", "which contains '%'"),
        ("checkout-0\u0301", "contains U+0301 (COMBINING ACUTE ACCENT), not ASCII"),
    ],
)
def test_malformed_instance_lists_are_refused(instances: str, fragment: str) -> None:
    refusal = _refusal(_target(service="checkout", instances=instances))
    assert (refusal.rule, refusal.field) == ("target.selector", "target.selector.instances")
    assert fragment in refusal.reason
    assert "'checkout-0,checkout-1'" in refusal.would_pass


def test_unknown_kind_lists_the_known_ones() -> None:
    refusal = _refusal(Target(kind="k8s", selector={"service": "checkout"}))
    assert (refusal.rule, refusal.field) == ("target.kind", "target.kind")
    assert (
        refusal.reason
        == "target.kind 'k8s' is not a kind this changegate knows; known kinds: 'fleet'"
    )
    assert refusal.would_pass == "a target of one of the known kinds: 'fleet'"


def test_the_fleet_provider_resolves_only_its_own_kind() -> None:
    with pytest.raises(InvalidTarget) as caught:
        _provider().resolve(Target(kind="http", selector={"service": "checkout"}))
    assert (caught.value.rule, caught.value.field) == ("target.kind", "target.kind")


# --- the refusal itself ------------------------------------------------------------------------


def test_the_message_names_rule_field_reason_and_what_would_pass() -> None:
    refusal = _refusal(_target(service="search/../checkout"))
    assert isinstance(refusal, ChangegateError)
    assert str(refusal) == (
        "refused by rule target.selector: target.selector.service 'search/../checkout' "
        "contains '/'; a fleet service name is 1-63 lowercase ASCII letters, digits and '-', "
        "starting and ending with a letter or digit; "
        "would pass: a fleet service name such as 'checkout'"
    )
    for part in (refusal.rule, refusal.field, refusal.reason, refusal.would_pass):
        assert part in str(refusal)


def test_the_refusal_survives_pickle_and_copy() -> None:
    refusal = _refusal(_target(service="checkout", note="x"))
    for clone in (pickle.loads(pickle.dumps(refusal)), copy.copy(refusal)):
        assert isinstance(clone, InvalidTarget)
        assert (clone.rule, clone.field, clone.reason, clone.would_pass, str(clone)) == (
            refusal.rule,
            refusal.field,
            refusal.reason,
            refusal.would_pass,
            str(refusal),
        )


# --- canonical form and labels -----------------------------------------------------------------


def test_instances_are_sorted_and_deduplicated() -> None:
    resolved = _provider().resolve(
        _target(service="checkout", instances="checkout-2,checkout-0,checkout-2")
    )
    assert resolved == _target(service="checkout", instances="checkout-0,checkout-2")


def test_selectors_reaching_the_same_units_share_a_label() -> None:
    registry = ProviderRegistry([_provider()])
    same = [
        _target(service="checkout"),
        _target(service="checkout", instances="checkout-1,checkout-0"),
        _target(service="checkout", instances="checkout-0,checkout-1,checkout-0"),
        _target(instances="checkout-3", service="checkout"),
    ]
    assert {registry.resolve(t).label() for t in same} == {"fleet:service=checkout"}
    narrowed = {registry.resolve(t).selector.get("instances") for t in same[1:3]}
    assert narrowed == {"checkout-0,checkout-1"}


def test_resolve_is_idempotent_and_pure() -> None:
    provider = _provider()
    raw = _target(service="search", instances="search-2,search-0")
    once = provider.resolve(raw)
    assert provider.resolve(once) == once
    assert raw.selector == {"service": "search", "instances": "search-2,search-0"}


def test_a_resolved_label_is_the_label_of_an_accepted_target() -> None:
    # Only `instances` is rewritten, and it is not part of the label: code that still labels
    # the submitted target agrees with the canonical one whenever resolve accepted it.
    raw = _target(service="payments", instances="payments-2,payments-1")
    assert _provider().resolve(raw).label() == raw.label() == "fleet:service=payments"


# --- the provider behind the registry ----------------------------------------------------------


def test_providers_satisfy_the_protocols_and_build_without_a_network() -> None:
    # No event loop and an unroutable URL: constructing must not connect.
    provider = FleetProvider("http://127.0.0.1:9")
    assert isinstance(provider, ReadOnlyProvider)
    assert isinstance(provider, Provider)
    registry = ProviderRegistry([provider])
    assert registry.resolve(_target(service="checkout")) == _target(service="checkout")


class _Recorder:
    """A fleet stand-in that records every request and answers like the fleet."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.raw_path.decode())
        instances = [
            {"instance": f"checkout-{i}", "config": {"pool_size": 20}, "health": {"status": "x"}}
            for i in range(4)
        ]
        if request.url.path == "/services/checkout":
            return httpx.Response(200, json={"instances": instances, "demand": 16})
        return httpx.Response(200, json={"config": {"pool_size": 20}})


def _request(target: Target) -> ChangeRequest:
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": "agent-1"},
            "intent": "raise the pool size for the holiday peak",
            "target": target.model_dump(),
            "change": {"operation": "set_config", "parameters": {"pool_size": 24}},
        }
    )


def _calls(
    provider: FleetProvider, target: Target
) -> list[Callable[[], Coroutine[Any, Any, object]]]:
    unit = UnitChange(unit_id="checkout-0", phase="canary", before={}, after={"pool_size": 24})
    observation = TargetObservation.model_validate(
        {
            "target_label": "fleet:service=checkout",
            "observed_at": "2025-01-02T03:04:05Z",
            "units": [],
        }
    )
    return [
        lambda: provider.observe(target),
        lambda: provider.plan(_request(target), observation),
        lambda: provider.read_unit(target, "checkout-0"),
        lambda: provider.apply(target, unit, idempotency_key="k"),
        lambda: provider.revert(target, unit, idempotency_key="k"),
    ]


@pytest.mark.parametrize(
    "selector",
    [
        {"service": "search/../checkout"},
        {"service": "%2e%2e"},
        {"service": "Checkout"},
        {"service": "checkout", "note": "x"},
        {"service": "checkout", "instances": "checkout-0,../checkout-1"},
    ],
)
async def test_every_provider_method_refuses_before_any_request(selector: dict[str, str]) -> None:
    recorder = _Recorder()
    provider = _provider(httpx.MockTransport(recorder))
    for call in _calls(provider, Target(kind="fleet", selector=selector)):
        with pytest.raises(InvalidTarget):
            await call()
    await provider.aclose()
    assert recorder.paths == []


@pytest.mark.parametrize("unit_id", ["../search-0", "checkout-0/config", "%2e%2e", "Checkout-0"])
async def test_unit_ids_are_checked_before_any_request(unit_id: str) -> None:
    recorder = _Recorder()
    provider = _provider(httpx.MockTransport(recorder))
    unit = UnitChange(unit_id=unit_id, phase="canary", before={}, after={"pool_size": 24})
    target = _target(service="checkout")
    with pytest.raises(InvalidTarget) as caught:
        await provider.read_unit(target, unit_id)
    assert (caught.value.rule, caught.value.field) == ("target.unit", "unit_id")
    for write in (provider.apply, provider.revert):
        with pytest.raises(InvalidTarget):
            await write(target, unit, idempotency_key="k")
    await provider.aclose()
    assert recorder.paths == []


async def test_units_outside_the_instance_filter_are_not_written() -> None:
    recorder = _Recorder()
    provider = _provider(httpx.MockTransport(recorder))
    target = _target(service="checkout", instances="checkout-1,checkout-0")
    unit = UnitChange(unit_id="checkout-3", phase="canary", before={}, after={"pool_size": 24})
    with pytest.raises(InvalidTarget) as caught:
        await provider.apply(target, unit, idempotency_key="k")
    assert caught.value.reason == (
        "unit_id 'checkout-3' is not selected by fleet:service=checkout with "
        "target.selector.instances 'checkout-0,checkout-1'"
    )
    await provider.aclose()
    assert recorder.paths == []


async def test_canonical_targets_reach_the_fleet_by_their_canonical_paths() -> None:
    recorder = _Recorder()
    provider = _provider(httpx.MockTransport(recorder))
    target = _target(service="checkout", instances="checkout-2,checkout-0,checkout-2")
    observation = await provider.observe(target)
    assert observation.target_label == "fleet:service=checkout"
    assert [u.unit_id for u in observation.units] == ["checkout-0", "checkout-2"]
    plan = await provider.plan(_request(target), observation)
    assert isinstance(plan, ChangePlan)
    unit = plan.phases[0][0]
    await provider.read_unit(target, unit.unit_id)
    await provider.apply(target, unit, idempotency_key="k")
    await provider.aclose()
    assert recorder.paths == [
        "/services/checkout",
        "/services/checkout/instances/checkout-0",
        "/services/checkout/instances/checkout-0/config",
    ]


async def test_a_plan_from_another_targets_observation_is_refused() -> None:
    provider = _provider()
    observation = TargetObservation.model_validate(
        {"target_label": "fleet:service=search", "observed_at": "2025-01-02T03:04:05Z", "units": []}
    )
    with pytest.raises(ChangegateError, match=r"observation is of fleet:service=search"):
        await provider.plan(_request(_target(service="checkout")), observation)
