"""The whole simulated estate: instances by service, ticks, idempotent config writes, write log."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime

from changegate.fleet.config import merge_config
from changegate.fleet.model import Instance
from changegate.fleet.spec import FleetSpec
from changegate.fleet.views import ServiceView, WriteResponse
from changegate.fleet.writes import (
    Receipt,
    WriteConflict,
    WriteRecord,
    WriteResult,
    config_patch,
    fingerprint,
)


class UnknownTarget(LookupError):
    """A service or instance that is not part of the fleet."""


class Fleet:
    """Every instance of the fleet plus the log of config writes applied to them."""

    def __init__(self, spec: FleetSpec, *, window_ticks: int = 20) -> None:
        if window_ticks < 1:
            raise ValueError(f"window_ticks must be at least 1, got {window_ticks}")
        self.spec = spec
        self.window_ticks = window_ticks
        self._instances: dict[str, dict[str, Instance]] = {
            service: {
                instance_id: Instance(
                    service=service,
                    instance_id=instance_id,
                    demand=service_spec.demand,
                    window_ticks=window_ticks,
                )
                for instance_id in spec.instance_ids(service)
            }
            for service, service_spec in spec.services.items()
        }
        self._log: list[WriteRecord] = []
        # Keys are scoped to the instance they were used on, as the HTTP contract says.
        self._receipts: dict[str, dict[str, Receipt]] = {}

    def instances(self) -> Iterator[Instance]:
        """Yield every instance, service by service, in spec order."""
        for by_id in self._instances.values():
            yield from by_id.values()

    def instance(self, service: str, instance_id: str) -> Instance:
        """Return one instance, or raise UnknownTarget naming what exists."""
        by_id = self._service(service)
        if instance_id not in by_id:
            raise UnknownTarget(
                f"service {service!r} has no instance {instance_id!r}; "
                f"instances are {', '.join(by_id)}"
            )
        return by_id[instance_id]

    def service_view(self, service: str) -> ServiceView:
        """Return one service as its JSON shape, or raise UnknownTarget."""
        by_id = self._service(service)
        return {
            "name": service,
            "demand": self.spec.services[service].demand,
            "instances": [instance.view() for instance in by_id.values()],
        }

    def service_views(self) -> list[ServiceView]:
        """Return every service as its JSON shape, in spec order."""
        return [self.service_view(service) for service in self._instances]

    def tick(self) -> None:
        """Advance every instance by one tick of traffic."""
        for instance in self.instances():
            instance.tick()

    def write(
        self,
        *,
        service: str,
        instance_id: str,
        idempotency_key: str,
        body: object,
        at: datetime,
    ) -> WriteResult:
        """Apply a `{"config": {...}}` write once per idempotency key on the instance.

        Raises UnknownTarget, WriteConflict (key reused with another body) or ConfigError.
        """
        instance = self.instance(service, instance_id)
        receipts = self._receipts.setdefault(instance.key, {})
        body_print = fingerprint(body)
        receipt = receipts.get(idempotency_key)
        if receipt is not None:
            if receipt.fingerprint != body_print:
                raise WriteConflict(
                    f"idempotency key {idempotency_key!r} was already used on {instance.key} "
                    "with a different body; reuse a key only to retry the identical request, "
                    "or use a new key for a new change"
                )
            return WriteResult(response=copy.deepcopy(receipt.response), replayed=True)

        before = instance.config
        instance.config = merge_config(before, config_patch(body))
        instance.writes += 1
        self._log.append(
            WriteRecord(
                seq=len(self._log) + 1,
                at=at,
                service=service,
                instance=instance_id,
                idempotency_key=idempotency_key,
                before=before,
                after=instance.config,
            )
        )
        response: WriteResponse = {**instance.view(), "idempotency_key": idempotency_key}
        receipts[idempotency_key] = Receipt(
            fingerprint=body_print, response=copy.deepcopy(response)
        )
        return WriteResult(response=response, replayed=False)

    @property
    def log(self) -> list[WriteRecord]:
        """Return the applied writes, oldest first."""
        return list(self._log)

    def write_counts(self) -> dict[str, int]:
        """Return the number of applied writes per `service/instance`, 0 for untouched ones."""
        return {instance.key: instance.writes for instance in self.instances()}

    def reset(self) -> None:
        """Restore every instance to defaults and forget all writes, keys and samples."""
        for instance in self.instances():
            instance.reset()
        self._log.clear()
        self._receipts.clear()

    def _service(self, service: str) -> dict[str, Instance]:
        if service not in self._instances:
            raise UnknownTarget(
                f"unknown service {service!r}; services are {', '.join(self._instances)}"
            )
        return self._instances[service]
