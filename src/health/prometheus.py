"""A health source that asks a Prometheus server, through its HTTP query API.

Each check metric has a PromQL template that must return an instant vector with one series per
unit, labelled `instance`. The placeholders `{service}` and `{instances}` are replaced by the
selector's service and by an anchored alternation of the unit ids; both are escaped for use
inside a double-quoted PromQL string, the unit ids also for RE2, so a template puts them
between quotes: `instance=~"{instances}"`.

Prometheus stamps an instant query's result with the evaluation time, not with the time the
sample was scraped, so sample age is read from a second template per metric that returns
`timestamp()` of the underlying series, evaluated at the same instant.

Analysis templates (`changegate.health.templates`) are the newer way to say what to query: a
check naming a `template`, or a metric the source has no legacy query for, is measured with
the policy's template of that name or the kind's default query, rendered with `{{unit}}`,
`{{units}}` and `{{selector.KEY}}`. A template using `{{unit}}` runs once per unit and must
return at most one series; any other runs once for all units and is read by its
`unit_label`. `max_age_seconds` does not reach template queries, which bound staleness
themselves (Prometheus drops series not scraped for five minutes).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from changegate.errors import ConfigurationError, HealthSourceError
from changegate.health.templates import (
    AnalysisTemplate,
    Conditions,
    check_query,
    escape_string,
    render,
    units_regex,
)
from changegate.http_pool import HttpPool
from changegate.models import HealthCheck, MetricValue, Target

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


def _render_query(template: str, *, service: str, unit_ids: Sequence[str]) -> str:
    """`template` with `{service}` and `{instances}` replaced, escaped for a PromQL string."""
    return template.replace("{service}", escape_string(service)).replace(
        "{instances}", escape_string(units_regex(unit_ids))
    )


class TemplateLookup(Protocol):
    """Where named analysis templates come from: the policy's `analysis_templates`."""

    def resolve(self, name: str, *, kind: str, label: str) -> AnalysisTemplate | None:
        """The template `name` for a target of `kind` labelled `label`, if one is defined."""
        ...

    def names(self, *, kind: str, label: str) -> list[str]:
        """Every template name such a target may reference."""
        ...


@dataclass(frozen=True)
class _Plan:
    """How one check is measured through a template: the query and how to read its answer."""

    name: str
    query: str
    unit_label: str
    per_unit: bool
    conditions: Conditions


class PrometheusSource:
    """Reads each check metric of each unit from a Prometheus server's `/api/v1/query`."""

    def __init__(
        self,
        base_url: str,
        *,
        kind: str = "fleet",
        queries: Mapping[str, str] | None = None,
        timestamp_queries: Mapping[str, str] | None = None,
        templates: TemplateLookup | None = None,
        defaults: Mapping[str, str] | None = None,
        max_age_seconds: float | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Query `base_url`; `queries` default to the fleet's, `max_age_seconds` to no limit.

        With `max_age_seconds`, samples scraped longer ago than that before the query are
        treated as missing; every metric in `queries` then needs a `timestamp_queries` entry
        (the fleet's are the default when `queries` is not given).

        `templates` resolves a check's `template` by name (the policy's templates); `defaults`
        maps the kind's metric names to their default template query, used for a template
        name the policy does not define and for metrics `queries` lacks.
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
        self._templates: TemplateLookup | None = None
        self._defaults: dict[str, str] = {}
        if templates is not None or defaults:
            self.use_templates(templates, defaults=defaults or {})
        self._pool = HttpPool(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    def use_templates(
        self, templates: TemplateLookup | None, *, defaults: Mapping[str, str]
    ) -> None:
        """Resolve named analysis templates from `templates`, with the kind's `defaults`."""
        for metric, query in defaults.items():
            try:
                check_query(query)
            except ValueError as exc:
                raise ConfigurationError(f"default query of metric {metric!r}: {exc}") from exc
        self._templates = templates
        self._defaults = dict(defaults)

    def conditions(
        self, selector: dict[str, str], checks: Sequence[HealthCheck]
    ) -> dict[str, Conditions]:
        """The template conditions of each templated check's metric, for `classify`."""
        plans = self._plans(selector, checks)
        return {metric: plan.conditions for metric, plan in plans.items()}

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """One value per (unit, check); `value=None` where Prometheus has no fresh sample."""
        if not unit_ids or not checks:
            return []
        plans = self._plans(selector, checks)
        metrics = [m for m in dict.fromkeys(check.metric for check in checks) if m not in plans]
        service = selector.get("service")
        if metrics and service is None:
            raise HealthSourceError(
                f"selector {selector!r} has no 'service' key; the Prometheus source "
                "needs one to fill the {service} placeholder of its queries"
            )
        at = time.time()
        readings = await asyncio.gather(
            *(self._read(metric, service or "", unit_ids, at) for metric in metrics),
            *(self._run(plan, selector, unit_ids, at) for plan in plans.values()),
        )
        by_metric = dict(zip([*metrics, *plans], readings, strict=True))
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

    def _plans(self, selector: dict[str, str], checks: Sequence[HealthCheck]) -> dict[str, _Plan]:
        """The template plan of each check measured through a template, by metric."""
        plans: dict[str, _Plan] = {}
        for check in checks:
            if check.template is None and check.metric in self._queries:
                continue
            plan = self._plan(check, selector)
            if plans.setdefault(check.metric, plan) != plan:
                raise ConfigurationError(
                    f"two health checks measure {check.metric} with different templates; "
                    "give each metric one template"
                )
        return plans

    def _plan(self, check: HealthCheck, selector: dict[str, str]) -> _Plan:
        name = check.template or check.metric
        found = None
        if check.template is not None and self._templates is not None:
            found = self._templates.resolve(name, kind=self.kind, label=self._label(selector))
        if found is not None:
            return _Plan(name, found.query, found.unit_label, found.per_unit, found.conditions())
        if name in self._defaults:
            query = self._defaults[name]
            return _Plan(name, query, "instance", "unit" in check_query(query), Conditions())
        known = sorted({*self._defaults, *self._queries})
        if self._templates is not None:
            known = sorted(
                {*known, *self._templates.names(kind=self.kind, label=self._label(selector))}
            )
        what = "analysis template" if check.template is not None else "PromQL query for metric"
        raise ConfigurationError(
            f"no {what} {name!r} for {self._label(selector)}; known: {', '.join(known)}"
        )

    def _label(self, selector: dict[str, str]) -> str:
        try:
            return Target(kind=self.kind, selector=selector).label()
        except ValidationError:
            return f"{self.kind}:{selector!r}"

    async def _run(
        self, plan: _Plan, selector: dict[str, str], unit_ids: Sequence[str], at: float
    ) -> dict[str, float]:
        """Each unit's value from a template: one query per unit or one for all."""
        if not plan.per_unit:
            query = render(plan.query, selector=selector, units=unit_ids)
            return await self._query(plan.name, query, at, label=plan.unit_label)
        queries = [render(plan.query, selector=selector, unit=unit) for unit in unit_ids]
        answers = await asyncio.gather(
            *(self._query(plan.name, query, at, label=None) for query in queries)
        )
        return {
            unit: answer[_ONE]
            for unit, answer in zip(unit_ids, answers, strict=True)
            if _ONE in answer
        }

    async def _read(
        self,
        metric: str,
        service: str,
        unit_ids: Sequence[str],
        at: float,
    ) -> dict[str, float]:
        """The fresh value of `metric` for each unit that has one."""
        query = _render_query(self._queries[metric], service=service, unit_ids=unit_ids)
        values = await self._query(metric, query, at)
        if self._max_age is None:
            return values
        stamp_query = _render_query(
            self._timestamp_queries[metric], service=service, unit_ids=unit_ids
        )
        stamps = await self._query(metric, stamp_query, at)
        return {
            unit: value
            for unit, value in values.items()
            if unit in stamps and at - stamps[unit] <= self._max_age
        }

    async def _query(
        self, metric: str, query: str, at: float, *, label: str | None = "instance"
    ) -> dict[str, float]:
        """Run one instant query at `at`; each series' value by its `label`.

        With `label=None` the answer must hold at most one series, returned under `_ONE`.
        """
        where = f"Prometheus at {self._url} for {metric} query {query!r}"
        try:
            params = {"query": query, "time": f"{at:.3f}"}
            response = await self._pool.get(self._url, params=params)
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
        return _vector(body, where, label)


_ONE = ""
"""The key of the single series of a per-unit query's answer."""


def _error_detail(response: httpx.Response) -> str:
    """Prometheus's own error text when the body carries one, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return repr(response.text[:200])
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return repr(response.text[:200])


def _vector(body: Any, where: str, label: str | None) -> dict[str, float]:
    """Map a query API answer to {label value: value}; NaN counts as no data."""
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
            if label is None:
                if data["result"][1:]:
                    raise HealthSourceError(
                        f"{where} returned {len(data['result'])} series for one unit; a "
                        "query using {{unit}} must aggregate to one series, e.g. with max()"
                    )
                values[_ONE] = float(series["value"][1])
                continue
            instance = series["metric"].get(label)
            if instance is None:
                raise HealthSourceError(
                    f"{where} returned a series without an {label!r} label "
                    f"({series['metric']!r}); aggregate the query `by ({label})`"
                )
            if instance in values:
                raise HealthSourceError(
                    f"{where} returned more than one series for {label} {instance!r}; "
                    f"aggregate the query `by ({label})`"
                )
            value = float(series["value"][1])
            values[instance] = value
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise HealthSourceError(
            f"{where} answered a malformed vector ({exc!r}); check the server is Prometheus "
            "and speaks the v1 query API"
        ) from exc
    return {instance: v for instance, v in values.items() if not math.isnan(v)}
