"""Where a booking is persisted: a port (``OrderStore``) with a PostgreSQL and an SQLite adapter.

The adapter is chosen once, when the app starts (``order_store``); nothing else asks
which database it runs on. Both adapters write the same rows: the order (in the state
``api.orders.state.begin`` put it), its hold on the worker the slot engine chose, and
``api.orders.state.creation_rows`` (created event, outbox, idempotency record). They
differ only in how:

* PostgreSQL writes them in one statement in an autocommit session (two round trips a
  booking besides reading the workers' days); the exclusion constraint on
  ``worker_reservations`` decides races, and a lost race takes the next choice.
* SQLite has no exclusion constraint: bookings take turns (a process lock and the
  database's write lock) and the ORM writes the rows in the request's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
from sqlalchemy import (
    ARRAY,
    BigInteger,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy import bindparam as bp
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.addresses.models import Address
from api.auth.models import User
from api.catalog.models import Service
from api.catalog.service import AreaLookup
from api.core.db import make_sessionmaker
from api.core.errors import Conflict
from api.notifications.models import OutboxMessage
from api.orders.errors import SlotTaken
from api.orders.models import IdempotencyKey, Order, OrderEvent, WorkerReservation
from api.orders.roster import fingerprint_columns as roster_fingerprint
from api.orders.roster import still_active
from api.orders.state import CreationRows

_EXCLUSION = "23P01"
_DEADLOCK = "40P01"
_LIVE = ("held", "confirmed")
#: SQLite: a no-op write that takes the database's write lock.
_WRITE_LOCK = text("UPDATE worker_reservations SET status = status WHERE id = -1")
#: An instant no live hold spans: the "no overlap filter" window.
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


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


@dataclass(frozen=True)
class Hold:
    """One choice of the slot engine: hold ``worker_id`` for ``[start, end)`` (UTC)."""

    worker_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class BookedVisit:
    """A live reservation as a visit of its worker's day: when (epoch s) and where (WGS-84)."""

    worker_id: int
    reservation_id: int
    start: int
    end: int
    lat: float
    lng: float


@dataclass(frozen=True)
class DaysQuery:
    """Which workers' days to read: the first ``limit`` of ``ids`` (in order) with no live
    hold overlapping ``core`` (None: no such filter), and their holds within ``day``."""

    ids: Sequence[int]
    core: tuple[datetime, datetime] | None
    day: tuple[datetime, datetime]
    limit: int


@dataclass(frozen=True)
class FreeDays:
    """What a ``DaysQuery`` found: the free workers (in the asked order) and their visits."""

    free: list[int]
    held: list[BookedVisit]


#: What the store needs from the booking to finish the rows once the order id is known.
RowsFor = Callable[[Order], CreationRows]


class OrderStore(Protocol):
    """The persistence port of order creation (one adapter per database)."""

    #: how many area-lookup fingerprint columns ``context`` returns after (user, service, address)
    n_area: int

    def booking_session(self, request_session: AsyncSession) -> Any:
        """Async context: the session a booking runs in."""

    async def context(
        self, session: AsyncSession, params: dict[str, int], days: DaysQuery | None = None
    ) -> tuple[Any, FreeDays | None]:
        """(user, service, address, *area and roster fingerprints, next order id | None),
        and the answer to ``days`` read with it (None when not asked)."""

    async def free_days(self, session: AsyncSession, query: DaysQuery) -> FreeDays:
        """The first ``query.limit`` free workers of ``query.ids`` and their day's visits."""

    async def create(
        self, session: AsyncSession, order: Order, holds: Sequence[Hold], rows_for: RowsFor
    ) -> int:
        """Write ``order`` holding the first of ``holds`` still free, committed; its worker id.

        SlotTaken (409) when none is; Conflict (409) when the idempotency key was just
        used by a concurrent request.
        """


def _context_statement(next_id: bool) -> Any:
    extra = [func.nextval(func.pg_get_serial_sequence("orders", "id"))] if next_id else []
    return (
        select(
            User,
            Service,
            Address,
            *AreaLookup.fingerprint_columns(),
            *roster_fingerprint(Service.enterprise_id),
            *extra,
        )
        .join_from(User, Service, true())
        .join(Address, true())
        .where(
            User.id == bp("user_id"),
            Service.id == bp("service_id"),
            Address.id == bp("address_id"),
        )
    )


def _live(r: Any) -> Any:
    return r.status.in_(_LIVE)


def _day_rows_statement(among: Any) -> Any:
    r, o = WorkerReservation.__table__.c, Order.__table__.c
    return (
        select(r.worker_id, r.id, r.starts_at, r.ends_at, o.lat, o.lng)
        .join_from(WorkerReservation.__table__, Order.__table__, o.id == r.order_id)
        .where(among, _live(r), r.starts_at < bp("day_end"), r.ends_at > bp("day_start"))
        .order_by(r.worker_id, r.starts_at)
    )


def _visits(rows: Sequence[Any]) -> list[BookedVisit]:
    """(worker, reservation, starts_at, ends_at, lat, lng) rows as visits (no-hold rows skipped)."""
    return [
        BookedVisit(int(w), int(rid), _epoch(s), _epoch(e), float(la), float(ln))
        for w, rid, s, e, la, ln in rows
        if rid is not None
    ]


def _epoch(value: datetime | float | int) -> int:
    return int(value.timestamp()) if isinstance(value, datetime) else int(value)


# ------------------------------------------------------------------ SQLite


class SqliteOrderStore:
    """SQLite: bookings take turns; ORM writes in the request's transaction."""

    def __init__(self) -> None:
        self.n_area = len(AreaLookup.fingerprint_columns())
        self._context = _context_statement(next_id=False)
        self._lock = anyio.Lock()
        r = WorkerReservation.__table__.c
        self._busy = select(r.worker_id).where(
            r.worker_id.in_(bp("ids", expanding=True)),
            _live(r),
            r.starts_at < bp("end"),
            r.ends_at > bp("start"),
        )
        self._days = _day_rows_statement(r.worker_id.in_(bp("ids", expanding=True)))

    @asynccontextmanager
    async def booking_session(self, request_session: AsyncSession) -> AsyncIterator[AsyncSession]:
        """The request's own session (and transaction)."""
        yield request_session

    async def context(
        self, session: AsyncSession, params: dict[str, int], days: DaysQuery | None = None
    ) -> tuple[Any, FreeDays | None]:
        """The booking's context row (no order id: SQLite assigns it on insert), then ``days``.

        In-process, a second statement costs no round trip.
        """
        row = (await session.execute(self._context, params)).first()
        if row is None:
            return None, None
        return (*row, None), None if days is None else await self.free_days(session, days)

    async def free_days(self, session: AsyncSession, query: DaysQuery) -> FreeDays:
        """Two plain reads: who is busy across ``query.core``, then the free ones' day."""
        free = list(query.ids)
        if query.core is not None and free:
            lo, hi = query.core
            busy = set(await session.scalars(self._busy, {"ids": free, "start": lo, "end": hi}))
            free = [w for w in free if w not in busy]
        free = free[: query.limit]
        if not free:
            return FreeDays([], [])
        day_start, day_end = query.day
        rows = await session.execute(
            self._days, {"ids": free, "day_start": day_start, "day_end": day_end}
        )
        return FreeDays(free, _visits(rows.all()))

    async def create(
        self, session: AsyncSession, order: Order, holds: Sequence[Hold], rows_for: RowsFor
    ) -> int:
        """Take the write lock, hold the first free choice, write the rows, commit."""
        async with self._lock:
            # The first write takes the database's write lock, so the overlap check below
            # and the insert are one step for every process.
            await session.execute(_WRITE_LOCK)
            picked = await self._first_free(session, holds)
            if picked is None:
                await session.rollback()
                raise SlotTaken()
            order.worker_id = picked.worker_id
            session.add(order)
            await session.flush()
            rows = rows_for(order)
            session.add(
                WorkerReservation(
                    worker_id=picked.worker_id, order_id=order.id, starts_at=picked.start,
                    ends_at=picked.end, status="held", created_at=order.created_at,
                    updated_at=order.created_at,
                )
            )  # fmt: skip
            session.add(OrderEvent(**rows.event))
            session.add_all(OutboxMessage(**row) for row in rows.outbox)
            if rows.idempotency is not None:
                session.add(IdempotencyKey(**rows.idempotency))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                if rows.idempotency is not None:
                    raise Conflict() from None
                raise
        return picked.worker_id

    async def _first_free(self, session: AsyncSession, holds: Sequence[Hold]) -> Hold | None:
        for hold in holds:
            taken = await session.scalar(
                select(
                    exists().where(
                        WorkerReservation.worker_id == hold.worker_id,
                        WorkerReservation.status.in_(_LIVE),
                        WorkerReservation.starts_at < hold.end,
                        WorkerReservation.ends_at > hold.start,
                    )
                    | ~still_active(hold.worker_id)
                )
            )
            if not taken:
                return hold
        return None


# ------------------------------------------------------------------ PostgreSQL


class PostgresOrderStore:
    """PostgreSQL: autocommit sessions, one statement per write, the exclusion constraint."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.n_area = len(AreaLookup.fingerprint_columns())
        self._context = _context_statement(next_id=True)
        # A booking is one read of the workers' days and one atomic write: BEGIN and
        # COMMIT would only add round trips.
        self._autocommit: async_sessionmaker[AsyncSession] = make_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        days = _pg_days_cte()
        self._free_days = select(days).order_by(days.c.n, days.c.s)
        self._context_days = _pg_context_days_statement(days)

    @asynccontextmanager
    async def booking_session(self, request_session: AsyncSession) -> AsyncIterator[AsyncSession]:
        """An autocommit session of its own."""
        async with self._autocommit() as session:
            yield session

    async def context(
        self, session: AsyncSession, params: dict[str, int], days: DaysQuery | None = None
    ) -> tuple[Any, FreeDays | None]:
        """The booking's context row, with the id the new order will have, and ``days``
        read in the same statement (one round trip for both)."""
        if days is None or not days.ids:
            row = (await session.execute(self._context, params)).first()
            return row, None if days is None else FreeDays([], [])
        found = (
            await session.execute(self._context_days, params | self._days_params(days))
        ).first()
        if found is None:
            return None, None
        free, *columns = (v or () for v in found[-7:])
        held = [BookedVisit(*v) for v in zip(*columns, strict=True)]
        return tuple(found[:-7]), FreeDays(list(free), held)

    async def free_days(self, session: AsyncSession, query: DaysQuery) -> FreeDays:
        """One statement: the first free candidates (in order) and their day's visits."""
        if not query.ids:
            return FreeDays([], [])
        rows = (await session.execute(self._free_days, self._days_params(query))).all()
        free = list(dict.fromkeys(int(row[0]) for row in rows))
        return FreeDays(free, _visits([row[:6] for row in rows]))

    @staticmethod
    def _days_params(query: DaysQuery) -> dict[str, Any]:
        lo, hi = query.core if query.core is not None else (_NEVER, _NEVER)
        return {"ids": list(query.ids), "lo": lo, "hi": hi, "k": query.limit,
                "day_start": query.day[0], "day_end": query.day[1]}  # fmt: skip

    async def create(
        self, session: AsyncSession, order: Order, holds: Sequence[Hold], rows_for: RowsFor
    ) -> int:
        """The rows in one statement (``_pg_create_statement``); a lost race takes the next hold."""
        rows = rows_for(order)
        params: dict[str, Any] = {
            f"o_{n}": _column_value(order, n) for n in _ORDER_COLUMNS if n != "worker_id"
        }
        params |= {f"e_{k}": v for k, v in rows.event.items()}
        for i, message in enumerate(rows.outbox):
            params |= {f"b{i}_{k}": v for k, v in message.items()}
        if rows.idempotency is not None:
            params |= {f"k_{k}": v for k, v in rows.idempotency.items()}
        stmt = _pg_create_statement(
            tuple(rows.event), tuple(tuple(m) for m in rows.outbox),
            None if rows.idempotency is None else tuple(rows.idempotency),
        )  # fmt: skip
        left = list(holds)
        while left:
            params |= {
                "ids": [h.worker_id for h in left],
                "starts": [h.start for h in left],
                "ends": [h.end for h in left],
            }
            try:
                row = (await session.execute(stmt, params)).first()
            except IntegrityError:
                await session.rollback()
                if rows.idempotency is not None:
                    raise Conflict() from None
                raise
            except DBAPIError as exc:
                await session.rollback()
                if is_slot_conflict(exc):
                    raise SlotTaken() from None
                raise
            if row is None:
                break
            if row[1] is not None:
                # A no-op in the autocommit booking session; on any other session it is
                # what makes the rows stay.
                await session.commit()
                order.worker_id = int(row[1])
                return order.worker_id
            # A concurrent booking took the picked worker first (ON CONFLICT DO NOTHING
            # against the exclusion constraint): the next choice.
            left = [h for h in left if h.worker_id != int(row[0])]
        # Autocommit: nothing was written, so nothing to roll back (and nothing expired).
        raise SlotTaken()


#: Order columns the one-statement booking binds (every mapped column of ``orders``).
_ORDER_COLUMNS = tuple(c.key for c in Order.__table__.c)


def _column_value(order: Order, name: str) -> Any:
    value = getattr(order, name)
    if value is None:
        default = Order.__table__.c[name].default
        if default is not None and getattr(default, "is_scalar", False):
            return default.arg
    return value


def _live_literal(r: Any) -> Any:
    """Live holds, spelled with literals so the planner matches the partial indexes on them."""
    return r.status.in_([literal_column(f"'{v}'") for v in _LIVE])


def _overlaps(r: Any, lo: Any, hi: Any) -> Any:
    """``r``'s hold overlaps ``[lo, hi)``, spelled as the exclusion constraint's GiST index
    (worker, range) is, so a per-worker probe is one index descent."""
    return func.tstzrange(r.starts_at, r.ends_at, literal_column("'[)'")).op("&&")(
        func.tstzrange(lo, hi, literal_column("'[)'"))
    )


def _pg_days_cte() -> Any:
    """CTE ``days``: the first ``k`` of ``ids`` with no live hold across ``[lo, hi)``, each
    with its live holds within ``[day_start, day_end)`` (worker, reservation, start and
    end in epoch seconds, lat, lng; NULL reservation when none) and its rank ``n``.

    Each candidate is probed on its own (``OFFSET 0`` keeps the probe a per-row subplan:
    as a join the planner would scan every hold before the slot), nearest first, until
    ``k`` are free. Whether a worker is still active is the write's to check
    (``_pg_create_statement``); the roster these ids come from is one context read old.
    """
    r, o = WorkerReservation.__table__, Order.__table__
    ts = r.c.starts_at.type
    cand = (
        func.unnest(bp("ids", type_=ARRAY(BigInteger)))
        .table_valued("w", with_ordinality="n")
        .render_derived(name="cand")
    )
    busy = (
        select(literal(1))
        .where(
            r.c.worker_id == cand.c.w,
            _live_literal(r.c),
            _overlaps(r.c, bp("lo", type_=ts), bp("hi", type_=ts)),
        )
        .offset(0)
        .exists()
    )
    free = select(cand.c.w, cand.c.n).where(~busy).order_by(cand.c.n).limit(bp("k")).cte("free")

    def epoch(col: Any) -> Any:
        return func.extract("epoch", col).cast(BigInteger)

    held = (
        select(
            r.c.id.label("rid"),
            epoch(r.c.starts_at).label("s"),
            epoch(r.c.ends_at).label("e"),
            o.c.lat,
            o.c.lng,
        )
        .join_from(r, o, o.c.id == r.c.order_id)
        .where(
            r.c.worker_id == free.c.w,
            _live_literal(r.c),
            _overlaps(r.c, bp("day_start", type_=ts), bp("day_end", type_=ts)),
        )
        .offset(0)
        .lateral("held")
    )
    return (
        select(free.c.w, held.c.rid, held.c.s, held.c.e, held.c.lat, held.c.lng, free.c.n)
        .select_from(free.outerjoin(held, true()))
        .cte("days")
    )


def _pg_context_days_statement(days: Any) -> Any:
    """The context row plus ``days`` as arrays: free workers (by rank), then one array per
    visit column (by worker rank and start)."""
    visit = (days.c.n, days.c.s)

    def agg(col: Any, *order: Any, where: Any = None) -> Any:
        q = select(func.array_agg(aggregate_order_by(col, *order))).select_from(days)
        return (q if where is None else q.where(where)).scalar_subquery()

    has = days.c.rid.is_not(None)
    first = select(days.c.w, func.min(days.c.n).label("n")).group_by(days.c.w).subquery()
    free = (
        select(func.array_agg(aggregate_order_by(first.c.w, first.c.n)))
        .select_from(first)
        .scalar_subquery()
    )
    return _context_statement(next_id=True).add_columns(
        free,
        *(agg(c, *visit, where=has) for c in (days.c.w, days.c.rid, days.c.s, days.c.e,
                                             days.c.lat, days.c.lng)),
    )  # fmt: skip


@functools.cache
def _pg_create_statement(
    event_names: tuple[str, ...],
    outbox_names: tuple[tuple[str, ...], ...],
    key_names: tuple[str, ...] | None,
) -> Any:
    """Hold the first free choice and write the order's rows, all in one statement.

    ``ids``/``starts``/``ends`` are the slot engine's choices, best first; each insert
    reads from the one before, so nothing is written unless the hold went in. Returns
    (picked worker, held worker): no row when no choice is free in this snapshot; a NULL
    held worker when a concurrent booking took the picked one first.
    """
    tables: list[Any] = [WorkerReservation, Order, OrderEvent, OutboxMessage, IdempotencyKey]
    r, o, e, b, k = (t.__table__ for t in tables)
    cand = (
        func.unnest(
            bp("ids", type_=ARRAY(BigInteger)),
            bp("starts", type_=ARRAY(r.c.starts_at.type)),
            bp("ends", type_=ARRAY(r.c.ends_at.type)),
        )
        .table_valued("w", "s", "e", with_ordinality="n")
        .render_derived(name="cand")
    )
    taken = (
        select(literal(1))
        .where(r.c.worker_id == cand.c.w, _live_literal(r.c), _overlaps(r.c, cand.c.s, cand.c.e))
        .offset(0)
        .exists()
    )
    pick = (
        select(cand.c.w, cand.c.s, cand.c.e)
        .where(~taken, still_active(cand.c.w))
        .order_by(cand.c.n)
        .limit(1)
        .cte("pick")
    )
    now = bp("o_created_at", type_=r.c.created_at.type)
    held = (
        pg_insert(r)
        .from_select(
            ["worker_id", "order_id", "starts_at", "ends_at", "status", "created_at", "updated_at"],
            select(
                pick.c.w, bp("o_id", type_=r.c.order_id.type), pick.c.s, pick.c.e,
                literal("held", r.c.status.type), now, now,
            ),
        )
        .on_conflict_do_nothing()
        .returning(r.c.worker_id)
        .cte("held")
    )  # fmt: skip

    def bound(table: Any, prefix: str, names: Sequence[str], source: Any) -> Any:
        cols = [bp(f"{prefix}{n}", type_=table.c[n].type) for n in names]
        return insert(table).from_select(list(names), select(*cols).select_from(source))

    order_names = [n for n in _ORDER_COLUMNS if n != "worker_id"]
    order_cols = [bp(f"o_{n}", type_=o.c[n].type) for n in order_names]
    written = (
        insert(o)
        .from_select([*order_names, "worker_id"], select(*order_cols, held.c.worker_id))
        .returning(o.c.id, o.c.worker_id)
        .cte("written")
    )
    side = [bound(e, "e_", event_names, written).cte("event")]
    side += [
        bound(b, f"b{i}_", names, written).cte(f"outbox{i}") for i, names in enumerate(outbox_names)
    ]
    if key_names is not None:
        side.append(bound(k, "k_", key_names, written).cte("idempotency"))
    return (
        select(pick.c.w, written.c.worker_id)
        .select_from(pick.outerjoin(written, true()))
        .add_cte(*side)
    )


def order_store(engine: AsyncEngine) -> OrderStore:
    """The adapter for ``engine``'s database: the one place that asks which it is."""
    if engine.dialect.name == "postgresql":
        return PostgresOrderStore(engine)
    return SqliteOrderStore()


__all__ = [
    "BookedVisit",
    "DaysQuery",
    "FreeDays",
    "Hold",
    "OrderStore",
    "PostgresOrderStore",
    "SqliteOrderStore",
    "is_slot_conflict",
    "order_store",
]
