"""The `http` kind object: schemas, operations, metrics, and its builders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from changegate.kinds.base import Metric, Operation
from changegate.kinds.http.health import HttpHealthSource
from changegate.kinds.http.provider import HttpProvider
from changegate.kinds.http.schema import HttpKindSettings, HttpSelector, SetValuesOperations

if TYPE_CHECKING:
    from changegate.settings import Settings


class HttpKind:
    """The `http` kind: its schemas, its one operation, and builders for provider and health."""

    name = "http"
    description = "A JSON config API: units are URLs or list items, read by JSON pointer."
    selector = HttpSelector
    operations: Mapping[str, Operation] = SetValuesOperations(
        "Set top-level keys of each unit's config to JSON scalars; reverted by writing the old "
        "values back.",
        lambda: [endpoint.keys for endpoint in HttpKindSettings().endpoints.values()],
    )
    metrics: Mapping[str, Metric] = {
        "error_rate": Metric(
            name="error_rate",
            description="Fraction of requests that failed (0-1), from the unit's health document.",
            query='max(changegate_http_error_ratio{endpoint="{{selector.endpoint}}",'
            'unit="{{unit}}"})',
        ),
        "latency_p99_ms": Metric(
            name="latency_p99_ms",
            description="99th percentile latency in ms, from the unit's health document.",
            query='max(changegate_http_latency_p99_ms{endpoint="{{selector.endpoint}}",'
            'unit="{{unit}}"})',
        ),
    }

    def provider(self, settings: Settings) -> HttpProvider:
        """The provider over the endpoints in `CHANGEGATE_HTTP_ENDPOINTS`."""
        return HttpProvider(HttpKindSettings().endpoints)

    def health_source(self, settings: Settings) -> HttpHealthSource:
        """Health read from each unit's document through the endpoint's `health_pointers`."""
        return HttpHealthSource(HttpKindSettings().endpoints)


KIND = HttpKind()
"""The kind the `changegate.targets` entry point `http` names."""
