"""What the front door signs: the admission ticket a workflow starts with, and the proof a
decision carries. The signatures are HMACs: visible in history, useless without the key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from changegate.models.request import ChangeRequest, Contract
from changegate.models.verdicts import DecisionVerdict


class AdmissionTicket(Contract):
    """Admission's signed word that this request, under this policy, may run as `change_id`."""

    change_id: str
    request_digest: str
    policy_digest: str
    issued_at: datetime
    expires_at: datetime
    signature: str = ""


class DecisionProof(Contract):
    """The front door's signed word that an authenticated principal made this decision."""

    change_id: str
    principal: str = Field(min_length=1, max_length=200)
    verdict: DecisionVerdict
    reason: str = Field(default="", max_length=2000)
    issued_at: datetime
    expires_at: datetime
    nonce: str = Field(min_length=8, max_length=64)
    signature: str = ""


ControlAction = Literal["pause", "resume", "abort"]


class ControlProof(Contract):
    """The front door's signed word that an authenticated principal sent this control."""

    change_id: str
    principal: str = Field(min_length=1, max_length=200)
    action: ControlAction
    kill_switch: str | None = None
    issued_at: datetime
    expires_at: datetime
    nonce: str = Field(min_length=8, max_length=64)
    signature: str = ""


class ControlCheck(Contract):
    """Input of `verify_control`: a control's proof and what it must be for."""

    change_id: str
    action: ControlAction
    proof: ControlProof | None = None


class TicketCheck(Contract):
    """Input of `verify_admission`: the workflow's ticket, request and start time."""

    change_id: str
    request: ChangeRequest
    ticket: AdmissionTicket | None = None
    started_at: datetime


class AuthorityVerdict(Contract):
    """Whether a signed thing holds; `rule` and `reason` say why not."""

    valid: bool
    rule: str | None = None
    reason: str = ""
