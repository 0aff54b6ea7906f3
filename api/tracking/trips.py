"""What a pinging worker travels to, remembered per process: the location ping's fast path.

A ping needs the caller's worker (are the user and the worker still active?) and the
orders the worker is on the way to (destination, the ETA tracker's last state). Reading
those per ping took two queries: most of a ping's CPU, here and in PostgreSQL. This cache
keeps them per user until something that could change them is committed:

* the committing process drops the entries itself at commit (the session hooks below see
  every ORM flush: an order's status, sub-status, worker or address; a worker's or user's
  activity) — on SQLite, the embedded single-process default, that is the whole story;
* PostgreSQL triggers (migration 0006) NOTIFY ``daojia_trips`` with the worker or user
  concerned, whichever process or statement wrote it, and every API process LISTENs on
  one connection (``TripListener``). While that connection is down nothing is cached
  (every ping reads the database) and what was cached is dropped.

A load that raced an invalidation is not stored (``ticket``), and entries expire after
``ttl_s`` as a backstop. Only active workers are cached; refusals always read.

The ETA state kept here is this process's newest. With several API processes a worker's
pings may alternate between them; each continues from its own last state, so a fix
handled by the other counts as a gap, which the tracker is made for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, event, inspect, join, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from api.auth.models import User
from api.orders.models import Order
from api.orders.state import DispatchStatus, OrderStatus
from api.tenants.models import Worker
from api.tracking.models import OrderTrack

_log = structlog.get_logger("api.tracking.trips")

#: The NOTIFY channel of migration 0006's triggers; payloads ``w:<worker id>[,<id>]``
#: or ``u:<user id>``.
CHANNEL = "daojia_trips"
#: Sub-states in which the worker is on the way (the position is shared).
SHARING = (DispatchStatus.ACCEPTED.value, DispatchStatus.EN_ROUTE.value)
#: Order columns whose change may start or end a trip, or move its destination.
_ORDER_KEYS = ("status", "dispatch_status", "worker_id", "lat", "lng")
_DIRTY = "daojia_trip_dirty"


@dataclass(frozen=True, slots=True)
class Trip:
    """An order the worker is on the way to (WGS-84 destination)."""

    order_id: int
    dest_lat: float
    dest_lng: float


@dataclass(slots=True)
class PingContext:
    """An active worker and the orders it travels to, with their newest ETA state here."""

    user_id: int
    worker_id: int
    trips: tuple[Trip, ...]
    #: order id -> the tracker's newest ``EtaState`` (JSON) known to this process.
    eta: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    expires: float = 0.0
    #: the worker's transport mode: what ``geo.plausibility`` judges the fixes by
    mode: str = "ebike"


class TripCache:
    """Per-process ``PingContext`` per user id, invalidated by worker, user or wholesale."""

    def __init__(
        self,
        *,
        ttl_s: float = 300.0,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.ttl_s = ttl_s
        self._clock = clock
        self._enabled = enabled
        self._entries: dict[int, PingContext] = {}
        self._by_worker: dict[int, int] = {}  # worker id -> user id
        # Invalidation sequence: a load may be stored only if nothing it read was
        # invalidated after it began (its ticket).
        self._seq = 0
        self._all_at = 0
        self._worker_at: dict[int, int] = {}
        self._user_at: dict[int, int] = {}
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        """Whether entries are kept (off while invalidations cannot be heard)."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Turn caching on or off; either way what was cached is dropped."""
        self._enabled = enabled
        self.invalidate_all()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_id: int) -> PingContext | None:
        """The cached context of ``user_id``, if any and fresh."""
        ctx = self._entries.get(user_id)
        if ctx is None or ctx.expires <= self._clock():
            self.misses += 1
            return None
        self.hits += 1
        return ctx

    def ticket(self) -> int:
        """Taken before a load; ``store`` refuses the load if anything moved since."""
        return self._seq

    def store(self, ctx: PingContext, ticket: int) -> bool:
        """Keep ``ctx`` unless caching is off or its worker/user changed after ``ticket``."""
        if (
            not self._enabled
            or self._all_at > ticket
            or self._worker_at.get(ctx.worker_id, 0) > ticket
            or self._user_at.get(ctx.user_id, 0) > ticket
        ):
            return False
        ctx.expires = self._clock() + self.ttl_s
        self._entries[ctx.user_id] = ctx
        self._by_worker[ctx.worker_id] = ctx.user_id
        if len(self._entries) % 1024 == 0:
            self._sweep()
        return True

    def invalidate_workers(self, worker_ids: Iterable[int]) -> None:
        """Forget the contexts of these workers."""
        for w in worker_ids:
            self._seq += 1
            self._worker_at[w] = self._seq
            user_id = self._by_worker.pop(w, None)
            if user_id is not None:
                self._entries.pop(user_id, None)

    def invalidate_users(self, user_ids: Iterable[int]) -> None:
        """Forget the contexts of these users."""
        for u in user_ids:
            self._seq += 1
            self._user_at[u] = self._seq
            ctx = self._entries.pop(u, None)
            if ctx is not None:
                self._by_worker.pop(ctx.worker_id, None)

    def invalidate_all(self) -> None:
        """Forget everything."""
        self._seq += 1
        self._all_at = self._seq
        self._entries.clear()
        self._by_worker.clear()
        # Older per-id marks are all below _all_at now: they decide nothing any more.
        self._worker_at.clear()
        self._user_at.clear()

    def apply_notification(self, payload: str) -> None:
        """Apply one ``daojia_trips`` payload; an unreadable one drops everything."""
        kind, _, ids = payload.partition(":")
        try:
            values = [int(x) for x in ids.split(",") if x]
        except ValueError:
            values = []
            kind = ""
        if kind == "w":
            self.invalidate_workers(values)
        elif kind == "u":
            self.invalidate_users(values)
        else:
            self.invalidate_all()

    def _sweep(self) -> None:
        now = self._clock()
        for user_id, ctx in list(self._entries.items()):
            if ctx.expires <= now:
                del self._entries[user_id]
                self._by_worker.pop(ctx.worker_id, None)


# ------------------------------------------------------------------ loading

_trip = join(Order, OrderTrack, OrderTrack.order_id == Order.id)
_LOAD = (
    select(User.is_active, Worker.id, Worker.is_active, Order.id, Order.lat, Order.lng)
    .add_columns(OrderTrack.eta_state, Worker.transport_mode)
    .select_from(User)
    .outerjoin(Worker, Worker.user_id == User.id)
    .outerjoin(
        _trip,
        and_(
            Order.worker_id == Worker.id,
            Order.status == OrderStatus.PENDING_SERVICE.value,
            Order.dispatch_status.in_(SHARING),
        ),
    )
    .where(User.id == bindparam("uid"))
)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What one read found for a user: the context, or why there is none."""

    user_active: bool
    worker_active: bool
    ctx: PingContext | None


async def load(session: AsyncSession, user_id: int) -> Loaded:
    """Read the user's worker and trips (one query); ``ctx`` only for an active worker."""
    rows = (await (await session.connection()).execute(_LOAD, {"uid": user_id})).all()
    if not rows or not rows[0][0]:
        return Loaded(False, False, None)
    worker_id, worker_active = rows[0][1], rows[0][2]
    if worker_id is None or not worker_active:
        return Loaded(True, False, None)
    trips = tuple(Trip(int(r[3]), float(r[4]), float(r[5])) for r in rows if r[3] is not None)
    eta = {int(r[3]): r[6] for r in rows if r[3] is not None}
    mode = str(rows[0][7] or "ebike")
    return Loaded(True, True, PingContext(user_id, int(worker_id), trips, eta, mode=mode))


# ------------------------------------------------------------------ in-process hooks

#: The cache each engine's sessions invalidate at commit.
_caches: weakref.WeakKeyDictionary[Engine, TripCache] = weakref.WeakKeyDictionary()


def attach(engine: AsyncEngine, cache: TripCache) -> None:
    """Have commits through ``engine``'s sessions invalidate ``cache``."""
    _caches[engine.sync_engine] = cache


def _cache_of(session: Session) -> TripCache | None:
    bind = session.bind
    if isinstance(bind, Engine):
        return _caches.get(bind)
    if bind is not None:  # a Connection
        return _caches.get(bind.engine)
    return None


def _changed(obj: object, keys: Iterable[str]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[k].history.has_changes() for k in keys)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context: UOWTransaction) -> None:
    if _cache_of(session) is None:
        return
    dirty: set[tuple[str, int]] = session.info.setdefault(_DIRTY, set())
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Order):
            if obj in session.dirty and not _changed(obj, _ORDER_KEYS):
                continue
            history = inspect(obj).attrs["worker_id"].history
            for w in chain([obj.worker_id], history.deleted or ()):
                if w is not None:
                    dirty.add(("w", int(w)))
        elif isinstance(obj, Worker):
            if obj in session.new or _changed(obj, ("is_active", "user_id", "transport_mode")):
                dirty.add(("w", int(obj.id)))
        elif isinstance(obj, User) and obj in session.dirty and _changed(obj, ("is_active",)):
            dirty.add(("u", int(obj.id)))


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or _cache_of(state.session) is None:
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in ("orders", "workers", "users"):
        state.session.info.setdefault(_DIRTY, set()).add(("*", 0))


@event.listens_for(Session, "after_commit")
def _commit(session: Session) -> None:
    dirty: set[tuple[str, int]] | None = session.info.pop(_DIRTY, None)
    cache = _cache_of(session)
    if not dirty or cache is None:
        return
    if ("*", 0) in dirty:
        cache.invalidate_all()
        return
    cache.invalidate_workers(i for k, i in dirty if k == "w")
    cache.invalidate_users(i for k, i in dirty if k == "u")


@event.listens_for(Session, "after_rollback")
def _rollback(session: Session) -> None:
    session.info.pop(_DIRTY, None)


# ------------------------------------------------------------------ PostgreSQL LISTEN


def asyncpg_dsn(url: URL) -> str:
    """The plain ``postgresql://`` DSN of a SQLAlchemy URL (for a raw asyncpg connection)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class TripListener:
    """Keeps ``cache`` enabled exactly while a LISTEN ``daojia_trips`` connection is up."""

    def __init__(self, dsn: str, cache: TripCache, *, retry_s: float = 1.0) -> None:
        self._dsn = dsn
        self._cache = cache
        self._retry_s = retry_s
        self.connected = asyncio.Event()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._cache.apply_notification(payload)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a lost connection."""
        import asyncpg

        while True:
            conn = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5.0)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                # From here on every commit is heard: caching may start (afresh).
                self._cache.set_enabled(True)
                self.connected.set()
                _log.info("trip_listener_up")
                await lost.wait()
                _log.warning("trip_listener_lost")
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                _log.warning("trip_listener_failed", error=type(exc).__name__, detail=str(exc))
            finally:
                self._cache.set_enabled(False)
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2.0))
            await asyncio.sleep(self._retry_s)
