"""Instance configuration of the demo fleet and validation of partial writes.

Writes arrive as untrusted JSON, so validation is done by hand: every error message names the
key, says what is wrong with it and what value would pass, because the callers are agents that
are expected to correct themselves from the message alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from changegate.fleet.views import ConfigView

LOG_LEVELS: Final = ("debug", "info", "warn", "error")
CONFIG_KEYS: Final = ("version", "pool_size", "timeout_ms", "log_level")


class ConfigError(ValueError):
    """A config write that cannot be applied: unknown key, wrong type or out-of-range value."""


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    """The full configuration of one instance; every key is always present."""

    version: str = "1.4.2"
    pool_size: int = 20
    timeout_ms: int = 800
    log_level: str = "info"

    def view(self) -> ConfigView:
        """Return the config as its JSON shape, every key present."""
        return {
            "version": self.version,
            "pool_size": self.pool_size,
            "timeout_ms": self.timeout_ms,
            "log_level": self.log_level,
        }


def merge_config(current: InstanceConfig, patch: object) -> InstanceConfig:
    """Return `current` with the keys of partial config `patch` replaced; raise ConfigError."""
    if not isinstance(patch, Mapping):
        raise ConfigError(
            f"config must be a JSON object of keys to values, got {_json_type(patch)}; "
            'for example {"pool_size": 20}'
        )
    checked: dict[str, str | int] = {}
    for key, value in patch.items():
        if key not in CONFIG_KEYS:
            raise ConfigError(
                f"unknown config key {key!r}; allowed keys are {', '.join(CONFIG_KEYS)}"
            )
        checked[key] = _check_value(key, value)
    return InstanceConfig(
        version=str(checked.get("version", current.version)),
        pool_size=int(checked.get("pool_size", current.pool_size)),
        timeout_ms=int(checked.get("timeout_ms", current.timeout_ms)),
        log_level=str(checked.get("log_level", current.log_level)),
    )


_DEFAULTS: Final = InstanceConfig()


def _check_value(key: str, value: object) -> str | int:
    if key == "version":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"config key 'version' must be a non-empty string such as \"1.4.2\", "
                f"got {_describe(value)}"
            )
        return value
    if key == "log_level":
        if value not in LOG_LEVELS:
            raise ConfigError(
                f"config key 'log_level' must be one of {', '.join(LOG_LEVELS)}, "
                f"got {_describe(value)}"
            )
        return str(value)
    # pool_size and timeout_ms: positive integers; bool is an int subclass but never meant here.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"config key {key!r} must be an integer >= 1 such as {getattr(_DEFAULTS, key)}, "
            f"got {_describe(value)}"
        )
    return value


def _describe(value: object) -> str:
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return f"{_json_type(value)} {shown}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__
