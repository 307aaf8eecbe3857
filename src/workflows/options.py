"""Timeouts, retries and search attributes the change workflow uses."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy, SearchAttributeKey

# Permanent failures: retrying cannot help, the workflow decides what happens next.
PERMANENT = [
    "TargetNotFound",
    "UnsupportedOperation",
    "ConfigurationError",
    "NotApproved",
    "InvalidTarget",
]

READ_TIMEOUT = timedelta(seconds=20)
WRITE_TIMEOUT = timedelta(seconds=20)
# Every activity heartbeats each second while it runs: a dead worker's step is retried
# after this, not after its whole timeout.
HEARTBEAT = timedelta(seconds=5)

READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT,
)
WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT,
)
# Where waiting is safe (reads, verification, revert, audit) a step waits out an outage:
# no attempt limit, backoff capped at 30 s. Only a permanent error ends it.
WAIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=PERMANENT,
)
REVERT_RETRY = WAIT_RETRY

CHANGE_AGENT = SearchAttributeKey.for_keyword("ChangeAgent")
CHANGE_TARGET = SearchAttributeKey.for_keyword("ChangeTarget")
CHANGE_STAGE = SearchAttributeKey.for_keyword("ChangeStage")
CHANGE_OUTCOME = SearchAttributeKey.for_keyword("ChangeOutcome")
CHANGE_RISK = SearchAttributeKey.for_keyword("ChangeRisk")

SEARCH_ATTRIBUTES = (CHANGE_AGENT, CHANGE_TARGET, CHANGE_STAGE, CHANGE_OUTCOME, CHANGE_RISK)
