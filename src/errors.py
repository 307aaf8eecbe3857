"""Errors changegate raises, in one tree, and the one table of what each one means.

    ChangegateError
    ├── ProviderError               a target could not be read or written
    │   ├── TargetNotFound          the selector names nothing the provider knows
    │   ├── UnsupportedOperation    the provider has no such operation, or bad parameters
    │   └── TargetUnavailable       the target did not answer (transient, retried)
    │   └── TargetTimeout           the target did not answer in time (transient, retried)
    ├── InvalidTarget               unknown kind or selector key, or a value the kind's naming
    │                               rules refuse; raised before any rule sees the target
    ├── InvalidChange               an operation the kind does not offer, parameters its schema
    │                               refuses (type, range, unknown key, NaN, Infinity), or a
    │                               health metric the kind does not measure
    ├── HealthSourceError           a health source could not be read (an analysis Error)
    ├── ConfigurationError          settings or registries name something that does not exist
    ├── NoWorker                    no worker polls a running change's task queue, so nothing
    │                               can answer for it (the API's 503 `worker.absent`)
    ├── ChangeNotFound              no change with that id (also a LookupError)
    ├── TemporalUnreachable         Temporal did not answer (also a ConnectionError)
    ├── InvalidToken                the MCP server's stdio token is unusable (also a ValueError)
    ├── ApiError                    an error answer of the HTTP API: the API raises it to answer,
    │   │                           the client raises it for the answer it got
    │   ├── Unauthenticated         401: no token, or an unknown or revoked one
    │   ├── Refused                 403, 409, 429: a rule said no (`retry_after` on 429)
    │   ├── NotFound                404: no such change or incident
    │   ├── InvalidInput            422: the body or a parameter is not valid
    │   └── Unavailable             503, or the API did not answer at all
    │   defined beside the code that raises them:
    ├── AdmissionRefused            changegate.admission: a submission a rule refused
    ├── PolicyError                 changegate.policy: the policy file is not a valid policy
    └── ContextSourceError          changegate.context: a context source could not be read

Lower-level errors (httpx, subprocess) are mapped to these once, in the provider or source
that met them (`raise X from exc`). Activities turn permanent ones into non-retryable
`ApplicationError`s whose `type` is the class name, so the workflow can tell them apart.

`ERROR_TABLE` gives every class its CLI exit code and HTTP status; the CLI's `run` wrapper
and the API's error handlers both read it, so the two never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
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


class TargetTimeout(TargetUnavailable):
    """The target did not answer in time (connect or read timeout, refused connection).

    Its own class so that incident classification can tell a timeout from an apply the
    target refused by the error's type, never by its wording.
    """


class _Refusal(Exception):
    """The shape of a refusal before any rule runs: which rule, which field, why, what passes.

    A mixin rather than a base in the tree, so each refusal keeps its own row in the table.
    """

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
            type(self),
            rule=self.rule,
            field=self.field,
            reason=self.reason,
            would_pass=self.would_pass,
        )
        return rebuild, ()


class InvalidTarget(_Refusal, ChangegateError):
    """A target refused before any rule sees it: which rule, which field, why, what would pass."""


class InvalidChange(_Refusal, ChangegateError):
    """A change its kind refuses: no such operation, parameters outside the operation's schema,
    or a health metric the kind does not offer (rules `change.operation`, `change.parameters`,
    `change.health_checks`)."""


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


class ChangeNotFound(ChangegateError, LookupError):
    """No change with that id exists in the namespace."""


class TemporalUnreachable(ChangegateError, ConnectionError):
    """The Temporal server could not be reached at the configured address."""


class InvalidToken(ChangegateError, ValueError):
    """The stdio token is unknown, revoked, or not allowed to act for an agent."""


class ApiError(ChangegateError):
    """An error answer of the changegate API: its status, rule, why, and what would pass."""

    def __init__(
        self,
        status: int | None = None,
        *,
        rule: str,
        reason: str,
        would_pass: str = "",
        retry_after: float | None = None,
    ) -> None:
        """Carry the answer; `status` defaults to the class's status in `ERROR_TABLE`."""
        self.status = status if status is not None else kind_of(self).http_status
        self.rule = rule
        self.reason = reason
        self.would_pass = would_pass
        self.retry_after = retry_after
        text = f"{rule}: {reason}" + (f"; would pass: {would_pass}" if would_pass else "")
        super().__init__(text)


class Unauthenticated(ApiError):
    """The API does not know the caller: log in (`changegate login`) or set CHANGEGATE_TOKEN."""


class Refused(ApiError):
    """A rule refused the call."""


class NotFound(ApiError):
    """The change or incident does not exist."""


class InvalidInput(ApiError):
    """The request was not valid."""


class Unavailable(ApiError):
    """The API, or Temporal or the audit store behind it, is unreachable right now."""


class ExitCode(IntEnum):
    """How a CLI command ends."""

    OK = 0
    OUTCOME = 1
    """The change ended other than DONE, or an error the table does not classify further."""
    INVALID = 2
    NOT_FOUND = 3
    UNREACHABLE = 4
    """The API, Temporal, a worker or a target did not answer."""
    REFUSED = 5


def admission_status(rule: str) -> int:
    """The HTTP status of an admission refusal by its rule name."""
    if rule.startswith("scope.") or rule == "blast_radius":
        return 403
    if rule.startswith("rate."):
        return 429
    if rule.startswith(("secrets.", "target.", "change.")):
        return 422
    return 409


@dataclass(frozen=True)
class ErrorKind:
    """What one class of error means to a CLI user and to an HTTP caller."""

    exit_code: ExitCode
    http_status: int
    also: tuple[int, ...] = ()
    """Other statuses an answer of this class may carry (a refusal is 403, 409 or 429)."""
    by_rule: Callable[[str], int] | None = None
    """The status from the error's `rule`, for refusals whose status depends on the rule."""

    @property
    def statuses(self) -> tuple[int, ...]:
        """Every HTTP status this class may answer with, its own first."""
        return (self.http_status, *self.also)


# Keyed by class name, as activities name errors to the workflow: the three classes defined
# above this module (admission, policy, context) cannot be imported here without a cycle.
# A class with no row takes its nearest ancestor's; tests/test_concepts.py checks that every
# class in the tree has its own.
ERROR_TABLE: dict[str, ErrorKind] = {
    "ChangegateError": ErrorKind(ExitCode.OUTCOME, 500),
    "ProviderError": ErrorKind(ExitCode.UNREACHABLE, 502),
    "TargetNotFound": ErrorKind(ExitCode.NOT_FOUND, 404),
    "UnsupportedOperation": ErrorKind(ExitCode.INVALID, 422),
    "TargetUnavailable": ErrorKind(ExitCode.UNREACHABLE, 503),
    "TargetTimeout": ErrorKind(ExitCode.UNREACHABLE, 503),
    # The kubernetes kind's own provider errors (changegate.kinds.kubernetes.errors).
    "WorkloadConflict": ErrorKind(ExitCode.REFUSED, 409),
    "AccessDenied": ErrorKind(ExitCode.REFUSED, 403),
    "RolloutFailed": ErrorKind(ExitCode.OUTCOME, 502),
    "InvalidTarget": ErrorKind(ExitCode.INVALID, 422),
    "InvalidChange": ErrorKind(ExitCode.INVALID, 422),
    "HealthSourceError": ErrorKind(ExitCode.UNREACHABLE, 502),
    "ConfigurationError": ErrorKind(ExitCode.INVALID, 500),
    "NoWorker": ErrorKind(ExitCode.UNREACHABLE, 503),
    "ChangeNotFound": ErrorKind(ExitCode.NOT_FOUND, 404),
    "TemporalUnreachable": ErrorKind(ExitCode.UNREACHABLE, 503),
    "InvalidToken": ErrorKind(ExitCode.INVALID, 401),
    "ApiError": ErrorKind(ExitCode.UNREACHABLE, 500),
    "Unauthenticated": ErrorKind(ExitCode.REFUSED, 401),
    "Refused": ErrorKind(ExitCode.REFUSED, 403, also=(409, 429)),
    "NotFound": ErrorKind(ExitCode.NOT_FOUND, 404),
    "InvalidInput": ErrorKind(ExitCode.INVALID, 422),
    "Unavailable": ErrorKind(ExitCode.UNREACHABLE, 503),
    "AdmissionRefused": ErrorKind(
        ExitCode.REFUSED, 409, also=(403, 422, 429), by_rule=admission_status
    ),
    "PolicyError": ErrorKind(ExitCode.INVALID, 500),
    "ContextSourceError": ErrorKind(ExitCode.UNREACHABLE, 502),
}
"""Every changegate error class by name: its CLI exit code and HTTP status."""


def rule_of(exc: ChangegateError) -> str:
    """The error's own rule, else its class's name: `TargetUnavailable` -> `target_unavailable`.

    The API and the CLI both name a rule-less error this way, so scripts read one vocabulary.
    """
    rule = getattr(exc, "rule", None)
    if isinstance(rule, str):
        return rule
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def kind_of(error: ChangegateError | type[ChangegateError]) -> ErrorKind:
    """The table's row for an error (or class): its own, else its nearest listed ancestor's."""
    cls = error if isinstance(error, type) else type(error)
    for ancestor in cls.__mro__:
        if issubclass(ancestor, ChangegateError) and ancestor.__name__ in ERROR_TABLE:
            return ERROR_TABLE[ancestor.__name__]
    raise AssertionError("ChangegateError has a row")


def http_status(error: ChangegateError) -> int:
    """The HTTP status that answers `error`: an answer's own, by rule, or the class's."""
    if isinstance(error, ApiError):
        return error.status
    kind = kind_of(error)
    rule = getattr(error, "rule", None)
    if kind.by_rule is not None and isinstance(rule, str):
        return kind.by_rule(rule)
    return kind.http_status


def answer_class(status: int) -> type[ApiError]:
    """The `ApiError` class of an API answer with `status`."""
    for cls in (Unauthenticated, Refused, NotFound, InvalidInput, Unavailable):
        if status in kind_of(cls).statuses:
            return cls
    return ApiError


__all__ = [
    "ERROR_TABLE",
    "ApiError",
    "ChangeNotFound",
    "ChangegateError",
    "ConfigurationError",
    "ErrorKind",
    "ExitCode",
    "HealthSourceError",
    "InvalidChange",
    "InvalidInput",
    "InvalidTarget",
    "InvalidToken",
    "NoWorker",
    "NotFound",
    "ProviderError",
    "Refused",
    "TargetNotFound",
    "TargetTimeout",
    "TargetUnavailable",
    "TemporalUnreachable",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedOperation",
    "admission_status",
    "answer_class",
    "http_status",
    "kind_of",
]
