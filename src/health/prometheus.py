"""A health source that asks a Prometheus server, through its HTTP query API.

Each check metric has a PromQL template that must return an instant vector with one series per
unit, labelled `instance`. The placeholders `{service}` and `{instances}` are replaced by the
selector's service and by an anchored alternation of the unit ids; both are escaped for use
inside a double-quoted PromQL string, the unit ids also for RE2, so a template puts them
between quotes: `instance=~"{instances}"`.

Prometheus stamps an instant query's result with the evaluation time, not with the time the
sample was scraped, so sample age is read from a second template per metric that returns
`timestamp()` of the underlying series, evaluated at the same instant.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from changegate.errors import ConfigurationError, HealthSourceError
from changegate.http_pool import HttpPool
from changegate.models import HealthCheck, MetricValue

_ERROR_RATIO = 'fleet_error_ratio{service="{service}",instance=~"{instances}"}'
_LATENCY_P99 = 'fleet_latency_p99_seconds{service="{service}",instance=~"{instances}"}'

FLEET_QUERIES: Mapping[str, str] = {
    "error_rate": f"max by (instance) ({_ERROR_RATIO})",
    "latency_p99_ms": f"1000 * max by (instance) ({_LATENCY_P99})",
}
"""The demo fleet's PromQL template for each check metric."""

FLEET_TIMESTAMP_QUERIES: Mapping[str, str] = {
    "error_rate": f"max by (instance) (timestamp({_ERROR_RATIO}))",
    "latency_p99_ms": f"max by (instance) (timestamp({_LATENCY_P99}))",
}
"""The demo fleet's PromQL template for the scrape time of each check metric's samples."""

_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def _escape_string(value: str) -> str:
    """Escape `value` for use inside a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _instances_regex(unit_ids: Sequence[str]) -> str:
    """An RE2 alternation matching exactly `unit_ids`, each matched literally."""
    return "|".join(_RE2_SPECIAL.sub(r"\\\1", unit_id) for unit_id in unit_ids)


def _render_query(template: str, *, service: str, unit_ids: Sequence[str]) -> str:
    """`template` with `{service}` and `{instances}` replaced, escaped for a PromQL string."""
    return template.replace("{service}", _escape_string(service)).replace(
        "{instances}", _escape_string(_instances_regex(unit_ids))
    )


class PrometheusSource:
    """Reads each check metric of each unit from a Prometheus server's `/api/v1/query`."""

    def __init__(
        self,
        base_url: str,
        *,
        kind: str = "fleet",
        queries: Mapping[str, str] | None = None,
        timestamp_queries: Mapping[str, str] | None = None,
        max_age_seconds: float | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Query `base_url`; `queries` default to the fleet's, `max_age_seconds` to no limit.

        With `max_age_seconds`, samples scraped longer ago than that before the query are
        treated as missing; every metric in `queries` then needs a `timestamp_queries` entry
        (the fleet's are the default when `queries` is not given).
        """
        self.kind = kind
        self._url = base_url.rstrip("/") + "/api/v1/query"
        self._queries = dict(FLEET_QUERIES if queries is None else queries)
        if timestamp_queries is None:
            timestamp_queries = FLEET_TIMESTAMP_QUERIES if queries is None else {}
        self._timestamp_queries = dict(timestamp_queries)
        if max_age_seconds is not None:
            if max_age_seconds <= 0:
                raise ConfigurationError(
                    f"max_age_seconds must be positive, got {max_age_seconds}; "
                    "leave it unset to accept samples of any age"
                )
            undated = sorted(set(self._queries) - set(self._timestamp_queries))
            if undated:
                raise ConfigurationError(
                    f"max_age_seconds is set but metrics {', '.join(undated)} have no "
                    "timestamp query; pass timestamp_queries for them"
                )
        self._max_age = max_age_seconds
        self._pool = HttpPool(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """One value per (unit, check); `value=None` where Prometheus has no fresh sample."""
        if not unit_ids or not checks:
            return []
        service = selector.get("service")
        if service is None:
            raise HealthSourceError(
                f"selector {selector!r} has no 'service' key; the Prometheus source "
                "needs one to fill the {service} placeholder of its queries"
            )
        metrics = list(dict.fromkeys(check.metric for check in checks))
        unknown = [m for m in metrics if m not in self._queries]
        if unknown:
            known = ", ".join(sorted(self._queries))
            raise ConfigurationError(
                f"no PromQL query for metrics {', '.join(unknown)}; known: {known}"
            )
        at = time.time()
        client = self._pool.client()
        readings = await asyncio.gather(
            *(self._read(client, metric, service, unit_ids, at) for metric in metrics)
        )
        by_metric = dict(zip(metrics, readings, strict=True))
        return [
            MetricValue(
                unit_id=unit_id,
                metric=check.metric,
                value=by_metric[check.metric].get(unit_id),
                max=check.max,
            )
            for unit_id in unit_ids
            for check in checks
        ]

    async def _read(
        self,
        client: httpx.AsyncClient,
        metric: str,
        service: str,
        unit_ids: Sequence[str],
        at: float,
    ) -> dict[str, float]:
        """The fresh value of `metric` for each unit that has one."""
        query = _render_query(self._queries[metric], service=service, unit_ids=unit_ids)
        values = await self._query(client, metric, query, at)
        if self._max_age is None:
            return values
        stamp_query = _render_query(
            self._timestamp_queries[metric], service=service, unit_ids=unit_ids
        )
        stamps = await self._query(client, metric, stamp_query, at)
        return {
            unit: value
            for unit, value in values.items()
            if unit in stamps and at - stamps[unit] <= self._max_age
        }

    async def _query(
        self, client: httpx.AsyncClient, metric: str, query: str, at: float
    ) -> dict[str, float]:
        """Run one instant query at `at`; each series' value by its `instance` label."""
        where = f"Prometheus at {self._url} for {metric} query {query!r}"
        try:
            response = await client.get(self._url, params={"query": query, "time": f"{at:.3f}"})
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise HealthSourceError(
                f"{where} answered HTTP {exc.response.status_code}: {_error_detail(exc.response)}; "
                "check the query is valid PromQL and the server is healthy"
            ) from exc
        except httpx.HTTPError as exc:
            raise HealthSourceError(
                f"could not reach {where}: {exc!r}; check the Prometheus URL and that it is up"
            ) from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise HealthSourceError(
                f"{where} answered a body that is not JSON ({response.text[:200]!r}); "
                "check the URL points at a Prometheus server, not a proxy or another service"
            ) from exc
        return _vector(body, where)


def _error_detail(response: httpx.Response) -> str:
    """Prometheus's own error text when the body carries one, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return repr(response.text[:200])
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return repr(response.text[:200])


def _vector(body: Any, where: str) -> dict[str, float]:
    """Map a query API answer to {instance: value}; NaN counts as no data."""
    if not isinstance(body, dict):
        raise HealthSourceError(f"{where} answered {body!r}, not a JSON object")
    if body.get("status") != "success":
        raise HealthSourceError(
            f"{where} answered status {body.get('status')!r}: "
            f"{body.get('errorType', '')} {body.get('error', '')}".rstrip()
            + "; check the query is valid PromQL"
        )
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else None
        raise HealthSourceError(
            f"{where} answered result type {kind!r}; the query must return an instant vector"
        )
    values: dict[str, float] = {}
    try:
        for series in data["result"]:
            instance = series["metric"].get("instance")
            if instance is None:
                raise HealthSourceError(
                    f"{where} returned a series without an 'instance' label "
                    f"({series['metric']!r}); aggregate the query `by (instance)`"
                )
            if instance in values:
                raise HealthSourceError(
                    f"{where} returned more than one series for instance {instance!r}; "
                    "aggregate the query `by (instance)`"
                )
            value = float(series["value"][1])
            values[instance] = value
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise HealthSourceError(
            f"{where} answered a malformed vector ({exc!r}); check the server is Prometheus "
            "and speaks the v1 query API"
        ) from exc
    return {instance: v for instance, v in values.items() if not math.isnan(v)}
