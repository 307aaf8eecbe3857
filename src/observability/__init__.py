"""changegate's own telemetry: Prometheus metrics, the worker's Temporal runtime, tracing.

The front door's metrics (admission refusals, breaker trips, request latency) are served at
the API's `/metrics`; the workflow's (outcomes, stage durations, approval wait, analysis
verdicts) and the Temporal SDK's at the worker's metrics address; spans go to an OTLP
endpoint when one is set.
"""

from changegate.observability.metrics import (
    CONTENT_TYPE,
    admission_refused,
    breaker_tripped,
    exposition,
    request_served,
)
from changegate.observability.runtime import worker_runtime
from changegate.observability.tracing import flush_traces, traces_endpoint, tracing_interceptors

__all__ = [
    "CONTENT_TYPE",
    "admission_refused",
    "breaker_tripped",
    "exposition",
    "flush_traces",
    "request_served",
    "traces_endpoint",
    "tracing_interceptors",
    "worker_runtime",
]
