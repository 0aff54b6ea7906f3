"""Booking: a PENDING_PAYMENT order holding the worker the slot engine chooses.

The API loads the state (customer, service, address, the nearest free workers' days),
asks ``dispatch.slots.choose_booked_worker`` — the very test the slot list makes — and has
the store (``api.orders.store``) write the order and its hold. The store takes the
engine's next choice when a concurrent booking won the first; it decides nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.addresses.models import Address
from api.auth.models import Role, User
from api.auth.service import InvalidToken
from api.catalog.models import Service
from api.core.errors import Forbidden
from api.core.settings import Settings
from api.orders import state
from api.orders.errors import SlotInPast, SlotNotOnGrid, SlotTaken, SlotTooFar
from api.orders.models import Order
from api.orders.quote import bookable_service, quote, service_tz
from api.orders.roster import Roster, WorkerBrief
from api.orders.slots import (
    BOOKING_CHUNK,
    BookingEnv,
    Guess,
    area_for,
    booked_days_of,
    day_bounds,
    working_rows,
)
from api.orders.store import BookedVisit, DaysQuery, FreeDays, Hold
from dispatch.booked import choose_booked_worker
from dispatch.slots import BookingChoice, ServiceRequest, Slot


def new_order_no(now: datetime) -> str:
    """A 24-character order number: DJ + UTC timestamp + 8 random hex (out_trade_no-safe)."""
    return "DJ" + now.astimezone(UTC).strftime("%y%m%d%H%M%S") + secrets.token_hex(5)


@dataclass(frozen=True)
class BookingRequest:
    """What the customer books: service, saved address, slot start (UTC), preferences."""

    service_id: int
    address_id: int
    slot_start: datetime
    note: str = ""
    preferred_worker_id: int | None = None


def check_slot(slot_start: datetime, settings: Settings, now: datetime) -> None:
    """Reject past, too-soon, too-far and off-grid slot starts."""
    if slot_start < now + timedelta(seconds=settings.slot_lead_time_s):
        raise SlotInPast()
    tz = service_tz(settings)
    if (
        slot_start.astimezone(tz).date()
        > (now.astimezone(tz) + timedelta(days=settings.booking_horizon_days)).date()
    ):
        raise SlotTooFar(days=settings.booking_horizon_days)
    local = slot_start.astimezone(tz)
    since_midnight = int(
        (local - datetime.combine(local.date(), time(0), tzinfo=tz)).total_seconds()
    )
    if since_midnight % settings.slot_granularity_s or slot_start.microsecond:
        raise SlotNotOnGrid()


@dataclass(frozen=True)
class Booked:
    """A new order, its service and the worker held for it (what the response shows)."""

    order: Order
    service: Service
    worker: WorkerBrief


@dataclass(frozen=True)
class _Context:
    user: User
    service: Service
    address: Address
    area_key: tuple[Any, ...]
    roster_key: tuple[Any, ...]
    #: PostgreSQL: the id the new order will have
    order_id: int | None
    #: the workers' days read with the context (a guess; ``_first_pass`` checks it)
    prefetched: FreeDays | None = None


async def _own_address(session: AsyncSession, user: User, address_id: int) -> Address:
    address = await session.get(Address, address_id)
    if address is None or address.user_id != user.id:
        from api.addresses.service import AddressNotFound

        raise AddressNotFound()
    return address


async def _booking_context(
    session: AsyncSession,
    env: BookingEnv,
    user_id: int,
    req: BookingRequest,
    days: DaysQuery | None,
) -> _Context:
    """The customer, service, own address, area/roster fingerprints and ``days`` in one
    round trip.

    Anything missing is then told apart, in the order a customer would fix it: signed-in
    customer (401/403), service (404), address (404).
    """
    params = {"user_id": user_id, "service_id": req.service_id, "address_id": req.address_id}
    row, prefetched = await env.store.context(session, params, days)
    if row is None or not row[0].is_active or not row[1].is_active or row[2].user_id != user_id:
        user = await session.get(User, user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        if user.role != Role.CUSTOMER.value:
            raise Forbidden()
        svc = await bookable_service(session, req.service_id)
        address = await _own_address(session, user, req.address_id)
        params = {"user_id": user_id, "service_id": svc.id, "address_id": address.id}
        row, prefetched = await env.store.context(session, params)
    if row[0].role != Role.CUSTOMER.value:
        raise Forbidden()
    n = env.store.n_area
    rest = tuple(row[3 + n :])
    return _Context(row[0], row[1], row[2], tuple(row[3 : 3 + n]), rest[:2], rest[2], prefetched)


def booking_seed(base: int, user_id: int, req: BookingRequest, now: datetime) -> int:
    """The engine's seed for one booking: the same request at the same instant, the same seed."""
    text = f"{base}:{user_id}:{req.service_id}:{req.address_id}:{req.slot_start.isoformat()}"
    digest = hashlib.blake2b(f"{text}:{now.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


#: Engine passes a booking makes when concurrent bookings took all its choices.
_ATTEMPTS = 3


@dataclass(frozen=True)
class _Ask:
    """One booking's question to the engine (everything but the workers' days)."""

    request: ServiceRequest
    location: tuple[float, float]
    slot: Slot
    seed: int
    preferred: int | None


def _choose(
    env: BookingEnv,
    roster: Roster,
    ask: _Ask,
    free: list[int],
    held: list[BookedVisit],
    settings: Settings,
    day: Any,
) -> BookingChoice:
    days = booked_days_of(roster, free, day, service_tz(settings), held)
    return choose_booked_worker(
        ask.request, ask.location, ask.slot, days, travel=env.travel, seed=ask.seed,
        tie_cost=env.tie_cost, preferred_worker=ask.preferred,
    )  # fmt: skip


def _days_query(
    ids: list[int], slot: Slot, duration_s: int, settings: Settings, limit: int = BOOKING_CHUNK
) -> DaysQuery:
    """A pass's question: the first free ``ids`` across the slot's core, and their day.

    Whoever holds the part of the slot every start in it covers cannot take it.
    """
    tz = service_tz(settings)
    start = datetime.fromtimestamp(slot.start, UTC)
    core_lo = datetime.fromtimestamp(slot.end, UTC)
    core_hi = start + timedelta(seconds=duration_s)
    core = (core_lo, core_hi) if core_hi > core_lo else None
    return DaysQuery(ids, core, day_bounds(start.astimezone(tz).date(), tz), limit)


def _candidates(roster: Roster, ctx: _Context, start: datetime, settings: Settings) -> Guess:
    """Skilled workers within reach with a shift on the slot's local day, nearest first."""
    svc, address = ctx.service, ctx.address
    rows, _ = roster.in_reach(
        frozenset(svc.required_skills or ()),
        address.lat,
        address.lng,
        settings.booking_max_distance_km * 1000.0,
    )
    rows = working_rows(roster, rows, start.astimezone(service_tz(settings)).date())
    return Guess(svc.duration_min * 60, tuple(roster.ids[rows].tolist()))


async def _engine_choice(
    session: AsyncSession,
    env: BookingEnv,
    roster: Roster,
    ids: list[int],
    ask: _Ask,
    settings: Settings,
    first: FreeDays | None = None,
) -> BookingChoice:
    """Ask the engine pass by pass: the next free workers' days until someone can take it.

    ``first``: the first pass's days, already read (``_days_query(ids, ...)``).
    """
    query = _days_query(ids, ask.slot, ask.request.duration_s, settings)
    day = query.day[0].date()
    left = ids
    while left:
        # Nearest first: every worker the slot list counted (free across the core, among
        # its ``LIST_CANDIDATES``) is in one of these passes.
        found = first if first is not None else await env.store.free_days(
            session, DaysQuery(left, query.core, query.day, query.limit)
        )  # fmt: skip
        first = None
        if not found.free:
            break
        choice = _choose(env, roster, ask, found.free, found.held, settings, day)
        if choice.options:
            return choice
        left = left[left.index(found.free[-1]) + 1 :]
    raise SlotTaken()


def _with_preferred(ids: Sequence[int], preferred: int | None) -> list[int]:
    """``ids`` with the preferred worker (when among them) first."""
    out = list(ids)
    if preferred in out:
        out.remove(preferred)
        out.insert(0, preferred)
    return out


async def book(
    session: AsyncSession,
    env: BookingEnv,
    user_id: int,
    req: BookingRequest,
    settings: Settings,
    *,
    now: datetime,
    on_created: Callable[[Order], dict[str, Any]] | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Booked:
    """Create a PENDING_PAYMENT order for customer ``user_id`` holding the engine's worker.

    One read gathers the customer, service, address and cache fingerprints; candidates
    (skills, reach, a shift that day) come from the cached roster, nearest first; one
    read per pass gets the nearest free ones' days, and ``dispatch.slots.choose_booked_worker``
    picks the worker and start (seeded by ``env.seed``, the request and ``now``). The
    store writes the order and the hold (``api.orders.store``), taking the engine's next
    choice on a lost race. No worker can take it: SlotTaken (409). ``idempotency``
    (key, body hash) stores ``on_created(order)`` with the order.
    """
    tz = service_tz(settings)
    start = req.slot_start
    slot_s = int(start.timestamp())
    slot = Slot(slot_s, slot_s + settings.slot_granularity_s, 0)
    memo_key = (req.service_id, req.address_id, start.astimezone(tz).weekday())
    guess = env.candidates.get(memo_key)
    prefetch = None
    if guess is not None:
        ids = _with_preferred(guess.ids, req.preferred_worker_id)
        prefetch = _days_query(ids, slot, guess.duration_s, settings)
    ctx = await _booking_context(session, env, user_id, req, prefetch)
    user, svc, address = ctx.user, ctx.service, ctx.address
    check_slot(req.slot_start, settings, now)
    area_id = await area_for(session, env.lookup, svc, address.lat, address.lng, ctx.area_key)
    roster = await env.rosters.get(session, svc.enterprise_id, ctx.roster_key)
    found = _candidates(roster, ctx, start, settings)
    first = ctx.prefetched if guess is not None and guess == found else None
    env.candidates.put(memo_key, found)
    ids = _with_preferred(found.ids, req.preferred_worker_id)
    ask = _Ask(
        request=ServiceRequest(duration_s=found.duration_s),
        location=(address.lat, address.lng),
        slot=slot,
        seed=booking_seed(env.seed, user_id, req, now),
        preferred=req.preferred_worker_id,
    )
    duration_s = found.duration_s
    q = quote(svc, start, settings)
    order = Order(
        id=ctx.order_id,
        order_no=new_order_no(now),
        customer_id=user.id,
        enterprise_id=svc.enterprise_id,
        service_id=svc.id,
        address_id=address.id,
        service_area_id=area_id,
        slot_start=start,
        slot_end=start + timedelta(seconds=settings.slot_granularity_s),
        duration_min=svc.duration_min,
        price_fen=q.price_fen,
        surcharge_fen=q.surcharge_fen,
        amount_fen=q.amount_fen,
        refunded_fen=0,
        cancel_fee_fen=0,
        lat=address.lat,
        lng=address.lng,
        address_snapshot={
            "contact_name": address.contact_name,
            "contact_phone": address.contact_phone,
            "detail": address.detail,
            "label": address.label,
        },
        quote_lines=[line.__dict__ for line in q.lines],
        note=req.note,
        expires_at=now + timedelta(minutes=settings.unpaid_expiry_min),
        created_at=now,
        updated_at=now,
    )
    state.begin(order)

    def rows_for(written: Order) -> state.CreationRows:
        record = None
        if idempotency is not None and on_created is not None:
            record = state.IdempotencyRecord(
                user_id, "book", idempotency[0], idempotency[1], 201, on_created(written)
            )
        return state.creation_rows(written, actor_id=user_id, now=now, idempotency=record)

    for attempt in range(_ATTEMPTS):
        choice = await _engine_choice(session, env, roster, ids, ask, settings, first)
        first = None
        holds = [
            Hold(
                o.worker_id,
                datetime.fromtimestamp(o.start, UTC),
                datetime.fromtimestamp(o.start + duration_s, UTC),
            )
            for o in choice.options
        ]
        try:
            worker_id = await env.store.create(session, order, holds, rows_for)
            break
        except SlotTaken:
            # Concurrent bookings took every worker this pass offered: ask the engine
            # again on the days as they are now (someone else may still be free).
            if attempt == _ATTEMPTS - 1:
                raise
    if attempt:
        # A rolled-back try expired what the session had loaded; the response shows it.
        await session.refresh(svc)
    row = roster.row_of(worker_id)
    return Booked(order, svc, roster.briefs[row])
