"""Admission's indexes: an agent's running changes and its changes since a time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index changes by (agent_id, outcome) and (agent_id, submitted_at)."""
    op.create_index("ix_changes_agent_id_outcome", "changes", ["agent_id", "outcome"])
    op.create_index("ix_changes_agent_id_submitted_at", "changes", ["agent_id", "submitted_at"])


def downgrade() -> None:
    """Drop both indexes."""
    op.drop_index("ix_changes_agent_id_submitted_at", table_name="changes")
    op.drop_index("ix_changes_agent_id_outcome", table_name="changes")
