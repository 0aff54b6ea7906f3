"""A partial index on live reservations by worker and start.

Bookings probe each candidate worker for a live hold across the slot and read the
free ones' live holds of the day. The worker-id index alone grows with every job a
worker ever had; released holds (finished, cancelled) stay out of this one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status IN ('held', 'confirmed')"


def upgrade() -> None:
    """Create ix_worker_reservations_live."""
    op.create_index(
        "ix_worker_reservations_live",
        "worker_reservations",
        ["worker_id", "starts_at"],
        postgresql_where=sa.text(_LIVE),
        sqlite_where=sa.text(_LIVE),
    )


def downgrade() -> None:
    """Drop ix_worker_reservations_live."""
    op.drop_index("ix_worker_reservations_live", table_name="worker_reservations")
