"""Where provider and source errors become Temporal activity failures, once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from changegate.errors import ConfigurationError, InvalidTarget, ProviderError


@contextmanager
def as_activity_failure() -> Iterator[None]:
    """Map changegate errors to `ApplicationError`s typed by class, permanent unless retryable."""
    try:
        yield
    except ProviderError as exc:
        raise ApplicationError(
            str(exc), type=type(exc).__name__, non_retryable=not exc.retryable
        ) from exc
    except (ConfigurationError, InvalidTarget) as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
