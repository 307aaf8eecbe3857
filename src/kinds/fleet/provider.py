"""The `fleet` kind's provider: the demo fleet's HTTP API, one unit per service instance.

Selector: `service` (required) and optionally `instances` (comma-separated instance ids), both
checked by `resolve`: names follow the DNS-label rule, and the canonical `instances` is sorted
with each id once. Every other method resolves its target again before it builds a URL.
Operations: `set_config`, whose parameters are the config keys to set and their new values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import JsonValue

from changegate.errors import (
    TargetNotFound,
    TargetTimeout,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.http_pool import HttpPool
from changegate.models import (
    ChangePlan,
    ChangeRequest,
    Target,
    TargetObservation,
    UnitChange,
    UnitObservation,
)
from changegate.models.request import UNIT_FILTER
from changegate.providers.phasing import phase_name, split_phases
from changegate.providers.selectors import (
    check_keys,
    check_kind,
    dns_label,
    label_list,
    selected_unit,
    selected_units,
    selector_field,
)

OPERATIONS = ("set_config",)
SERVICE = "service"


class FleetProvider:
    """Reads and changes instances of the demo fleet over HTTP."""

    kind = "fleet"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Talk to the fleet at `base_url`; nothing connects before the first request."""
        self._base_url = base_url.rstrip("/")
        self._pool = HttpPool(timeout=timeout, transport=transport)

    def resolve(self, target: Target) -> Target:
        """The canonical fleet target, or `InvalidTarget` for a key or name it cannot vouch for."""
        check_kind(target, self.kind)
        check_keys(
            target.selector,
            kind=self.kind,
            required=(SERVICE,),
            optional=(UNIT_FILTER,),
            example="{'service': 'checkout'}",
        )
        service = dns_label(
            target.selector[SERVICE],
            field=selector_field(SERVICE),
            noun="fleet service name",
            example="checkout",
        )
        selector = {SERVICE: service}
        if UNIT_FILTER in target.selector:
            selector[UNIT_FILTER] = label_list(
                target.selector[UNIT_FILTER],
                field=selector_field(UNIT_FILTER),
                noun="instance id",
                example=f"{service}-0,{service}-1",
            )
        return Target(kind=self.kind, selector=selector)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    async def observe(self, target: Target) -> TargetObservation:
        """Every selected instance with its config and health."""
        target = self.resolve(target)
        service = target.selector[SERVICE]
        body = await self._request("GET", _path("services", service))
        wanted = selected_units(target)
        units = [
            UnitObservation(
                unit_id=inst["instance"],
                state=inst["config"],
                healthy=inst["health"]["status"] == "healthy",
            )
            for inst in body["instances"]
            if wanted is None or inst["instance"] in wanted
        ]
        if wanted is not None and len(units) != len(wanted):
            missing = sorted(wanted - {u.unit_id for u in units})
            raise TargetNotFound(
                f"service {service!r} has no instance(s) {', '.join(missing)}; "
                "observe the service without `instances` to list them"
            )
        return TargetObservation(
            target_label=target.label(),
            observed_at=datetime.now(UTC),
            units=units,
            facts={"demand": body.get("demand")},
        )

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Per-instance before/after of the keys `set_config` touches, canary first."""
        label = self.resolve(request.target).label()
        if observation.target_label != label:
            # Planning from another target's observation would change units nobody asked for.
            raise UnsupportedOperation(
                f"the observation is of {observation.target_label}, not of the request's "
                f"target {label}; observe {label} and plan from that observation"
            )
        change = request.change
        if change.operation not in OPERATIONS:
            raise UnsupportedOperation(
                f"operation {change.operation!r} is not supported by the fleet provider; "
                f"supported: {', '.join(OPERATIONS)}"
            )
        if not change.parameters:
            raise UnsupportedOperation(
                "set_config needs at least one config key in `change.parameters`, "
                "e.g. {'pool_size': 24}"
            )
        if not observation.units:
            raise TargetNotFound(f"{observation.target_label} has no instances to change")
        known = set(observation.units[0].state)
        unknown = sorted(set(change.parameters) - known)
        if unknown:
            raise UnsupportedOperation(
                f"unknown config key(s) {', '.join(unknown)}; "
                f"the fleet's config keys are {', '.join(sorted(known))}"
            )
        by_id = {u.unit_id: u for u in observation.units}
        phases = split_phases([u.unit_id for u in observation.units], request.rollout)
        return ChangePlan(
            phases=[
                [
                    UnitChange(
                        unit_id=unit_id,
                        phase=phase_name(index),
                        before={k: by_id[unit_id].state.get(k) for k in change.parameters},
                        after=dict(change.parameters),
                    )
                    for unit_id in unit_ids
                ]
                for index, unit_ids in enumerate(phases)
            ]
        )

    async def read_unit(self, target: Target, unit_id: str) -> dict[str, JsonValue]:
        """The instance's current config."""
        target = self.resolve(target)
        service = target.selector[SERVICE]
        unit = _unit(target, unit_id)
        body = await self._request("GET", _path("services", service, "instances", unit))
        config: dict[str, JsonValue] = body["config"]
        return config

    async def apply(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Write `unit.after` to the instance's config."""
        await self._write(target, unit.unit_id, unit.after, idempotency_key)

    async def revert(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Write `unit.before` back to the instance's config."""
        await self._write(target, unit.unit_id, unit.before, idempotency_key)

    async def _write(
        self, target: Target, unit_id: str, config: Mapping[str, JsonValue], key: str
    ) -> None:
        target = self.resolve(target)
        service = target.selector[SERVICE]
        unit = _unit(target, unit_id)
        await self._request(
            "PUT",
            _path("services", service, "instances", unit, "config"),
            json={"config": dict(config)},
            headers={"Idempotency-Key": key},
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self._base_url}{path}"
        try:
            response = await self._pool.client().request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise TargetTimeout(
                f"the fleet at {self._base_url} did not answer {method} {path}: {exc!r}; "
                "is `changegate fleet` running there?"
            ) from exc
        if response.status_code == 404:
            raise TargetNotFound(_error_text(response))
        if response.status_code in (400, 409, 422):
            raise UnsupportedOperation(
                f"the fleet refused {method} {path}: {_error_text(response)}"
            )
        if response.status_code >= 400:
            raise TargetUnavailable(
                f"the fleet answered {method} {path} with {response.status_code}: "
                f"{_error_text(response)}"
            )
        body: dict[str, Any] = response.json()
        return body


def _path(*segments: str) -> str:
    # Segments are validated already. Quoting still keeps a '/', '%' or '?' that slipped past
    # from reshaping the URL; it cannot help with '.' and '..', which only validation stops.
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text


def _unit(canonical: Target, unit_id: str) -> str:
    """`unit_id` if it is an instance id the canonical target selects."""
    example = f"{canonical.selector[SERVICE]}-0"
    return selected_unit(canonical, unit_id, noun="fleet instance id", example=example)
