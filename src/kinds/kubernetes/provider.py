"""The `kubernetes` provider: Deployments and StatefulSets, one unit per workload.

Writes are strategic merge patches (field manager `changegate`) carrying the resourceVersion
just read, so a concurrent edit answers 409 and nothing is overwritten. Server-side apply was
the alternative; it was not chosen because it takes ownership of every field it sets: the
first apply conflicts with the fields `kubectl apply` or a GitOps controller own unless
forced, and forcing would silently take those fields from their owner. A patch changes the
few fields of the plan and nothing else, and its managedFields entry still names changegate.

A unit counts as applied when its rollout completes (see `state.progress`); a progress
deadline exceeded, or changegate's own wait running out, is a typed `RolloutFailed`.

Kubernetes has no idempotency keys, so the provider remembers the keys of the writes it made
(the last `KEYS_KEPT`, in this process): a repeated key writes nothing and only waits for the
rollout, even after the unit was moved since (an apply's key again after its revert). A key
this process has not seen (a restarted worker) is still safe from a blind rewrite: the write
is three-way and patches only fields that are at the step's start.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import UTC, datetime

from pydantic import JsonValue

from changegate.errors import InvalidChange, TargetNotFound, UnsupportedOperation
from changegate.kinds.checks import OPERATION_RULE, check_parameters
from changegate.kinds.kubernetes import selector as sel
from changegate.kinds.kubernetes.client import Clusters, Obj
from changegate.kinds.kubernetes.errors import RolloutFailed, WorkloadConflict
from changegate.kinds.kubernetes.operations import OPERATIONS, SetConfigKey, fields
from changegate.kinds.kubernetes.state import configmap_names, flatten, patches, progress
from changegate.models import (
    ChangePlan,
    ChangeRequest,
    Target,
    TargetObservation,
    UnitChange,
    UnitObservation,
)
from changegate.models.request import UNIT_FILTER
from changegate.providers.phasing import phase_name, split_phases

KEYS_KEPT = 10_000
"""How many idempotency keys of writes made a provider remembers (the oldest are forgotten)."""


class KubernetesProvider:
    """Reads and changes Deployments and StatefulSets through the Kubernetes API."""

    kind = sel.KIND_NAME

    def __init__(
        self,
        clusters: Clusters,
        *,
        rollout_timeout_seconds: float = 900.0,
        poll_interval_seconds: float = 2.0,
    ) -> None:
        """Use `clusters` for API calls; wait at most `rollout_timeout_seconds` per rollout."""
        self._clusters = clusters
        self._timeout = rollout_timeout_seconds
        self._interval = poll_interval_seconds
        self._written: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def resolve(self, target: Target) -> Target:
        """The canonical target, or `InvalidTarget` (see `selector.resolve`)."""
        return sel.resolve(target)

    async def aclose(self) -> None:
        """Close every cluster client."""
        await self._clusters.aclose()

    async def observe(self, target: Target) -> TargetObservation:
        """Every selected workload with its state fields and whether its rollout is complete."""
        target = self.resolve(target)
        units = []
        for workload in await self._workloads(target):
            state = await self._state(target, workload)
            units.append(
                UnitObservation(
                    unit_id=workload["metadata"]["name"],
                    state=state,
                    healthy=progress(workload).done,
                )
            )
        s = target.selector
        return TargetObservation(
            target_label=target.label(),
            observed_at=datetime.now(UTC),
            units=units,
            facts={"context": s[sel.CONTEXT], "namespace": s[sel.NAMESPACE]},
        )

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Per-workload before/after of the fields the operation sets, canary first."""
        label = self.resolve(request.target).label()
        if observation.target_label != label:
            raise UnsupportedOperation(
                f"the observation is of {observation.target_label}, not of {label}; "
                f"observe {label} and plan from that observation"
            )
        operation = OPERATIONS.get(request.change.operation)
        if operation is None:
            raise InvalidChange(
                rule=OPERATION_RULE,
                field="change.operation",
                reason=f"change.operation {request.change.operation!a} is not a kubernetes "
                f"operation; it offers: {', '.join(OPERATIONS)}",
                would_pass=f"change.operation one of: {', '.join(OPERATIONS)}",
            )
        check_parameters(operation, request.change.parameters)
        params = operation.parameters.model_validate(request.change.parameters)
        if not observation.units:
            raise TargetNotFound(f"{label} selects no workloads")
        after = fields(params)
        for unit in observation.units:
            _check_fields(unit, after, params)
        if isinstance(params, SetConfigKey) and len(observation.units) > 1:
            # One ConfigMap key is one value: the second workload would find it already
            # changed by the first, and its three-way check would call that a conflict.
            raise UnsupportedOperation(
                f"set_config_key changes ConfigMap {params.configmap!r} for every workload "
                f"that uses it; select one workload with `name` (found "
                f"{', '.join(u.unit_id for u in observation.units)})"
            )
        by_id = {u.unit_id: u for u in observation.units}
        phases = split_phases(list(by_id), request.rollout)
        return ChangePlan(
            phases=[
                [
                    UnitChange(
                        unit_id=unit_id,
                        phase=phase_name(index),
                        before={k: by_id[unit_id].state.get(k) for k in after},
                        after=dict(after),
                    )
                    for unit_id in unit_ids
                ]
                for index, unit_ids in enumerate(phases)
            ],
            reversible=operation.reversible,
        )

    async def read_unit(self, target: Target, unit_id: str) -> dict[str, JsonValue]:
        """The workload's state fields, as `observe` reports them."""
        target = self.resolve(target)
        return await self._state(target, await self._workload(target, unit_id))

    async def apply(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Patch the workload to `unit.after` and wait until its rollout completes."""
        await self._write(
            target, unit.unit_id, start=unit.before, goal=unit.after, key=idempotency_key
        )

    async def revert(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Patch the workload back to `unit.before` and wait until its rollout completes."""
        await self._write(
            target, unit.unit_id, start=unit.after, goal=unit.before, key=idempotency_key
        )

    async def _write(
        self,
        target: Target,
        unit_id: str,
        *,
        start: dict[str, JsonValue],
        goal: dict[str, JsonValue],
        key: str,
    ) -> None:
        target = self.resolve(target)
        s = target.selector
        context, namespace, kind = s[sel.CONTEXT], s[sel.NAMESPACE], s[sel.WORKLOAD]
        done = (context, namespace, kind, unit_id, key)
        if done in self._written:
            # This key's write was made: answer again, change nothing.
            await self._wait_for_rollout(target, unit_id)
            return
        workload = await self._workload(target, unit_id)
        state = await self._state(target, workload)
        todo = {k: v for k, v in goal.items() if state.get(k) != v}
        moved = {k: state.get(k) for k in todo if state.get(k) != start.get(k)}
        if moved:
            raise WorkloadConflict(
                f"{kind} {namespace}/{unit_id} in {context} has {moved}, neither the step's "
                f"start nor its goal: someone else changed it, so nothing was written"
            )
        # A unit already at the goal (a step retried after it landed) only waits.
        if todo:
            planned = patches(todo, workload["metadata"]["resourceVersion"])
            for name, body in planned.configmaps.items():
                configmap = await self._clusters.get(
                    context, "configmap", name, namespace=namespace
                )
                body["metadata"] = {"resourceVersion": configmap["metadata"]["resourceVersion"]}
                await self._clusters.patch(context, "configmap", name, body, namespace=namespace)
            if planned.workload:
                await self._clusters.patch(
                    context, kind, unit_id, planned.workload, namespace=namespace
                )
        self._written[done] = None
        while len(self._written) > KEYS_KEPT:
            self._written.popitem(last=False)
        await self._wait_for_rollout(target, unit_id)

    async def _wait_for_rollout(self, target: Target, unit_id: str) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            workload = await self._workload(target, unit_id)
            state = progress(workload)
            if state.done:
                return
            where = f"{target.selector[sel.WORKLOAD]} {target.selector[sel.NAMESPACE]}/{unit_id}"
            if state.failed:
                raise RolloutFailed(
                    f"the rollout of {where} exceeded its progress deadline: {state.detail}; "
                    "its pods are not becoming available",
                    reason="ProgressDeadlineExceeded",
                )
            if time.monotonic() >= deadline:
                raise RolloutFailed(
                    f"the rollout of {where} did not complete within {self._timeout:g} s: "
                    f"{state.detail}",
                    reason="Timeout",
                )
            await asyncio.sleep(self._interval)

    async def _workloads(self, target: Target) -> list[Obj]:
        s = target.selector
        context, namespace, kind = s[sel.CONTEXT], s[sel.NAMESPACE], s[sel.WORKLOAD]
        if sel.NAME in s:
            return [await self._clusters.get(context, kind, s[sel.NAME], namespace=namespace)]
        found = await self._clusters.list(context, kind, namespace=namespace, labels=s[sel.LABELS])
        if UNIT_FILTER not in s:
            return found
        wanted = set(s[UNIT_FILTER].split(","))
        chosen = [w for w in found if w["metadata"]["name"] in wanted]
        missing = sorted(wanted - {w["metadata"]["name"] for w in chosen})
        if missing:
            raise TargetNotFound(
                f"{target.label()} selects no {kind} named {', '.join(missing)}; observe the "
                "target without `instances` to list them"
            )
        return chosen

    async def _workload(self, target: Target, unit_id: str) -> Obj:
        s = target.selector
        allowed = {s[sel.NAME]} if sel.NAME in s else set(s.get(UNIT_FILTER, unit_id).split(","))
        name = sel.object_name(unit_id, field="target.unit", noun="workload name")
        if name not in allowed:
            raise TargetNotFound(f"{name!r} is not a unit of {target.label()}")
        workload = await self._clusters.get(
            s[sel.CONTEXT], s[sel.WORKLOAD], name, namespace=s[sel.NAMESPACE]
        )
        if sel.LABELS in s and not _matches_labels(workload, s[sel.LABELS]):
            raise TargetNotFound(f"{name!r} no longer matches {target.label()}")
        return workload

    async def _state(self, target: Target, workload: Obj) -> dict[str, JsonValue]:
        s = target.selector
        configmaps = {
            name: await self._clusters.get_optional(
                s[sel.CONTEXT], "configmap", name, namespace=s[sel.NAMESPACE]
            )
            for name in configmap_names(workload)
        }
        return flatten(workload, configmaps)


def _check_fields(unit: UnitObservation, after: dict[str, JsonValue], params: object) -> None:
    containers = {k.split(".")[1] for k in unit.state if k.startswith("containers.")}
    for field in after:
        if field.startswith("containers."):
            name = field.split(".")[1]
            if name not in containers:
                raise UnsupportedOperation(
                    f"workload {unit.unit_id!r} has no container {name!r}; its containers are "
                    f"{', '.join(sorted(containers))}"
                )
            if isinstance(unit.state.get(field), dict):
                raise UnsupportedOperation(
                    f"{field} of {unit.unit_id!r} comes from valueFrom; changegate sets only "
                    "literal values"
                )
    if isinstance(params, SetConfigKey):
        prefix = f"configmaps.{params.configmap}."
        used = any(k.startswith(prefix) for k in unit.state)
        if not used:
            raise UnsupportedOperation(
                f"workload {unit.unit_id!r} does not use ConfigMap {params.configmap!r} (or it "
                "does not exist); set_config_key changes only ConfigMaps the workload references"
            )


def _matches_labels(workload: Obj, selector: str) -> bool:
    labels = workload["metadata"].get("labels", {})
    for req in sel.parse_labels(selector, field="labels"):
        has = req.key in labels
        value = labels.get(req.key)
        ok = {
            "=": has and value == req.values[0],
            "!=": not has or value != req.values[0],
            "in": has and value in req.values,
            "notin": not has or value not in req.values,
            "exists": has,
            "!": not has,
        }[req.op]
        if not ok:
            return False
    return True
