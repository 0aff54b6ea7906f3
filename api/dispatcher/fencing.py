"""The database half of region leases: reject writes carrying a stale fencing token.

A dispatcher that holds a region's lease (api/core/leases.py) writes offers and decisions for
that region only inside a transaction that first runs ``fence(session, region, token)``::

    UPDATE region_fences SET fencing_token = :t WHERE region = :r AND fencing_token <= :t
    -- 0 rows: insert the row if absent, else raise StaleFencingToken (roll back)

The UPDATE row-locks the region's fence until commit (PostgreSQL; SQLite serialises every
writer anyway), so a stale holder's transaction either commits before the new holder's
first write or fails its check after it. ``newest_token`` is the ``min_token`` for a new
acquisition: Redis keeps no history across a restart, the database does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import utcnow
from api.core.leases import StaleFencingToken
from api.dispatcher.models import RegionFence


async def _raise_to(session: AsyncSession, region: int, token: int, now: datetime) -> bool:
    result = await session.execute(
        update(RegionFence)
        .where(RegionFence.region == region, RegionFence.fencing_token <= token)
        .values(fencing_token=token, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def fence(
    session: AsyncSession, region: int, token: int, *, now: datetime | None = None
) -> None:
    """Check and record ``token`` for ``region`` in the caller's transaction.

    Raises ``StaleFencingToken`` when the database has seen a newer token for the region
    (the caller must roll back and stop writing for it). Equal tokens pass.
    """
    region, token, now = int(region), int(token), now or utcnow()
    if await _raise_to(session, region, token, now):
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(RegionFence)
        .values(region=region, fencing_token=token, updated_at=now)
        .on_conflict_do_nothing(index_elements=["region"])
    )
    if await _raise_to(session, region, token, now):
        return
    latest = await newest_token(session, region)
    raise StaleFencingToken(
        f"region {region:x}: fencing token {token} is older than the latest seen {latest}"
    )


async def newest_token(session: AsyncSession, region: int) -> int:
    """The newest token that wrote for ``region`` (0 if none): the floor of the next lease."""
    value = await session.scalar(
        select(RegionFence.fencing_token).where(RegionFence.region == int(region))
    )
    return int(value or 0)
