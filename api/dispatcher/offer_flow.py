"""A worker's answers to offers (accept, decline) and the grab pool (list, claim).

Each answer rebuilds the order's offer desk from the tables (``desk_store.load_desk``),
asks the core (``OfferDesk.accept`` / ``decline`` / ``claim``; ``GrabPool.visible_order_ids``)
and writes what it decided. The timeout, the exclusions, re-queueing or escalating after
a decline, who may claim a pool order: all of it is ``dispatch.offers``'s. The database
still settles races between processes: the winning row moves with a conditional
``UPDATE ... WHERE state = 'offered'|'open'``, so two answers can never both win.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from api.auth.models import User
from api.catalog.models import Service
from api.core.errors import Conflict
from api.core.live import LiveBackends, WorkerState
from api.core.settings import Settings
from api.dispatcher.board import offer_policy, stored_settings
from api.dispatcher.desk_store import Written, cost_line, epoch, load_desk, write_events
from api.dispatcher.inputs import fleet_inputs, order_inputs
from api.dispatcher.models import DispatchDecision, DispatchOffer, OfferMode, OfferState
from api.dispatcher.positions import distance_m, worker_position
from api.orders import state
from api.orders.models import Order
from api.orders.service import assign_worker, lock_order
from api.orders.state import OrderEventType
from api.tenants.models import Worker
from api.tracking import service as tracking
from dispatch.assign import match
from dispatch.offers import Claimed, DeclineRejected, OfferAccepted, OfferDesk
from dispatch.rounds import eligible_fleet, take_workers


class OfferGone(Conflict):
    """The offer was already answered, expired, withdrawn or claimed by someone else."""

    code = "offer_gone"
    message = "This offer is no longer available."


@dataclass(frozen=True)
class OfferView:
    """An offer with its order summary and countdown (seconds left)."""

    offer: DispatchOffer
    order: Order
    seconds_left: int
    distance_m: float | None


async def _offers_with_orders(
    session: AsyncSession,
    *where: ColumnElement[bool],
    order_by: tuple[InstrumentedAttribute[Any], ...] = (),
) -> Sequence[Row[DispatchOffer, Order]]:
    """The offers that satisfy ``where``, each with its order, in ``order_by`` order."""
    query = (
        select(DispatchOffer, Order)
        .join(Order, Order.id == DispatchOffer.order_id)
        .where(*where)
        .order_by(*order_by)
    )
    return (await session.execute(query)).all()


async def _views(
    live: LiveBackends,
    worker: Worker,
    rows: Sequence[tuple[DispatchOffer, Order]],
    now: datetime,
) -> list[OfferView]:
    """``rows`` as the worker sees them: seconds left, distance from its live position."""
    here = await worker_position(live, worker.id)
    return [
        OfferView(
            offer,
            order,
            max(0, math.ceil((offer.expires_at - now).total_seconds())),
            distance_m(here[0], here[1], order.lat, order.lng) if here else None,
        )
        for offer, order in rows
    ]


async def current_offers(
    session: AsyncSession, live: LiveBackends, worker: Worker, *, now: datetime
) -> list[OfferView]:
    """The worker's open auto offers, soonest to expire first."""
    rows = await _offers_with_orders(
        session,
        DispatchOffer.worker_id == worker.id,
        DispatchOffer.state == OfferState.OFFERED.value,
        DispatchOffer.expires_at > now,
        order_by=(DispatchOffer.expires_at, DispatchOffer.id),
    )
    return await _views(live, worker, rows, now)


async def commit_worker(
    session: AsyncSession, order: Order, worker: Worker, actor: User, now: datetime
) -> None:
    """Make ``worker`` the order's worker (orders.assign_worker), plus its tracking row."""
    await assign_worker(session, order, worker.id, actor_id=actor.id, now=now)
    await tracking.ensure_track(session, order.id, now)


async def _desk(
    session: AsyncSession,
    settings: Settings,
    orders: Sequence[Order],
    worker_ids: Sequence[int],
    now: datetime,
) -> OfferDesk:
    own = (
        (await stored_settings(session, [orders[0].enterprise_id])).get(orders[0].enterprise_id)
        if orders
        else None
    )
    return await load_desk(session, offer_policy(settings, own), orders, worker_ids, now)


async def _take_offer(
    session: AsyncSession,
    offer_id: int,
    new_state: OfferState,
    *,
    where: Sequence[Any],
    values: dict[str, Any],
) -> None:
    result = await session.execute(
        update(DispatchOffer)
        .where(DispatchOffer.id == offer_id, *where)
        .values(state=new_state.value, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise OfferGone()


async def _own_offer(
    session: AsyncSession, worker: Worker, offer_id: int, mode: OfferMode
) -> DispatchOffer:
    offer = await session.get(DispatchOffer, offer_id)
    if offer is None or offer.mode != mode.value:
        raise OfferGone()
    if mode is OfferMode.AUTO and offer.worker_id != worker.id:
        raise OfferGone()
    return offer


async def decline_offer(
    session: AsyncSession,
    worker: Worker,
    offer_id: int,
    reason: str,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Decline an auto offer: the desk excludes the worker and re-queues or escalates."""
    offer = await _own_offer(session, worker, offer_id, OfferMode.AUTO)
    order = await lock_order(session, offer.order_id)
    desk = await _desk(session, settings, [order], [worker.id], now)
    events = desk.decline(order.id, worker.id, epoch(now), reason[:64] or "declined")
    if isinstance(events[0], DeclineRejected):
        raise OfferGone()
    if len(events) == 1:
        return  # a repeated decline: already recorded
    await _take_offer(
        session,
        offer_id,
        OfferState.DECLINED,
        where=[DispatchOffer.state == OfferState.OFFERED.value],
        values={"decided_at": now, "decline_reason": reason[:64]},
    )
    where = Written(offer.region, offer.fencing_token)
    await write_events(session, events[1:], {order.id: order}, where, now)
    await session.commit()


async def grab_pool(
    session: AsyncSession,
    live: LiveBackends,
    worker: Worker,
    settings: Settings,
    *,
    now: datetime,
) -> list[OfferView]:
    """The open grab-pool orders shown to this worker (the core chose whom), nearest first."""
    rows = await _offers_with_orders(
        session,
        DispatchOffer.mode == OfferMode.GRAB.value,
        DispatchOffer.state == OfferState.OPEN.value,
        Order.enterprise_id == worker.enterprise_id,
    )
    if not rows:
        return []
    desk = await _desk(session, settings, [order for _, order in rows], [], now)
    visible = set(desk.pool.visible_order_ids(worker.id, epoch(now)).tolist())
    out = await _views(live, worker, [(o, order) for o, order in rows if order.id in visible], now)
    out.sort(key=lambda v: (v.distance_m or 0.0, v.offer.id))
    return out


async def take_offer(
    session: AsyncSession,
    live: LiveBackends,
    worker: Worker,
    actor: User,
    offer_id: int,
    mode: OfferMode,
    *,
    settings: Settings,
    now: datetime,
) -> Order:
    """Accept an auto offer (``mode`` auto) or claim a grab-pool order (``mode`` grab).

    The desk decides (the offer still outstanding and theirs, or the worker eligible and
    the first valid claim); OfferGone (409) otherwise. A claim stores its decision.
    """
    offer = await _own_offer(session, worker, offer_id, mode)
    order = await lock_order(session, offer.order_id)
    if order.enterprise_id != worker.enterprise_id:
        raise OfferGone()
    desk = await _desk(session, settings, [order], [worker.id], now)
    moved: tuple[OfferState, OfferState, dict[str, Any]]
    if mode is OfferMode.AUTO:
        won = isinstance(desk.accept(order.id, worker.id, epoch(now)), OfferAccepted)
        moved = (OfferState.OFFERED, OfferState.ACCEPTED, {"decided_at": now})
    else:
        won = isinstance(desk.claim(order.id, worker.id, epoch(now)), Claimed)
        moved = (OfferState.OPEN, OfferState.CLAIMED, {"decided_at": now, "worker_id": worker.id})
    if not won:
        raise OfferGone()
    await _take_offer(
        session, offer_id, moved[1], where=[DispatchOffer.state == moved[0].value], values=moved[2]
    )
    if not state.allowed(order, OrderEventType.ACCEPTED):
        raise OfferGone()
    if mode is OfferMode.GRAB:
        session.add(await _claim_decision(session, live, settings, order, worker, offer, now))
    await commit_worker(session, order, worker, actor, now)
    await session.commit()
    await live.state.set_worker_state(worker.id, WorkerState.BUSY)
    await tracking.publish_status(live.broker, order)
    return order


async def _claim_decision(
    session: AsyncSession,
    live: LiveBackends,
    settings: Settings,
    order: Order,
    worker: Worker,
    offer: DispatchOffer,
    now: datetime,
) -> DispatchDecision:
    """The claim's decision row: the cost line the core prices this pair at."""
    own = (await stored_settings(session, [order.enterprise_id])).get(order.enterprise_id)
    service = await session.get(Service, order.service_id)
    services = {} if service is None else {service.id: service}
    snap = await live.state.snapshot()
    inputs = await fleet_inputs(
        session, live, settings, worker.enterprise_id, snap, set(), services.values(), now
    )
    line = None
    if worker.id in inputs.worker_ids and service is not None:
        batch = await order_inputs(session, settings, [order], services, inputs.catalog, now)
        fleet = inputs.fleet
        row = np.flatnonzero(fleet.ids == worker.id)
        one = eligible_fleet(OfferDesk(), take_workers(fleet, row), epoch(now))
        if len(one):
            result = match(batch, one, weights=own.weights if own else None, now=epoch(now))
            line = result.explain(order.id).chosen
    return DispatchDecision(
        order_id=order.id,
        worker_id=worker.id,
        region=offer.region,
        mode=OfferMode.GRAB.value,
        total_cost=None if line is None else line.total,
        cost=cost_line(line),
        alternatives=[],
        reason="claimed",
        fencing_token=offer.fencing_token,
        created_at=now,
    )


async def withdraw_offers(
    session: AsyncSession, settings: Settings, order: Order, now: datetime
) -> None:
    """The order left dispatch (staff took it): the desk withdraws its live offer or pool
    entry, written in the caller's transaction."""
    desk = await _desk(session, settings, [order], [], now)
    if order.id in desk.book or order.id in desk.pool:
        events = desk.cancel(order.id, epoch(now))
        await write_events(session, events, {order.id: order}, Written(0, 0), now)
