"""Customer tracking: who may watch an order, the smoothed ETA per order, broker messages.

No FastAPI here. Pings arrive through the worker flow (api.workers.service), which
calls ``on_worker_position``; the ETA tracker's frozen ``EtaState`` is kept per order
in ``order_tracking`` so any API process can continue it. Messages go out on the
broker channel ``order:{id}`` (at-most-once pub/sub: a lost position is superseded
by the next). Positions are WGS-84 inside; ``for_client`` converts for GCJ-02 clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote

import structlog
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import Role, User
from api.core.broker import Broker
from api.core.errors import Forbidden, NotFound
from api.core.geo_edge import CoordType, from_wgs84
from api.orders.models import Order
from api.orders.state import DispatchStatus, OrderStatus
from api.tenants.models import Worker
from api.tracking import trips
from api.tracking.models import OrderTrack
from api.tracking.trips import PingContext
from geo.eta import EtaState, EtaTracker
from geo.plausibility import Judgement
from geo.travel import HaversineTravelModel

_log = structlog.get_logger("api.tracking")

#: Sub-states in which the worker is on the way and the position is shared.
SHARING = trips.SHARING
#: Main states in which an order can be watched at all.
ACTIVE = (OrderStatus.PENDING_SERVICE.value, OrderStatus.IN_SERVICE.value)


class TrackingNotAllowed(Forbidden):
    """Only the order's customer, its worker and its enterprise's staff may watch it."""

    code = "tracking_forbidden"
    message = "You cannot follow this order."


class TrackingEnded(NotFound):
    """The order is not active (not yet dispatched, finished or cancelled)."""

    status_code = 410
    code = "tracking_ended"
    message = "This order is not being tracked any more."


def channel(order_id: int) -> str:
    """The broker channel of an order's live updates."""
    return f"order:{order_id}"


@cache
def travel_model() -> HaversineTravelModel:
    """The travel model behind live ETAs (one per process)."""
    return HaversineTravelModel()


class TrackWriter:
    """Writes the tracker state and last position of orders behind the live path.

    ``on_worker_position`` publishes first and hands the row here; one flush a
    ``interval_s`` writes every order's newest row in one transaction (an executemany
    UPDATE), instead of a write transaction per ping that every other ping would queue
    behind (SQLite has one writer). A flush writes only orders still sharing a position,
    so a late flush never brings back a position that ``forget_position`` cleared. Rows
    not flushed yet are served from here (``pending``) to this process's next ping and
    snapshot; another process may read the database up to ``interval_s`` behind, and a
    crash loses at most that much — the next ping (seconds later) supersedes it.
    """

    def __init__(self, maker: async_sessionmaker[AsyncSession], *, interval_s: float = 0.2) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._maker = maker
        self.interval_s = interval_s
        self._rows: dict[int, dict[str, Any]] = {}
        self._flush: asyncio.Task[None] | None = None
        self.flushed = 0

    def pending(self, order_id: int) -> dict[str, Any] | None:
        """The row of ``order_id`` waiting to be written, if any."""
        return self._rows.get(order_id)

    def put(self, row: dict[str, Any]) -> None:
        """Queue ``row`` (``order_id`` + OrderTrack columns); a newer row of an order wins."""
        self._rows[row["order_id"]] = row
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.interval_s)
        try:
            await self.flush()
        except Exception as exc:  # a lost batch is superseded by the next pings; say so
            _log.warning("track_writer_flush_failed", error=type(exc).__name__, detail=str(exc))

    async def flush(self) -> int:
        """Write every queued row now; returns how many were written."""
        rows, self._rows = self._rows, {}
        if not rows:
            return 0
        sharing = (
            select(Order.id)
            .where(
                Order.id == OrderTrack.order_id,
                Order.status == OrderStatus.PENDING_SERVICE.value,
                # OR, not IN: an expanding IN list cannot go into an executemany.
                or_(*(Order.dispatch_status == s for s in SHARING)),
            )
            .exists()
        )
        stmt = (
            update(OrderTrack)
            .where(
                OrderTrack.order_id == bindparam("b_order_id"),
                sharing,
                # Several processes write behind: an older fix never overwrites a newer one.
                or_(OrderTrack.last_ts.is_(None), OrderTrack.last_ts <= bindparam("b_last_ts")),
            )
            .values(
                eta_state=bindparam("b_eta_state"),
                last_lat=bindparam("b_last_lat"),
                last_lng=bindparam("b_last_lng"),
                last_ts=bindparam("b_last_ts"),
                updated_at=bindparam("b_updated_at"),
            )
        )
        params = [{f"b_{k}": v for k, v in r.items()} for r in rows.values()]
        async with self._maker() as session:
            await (await session.connection()).execute(stmt, params)
            await session.commit()
        self.flushed += len(params)
        return len(params)

    async def aclose(self) -> None:
        """Write what is queued and stop."""
        if self._flush is not None and not self._flush.done():
            self._flush.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush
        await self.flush()


#: EtaState's fields: its plain numbers (and a tuple of tuples) make up its JSON form.
_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(EtaState))


def _state_to_json(s: EtaState) -> dict[str, Any]:
    # ``dataclasses.asdict`` deep-copies field by field: ~10x the cost, once per ping.
    return {name: getattr(s, name) for name in _STATE_FIELDS}


def _state_from_json(data: dict[str, Any]) -> EtaState:
    values = dict(data)
    values["pending_jumps"] = tuple(tuple(p) for p in values.get("pending_jumps", ()))
    return EtaState(**values)


async def _worker_id_of(session: AsyncSession, user: User) -> int | None:
    return await session.scalar(select(Worker.id).where(Worker.user_id == user.id))


def is_sharing(order: Order) -> bool:
    """Whether the worker is on the way, so the live position is published."""
    return order.status == OrderStatus.PENDING_SERVICE.value and order.dispatch_status in SHARING


def is_active(order: Order) -> bool:
    """Whether the order is being served now (a worker committed, not finished)."""
    return is_active_status(order.status, order.dispatch_status)


def is_active_status(status: str, dispatch_status: str | None) -> bool:
    """``is_active`` from the two state columns alone."""
    if status == OrderStatus.IN_SERVICE.value:
        return True
    return status == OrderStatus.PENDING_SERVICE.value and dispatch_status in (
        DispatchStatus.ACCEPTED.value,
        DispatchStatus.EN_ROUTE.value,
        DispatchStatus.ARRIVED.value,
    )


async def authorize(session: AsyncSession, user: User, order_id: int) -> Order:
    """The order if ``user`` may watch it now: its customer, its worker, its enterprise's staff.

    Anyone else gets TrackingNotAllowed (also for unknown orders: we do not say which);
    an inactive order gets TrackingEnded.
    """
    order = await session.get(Order, order_id)
    if order is None:
        raise TrackingNotAllowed()
    role = Role(user.role)
    if role is Role.CUSTOMER:
        ok = order.customer_id == user.id
    elif role is Role.STAFF:
        ok = user.enterprise_id is not None and order.enterprise_id == user.enterprise_id
    elif role is Role.WORKER:
        ok = order.worker_id is not None and order.worker_id == await _worker_id_of(session, user)
    else:
        ok = False
    if not ok:
        raise TrackingNotAllowed()
    if not is_active(order):
        raise TrackingEnded()
    return order


def _position(
    order_id: int,
    lat: float,
    lng: float,
    ts: float | None,
    eta: dict[str, Any] | None,
    now: float,
    stale_after_s: float,
) -> dict[str, Any]:
    eta = eta or {}
    age = None if ts is None else max(0.0, round(now - ts, 1))
    return {
        "type": "position",
        "order_id": order_id,
        "lat": lat,
        "lng": lng,
        "ts": ts,
        "age_s": age,
        "stale": age is None or age > stale_after_s,
        "eta_s": eta.get("shown_eta_s"),
        "distance_m": eta.get("distance_m"),
        "arrived": bool(eta.get("arrived", False)),
        "coord_type": CoordType.WGS84.value,
    }


def stale_message(order_id: int, ts: float, now: float) -> dict[str, Any]:
    """The last position shown is older than the stale limit: no longer live."""
    return {"type": "stale", "order_id": order_id, "ts": ts, "age_s": round(now - ts, 1)}


def position_message(
    order: Order, track: OrderTrack, now: float, stale_after_s: float
) -> dict[str, Any] | None:
    """The last known position + ETA of an active order (None when nothing to show)."""
    if not is_active(order) or track.last_lat is None or track.last_lng is None:
        return None
    return _position(
        order.id, track.last_lat, track.last_lng, track.last_ts, track.eta_state, now,
        stale_after_s,
    )  # fmt: skip


def status_message(order: Order) -> dict[str, Any]:
    """A status change of an order."""
    return {
        "type": "status",
        "order_id": order.id,
        "status": order.status,
        "dispatch_status": order.dispatch_status,
        "final": order.status in (OrderStatus.COMPLETED.value, OrderStatus.CANCELLED.value),
        "coord_type": CoordType.WGS84.value,
    }


def for_client(message: dict[str, Any], coord_type: CoordType) -> dict[str, Any]:
    """``message`` with lat/lng in the client's coordinate system (WGS-84 inside)."""
    if message.get("type") != "position" or coord_type is CoordType.WGS84:
        return {**message, "coord_type": CoordType.WGS84.value}
    lat, lng = from_wgs84(float(message["lat"]), float(message["lng"]), coord_type)
    return {**message, "lat": lat, "lng": lng, "coord_type": coord_type.value}


async def publish_status(broker: Broker, order: Order) -> None:
    """Tell watchers that the order's status changed."""
    await broker.publish(channel(order.id), status_message(order))


async def forget_position(track: OrderTrack, now: datetime) -> None:
    """Stop serving the worker's position for this order (service started or finished)."""
    track.last_lat = None
    track.last_lng = None
    track.last_ts = None
    track.eta_state = None
    track.updated_at = now


async def on_worker_position(
    broker: Broker,
    ctx: PingContext,
    lat: float,
    lng: float,
    ts: float,
    accuracy_m: float | None,
    *,
    now: datetime,
    writer: TrackWriter,
    reanchored: bool = False,
    stale_after_s: float,
) -> int:
    """Update the ETA of every order the worker is travelling to and publish it; returns how many.

    The fix was judged by ingest against the worker's track (``geo.plausibility``): the
    tracker takes it as judged (``reanchored``: the track gave up its old position for
    it), so the position watchers see is the one arrival checks.

    ``ctx`` (api.tracking.trips) says which orders those are and holds the tracker's newest
    state in this process. ``lat``/``lng`` WGS-84 degrees, ``ts`` epoch seconds of the
    ping. Watchers get the position before the database does: the tracker state and last
    position are written behind, batched, by ``writer`` (a position lost to a crash in
    between is superseded by the next ping).
    """
    model = travel_model()
    for trip in ctx.trips:
        order_id = trip.order_id
        eta_state = ctx.eta.get(order_id)
        if eta_state is None:
            tracker = EtaTracker.start(
                model, lat, lng, trip.dest_lat, trip.dest_lng, ts, accuracy_m=accuracy_m,
                mode=ctx.mode,
            )  # fmt: skip
            update = tracker.current()
        else:
            tracker = EtaTracker(
                model, trip.dest_lat, trip.dest_lng, _state_from_json(eta_state), mode=ctx.mode
            )
            update = tracker.update(
                lat, lng, ts, accuracy_m, judged=Judgement(True, reanchored, ())
            )
        s = tracker.state
        state_json = _state_to_json(s)
        ctx.eta[order_id] = state_json
        # Encoded once here, in the WGS-84 client form: watchers forward it as it is.
        message = _position(
            order_id, s.lat, s.lng, s.t, state_json, now.timestamp(), stale_after_s
        )
        if update.reanchored:
            message["reanchored"] = True
        await broker.publish(channel(order_id), message)
        writer.put(
            {
                "order_id": order_id,
                "eta_state": state_json,
                "last_lat": s.lat,
                "last_lng": s.lng,
                "last_ts": s.t,
                "updated_at": now,
            }
        )
    return len(ctx.trips)


async def snapshot(
    session: AsyncSession,
    order: Order,
    writer: TrackWriter | None = None,
    *,
    now: float,
    stale_after_s: float,
) -> list[dict[str, Any]]:
    """What a new subscriber sees first: the status and, if shared, the last position
    with its age (``stale`` beyond ``stale_after_s``).

    A position still queued in this process's ``writer`` is newer than the database's.
    """
    out = [status_message(order)]
    queued = writer.pending(order.id) if writer is not None else None
    if queued is not None and is_sharing(order):
        row = queued
        position = _position(
            order.id, row["last_lat"], row["last_lng"], row["last_ts"], row["eta_state"],
            now, stale_after_s,
        )  # fmt: skip
        out.append(position)
        return out
    track = await session.get(OrderTrack, order.id)
    if track is not None:
        msg = position_message(order, track, now, stale_after_s)
        if msg is not None:
            out.append(msg)
    return out


def navigation(order: Order, name: str) -> dict[str, Any]:
    """Navigation to the order's address: ``wx.openLocation`` params and an Amap URI (GCJ-02)."""
    lat, lng = from_wgs84(order.lat, order.lng, CoordType.GCJ02)
    address = str((order.address_snapshot or {}).get("detail", ""))
    return {
        "wx_open_location": {
            "latitude": round(lat, 6),
            "longitude": round(lng, 6),
            "name": name,
            "address": address,
            "scale": 16,
        },
        "amap_uri": (
            f"https://uri.amap.com/navigation?to={lng:.6f},{lat:.6f},{quote(name)}"
            "&mode=ride&coordinate=gaode&callnative=1"
        ),
    }


async def still_active(maker: async_sessionmaker[AsyncSession], order_id: int) -> bool:
    """Whether the order is still in a state that may be tracked (two columns, no ORM load)."""
    async with maker() as session:
        row = (
            await session.execute(
                select(Order.status, Order.dispatch_status).where(Order.id == order_id)
            )
        ).first()
        return row is not None and is_active_status(row[0], row[1])


async def reread(maker: async_sessionmaker[AsyncSession], order_id: int) -> Order | None:
    """The order as stored now, in a session of its own."""
    async with maker() as session:
        return await session.get(Order, order_id)


async def ensure_track(session: AsyncSession, order_id: int, now: datetime) -> None:
    """Give an order that just got its worker a tracking row with a fresh service code."""
    if await session.get(OrderTrack, order_id) is None:
        session.add(
            OrderTrack(
                order_id=order_id,
                service_code=f"{secrets.randbelow(10**6):06d}",
                code_failures=0,
                photos=[],
                updated_at=now,
            )
        )
