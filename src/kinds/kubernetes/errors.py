"""What can go wrong changing a Kubernetes workload, beyond the shared provider errors.

    ProviderError                   (changegate.errors)
    ├── WorkloadConflict            409, or the object moved from the plan's `before` to
    │                               something else: someone else changed it; never overwritten
    ├── AccessDenied                401/403: the kubeconfig's identity may not read or write it
    └── RolloutFailed               the rollout did not complete: `ProgressDeadlineExceeded`,
                                    or changegate's own wait ran out (`reason` says which)

404 maps to `TargetNotFound`, 400/422 to `UnsupportedOperation`, 429, 5xx and transport
errors to `TargetUnavailable` (retried); all in `client.py`, the one boundary.
"""

from __future__ import annotations

from typing import Any, Literal

from changegate.errors import ProviderError

RolloutFailure = Literal["ProgressDeadlineExceeded", "Timeout"]


class WorkloadConflict(ProviderError):
    """Someone else changed the object (409 on a stale resourceVersion, or a three-way miss)."""


class AccessDenied(ProviderError):
    """The API server refused the kubeconfig's identity (401 or 403)."""


class RolloutFailed(ProviderError):
    """The workload's rollout did not complete; `reason` is the typed cause."""

    def __init__(self, message: str, *, reason: RolloutFailure) -> None:
        """Carry the message and the typed reason."""
        self.reason: RolloutFailure = reason
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        # The keyword-only `reason` defeats Exception's default pickling.
        return (_rollout_failed, (str(self), self.reason), {})


def _rollout_failed(message: str, reason: RolloutFailure) -> RolloutFailed:
    return RolloutFailed(message, reason=reason)
