"""Config writes: the request body, idempotency receipts and the write log record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from changegate.fleet.config import ConfigError, InstanceConfig
from changegate.fleet.views import WriteRecordView, WriteResponse

_BODY_HINT = 'the body is {"config": {...partial config...}}, e.g. {"config": {"pool_size": 20}}'


class WriteConflict(Exception):
    """An idempotency key reused on the same instance with a different body."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a config write: the response body and whether it was a replay."""

    response: WriteResponse
    replayed: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an instance remembers about a key it has applied, to replay or refuse its reuse."""

    fingerprint: str
    response: WriteResponse


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One applied config write, as kept in the fleet's write log."""

    seq: int
    at: datetime
    service: str
    instance: str
    idempotency_key: str
    before: InstanceConfig
    after: InstanceConfig

    def view(self) -> WriteRecordView:
        """Return the record as its JSON shape, with `at` as ISO-8601 UTC."""
        return {
            "seq": self.seq,
            "at": self.at.astimezone(UTC).isoformat(),
            "service": self.service,
            "instance": self.instance,
            "idempotency_key": self.idempotency_key,
            "before": self.before.view(),
            "after": self.after.view(),
        }


def fingerprint(body: object) -> str:
    """Return a canonical form of a request body, so equal JSON bodies compare equal."""
    # Key order is not meaningful in JSON; 8 and 8.0 are kept apart because only 8 is valid.
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=repr)


def config_patch(body: object) -> object:
    """Return the partial config inside a write body, or raise ConfigError if the body is bad."""
    if not isinstance(body, Mapping):
        raise ConfigError(f"request body must be a JSON object; {_BODY_HINT}")
    extra = sorted(str(key) for key in body if key != "config")
    if extra:
        raise ConfigError(f"unknown body key {extra[0]!r}; {_BODY_HINT}")
    if "config" not in body:
        raise ConfigError(f"request body is missing the key 'config'; {_BODY_HINT}")
    return body["config"]
