"""Circuit breakers: the `breaker_trips` table; an incident may concern a trip, not a change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_INCIDENT_FK = "fk_incidents_change_id_changes"


def upgrade() -> None:
    """Create `breaker_trips`; drop the incidents' foreign key to changes."""
    op.create_table(
        "breaker_trips",
        sa.Column("trip_id", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("breaker", sa.String(), nullable=False),
        sa.Column("response", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("released_at", _TS, nullable=True),
        sa.Column("released_by", sa.String(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("trip_id", name="pk_breaker_trips"),
    )
    op.create_index("ix_breaker_trips_agent_id", "breaker_trips", ["agent_id"])
    op.create_index("ix_breaker_trips_at", "breaker_trips", ["at"])
    # A breaker's incident names its trip where a change's names the change.
    with op.batch_alter_table("incidents") as batch:
        batch.drop_constraint(_INCIDENT_FK, type_="foreignkey")


def downgrade() -> None:
    """Drop `breaker_trips` and breaker incidents; restore the incidents' foreign key."""
    op.execute("DELETE FROM incidents WHERE change_id NOT IN (SELECT change_id FROM changes)")
    with op.batch_alter_table("incidents") as batch:
        batch.create_foreign_key(
            _INCIDENT_FK, "changes", ["change_id"], ["change_id"], ondelete="CASCADE"
        )
    op.drop_table("breaker_trips")
