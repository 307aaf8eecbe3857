"""The `kubernetes` kind: what it is called, what it accepts, what it measures, how it is built."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_settings import BaseSettings, SettingsConfigDict

from changegate.kinds.base import Metric, Operation
from changegate.kinds.kubernetes.client import Clusters
from changegate.kinds.kubernetes.operations import OPERATIONS
from changegate.kinds.kubernetes.provider import KubernetesProvider
from changegate.kinds.kubernetes.selector import KIND_NAME, KubernetesSelector

if TYPE_CHECKING:
    from changegate.health.sources import HealthSource
    from changegate.providers.base import Provider
    from changegate.settings import Settings

# Pods of a Deployment are `<name>-<template hash>-<suffix>`, of a StatefulSet `<name>-<ordinal>`;
# matching both exactly keeps `web` from also measuring the pods of `web-api`.
_PODS = 'namespace="{{selector.namespace}}", pod=~"{{unit}}-([a-z0-9]{1,10}-[a-z0-9]{5}|[0-9]+)"'

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "error_rate",
            "Share of HTTP requests answered 5xx (needs the app's http_requests_total).",
            f'sum(rate(http_requests_total{{{_PODS}, code=~"5.."}}[1m])) / '
            f"sum(rate(http_requests_total{{{_PODS}}}[1m]))",
        ),
        Metric(
            "container_restarts",
            "Container restarts in the last 5 minutes (kube-state-metrics).",
            f"sum(increase(kube_pod_container_status_restarts_total{{{_PODS}}}[5m]))",
        ),
        Metric(
            "unready_pods",
            "Pods not Ready (kube-state-metrics).",
            f'sum(kube_pod_status_ready{{{_PODS}, condition="false"}})',
        ),
    )
}


class KubernetesSettings(BaseSettings):
    """Where the kubeconfig is and how long to wait for rollouts (`CHANGEGATE_KUBERNETES_*`)."""

    model_config = SettingsConfigDict(env_prefix="CHANGEGATE_KUBERNETES_", extra="ignore")

    kubeconfig: Path | None = None
    """By default `$KUBECONFIG`, then `~/.kube/config` (or the in-cluster service account)."""
    rollout_timeout_seconds: float = 900.0
    poll_interval_seconds: float = 2.0
    request_timeout_seconds: float = 10.0


class KubernetesKind:
    """Deployments and StatefulSets across namespaces and kubeconfig contexts."""

    name = KIND_NAME
    description = "Kubernetes Deployments and StatefulSets, selected by name or labels."
    selector = KubernetesSelector
    operations: dict[str, Operation] = OPERATIONS
    metrics: dict[str, Metric] = METRICS

    def provider(self, settings: Settings) -> Provider:
        """A provider reading credentials from the kubeconfig, never from requests."""
        own = KubernetesSettings()
        return KubernetesProvider(
            Clusters(own.kubeconfig, timeout=own.request_timeout_seconds),
            rollout_timeout_seconds=own.rollout_timeout_seconds,
            poll_interval_seconds=own.poll_interval_seconds,
        )

    def health_source(self, settings: Settings) -> HealthSource | None:
        """None: health comes from Prometheus with the `metrics` queries."""
        return None


KIND = KubernetesKind()
