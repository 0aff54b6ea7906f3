"""Grab-pool rows remember whom the order is shown to (``dispatch.rounds.admit`` decides).

A grab row's ``eligible_worker_ids`` is the set the core chose when it opened the pool;
claims and the worker's pool list check membership there instead of re-deciding
eligibility with their own rules. NULL on auto rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add dispatch_offers.eligible_worker_ids."""
    op.add_column("dispatch_offers", sa.Column("eligible_worker_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop dispatch_offers.eligible_worker_ids (in place; SQLite >= 3.35 drops columns)."""
    op.drop_column("dispatch_offers", "eligible_worker_ids")
