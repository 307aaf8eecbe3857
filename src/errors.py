"""Errors changegate raises, in one tree.

    ChangegateError
    ├── ProviderError               a target could not be read or written
    │   ├── TargetNotFound          the selector names nothing the provider knows
    │   ├── UnsupportedOperation    the provider has no such operation, or bad parameters
    │   └── TargetUnavailable       the target did not answer (transient, retried)
    ├── InvalidTarget               unknown kind or selector key, or a value the kind's naming
    │                               rules refuse; raised before any rule sees the target
    ├── HealthSourceError           a health source could not be read (an analysis Error)
    ├── ConfigurationError          settings or registries name something that does not exist
    └── NoWorker                    no worker polls a running change's task queue, so nothing
                                    can answer for it (the API's 503 `worker.absent`)

Lower-level errors (httpx, subprocess) are mapped to these once, in the provider or source
that met them (`raise X from exc`). Activities turn permanent ones into non-retryable
`ApplicationError`s whose `type` is the class name, so the workflow can tell them apart.
"""

from __future__ import annotations

from functools import partial
from typing import Any


class ChangegateError(Exception):
    """Base of every error changegate raises on purpose."""


class ProviderError(ChangegateError):
    """A provider could not read or change its target."""

    retryable = False


class TargetNotFound(ProviderError):
    """The target selector names nothing the provider knows."""


class UnsupportedOperation(ProviderError):
    """The provider does not support the operation, or its parameters are invalid."""


class TargetUnavailable(ProviderError):
    """The target did not answer or answered with a server error; retrying may help."""

    retryable = True


class InvalidTarget(ChangegateError):
    """A target refused before any rule sees it: which rule, which field, why, what would pass."""

    def __init__(self, *, rule: str, field: str, reason: str, would_pass: str) -> None:
        """Carry the refusal; `reason` is written to be read on its own and names `field`."""
        self.rule = rule
        self.field = field
        self.reason = reason
        self.would_pass = would_pass
        super().__init__(f"refused by rule {rule}: {reason}; would pass: {would_pass}")

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # The keyword-only constructor defeats Exception's default pickling (and copy).
        rebuild = partial(
            InvalidTarget,
            rule=self.rule,
            field=self.field,
            reason=self.reason,
            would_pass=self.would_pass,
        )
        return rebuild, ()


class HealthSourceError(ChangegateError):
    """A health source could not be read."""


class ConfigurationError(ChangegateError):
    """Settings or a registry name something that does not exist."""


class NoWorker(ChangegateError):
    """No worker polls the task queue a running change needs to answer on."""

    def __init__(self, *, task_queue: str, namespace: str, change_id: str) -> None:
        """Name the task queue, its namespace and the change that cannot be read."""
        self.task_queue = task_queue
        self.namespace = namespace
        self.change_id = change_id
        self.reason = (
            f"no worker is polling task queue {task_queue!r} in namespace {namespace!r}, so "
            f"change {change_id} cannot answer while it runs"
        )
        self.would_pass = (
            "start a worker on that task queue with `changegate worker` (or everything with "
            "`changegate up`), then ask again"
        )
        super().__init__(f"{self.reason}; {self.would_pass}")

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # As for InvalidTarget: the keyword-only constructor defeats default pickling.
        rebuild = partial(
            NoWorker, task_queue=self.task_queue, namespace=self.namespace, change_id=self.change_id
        )
        return rebuild, ()


__all__ = [
    "ChangegateError",
    "ConfigurationError",
    "HealthSourceError",
    "InvalidTarget",
    "NoWorker",
    "ProviderError",
    "TargetNotFound",
    "TargetUnavailable",
    "UnsupportedOperation",
]
