"""HTTP endpoints of the in-app inbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth.dependencies import CurrentUser
from api.core.db import utcnow
from api.core.deps import IdPath, JsonBody, LocaleDep, SessionDep
from api.core.errors import error_responses
from api.core.i18n import translate
from api.notifications import service
from api.notifications.schemas import InboxItemOut, InboxOut, MarkedOut
from api.notifications.texts import topic_title

_errors = error_responses(400, 401, 404, 413, 415, 422)
router = APIRouter(
    prefix="/v1/notifications", tags=["notifications"], dependencies=[JsonBody], responses=_errors
)


@router.get("", summary="My notifications")
async def inbox(
    session: SessionDep,
    user: CurrentUser,
    locale: LocaleDep,
    unread_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
) -> InboxOut:
    """Newest first; page with ``before_id`` (the last id of the previous page)."""
    rows, unread = await service.list_inbox(
        session, user, unread_only=unread_only, limit=limit, before_id=before_id
    )
    return InboxOut(
        items=[
            InboxItemOut(
                id=m.id,
                topic=m.topic,
                title=translate(topic_title(m.topic), locale),
                order_id=m.order_id,
                payload=m.payload,
                created_at=m.created_at,
                read_at=m.read_at,
            )
            for m in rows
        ],
        unread=unread,
    )


@router.post("/{message_id}/read", summary="Mark one notification read")
async def read_one(message_id: IdPath, session: SessionDep, user: CurrentUser) -> MarkedOut:
    """Idempotent: marking a read message again changes nothing."""
    return MarkedOut(marked=await service.mark_read(session, user, message_id, now=utcnow()))


@router.post("/read-all", summary="Mark all my notifications read")
async def read_all(session: SessionDep, user: CurrentUser) -> MarkedOut:
    """Every unread message of the caller."""
    return MarkedOut(marked=await service.mark_read(session, user, None, now=utcnow()))
