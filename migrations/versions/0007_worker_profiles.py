"""Worker profiles: transport mode, breaks, stored reputation; schedule change requests.

``workers.transport_mode`` (a code of ``dispatch.model.TRANSPORT_MODES``), ``workers.breaks``
(same shape as ``workers.shifts``: ``[{"weekday", "start_min", "end_min"}]``) and
``workers.reputation`` (score in [0, 1], NULL until the reviews work writes one).
``worker_schedule_requests`` holds a worker's proposed shifts and breaks until staff
approve (the proposal replaces the worker's schedule) or reject it; at most one request
per worker is pending (partial unique index, both dialects).

Columns are added with plain ALTER TABLE: a batch copy of ``workers`` would break the
foreign keys of every table pointing at it (see 0004).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the profile columns to workers and create worker_schedule_requests."""
    op.add_column(
        "workers",
        sa.Column("transport_mode", sa.String(length=16), nullable=False, server_default="ebike"),
    )
    op.add_column("workers", sa.Column("breaks", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("workers", sa.Column("reputation", sa.Float(), nullable=True))

    op.create_table(
        "worker_schedule_requests",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("worker_id", BIGID, nullable=False),
        sa.Column("enterprise_id", BIGID, nullable=False),
        sa.Column("shifts", sa.JSON(), nullable=False),
        sa.Column("breaks", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", BIGID, nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decision_note", sa.String(length=200), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_worker_schedule_requests"),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name="fk_worker_schedule_requests_worker_id_workers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name="fk_worker_schedule_requests_enterprise_id_enterprises",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name="fk_worker_schedule_requests_decided_by_users",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_worker_schedule_requests_worker_id", "worker_schedule_requests", ["worker_id"]
    )
    op.create_index(
        "ix_worker_schedule_requests_enterprise_status",
        "worker_schedule_requests",
        ["enterprise_id", "status"],
    )
    op.create_index(
        "uq_worker_schedule_requests_pending",
        "worker_schedule_requests",
        ["worker_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    """Drop worker_schedule_requests and the profile columns (plain ALTER TABLE, see 0004)."""
    op.drop_index("uq_worker_schedule_requests_pending", table_name="worker_schedule_requests")
    op.drop_index(
        "ix_worker_schedule_requests_enterprise_status", table_name="worker_schedule_requests"
    )
    op.drop_index("ix_worker_schedule_requests_worker_id", table_name="worker_schedule_requests")
    op.drop_table("worker_schedule_requests")
    op.drop_column("workers", "reputation")
    op.drop_column("workers", "breaks")
    op.drop_column("workers", "transport_mode")
