"""Per-enterprise dispatch settings (mode, batch window, accept timeout, cost weights).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add enterprises.dispatch_settings (JSON, NULL = platform defaults)."""
    op.add_column("enterprises", sa.Column("dispatch_settings", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop enterprises.dispatch_settings.

    A plain ALTER TABLE (SQLite >= 3.35 drops columns in place): a batch copy of
    ``enterprises`` would break the foreign keys of every table pointing at it.
    """
    op.drop_column("enterprises", "dispatch_settings")
