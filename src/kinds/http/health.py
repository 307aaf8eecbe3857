"""The `http` kind's health source: each unit's health document, read through JSON pointers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import httpx

from changegate.errors import ChangegateError, HealthSourceError
from changegate.http_pool import HttpPool
from changegate.kinds.http.pointer import PointerError, find
from changegate.kinds.http.provider import ENDPOINT, request_json, unit_path
from changegate.kinds.http.schema import HttpEndpoint
from changegate.models import HealthCheck, MetricValue


class HttpHealthSource:
    """GETs `health_path` (else `item_path`) per unit; `health_pointers` name each metric."""

    kind = "http"

    def __init__(
        self,
        endpoints: Mapping[str, HttpEndpoint],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Measure the units of `endpoints`."""
        self._endpoints = dict(endpoints)
        self._pool = HttpPool(timeout=10.0, transport=transport)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """One value per (unit, check); a metric missing from a unit's document is None."""
        name = selector.get(ENDPOINT, "")
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise HealthSourceError(f"no http endpoint {name!a} is configured")
        missing = sorted({c.metric for c in checks} - set(endpoint.health_pointers))
        if missing:
            raise HealthSourceError(
                f"endpoint {name!r} has no health_pointers for {', '.join(missing)}; add them "
                "to its settings or ask for checks it can measure"
            )
        path = endpoint.health_path or endpoint.item_path
        client = self._pool.client()
        try:
            documents = await asyncio.gather(
                *(request_json(client, endpoint, "GET", unit_path(path, u)) for u in unit_ids)
            )
        except ChangegateError as exc:
            raise HealthSourceError(f"could not read health of endpoint {name!r}: {exc}") from exc
        return [
            MetricValue(
                unit_id=unit,
                metric=check.metric,
                value=_number(document, endpoint.health_pointers[check.metric]),
                max=check.max,
            )
            for unit, document in zip(unit_ids, documents, strict=True)
            for check in checks
        ]


def _number(document: object, pointer: str) -> float | None:
    try:
        value = find(document, pointer)  # type: ignore[arg-type]
    except PointerError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
