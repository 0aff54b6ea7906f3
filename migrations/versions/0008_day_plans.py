"""Day plans: teams (named groups of an enterprise's workers) and persisted plan versions.

``teams`` + ``team_members``; ``day_plans`` keeps every version of a team's plan for a
local day (``scope`` is ``team:{id}`` or ``all`` for the default team of every worker).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create teams, team_members and day_plans."""
    op.create_table(
        "teams",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("enterprise_id", BIGID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name="fk_teams_enterprise_id_enterprises",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("enterprise_id", "name", name="uq_teams_enterprise_name"),
    )
    op.create_index("ix_teams_enterprise_id", "teams", ["enterprise_id"])
    op.create_table(
        "team_members",
        sa.Column("team_id", BIGID, nullable=False),
        sa.Column("worker_id", BIGID, nullable=False),
        sa.PrimaryKeyConstraint("team_id", "worker_id", name="pk_team_members"),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name="fk_team_members_team_id_teams", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name="fk_team_members_worker_id_workers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_team_members_worker_id", "team_members", ["worker_id"])
    op.create_table(
        "day_plans",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("enterprise_id", BIGID, nullable=False),
        sa.Column("team_id", BIGID, nullable=True),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", BIGID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_day_plans"),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name="fk_day_plans_enterprise_id_enterprises",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name="fk_day_plans_team_id_teams", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_day_plans_created_by_users", ondelete="SET NULL"
        ),
        sa.UniqueConstraint(
            "enterprise_id", "scope", "day", "version", name="uq_day_plans_scope_day_version"
        ),
    )
    op.create_index("ix_day_plans_enterprise_id", "day_plans", ["enterprise_id"])
    op.create_index("ix_day_plans_team_id", "day_plans", ["team_id"])


def downgrade() -> None:
    """Drop day_plans, team_members and teams."""
    op.drop_index("ix_day_plans_team_id", table_name="day_plans")
    op.drop_index("ix_day_plans_enterprise_id", table_name="day_plans")
    op.drop_table("day_plans")
    op.drop_index("ix_team_members_worker_id", table_name="team_members")
    op.drop_table("team_members")
    op.drop_index("ix_teams_enterprise_id", table_name="teams")
    op.drop_table("teams")
