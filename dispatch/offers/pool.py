"""Grab pool (抢单): :class:`GrabPool`, the first valid claim wins."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dispatch.errors import DuplicateId, InvalidInput
from dispatch.offers.base import (
    SNAPSHOT_VERSION,
    FallbackReason,
    GrabStatus,
    IdArray,
    OfferConflict,
    OrderTable,
    RejectReason,
    as_enum,
    as_id,
    as_id_array,
    as_time,
    check_version,
    field_of,
    opt_int,
)
from dispatch.offers.events import (
    Cancelled,
    Claimed,
    ClaimRejected,
    FallbackToAutoAssign,
    GrabOpened,
)
from dispatch.offers.policy import (
    OfferPolicy,
)


@dataclass(slots=True)
class _GrabOrder:
    order_id: int
    status: GrabStatus
    eligible: frozenset[int]
    opened_at: int
    closes_at: int
    winner_worker_id: int | None = None
    closed_at: int | None = None


@dataclass(frozen=True, slots=True)
class GrabState:
    """Read-only view of one order in the :class:`GrabPool`."""

    order_id: int
    status: GrabStatus
    eligible_worker_ids: tuple[int, ...]
    opened_at: int
    closes_at: int
    winner_worker_id: int | None
    closed_at: int | None


class GrabPool(OrderTable[_GrabOrder]):
    """Grab-pool (抢单) orders: shown to eligible workers, first valid claim wins.

    The caller picks the eligible workers (candidates within
    ``policy.grab_rings`` H3 rings, filtered by skills, shifts and
    :class:`FairnessLedger`). Invariant: an order has at most one winner, and
    an order is open, claimed, fallen back to auto-assign or cancelled.
    """

    _where = "grab pool"
    _status_kind = GrabStatus

    def __init__(self, policy: OfferPolicy | None = None) -> None:
        """Empty pool under ``policy`` (default :class:`OfferPolicy`)."""
        self.policy = policy if policy is not None else OfferPolicy()
        self._orders: dict[int, _GrabOrder] = {}
        self._visible: dict[int, set[int]] = {}  # worker_id -> open order ids they may claim
        self._deadlines: list[tuple[int, int]] = []  # (closes_at, order_id), stale entries skipped

    def state(self, order_id: int) -> GrabState:
        """Read-only view of one order; ``UnknownOrder`` if the pool never saw it."""
        rec = self._get(order_id)
        return GrabState(
            order_id=rec.order_id,
            status=rec.status,
            eligible_worker_ids=tuple(sorted(rec.eligible)),
            opened_at=rec.opened_at,
            closes_at=rec.closes_at,
            winner_worker_id=rec.winner_worker_id,
            closed_at=rec.closed_at,
        )

    def visible_order_ids(self, worker_id: int, now: int) -> IdArray:
        """Open orders ``worker_id`` may claim at ``now`` (the worker app's list), oldest first."""
        wid = as_id(worker_id, "worker_id")
        t = as_time(now)
        open_ids = self._visible.get(wid, set())
        rows = sorted(
            (self._orders[oid].opened_at, oid)
            for oid in open_ids
            if t < self._orders[oid].closes_at
        )
        return np.fromiter((oid for _, oid in rows), dtype=np.int64, count=len(rows))

    def next_deadline(self) -> int | None:
        """Earliest grab-window close (epoch s) of an open order, for the next ``tick``."""
        while self._deadlines:
            closes_at, oid = self._deadlines[0]
            rec = self._orders.get(oid)
            if rec is not None and rec.status is GrabStatus.OPEN and rec.closes_at == closes_at:
                return closes_at
            heapq.heappop(self._deadlines)
        return None

    def _close(self, rec: _GrabOrder, status: GrabStatus, at: int) -> None:
        rec.status = status
        rec.closed_at = at
        for wid in rec.eligible:
            orders = self._visible.get(wid)
            if orders is not None:
                orders.discard(rec.order_id)
                if not orders:
                    del self._visible[wid]

    def open(self, order_id: int, eligible_worker_ids: ArrayLike, now: int) -> GrabOpened:
        """Show an order to ``eligible_worker_ids`` for ``grab_window_s`` seconds from ``now``.

        ``DuplicateId`` if the pool already holds ``order_id``. An empty
        eligible set is allowed; the order then simply falls back at close.
        """
        oid = as_id(order_id, "order_id")
        eligible = np.unique(as_id_array(eligible_worker_ids, "eligible_worker_ids"))
        t = as_time(now)
        if oid in self._orders:
            raise DuplicateId(f"order_id {oid} is already in the grab pool")
        rec = _GrabOrder(
            order_id=oid,
            status=GrabStatus.OPEN,
            eligible=frozenset(eligible.tolist()),
            opened_at=t,
            closes_at=t + self.policy.grab_window_s,
        )
        self._orders[oid] = rec
        for wid in rec.eligible:
            self._visible.setdefault(wid, set()).add(oid)
        heapq.heappush(self._deadlines, (rec.closes_at, oid))
        return GrabOpened(oid, tuple(eligible.tolist()), t, rec.closes_at)

    def check_claim(
        self, order_id: int, worker_id: int, now: int
    ) -> Claimed | ClaimRejected | None:
        """What ``claim`` would answer without changing state: None means the claim would win."""
        rec = self._get(order_id)
        wid = as_id(worker_id, "worker_id")
        t = as_time(now)
        if rec.status is GrabStatus.CLAIMED:
            if rec.winner_worker_id == wid:
                assert rec.closed_at is not None
                return Claimed(rec.order_id, wid, rec.closed_at)
            return ClaimRejected(rec.order_id, wid, RejectReason.ALREADY_CLAIMED)
        if rec.status is GrabStatus.CANCELLED:
            return ClaimRejected(rec.order_id, wid, RejectReason.ORDER_CLOSED)
        if rec.status is GrabStatus.FELL_BACK or t >= rec.closes_at:
            return ClaimRejected(rec.order_id, wid, RejectReason.EXPIRED)
        if wid not in rec.eligible:
            return ClaimRejected(rec.order_id, wid, RejectReason.NOT_ELIGIBLE)
        return None

    def claim(self, order_id: int, worker_id: int, now: int) -> Claimed | ClaimRejected:
        """A worker grabs an order: the first valid claim wins; repeats by the winner are equal.

        Rejections: ``already_claimed``, ``not_eligible``, ``expired`` (window
        over, even before ``tick`` ran), ``order_closed``.
        """
        outcome = self.check_claim(order_id, worker_id, now)
        if outcome is not None:
            return outcome
        rec = self._get(order_id)
        wid = as_id(worker_id, "worker_id")
        t = as_time(now)
        rec.winner_worker_id = wid
        self._close(rec, GrabStatus.CLAIMED, t)
        return Claimed(rec.order_id, wid, t)

    def tick(self, now: int) -> tuple[FallbackToAutoAssign, ...]:
        """Close every open order whose window ended by ``now``; each falls back to auto-assign.

        Events carry the exact close instant, earliest first.
        """
        t = as_time(now)
        events: list[FallbackToAutoAssign] = []
        while self._deadlines and self._deadlines[0][0] <= t:
            closes_at, oid = heapq.heappop(self._deadlines)
            rec = self._orders.get(oid)
            if rec is None or rec.status is not GrabStatus.OPEN or rec.closes_at != closes_at:
                continue
            self._close(rec, GrabStatus.FELL_BACK, closes_at)
            events.append(FallbackToAutoAssign(oid, closes_at, FallbackReason.WINDOW_ELAPSED))
        return tuple(events)

    def cancel(self, order_id: int, now: int) -> tuple[Cancelled]:
        """Withdraw an open (or claimed) order; repeating returns the first ``Cancelled``.

        ``OfferConflict`` if it already fell back to auto-assign (cancel it there).
        """
        rec = self._get(order_id)
        t = as_time(now)
        if rec.status is GrabStatus.CANCELLED:
            assert rec.closed_at is not None
            return (Cancelled(rec.order_id, rec.closed_at),)
        if rec.status is GrabStatus.FELL_BACK:
            raise OfferConflict(
                f"order_id {rec.order_id} fell back to auto-assign; cancel it in the offer book"
            )
        self._close(rec, GrabStatus.CANCELLED, t)
        return (Cancelled(rec.order_id, t),)

    def drop_closed(self, closed_before: int) -> int:
        """Forget claimed/fallen-back/cancelled orders closed before ``closed_before`` (epoch s)."""
        cutoff = as_time(closed_before, "closed_before")
        gone = [
            oid
            for oid, rec in self._orders.items()
            if rec.closed_at is not None and rec.closed_at < cutoff
        ]
        for oid in gone:
            del self._orders[oid]
        return len(gone)

    def snapshot(self) -> dict[str, Any]:
        """Whole state as plain dicts/lists/ints/strs (JSON-safe) for persistence or replay."""
        return {
            "version": SNAPSHOT_VERSION,
            "policy": self.policy.to_dict(),
            "orders": [
                {
                    "order_id": rec.order_id,
                    "status": rec.status.value,
                    "eligible_worker_ids": sorted(rec.eligible),
                    "opened_at": rec.opened_at,
                    "closes_at": rec.closes_at,
                    "winner_worker_id": rec.winner_worker_id,
                    "closed_at": rec.closed_at,
                }
                for rec in self._orders.values()
            ],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> GrabPool:
        """Rebuild a pool from :meth:`snapshot` output; ``InvalidInput`` names a bad field."""
        check_version(data, "grab pool")
        pool = cls(OfferPolicy.from_dict(field_of(data, "policy", "snapshot")))
        raw_orders = field_of(data, "orders", "snapshot")
        if not isinstance(raw_orders, list):
            raise InvalidInput("snapshot.orders must be a list")
        for i, raw in enumerate(raw_orders):
            where = f"snapshot.orders[{i}]"
            eligible = as_id_array(
                field_of(raw, "eligible_worker_ids", where), f"{where}.eligible_worker_ids"
            )
            rec = _GrabOrder(
                order_id=as_id(field_of(raw, "order_id", where), f"{where}.order_id"),
                status=as_enum(GrabStatus, field_of(raw, "status", where), f"{where}.status"),
                eligible=frozenset(eligible.tolist()),
                opened_at=as_time(field_of(raw, "opened_at", where), f"{where}.opened_at"),
                closes_at=as_time(field_of(raw, "closes_at", where), f"{where}.closes_at"),
                winner_worker_id=opt_int(raw.get("winner_worker_id"), f"{where}.winner_worker_id"),
                closed_at=opt_int(raw.get("closed_at"), f"{where}.closed_at"),
            )
            if rec.order_id in pool._orders:
                raise DuplicateId(f"{where}.order_id {rec.order_id} appears twice")
            if rec.status is GrabStatus.CLAIMED and (
                rec.winner_worker_id is None or rec.closed_at is None
            ):
                raise InvalidInput(f"{where} is claimed but lacks winner_worker_id/closed_at")
            if rec.status is not GrabStatus.OPEN and rec.closed_at is None:
                raise InvalidInput(f"{where} is {rec.status.value} but lacks closed_at")
            pool._orders[rec.order_id] = rec
            if rec.status is GrabStatus.OPEN:
                for wid in rec.eligible:
                    pool._visible.setdefault(wid, set()).add(rec.order_id)
                heapq.heappush(pool._deadlines, (rec.closes_at, rec.order_id))
        return pool
