"""One dispatch round: the decisions a batch window makes, for production and the simulator alike.

Principle 6 of the design: the core decides, adapters persist. A *round* takes the
region's :class:`~dispatch.offers.OfferDesk` (the API rebuilds it from its tables, the
simulator keeps it in memory), the orders and the idle workers as arrays, and the clock,
and returns the desk's events; the caller writes them (offer rows, decisions, order
events) or acts on them (a simulated worker's answer). Nothing here reads a clock, does
I/O or keeps state between calls.

The steps, in the order a dispatcher runs them every batch window:

1. :meth:`OfferDesk.tick` — offers past their accept timeout expire (the worker is
   excluded, the order re-queued or escalated after ``max_offers_per_order``); grab-pool
   orders past their window fall back to auto-assign.
2. :func:`admit` — orders the desk has never seen enter dispatch by the desk's mode:
   queued for auto-assign (派单), or shown in the grab pool (抢单) to the workers
   :func:`dispatch.candidates.find_candidates` finds for them.
3. :func:`escalate_late` — pending orders whose latest acceptable start has passed go to a
   human dispatcher: no match can serve them any more.
4. :func:`offer_round` — the pending orders × the workers the desk lets take an offer
   (not holding one, under the fairness cap, not cooling down after a miss) go through
   :func:`dispatch.assign.match`, and every matched pair becomes an offer with an accept
   timeout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.assign import Assignment, match
from dispatch.candidates import (
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_TRAVEL_S,
    CandidatePool,
    find_candidates,
)
from dispatch.cost import CostWeights
from dispatch.errors import InvalidInput, ShapeMismatch
from dispatch.model import NO_LIMIT_S, Fleet, OrderBatch
from dispatch.offers import DispatchMode, Event, OfferDesk, OfferMade
from geo.travel import HaversineTravelModel, TravelTimeModel

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: The matching function a round calls: ``dispatch.assign.match``'s signature.
MatchFn = Callable[..., Assignment]


@dataclass(frozen=True)
class RoundParams:
    """Search knobs of a round; validated on construction, the field named on error.

    ``candidates_per_order`` workers considered per order by ``match`` and
    ``max_travel_s`` its hard travel bound (seconds); a grab-pool order is shown to the
    ``grab_candidates`` nearest eligible workers within ``grab_max_travel_s``.
    ``match_budget_s`` (seconds, None: none) is ``match``'s time budget: a dispatcher sets
    it below its batch window so that a surging district cannot stall the tick; the
    round's ``assignment.gap_bound`` then says how far from optimal the answer may be
    (0 when certified), for the caller to log. None keeps rounds deterministic (the
    simulator's default).
    """

    candidates_per_order: int = DEFAULT_CANDIDATES
    max_travel_s: float = DEFAULT_MAX_TRAVEL_S
    grab_candidates: int = 20
    grab_max_travel_s: float = 1800.0
    match_budget_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("candidates_per_order", "grab_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be an integer >= 1, got {value!r}")
        names: tuple[str, ...] = ("max_travel_s", "grab_max_travel_s")
        if self.match_budget_s is not None:
            names += ("match_budget_s",)
        for name in names:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidInput(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True, eq=False)
class RoundResult:
    """What :func:`offer_round` decided: the offers made and the match behind them.

    ``assignment`` is None when there was nothing to match (no pending order of the
    batch, or no worker the desk lets take an offer).
    """

    offers: tuple[OfferMade, ...]
    assignment: Assignment | None


_DEFAULT_TRAVEL = HaversineTravelModel()


def admit(
    desk: OfferDesk,
    orders: OrderBatch,
    fleet: Fleet,
    now: int,
    *,
    params: RoundParams | None = None,
    travel: TravelTimeModel | None = None,
    find_fn: Callable[..., CandidatePool] = find_candidates,
) -> tuple[Event, ...]:
    """Bring ``orders`` (not yet known to the desk) into dispatch by the desk's mode.

    Auto mode queues them; grab mode shows each to its nearest eligible idle workers of
    ``fleet`` (the ones the desk lets take work: see :meth:`OfferDesk.offer_eligible_mask`)
    and queues it for auto-assign at once when nobody is eligible. Each order's own
    exclusions (``orders.excluded_for``) are kept. ``now`` epoch seconds; ``find_fn`` is
    :func:`dispatch.candidates.find_candidates` unless a caller injects a wrapper.
    """
    p = params or RoundParams()
    eligible: list[IntArray] | None = None
    if desk.policy.mode is DispatchMode.GRAB and len(orders):
        idle = eligible_fleet(desk, fleet, now)
        eligible = [np.zeros(0, dtype=np.int64)] * len(orders)
        if len(idle):
            pool = find_fn(
                orders,
                idle,
                travel or _DEFAULT_TRAVEL,
                now,
                candidates_per_order=p.grab_candidates,
                max_travel_s=p.grab_max_travel_s,
            )
            offs = pool.offsets
            eligible = [
                idle.ids[pool.worker_idx[offs[i] : offs[i + 1]]] for i in range(len(orders))
            ]
    events: list[Event] = []
    for i, oid in enumerate(orders.ids.tolist()):
        shown = None if eligible is None else eligible[i]
        events.extend(desk.submit(oid, now, shown, orders.excluded_for(i)))
    return tuple(events)


def waiting_priority(waited_s: ArrayLike, aging_per_hour: float) -> FloatArray:
    """Each order's priority for the cost model: ``aging_per_hour`` per hour it has waited
    (``waited_s`` seconds, negative counts as 0), so that of two otherwise equal orders the
    older wins and nobody starves. Member priority adds to this when memberships exist."""
    waited = np.maximum(np.asarray(waited_s, dtype=np.float64), 0.0)
    return np.asarray(aging_per_hour * waited / 3600.0, dtype=np.float64)


def escalate_late(
    desk: OfferDesk, order_ids: IntArray, latest_start_s: IntArray, now: int
) -> tuple[Event, ...]:
    """Escalate the pending orders whose latest acceptable start (epoch s) is before ``now``.

    ``order_ids[i]`` has ``latest_start_s[i]`` (``NO_LIMIT_S``: none); orders the desk
    does not hold as pending are left alone.
    """
    ids = np.asarray(order_ids, dtype=np.int64)
    latest = np.asarray(latest_start_s, dtype=np.int64)
    if ids.shape != latest.shape:
        raise ShapeMismatch(
            f"order_ids and latest_start_s must have the same length, got {ids.size} and "
            f"{latest.size}"
        )
    pending = set(desk.book.pending_order_ids().tolist())
    late = (latest < now) & (latest != NO_LIMIT_S)
    events: list[Event] = []
    for oid in ids[late].tolist():
        if oid in pending:
            events.extend(desk.escalate(oid, now, "latest_start_passed"))
    return tuple(events)


def eligible_fleet(desk: OfferDesk, fleet: Fleet, now: int) -> Fleet:
    """The rows of ``fleet`` that are available and may take a new offer from ``desk`` now."""
    ok = np.asarray(fleet.available, dtype=np.bool_) & desk.offer_eligible_mask(fleet.ids, now)
    return fleet if ok.all() else take_workers(fleet, np.flatnonzero(ok))


def take_workers(fleet: Fleet, rows: ArrayLike) -> Fleet:
    """The given rows of ``fleet`` as a new fleet."""
    idx = np.asarray(rows, dtype=np.int64)
    return replace(
        fleet, **{name: getattr(fleet, name)[idx] for name in Fleet.__dataclass_fields__}
    )


def with_desk_exclusions(desk: OfferDesk, orders: OrderBatch) -> OrderBatch:
    """``orders`` with each order's desk exclusions (declined, timed out) added to its own."""
    flat, offsets = desk.book.exclusions_csr(orders.ids)
    if flat.size == 0:
        return orders
    if orders.excluded_worker_ids.size == 0:
        merged_flat, merged_offsets = flat, offsets
    else:
        rows = [
            np.union1d(orders.excluded_for(i), flat[offsets[i] : offsets[i + 1]])
            for i in range(len(orders))
        ]
        merged_offsets = np.zeros(len(orders) + 1, dtype=np.int64)
        np.cumsum([r.size for r in rows], out=merged_offsets[1:])
        merged_flat = np.concatenate(rows).astype(np.int64) if rows else flat[:0]
    for arr in (merged_flat, merged_offsets):
        arr.setflags(write=False)
    return replace(orders, excluded_worker_ids=merged_flat, excluded_offsets=merged_offsets)


def offer_round(
    desk: OfferDesk,
    orders: OrderBatch,
    fleet: Fleet,
    now: int,
    *,
    weights: CostWeights | None = None,
    params: RoundParams | None = None,
    travel: TravelTimeModel | None = None,
    match_fn: MatchFn = match,
) -> RoundResult:
    """Match the desk's pending ``orders`` to the workers of ``fleet`` it allows, and offer.

    Rows of ``orders`` that the desk does not hold as pending are ignored; every row keeps
    its own exclusions and gains the desk's. ``fleet`` rows that are unavailable, hold an
    offer, reached the fairness cap or are cooling down after a miss are left out. Each
    matched pair becomes an ``OfferMade`` (accept timeout from the desk's policy).
    ``now`` epoch seconds; ``match_fn`` is :func:`dispatch.assign.match` unless a caller
    injects a wrapper (the simulator counts calls this way).
    """
    p = params or RoundParams()
    pending = np.isin(orders.ids, desk.book.pending_order_ids())
    if not pending.all():
        rows = np.flatnonzero(pending)
        orders = take_orders(orders, rows)
    idle = eligible_fleet(desk, fleet, now)
    if len(orders) == 0 or len(idle) == 0:
        return RoundResult((), None)
    result = match_fn(
        with_desk_exclusions(desk, orders),
        idle,
        weights=weights,
        travel=travel,
        now=now,
        candidates_per_order=p.candidates_per_order,
        max_travel_s=p.max_travel_s,
        **({} if p.match_budget_s is None else {"budget_s": p.match_budget_s}),
    )
    if result.assigned == 0:
        return RoundResult((), result)
    return RoundResult(desk.offer_pairs(result.order_ids, result.worker_ids, now), result)


def take_orders(orders: OrderBatch, rows: IntArray) -> OrderBatch:
    """The given rows of ``orders`` as a new batch (their exclusions re-packed)."""
    excluded = [orders.excluded_for(int(r)) for r in rows]
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum([e.size for e in excluded], out=offsets[1:])
    flat = np.concatenate(excluded).astype(np.int64) if excluded else np.zeros(0, np.int64)
    return OrderBatch.from_arrays(
        orders.ids[rows],
        orders.lat[rows],
        orders.lng[rows],
        required_skills=orders.required_skills[rows],
        service_s=orders.service_s[rows],
        latest_start_s=orders.latest_start_s[rows],
        priority=orders.priority[rows],
        preferred_worker_id=orders.preferred_worker_id[rows],
        excluded_worker_ids=flat,
        excluded_offsets=offsets,
        enterprise_id=orders.enterprise_id[rows],
    )
