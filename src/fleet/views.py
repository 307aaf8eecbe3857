"""JSON shapes of the fleet's HTTP API; other code depends on them, so change them on purpose."""

from __future__ import annotations

from typing import TypedDict


class ConfigView(TypedDict):
    """An instance's full config."""

    version: str
    pool_size: int
    timeout_ms: int
    log_level: str


class HealthView(TypedDict):
    """An instance's health over the last window."""

    status: str
    error_rate: float
    latency_p99_ms: float
    requests: int


class InstanceView(TypedDict):
    """One instance: identity, config, health and how many config writes it has taken."""

    service: str
    instance: str
    config: ConfigView
    health: HealthView
    writes: int


class WriteResponse(InstanceView):
    """The answer to an applied config write: the instance after the write, and the key used."""

    idempotency_key: str


class ServiceView(TypedDict):
    """One service and all its instances."""

    name: str
    demand: int
    instances: list[InstanceView]


class WriteRecordView(TypedDict):
    """One applied config write in the write log."""

    seq: int
    at: str
    service: str
    instance: str
    idempotency_key: str
    before: ConfigView
    after: ConfigView
