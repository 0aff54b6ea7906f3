"""The offer desk's adapter: rebuild an ``OfferDesk`` from the tables, write its events.

The core decides (``dispatch.offers`` and ``dispatch.rounds``: timeouts, exclusions,
escalation after too many offers, the grab window, fairness caps and miss cooldowns);
this module only translates. :func:`load_desk` reads the ``dispatch_offers`` rows of some
orders, and the recent rows of some workers, into the plain-data snapshot that
``OfferDesk.from_snapshot`` takes; :func:`write_events` turns the events the desk returned
into rows (offers, decisions, order events) in the caller's transaction. Nothing here
compares a time with a deadline or counts offers.

Row ↔ desk mapping (``dispatch_offers``):

- an ``auto`` row is one ``OfferMade``: ``offered`` = the outstanding offer, ``declined``
  / ``expired`` = an exclusion of its worker (``declined`` at ``decided_at`` with the
  worker's reason, ``expired`` at ``expires_at``), ``accepted`` = the winner; the number
  of ``auto`` rows is the order's offer count;
- a ``grab`` row is the order's stay in the grab pool: ``open`` (shown to
  ``eligible_worker_ids`` until ``expires_at``), ``lapsed`` (fell back to auto-assign at
  ``decided_at``), ``claimed`` (won by ``worker_id``) or ``withdrawn``;
- an order in ``escalated`` dispatch state is closed in the book (a human decides);
- fairness: every auto offer and every claim of a worker in the last
  ``fairness_window_s`` counts towards their load; a decline or an expiry starts their
  ``miss_cooldown_s``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.dispatcher.models import DispatchDecision, DispatchOffer, OfferMode, OfferState
from api.orders import state
from api.orders.models import Order
from api.orders.state import DispatchStatus, OrderEventType
from dispatch.assign import CostLine
from dispatch.offers import (
    SNAPSHOT_VERSION,
    Cancelled,
    Claimed,
    Escalated,
    Event,
    FallbackReason,
    FallbackToAutoAssign,
    GrabOpened,
    OfferDesk,
    OfferExpired,
    OfferMade,
    OfferPolicy,
    OfferWithdrawn,
    Reoffer,
)


def epoch(at: datetime) -> int:
    """A UTC-aware datetime as whole epoch seconds (the core's clock)."""
    return int(at.timestamp())


def instant(seconds: int, now: datetime | None = None) -> datetime:
    """Epoch seconds as a UTC-aware datetime (the tables' clock); ``now`` itself when the
    event happened within this second of it, so rows keep the writer's sub-second time."""
    if now is not None and epoch(now) == seconds:
        return now
    return datetime.fromtimestamp(seconds, UTC)


# ------------------------------------------------------------------ load


def _book_order(
    order: Order, autos: list[DispatchOffer], grab: DispatchOffer | None
) -> dict[str, Any] | None:
    """The book's record of ``order`` from its rows; None when the book never saw it."""
    if not autos and (grab is None or grab.state != OfferState.LAPSED.value):
        return None
    excluded = []
    live: DispatchOffer | None = None
    winner: DispatchOffer | None = None
    for row in autos:
        if row.state == OfferState.DECLINED.value and row.worker_id is not None:
            at = epoch(row.decided_at or row.offered_at)
            note = row.decline_reason or "declined"
            excluded.append(
                {"worker_id": row.worker_id, "reason": "declined", "at": at, "note": note}
            )
        elif row.state == OfferState.EXPIRED.value and row.worker_id is not None:
            excluded.append(
                {"worker_id": row.worker_id, "reason": "expired", "at": epoch(row.expires_at)}
            )
        elif row.state == OfferState.OFFERED.value:
            live = row
        elif row.state == OfferState.ACCEPTED.value:
            winner = row
    queued = grab.decided_at or grab.expires_at if grab is not None else None
    queued_at = epoch(queued or order.paid_at or autos[0].offered_at)
    rec: dict[str, Any] = {
        "order_id": order.id,
        "status": "pending",
        "queued_at": queued_at,
        "offers_made": len(autos),
        "excluded": excluded,
    }
    if live is not None:
        rec |= {
            "status": "offered",
            "offer_worker_id": live.worker_id,
            "offered_at": epoch(live.offered_at),
            "expires_at": epoch(live.expires_at),
        }
    elif winner is not None:
        closed = winner.decided_at or winner.offered_at
        rec |= {
            "status": "assigned",
            "assigned_worker_id": winner.worker_id,
            "closed_at": epoch(closed),
        }
    elif order.dispatch_status == DispatchStatus.ESCALATED.value:
        rec |= {"status": "escalated", "closed_at": queued_at, "escalation_reason": "escalated"}
    return rec


def _pool_order(grab: DispatchOffer) -> dict[str, Any]:
    """The grab pool's record of one grab row."""
    closed = grab.decided_at or grab.expires_at
    status = {
        OfferState.OPEN.value: "open",
        OfferState.LAPSED.value: "fell_back",
        OfferState.CLAIMED.value: "claimed",
    }.get(grab.state, "cancelled")
    return {
        "order_id": grab.order_id,
        "status": status,
        "eligible_worker_ids": sorted(grab.eligible_worker_ids or []),
        "opened_at": epoch(grab.offered_at),
        "closes_at": epoch(grab.expires_at),
        "winner_worker_id": grab.worker_id if status == "claimed" else None,
        "closed_at": None if status == "open" else epoch(closed),
    }


async def _ledger(
    session: AsyncSession, policy: OfferPolicy, worker_ids: Sequence[int], now: datetime
) -> dict[str, Any]:
    """The fairness ledger of ``worker_ids``: their offers and claims in the window, cooldowns."""
    loads: list[list[int]] = []
    cooldown: dict[int, int] = {}
    if worker_ids:
        since = now - timedelta(seconds=max(policy.fairness_window_s, policy.miss_cooldown_s))
        rows = await session.execute(
            select(
                DispatchOffer.worker_id,
                DispatchOffer.mode,
                DispatchOffer.state,
                DispatchOffer.offered_at,
                DispatchOffer.expires_at,
                DispatchOffer.decided_at,
            ).where(
                DispatchOffer.worker_id.in_(list(worker_ids)),
                or_(DispatchOffer.offered_at > since, DispatchOffer.decided_at > since),
            )
        )
        for wid, mode, st, offered_at, expires_at, decided_at in rows:
            if wid is None:
                continue
            if mode == OfferMode.AUTO.value:
                loads.append([epoch(offered_at), int(wid)])
            elif st == OfferState.CLAIMED.value and decided_at is not None:
                loads.append([epoch(decided_at), int(wid)])
            missed = {
                OfferState.DECLINED.value: decided_at,
                OfferState.EXPIRED.value: expires_at,
            }.get(st)
            if missed is not None:
                until = epoch(missed) + policy.miss_cooldown_s
                cooldown[int(wid)] = max(cooldown.get(int(wid), until), until)
    t = epoch(now)
    loads = [pair for pair in loads if pair[0] <= t]
    loads.sort()
    return {
        "version": SNAPSHOT_VERSION,
        "policy": policy.to_dict(),
        "loads": loads,
        "cooldowns": [[w, u] for w, u in sorted(cooldown.items()) if u > t],
        "latest": t,
    }


async def load_desk(
    session: AsyncSession,
    policy: OfferPolicy,
    orders: Iterable[Order],
    worker_ids: Sequence[int],
    now: datetime,
) -> OfferDesk:
    """The desk of ``orders`` (their offer rows) and ``worker_ids`` (their recent load)."""
    by_id = {o.id: o for o in orders}
    rows = (
        await session.scalars(
            select(DispatchOffer)
            .where(DispatchOffer.order_id.in_(list(by_id)))
            .order_by(DispatchOffer.id)
        )
    ).all()
    autos: dict[int, list[DispatchOffer]] = defaultdict(list)
    grabs: dict[int, DispatchOffer] = {}
    for row in rows:
        if row.mode == OfferMode.AUTO.value:
            autos[row.order_id].append(row)
        else:
            grabs[row.order_id] = row  # the newest grab row of the order
    book = [
        rec
        for oid, order in by_id.items()
        if (rec := _book_order(order, autos.get(oid, []), grabs.get(oid))) is not None
    ]
    data = {
        "version": SNAPSHOT_VERSION,
        "policy": policy.to_dict(),
        "book": {"version": SNAPSHOT_VERSION, "policy": policy.to_dict(), "orders": book},
        "pool": {
            "version": SNAPSHOT_VERSION,
            "policy": policy.to_dict(),
            "orders": [_pool_order(g) for g in grabs.values()],
        },
        "ledger": await _ledger(session, policy, worker_ids, now),
        "fallback_exclusions": [],
    }
    return OfferDesk.from_snapshot(data)


# ------------------------------------------------------------------ write


def cost_line(line: CostLine | None) -> dict[str, Any]:
    """A cost line as the JSON stored in ``dispatch_decisions``."""
    if line is None:
        return {}
    return {
        "worker_id": line.worker_id,
        "travel_s": round(line.travel_s, 1),
        "terms": {k: round(v, 2) for k, v in line.terms.items()},
        "total": round(line.total, 2),
        "assigned_to_order_id": line.assigned_to_order_id,
    }


@dataclass
class Written:
    """Where one batch of events was written: region, fencing token, and why per order."""

    region: int
    fencing_token: int
    #: order id -> (chosen cost line, alternatives) for the offers of a match.
    explanations: Mapping[int, tuple[CostLine | None, Sequence[CostLine]]] = field(
        default_factory=dict
    )
    #: order id -> why the decision was (re)made ("reoffer", "grab_lapsed", ...).
    reasons: Mapping[int, str] = field(default_factory=dict)
    offered_orders: list[int] = field(default_factory=list)


async def _set_state(
    session: AsyncSession,
    order_id: int,
    mode: OfferMode,
    old: OfferState,
    new: OfferState,
    **values: Any,
) -> int:
    """Move the order's live ``mode`` row from ``old`` to ``new``; rows changed (0 or 1)."""
    result = await session.execute(
        update(DispatchOffer)
        .where(
            DispatchOffer.order_id == order_id,
            DispatchOffer.mode == mode.value,
            DispatchOffer.state == old.value,
        )
        .values(state=new.value, **values)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _lapse(session: AsyncSession, order: Order, at: datetime, reason: str) -> None:
    if state.allowed(order, OrderEventType.OFFER_LAPSED):
        await state.apply(
            session, order, OrderEventType.OFFER_LAPSED, actor_id=None, now=at,
            data={"reason": reason},
        )  # fmt: skip


async def write_events(
    session: AsyncSession,
    events: Iterable[Event],
    orders: Mapping[int, Order],
    where: Written,
    now: datetime,
) -> None:
    """Write what the desk decided, in the caller's transaction (the caller commits).

    ``orders`` holds the (row-locked, where it matters) orders the events are about.
    """
    for ev in events:
        order = orders.get(ev.order_id)
        if isinstance(ev, OfferMade):
            assert order is not None
            await _offer(session, ev, order, where, now)
        elif isinstance(ev, OfferExpired):
            await _set_state(
                session, ev.order_id, OfferMode.AUTO, OfferState.OFFERED, OfferState.EXPIRED,
                decided_at=instant(ev.expired_at),
            )  # fmt: skip
        elif isinstance(ev, Reoffer) and order is not None:
            await _lapse(session, order, instant(ev.at), "timeout_or_decline")
        elif isinstance(ev, Escalated) and order is not None:
            await _escalate(session, ev, order, where)
        elif isinstance(ev, GrabOpened):
            _grab_row(session, ev, where, now)
        elif isinstance(ev, FallbackToAutoAssign):
            if ev.reason is FallbackReason.NO_ELIGIBLE_WORKERS:
                # Nobody to show it to: it goes straight to auto-assign, and stays there.
                opened = GrabOpened(ev.order_id, (), ev.at, ev.at)
                row = _grab_row(session, opened, where, now)
                row.state, row.decided_at = OfferState.LAPSED.value, row.offered_at
            else:
                await _set_state(
                    session, ev.order_id, OfferMode.GRAB, OfferState.OPEN, OfferState.LAPSED,
                    decided_at=instant(ev.at),
                )  # fmt: skip
        elif isinstance(ev, OfferWithdrawn):
            await _set_state(
                session, ev.order_id, OfferMode.AUTO, OfferState.OFFERED, OfferState.WITHDRAWN,
                decided_at=instant(ev.at),
            )  # fmt: skip
        elif isinstance(ev, Cancelled):
            await _set_state(
                session, ev.order_id, OfferMode.GRAB, OfferState.OPEN, OfferState.WITHDRAWN,
                decided_at=instant(ev.at),
            )  # fmt: skip
        elif isinstance(ev, Claimed):
            await _set_state(
                session, ev.order_id, OfferMode.GRAB, OfferState.OPEN, OfferState.CLAIMED,
                decided_at=instant(ev.claimed_at), worker_id=ev.worker_id,
            )  # fmt: skip


def _grab_row(
    session: AsyncSession, ev: GrabOpened, where: Written, now: datetime
) -> DispatchOffer:
    opened = instant(ev.opened_at, now)
    row = DispatchOffer(
        order_id=ev.order_id,
        worker_id=None,
        mode=OfferMode.GRAB.value,
        state=OfferState.OPEN.value,
        region=where.region,
        fencing_token=where.fencing_token,
        offered_at=opened,
        expires_at=opened + timedelta(seconds=ev.closes_at - ev.opened_at),
        eligible_worker_ids=list(ev.eligible_worker_ids),
    )
    session.add(row)
    return row


async def _offer(
    session: AsyncSession, ev: OfferMade, order: Order, where: Written, now: datetime
) -> None:
    session.add(
        DispatchOffer(
            order_id=ev.order_id,
            worker_id=ev.worker_id,
            mode=OfferMode.AUTO.value,
            state=OfferState.OFFERED.value,
            region=where.region,
            fencing_token=where.fencing_token,
            offered_at=instant(ev.offered_at, now),
            expires_at=instant(ev.offered_at, now)
            + timedelta(seconds=ev.expires_at - ev.offered_at),
        )
    )
    chosen, alternatives = where.explanations.get(ev.order_id, (None, ()))
    session.add(
        DispatchDecision(
            order_id=ev.order_id,
            worker_id=ev.worker_id,
            region=where.region,
            mode=OfferMode.AUTO.value,
            total_cost=chosen.total if chosen is not None else None,
            cost=cost_line(chosen),
            alternatives=[cost_line(a) for a in alternatives],
            reason=where.reasons.get(ev.order_id),
            fencing_token=where.fencing_token,
            created_at=now,
        )
    )
    if order.dispatch_status == DispatchStatus.AWAITING_DISPATCH.value:
        await state.apply(
            session, order, OrderEventType.OFFERED, actor_id=None, now=now,
            data={"worker_id": ev.worker_id},
        )  # fmt: skip
    where.offered_orders.append(ev.order_id)


async def _escalate(session: AsyncSession, ev: Escalated, order: Order, where: Written) -> None:
    at = instant(ev.at)
    await _lapse(session, order, at, ev.reason)
    if state.allowed(order, OrderEventType.ESCALATED):
        await state.apply(
            session, order, OrderEventType.ESCALATED, actor_id=None, now=at,
            data={"reason": ev.reason},
        )  # fmt: skip
        session.add(
            DispatchDecision(
                order_id=order.id,
                worker_id=None,
                region=where.region,
                mode=OfferMode.AUTO.value,
                total_cost=None,
                cost={},
                alternatives=[],
                reason=f"escalated:{ev.reason}"[:32],
                fencing_token=where.fencing_token,
                created_at=at,
            )
        )
