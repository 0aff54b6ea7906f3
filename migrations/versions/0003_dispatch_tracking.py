"""Live dispatch: offers (auto and grab pool), decisions with cost breakdowns, order tracking.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create dispatch_offers, dispatch_decisions and order_tracking."""
    op.create_table(
        "dispatch_offers",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("order_id", BIGID, nullable=False),
        sa.Column("worker_id", BIGID, nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("region", sa.BigInteger(), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("offered_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decline_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_dispatch_offers_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_dispatch_offers_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_offers")),
    )
    with op.batch_alter_table("dispatch_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispatch_offers_order_id"), ["order_id"])
        batch_op.create_index(batch_op.f("ix_dispatch_offers_worker_id"), ["worker_id"])
        batch_op.create_index(batch_op.f("ix_dispatch_offers_state"), ["state"])

    op.create_table(
        "dispatch_decisions",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("order_id", BIGID, nullable=False),
        sa.Column("worker_id", BIGID, nullable=True),
        sa.Column("region", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("total_cost", sa.Float(), nullable=True),
        sa.Column("cost", sa.JSON(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_dispatch_decisions_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_dispatch_decisions_worker_id_workers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_decisions")),
    )
    with op.batch_alter_table("dispatch_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispatch_decisions_order_id"), ["order_id"])

    op.create_table(
        "order_tracking",
        sa.Column("order_id", BIGID, nullable=False),
        sa.Column("service_code", sa.String(length=8), nullable=False),
        sa.Column("code_failures", sa.Integer(), nullable=False),
        sa.Column("code_locked_until", TS, nullable=True),
        sa.Column("eta_state", sa.JSON(), nullable=True),
        sa.Column("last_lat", sa.Float(), nullable=True),
        sa.Column("last_lng", sa.Float(), nullable=True),
        sa.Column("last_ts", sa.Float(), nullable=True),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_tracking_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_tracking")),
    )


def downgrade() -> None:
    """Drop the dispatch tables."""
    op.drop_table("order_tracking")
    with op.batch_alter_table("dispatch_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_decisions_order_id"))
    op.drop_table("dispatch_decisions")
    with op.batch_alter_table("dispatch_offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_offers_state"))
        batch_op.drop_index(batch_op.f("ix_dispatch_offers_worker_id"))
        batch_op.drop_index(batch_op.f("ix_dispatch_offers_order_id"))
    op.drop_table("dispatch_offers")
