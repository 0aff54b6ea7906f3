"""The in-app inbox: list, mark read (the caller's own messages only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.core.errors import NotFound
from api.notifications.models import InboxMessage


class MessageNotFound(NotFound):
    """Unknown message or someone else's."""

    code = "notification_not_found"
    message = "Notification not found."


async def list_inbox(
    session: AsyncSession, user: User, *, unread_only: bool, limit: int, before_id: int | None
) -> tuple[list[InboxMessage], int]:
    """The caller's messages, newest first (cursor: ``before_id``), and the unread count."""
    stmt = select(InboxMessage).where(InboxMessage.user_id == user.id)
    if unread_only:
        stmt = stmt.where(InboxMessage.read_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(InboxMessage.id < before_id)
    rows = list(await session.scalars(stmt.order_by(InboxMessage.id.desc()).limit(limit)))
    unread = await session.scalar(
        select(func.count(InboxMessage.id)).where(
            InboxMessage.user_id == user.id, InboxMessage.read_at.is_(None)
        )
    )
    return rows, int(unread or 0)


async def mark_read(
    session: AsyncSession, user: User, message_id: int | None, *, now: datetime
) -> int:
    """Mark one message (or all when ``message_id`` is None) read; returns how many changed."""
    stmt = update(InboxMessage).where(
        InboxMessage.user_id == user.id, InboxMessage.read_at.is_(None)
    )
    if message_id is not None:
        exists = await session.scalar(
            select(InboxMessage.id).where(
                InboxMessage.id == message_id, InboxMessage.user_id == user.id
            )
        )
        if exists is None:
            raise MessageNotFound()
        stmt = stmt.where(InboxMessage.id == message_id)
    result = await session.execute(stmt.values(read_at=now))
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
