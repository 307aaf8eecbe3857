"""The `http` provider: units of a JSON config API, read with GET and written with PUT or PATCH.

Selector: `endpoint` (required; the name of an endpoint the operator configured) and
optionally `instances` (comma-separated unit ids). A unit's config is the object the endpoint's
`pointer` names in the GET of its `item_path`; `set_values` writes the keys it sets, nested at
`write_pointer`, with an `Idempotency-Key` header, so a repeated write is answered, not redone.
Every HTTP outcome is mapped to a changegate error in one place, `_request`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from pydantic import JsonValue, ValidationError

from changegate.errors import (
    ConfigurationError,
    InvalidTarget,
    ProviderError,
    TargetNotFound,
    TargetTimeout,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.http_pool import HttpPool
from changegate.kinds.http.pointer import PointerError, find, nest
from changegate.kinds.http.schema import UNIT_PLACEHOLDER, HttpEndpoint, SetValues
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
    LABEL_RULE,
    check_keys,
    check_kind,
    dns_label,
    is_label,
    label_list,
    selected_unit,
    selected_units,
    selector_field,
)

KIND = "http"
ENDPOINT = "endpoint"
OPERATION = "set_values"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_EXAMPLE = "{'endpoint': 'flags'}"


class HttpProvider:
    """Reads and changes units of the JSON config APIs configured in settings."""

    kind = KIND

    def __init__(
        self,
        endpoints: Mapping[str, HttpEndpoint],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Serve `endpoints`; their names and fixed unit ids must be DNS labels."""
        for name, endpoint in endpoints.items():
            _check_config(name, endpoint)
        self._endpoints = dict(endpoints)
        self._pool = HttpPool(timeout=10.0, transport=transport)

    def endpoint(self, name: str) -> HttpEndpoint:
        """The configured endpoint called `name` (a resolved selector's)."""
        return self._endpoints[name]

    def resolve(self, target: Target) -> Target:
        """The canonical http target, or `InvalidTarget`."""
        check_kind(target, self.kind)
        check_keys(
            target.selector,
            kind=self.kind,
            required=(ENDPOINT,),
            optional=(UNIT_FILTER,),
            example=_EXAMPLE,
        )
        known = ", ".join(sorted(self._endpoints)) or "none (CHANGEGATE_HTTP_ENDPOINTS is empty)"
        name = dns_label(
            target.selector[ENDPOINT],
            field=selector_field(ENDPOINT),
            noun="configured endpoint name",
            example=next(iter(sorted(self._endpoints)), "flags"),
        )
        if name not in self._endpoints:
            raise InvalidTarget(
                rule="target.selector",
                field=selector_field(ENDPOINT),
                reason=f"{selector_field(ENDPOINT)} {name!r} is not a configured endpoint; "
                f"configured: {known}",
                would_pass="one of the configured endpoints; an operator adds endpoints to "
                "CHANGEGATE_HTTP_ENDPOINTS",
            )
        selector = {ENDPOINT: name}
        if UNIT_FILTER in target.selector:
            units = label_list(
                target.selector[UNIT_FILTER],
                field=selector_field(UNIT_FILTER),
                noun="unit id",
                example="a,b",
            )
            fixed = self._endpoints[name].units
            outside = sorted(set(units.split(",")) - set(fixed or units.split(",")))
            if outside:
                raise InvalidTarget(
                    rule="target.selector",
                    field=selector_field(UNIT_FILTER),
                    reason=f"endpoint {name!r} has no unit(s) {', '.join(outside)}",
                    would_pass=f"units among {', '.join(fixed or [])}",
                )
            selector[UNIT_FILTER] = units
        return Target(kind=self.kind, selector=selector)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    async def observe(self, target: Target) -> TargetObservation:
        """Every selected unit's config (and health, when the endpoint says where it is)."""
        target = self.resolve(target)
        endpoint = self.endpoint(target.selector[ENDPOINT])
        ids = await self._unit_ids(endpoint)
        wanted = selected_units(target)
        if wanted is not None:
            missing = sorted(wanted - set(ids))
            if missing:
                raise TargetNotFound(
                    f"endpoint {target.selector[ENDPOINT]!r} has no unit(s) "
                    f"{', '.join(missing)}; observe it without `instances` to list its units"
                )
            ids = [unit for unit in ids if unit in wanted]
        documents = await asyncio.gather(*(self._get_item(endpoint, unit) for unit in ids))
        units = [
            UnitObservation(
                unit_id=unit,
                state=_config(endpoint, unit, document),
                healthy=_healthy(endpoint, document),
            )
            for unit, document in zip(ids, documents, strict=True)
        ]
        return TargetObservation(
            target_label=target.label(), observed_at=datetime.now(UTC), units=units
        )

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Per-unit before/after of the keys `set_values` sets, canary first."""
        target = self.resolve(request.target)
        label = target.label()
        if observation.target_label != label:
            raise UnsupportedOperation(
                f"the observation is of {observation.target_label}, not of {label}; "
                f"observe {label} and plan from that observation"
            )
        values = parameters(request.change.operation, request.change.parameters)
        name = target.selector[ENDPOINT]
        outside_keys(values, self.endpoint(name).keys, where=f"endpoint {name!r}")
        if not observation.units:
            raise TargetNotFound(f"{label} has no units to change")
        known = set.intersection(*(set(u.state) for u in observation.units))
        unknown = sorted(set(values) - known)
        if unknown:
            raise UnsupportedOperation(
                f"key(s) {', '.join(unknown)} are not in every unit's config; "
                f"the keys all units have are {', '.join(sorted(known)) or 'none'}"
            )
        by_id = {u.unit_id: u for u in observation.units}
        phases = split_phases([u.unit_id for u in observation.units], request.rollout)
        return ChangePlan(
            phases=[
                [
                    UnitChange(
                        unit_id=unit_id,
                        phase=phase_name(index),
                        before={key: by_id[unit_id].state[key] for key in values},
                        after=dict(values),
                    )
                    for unit_id in unit_ids
                ]
                for index, unit_ids in enumerate(phases)
            ]
        )

    async def read_unit(self, target: Target, unit_id: str) -> dict[str, JsonValue]:
        """The unit's current config object."""
        target = self.resolve(target)
        endpoint = self.endpoint(target.selector[ENDPOINT])
        unit = _unit(target, unit_id)
        return _config(endpoint, unit, await self._get_item(endpoint, unit))

    async def apply(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Write `unit.after`."""
        await self._write(target, unit.unit_id, unit.after, idempotency_key)

    async def revert(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Write `unit.before` back."""
        await self._write(target, unit.unit_id, unit.before, idempotency_key)

    async def _write(
        self, target: Target, unit_id: str, values: Mapping[str, JsonValue], key: str
    ) -> None:
        target = self.resolve(target)
        endpoint = self.endpoint(target.selector[ENDPOINT])
        unit = _unit(target, unit_id)
        await self._request(
            endpoint,
            endpoint.method,
            unit_path(endpoint.write_path or endpoint.item_path, unit),
            json=nest(endpoint.write_pointer, dict(values)),
            headers={IDEMPOTENCY_HEADER: key},
        )

    async def _unit_ids(self, endpoint: HttpEndpoint) -> list[str]:
        if endpoint.units is not None:
            return list(endpoint.units)
        assert endpoint.list_path is not None  # the settings model requires one of the two
        body = await self._request(endpoint, "GET", endpoint.list_path)
        items = _find(body, endpoint.list_pointer, what="list_pointer", path=endpoint.list_path)
        if not isinstance(items, list):
            raise ProviderError(
                f"list_pointer {endpoint.list_pointer!r} of GET {endpoint.list_path} names a "
                f"{type(items).__name__}, not an array; fix the endpoint's settings"
            )
        ids = []
        for item in items:
            unit = _find(item, endpoint.id_pointer, what="id_pointer", path=endpoint.list_path)
            if not isinstance(unit, str) or not is_label(unit):
                raise ProviderError(
                    f"GET {endpoint.list_path} lists the unit id {str(unit)[:80]!a}, which "
                    f"changegate cannot use: a unit id is {LABEL_RULE}"
                )
            ids.append(unit)
        return ids

    async def _get_item(self, endpoint: HttpEndpoint, unit: str) -> JsonValue:
        return await self._request(endpoint, "GET", unit_path(endpoint.item_path, unit))

    async def _request(
        self,
        endpoint: HttpEndpoint,
        method: str,
        path: str,
        *,
        json: JsonValue = None,
        headers: dict[str, str] | None = None,
    ) -> JsonValue:
        return await request_json(
            self._pool.client(), endpoint, method, path, json=json, headers=headers
        )


async def request_json(
    client: httpx.AsyncClient,
    endpoint: HttpEndpoint,
    method: str,
    path: str,
    *,
    json: JsonValue = None,
    headers: dict[str, str] | None = None,
) -> JsonValue:
    """One request to `endpoint`, its answer's JSON, every failure mapped to a changegate error."""
    sent = dict(headers or {})
    if endpoint.token_env is not None:
        token = os.environ.get(endpoint.token_env)
        if not token:
            raise ConfigurationError(
                f"the endpoint's token_env {endpoint.token_env!r} is not set in the worker's "
                "environment; set it, or remove token_env from the endpoint"
            )
        sent["Authorization"] = f"Bearer {token}"
    url = f"{endpoint.url}{path}"
    what = f"{method} {url}"
    try:
        response = await client.request(
            method,
            url,
            json=json if method != "GET" else None,
            headers=sent,
            timeout=endpoint.timeout_seconds,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        raise TargetTimeout(
            f"{what} did not answer within {endpoint.timeout_seconds:g}s ({type(exc).__name__})"
        ) from exc
    except httpx.HTTPError as exc:
        raise TargetUnavailable(f"{what} failed: {exc!r}; is the service up?") from exc
    status = response.status_code
    if status == 404:
        raise TargetNotFound(f"{what} answered 404: {_text(response)}")
    if status in (400, 409, 422):
        raise UnsupportedOperation(f"{what} was refused ({status}): {_text(response)}")
    if status in (401, 403):
        raise ProviderError(
            f"{what} answered {status}: the endpoint refused changegate's credentials; "
            f"check the token in {endpoint.token_env or '(no token_env configured)'}"
        )
    if status in (408, 425, 429) or status >= 500:
        raise TargetUnavailable(f"{what} answered {status}: {_text(response)}")
    if status >= 300:
        raise ProviderError(
            f"{what} answered {status}, which changegate does not follow; point the endpoint's "
            "settings at the final URL"
        )
    if not response.content:
        return None
    try:
        body: JsonValue = response.json()
    except ValueError as exc:
        raise ProviderError(f"{what} answered {status} with a body that is not JSON") from exc
    return body


def unit_path(template: str, unit: str) -> str:
    """`template` with its `{unit}` replaced by the (already validated) unit id, quoted."""
    return template.replace(UNIT_PLACEHOLDER, quote(unit, safe=""))


def parameters(operation: str, raw: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """The typed `set_values` parameters, or `UnsupportedOperation` naming what is wrong."""
    if operation != OPERATION:
        raise UnsupportedOperation(
            f"operation {operation!r} is not an operation of this kind; it has {OPERATION!r}"
        )
    try:
        return SetValues.model_validate(dict(raw)).values()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}"
            for e in exc.errors()
        )
        raise UnsupportedOperation(f"set_values parameters are not valid: {problems}") from None


def outside_keys(
    values: Mapping[str, JsonValue], declared: list[str] | None, *, where: str
) -> None:
    """`UnsupportedOperation` if `values` sets a key outside the target's `declared` keys."""
    if declared is None:
        return
    outside = sorted(set(values) - set(declared))
    if outside:
        raise UnsupportedOperation(
            f"key(s) {', '.join(outside)} are not keys {where} declares; it declares "
            f"{', '.join(declared) or 'none'}"
        )


def _check_config(name: str, endpoint: HttpEndpoint) -> None:
    if not is_label(name):
        raise ConfigurationError(f"http endpoint name {name!a} is not {LABEL_RULE}")
    for unit in endpoint.units or []:
        if not is_label(unit):
            raise ConfigurationError(f"endpoint {name!r}: unit id {unit!a} is not {LABEL_RULE}")


def _find(document: JsonValue, pointer: str, *, what: str, path: str) -> JsonValue:
    try:
        return find(document, pointer)
    except PointerError as exc:
        raise ProviderError(
            f"the endpoint's {what} does not match the answer of GET {path}: {exc}"
        ) from exc


def _config(endpoint: HttpEndpoint, unit: str, document: JsonValue) -> dict[str, JsonValue]:
    path = unit_path(endpoint.item_path, unit)
    config = _find(document, endpoint.pointer, what="pointer", path=path)
    if not isinstance(config, dict):
        raise ProviderError(
            f"pointer {endpoint.pointer!r} of GET {path} names a {type(config).__name__}, "
            "not an object; a unit's config is a JSON object"
        )
    return config


def _healthy(endpoint: HttpEndpoint, document: JsonValue) -> bool | None:
    if endpoint.healthy_pointer is None:
        return None
    try:
        return find(document, endpoint.healthy_pointer) == endpoint.healthy_value
    except PointerError:
        return None


def _text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:300]
    return response.text[:300]


def _unit(canonical: Target, unit_id: str) -> str:
    return selected_unit(canonical, unit_id, noun="unit id", example="a")
