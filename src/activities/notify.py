"""Delivering notices: which channels take one, and posting it to a channel.

Both are idempotent: resolving only reads policy and the store, and a channel is posted to
with the notice's event id as `Idempotency-Key` (PagerDuty's `dedup_key`). A channel that
refuses the notice for good (a 4xx) fails at once; one that is down is retried by the
workflow's policy, for a few minutes at most.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from changegate.activities.heartbeat import heartbeats
from changegate.authority import Signer
from changegate.models import (
    Delivery,
    DeliveryReceipt,
    IncidentSeverity,
    Notice,
    NoticeCheck,
    NoticeKind,
    ResolvedNotice,
)
from changegate.notify import DeliveryFailed, Notifier
from changegate.policy import Policy, approvers_left
from changegate.store import Store, get_incident

_ASKS_APPROVAL = (NoticeKind.AWAITING_APPROVAL, NoticeKind.ESCALATION)


class NotifyActivities:
    """The worker's side of notices: its channels, policy and audit store."""

    def __init__(
        self, *, notifier: Notifier | None, policy: Policy, store: Store, signer: Signer
    ) -> None:
        """Deliver through `notifier` (None: no channels); name approvers from `policy` and
        severities from `store`; accept only notices `signer` vouches for."""
        self._notifier = notifier
        self._signer = signer
        self._policy = policy
        self._store = store

    @activity.defn(name="resolve_notice")
    @heartbeats
    async def resolve_notice(self, check: NoticeCheck) -> ResolvedNotice:
        """The notice with who can approve and its incident's severity, and its channels;
        `NoticeRefused` for one neither its change sent nor the front door signed."""
        verdict = self._signer.check_notice(check)
        if not verdict.valid:
            raise ApplicationError(
                f"{verdict.rule}: {verdict.reason}", type="NoticeRefused", non_retryable=True
            )
        notice = check.notice
        update: dict[str, object] = {}
        if notice.kind in _ASKS_APPROVAL and notice.risk is not None and not notice.approvers:
            update["approvers"] = self.who_can_approve(notice)
        if notice.incident_id and notice.severity is None:
            update["severity"] = await asyncio.to_thread(self._severity, notice.incident_id)
        resolved = notice.model_copy(update=update)
        channels = self._notifier.channels_for(resolved) if self._notifier else []
        return ResolvedNotice(notice=resolved, channels=channels)

    @activity.defn(name="deliver_notice")
    @heartbeats
    async def deliver_notice(self, data: Delivery) -> DeliveryReceipt:
        """Post the notice to one channel; `NotificationRejected` when it refuses for good."""
        try:
            if self._notifier is None:
                raise DeliveryFailed("this worker has no notify channels", permanent=True)
            status = await self._notifier.send(data.notice, data.channel)
        except DeliveryFailed as exc:
            raise ApplicationError(
                str(exc),
                type="NotificationRejected" if exc.permanent else "NotificationFailed",
                non_retryable=exc.permanent,
            ) from None
        return DeliveryReceipt(channel=data.channel, status_code=status)

    def who_can_approve(self, notice: Notice) -> list[str]:
        """Listed approvers of the notice's risk tier, never the agent or whom it acts for."""
        if notice.risk is None:
            return []
        tier = self._policy.risk_tiers.get(notice.risk.tier)
        eligible = self._policy.eligible_approvers(tier)
        return approvers_left(eligible, proposers=[notice.agent, notice.on_behalf_of])

    def _severity(self, incident_id: str) -> IncidentSeverity | None:
        with self._store.session() as session:
            incident = get_incident(session=session, incident_id=incident_id)
        return IncidentSeverity(incident.severity) if incident is not None else None
