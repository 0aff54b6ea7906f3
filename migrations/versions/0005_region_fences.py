"""Region fences (newest fencing token per region) and one live offer per order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "state IN ('offered', 'open')"


def upgrade() -> None:
    """Create region_fences; withdraw duplicate live offers, then index the rule."""
    op.create_table(
        "region_fences",
        sa.Column("region", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("region", name=op.f("pk_region_fences")),
    )
    # Older databases may hold two live offers of one order: keep the newest one.
    op.execute(
        f"UPDATE dispatch_offers SET state = 'withdrawn' WHERE {LIVE} AND id < ("
        f"SELECT MAX(d2.id) FROM dispatch_offers d2 WHERE d2.order_id = dispatch_offers.order_id"
        f" AND d2.{LIVE})"
    )
    op.create_index(
        "uq_dispatch_offers_live_order",
        "dispatch_offers",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text(LIVE),
        sqlite_where=sa.text(LIVE),
    )


def downgrade() -> None:
    """Drop the index and region_fences."""
    op.drop_index("uq_dispatch_offers_live_order", table_name="dispatch_offers")
    op.drop_table("region_fences")
