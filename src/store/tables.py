"""The audit store's tables: changes and their history, incidents, refusals, switches, tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from changegate.store.columns import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class StoreModel(
    SQLModel, registry=registry(metadata=sa.MetaData(naming_convention=NAMING_CONVENTION))
):
    """Base of the store's tables: their own metadata, apart from any other SQLModel tables."""


_CHANGE_FK = "changes.change_id"


class ChangeRow(StoreModel, table=True):
    """One change request and where it is; the request is stored already redacted."""

    __tablename__ = "changes"
    # Admission counts an agent's running changes and its changes of the last hour.
    __table_args__ = (
        sa.Index("ix_changes_agent_id_outcome", "agent_id", "outcome"),
        sa.Index("ix_changes_agent_id_submitted_at", "agent_id", "submitted_at"),
    )

    change_id: str = Field(primary_key=True)
    agent_id: str = Field(index=True)
    target_label: str = Field(index=True)
    operation: str
    fingerprint: str = Field(index=True)
    request: dict[str, Any] = Field(sa_type=sa.JSON)
    stage: str
    outcome: str | None = None
    risk: str | None = None
    submitted_at: datetime = Field(sa_type=UTCDateTime, index=True)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EventRow(StoreModel, table=True):
    """One timeline event of a change, at its index `seq` in the timeline."""

    __tablename__ = "events"

    change_id: str = Field(primary_key=True, foreign_key=_CHANGE_FK, ondelete="CASCADE")
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime)
    stage: str
    kind: str
    message: str = Field(sa_type=sa.Text)
    actor: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class FindingRow(StoreModel, table=True):
    """One validation finding of a change, at its index `seq` in the report."""

    __tablename__ = "findings"

    change_id: str = Field(primary_key=True, foreign_key=_CHANGE_FK, ondelete="CASCADE")
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    code: str
    severity: str
    message: str = Field(sa_type=sa.Text)
    path: str | None = None
    expected: Any = Field(default=None, sa_type=sa.JSON, nullable=True)
    actual: Any = Field(default=None, sa_type=sa.JSON, nullable=True)


class DecisionRow(StoreModel, table=True):
    """One approver's answer to a change, counted or refused, at its index `seq`."""

    __tablename__ = "decisions"

    change_id: str = Field(primary_key=True, foreign_key=_CHANGE_FK, ondelete="CASCADE")
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    actor: str
    verdict: str
    reason: str = Field(default="", sa_type=sa.Text)
    counted: bool
    at: datetime = Field(sa_type=UTCDateTime)


class IncidentBase(StoreModel):
    """The fields of an incident record, shared by the table and the validated record."""

    incident_id: str
    change_id: str
    category: str
    severity: str
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    target_label: str
    agent_id: str
    title: str
    review_markdown: str = Field(default="", sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class IncidentRow(IncidentBase, table=True):
    """An incident: for a change that rolled back (at most one per change), or for a breaker
    trip (`change_id` then holds the trip's id, which is no change: hence no foreign key)."""

    __tablename__ = "incidents"

    incident_id: str = Field(primary_key=True)
    change_id: str = Field(unique=True)
    target_label: str = Field(index=True)


class RefusalRow(StoreModel, table=True):
    """A change request refused at admission: which rule, why, and what would pass."""

    __tablename__ = "refusals"
    __table_args__ = (sa.UniqueConstraint("at", "agent_id", "fingerprint", "rule"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    agent_id: str = Field(index=True)
    target_label: str
    rule: str
    reason: str = Field(sa_type=sa.Text)
    would_pass: str = Field(default="", sa_type=sa.Text)
    fingerprint: str
    request: dict[str, Any] = Field(sa_type=sa.JSON)


class KillSwitch(StoreModel, table=True):
    """A stop for every change (`global`) or for one agent's (`agent:<id>`)."""

    __tablename__ = "kill_switches"

    scope: str = Field(primary_key=True)
    mode: str
    engaged: bool
    actor: str
    reason: str = Field(default="", sa_type=sa.Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BreakerTripRow(StoreModel, table=True):
    """A circuit breaker that tripped: trigger, response, evidence, and who released it."""

    __tablename__ = "breaker_trips"

    trip_id: str = Field(primary_key=True)
    agent_id: str = Field(index=True)
    breaker: str
    response: str
    reason: str = Field(sa_type=sa.Text)
    evidence: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    incident_id: str | None = None
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    released_by: str | None = None
    release_reason: str | None = Field(default=None, sa_type=sa.Text)


class TokenRow(StoreModel, table=True):
    """An API token: who holds it and what it may do; only its sha256 is kept."""

    __tablename__ = "tokens"

    token_id: str = Field(primary_key=True)
    name: str
    role: str
    agent_id: str | None = None
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    hash: str = Field(unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked: bool = False


class WebSessionRow(StoreModel, table=True):
    """A logged-in browser of the approval page: only the sha256 of its cookie is kept."""

    __tablename__ = "web_sessions"

    id_hash: str = Field(primary_key=True)
    token_id: str = Field(foreign_key="tokens.token_id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    flash: list[list[str]] = Field(default_factory=list, sa_type=sa.JSON)
    """Messages (`[kind, text]`) for the next page this browser loads."""


metadata = StoreModel.metadata


def table_of(model: type[StoreModel]) -> sa.Table:
    """The Core table behind a table model, for statements the ORM does not write."""
    table = model.__table__  # type: ignore[attr-defined]
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table
