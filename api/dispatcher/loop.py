"""The dispatcher: every tick, run the core's dispatch round for each region and enterprise.

``Dispatcher.run_once(now, fences=None)`` is one tick (tests drive it with their own
clock). Orders in 待服务 that need a worker (awaiting dispatch, or offered — their live
offer may have lapsed) and whose slot starts within the horizon are grouped by region
(H3 res-5 parent) and enterprise; an enterprise's orders only ever go to its own
workers, so each group is one exact, independent problem with that enterprise's own
offer policy and cost weights. For each group the dispatcher

1. loads the group's offer desk from the tables (``api.dispatcher.desk_store``),
2. calls the core — ``OfferDesk.tick`` (timeouts, re-queues, escalations, grab windows),
   ``dispatch.rounds.admit`` (new orders by mode, 派单 or 抢单), ``escalate_late``, and,
   when the enterprise's batch window allows, ``dispatch.rounds.offer_round`` over the
   enterprise's idle online workers with every cost input filled from the tables
   (position, skills, rating and reputation, today's load and recent earnings, shift end
   and breaks, transport mode; per order the latest start, the waiting-time priority and
   the reserved or preferred worker),
3. writes the events in one transaction (offers, decisions with their cost lines and
   runner-ups, order events), first passing the region's fence.

Orders that left dispatch (cancelled, taken by staff) while an offer was live are
cancelled in the desk, which withdraws the offer. No offer rule is written here.

Embedded (``fences=None``, one process, the app's lifespan task): every region, rows carry
``fencing_token`` 0 and no fence is checked. Production (``daojia dispatcher``,
api/dispatcher/runner.py): ``fences`` maps each region this process leases to its token;
only those regions are touched, every write transaction first passes
``api.dispatcher.fencing.fence`` and rows carry the token. A region whose token turns out
stale is skipped for the rest of the tick and reported in ``TickReport.stale_regions``.
The database guards the rest: one live offer per order (a partial unique index).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import numpy as np
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.catalog.models import Service
from api.core.db import utcnow
from api.core.leases import StaleFencingToken
from api.core.live import LiveBackends, PingBatch, WorkerState
from api.core.settings import Settings
from api.dispatcher.board import DispatchSettings, offer_policy, stored_settings
from api.dispatcher.desk_store import Written, epoch, load_desk, write_events
from api.dispatcher.fencing import fence
from api.dispatcher.inputs import busy_workers, fleet_inputs, order_inputs
from api.dispatcher.models import LIVE_STATES, DispatchOffer
from api.dispatcher.positions import regions_of
from api.orders.models import Order
from api.orders.service import lock_order
from api.orders.state import DispatchStatus, OrderStatus
from api.tenants.models import Enterprise
from dispatch.assign import Assignment
from dispatch.cost import CostWeights
from dispatch.offers import Event, OfferDesk, OfferPolicy
from dispatch.rounds import RoundParams, admit, escalate_late, offer_round, take_orders

log = structlog.get_logger("api.dispatcher")

_DISPATCHABLE = (DispatchStatus.AWAITING_DISPATCH.value, DispatchStatus.OFFERED.value)


@dataclasses.dataclass(frozen=True)
class TickReport:
    """What one tick did (counts), and the regions whose fencing token was stale."""

    expired: int = 0
    lapsed: int = 0
    waiting: int = 0
    offered: int = 0
    opened: int = 0
    regions: int = 0
    stale_regions: frozenset[int] = frozenset()
    escalated: int = 0
    withdrawn: int = 0


@dataclasses.dataclass
class _Tick:
    """One tick's context: its time, the leased regions (None = all, unfenced), stale ones."""

    now: datetime
    fences: Mapping[int, int] | None
    stale: set[int] = dataclasses.field(default_factory=set)
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: defaultdict(int))

    def token(self, region: int, default: int) -> int:
        return default if self.fences is None else int(self.fences[region])

    def owns(self, region: int) -> bool:
        return (self.fences is None or region in self.fences) and region not in self.stale

    def count(self, events: tuple[Event, ...]) -> None:
        for ev in events:
            self.counts[type(ev).__name__] += 1


def _awaiting(now: datetime, horizon_s: int) -> list[Any]:
    """Filters of orders that need a worker now: paid, awaiting or re-queued, slot soon."""
    return [
        Order.status == OrderStatus.PENDING_SERVICE.value,
        Order.dispatch_status.in_(_DISPATCHABLE),
        Order.slot_start <= now + timedelta(seconds=horizon_s),
    ]


def _has_live_offer() -> Any:
    return (
        select(DispatchOffer.id)
        .where(DispatchOffer.order_id == Order.id, DispatchOffer.state.in_(LIVE_STATES))
        .exists()
    )


class Dispatcher:
    """The dispatcher over the app's database and live layer (embedded or per leased region)."""

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
        # (region, enterprise) -> when its orders were last matched (batch windows).
        self._last_match: dict[tuple[int, int], datetime] = {}

    async def run(self, clock: Callable[[], datetime] = utcnow) -> None:
        """Tick forever every ``dispatch_tick_s`` (cancel the task to stop); errors are logged."""
        while True:
            interval = self.settings.dispatch_tick_s
            try:
                await self.run_once(clock())
                interval = await self.tick_interval_s()
            except Exception as exc:  # one bad tick must not stop dispatching
                log.exception("dispatch_tick_failed", error=type(exc).__name__)
            await anyio.sleep(interval)

    async def tick_interval_s(self, base: float | None = None) -> float:
        """Seconds to the next tick: ``base`` (default ``dispatch_tick_s``), or a shorter
        stored batch window (at least 0.2 s)."""
        async with self.maker() as session:
            raws = await session.scalars(
                select(Enterprise.dispatch_settings).where(
                    Enterprise.dispatch_settings.is_not(None)
                )
            )
            windows = [
                float(w)
                for raw in raws
                if isinstance(raw, dict)
                and isinstance(w := raw.get("batch_window_s"), int | float)
                and w > 0
            ]
        return max(0.2, min([base or self.settings.dispatch_tick_s, *windows]))

    async def active_regions(self, now: datetime) -> set[int]:
        """Regions with work: awaiting orders, live offers, online workers (what to lease)."""
        async with self.maker() as session:
            rows = (
                await session.execute(
                    select(Order.lat, Order.lng).where(
                        *_awaiting(now, self.settings.dispatch_horizon_s)
                    )
                )
            ).all()
            offered = await session.scalars(
                select(DispatchOffer.region).where(DispatchOffer.state.in_(LIVE_STATES)).distinct()
            )
            regions = {int(r) for r in offered}
        snap = await self.live.state.snapshot()
        online = snap.states == WorkerState.ONLINE.code
        lats = [r[0] for r in rows] + snap.lat[online].tolist()
        lngs = [r[1] for r in rows] + snap.lng[online].tolist()
        return regions | set(regions_of(lats, lngs))

    # ------------------------------------------------------------------ the tick

    async def run_once(
        self, now: datetime, *, fences: Mapping[int, int] | None = None
    ) -> TickReport:
        """One tick at ``now`` (UTC-aware); ``fences``: leased region -> token (module doc)."""
        tick = _Tick(now, fences)
        async with self.maker() as session:
            groups, gone = await self._groups(session, tick)
            enterprises = {ent for _, ent in groups} | {o.enterprise_id for o in gone}
            tenant = await stored_settings(session, enterprises)
        await self._withdraw(tick, gone, tenant)
        waiting = 0
        if groups:
            snap = await self.live.state.snapshot()
            busy = await self._busy_workers()
            for (region, ent), orders in sorted(groups.items()):
                if tick.owns(region):
                    waiting += await self._run_group(
                        tick, region, ent, orders, tenant.get(ent), busy, snap
                    )
        c = tick.counts
        return TickReport(
            expired=c["OfferExpired"],
            lapsed=c["FallbackToAutoAssign"],
            waiting=waiting,
            offered=c["OfferMade"],
            opened=c["GrabOpened"],
            regions=len({region for region, _ in groups}),
            stale_regions=frozenset(tick.stale),
            escalated=c["Escalated"],
            withdrawn=c["OfferWithdrawn"] + c["Cancelled"],
        )

    async def _groups(
        self, session: AsyncSession, tick: _Tick
    ) -> tuple[dict[tuple[int, int], list[Order]], list[Order]]:
        """Orders to dispatch by (region, enterprise) in this tick's regions, oldest slot
        first (at most ``dispatch_batch_max`` without a live offer), and the orders whose
        live offer outlived their need for one (cancelled, taken by staff)."""
        s = self.settings
        live = select(DispatchOffer.order_id).where(DispatchOffer.state.in_(LIVE_STATES))
        fresh = (
            select(Order.id, Order.lat, Order.lng)
            .where(*_awaiting(tick.now, s.dispatch_horizon_s), ~_has_live_offer())
            .order_by(Order.slot_start, Order.id)
        )
        if tick.fences is None:
            fresh = fresh.limit(s.dispatch_batch_max)
        rows = (await session.execute(fresh)).all()
        ids = [
            r.id
            for r, region in zip(
                rows, regions_of([r.lat for r in rows], [r.lng for r in rows]), strict=True
            )
            if tick.owns(region)
        ][: s.dispatch_batch_max]
        found = await session.scalars(
            select(Order)
            .where(Order.id.in_(ids) | Order.id.in_(live))
            .order_by(Order.slot_start, Order.id)
        )
        groups: dict[tuple[int, int], list[Order]] = defaultdict(list)
        gone: list[Order] = []
        orders = list(found)
        for order, region in zip(
            orders, regions_of([o.lat for o in orders], [o.lng for o in orders]), strict=True
        ):
            if not tick.owns(region):
                continue
            if (
                order.status == OrderStatus.PENDING_SERVICE.value
                and order.dispatch_status in _DISPATCHABLE
            ):
                groups[(region, order.enterprise_id)].append(order)
            else:
                gone.append(order)
        return groups, gone

    async def _withdraw(
        self, tick: _Tick, orders: list[Order], tenant: dict[int, DispatchSettings]
    ) -> None:
        """Cancel in the desk the orders that no longer need their live offer."""
        by_region: dict[tuple[int, int], list[Order]] = defaultdict(list)
        for order, region in zip(
            orders, regions_of([o.lat for o in orders], [o.lng for o in orders]), strict=True
        ):
            by_region[(region, order.enterprise_id)].append(order)
        now_s = epoch(tick.now)
        for (region, ent), group in sorted(by_region.items()):
            async with self.maker() as write:
                if not await self._fence(write, tick, region):
                    continue
                desk = await load_desk(write, self.policy(tenant.get(ent)), group, [], tick.now)
                events: tuple[Event, ...] = ()
                for order in group:
                    events += desk.cancel(order.id, now_s)
                where = Written(region, tick.token(region, self.fencing_token))
                await write_events(write, events, {o.id: o for o in group}, where, tick.now)
                await write.commit()
                tick.count(events)

    async def _run_group(
        self,
        tick: _Tick,
        region: int,
        enterprise_id: int,
        orders: list[Order],
        own: DispatchSettings | None,
        busy: set[int],
        snap: PingBatch,
    ) -> int:
        """One dispatch round for one enterprise's orders in one region; orders waiting."""
        now, now_s = tick.now, epoch(tick.now)
        policy = self.policy(own)
        async with self.maker() as write:
            if not await self._fence(write, tick, region):
                return 0
            locked = {o.id: await lock_order(write, o.id) for o in orders}
            still = [
                o
                for o in locked.values()
                if o.status == OrderStatus.PENDING_SERVICE.value
                and o.dispatch_status in _DISPATCHABLE
            ]
            services = {
                svc.id: svc
                for svc in await write.scalars(
                    select(Service).where(Service.id.in_({o.service_id for o in still}))
                )
            }
            inputs = await fleet_inputs(
                write, self.live, self.settings, enterprise_id, snap, busy, services.values(), now
            )
            desk = await load_desk(write, policy, still, inputs.worker_ids, now)
            events = desk.tick(now_s)
            batch = await order_inputs(write, self.settings, still, services, inputs.catalog, now)
            new = [
                i for i, o in enumerate(still) if o.id not in desk.book and o.id not in desk.pool
            ]
            params = self.round_params()
            if new:
                events += admit(
                    desk,
                    take_orders(batch, np.asarray(new, dtype=np.int64)),
                    inputs.fleet,
                    now_s,
                    params=params,
                )
            events += escalate_late(desk, batch.ids, batch.latest_start_s, now_s)
            result: Assignment | None = None
            if self._due(region, enterprise_id, own, now):
                weights = own.weights if own is not None else CostWeights()
                outcome = await anyio.to_thread.run_sync(
                    lambda: offer_round(
                        desk, batch, inputs.fleet, now_s, weights=weights, params=params
                    )
                )
                events += outcome.offers
                result = outcome.assignment
            where = Written(
                region,
                tick.token(region, self.fencing_token),
                explanations=_explanations(result),
                reasons=_reasons(desk, still),
            )
            await write_events(write, events, locked, where, now)
            try:
                await write.commit()
            except IntegrityError:  # a live offer appeared meanwhile (unique index): next tick
                await write.rollback()
                log.warning("dispatch_offer_conflict", region=f"{region:x}")
                return len(still)
        tick.count(events)
        busy.update(int(w) for w in desk.book.busy_worker_ids().tolist())
        log.info(
            "dispatch_region",
            region=f"{region:x}",
            enterprise_id=enterprise_id,
            orders=len(still),
            workers=len(inputs.fleet),
            offered=len(where.offered_orders),
            solve_s=None if result is None else round(result.solve_s, 4),
            # 0 when certified optimal; the proven worst case when the budget cut it short.
            gap_bound=None if result is None else _gap(result.gap_bound),
            unassigned=None
            if result is None
            else dict(
                zip(result.unassigned_order_ids.tolist(), result.unassigned_reasons, strict=True)
            ),
            fencing_token=where.fencing_token,
        )
        return len(still)

    # ------------------------------------------------------------------ settings

    def policy(self, own: DispatchSettings | None) -> OfferPolicy:
        """The offer policy of an enterprise (``desk_store.offer_policy``)."""
        return offer_policy(self.settings, own)

    def round_params(self) -> RoundParams:
        """The search knobs of a round, from the settings."""
        s = self.settings
        return RoundParams(
            max_travel_s=s.dispatch_max_travel_s,
            grab_max_travel_s=s.dispatch_max_travel_s,
            match_budget_s=s.dispatch_match_budget_s or None,
        )

    def _due(
        self, region: int, enterprise_id: int, own: DispatchSettings | None, now: datetime
    ) -> bool:
        """Whether the enterprise's batch window (stored settings) allows a match now."""
        last = self._last_match.get((region, enterprise_id))
        if (
            own is not None
            and last is not None
            and now < last + timedelta(seconds=own.batch_window_s)
        ):
            return False
        self._last_match[(region, enterprise_id)] = now
        return True

    async def _fence(self, session: AsyncSession, tick: _Tick, region: int) -> bool:
        """In a fenced tick, check this region's token first in the transaction; False if stale."""
        if tick.fences is None:
            return True
        if not tick.owns(region):
            return False
        try:
            await fence(session, region, tick.fences[region], now=tick.now)
        except StaleFencingToken as exc:
            await session.rollback()
            tick.stale.add(region)
            log.warning("dispatch_fence_rejected", region=f"{region:x}", error=str(exc))
            return False
        return True

    async def _busy_workers(self) -> set[int]:
        """Workers holding a live offer or a committed job (no new offer for them)."""
        async with self.maker() as session:
            return await busy_workers(session)


def _gap(bound: float) -> float | str:
    """A gap bound for the JSON log (no infinity in JSON)."""
    return round(bound, 6) if math.isfinite(bound) else "unbounded"


def _explanations(result: Assignment | None) -> dict[int, tuple[Any, Any]]:
    if result is None:
        return {}
    out = {}
    for order_id in result.order_ids.tolist():
        explanation = result.explain(int(order_id))
        out[int(order_id)] = (explanation.chosen, explanation.alternatives)
    return out


def _reasons(desk: OfferDesk, orders: list[Order]) -> dict[int, str]:
    """Why an offer is re-made: after a decline/timeout, or after an unclaimed grab window."""
    out = {}
    for order in orders:
        if order.id in desk.pool:
            out[order.id] = "grab_lapsed"
        elif order.id in desk.book and desk.book.state(order.id).excluded_worker_ids:
            out[order.id] = "reoffer"
    return out
