"""Prices: the bookable service and its quote (base + evening/weekend surcharges, fen)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Service
from api.core.settings import Settings
from api.orders.errors import UnknownService


def service_tz(settings: Settings) -> ZoneInfo:
    """The service time zone (shifts, surcharges and local days are read in it)."""
    return ZoneInfo(settings.service_timezone)


async def bookable_service(session: AsyncSession, service_id: int) -> Service:
    """An active service; UnknownService otherwise."""
    svc = await session.get(Service, service_id)
    if svc is None or not svc.is_active:
        raise UnknownService()
    return svc


@dataclass(frozen=True)
class QuoteLine:
    """One line of a price: a code, its msgid label and amount in fen."""

    code: str
    label: str
    amount_fen: int


@dataclass(frozen=True)
class Quote:
    """Price of a service at a start time: base + surcharges (fen)."""

    price_fen: int
    surcharge_fen: int
    amount_fen: int
    lines: tuple[QuoteLine, ...]


QUOTE_LABELS = {
    "base": "Service price",
    "evening": "Evening surcharge",
    "weekend": "Weekend surcharge",
}


def quote(svc: Service, slot_start: datetime, settings: Settings) -> Quote:
    """Price of ``svc`` starting at ``slot_start`` (evening and weekend surcharges, fen)."""
    local = slot_start.astimezone(service_tz(settings))
    lines = [QuoteLine("base", QUOTE_LABELS["base"], svc.price_fen)]
    if local.hour >= settings.evening_start_hour or local.hour < 8:
        amount = svc.price_fen * settings.evening_surcharge_pct // 100
        if amount:
            lines.append(QuoteLine("evening", QUOTE_LABELS["evening"], amount))
    if local.weekday() >= 5:
        amount = svc.price_fen * settings.weekend_surcharge_pct // 100
        if amount:
            lines.append(QuoteLine("weekend", QUOTE_LABELS["weekend"], amount))
    surcharge = sum(line.amount_fen for line in lines[1:])
    return Quote(svc.price_fen, surcharge, svc.price_fen + surcharge, tuple(lines))
