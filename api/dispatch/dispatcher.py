"""The embedded dispatcher: every tick, match awaiting orders to online workers and offer them.

``Dispatcher.run_once(now)`` is one tick (tests drive it with their own clock):

1. Auto offers past ``expires_at`` become ``expired``; grab-pool rows past their window
   ``lapsed`` (those orders fall back to auto-assign).
2. Orders in 待服务 awaiting a worker (sub-state awaiting_dispatch, or offered with no
   live offer left after a decline/timeout) whose slot starts within the horizon.
   With a grab window configured, an order that never was in the pool opens there first.
3. Per region (H3 res-5 parent) a ``dispatch.assign.match`` over the idle online workers
   (LiveState positions + DB skills/enterprise/rating), each order excluding every
   worker that declined it or let its offer expire. The solver runs off the event loop.
4. Each assignment becomes an auto offer (accept timeout) and a ``dispatch_decisions``
   row with the chosen cost line and the runner-ups from ``explain``.

Every written row carries ``fencing_token`` (0 here: one embedded dispatcher). The
multi-process mode takes a region lease (api/leases.py) per region and passes its token.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import numpy as np
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.catalog.models import Service
from api.db import utcnow
from api.dispatch.models import (
    LIVE_STATES,
    DispatchDecision,
    DispatchOffer,
    OfferMode,
    OfferState,
)
from api.dispatch.service import COMMITTED, lapse_offer, region_of
from api.enterprise.models import Enterprise, Worker
from api.enterprise.service import BadDispatchSettings, DispatchSettings, parse_dispatch_settings
from api.live import LiveBackends, WorkerState
from api.orders import state
from api.orders.models import Order, WorkerReservation
from api.orders.service import lock_order
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.settings import Settings
from dispatch.assign import Assignment, CostLine, match
from dispatch.model import Fleet, OrderBatch, SkillCatalog

log = structlog.get_logger("api.dispatch")


@dataclasses.dataclass(frozen=True)
class TickReport:
    """What one tick did (counts)."""

    expired: int = 0
    lapsed: int = 0
    waiting: int = 0
    offered: int = 0
    opened: int = 0
    regions: int = 0


def _line(line: CostLine | None) -> dict[str, Any]:
    if line is None:
        return {}
    return {
        "worker_id": line.worker_id,
        "travel_s": round(line.travel_s, 1),
        "terms": {k: round(v, 2) for k, v in line.terms.items()},
        "total": round(line.total, 2),
        "assigned_to_order_id": line.assigned_to_order_id,
    }


class Dispatcher:
    """One embedded dispatcher over the app's database and live layer."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        live: LiveBackends,
        settings: Settings,
        *,
        fencing_token: int = 0,
    ) -> None:
        self.maker = maker
        self.live = live
        self.settings = settings
        self.fencing_token = fencing_token

    async def run(self, clock: Callable[[], datetime] = utcnow) -> None:
        """Tick forever every ``dispatch_tick_s`` (cancel the task to stop); errors are logged."""
        while True:
            try:
                await self.run_once(clock())
            except Exception as exc:  # one bad tick must not stop dispatching
                log.exception("dispatch_tick_failed", error=type(exc).__name__)
            await anyio.sleep(self.settings.dispatch_tick_s)

    async def run_once(self, now: datetime) -> TickReport:
        """One tick at ``now`` (UTC-aware); see the module docstring."""
        async with self.maker() as session:
            expired_orders = await self._close(session, OfferState.OFFERED, OfferState.EXPIRED, now)
            lapsed = len(await self._close(session, OfferState.OPEN, OfferState.LAPSED, now))
            for order_id in sorted(set(expired_orders)):
                await lapse_offer(session, order_id, now=now, reason="timeout")
            await session.commit()
            expired = len(expired_orders)
            orders = await self._waiting(session, now)
            opened = 0
            if self.settings.grab_window_s > 0:
                orders, opened = await self._open_grab(session, orders, now)
            if not orders:
                return TickReport(expired, lapsed, 0, 0, opened, 0)
            by_region: dict[int, list[Order]] = defaultdict(list)
            for order in orders:
                by_region[region_of(order.lat, order.lng)].append(order)
            offered = 0
            busy = await self._busy_workers(session)
            for region, region_orders in sorted(by_region.items()):
                offered += await self._dispatch_region(session, region, region_orders, busy, now)
            return TickReport(expired, lapsed, len(orders), offered, opened, len(by_region))

    async def _close(
        self, session: AsyncSession, live_state: OfferState, to: OfferState, now: datetime
    ) -> list[int]:
        """Close the live offers past their time; the order ids they were for."""
        rows = (
            await session.execute(
                select(DispatchOffer.id, DispatchOffer.order_id).where(
                    DispatchOffer.state == live_state.value, DispatchOffer.expires_at <= now
                )
            )
        ).all()
        if not rows:
            return []
        await session.execute(
            update(DispatchOffer)
            .where(
                DispatchOffer.id.in_([r[0] for r in rows]),
                DispatchOffer.state == live_state.value,
            )
            .values(state=to.value, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        return [int(r[1]) for r in rows]

    async def _waiting(self, session: AsyncSession, now: datetime) -> list[Order]:
        live_offer = (
            select(DispatchOffer.id)
            .where(DispatchOffer.order_id == Order.id, DispatchOffer.state.in_(LIVE_STATES))
            .exists()
        )
        horizon = now + timedelta(seconds=self.settings.dispatch_horizon_s)
        rows = await session.scalars(
            select(Order)
            .where(
                Order.status == OrderStatus.PENDING_SERVICE.value,
                Order.dispatch_status.in_(
                    (DispatchStatus.AWAITING_DISPATCH.value, DispatchStatus.OFFERED.value)
                ),
                Order.slot_start <= horizon,
                ~live_offer,
            )
            .order_by(Order.slot_start, Order.id)
            .limit(self.settings.dispatch_batch_max)
        )
        return list(rows)

    async def _open_grab(
        self, session: AsyncSession, orders: list[Order], now: datetime
    ) -> tuple[list[Order], int]:
        if not orders:
            return orders, 0
        pooled = set(
            await session.scalars(
                select(DispatchOffer.order_id).where(
                    DispatchOffer.order_id.in_([o.id for o in orders]),
                    DispatchOffer.mode == OfferMode.GRAB.value,
                )
            )
        )
        rest = []
        opened = 0
        for order in orders:
            if order.id in pooled:
                rest.append(order)
                continue
            session.add(
                DispatchOffer(
                    order_id=order.id,
                    worker_id=None,
                    mode=OfferMode.GRAB.value,
                    state=OfferState.OPEN.value,
                    region=region_of(order.lat, order.lng),
                    fencing_token=self.fencing_token,
                    offered_at=now,
                    expires_at=now + timedelta(seconds=self.settings.grab_window_s),
                )
            )
            opened += 1
        await session.commit()
        return rest, opened

    async def _tenant_settings(
        self, session: AsyncSession, enterprise_ids: set[int]
    ) -> dict[int, DispatchSettings]:
        """Stored per-enterprise dispatch settings (board); enterprises without any are absent."""
        rows = await session.execute(
            select(Enterprise.id, Enterprise.dispatch_settings).where(
                Enterprise.id.in_(enterprise_ids), Enterprise.dispatch_settings.is_not(None)
            )
        )
        out = {}
        for ent_id, raw in rows.all():
            try:
                out[int(ent_id)] = parse_dispatch_settings(raw)
            except BadDispatchSettings:  # stored rows were validated; never stop dispatching
                log.warning("dispatch_settings_invalid", enterprise_id=ent_id)
        return out

    def _accept_timeout_s(self, tenant: dict[int, DispatchSettings], order: Order) -> int:
        own = tenant.get(order.enterprise_id)
        return own.accept_timeout_s if own is not None else self.settings.offer_timeout_s

    async def _busy_workers(self, session: AsyncSession) -> set[int]:
        offered = await session.scalars(
            select(DispatchOffer.worker_id).where(
                DispatchOffer.state == OfferState.OFFERED.value,
                DispatchOffer.worker_id.is_not(None),
            )
        )
        committed = await session.scalars(
            select(Order.worker_id).where(
                Order.worker_id.is_not(None),
                (
                    (Order.status == OrderStatus.PENDING_SERVICE.value)
                    & Order.dispatch_status.in_(COMMITTED)
                )
                | (Order.status == OrderStatus.IN_SERVICE.value),
            )
        )
        return {int(w) for w in [*offered, *committed] if w is not None}

    async def _fleet(self, session: AsyncSession, busy: set[int]) -> tuple[Fleet, list[Worker]]:
        snap = await self.live.state.snapshot()
        online = snap.states == WorkerState.ONLINE.code
        ids = [int(w) for w in snap.worker_ids[online].tolist() if int(w) not in busy]
        workers = (
            list(
                await session.scalars(
                    select(Worker).where(Worker.id.in_(ids), Worker.is_active.is_(True))
                )
            )
            if ids
            else []
        )
        workers.sort(key=lambda w: w.id)
        pos = await self.live.state.get_positions([w.id for w in workers])
        return (
            Fleet.from_arrays(
                np.array([w.id for w in workers], dtype=np.int64),
                pos.lat,
                pos.lng,
                rating=np.clip(np.array([w.rating for w in workers], dtype=np.float64), 0, 5),
                enterprise_id=np.array([w.enterprise_id for w in workers], dtype=np.int64),
            ),
            workers,
        )

    async def _exclusions(self, session: AsyncSession, order_ids: list[int]) -> dict[int, set[int]]:
        rows = await session.execute(
            select(DispatchOffer.order_id, DispatchOffer.worker_id).where(
                DispatchOffer.order_id.in_(order_ids),
                DispatchOffer.mode == OfferMode.AUTO.value,
                DispatchOffer.state.in_((OfferState.DECLINED.value, OfferState.EXPIRED.value)),
            )
        )
        out: dict[int, set[int]] = defaultdict(set)
        for order_id, worker_id in rows:
            if worker_id is not None:
                out[int(order_id)].add(int(worker_id))
        return out

    async def _double_booked(
        self, session: AsyncSession, orders: list[Order], workers: list[Worker]
    ) -> dict[int, set[int]]:
        """Per order, the workers whose other live reservations overlap its held time."""
        own = {
            r.order_id: r
            for r in await session.scalars(
                select(WorkerReservation).where(
                    WorkerReservation.order_id.in_([o.id for o in orders])
                )
            )
        }
        if not own:
            return {}
        lo = min(r.starts_at for r in own.values())
        hi = max(r.ends_at for r in own.values())
        others = list(
            await session.scalars(
                select(WorkerReservation).where(
                    WorkerReservation.worker_id.in_([w.id for w in workers]),
                    WorkerReservation.status.in_(("held", "confirmed")),
                    WorkerReservation.starts_at < hi,
                    WorkerReservation.ends_at > lo,
                )
            )
        )
        out: dict[int, set[int]] = defaultdict(set)
        for order_id, mine in own.items():
            for r in others:
                if (
                    r.order_id != order_id
                    and r.starts_at < mine.ends_at
                    and r.ends_at > mine.starts_at
                ):
                    out[order_id].add(r.worker_id)
        return out

    async def _dispatch_region(
        self,
        session: AsyncSession,
        region: int,
        orders: list[Order],
        busy: set[int],
        now: datetime,
    ) -> int:
        fleet, workers = await self._fleet(session, busy)
        if not workers:
            return 0
        services = {
            s.id: s
            for s in await session.scalars(
                select(Service).where(Service.id.in_({o.service_id for o in orders}))
            )
        }
        names = sorted(
            {n for w in workers for n in (w.skills or [])}
            | {n for s in services.values() for n in (s.required_skills or [])}
        )[:64]
        catalog = SkillCatalog(tuple(names))
        fleet = dataclasses.replace(
            fleet,
            skills=catalog.masks([[n for n in (w.skills or []) if n in names] for w in workers]),
        )
        excluded = await self._exclusions(session, [o.id for o in orders])
        for order_id, worker_ids in (await self._double_booked(session, orders, workers)).items():
            excluded[order_id] |= worker_ids
        batch = OrderBatch.from_arrays(
            np.array([o.id for o in orders], dtype=np.int64),
            [o.lat for o in orders],
            [o.lng for o in orders],
            required_skills=catalog.masks(
                [
                    [n for n in (services[o.service_id].required_skills or []) if n in names]
                    for o in orders
                ]
            ),
            service_s=[max(60, o.duration_min * 60) for o in orders],
            excluded_worker_ids=[
                np.array(sorted(excluded.get(o.id, ())), dtype=np.int64) for o in orders
            ],
            enterprise_id=[o.enterprise_id for o in orders],
        )
        now_s = int(now.timestamp())
        tenant = await self._tenant_settings(session, {o.enterprise_id for o in orders})
        # One match has one set of weights: a region whose orders are all one enterprise's
        # uses that enterprise's weights; a mixed region uses the defaults.
        ents = {o.enterprise_id for o in orders}
        only = tenant.get(next(iter(ents))) if len(ents) == 1 else None
        weights = only.weights if only is not None else None

        def solve() -> Assignment:
            return match(
                batch,
                fleet,
                now=now_s,
                max_travel_s=self.settings.dispatch_max_travel_s,
                weights=weights,
            )

        result = await anyio.to_thread.run_sync(solve)
        made = 0
        for order_id, worker_id in zip(
            result.order_ids.tolist(), result.worker_ids.tolist(), strict=True
        ):
            explanation = result.explain(int(order_id))
            order = await lock_order(session, int(order_id))
            if not (
                order.status == OrderStatus.PENDING_SERVICE.value
                and order.dispatch_status
                in (DispatchStatus.AWAITING_DISPATCH.value, DispatchStatus.OFFERED.value)
            ):
                await session.rollback()
                continue
            session.add(
                DispatchOffer(
                    order_id=order.id,
                    worker_id=int(worker_id),
                    mode=OfferMode.AUTO.value,
                    state=OfferState.OFFERED.value,
                    region=region,
                    fencing_token=self.fencing_token,
                    offered_at=now,
                    expires_at=now + timedelta(seconds=self._accept_timeout_s(tenant, order)),
                )
            )
            session.add(
                DispatchDecision(
                    order_id=order.id,
                    worker_id=int(worker_id),
                    region=region,
                    mode=OfferMode.AUTO.value,
                    total_cost=explanation.chosen.total if explanation.chosen else None,
                    cost=_line(explanation.chosen),
                    alternatives=[_line(a) for a in explanation.alternatives],
                    reason=None,
                    fencing_token=self.fencing_token,
                    created_at=now,
                )
            )
            if order.dispatch_status == DispatchStatus.AWAITING_DISPATCH.value:
                await state.apply(
                    session, order, OrderEventType.OFFERED, actor_id=None, now=now,
                    data={"worker_id": int(worker_id)},
                )  # fmt: skip
            await session.commit()
            busy.add(int(worker_id))
            made += 1
        log.info(
            "dispatch_region",
            region=f"{region:x}",
            orders=len(orders),
            workers=len(workers),
            offered=made,
            solve_s=round(result.solve_s, 4),
            unassigned=dict(
                zip(result.unassigned_order_ids.tolist(), result.unassigned_reasons, strict=True)
            ),
            excluded={k: sorted(v) for k, v in excluded.items()},
        )
        return made
