"""Verifying what the front door signed: admission tickets and controls."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.authority import Signer
from changegate.models import AuthorityVerdict, ControlCheck, TicketCheck


class AuthorityActivities:
    """Checks admission tickets with the signing key, which never enters history."""

    def __init__(self, *, signer: Signer, policy_digest: str) -> None:
        """Verify with `signer`, against the policy the worker holds."""
        self._signer = signer
        self._policy = policy_digest

    @activity.defn(name="verify_admission")
    @heartbeats
    async def verify_admission(self, data: TicketCheck) -> AuthorityVerdict:
        """Whether the workflow was started with a valid ticket for its own request."""
        return self._signer.check_ticket(data, policy=self._policy)

    @activity.defn(name="verify_control")
    @heartbeats
    async def verify_control(self, data: ControlCheck) -> AuthorityVerdict:
        """Whether a pause, resume or abort was sent by the principal its proof names."""
        return self._signer.check_control(data, now=datetime.now(UTC))
