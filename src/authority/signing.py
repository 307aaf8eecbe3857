"""HMAC signatures over canonical JSON: tickets at admission, proofs on decisions.

A ticket binds the change id, the canonical request digest, the policy digest and an
expiry; a proof binds the change id, the authenticated principal, the verdict, the reason,
a nonce and an expiry. Verification names the rule that failed:

- `admission.unsigned` / `approval.unauthenticated`  no ticket or proof at all
- `admission.forged` / `approval.forged`              the signature does not match
- `admission.mismatch` / `approval.mismatch`          signed for another change or request
- `admission.expired` / `approval.expired_proof`      used after its expiry
- `admission.policy_changed`                          admitted under another policy
- `control.unauthenticated` / `control.forged` / `control.mismatch` / `control.expired`
                                                      the same, for pause, resume and abort
- `notice.unsigned` / `notice.forged` / `notice.mismatch`
                                                      a notice neither the front door signed
                                                      nor its own change sent
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from changegate.models import (
    AdmissionTicket,
    AuthorityVerdict,
    ChangeRequest,
    ControlAction,
    ControlCheck,
    ControlProof,
    DecisionProof,
    DecisionVerdict,
    Notice,
    NoticeCheck,
    TicketCheck,
)

DECISION_TTL = timedelta(minutes=5)
"""How long a signed decision may take to reach its workflow."""


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(model: BaseModel) -> str:
    return hashlib.sha256(_canonical(model.model_dump(mode="json"))).hexdigest()


def request_digest(request: ChangeRequest) -> str:
    """The digest of a request's canonical JSON."""
    return _digest(request)


def policy_digest(policy: BaseModel) -> str:
    """The digest of a policy as loaded (the API and the workers must hold the same)."""
    return _digest(policy)


def _refuse(rule: str, reason: str) -> AuthorityVerdict:
    return AuthorityVerdict(valid=False, rule=rule, reason=reason)


class Signer:
    """Signs and verifies with one key; the key never leaves this object."""

    def __init__(self, key: bytes) -> None:
        """Sign with `key`."""
        self._key = key

    def _mac(self, model: BaseModel) -> str:
        body = model.model_dump(mode="json", exclude={"signature"})
        return hmac.new(self._key, _canonical(body), hashlib.sha256).hexdigest()

    def _signed(self, model: BaseModel) -> bool:
        signature = getattr(model, "signature", "")
        return bool(signature) and hmac.compare_digest(signature, self._mac(model))

    # ---- admission tickets ---------------------------------------------------------------

    def ticket(
        self,
        *,
        change_id: str,
        request: ChangeRequest,
        policy: str,
        now: datetime,
        ttl: timedelta,
    ) -> AdmissionTicket:
        """A ticket admitting `request` as `change_id` under the policy with digest `policy`."""
        ticket = AdmissionTicket(
            change_id=change_id,
            request_digest=request_digest(request),
            policy_digest=policy,
            issued_at=now,
            expires_at=now + ttl,
        )
        return ticket.model_copy(update={"signature": self._mac(ticket)})

    def check_ticket(self, check: TicketCheck, *, policy: str) -> AuthorityVerdict:
        """Whether the workflow in `check` was admitted by the front door."""
        ticket = check.ticket
        if ticket is None:
            return _refuse(
                "admission.unsigned",
                "the change was not admitted: its workflow was started without an admission "
                "ticket (submit it through the changegate API, CLI, MCP server or client)",
            )
        if not self._signed(ticket):
            return _refuse(
                "admission.forged",
                "the admission ticket's signature is not valid: it was not signed by this "
                "changegate's key (the API and every worker must share CHANGEGATE_SIGNING_KEY "
                "or the same data directory's signing.key)",
            )
        if ticket.change_id != check.change_id:
            return _refuse(
                "admission.mismatch",
                f"the ticket admits {ticket.change_id}, not {check.change_id}",
            )
        if ticket.request_digest != request_digest(check.request):
            return _refuse(
                "admission.mismatch",
                "the request differs from the one admission judged",
            )
        if check.started_at > ticket.expires_at:
            return _refuse(
                "admission.expired",
                f"the ticket expired at {ticket.expires_at.isoformat()}, before the workflow "
                f"started at {check.started_at.isoformat()}; submit the change again",
            )
        if ticket.policy_digest != policy:
            return _refuse(
                "admission.policy_changed",
                "the change was admitted under a policy the worker no longer holds; "
                "submit it again so the current policy judges it",
            )
        return AuthorityVerdict(valid=True, reason="admitted by the front door")

    # ---- notices -------------------------------------------------------------------------

    def sign_notice(self, notice: Notice) -> Notice:
        """`notice` signed by the front door, for delivery without a change behind it."""
        return notice.model_copy(update={"signature": self._mac(notice)})

    def check_notice(self, check: NoticeCheck) -> AuthorityVerdict:
        """Whether a notice may be delivered: sent by its own change, or signed.

        A workflow started from a raw Temporal client or the UI has no parent and no valid
        signature, so it cannot make changegate's channels tell people anything.
        """
        notice = check.notice
        if check.parent_id is not None:
            if notice.change_id != check.parent_id:
                return _refuse(
                    "notice.mismatch",
                    f"{check.parent_id} sent a notice about {notice.change_id or 'no change'}; "
                    "a change tells people only of itself",
                )
            return AuthorityVerdict(valid=True, reason=f"sent by its change {check.parent_id}")
        if not notice.signature:
            return _refuse(
                "notice.unsigned",
                "the notice was started without the front door's signature (notices come "
                "from a change or from the changegate API, never from a raw workflow start)",
            )
        if not self._signed(notice):
            return _refuse(
                "notice.forged",
                "the notice's signature is not valid: it was not signed by this changegate's "
                "key, or it was altered after signing",
            )
        return AuthorityVerdict(valid=True, reason="signed by the front door")

    # ---- decision proofs -----------------------------------------------------------------

    def proof(
        self,
        *,
        change_id: str,
        principal: str,
        verdict: DecisionVerdict,
        reason: str,
        now: datetime,
        ttl: timedelta = DECISION_TTL,
    ) -> DecisionProof:
        """A proof that the authenticated `principal` made this decision on `change_id`."""
        proof = DecisionProof(
            change_id=change_id,
            principal=principal,
            verdict=verdict,
            reason=reason,
            issued_at=now,
            expires_at=now + ttl,
            nonce=secrets.token_hex(12),
        )
        return proof.model_copy(update={"signature": self._mac(proof)})

    def check_proof(
        self,
        proof: DecisionProof | None,
        *,
        change_id: str,
        verdict: DecisionVerdict,
        now: datetime,
    ) -> AuthorityVerdict:
        """Whether `proof` shows an authenticated principal made this decision just now."""
        if proof is None:
            return _refuse(
                "approval.unauthenticated",
                "the decision carries no signed proof of who made it; decide through "
                "`changegate approve`, the approval page or the HTTP API",
            )
        if not self._signed(proof):
            return _refuse("approval.forged", "the decision's proof has no valid signature")
        if proof.change_id != change_id or proof.verdict != verdict:
            return _refuse(
                "approval.mismatch",
                f"the proof is for {proof.verdict} on {proof.change_id}, "
                f"not {verdict} on {change_id}",
            )
        if now > proof.expires_at:
            return _refuse(
                "approval.expired_proof",
                f"the proof expired at {proof.expires_at.isoformat()}; decide again",
            )
        return AuthorityVerdict(valid=True, reason=f"signed for {proof.principal}")

    # ---- controls ------------------------------------------------------------------------

    def control_proof(
        self,
        *,
        change_id: str,
        principal: str,
        action: ControlAction,
        kill_switch: str | None,
        now: datetime,
        ttl: timedelta = DECISION_TTL,
    ) -> ControlProof:
        """A proof that the authenticated `principal` sent this pause, resume or abort."""
        proof = ControlProof(
            change_id=change_id,
            principal=principal,
            action=action,
            kill_switch=kill_switch,
            issued_at=now,
            expires_at=now + ttl,
            nonce=secrets.token_hex(12),
        )
        return proof.model_copy(update={"signature": self._mac(proof)})

    def check_control(self, check: ControlCheck, *, now: datetime) -> AuthorityVerdict:
        """Whether a control was sent through the front door by the principal it names."""
        proof = check.proof
        if proof is None:
            return _refuse(
                "control.unauthenticated",
                f"the {check.action} carries no signed proof of who sent it; send it through "
                f"`changegate {check.action}`, the approval page or the HTTP API",
            )
        if not self._signed(proof):
            return _refuse("control.forged", "the control's proof has no valid signature")
        if proof.change_id != check.change_id or proof.action != check.action:
            return _refuse(
                "control.mismatch",
                f"the proof is for {proof.action} on {proof.change_id}, "
                f"not {check.action} on {check.change_id}",
            )
        if now > proof.expires_at:
            return _refuse("control.expired", f"the proof expired at {proof.expires_at}")
        return AuthorityVerdict(valid=True, reason=f"signed for {proof.principal}")
