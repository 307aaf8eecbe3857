"""A workload object as flat state fields, the patches that set fields, and rollout progress.

Objects are the apps/v1 JSON the API server returns, as plain dicts: only the few fields
changegate reads or writes are touched, so an unknown field can never be dropped on a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from changegate.kinds.kubernetes.operations import CONFIG_RESTART, RESTART_ANNOTATION

Obj = dict[str, Any]


def flatten(workload: Obj, configmaps: Mapping[str, Obj | None]) -> dict[str, JsonValue]:
    """The workload's state fields; `configmaps` holds the ConfigMaps it references (or None)."""
    spec = workload.get("spec", {})
    template = spec.get("template", {})
    state: dict[str, JsonValue] = {"replicas": spec.get("replicas", 1)}
    for container in template.get("spec", {}).get("containers", []):
        prefix = f"containers.{container['name']}"
        state[f"{prefix}.image"] = container.get("image")
        for var in container.get("env", []):
            value = (
                var.get("value", "") if "valueFrom" not in var else {"valueFrom": var["valueFrom"]}
            )
            state[f"{prefix}.env.{var['name']}"] = value
        for group in ("requests", "limits"):
            for name, quantity in container.get("resources", {}).get(group, {}).items():
                state[f"{prefix}.resources.{group}.{name}"] = quantity
    annotations = template.get("metadata", {}).get("annotations", {})
    state[CONFIG_RESTART] = annotations.get(RESTART_ANNOTATION)
    for name, configmap in sorted(configmaps.items()):
        for key, value in (configmap or {}).get("data", {}).items():
            state[f"configmaps.{name}.{key}"] = value
    return state


def configmap_names(workload: Obj) -> list[str]:
    """Every ConfigMap the pod template references by name: volumes, envFrom and env."""
    pod = workload.get("spec", {}).get("template", {}).get("spec", {})
    names: set[str] = set()
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            names.add(volume["configMap"]["name"])
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                names.add(source["configMap"]["name"])
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                names.add(source["configMapRef"]["name"])
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                names.add(ref["name"])
    return sorted(names)


@dataclass
class Patches:
    """The strategic merge patches that bring an object's fields to new values."""

    workload: Obj
    configmaps: dict[str, Obj]


def patches(goal: Mapping[str, JsonValue], resource_version: str) -> Patches:
    """Patches setting every field of `goal`; `None` deletes (an env var, a quantity, a key)."""
    containers: dict[str, Obj] = {}
    spec: Obj = {}
    configmaps: dict[str, Obj] = {}
    for field, value in goal.items():
        head, _, rest = field.partition(".")
        if field == "replicas":
            spec["replicas"] = value
        elif field == CONFIG_RESTART:
            meta = spec.setdefault("template", {}).setdefault("metadata", {})
            meta.setdefault("annotations", {})[RESTART_ANNOTATION] = value
        elif head == "configmaps":
            name, _, key = rest.partition(".")
            configmaps.setdefault(name, {"data": {}})["data"][key] = value
        elif head == "containers":
            name, _, path = rest.partition(".")
            container = containers.setdefault(name, {"name": name})
            if path == "image":
                container["image"] = value
            elif path.startswith("env."):
                var = path.removeprefix("env.")
                entry = (
                    {"name": var, "value": value}
                    if value is not None
                    else {"name": var, "$patch": "delete"}
                )
                container.setdefault("env", []).append(entry)
            elif path.startswith("resources."):
                group, _, resource = path.removeprefix("resources.").partition(".")
                container.setdefault("resources", {}).setdefault(group, {})[resource] = value
            else:
                raise ValueError(f"no patch for field {field!r}")
        else:
            raise ValueError(f"no patch for field {field!r}")
    if containers:
        pod = spec.setdefault("template", {}).setdefault("spec", {})
        pod["containers"] = list(containers.values())
    # The resourceVersion makes the patch conditional: a stale one answers 409 Conflict.
    workload: Obj = (
        {"metadata": {"resourceVersion": resource_version}, "spec": spec} if spec else {}
    )
    return Patches(workload=workload, configmaps=configmaps)


@dataclass(frozen=True)
class Progress:
    """Where a workload's rollout stands."""

    done: bool
    failed: bool
    detail: str


def progress(workload: Obj) -> Progress:
    """Whether the rollout is complete, failed on its progress deadline, or still going."""
    meta, spec, status = workload["metadata"], workload.get("spec", {}), workload.get("status", {})
    want = spec.get("replicas", 1)
    counts = (
        f"generation {meta.get('generation')} observed {status.get('observedGeneration')}, "
        f"replicas {status.get('replicas', 0)}/{want}, updated {status.get('updatedReplicas', 0)}, "
        f"available {status.get('availableReplicas', 0)}"
    )
    for condition in status.get("conditions", []):
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return Progress(False, True, f"{condition.get('message', '')} ({counts})")
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return Progress(False, False, f"waiting for the controller to see the change ({counts})")
    if workload.get("kind") == "StatefulSet":
        return _statefulset(spec, status, want, counts)
    done = (
        status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )
    return Progress(done, False, counts)


def _statefulset(spec: Obj, status: Obj, want: int, counts: str) -> Progress:
    strategy = spec.get("updateStrategy", {})
    if strategy.get("type") == "OnDelete":
        # Pods change only when someone deletes them; there is no rollout to wait for.
        return Progress(True, False, f"OnDelete update strategy: nothing rolls out ({counts})")
    partition = strategy.get("rollingUpdate", {}).get("partition", 0)
    done = (
        status.get("updatedReplicas", 0) >= want - partition
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want
        and (partition > 0 or status.get("currentRevision") == status.get("updateRevision"))
    )
    return Progress(done, False, counts)
