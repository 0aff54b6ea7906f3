"""The dispatcher: every tick, match awaiting orders to online workers and offer them.

``Dispatcher.run_once(now, fences=None)`` is one tick (tests drive it with their own clock):

1. Auto offers past ``expires_at`` become ``expired``; grab-pool rows past their window
   ``lapsed`` (those orders fall back to auto-assign).
2. Orders in 待服务 awaiting a worker (sub-state awaiting_dispatch, or offered with no
   live offer left after a decline/timeout) whose slot starts within the horizon.
   An order whose enterprise dispatches by grab (抢单: stored mode ``grab``, or no stored
   settings and a global ``grab_window_s``) opens in the grab pool first, once.
3. Per region (H3 res-5 parent) a ``dispatch.assign.match`` over the idle online workers
   (LiveState positions + DB skills/enterprise/rating), each order excluding every
   worker that declined it or let its offer expire. An enterprise with stored settings
   gets at most one match of its orders per region per ``batch_window_s``. The solver
   runs off the event loop.
4. Each assignment becomes an auto offer (accept timeout) and a ``dispatch_decisions``
   row with the chosen cost line, the runner-ups from ``explain`` and a reason
   (``reoffer`` after a decline/timeout, ``grab_lapsed`` after an unclaimed pool window).

Embedded (``fences=None``, one process, the app's lifespan task): every region, rows carry
``fencing_token`` 0 and no fence is checked. Production (``daojia dispatcher``,
api/dispatch/runner.py): ``fences`` maps each region this process leases to its token;
only those regions are touched, every write transaction first passes
``api.dispatch.fencing.fence`` and rows carry the token. A region whose token turns out
stale is skipped for the rest of the tick and reported in ``TickReport.stale_regions``.
The database guards the rest: one live offer per order (a partial unique index).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import numpy as np
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.catalog.models import Service
from api.db import utcnow
from api.dispatch.fencing import fence
from api.dispatch.models import (
    LIVE_STATES,
    DispatchDecision,
    DispatchOffer,
    OfferMode,
    OfferState,
)
from api.dispatch.service import COMMITTED, lapse_offer, regions_of
from api.enterprise.models import Enterprise, Worker
from api.enterprise.service import BadDispatchSettings, DispatchSettings, parse_dispatch_settings
from api.leases import StaleFencingToken
from api.live import LiveBackends, PingBatch, WorkerState
from api.orders import state
from api.orders.models import Order, WorkerReservation
from api.orders.service import lock_order
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.settings import Settings
from dispatch.assign import Assignment, CostLine, match
from dispatch.model import Fleet, OrderBatch, SkillCatalog
from dispatch.offers import DispatchMode

log = structlog.get_logger("api.dispatch")


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


@dataclasses.dataclass
class _Tick:
    """One tick's context: its time, the leased regions (None = all, unfenced), stale ones."""

    now: datetime
    fences: Mapping[int, int] | None
    stale: set[int] = dataclasses.field(default_factory=set)

    def token(self, region: int, default: int) -> int:
        return default if self.fences is None else int(self.fences[region])

    def owns(self, region: int) -> bool:
        return (self.fences is None or region in self.fences) and region not in self.stale


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


def _awaiting(now: datetime, horizon_s: int) -> list[Any]:
    """Filters of orders that need a worker now: paid, awaiting or re-queued, slot soon."""
    return [
        Order.status == OrderStatus.PENDING_SERVICE.value,
        Order.dispatch_status.in_(
            (DispatchStatus.AWAITING_DISPATCH.value, DispatchStatus.OFFERED.value)
        ),
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

    async def run_once(
        self, now: datetime, *, fences: Mapping[int, int] | None = None
    ) -> TickReport:
        """One tick at ``now`` (UTC-aware); ``fences``: leased region -> token (module doc)."""
        tick = _Tick(now, fences)
        async with self.maker() as session:
            expired, lapsed = await self._close_all(session, tick)
            orders = await self._waiting(session, tick)
            tenant = await self._tenant_settings(session, {o.enterprise_id for o in orders})
            orders, opened = await self._open_grab(session, tick, orders, tenant)
            by_region: dict[int, list[Order]] = defaultdict(list)
            for order, region in zip(
                orders, regions_of([o.lat for o in orders], [o.lng for o in orders]), strict=True
            ):
                by_region[region].append(order)
            offered = 0
            if by_region:
                busy = await self._busy_workers(session)
                snap = await self.live.state.snapshot()
                for region, region_orders in sorted(by_region.items()):
                    due = self._due(region, region_orders, tenant, now)
                    if due and tick.owns(region):
                        offered += await self._dispatch_region(
                            session, tick, region, due, busy, snap, tenant
                        )
            return TickReport(
                expired,
                lapsed,
                len(orders),
                offered,
                opened,
                len(by_region),
                frozenset(tick.stale),
            )

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

    async def _close_all(self, session: AsyncSession, tick: _Tick) -> tuple[int, int]:
        """Close live offers past their time, per region (fenced); (expired, lapsed) counts."""
        query = select(
            DispatchOffer.id, DispatchOffer.order_id, DispatchOffer.region, DispatchOffer.state
        ).where(DispatchOffer.state.in_(LIVE_STATES), DispatchOffer.expires_at <= tick.now)
        if tick.fences is not None:
            query = query.where(DispatchOffer.region.in_(list(tick.fences)))
        by_region: dict[int, list[Any]] = defaultdict(list)
        for row in (await session.execute(query)).all():
            by_region[int(row.region)].append(row)
        expired = lapsed = 0
        for region, rows in sorted(by_region.items()):
            if not await self._fence(session, tick, region):
                continue
            expired_orders = await self._close(session, rows, OfferState.OFFERED, tick.now)
            lapsed += len(await self._close(session, rows, OfferState.OPEN, tick.now))
            for order_id in sorted(set(expired_orders)):
                await lapse_offer(session, order_id, now=tick.now, reason="timeout")
            await session.commit()
            expired += len(expired_orders)
        return expired, lapsed

    async def _close(
        self, session: AsyncSession, rows: list[Any], live_state: OfferState, now: datetime
    ) -> list[int]:
        """Close the given live offers still in ``live_state``; the order ids they were for."""
        rows = [r for r in rows if r.state == live_state.value]
        if not rows:
            return []
        to = OfferState.EXPIRED if live_state is OfferState.OFFERED else OfferState.LAPSED
        await session.execute(
            update(DispatchOffer)
            .where(
                DispatchOffer.id.in_([r.id for r in rows]),
                DispatchOffer.state == live_state.value,
            )
            .values(state=to.value, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        return [int(r.order_id) for r in rows]

    async def _waiting(self, session: AsyncSession, tick: _Tick) -> list[Order]:
        """Orders needing a worker in the regions of this tick, oldest slot first, one batch."""
        query = (
            select(Order.id, Order.lat, Order.lng)
            .where(*_awaiting(tick.now, self.settings.dispatch_horizon_s), ~_has_live_offer())
            .order_by(Order.slot_start, Order.id)
        )
        if tick.fences is None:
            query = query.limit(self.settings.dispatch_batch_max)
        rows = (await session.execute(query)).all()
        regions = regions_of([r.lat for r in rows], [r.lng for r in rows])
        ids = [r.id for r, region in zip(rows, regions, strict=True) if tick.owns(region)]
        ids = ids[: self.settings.dispatch_batch_max]
        if not ids:
            return []
        found = await session.scalars(
            select(Order).where(Order.id.in_(ids)).order_by(Order.slot_start, Order.id)
        )
        return list(found)

    def _grab_window_s(self, tenant: dict[int, DispatchSettings], order: Order) -> int:
        """Seconds this order spends in the grab pool first (0: straight to auto-assign)."""
        own = tenant.get(order.enterprise_id)
        if own is None:
            return self.settings.grab_window_s
        return own.grab_window_s if own.mode is DispatchMode.GRAB else 0

    def _due(
        self,
        region: int,
        orders: list[Order],
        tenant: dict[int, DispatchSettings],
        now: datetime,
    ) -> list[Order]:
        """The orders whose enterprise's batch window (stored settings) allows a match now."""
        due = []
        for order in orders:
            own = tenant.get(order.enterprise_id)
            last = self._last_match.get((region, order.enterprise_id))
            if own is None or last is None or now >= last + timedelta(seconds=own.batch_window_s):
                due.append(order)
        for ent in {o.enterprise_id for o in due}:
            self._last_match[(region, ent)] = now
        return due

    async def _open_grab(
        self,
        session: AsyncSession,
        tick: _Tick,
        orders: list[Order],
        tenant: dict[int, DispatchSettings],
    ) -> tuple[list[Order], int]:
        """Open grab-mode orders that never were in the pool; the rest go to auto-assign."""
        candidates = [o for o in orders if self._grab_window_s(tenant, o) > 0]
        if not candidates:
            return orders, 0
        pooled = set(
            await session.scalars(
                select(DispatchOffer.order_id).where(
                    DispatchOffer.order_id.in_([o.id for o in candidates]),
                    DispatchOffer.mode == OfferMode.GRAB.value,
                )
            )
        )
        fresh = [o for o in candidates if o.id not in pooled]
        by_region: dict[int, list[Order]] = defaultdict(list)
        for order, region in zip(
            fresh, regions_of([o.lat for o in fresh], [o.lng for o in fresh]), strict=True
        ):
            by_region[region].append(order)
        opened: set[int] = set()
        plan = [
            (region, [(o.id, self._grab_window_s(tenant, o)) for o in region_orders])
            for region, region_orders in sorted(by_region.items())
        ]
        for region, rows in plan:
            async with self.maker() as write:
                if await self._fence(write, tick, region) and await self._commit_pool(
                    write, tick, region, rows
                ):
                    opened |= {order_id for order_id, _ in rows}
        # Orders just opened or stale-fenced wait; pooled (lapsed) ones fall back to auto.
        waiting_pool = {o.id for o in fresh}
        return [o for o in orders if o.id not in waiting_pool], len(opened)

    async def _commit_pool(
        self, write: AsyncSession, tick: _Tick, region: int, rows: list[tuple[int, int]]
    ) -> bool:
        """Open grab-pool rows ``(order id, window s)`` of one region; False on a conflict."""
        for order_id, window_s in rows:
            write.add(
                DispatchOffer(
                    order_id=order_id,
                    worker_id=None,
                    mode=OfferMode.GRAB.value,
                    state=OfferState.OPEN.value,
                    region=region,
                    fencing_token=tick.token(region, self.fencing_token),
                    offered_at=tick.now,
                    expires_at=tick.now + timedelta(seconds=window_s),
                )
            )
        try:
            await write.commit()
        except IntegrityError:  # another writer opened one meanwhile: the next tick sees it
            await write.rollback()
            log.warning("dispatch_grab_conflict", region=f"{region:x}")
            return False
        return True

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

    async def _fleet(
        self, session: AsyncSession, busy: set[int], snap: PingBatch
    ) -> tuple[Fleet, list[Worker]]:
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
        tick: _Tick,
        region: int,
        orders: list[Order],
        busy: set[int],
        snap: PingBatch,
        tenant: dict[int, DispatchSettings],
    ) -> int:
        now = tick.now
        fleet, workers = await self._fleet(session, busy, snap)
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
        reasons = {o: "reoffer" for o, ws in excluded.items() if ws}
        for order_id in await session.scalars(
            select(DispatchOffer.order_id).where(
                DispatchOffer.order_id.in_([o.id for o in orders]),
                DispatchOffer.mode == OfferMode.GRAB.value,
            )
        ):
            reasons[int(order_id)] = "grab_lapsed"
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
        token = tick.token(region, self.fencing_token)
        made = 0
        # Writes go through their own session: a rollback there (a stale fence, an order
        # taken meanwhile) must not expire the objects this tick still reads.
        async with self.maker() as write:
            for order_id, worker_id in zip(
                result.order_ids.tolist(), result.worker_ids.tolist(), strict=True
            ):
                explanation = result.explain(int(order_id))
                # Fence first: a stale lease holder stops here, before touching the order.
                if not await self._fence(write, tick, region):
                    break
                order = await lock_order(write, int(order_id))
                if not await self._still_offerable(write, order, int(worker_id)):
                    await write.rollback()
                    continue
                write.add(
                    DispatchOffer(
                        order_id=order.id,
                        worker_id=int(worker_id),
                        mode=OfferMode.AUTO.value,
                        state=OfferState.OFFERED.value,
                        region=region,
                        fencing_token=token,
                        offered_at=now,
                        expires_at=now + timedelta(seconds=self._accept_timeout_s(tenant, order)),
                    )
                )
                write.add(
                    DispatchDecision(
                        order_id=order.id,
                        worker_id=int(worker_id),
                        region=region,
                        mode=OfferMode.AUTO.value,
                        total_cost=explanation.chosen.total if explanation.chosen else None,
                        cost=_line(explanation.chosen),
                        alternatives=[_line(a) for a in explanation.alternatives],
                        reason=reasons.get(order.id),
                        fencing_token=token,
                        created_at=now,
                    )
                )
                if order.dispatch_status == DispatchStatus.AWAITING_DISPATCH.value:
                    await state.apply(
                        write, order, OrderEventType.OFFERED, actor_id=None, now=now,
                        data={"worker_id": int(worker_id)},
                    )  # fmt: skip
                try:
                    await write.commit()
                except IntegrityError:  # a live offer appeared meanwhile (unique index): skip it
                    await write.rollback()
                    log.warning("dispatch_offer_conflict", order_id=int(order_id))
                    continue
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
            fencing_token=token,
        )
        return made

    async def _still_offerable(self, session: AsyncSession, order: Order, worker_id: int) -> bool:
        """Re-check under the order's row lock: still awaiting, no live offer, worker free.

        The worker's row is locked too (PostgreSQL), so two dispatchers of neighbouring
        regions cannot both offer the same worker an order at once.
        """
        if not (
            order.status == OrderStatus.PENDING_SERVICE.value
            and order.dispatch_status
            in (DispatchStatus.AWAITING_DISPATCH.value, DispatchStatus.OFFERED.value)
        ):
            return False
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(select(Worker.id).where(Worker.id == worker_id).with_for_update())
        clash = await session.scalar(
            select(DispatchOffer.id)
            .where(
                ((DispatchOffer.order_id == order.id) & DispatchOffer.state.in_(LIVE_STATES))
                | (
                    (DispatchOffer.worker_id == worker_id)
                    & (DispatchOffer.state == OfferState.OFFERED.value)
                )
            )
            .limit(1)
        )
        return clash is None
