"""The initial audit schema: changes and their history, incidents, refusals, switches, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _change_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["change_id"],
        ["changes.change_id"],
        name=f"fk_{table}_change_id_changes",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create every table of the audit store."""
    op.create_table(
        "changes",
        sa.Column("change_id", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("target_label", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("risk", sa.String(), nullable=True),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("change_id", name="pk_changes"),
    )
    for column in ("agent_id", "target_label", "fingerprint", "submitted_at"):
        op.create_index(f"ix_changes_{column}", "changes", [column])

    op.create_table(
        "events",
        sa.Column("change_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        _change_fk("events"),
        sa.PrimaryKeyConstraint("change_id", "seq", name="pk_events"),
    )
    op.create_table(
        "findings",
        sa.Column("change_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("path", sa.String(), nullable=True),
        sa.Column("expected", sa.JSON(), nullable=True),
        sa.Column("actual", sa.JSON(), nullable=True),
        _change_fk("findings"),
        sa.PrimaryKeyConstraint("change_id", "seq", name="pk_findings"),
    )
    op.create_table(
        "decisions",
        sa.Column("change_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        _change_fk("decisions"),
        sa.PrimaryKeyConstraint("change_id", "seq", name="pk_decisions"),
    )
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(), nullable=False),
        sa.Column("change_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("target_label", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("review_markdown", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _change_fk("incidents"),
        sa.PrimaryKeyConstraint("incident_id", name="pk_incidents"),
        sa.UniqueConstraint("change_id", name="uq_incidents_change_id"),
    )
    op.create_index("ix_incidents_target_label", "incidents", ["target_label"])

    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("target_label", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("would_pass", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refusals"),
        sa.UniqueConstraint(
            "at", "agent_id", "fingerprint", "rule", name="uq_refusals_at_agent_id_fingerprint_rule"
        ),
    )
    op.create_index("ix_refusals_at", "refusals", ["at"])
    op.create_index("ix_refusals_agent_id", "refusals", ["agent_id"])

    op.create_table(
        "kill_switches",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_kill_switches"),
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name="pk_tokens"),
        sa.UniqueConstraint("hash", name="uq_tokens_hash"),
    )


def downgrade() -> None:
    """Drop every table of the audit store."""
    for table in (
        "tokens",
        "kill_switches",
        "refusals",
        "incidents",
        "decisions",
        "findings",
        "events",
        "changes",
    ):
        op.drop_table(table)
