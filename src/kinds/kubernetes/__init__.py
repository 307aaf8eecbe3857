"""The `kubernetes` target kind: Deployments and StatefulSets as units (see `provider`)."""

from changegate.kinds.kubernetes.client import FIELD_MANAGER, Clusters
from changegate.kinds.kubernetes.errors import AccessDenied, RolloutFailed, WorkloadConflict
from changegate.kinds.kubernetes.kind import KIND, KubernetesKind, KubernetesSettings
from changegate.kinds.kubernetes.operations import (
    Scale,
    SetConfigKey,
    SetEnv,
    SetImage,
    SetResources,
)
from changegate.kinds.kubernetes.provider import KubernetesProvider
from changegate.kinds.kubernetes.selector import KubernetesSelector

__all__ = [
    "FIELD_MANAGER",
    "KIND",
    "AccessDenied",
    "Clusters",
    "KubernetesKind",
    "KubernetesProvider",
    "KubernetesSelector",
    "KubernetesSettings",
    "RolloutFailed",
    "Scale",
    "SetConfigKey",
    "SetEnv",
    "SetImage",
    "SetResources",
    "WorkloadConflict",
]
