"""Booking logic: quote, slots, booking with a worker reservation, history, cancel, rebook, share.

No FastAPI here. State changes go through ``api.orders.state`` only. Times are
UTC-aware datetimes; shifts and surcharges are read in ``settings.service_timezone``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import numpy as np
from sqlalchemy import (
    ARRAY,
    BigInteger,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.addresses.models import Address
from api.auth.models import Role, User
from api.auth.service import InvalidToken
from api.catalog.models import Service
from api.catalog.service import AreaLookup
from api.enterprise.models import Worker
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.notifications.models import OutboxMessage
from api.notifications.outbox import Channel, outbox_rows
from api.orders import state
from api.orders.models import IdempotencyKey, Order, OrderEvent, WorkerReservation
from api.orders.roster import RosterCache, WorkerBrief, still_active
from api.orders.roster import fingerprint_columns as roster_fingerprint
from api.orders.state import AfterSalesStatus, OrderEventType, OrderStatus
from api.settings import Settings

# ------------------------------------------------------------------ errors


class OrderNotFound(NotFound):
    """Unknown order, or one the caller may not see (we do not say which)."""

    code = "order_not_found"
    message = "Order not found."


class UnknownService(NotFound):
    """The service does not exist or is not bookable."""

    code = "service_not_found"
    message = "This service does not exist or is not available."


class OutsideArea(InvalidInput):
    """The enterprise offering the service does not serve this address."""

    status_code = 422
    code = "outside_service_area"
    message = "Sorry, this service is not offered at this address."


class SlotInPast(InvalidInput):
    """The slot starts before now plus the minimum notice."""

    status_code = 422
    code = "slot_in_past"
    message = "This time is too soon or in the past; pick a later slot."


class SlotNotOnGrid(InvalidInput):
    """The slot start is not one of the offered start times."""

    status_code = 422
    code = "slot_invalid"
    message = "Pick one of the offered start times."


class SlotTooFar(InvalidInput):
    """The slot is beyond the booking horizon."""

    status_code = 422
    code = "slot_too_far"
    message = "Bookings can be made at most {days} days ahead."


class WorkerBusy(Conflict):
    """The worker already has a visit at that time."""

    code = "worker_busy"
    message = "You already have a visit at that time."


class SlotTaken(Conflict):
    """No worker can take this slot any more (someone else booked it)."""

    code = "slot_taken"
    message = "Sorry, this time slot has just been taken; please choose another."


class IdempotencyKeyReused(InvalidInput):
    """The Idempotency-Key was used before with a different request."""

    status_code = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used for a different request."


class ShareLinkInvalid(NotFound):
    """The share token is forged, malformed or expired."""

    code = "share_link_invalid"
    message = "This share link is invalid or has expired."


class RefundWindowClosed(InvalidInput):
    """After-sales requests are accepted only for a while after completion."""

    status_code = 409
    code = "refund_window_closed"
    message = "The after-sales period for this order has ended."


# ------------------------------------------------------------------ helpers

_DEADLOCK = "40P01"
#: Order of booking candidates only (no security meaning).
_RNG = np.random.default_rng()
_EXCLUSION = "23P01"


def _tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.service_timezone)


def new_order_no(now: datetime) -> str:
    """A 24-character order number: DJ + UTC timestamp + 8 random hex (out_trade_no-safe)."""
    return "DJ" + now.astimezone(UTC).strftime("%y%m%d%H%M%S") + secrets.token_hex(5)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    for obj in (orig, getattr(orig, "__cause__", None)):
        code = getattr(obj, "sqlstate", None) or getattr(obj, "pgcode", None)
        if code:
            return str(code)
    return None


def is_slot_conflict(exc: DBAPIError) -> bool:
    """A PostgreSQL exclusion violation (23P01) or deadlock (40P01): the slot was taken."""
    return _sqlstate(exc) in (_EXCLUSION, _DEADLOCK)


# ------------------------------------------------------------------ services and quote


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
    local = slot_start.astimezone(_tz(settings))
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


# ------------------------------------------------------------------ workers and slots


@dataclass(frozen=True)
class BookingEnv:
    """Per-process helpers a booking needs: area lookup, worker rosters, SQLite write lock."""

    lookup: AreaLookup
    rosters: RosterCache
    #: SQLite only: serialises the overlap check and the insert (None on PostgreSQL)
    lock: anyio.Lock | None = None
    #: PostgreSQL only: sessions in autocommit mode; a booking there is one read and one
    #: atomic write, so BEGIN and COMMIT would only add round trips
    autocommit: async_sessionmaker[AsyncSession] | None = None


async def _area_for(
    session: AsyncSession,
    lookup: AreaLookup,
    svc: Service,
    lat: float,
    lng: float,
    key: tuple[Any, ...] | None = None,
) -> int:
    hits = [
        h
        for h in await lookup.containing(session, lat, lng, key)
        if h.enterprise_id == svc.enterprise_id
    ]
    if not hits:
        raise OutsideArea()
    return hits[0].area_id


def _live(stmt: Any) -> Any:
    return stmt.where(WorkerReservation.status.in_(("held", "confirmed")))


@dataclass(frozen=True)
class SlotOut:
    """An offered start window (UTC) and how many workers could take it."""

    start: datetime
    end: datetime
    workers: int


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


async def available_slots(
    session: AsyncSession,
    env: BookingEnv,
    svc: Service,
    lat: float,
    lng: float,
    day: date,
    settings: Settings,
    *,
    now: datetime,
) -> list[SlotOut]:
    """Start windows on local ``day`` that some eligible worker can insert into their plan.

    Builds the day (shift, home) of the nearest eligible workers with their live
    reservations as confirmed visits and asks ``dispatch.slots.available_slots``
    (travel and duration fit); CPU work runs off the event loop.
    """
    await _area_for(session, env.lookup, svc, lat, lng)
    tz = _tz(settings)
    if day > (now.astimezone(tz) + timedelta(days=settings.booking_horizon_days)).date():
        raise SlotTooFar(days=settings.booking_horizon_days)
    roster = await env.rosters.get(session, svc.enterprise_id)
    rows, _ = roster.in_reach(
        frozenset(svc.required_skills or ()), lat, lng, settings.booking_max_distance_km * 1000.0
    )
    day_start, day_end = _day_bounds(day, tz)
    shifts = [(int(r), roster.shift_window(int(r), day, tz)) for r in rows[:40]]
    ranked = [(int(roster.ids[r]), w) for r, w in shifts if w is not None]
    if not ranked:
        return []
    rows_db = (
        await session.execute(
            _live(
                select(WorkerReservation, Order.lat, Order.lng)
                .join(Order, Order.id == WorkerReservation.order_id)
                .where(
                    WorkerReservation.worker_id.in_([wid for wid, _ in ranked]),
                    WorkerReservation.starts_at < day_end,
                    WorkerReservation.ends_at > day_start,
                )
            )
        )
    ).all()
    buffer_s = settings.booking_buffer_min * 60
    homes = {int(roster.ids[r]): (float(roster.lat[r]), float(roster.lng[r])) for r in rows[:40]}
    plan_input = _PlanInput(
        workers=[(wid, window, *homes[wid]) for wid, window in ranked],
        visits=[
            (r.id, r.worker_id, la, ln, r.starts_at, r.ends_at, buffer_s) for r, la, ln in rows_db
        ],
    )
    duration_s = svc.duration_min * 60
    found = await anyio.to_thread.run_sync(
        _slots_sync,
        plan_input,
        duration_s,
        (lat, lng),
        (int(day_start.timestamp()), int(day_end.timestamp())),
        settings.slot_granularity_s,
        settings.slot_lead_time_s,
        int(now.timestamp()),
    )
    return [
        SlotOut(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), n)
        for s, e, n in found
    ]


@dataclass(frozen=True)
class _PlanInput:
    workers: list[tuple[int, tuple[datetime, datetime], float, float]]
    visits: list[tuple[int, int, float, float, datetime, datetime, int]]


def _slots_sync(
    data: _PlanInput,
    duration_s: int,
    location: tuple[float, float],
    day: tuple[int, int],
    granularity_s: int,
    lead_time_s: int,
    now: int,
) -> list[tuple[int, int, int]]:
    from dispatch.schedule import Stop, Visit, VisitStatus, WorkerDay, plan_day
    from dispatch.slots import ServiceRequest
    from dispatch.slots import available_slots as dispatch_slots
    from geo.travel import HaversineTravelModel

    workers = [
        WorkerDay(
            id=wid,
            shift_start=int(shift[0].timestamp()),
            shift_end=int(shift[1].timestamp()),
            start_lat=lat,
            start_lng=lng,
            skills=1,
        )
        for wid, shift, lat, lng in data.workers
    ]
    visits = [
        Visit(
            id=rid,
            lat=lat,
            lng=lng,
            duration_s=max(1, int((end - start).total_seconds()) - buffer_s),
            window_start=int(start.timestamp()),
            window_end=int(start.timestamp()),
            skills=1,
            status=VisitStatus.CONFIRMED,
            pinned_worker=wid,
        )
        for rid, wid, lat, lng, start, end, buffer_s in data.visits
    ]
    plan = plan_day(
        visits, workers, travel=HaversineTravelModel(), stop=Stop(1.0, max_iterations=50), seed=0
    )
    slots = dispatch_slots(
        ServiceRequest(duration_s=duration_s, skills=1),
        location,
        day,
        plan,
        granularity_s=granularity_s,
        lead_time_s=lead_time_s,
        now=now,
    )
    return [(s.start, s.end, s.workers) for s in slots]


# ------------------------------------------------------------------ idempotency


def request_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of a canonical JSON body (what "same body" means for Idempotency-Key)."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


async def stored_response(
    session: AsyncSession, user_id: int, scope: str, key: str, body_hash: str
) -> tuple[int, dict[str, Any]] | None:
    """The answer stored for ``key`` (same body), None if new; IdempotencyKeyReused if not same."""
    row = await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise IdempotencyKeyReused()
    return row.status_code, row.response


def store_response(
    session: AsyncSession,
    user_id: int,
    scope: str,
    key: str,
    body_hash: str,
    status_code: int,
    response: dict[str, Any],
    now: datetime,
) -> None:
    """Add the answer for ``key`` to the current transaction (unique per user/scope/key)."""
    session.add(
        IdempotencyKey(
            user_id=user_id,
            scope=scope,
            key=key,
            request_hash=body_hash,
            status_code=status_code,
            response=response,
            created_at=now,
        )
    )


# ------------------------------------------------------------------ booking


@dataclass(frozen=True)
class BookingRequest:
    """What the customer books: service, saved address, slot start (UTC), preferences."""

    service_id: int
    address_id: int
    slot_start: datetime
    note: str = ""
    preferred_worker_id: int | None = None


async def _own_address(session: AsyncSession, user: User, address_id: int) -> Address:
    address = await session.get(Address, address_id)
    if address is None or address.user_id != user.id:
        from api.addresses.service import AddressNotFound

        raise AddressNotFound()
    return address


def check_slot(slot_start: datetime, settings: Settings, now: datetime) -> None:
    """Reject past, too-soon, too-far and off-grid slot starts."""
    if slot_start < now + timedelta(seconds=settings.slot_lead_time_s):
        raise SlotInPast()
    tz = _tz(settings)
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


class _Statements:
    """The booking path's statements, built once per dialect and run with bound values."""

    def __init__(self, dialect: str, area_fp: tuple[Any, ...]) -> None:
        self.n_area = len(area_fp)
        # PostgreSQL: the new order's id comes along, so the whole booking can be written
        # in one statement (``create``).
        next_id = (
            [func.nextval(func.pg_get_serial_sequence("orders", "id"))]
            if dialect == "postgresql"
            else []
        )
        self.context = (
            select(
                User,
                Service,
                Address,
                *area_fp,
                *roster_fingerprint(Service.enterprise_id),
                *next_id,
            )
            .join_from(User, Service, true())
            .join(Address, true())
            .where(
                User.id == bindparam("user_id"),
                Service.id == bindparam("service_id"),
                Address.id == bindparam("address_id"),
            )
        )
        r = WorkerReservation
        among = (
            r.worker_id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
            if dialect == "postgresql"
            else r.worker_id.in_(bindparam("ids", expanding=True))
        )
        self.busy = _live(
            select(r.worker_id).where(
                among, r.starts_at < bindparam("end"), r.ends_at > bindparam("start")
            )
        )
        col = r.__table__.c
        values = select(
            bindparam("worker_id", type_=col.worker_id.type),
            bindparam("order_id", type_=col.order_id.type),
            bindparam("start", type_=col.starts_at.type),
            bindparam("end", type_=col.ends_at.type),
            literal("held", col.status.type),
            bindparam("now", type_=col.created_at.type),
            bindparam("now", type_=col.updated_at.type),
        ).where(still_active(bindparam("worker_id")))
        names = [
            "worker_id",
            "order_id",
            "starts_at",
            "ends_at",
            "status",
            "created_at",
            "updated_at",
        ]
        # On PostgreSQL ``ON CONFLICT DO NOTHING`` makes the exclusion constraint answer
        # "taken" with an empty result instead of an error: no savepoint round trips, and
        # a concurrent booking of the same worker waits for the other one's outcome.
        # Core insert: an ORM insert with a dict of values would be a bulk insert.
        table: Any = r.__table__
        insert_ = (
            pg_insert(table).from_select(names, values).on_conflict_do_nothing()
            if dialect == "postgresql"
            else insert(table).from_select(names, values)
        )
        self.reserve = insert_.returning(col.id)
        self.create = {
            keyed: _create_statement(keyed) for keyed in (False, True) if dialect == "postgresql"
        }


#: Order columns the one-statement booking binds (every mapped column of ``orders``).
_ORDER_COLUMNS = tuple(c.key for c in Order.__table__.c)


def _create_statement(idempotent: bool) -> Any:
    """PostgreSQL: pick a free candidate, hold it and write the order, all in one statement.

    The rows are those of the ORM path (``state.begin``/``created_event``, ``outbox_rows``,
    the reservation, the idempotency record); each insert reads from the one before, so
    nothing is written unless the reservation went in. Returns (picked worker, booked
    worker): no row when no candidate is free in this snapshot; a NULL booked worker when
    a concurrent booking took the picked one first (``ON CONFLICT DO NOTHING`` against
    the exclusion constraint) and the caller should try again.
    """
    tables: list[Any] = [WorkerReservation, Order, OrderEvent, OutboxMessage, IdempotencyKey]
    r, o, e, b, k = (t.__table__ for t in tables)
    start, end = (
        bindparam("start", type_=r.c.starts_at.type),
        bindparam("end", type_=r.c.ends_at.type),
    )
    cand = (
        func.unnest(bindparam("ids", type_=ARRAY(BigInteger)))
        .table_valued("w", with_ordinality="n")
        .render_derived(name="cand")
    )
    taken = exists().where(
        r.c.worker_id == cand.c.w,
        r.c.status.in_(("held", "confirmed")),
        r.c.starts_at < end,
        r.c.ends_at > start,
    )
    pick = (
        select(cand.c.w)
        .where(~taken, still_active(cand.c.w))
        .order_by(cand.c.n)
        .limit(1)
        .cte("pick")
    )
    now = bindparam("now", type_=r.c.created_at.type)
    held = (
        pg_insert(r)
        .from_select(
            ["worker_id", "order_id", "starts_at", "ends_at", "status", "created_at", "updated_at"],
            select(
                pick.c.w, bindparam("o_id", type_=r.c.order_id.type), start, end,
                literal("held", r.c.status.type), now, now,
            ),
        )
        .on_conflict_do_nothing()
        .returning(r.c.worker_id)
        .cte("held")
    )  # fmt: skip

    def bound(table: Any, prefix: str, names: list[str], source: Any) -> Any:
        cols = [bindparam(f"{prefix}{n}", type_=table.c[n].type) for n in names]
        return insert(table).from_select(names, select(*cols).select_from(source))

    order_names = [n for n in _ORDER_COLUMNS if n != "worker_id"]
    order_cols = [bindparam(f"o_{n}", type_=o.c[n].type) for n in order_names]
    written = (
        insert(o)
        .from_select([*order_names, "worker_id"], select(*order_cols, held.c.worker_id))
        .returning(o.c.id, o.c.worker_id)
        .cte("written")
    )
    event_names = [
        "order_id",
        "event",
        "from_status",
        "to_status",
        "actor_id",
        "data",
        "created_at",
    ]
    outbox_names = [
        "channel", "topic", "user_id", "order_id", "payload", "status", "attempts",
        "next_attempt_at", "last_error", "created_at",
    ]  # fmt: skip
    side = [bound(e, "e_", event_names, written).cte("event")]
    side += [
        bound(b, f"b{i}_", outbox_names, written).cte(f"outbox{i}") for i in range(len(Channel))
    ]
    if idempotent:
        key_names = [
            "user_id",
            "scope",
            "key",
            "request_hash",
            "status_code",
            "response",
            "created_at",
        ]
        side.append(bound(k, "k_", key_names, written).cte("idempotency"))
    return (
        select(pick.c.w, written.c.worker_id)
        .select_from(pick.outerjoin(written, true()))
        .add_cte(*side)
    )


@functools.cache
def _statements(dialect: str) -> _Statements:
    return _Statements(dialect, AreaLookup.fingerprint_columns())


@dataclass(frozen=True)
class _Context:
    user: User
    service: Service
    address: Address
    area_key: tuple[Any, ...]
    roster_key: tuple[Any, ...]
    #: PostgreSQL: the id the new order will have
    order_id: int | None


async def _booking_context(
    session: AsyncSession, stmts: _Statements, user_id: int, req: BookingRequest
) -> _Context:
    """The customer, service, own address and area/roster fingerprints in one round trip.

    Anything missing is then told apart, in the order a customer would fix it: signed-in
    customer (401/403), service (404), address (404).
    """
    params = {"user_id": user_id, "service_id": req.service_id, "address_id": req.address_id}
    row = (await session.execute(stmts.context, params)).first()
    if row is None or not row[0].is_active or not row[1].is_active or row[2].user_id != user_id:
        user = await session.get(User, user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        if user.role != Role.CUSTOMER.value:
            raise Forbidden()
        svc = await bookable_service(session, req.service_id)
        address = await _own_address(session, user, req.address_id)
        params = {"user_id": user_id, "service_id": svc.id, "address_id": address.id}
        row = (await session.execute(stmts.context, params)).one()
    if row[0].role != Role.CUSTOMER.value:
        raise Forbidden()
    n = stmts.n_area
    rest = tuple(row[3 + n :])
    order_id = rest[2] if len(rest) > 2 else None
    return _Context(row[0], row[1], row[2], tuple(row[3 : 3 + n]), rest[:2], order_id)


async def book(
    session: AsyncSession,
    env: BookingEnv,
    user_id: int,
    req: BookingRequest,
    settings: Settings,
    *,
    now: datetime,
    serialize: Callable[[], Awaitable[None]] | None = None,
    on_created: Callable[[Order], dict[str, Any]] | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Booked:
    """Create a PENDING_PAYMENT order for customer ``user_id`` and hold a worker for its slot.

    One read gathers the customer, service, address and cache fingerprints; candidates
    (skills, reach, shift) come from the cached roster in a random order. PostgreSQL
    then writes everything in one atomic statement (``_create_statement``), so the
    caller's session may be in autocommit mode; the exclusion constraint decides races.
    Elsewhere (SQLite) the ORM path runs in the session's transaction, ``serialize``
    taking the write lock first so check and insert are one step. No free candidate:
    SlotTaken (409). ``idempotency`` (key, body hash) stores ``on_created(order)``.
    """
    stmts = _statements(session.get_bind().dialect.name)
    ctx = await _booking_context(session, stmts, user_id, req)
    user, svc, address = ctx.user, ctx.service, ctx.address
    check_slot(req.slot_start, settings, now)
    area_id = await _area_for(session, env.lookup, svc, address.lat, address.lng, ctx.area_key)
    tz = _tz(settings)
    start = req.slot_start
    duration = timedelta(minutes=svc.duration_min)
    end = start + duration + timedelta(minutes=settings.booking_buffer_min)
    roster = await env.rosters.get(session, svc.enterprise_id, ctx.roster_key)
    rows, _ = roster.in_reach(
        frozenset(svc.required_skills or ()),
        address.lat,
        address.lng,
        settings.booking_max_distance_km * 1000.0,
    )
    rows = roster.on_shift(rows, start, start + duration, tz)
    # Any eligible worker may take the visit (the slots counted them all; the nightly
    # re-optimisation improves routes later). A random order spreads concurrent bookings
    # of one slot over the workers instead of queueing every one on the nearest.
    rows = _RNG.permutation(rows)
    if req.preferred_worker_id is not None:
        rows = rows[np.argsort(roster.ids[rows] != req.preferred_worker_id, kind="stable")]
    ids = [int(i) for i in roster.ids[rows]]
    if not ids:
        raise SlotTaken()
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
    held = {"ids": ids, "start": start, "end": end, "now": now}
    if stmts.create:
        worker_id = await _create_in_one(
            session, stmts, order, held, user, idempotency, on_created, now
        )
    else:
        if serialize is not None:
            await serialize()
        worker_id = await _create_with_orm(session, stmts, order, held, user, now)
        if idempotency is not None and on_created is not None:
            key, body_hash = idempotency
            store_response(session, user.id, "book", key, body_hash, 201, on_created(order), now)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if idempotency is not None:
            raise Conflict() from None
        raise
    row = int(np.flatnonzero(roster.ids == worker_id)[0])
    return Booked(order, svc, roster.briefs[row])


async def _create_with_orm(
    session: AsyncSession,
    stmts: _Statements,
    order: Order,
    held: dict[str, Any],
    user: User,
    now: datetime,
) -> int:
    """Write the order (state.create), then hold the first free candidate; its id."""
    busy = set(await session.scalars(stmts.busy, {k: held[k] for k in ("ids", "start", "end")}))
    free: list[int] = [w for w in held["ids"] if w not in busy]
    if not free:
        raise SlotTaken()
    order.worker_id = free[0]
    await state.create(session, order, actor_id=user.id, now=now)
    for worker_id in free:
        values = {"worker_id": worker_id, "order_id": order.id, "start": held["start"]}
        try:
            got = await session.execute(stmts.reserve, values | {"end": held["end"], "now": now})
        except DBAPIError as exc:
            await session.rollback()
            if is_slot_conflict(exc):
                raise SlotTaken() from None
            raise
        if got.first() is not None:
            order.worker_id = worker_id
            return worker_id
    await session.rollback()
    raise SlotTaken()


async def _create_in_one(
    session: AsyncSession,
    stmts: _Statements,
    order: Order,
    held: dict[str, Any],
    user: User,
    idempotency: tuple[str, str] | None,
    on_created: Callable[[Order], dict[str, Any]] | None,
    now: datetime,
) -> int:
    """PostgreSQL: the booking's rows in one statement (see ``_create_statement``)."""
    state.begin(order)
    params = held | {f"o_{n}": _column_value(order, n) for n in _ORDER_COLUMNS if n != "worker_id"}
    params |= {
        f"e_{k}": v for k, v in state.created_event(order, actor_id=user.id, now=now).items()
    }
    for i, message in enumerate(outbox_rows(order, OrderEventType.CREATED.value, now=now)):
        params |= {f"b{i}_{k}": v for k, v in message.items()}
    keyed = idempotency is not None and on_created is not None
    if idempotency is not None and on_created is not None:
        params |= {
            "k_user_id": user.id,
            "k_scope": "book",
            "k_key": idempotency[0],
            "k_request_hash": idempotency[1],
            "k_status_code": 201,
            "k_response": on_created(order),
            "k_created_at": now,
        }
    stmt = stmts.create[keyed]
    # Candidates go in chunks (encoding a long id array costs more than the statement);
    # a chunk without a free worker moves on to the next. A race lost to a concurrent
    # booking of the picked worker re-runs the chunk: that booking is now visible
    # (READ COMMITTED), so the next try picks someone else.
    ids: list[int] = held["ids"]
    first, races, pruned = 0, 0, False
    while first < len(ids) and races <= len(ids):
        if first and not pruned:
            # The first chunk was all taken: the slot is filling up. One query for who is
            # busy then beats scanning the rest chunk by chunk.
            busy_params = {k: held[k] for k in ("ids", "start", "end")}
            busy = set(await session.scalars(stmts.busy, busy_params))
            ids, first, pruned = [w for w in ids if w not in busy], 0, True
            if not ids:
                break
        params["ids"] = ids[first : first + _CANDIDATE_CHUNK]
        try:
            row = (await session.execute(stmt, params)).first()
        except IntegrityError:
            await session.rollback()
            if keyed:
                raise Conflict() from None
            raise
        except DBAPIError as exc:
            await session.rollback()
            if is_slot_conflict(exc):
                raise SlotTaken() from None
            raise
        if row is None:
            first += _CANDIDATE_CHUNK
        elif row[1] is None:
            races += 1
        else:
            order.worker_id = int(row[1])
            return order.worker_id
    await session.rollback()
    raise SlotTaken()


#: candidate ids per booking statement (PostgreSQL path)
_CANDIDATE_CHUNK = 24


def _column_value(order: Order, name: str) -> Any:
    value = getattr(order, name)
    if value is None:
        default = Order.__table__.c[name].default
        if default is not None and getattr(default, "is_scalar", False):
            return default.arg
    return value


# ------------------------------------------------------------------ reading orders


async def visible_order(session: AsyncSession, user: User, order_id: int) -> Order:
    """The order if ``user`` may see it (owner, its worker, its enterprise's staff, admin)."""
    order = await session.get(Order, order_id)
    if order is None or not await may_see(session, user, order):
        raise OrderNotFound()
    return order


async def worker_id_of(session: AsyncSession, user: User) -> int | None:
    """The worker profile id of a worker user."""
    if user.role != Role.WORKER.value:
        return None
    return await session.scalar(select(Worker.id).where(Worker.user_id == user.id))


async def may_see(session: AsyncSession, user: User, order: Order) -> bool:
    """Whether ``user`` may read ``order``."""
    role = Role(user.role)
    if role is Role.ADMIN:
        return True
    if role is Role.CUSTOMER:
        return order.customer_id == user.id
    if role is Role.STAFF:
        return order.enterprise_id == user.enterprise_id
    return order.worker_id is not None and order.worker_id == await worker_id_of(session, user)


@dataclass(frozen=True)
class OrderFilter:
    """History filters: statuses, local date range of the slot, service."""

    statuses: Sequence[OrderStatus] = ()
    date_from: date | None = None
    date_to: date | None = None
    service_id: int | None = None


async def list_orders(
    session: AsyncSession,
    user: User,
    flt: OrderFilter,
    settings: Settings,
    *,
    limit: int,
    offset: int,
) -> tuple[list[Order], int]:
    """Orders the caller may see, newest slot first, with the total count."""
    where: list[Any] = []
    role = Role(user.role)
    if role is Role.CUSTOMER:
        where.append(Order.customer_id == user.id)
    elif role is Role.STAFF:
        where.append(Order.enterprise_id == user.enterprise_id)
    elif role is Role.WORKER:
        where.append(Order.worker_id == (await worker_id_of(session, user) or -1))
    if flt.statuses:
        where.append(Order.status.in_([s.value for s in flt.statuses]))
    tz = _tz(settings)
    if flt.date_from is not None:
        where.append(Order.slot_start >= _day_bounds(flt.date_from, tz)[0])
    if flt.date_to is not None:
        where.append(Order.slot_start < _day_bounds(flt.date_to, tz)[1])
    if flt.service_id is not None:
        where.append(Order.service_id == flt.service_id)
    cond = and_(*where) if where else and_(True)
    total = await session.scalar(select(func.count(Order.id)).where(cond))
    rows = await session.scalars(
        select(Order)
        .where(cond)
        .order_by(Order.slot_start.desc(), Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def lock_order(session: AsyncSession, order_id: int) -> Order:
    """Re-read the order with a row lock (PostgreSQL ``FOR UPDATE``; SQLite: write lock)."""
    stmt = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    order = await session.scalar(stmt)
    if order is None:
        raise OrderNotFound()
    return order


async def release_reservation(session: AsyncSession, order: Order, now: datetime) -> None:
    """Free the worker held for ``order``."""
    res = await session.scalar(
        select(WorkerReservation).where(WorkerReservation.order_id == order.id)
    )
    if res is not None and res.status != "released":
        res.status = "released"
        res.updated_at = now


async def confirm_reservation(session: AsyncSession, order: Order, now: datetime) -> None:
    """Turn the order's hold into a confirmed reservation (after payment)."""
    res = await session.scalar(
        select(WorkerReservation).where(WorkerReservation.order_id == order.id)
    )
    if res is not None and res.status == "held":
        res.status = "confirmed"
        res.updated_at = now


def cancel_fee(order: Order, settings: Settings, now: datetime) -> int:
    """Fee (fen) kept when cancelling now: free before the cut-off, a share of it after."""
    if order.paid_at is None:
        return 0
    if now <= order.slot_start - timedelta(minutes=settings.cancel_free_before_min):
        return 0
    return order.amount_fen * settings.cancel_fee_pct // 100


async def expire_unpaid(maker: async_sessionmaker[AsyncSession], *, now: datetime) -> int:
    """Cancel every unpaid order past ``expires_at`` and release its hold; returns how many."""
    async with maker() as session:
        ids = list(
            await session.scalars(
                select(Order.id).where(
                    Order.status == OrderStatus.PENDING_PAYMENT.value,
                    Order.expires_at.is_not(None),
                    Order.expires_at <= now,
                )
            )
        )
    done = 0
    for order_id in ids:
        async with maker() as session:
            order = await lock_order(session, order_id)
            if order.status != OrderStatus.PENDING_PAYMENT.value:
                continue
            await state.apply(session, order, OrderEventType.EXPIRED, actor_id=None, now=now)
            await release_reservation(session, order, now)
            await session.commit()
            done += 1
    return done


# ------------------------------------------------------------------ actions


WORKER_EVENTS = {
    "accept": OrderEventType.ACCEPTED,
    "depart": OrderEventType.DEPARTED,
    "arrive": OrderEventType.ARRIVED,
    "start": OrderEventType.STARTED,
    "complete": OrderEventType.COMPLETED,
}


async def worker_action(
    session: AsyncSession, user: User, order_id: int, action: str, *, now: datetime
) -> Order:
    """The assigned worker (or its enterprise's staff) moves the order along."""
    order = await visible_order(session, user, order_id)
    if Role(user.role) not in (Role.WORKER, Role.STAFF, Role.ADMIN):
        raise Forbidden()
    order = await lock_order(session, order.id)
    await state.apply(session, order, WORKER_EVENTS[action], actor_id=user.id, now=now)
    await session.commit()
    return order


async def request_refund(
    session: AsyncSession, user: User, order_id: int, reason: str, *, now: datetime
) -> Order:
    """The customer asks for an after-sales refund of a completed order (within 7 days)."""
    order = await visible_order(session, user, order_id)
    if order.customer_id != user.id:
        raise Forbidden()
    order = await lock_order(session, order.id)
    if (
        order.status == OrderStatus.COMPLETED.value
        and order.completed_at is not None
        and now > order.completed_at + timedelta(days=7)
    ):
        raise RefundWindowClosed()
    await state.apply(
        session, order, OrderEventType.REFUND_REQUESTED, actor_id=user.id, now=now,
        data={"reason": reason},
    )  # fmt: skip
    await session.commit()
    return order


def is_aftersales_pending(order: Order) -> bool:
    """Whether a refund request waits for staff."""
    return order.aftersales_status == AfterSalesStatus.REFUND_REQUESTED.value


# ------------------------------------------------------------------ share links


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def share_token(secret: str, order: Order, *, now: datetime, ttl_s: int) -> tuple[str, datetime]:
    """A signed (HMAC-SHA256), expiring token naming the order."""
    expires = now + timedelta(seconds=ttl_s)
    body = f"{order.id}.{int(expires.timestamp())}"
    sig = hmac.new(("share:" + secret).encode(), body.encode(), hashlib.sha256).digest()
    return f"{_b64(body.encode())}.{_b64(sig[:18])}", expires


def read_share_token(secret: str, token: str, *, now: datetime) -> int:
    """The order id of a valid, unexpired token; ShareLinkInvalid otherwise."""
    try:
        body_b64, sig_b64 = token.split(".")
        body = _unb64(body_b64)
        sig = _unb64(sig_b64)
        order_id_text, exp_text = body.decode().split(".")
        order_id, exp = int(order_id_text), int(exp_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShareLinkInvalid() from exc
    good = hmac.new(("share:" + secret).encode(), body, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(good, sig) or now.timestamp() > exp:
        raise ShareLinkInvalid()
    return order_id


async def assign_worker(
    session: AsyncSession,
    order: Order,
    worker_id: int,
    *,
    actor_id: int | None,
    now: datetime,
    data: dict[str, Any] | None = None,
    event: OrderEventType = OrderEventType.ACCEPTED,
) -> None:
    """Make ``worker_id`` the order's worker: move its time hold, then ``event``.

    ``event`` is ACCEPTED (an offer, a claim, a manual assignment) or REASSIGNED.

    The order must be row-locked by the caller; WorkerBusy (409) when the worker's
    other held/confirmed visits overlap this order's hold. The caller commits.
    """
    res = await session.scalar(
        select(WorkerReservation).where(WorkerReservation.order_id == order.id)
    )
    if res is not None and res.worker_id != worker_id and res.status != "released":
        busy = await session.scalar(
            select(WorkerReservation.id).where(
                WorkerReservation.worker_id == worker_id,
                WorkerReservation.status.in_(("held", "confirmed")),
                WorkerReservation.starts_at < res.ends_at,
                WorkerReservation.ends_at > res.starts_at,
                WorkerReservation.id != res.id,
            )
        )
        if busy is not None:
            raise WorkerBusy()
        try:
            async with session.begin_nested():
                res.worker_id = worker_id
                res.updated_at = now
                await session.flush()
        except DBAPIError as exc:
            if is_slot_conflict(exc):
                raise WorkerBusy() from None
            raise
    order.worker_id = worker_id
    await state.apply(
        session, order, event, actor_id=actor_id, now=now,
        data={"worker_id": worker_id, **(data or {})},
    )  # fmt: skip
