"""The trip-cache trigger on workers also fires when a worker's transport mode changes.

A worker's fixes are judged by their mode (``geo.plausibility``); every API process
caches it with the worker's trips (``api.tracking.trips``), so a change of mode must
reach them as a change of activity does (migration 0006's NOTIFY).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trigger(columns: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS workers_trips ON workers")
    op.execute(
        f"CREATE TRIGGER workers_trips AFTER UPDATE OF {columns} OR DELETE ON workers"
        " FOR EACH ROW EXECUTE FUNCTION daojia_notify_trips()"
    )


def upgrade() -> None:
    """Recreate workers_trips with transport_mode among its columns (PostgreSQL only)."""
    if op.get_bind().dialect.name == "postgresql":
        _trigger("is_active, user_id, transport_mode")


def downgrade() -> None:
    """Back to migration 0006's columns."""
    if op.get_bind().dialect.name == "postgresql":
        _trigger("is_active, user_id")
