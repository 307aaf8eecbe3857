"""The shape of the demo estate: which services exist, how many instances each, what they need."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

DEFAULT_DEMAND: Final = 16

# Names end up in URL paths and Prometheus labels, so keep them to a plain, unambiguous alphabet.
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: how many instances it runs and how many concurrent connections it needs."""

    instances: int
    demand: int = DEFAULT_DEMAND

    def __post_init__(self) -> None:
        if self.instances < 1:
            raise ValueError(f"a service needs at least 1 instance, got {self.instances}")
        if self.demand < 1:
            raise ValueError(f"demand must be at least 1 connection, got {self.demand}")


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The services of the fleet, in display order, keyed by service name."""

    services: Mapping[str, ServiceSpec] = field(
        default_factory=lambda: {
            "checkout": ServiceSpec(instances=4),
            "search": ServiceSpec(instances=3),
            "payments": ServiceSpec(instances=3),
        }
    )

    def __post_init__(self) -> None:
        if not self.services:
            raise ValueError("a fleet needs at least one service")
        for name in self.services:
            if not _NAME.match(name):
                raise ValueError(
                    f"service name {name!r} must be lowercase letters, digits and '-', "
                    "starting with a letter"
                )

    def instance_ids(self, service: str) -> list[str]:
        """Return the instance ids of `service`: `<service>-0` to `<service>-<n-1>`."""
        return [f"{service}-{index}" for index in range(self.services[service].instances)]

    def describe(self) -> str:
        """Return the spec in the `name=count,...` form that `parse_services` reads."""
        return ",".join(f"{name}={svc.instances}" for name, svc in self.services.items())
