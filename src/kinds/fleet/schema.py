"""The fleet kind's typed schemas: its selector and `set_config`'s parameters, with ranges.

The keys, types and values are the fleet's own (`changegate.fleet.config`): a value the
fleet would refuse at apply time is refused here, before anyone is asked to approve it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from changegate.kinds.base import Parameters

POOL_SIZE_MAX = 10_000
TIMEOUT_MS_MAX = 600_000


class FleetSelector(BaseModel):
    """Which instances of the demo fleet: a service, optionally narrowed to some instances."""

    model_config = ConfigDict(extra="forbid", strict=True)

    service: str = Field(description="The fleet service (a DNS label), e.g. 'checkout'.")
    instances: str | None = Field(
        default=None,
        description="Comma-separated instance ids to change, e.g. 'checkout-0,checkout-1'; "
        "omitted: every instance of the service.",
    )


class SetConfig(Parameters):
    """The config keys to set on each instance; at least one."""

    version: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=64, pattern=r"\S"),
        ]
        | None
    ) = Field(default=None, description="Build to run, e.g. '1.4.3'.")
    pool_size: Annotated[int, Field(ge=1, le=POOL_SIZE_MAX)] | None = Field(
        default=None, description=f"Connection pool size, 1-{POOL_SIZE_MAX}."
    )
    timeout_ms: Annotated[int, Field(ge=1, le=TIMEOUT_MS_MAX)] | None = Field(
        default=None, description=f"Request timeout in milliseconds, 1-{TIMEOUT_MS_MAX}."
    )
    log_level: Literal["debug", "info", "warn", "error"] | None = Field(
        default=None, description="Log verbosity; no effect on health."
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Optional only so that a key can be left out; a null would unset nothing.
        if value is None:
            raise ValueError("null is not a value; leave the key out to keep its current value")
        return value

    @model_validator(mode="after")
    def _sets_something(self) -> SetConfig:
        if not self.model_fields_set:
            raise ValueError("set_config needs at least one config key, e.g. {'pool_size': 24}")
        return self
