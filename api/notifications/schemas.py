"""Pydantic models of the inbox API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class InboxItemOut(BaseModel):
    """One in-app notification with its title in the caller's locale."""

    id: int
    topic: str
    title: str
    order_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class InboxOut(BaseModel):
    """A page of the caller's notifications, newest first."""

    items: list[InboxItemOut]
    unread: int


class MarkedOut(BaseModel):
    """How many notifications were marked read."""

    marked: int
