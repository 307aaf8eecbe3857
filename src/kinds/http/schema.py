"""The `http` kind's schemas: its selector, `set_values` parameters, and endpoint settings.

Endpoints are configured by the operator (`CHANGEGATE_HTTP_ENDPOINTS`, a JSON object keyed by
endpoint name); a request names an endpoint and never carries a URL, so an agent cannot point
changegate anywhere the operator did not.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from changegate.kinds.base import Operation, Parameters
from changegate.kinds.http.pointer import PointerError, tokens

UNIT_PLACEHOLDER = "{unit}"
SET_VALUES = "set_values"


def _scalar(value: JsonValue) -> JsonValue:
    if isinstance(value, list | dict):
        shape = "a list" if isinstance(value, list) else "an object"
        raise ValueError(
            f"a value is a JSON scalar (string, number, true, false or null), not {shape}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number JSON can carry")
    return value


Scalar = Annotated[JsonValue, AfterValidator(_scalar)]
"""A JSON scalar: what `set_values` may set. NaN and infinity are not JSON and are refused."""

_VALUE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


class HttpSelector(BaseModel):
    """Which configured endpoint, and optionally which of its units (`a,b`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    endpoint: str = Field(description="The name of an endpoint in CHANGEGATE_HTTP_ENDPOINTS.")
    instances: str | None = Field(
        default=None, description="Comma-separated unit ids; all units when absent."
    )


class SetValues(Parameters):
    """`set_values`: top-level keys of each unit's config document and their new JSON scalars."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)
    __pydantic_extra__: dict[str, Scalar] = Field(init=False)

    @model_validator(mode="after")
    def _keys(self) -> SetValues:
        values = self.model_extra or {}
        if not values:
            raise ValueError("set_values needs at least one key to set, e.g. {'replicas': 3}")
        for key in values:
            if not _VALUE_KEY.fullmatch(key):
                raise ValueError(
                    f"key {key[:80]!a} is not a config key: 1-128 ASCII letters, digits, "
                    "'_', '.' or '-', starting with a letter or '_'"
                )
        return self

    def values(self) -> dict[str, JsonValue]:
        """The keys to set and their values."""
        return dict(self.model_extra or {})


class DeclaredValues(Parameters):
    """`set_values` over the keys the operator declared (`keys` in a target's settings).

    Each declared key is an optional JSON scalar; any other key is refused, naming it, before
    the workflow starts. Built per set of keys by `set_values_schema`.
    """

    @model_validator(mode="after")
    def _some(self) -> DeclaredValues:
        if not self.model_fields_set:
            keys = ", ".join(self.keys_by_field().values()) or "none"
            raise ValueError(f"set_values needs at least one key to set; the keys are: {keys}")
        return self

    @classmethod
    def keys_by_field(cls) -> dict[str, str]:
        """Each declared key by the name of its field."""
        return {name: field.alias or name for name, field in cls.model_fields.items()}

    def values(self) -> dict[str, JsonValue]:
        """The keys to set and their values."""
        keys = self.keys_by_field()
        return {keys[name]: getattr(self, name) for name in sorted(self.model_fields_set)}


def check_declared(keys: list[str] | None) -> list[str] | None:
    """`keys` if each is a config key `set_values` can set (a settings validator)."""
    for key in keys or []:
        if not _VALUE_KEY.fullmatch(key):
            raise ValueError(
                f"key {key[:80]!a} is not a config key: 1-128 ASCII letters, digits, '_', '.' "
                "or '-', starting with a letter or '_'"
            )
    return keys


def set_values_schema(declared: Iterable[list[str] | None]) -> type[Parameters]:
    """The `set_values` schema for targets declaring these keys (None: any key).

    The keys of every target when each declares its own, so a key no target has is refused
    by name before the workflow starts; `SetValues` (any key, checked when planning) when a
    target leaves its keys open or none is configured.
    """
    per_target = list(declared)
    if not per_target or any(keys is None for keys in per_target):
        return SetValues
    return _declared(tuple(sorted({key for keys in per_target for key in keys or []})))


class SetValuesOperations(Mapping[str, Operation]):
    """A kind's one operation, `set_values`, its schema from the targets configured now.

    The settings are read at each lookup, as the kind's provider reads them when it is built:
    `declared` gives each configured target's `keys` (see `set_values_schema`).
    """

    def __init__(
        self, description: str, declared: Callable[[], Iterable[list[str] | None]]
    ) -> None:
        """`set_values` described as `description`, its keys from `declared()`."""
        self._description = description
        self._declared = declared

    def __getitem__(self, name: str) -> Operation:
        if name != SET_VALUES:
            raise KeyError(name)
        return Operation(
            name=SET_VALUES,
            description=self._description,
            parameters=set_values_schema(self._declared()),
            operation_class="config",
        )

    def __iter__(self) -> Iterator[str]:
        return iter((SET_VALUES,))

    def __len__(self) -> int:
        return 1


@functools.cache
def _declared(keys: tuple[str, ...]) -> type[DeclaredValues]:
    # Fields are named by position, each key its alias: a key may be any config key (`a.b`,
    # `values`) without clashing with Python or pydantic names.
    fields: dict[str, Any] = {
        f"key_{index}": (Scalar, Field(default=None, alias=key)) for index, key in enumerate(keys)
    }
    return create_model("SetValues", __base__=DeclaredValues, **fields)


def _path(value: str, *, needs_unit: bool) -> str:
    if not value.startswith("/") or "?" in value or "#" in value or ".." in value:
        raise ValueError(f"path {value!r} must start with '/' and hold no '?', '#' or '..'")
    if needs_unit and value.count(UNIT_PLACEHOLDER) != 1:
        raise ValueError(f"path {value!r} must hold {UNIT_PLACEHOLDER} exactly once")
    return value


def _pointer(value: str) -> str:
    try:
        tokens(value)
    except PointerError as exc:
        raise ValueError(str(exc)) from None
    return value


class HttpEndpoint(BaseModel):
    """One JSON config API: where its units are, how to read and write one, and its health."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL, e.g. http://127.0.0.1:8710 (http or https).")
    item_path: str = Field(description="A unit's document, e.g. /flags/{unit}.")
    pointer: str = Field(default="", description="JSON pointer to the config object in it.")
    units: list[str] | None = Field(default=None, description="Fixed unit ids (no list call).")
    list_path: str | None = Field(default=None, description="GET this to list the units.")
    list_pointer: str = Field(default="", description="Pointer to the array of items.")
    id_pointer: str = Field(default="", description="Pointer to an item's id within it.")
    write_path: str | None = Field(default=None, description="Where writes go; item_path.")
    write_pointer: str = Field(default="", description="Where the values sit in the body.")
    method: Literal["PUT", "PATCH"] = "PUT"
    token_env: str | None = Field(default=None, description="Env var with a bearer token.")
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    healthy_pointer: str | None = Field(default=None, description="Pointer to a status.")
    healthy_value: JsonValue = "healthy"
    health_path: str | None = Field(default=None, description="A unit's health document.")
    health_pointers: dict[str, str] = Field(default_factory=dict)
    keys: list[str] | None = Field(
        default=None,
        description="The config keys set_values may set; any key (checked when planning) "
        "when absent.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/?#\s]+", value.rstrip("/")):
            raise ValueError(f"url {value!r} must be http(s)://host[:port] with no path")
        return value.rstrip("/")

    @field_validator("item_path", "write_path", "health_path")
    @classmethod
    def _unit_path(cls, value: str | None) -> str | None:
        return None if value is None else _path(value, needs_unit=True)

    @field_validator("list_path")
    @classmethod
    def _list_path(cls, value: str | None) -> str | None:
        return None if value is None else _path(value, needs_unit=False)

    @field_validator("pointer", "list_pointer", "id_pointer", "write_pointer", "healthy_pointer")
    @classmethod
    def _pointers(cls, value: str | None) -> str | None:
        return None if value is None else _pointer(value)

    @field_validator("health_pointers")
    @classmethod
    def _health_pointers(cls, value: dict[str, str]) -> dict[str, str]:
        for pointer in value.values():
            _pointer(pointer)
        return value

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str] | None) -> list[str] | None:
        return check_declared(value)

    @model_validator(mode="after")
    def _units_from_one_place(self) -> HttpEndpoint:
        if (self.units is None) == (self.list_path is None):
            raise ValueError("an endpoint needs exactly one of `units` and `list_path`")
        return self


class HttpKindSettings(BaseSettings):
    """The `http` kind's settings: `CHANGEGATE_HTTP_ENDPOINTS`, JSON `{name: endpoint}`."""

    model_config = SettingsConfigDict(env_prefix="CHANGEGATE_HTTP_", extra="ignore")

    endpoints: dict[str, HttpEndpoint] = Field(default_factory=dict)
