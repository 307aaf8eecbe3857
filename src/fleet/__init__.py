"""The demo fleet: a small HTTP service standing in for the production estate changegate changes."""

from changegate.fleet.app import create_app, fleet_of
from changegate.fleet.config import ConfigError, InstanceConfig, merge_config
from changegate.fleet.estate import Fleet, UnknownTarget
from changegate.fleet.metrics import render_metrics
from changegate.fleet.model import (
    REQUESTS_PER_TICK,
    Health,
    Instance,
    Sample,
    error_fraction,
    latency_p99_ms,
    sample_for,
    status_for,
)
from changegate.fleet.server import parse_services, serve
from changegate.fleet.spec import FleetSpec, ServiceSpec
from changegate.fleet.views import (
    ConfigView,
    HealthView,
    InstanceView,
    ServiceView,
    WriteRecordView,
    WriteResponse,
)
from changegate.fleet.writes import WriteConflict, WriteRecord, WriteResult

__all__ = [
    "REQUESTS_PER_TICK",
    "ConfigError",
    "ConfigView",
    "Fleet",
    "FleetSpec",
    "Health",
    "HealthView",
    "Instance",
    "InstanceConfig",
    "InstanceView",
    "Sample",
    "ServiceSpec",
    "ServiceView",
    "UnknownTarget",
    "WriteConflict",
    "WriteRecord",
    "WriteRecordView",
    "WriteResponse",
    "WriteResult",
    "create_app",
    "error_fraction",
    "fleet_of",
    "latency_p99_ms",
    "merge_config",
    "parse_services",
    "render_metrics",
    "sample_for",
    "serve",
    "status_for",
]
