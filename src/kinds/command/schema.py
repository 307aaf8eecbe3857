"""The `command` kind's schemas: selector, `set_values` parameters, settings, and the contract.

The contract's messages are pydantic models, so an executable's answer is checked as strictly
as a request: an answer that does not fit is an error naming the executable, never guessed at.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from changegate.kinds.http.schema import check_declared

CONTRACT = "changegate.command/v1"
"""The `contract` field of every request; an executable may refuse versions it does not know."""

Call = Literal["observe", "plan", "read", "apply", "revert", "health"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CommandSelector(BaseModel):
    """Which configured command target, and optionally which of its units (`a,b`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    command: str = Field(description="The name of a target in CHANGEGATE_COMMAND_TARGETS.")
    instances: str | None = Field(
        default=None, description="Comma-separated unit ids; all units when absent."
    )


class CommandTarget(BaseModel):
    """One configured executable: its argv, its time limit and the environment it may see."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(min_length=1, description="argv[0] is an absolute path.")
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    env_allowlist: list[str] = Field(
        default_factory=list, description="Worker environment variables passed through."
    )
    cwd: str | None = Field(default=None, description="Working directory (absolute).")
    keys: list[str] | None = Field(
        default=None,
        description="The keys set_values may set; any key (the executable's plan decides) "
        "when absent.",
    )

    @field_validator("argv")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        if not os.path.isabs(value[0]):
            raise ValueError(
                f"argv[0] {value[0]!r} must be an absolute path, so PATH cannot change which "
                "program runs"
            )
        return value

    @field_validator("env_allowlist")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"env_allowlist entry {name!r} is not a variable name")
        return value

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str] | None) -> list[str] | None:
        return check_declared(value)

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError(f"cwd {value!r} must be an absolute path")
        return value


class CommandKindSettings(BaseSettings):
    """The `command` kind's settings: `CHANGEGATE_COMMAND_TARGETS`, JSON `{name: target}`."""

    model_config = SettingsConfigDict(env_prefix="CHANGEGATE_COMMAND_", extra="ignore")

    targets: dict[str, CommandTarget] = Field(default_factory=dict)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObservedUnit(_Answer):
    """One unit in an `observe` answer."""

    id: str
    state: dict[str, JsonValue]
    healthy: bool | None = None


class ObserveAnswer(_Answer):
    """The answer to `observe`: the units (all, or those asked for) and optional facts."""

    units: list[ObservedUnit]
    facts: dict[str, JsonValue] = Field(default_factory=dict)


class PlannedUnit(_Answer):
    """One unit in a `plan` answer: the keys it changes, before and after."""

    id: str
    before: dict[str, JsonValue]
    after: dict[str, JsonValue]


class PlanAnswer(_Answer):
    """The answer to `plan`: per-unit steps in rollout order, and whether they can be undone."""

    units: list[PlannedUnit]
    reversible: bool = True


class ReadAnswer(_Answer):
    """The answer to `read`: the unit's current state."""

    state: dict[str, JsonValue]


class WriteAnswer(_Answer):
    """The answer to `apply` and `revert`: optionally the state the unit reached."""

    state: dict[str, JsonValue] | None = None


class HealthValue(_Answer):
    """One measurement in a `health` answer; `value` null when there is no data."""

    unit: str
    metric: str
    value: float | None


class HealthAnswer(_Answer):
    """The answer to `health`."""

    values: list[HealthValue]


class ErrorAnswer(BaseModel):
    """What an executable may print on stdout when it exits non-zero."""

    error: str
