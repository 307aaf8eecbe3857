"""The operations of the `kubernetes` kind: typed parameters with ranges, and the state fields
each one sets.

A field is a dotted path into the unit's flattened state (see `state.py`): `replicas`,
`containers.<c>.image`, `containers.<c>.env.<NAME>`, `containers.<c>.resources.<requests|
limits>.<cpu|memory>`, `configmaps.<cm>.<key>` and `config_restart`. A plan's `before` and
`after` hold exactly these fields, and `read_unit` returns them, so the generic three-way
check compares like with like. `None` means absent (an env var or a limit that is not set).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Self

from pydantic import (
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from changegate.kinds.base import Operation, Parameters
from changegate.kinds.kubernetes import quantities

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# An image reference with a tag or a digest: an implicit `latest` is not a reviewable change.
_IMAGE = (
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$"
)
ContainerName = Annotated[str, Field(pattern=_DNS_LABEL, description="The container's name.")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")]
CONFIG_RESTART = "config_restart"
RESTART_ANNOTATION = "changegate.io/config-restart"


class OperationParameters(Parameters):
    """An operation's parameters: an unknown key is refused first, by name.

    Otherwise `{"replica": 5}` for `scale` would be refused as "replicas: missing", hiding
    the misspelt key the caller sent.
    """

    @model_validator(mode="wrap")
    @classmethod
    def _unknown_keys_first(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, dict):
            unknown: list[InitErrorDetails] = [
                {"type": "extra_forbidden", "loc": (key,), "input": value}
                for key, value in data.items()
                if key not in cls.model_fields
            ]
            if unknown:
                raise ValidationError.from_exception_data(cls.__name__, unknown)
        return handler(data)


class SetImage(OperationParameters):
    """Deploy a new image to one container."""

    container: ContainerName
    image: Annotated[str, Field(pattern=_IMAGE, max_length=512)]


class Scale(OperationParameters):
    """Set the workload's replica count."""

    replicas: Annotated[int, Field(ge=0, le=1000)]


class SetEnv(OperationParameters):
    """Set (a string) or remove (null) literal environment variables of one container."""

    container: ContainerName
    env: Annotated[
        dict[EnvName, Annotated[str, Field(max_length=32_768)] | None],
        Field(min_length=1, max_length=50),
    ]


class ResourceValues(Parameters):
    """CPU and memory as Kubernetes quantities in canonical form (`250m`, `512Mi`)."""

    cpu: str | None = None
    memory: str | None = None

    @field_validator("cpu", "memory")
    @classmethod
    def _canonical_quantity(cls, value: str | None) -> str | None:
        if value is None:
            return None
        canonical = quantities.canonical(value)
        if canonical is None:
            raise ValueError(f"{value!r} is not a Kubernetes quantity such as '250m' or '512Mi'")
        if canonical != value:
            raise ValueError(
                f"{value!r} is not in the form the API server stores; write {canonical!r}"
            )
        if quantities.value_of(value) <= 0:
            raise ValueError(f"{value!r} must be above zero")
        return value


class SetResources(OperationParameters):
    """Set one container's resource requests and limits."""

    container: ContainerName
    requests: ResourceValues | None = None
    limits: ResourceValues | None = None

    @model_validator(mode="after")
    def _requests_within_limits(self) -> SetResources:
        if self.requests is None and self.limits is None:
            raise ValueError("set_resources needs `requests`, `limits` or both")
        for name in ("cpu", "memory"):
            low = getattr(self.requests, name, None)
            high = getattr(self.limits, name, None)
            if low and high and quantities.value_of(low) > quantities.value_of(high):
                raise ValueError(f"requests.{name} {low} is above limits.{name} {high}")
        return self


class SetConfigKey(OperationParameters):
    """Set one key of a ConfigMap the workload uses, then restart the workload's pods."""

    configmap: Annotated[str, Field(pattern=_DNS_LABEL)]
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$")]
    value: Annotated[str, Field(max_length=262_144)]


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("set_image", "Deploy a new container image.", SetImage, "deploy"),
        Operation("scale", "Set the replica count.", Scale, "scale"),
        Operation("set_env", "Set or remove container environment variables.", SetEnv),
        Operation("set_resources", "Set container CPU/memory requests and limits.", SetResources),
        Operation(
            "set_config_key",
            "Set a ConfigMap key the workload uses, then restart it.",
            SetConfigKey,
        ),
    )
}


def fields(params: Parameters) -> dict[str, JsonValue]:
    """The state fields an operation's parameters set, and their new values."""
    if isinstance(params, SetImage):
        return {f"containers.{params.container}.image": params.image}
    if isinstance(params, Scale):
        return {"replicas": params.replicas}
    if isinstance(params, SetEnv):
        return {f"containers.{params.container}.env.{k}": v for k, v in params.env.items()}
    if isinstance(params, SetResources):
        out: dict[str, JsonValue] = {}
        for group in ("requests", "limits"):
            values = getattr(params, group)
            for name in ("cpu", "memory"):
                if values is not None and getattr(values, name) is not None:
                    out[f"containers.{params.container}.resources.{group}.{name}"] = getattr(
                        values, name
                    )
        return out
    if isinstance(params, SetConfigKey):
        return {
            f"configmaps.{params.configmap}.{params.key}": params.value,
            CONFIG_RESTART: config_digest(params.configmap, params.key, params.value),
        }
    raise TypeError(f"no fields for {type(params).__name__}")


def config_digest(configmap: str, key: str, value: str) -> str:
    """The pod-template annotation that restarts the pods for one ConfigMap value."""
    text = f"{configmap}\x00{key}\x00{value}".encode()
    return hashlib.sha256(text).hexdigest()[:16]
