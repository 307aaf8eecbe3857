"""One contract over every installed target kind: resolve, observe, plan, apply under a
repeated key, revert, read back, and the validation errors the front door answers with.

Each kind brings a live target through its harness (`tests/kinds/*_contract.py`); the
fleet's is the session's real fleet process, the memo kind's a real file.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import JsonValue

from changegate.errors import InvalidChange, InvalidTarget
from changegate.kinds import KindRegistry, TargetKind
from changegate.models import ChangeRequest, Target
from changegate.providers import Provider, ProviderRegistry, matches
from tests.kinds.contract import Harness, load_harnesses
from tests.support import make_request

REGISTRY = KindRegistry()
HARNESSES = load_harnesses()


@dataclass
class Live:
    """A kind, its provider built from the harness's settings, and the harness."""

    kind: TargetKind
    provider: Provider
    harness: Harness

    def request(self, parameters: dict[str, JsonValue] | None = None) -> ChangeRequest:
        """A valid request for the harness's change, on its target (waves of one unit)."""
        request = make_request(rollout={"canary_units": 1, "waves": 5}, assumptions={})
        request.target = self.harness.target
        request.change.operation = self.harness.operation
        request.change.parameters = dict(
            self.harness.parameters if parameters is None else parameters
        )
        request.health_checks = (
            [
                check.model_copy(update={"metric": sorted(self.kind.metrics)[0]})
                for check in request.health_checks
            ]
            if self.kind.metrics
            else request.health_checks
        )
        return request


@pytest.fixture(params=REGISTRY.names())
async def live(request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    name: str = request.param
    if name not in HARNESSES:
        pytest.fail(
            f"kind {name!r} is installed but has no contract harness; add "
            f"tests/kinds/{name}_contract.py registering one (see tests/kinds/contract.py)"
        )
    harness = HARNESSES[name](request)
    kind = REGISTRY.get(name)
    provider = kind.provider(harness.settings)
    try:
        yield Live(kind=kind, provider=provider, harness=harness)
    finally:
        await provider.aclose()
        for undo in harness.cleanup:
            undo()


def test_every_kind_has_a_harness() -> None:
    assert sorted(set(REGISTRY.names()) - set(HARNESSES)) == []


# ---- resolve ---------------------------------------------------------------------------------


def test_resolve_is_canonical_and_stable(live: Live) -> None:
    target = live.harness.target
    once = live.provider.resolve(target)
    assert once == target, "the harness's target is canonical already"
    assert live.provider.resolve(once) == once
    for spelling, canonical in live.harness.spellings:
        assert live.provider.resolve(spelling) == canonical
        assert live.provider.resolve(spelling).label() == target.label()


def test_resolve_refuses_with_the_field(live: Live) -> None:
    assert live.harness.bad_selectors, "a harness names at least one refused selector"
    for selector, field in live.harness.bad_selectors:
        with pytest.raises(InvalidTarget) as caught:
            live.provider.resolve(Target(kind=live.kind.name, selector=selector))
        assert caught.value.field == field
        assert caught.value.rule.startswith("target.")
        assert caught.value.would_pass
    with pytest.raises(InvalidTarget) as wrong:
        live.provider.resolve(Target(kind="no-such-kind", selector={"x": "y"}))
    assert wrong.value.field == "target.kind"


def test_the_registry_refuses_an_unknown_kind_listing_the_kinds() -> None:
    with pytest.raises(InvalidTarget) as caught:
        REGISTRY.get("no-such-kind")
    assert caught.value.rule == "target.kind"
    assert all(name in caught.value.would_pass for name in REGISTRY.names())


# ---- read, plan, write -----------------------------------------------------------------------


async def test_observe_reads_every_unit(live: Live) -> None:
    observation = await live.provider.observe(live.harness.target)
    assert observation.target_label == live.harness.target.label()
    assert len(observation.units) >= 2
    ids = [u.unit_id for u in observation.units]
    assert len(ids) == len(set(ids))
    for unit in observation.units:
        assert await live.provider.read_unit(live.harness.target, unit.unit_id) == unit.state


async def test_plan_covers_each_unit_once_from_the_observed_state(live: Live) -> None:
    observation = await live.provider.observe(live.harness.target)
    plan = await live.provider.plan(live.request(), observation)
    units = plan.units()
    assert sorted(u.unit_id for u in units) == sorted(u.unit_id for u in observation.units)
    assert plan.phases[0][0].phase == "canary"
    by_id = {u.unit_id: u for u in observation.units}
    for unit in units:
        assert unit.after == live.harness.parameters
        assert unit.before == {k: by_id[unit.unit_id].state.get(k) for k in unit.after}
        assert unit.before != unit.after, "the harness's change differs from the live state"


async def test_apply_revert_and_a_repeated_key(live: Live) -> None:
    target = live.harness.target
    observation = await live.provider.observe(target)
    plan = await live.provider.plan(live.request(), observation)
    unit = plan.units()[0]
    untouched = plan.units()[1]
    key = f"contract-{live.kind.name}-{unit.unit_id}-apply"

    await live.provider.apply(target, unit, idempotency_key=key)
    assert matches(await live.provider.read_unit(target, unit.unit_id), unit.after) == []
    await live.provider.apply(target, unit, idempotency_key=key)
    assert matches(await live.provider.read_unit(target, unit.unit_id), unit.after) == []

    await live.provider.revert(target, unit, idempotency_key=f"{key}-revert")
    assert matches(await live.provider.read_unit(target, unit.unit_id), unit.before) == []
    # The apply's key again, after the revert: a repeated key must not write a second time.
    await live.provider.apply(target, unit, idempotency_key=key)
    assert matches(await live.provider.read_unit(target, unit.unit_id), unit.before) == []

    untouched_state = await live.provider.read_unit(target, untouched.unit_id)
    assert matches(untouched_state, untouched.before) == []


# ---- validation ------------------------------------------------------------------------------


def _validate(live: Live, request: ChangeRequest) -> ChangeRequest:
    providers = ProviderRegistry([live.provider])
    return KindRegistry([live.kind]).validate(request, providers=providers)


def test_a_valid_change_passes_unchanged(live: Live) -> None:
    request = live.request()
    assert _validate(live, request).change == request.change


def test_validation_refuses_with_the_field(live: Live) -> None:
    first = next(iter(live.harness.parameters))
    cases: list[tuple[dict[str, JsonValue], str]] = [
        *live.harness.bad_parameters,
        ({"no_such_key_anywhere": 1}, "change.parameters.no_such_key_anywhere"),
        ({first: math.nan}, f"change.parameters.{first}"),
        ({first: math.inf}, f"change.parameters.{first}"),
        ({first: -math.inf}, f"change.parameters.{first}"),
    ]
    for parameters, field in cases:
        with pytest.raises(InvalidChange) as caught:
            _validate(live, live.request(parameters))
        assert caught.value.rule.startswith("change."), parameters
        assert caught.value.field == field, parameters
        assert caught.value.would_pass, parameters


def test_validation_refuses_an_unknown_operation_and_metric(live: Live) -> None:
    request = live.request()
    request.change.operation = "no_such_operation"
    with pytest.raises(InvalidChange) as caught:
        _validate(live, request)
    assert caught.value.field == "change.operation"
    assert all(op in caught.value.would_pass for op in live.kind.operations)

    request = live.request()
    request.health_checks[0].metric = "no_such_metric"
    with pytest.raises(InvalidChange) as metric:
        _validate(live, request)
    assert metric.value.field == "health_checks.0.metric"
