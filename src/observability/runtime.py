"""The worker's Temporal runtime: it serves the SDK's metrics and the workflow's own.

A worker that sets `worker_metrics_address` connects with a runtime whose telemetry exports
Prometheus at `http://<address>/metrics`: Temporal's `temporal_*` series (task slots, poll
and schedule-to-start latencies, activity and workflow task failures) and changegate's
workflow metrics (`changegate.workflows.metrics`), counters with `_total`, durations in
seconds.
"""

from __future__ import annotations

from functools import cache

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from changegate.errors import ConfigurationError
from changegate.settings import Settings
from changegate.workflows.metrics import APPROVAL_WAIT, DURATION_BUCKETS, STAGE_DURATION

__all__ = ["worker_runtime"]


def worker_runtime(settings: Settings) -> Runtime | None:
    """The runtime serving metrics at `settings.worker_metrics_address`; None when unset
    (the SDK's default runtime, which exports nothing)."""
    address = settings.worker_metrics_address
    return _runtime(address) if address else None


@cache
def _runtime(address: str) -> Runtime:
    # One runtime per address and process: the port can be bound only once.
    config = PrometheusConfig(
        bind_address=address,
        counters_total_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides={
            name: list(DURATION_BUCKETS) for name in (STAGE_DURATION, APPROVAL_WAIT)
        },
    )
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=config))
    except Exception as exc:  # the SDK reports a bad or busy address as a plain error
        raise ConfigurationError(
            f"cannot serve worker metrics on {address} ({exc}); set "
            "CHANGEGATE_WORKER_METRICS_ADDRESS to a free host:port, or unset it"
        ) from exc
