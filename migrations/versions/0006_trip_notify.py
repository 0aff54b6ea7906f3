"""NOTIFY daojia_trips when a worker's trips may change (PostgreSQL only).

API processes cache, per worker, the orders it is on the way to (the location ping's
fast path, api/tracking/trips.py) and drop an entry when told: an order's status,
sub-status, worker or address changed; a worker's or user's activity changed. Triggers
catch every writer (any process, ORM or not). SQLite is the single-process embedded
default, where the process's own session hooks see every change: nothing to do there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION daojia_notify_trips() RETURNS trigger AS $$
BEGIN
  IF TG_TABLE_NAME = 'orders' THEN
    IF TG_OP = 'INSERT' THEN
      PERFORM pg_notify('daojia_trips', 'w:' || NEW.worker_id);
    ELSIF TG_OP = 'DELETE' THEN
      PERFORM pg_notify('daojia_trips', 'w:' || OLD.worker_id);
    ELSE
      PERFORM pg_notify('daojia_trips',
        'w:' || concat_ws(',', OLD.worker_id, NULLIF(NEW.worker_id, OLD.worker_id)));
    END IF;
  ELSIF TG_TABLE_NAME = 'workers' THEN
    PERFORM pg_notify('daojia_trips', 'w:' || COALESCE(OLD.id, NEW.id));
  ELSE
    PERFORM pg_notify('daojia_trips', 'u:' || COALESCE(OLD.id, NEW.id));
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql
"""

TRIGGERS = (
    # Only orders inserted already under way (imports, seeds): a booking is not yet a trip.
    "CREATE TRIGGER orders_trips_insert AFTER INSERT ON orders FOR EACH ROW"
    " WHEN (NEW.worker_id IS NOT NULL AND NEW.status IN ('pending_service', 'in_service'))"
    " EXECUTE FUNCTION daojia_notify_trips()",
    "CREATE TRIGGER orders_trips_update AFTER UPDATE ON orders FOR EACH ROW"
    " WHEN ((OLD.worker_id IS NOT NULL OR NEW.worker_id IS NOT NULL) AND ("
    " OLD.status IS DISTINCT FROM NEW.status"
    " OR OLD.dispatch_status IS DISTINCT FROM NEW.dispatch_status"
    " OR OLD.worker_id IS DISTINCT FROM NEW.worker_id"
    " OR OLD.lat IS DISTINCT FROM NEW.lat OR OLD.lng IS DISTINCT FROM NEW.lng))"
    " EXECUTE FUNCTION daojia_notify_trips()",
    "CREATE TRIGGER orders_trips_delete AFTER DELETE ON orders FOR EACH ROW"
    " WHEN (OLD.worker_id IS NOT NULL) EXECUTE FUNCTION daojia_notify_trips()",
    "CREATE TRIGGER workers_trips AFTER UPDATE OF is_active, user_id OR DELETE ON workers"
    " FOR EACH ROW EXECUTE FUNCTION daojia_notify_trips()",
    "CREATE TRIGGER users_trips AFTER UPDATE OF is_active OR DELETE ON users"
    " FOR EACH ROW EXECUTE FUNCTION daojia_notify_trips()",
)
NAMES = (
    ("orders_trips_insert", "orders"),
    ("orders_trips_update", "orders"),
    ("orders_trips_delete", "orders"),
    ("workers_trips", "workers"),
    ("users_trips", "users"),
)


def upgrade() -> None:
    """Create the notify function and its triggers (PostgreSQL)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers and the function (PostgreSQL)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS daojia_notify_trips()")
