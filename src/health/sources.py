"""Health sources: where measurements come from, behind one small interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx

from changegate.errors import ConfigurationError, HealthSourceError
from changegate.health.prometheus_text import parse
from changegate.http_pool import HttpPool
from changegate.models import HealthCheck, MetricValue

# The fleet's gauge for each check metric, and the factor from its unit to the check's.
_FLEET_METRICS = {
    "error_rate": ("fleet_error_ratio", 1.0),
    "latency_p99_ms": ("fleet_latency_p99_seconds", 1000.0),
}


class HealthSource(Protocol):
    """Reads the current value of each check for each unit."""

    kind: str

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """One value per (unit, check); `value=None` where the source has no data."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class FleetMetricsSource:
    """Reads the demo fleet's own Prometheus-format `/metrics` endpoint."""

    kind = "fleet"

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        """Scrape `base_url`/metrics."""
        self._url = base_url.rstrip("/") + "/metrics"
        self._pool = HttpPool(timeout=timeout)

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """The fleet's windowed error ratio and p99 latency of each unit."""
        if not unit_ids or not checks:
            return []
        for check in checks:
            if check.template is not None:
                raise ConfigurationError(
                    f"health check {check.metric} names analysis template {check.template!r}, "
                    "but the fleet's own /metrics cannot run PromQL; set "
                    "CHANGEGATE_PROMETHEUS_URL to judge health through Prometheus"
                )
            if check.metric not in _FLEET_METRICS:
                raise ConfigurationError(
                    f"the fleet's /metrics has no metric {check.metric!r}; known: "
                    f"{', '.join(sorted(_FLEET_METRICS))}"
                )
        service = selector.get("service")
        # The fleet filters its /metrics by service and instance, so only the measured units'
        # series cross the wire and get parsed, however large the fleet.
        params: dict[str, str | list[str]] = {"instance": list(unit_ids)}
        if service is not None:
            params["service"] = service
        try:
            response = await self._pool.get(self._url, params=params)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise HealthSourceError(f"could not scrape {self._url}: {exc!r}") from exc
        latest: dict[tuple[str, str], float] = {}
        for name, labels, value in parse(response.text, source=self._url):
            if labels.get("service") == service and "instance" in labels:
                latest[(name, labels["instance"])] = value
        values = []
        for unit_id in unit_ids:
            for check in checks:
                metric, factor = _FLEET_METRICS[check.metric]
                raw = latest.get((metric, unit_id))
                values.append(
                    MetricValue(
                        unit_id=unit_id,
                        metric=check.metric,
                        value=None if raw is None else raw * factor,
                        max=check.max,
                    )
                )
        return values


class HealthSourceRegistry:
    """Health sources by target kind."""

    def __init__(self, sources: Sequence[HealthSource]) -> None:
        """Register each source under its `kind`."""
        self._sources = {s.kind: s for s in sources}

    async def aclose(self) -> None:
        """Close every source."""
        for source in self._sources.values():
            await source.aclose()

    def get(self, kind: str) -> HealthSource:
        """The source that measures targets of `kind`."""
        try:
            return self._sources[kind]
        except KeyError:
            known = ", ".join(sorted(self._sources))
            raise ConfigurationError(
                f"no health source for target kind {kind!r}; known: {known}"
            ) from None
