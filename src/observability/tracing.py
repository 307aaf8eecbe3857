"""OpenTelemetry tracing of changegate's Temporal calls, on when an OTLP endpoint is set.

`CHANGEGATE_OTLP_ENDPOINT` (a base URL such as `http://127.0.0.1:4318`) or the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turns it on. Every
client `changegate.service.connect` makes then carries Temporal's `TracingInterceptor`, so
the API's start of a change, the workflow run and each activity are spans of one trace,
sent over OTLP/HTTP. Spans carry workflow and activity names and ids, never payloads.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer
from temporalio.client import Interceptor

from changegate.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["SERVICE_NAME", "flush_traces", "traces_endpoint", "tracing_interceptors"]

SERVICE_NAME = "changegate"
"""The `service.name` of every span, unless `OTEL_SERVICE_NAME` says otherwise."""

_STANDARD = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def traces_endpoint(settings: Settings) -> str | None:
    """Where spans go: `<CHANGEGATE_OTLP_ENDPOINT>/v1/traces`, else `""` when only the
    standard variables are set (the exporter reads them itself), else None: tracing is off."""
    if settings.otlp_endpoint:
        return settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    return "" if any(os.environ.get(name) for name in _STANDARD) else None


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """`[TracingInterceptor]` exporting to the configured endpoint, or `[]` when off."""
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_tracer(endpoint))]


def flush_traces() -> None:
    """Send every finished span now (spans otherwise leave in batches every few seconds)."""
    for provider in _providers.values():
        provider.force_flush()


_providers: dict[str, TracerProvider] = {}


@cache
def _tracer(endpoint: str) -> Tracer:
    # One provider per endpoint and process, kept out of OpenTelemetry's global so a host
    # application's own tracing setup stays its own.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint or None)))
    _providers[endpoint] = provider
    return provider.get_tracer("changegate")
