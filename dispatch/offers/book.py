"""Auto-assign (派单): :class:`OfferBook`, outstanding offers, timeouts and exclusions."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.errors import DuplicateId, InvalidInput, ShapeMismatch
from dispatch.offers.base import (
    SNAPSHOT_VERSION,
    EscalationReason,
    ExclusionReason,
    IdArray,
    OfferConflict,
    OrderStatus,
    OrderTable,
    RejectReason,
    as_count,
    as_enum,
    as_id,
    as_id_array,
    as_reason,
    as_time,
    check_version,
    field_of,
    first_duplicate,
    opt_int,
)
from dispatch.offers.events import (
    AcceptRejected,
    Cancelled,
    DeclineRejected,
    Escalated,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    OfferWithdrawn,
    Queued,
    Reoffer,
)
from dispatch.offers.policy import (
    OfferPolicy,
)

# --------------------------------------------------------------------------- auto-assign


@dataclass(slots=True)
class _Exclusion:
    reason: ExclusionReason
    at: int
    note: str = ""  # the worker's decline reason


@dataclass(slots=True)
class _AutoOrder:
    order_id: int
    status: OrderStatus
    queued_at: int
    excluded: dict[int, _Exclusion] = field(default_factory=dict)
    offers_made: int = 0
    offer_worker_id: int | None = None
    offered_at: int | None = None
    expires_at: int | None = None
    assigned_worker_id: int | None = None
    closed_at: int | None = None
    escalation_reason: str | None = None


#: Statuses in which an order has left the book's work (``drop_closed`` may forget it).
_CLOSED_STATUSES = frozenset((OrderStatus.ASSIGNED, OrderStatus.ESCALATED, OrderStatus.CANCELLED))


def _live_offer(rec: _AutoOrder | None, expires_at: int, attempt: int) -> TypeGuard[_AutoOrder]:
    # Expiry and attempt both must match: a dropped and re-added order id restarts its
    # attempt count, and its old heap entries must not expire the new offer.
    return (
        rec is not None
        and rec.status is OrderStatus.OFFERED
        and rec.offers_made == attempt
        and rec.expires_at == expires_at
    )


@dataclass(frozen=True, slots=True)
class OfferState:
    """Read-only view of one order in the :class:`OfferBook`."""

    order_id: int
    status: OrderStatus
    queued_at: int
    offers_made: int
    excluded_worker_ids: tuple[int, ...]
    offer_worker_id: int | None
    expires_at: int | None
    assigned_worker_id: int | None
    closed_at: int | None
    escalation_reason: str | None


class OfferBook(OrderTable[_AutoOrder]):
    """Outstanding auto-assign (派单) offers, their timeouts and per-order exclusions.

    Invariants: an order has at most one outstanding offer and at most one
    winner; a worker holds at most one outstanding offer; a worker who
    declined an order or let its offer time out is never offered it again;
    every order known to the book is pending, offered, assigned, escalated or
    cancelled — never lost.
    """

    _where = "offer book"
    _status_kind = OrderStatus

    def __init__(self, policy: OfferPolicy | None = None) -> None:
        """Empty book under ``policy`` (default :class:`OfferPolicy`)."""
        self.policy = policy if policy is not None else OfferPolicy()
        self._orders: dict[int, _AutoOrder] = {}
        self._busy: dict[int, int] = {}  # worker_id -> order_id of their outstanding offer
        # (expires_at, order_id, attempt); stale entries are skipped when popped.
        self._deadlines: list[tuple[int, int, int]] = []
        # Indices kept with every status change, so queries cost the pending orders (not
        # every order ever seen): order_id -> queued_at of pending orders, and
        # (closed_at, order_id) of closed ones for drop_closed (stale entries skipped).
        self._pending: dict[int, int] = {}
        self._closed: list[tuple[int, int]] = []

    def _set_status(self, rec: _AutoOrder, status: OrderStatus) -> None:
        """Every status change goes through here, keeping the pending and closed indices."""
        rec.status = status
        if status is OrderStatus.PENDING:
            self._pending[rec.order_id] = rec.queued_at
        else:
            self._pending.pop(rec.order_id, None)
        if rec.closed_at is not None and status in _CLOSED_STATUSES:
            heapq.heappush(self._closed, (rec.closed_at, rec.order_id))

    # ----------------------------------------------------------------- queries

    def state(self, order_id: int) -> OfferState:
        """Read-only view of one order; ``UnknownOrder`` if the book never saw it."""
        rec = self._get(order_id)
        return OfferState(
            order_id=rec.order_id,
            status=rec.status,
            queued_at=rec.queued_at,
            offers_made=rec.offers_made,
            excluded_worker_ids=tuple(sorted(rec.excluded)),
            offer_worker_id=rec.offer_worker_id,
            expires_at=rec.expires_at,
            assigned_worker_id=rec.assigned_worker_id,
            closed_at=rec.closed_at,
            escalation_reason=rec.escalation_reason,
        )

    def pending_order_ids(self) -> IdArray:
        """Orders waiting for the next match, oldest queue time first (ties by id)."""
        n = len(self._pending)
        ids = np.fromiter(self._pending, dtype=np.int64, count=n)
        queued = np.fromiter(self._pending.values(), dtype=np.int64, count=n)
        return ids[np.lexsort((ids, queued))]

    def exclusions(self, order_id: int) -> IdArray:
        """Workers that must not be offered ``order_id`` (ascending ids) — feed to ``match``."""
        return np.sort(np.fromiter(self._get(order_id).excluded, dtype=np.int64))

    def exclusions_csr(self, order_ids: ArrayLike) -> tuple[IdArray, IdArray]:
        """Exclusions of many orders as CSR ``(excluded_worker_ids, excluded_offsets)``.

        Order ``order_ids[i]`` excludes ``flat[offsets[i]:offsets[i + 1]]``; pass both to
        ``OrderBatch.from_arrays(excluded_worker_ids=..., excluded_offsets=...)``.
        """
        oids = as_id_array(order_ids, "order_ids")
        sets = [self._get(oid).excluded for oid in oids.tolist()]
        offsets = np.zeros(oids.size + 1, dtype=np.int64)
        np.cumsum([len(ex) for ex in sets], out=offsets[1:])
        # Most orders exclude nobody: sort only the non-empty sets, flatten in one pass.
        flat = np.fromiter(
            itertools.chain.from_iterable(sorted(ex) for ex in sets if ex),
            dtype=np.int64,
            count=int(offsets[-1]),
        )
        return flat, offsets

    def busy_worker_ids(self) -> IdArray:
        """Workers holding an outstanding offer (ascending); leave them out of the next batch."""
        return np.sort(np.fromiter(self._busy, dtype=np.int64, count=len(self._busy)))

    def busy_mask(self, worker_ids: ArrayLike) -> NDArray[np.bool_]:
        """True where ``worker_ids[i]`` holds an outstanding offer (aligned with the input)."""
        ids = as_id_array(worker_ids, "worker_ids")
        return np.isin(ids, self.busy_worker_ids())

    def outstanding_offer(self, worker_id: int) -> int | None:
        """The order ``worker_id`` currently holds an offer for, or None."""
        return self._busy.get(as_id(worker_id, "worker_id"))

    def next_deadline(self) -> int | None:
        """Earliest pending offer expiry (epoch s), for the caller's next ``tick``; None if none."""
        while self._deadlines:
            expires_at, oid, attempt = self._deadlines[0]
            rec = self._orders.get(oid)
            if _live_offer(rec, expires_at, attempt):
                return expires_at
            heapq.heappop(self._deadlines)  # stale: the offer was answered or cancelled
        return None

    # ----------------------------------------------------------------- commands

    def add_order(
        self, order_id: int, now: int, excluded_worker_ids: ArrayLike = ()
    ) -> tuple[Queued]:
        """Queue a new order for auto-assign, optionally with workers it must never get.

        ``DuplicateId`` if the book already holds ``order_id``.
        """
        oid = as_id(order_id, "order_id")
        t = as_time(now)
        excluded = as_id_array(excluded_worker_ids, "excluded_worker_ids")
        if oid in self._orders:
            raise DuplicateId(f"order_id {oid} is already in the offer book")
        rec = _AutoOrder(order_id=oid, status=OrderStatus.PENDING, queued_at=t)
        for wid in excluded.tolist():
            rec.excluded[wid] = _Exclusion(ExclusionReason.GIVEN, t)
        self._orders[oid] = rec
        self._set_status(rec, OrderStatus.PENDING)
        return (Queued(order_id=oid, queued_at=t),)

    def _check_offerable(self, rec: _AutoOrder, wid: int) -> None:
        if rec.status is not OrderStatus.PENDING:
            raise OfferConflict(
                f"order_id {rec.order_id} is {rec.status.value}, only pending orders can be offered"
            )
        holding = self._busy.get(wid)
        if holding is not None:
            raise OfferConflict(
                f"worker_id {wid} already holds an outstanding offer for order_id {holding}"
            )
        if wid in rec.excluded:
            raise OfferConflict(
                f"worker_id {wid} is excluded for order_id {rec.order_id} "
                f"({rec.excluded[wid].reason.value})"
            )

    def _make_offer(self, rec: _AutoOrder, wid: int, t: int) -> OfferMade:
        rec.offers_made += 1
        self._set_status(rec, OrderStatus.OFFERED)
        rec.offer_worker_id = wid
        rec.offered_at = t
        rec.expires_at = t + self.policy.accept_timeout_s
        self._busy[wid] = rec.order_id
        heapq.heappush(self._deadlines, (rec.expires_at, rec.order_id, rec.offers_made))
        return OfferMade(
            order_id=rec.order_id,
            worker_id=wid,
            offered_at=t,
            expires_at=rec.expires_at,
            attempt=rec.offers_made,
        )

    def offer(self, order_id: int, worker_id: int, now: int) -> OfferMade:
        """Offer a pending order to a worker; the offer lapses after ``accept_timeout_s``.

        ``OfferConflict`` if the order is not pending, the worker already holds
        an offer, or the worker is excluded for this order.
        """
        rec = self._get(order_id)
        wid = as_id(worker_id, "worker_id")
        t = as_time(now)
        self._check_offerable(rec, wid)
        return self._make_offer(rec, wid, t)

    def offer_pairs(
        self, order_ids: ArrayLike, worker_ids: ArrayLike, now: int
    ) -> tuple[OfferMade, ...]:
        """Offer ``order_ids[i]`` to ``worker_ids[i]`` (e.g. a match's pairs), all or nothing.

        Every pair is checked before any offer is made, so one bad pair
        (unknown order, busy/excluded worker, an id repeated in the batch)
        raises and leaves the book unchanged.
        """
        oids = as_id_array(order_ids, "order_ids")
        wids = as_id_array(worker_ids, "worker_ids")
        t = as_time(now)
        if oids.shape != wids.shape:
            raise ShapeMismatch(
                f"order_ids and worker_ids must have the same length, got {oids.size} and "
                f"{wids.size}"
            )
        for name, ids in (("order_ids", oids), ("worker_ids", wids)):
            dup = first_duplicate(ids)
            if dup is not None:
                raise DuplicateId(f"{name}[{dup}] = {ids[dup]} appears twice in one batch")
        records = [self._get(oid) for oid in oids.tolist()]
        for rec, wid in zip(records, wids.tolist(), strict=True):
            self._check_offerable(rec, wid)
        return tuple(
            self._make_offer(rec, wid, t) for rec, wid in zip(records, wids.tolist(), strict=True)
        )

    def accept(self, order_id: int, worker_id: int, now: int) -> OfferAccepted | AcceptRejected:
        """A worker accepts an offer: wins iff it is their outstanding offer and ``now < expiry``.

        Repeating the winner's accept returns an equal ``OfferAccepted``.
        """
        rec = self._get(order_id)
        wid = as_id(worker_id, "worker_id")
        t = as_time(now)
        if rec.status is OrderStatus.ASSIGNED:
            if rec.assigned_worker_id == wid:
                assert rec.closed_at is not None
                return OfferAccepted(rec.order_id, wid, rec.closed_at)
            return AcceptRejected(rec.order_id, wid, RejectReason.ALREADY_CLAIMED)
        if rec.status in (OrderStatus.ESCALATED, OrderStatus.CANCELLED):
            return AcceptRejected(rec.order_id, wid, RejectReason.ORDER_CLOSED)
        if rec.status is OrderStatus.OFFERED and rec.offer_worker_id == wid:
            assert rec.expires_at is not None
            if t >= rec.expires_at:
                return AcceptRejected(rec.order_id, wid, RejectReason.EXPIRED)
            rec.assigned_worker_id = wid
            rec.closed_at = t
            self._set_status(rec, OrderStatus.ASSIGNED)
            del self._busy[wid]
            return OfferAccepted(rec.order_id, wid, t)
        return AcceptRejected(rec.order_id, wid, self._not_outstanding_reason(rec, wid))

    @staticmethod
    def _not_outstanding_reason(rec: _AutoOrder, wid: int) -> RejectReason:
        exclusion = rec.excluded.get(wid)
        if exclusion is not None and exclusion.reason is ExclusionReason.EXPIRED:
            return RejectReason.EXPIRED
        if exclusion is not None and exclusion.reason is ExclusionReason.DECLINED:
            return RejectReason.DECLINED
        return RejectReason.NOT_OFFERED

    def _requeue_or_escalate(self, rec: _AutoOrder, at: int) -> Reoffer | Escalated:
        self._set_status(rec, OrderStatus.PENDING)
        rec.offer_worker_id = None
        rec.offered_at = None
        rec.expires_at = None
        if rec.offers_made >= self.policy.max_offers_per_order:
            return self._close_escalated(rec, EscalationReason.MAX_OFFERS.value, at)
        return Reoffer(rec.order_id, tuple(sorted(rec.excluded)), at)

    def _close_escalated(self, rec: _AutoOrder, reason: str, at: int) -> Escalated:
        rec.escalation_reason = reason
        rec.closed_at = at
        self._set_status(rec, OrderStatus.ESCALATED)
        return Escalated(rec.order_id, reason, at)

    def decline(
        self, order_id: int, worker_id: int, now: int, reason: str = "declined"
    ) -> tuple[OfferDeclined, Reoffer | Escalated] | tuple[OfferDeclined] | tuple[DeclineRejected]:
        """The offered worker declines (with a reason): re-queue without them, or escalate.

        Returns ``(OfferDeclined, Reoffer | Escalated)``; a repeated decline
        returns ``(OfferDeclined,)`` equal to the first and changes nothing;
        an invalid one returns ``(DeclineRejected,)``.
        """
        rec = self._get(order_id)
        wid = as_id(worker_id, "worker_id")
        t = as_time(now)
        note = as_reason(reason, "reason")
        exclusion = rec.excluded.get(wid)
        if exclusion is not None and exclusion.reason is ExclusionReason.DECLINED:
            return (OfferDeclined(rec.order_id, wid, exclusion.at, exclusion.note),)
        if rec.status is OrderStatus.OFFERED and rec.offer_worker_id == wid:
            assert rec.expires_at is not None
            if t >= rec.expires_at:
                return (DeclineRejected(rec.order_id, wid, RejectReason.EXPIRED),)
            rec.excluded[wid] = _Exclusion(ExclusionReason.DECLINED, t, note)
            del self._busy[wid]
            declined = OfferDeclined(rec.order_id, wid, t, note)
            return (declined, self._requeue_or_escalate(rec, t))
        if rec.status is OrderStatus.ASSIGNED:
            return (DeclineRejected(rec.order_id, wid, RejectReason.ALREADY_CLAIMED),)
        if rec.status in (OrderStatus.ESCALATED, OrderStatus.CANCELLED):
            return (DeclineRejected(rec.order_id, wid, RejectReason.ORDER_CLOSED),)
        return (DeclineRejected(rec.order_id, wid, self._not_outstanding_reason(rec, wid)),)

    def tick(self, now: int) -> tuple[OfferExpired | Reoffer | Escalated, ...]:
        """Expire every offer with ``expires_at <= now``, earliest first.

        Each expiry yields ``OfferExpired`` then ``Reoffer`` (worker excluded)
        or ``Escalated``, stamped with the exact expiry instant.
        """
        t = as_time(now)
        events: list[OfferExpired | Reoffer | Escalated] = []
        while self._deadlines and self._deadlines[0][0] <= t:
            expires_at, oid, attempt = heapq.heappop(self._deadlines)
            rec = self._orders.get(oid)
            if not _live_offer(rec, expires_at, attempt):
                continue  # answered, cancelled or dropped before it lapsed
            wid = rec.offer_worker_id
            assert wid is not None
            rec.excluded[wid] = _Exclusion(ExclusionReason.EXPIRED, expires_at)
            del self._busy[wid]
            events.append(OfferExpired(oid, wid, expires_at))
            events.append(self._requeue_or_escalate(rec, expires_at))
        return tuple(events)

    def escalate(self, order_id: int, now: int, reason: str) -> tuple[Escalated]:
        """Hand a pending order to a human dispatcher (e.g. ``match`` left it unassigned).

        Repeating it returns the first ``Escalated``. ``OfferConflict`` if the
        order holds an outstanding offer or is assigned/cancelled.
        """
        rec = self._get(order_id)
        t = as_time(now)
        why = as_reason(reason, "reason")
        if rec.status is OrderStatus.ESCALATED:
            assert rec.escalation_reason is not None
            assert rec.closed_at is not None
            return (Escalated(rec.order_id, rec.escalation_reason, rec.closed_at),)
        if rec.status is not OrderStatus.PENDING:
            raise OfferConflict(
                f"order_id {rec.order_id} is {rec.status.value}, only pending orders can be "
                "escalated"
            )
        return (self._close_escalated(rec, why, t),)

    def cancel(
        self, order_id: int, now: int
    ) -> tuple[OfferWithdrawn, Cancelled] | tuple[Cancelled]:
        """Take an order out of dispatch (customer cancelled); withdraws an outstanding offer.

        Repeating it returns the first ``Cancelled``.
        """
        rec = self._get(order_id)
        t = as_time(now)
        if rec.status is OrderStatus.CANCELLED:
            assert rec.closed_at is not None
            return (Cancelled(rec.order_id, rec.closed_at),)
        withdrawn: OfferWithdrawn | None = None
        if rec.status is OrderStatus.OFFERED:
            wid = rec.offer_worker_id
            assert wid is not None
            del self._busy[wid]
            withdrawn = OfferWithdrawn(rec.order_id, wid, t)
            rec.offer_worker_id = rec.offered_at = rec.expires_at = None
        rec.closed_at = t
        self._set_status(rec, OrderStatus.CANCELLED)
        cancelled = Cancelled(rec.order_id, t)
        return (cancelled,) if withdrawn is None else (withdrawn, cancelled)

    def drop_closed(self, closed_before: int) -> int:
        """Forget assigned/escalated/cancelled orders closed before ``closed_before`` (epoch s).

        Bounds memory in long runs; afterwards those ids are unknown (and may
        be re-added). Returns how many were dropped.
        """
        cutoff = as_time(closed_before, "closed_before")
        dropped = 0
        # Closed orders by closing time: pop the old ones instead of scanning every order.
        while self._closed and self._closed[0][0] < cutoff:
            closed_at, oid = heapq.heappop(self._closed)
            rec = self._orders.get(oid)
            if rec is not None and rec.closed_at == closed_at and rec.status in _CLOSED_STATUSES:
                del self._orders[oid]
                dropped += 1
        return dropped

    # ----------------------------------------------------------------- snapshot

    def snapshot(self) -> dict[str, Any]:
        """Whole state as plain dicts/lists/ints/strs (JSON-safe) for persistence or replay."""
        orders = []
        for rec in self._orders.values():
            orders.append(
                {
                    "order_id": rec.order_id,
                    "status": rec.status.value,
                    "queued_at": rec.queued_at,
                    "offers_made": rec.offers_made,
                    "excluded": [
                        {"worker_id": wid, "reason": ex.reason.value, "at": ex.at, "note": ex.note}
                        for wid, ex in rec.excluded.items()
                    ],
                    "offer_worker_id": rec.offer_worker_id,
                    "offered_at": rec.offered_at,
                    "expires_at": rec.expires_at,
                    "assigned_worker_id": rec.assigned_worker_id,
                    "closed_at": rec.closed_at,
                    "escalation_reason": rec.escalation_reason,
                }
            )
        return {"version": SNAPSHOT_VERSION, "policy": self.policy.to_dict(), "orders": orders}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> OfferBook:
        """Rebuild a book from :meth:`snapshot` output; ``InvalidInput`` names a bad field."""
        check_version(data, "offer book")
        book = cls(OfferPolicy.from_dict(field_of(data, "policy", "snapshot")))
        raw_orders = field_of(data, "orders", "snapshot")
        if not isinstance(raw_orders, list):
            raise InvalidInput("snapshot.orders must be a list")
        for i, raw in enumerate(raw_orders):
            where = f"snapshot.orders[{i}]"
            rec = _AutoOrder(
                order_id=as_id(field_of(raw, "order_id", where), f"{where}.order_id"),
                status=as_enum(OrderStatus, field_of(raw, "status", where), f"{where}.status"),
                queued_at=as_time(field_of(raw, "queued_at", where), f"{where}.queued_at"),
                offers_made=as_count(field_of(raw, "offers_made", where), f"{where}.offers_made"),
                offer_worker_id=opt_int(raw.get("offer_worker_id"), f"{where}.offer_worker_id"),
                offered_at=opt_int(raw.get("offered_at"), f"{where}.offered_at"),
                expires_at=opt_int(raw.get("expires_at"), f"{where}.expires_at"),
                assigned_worker_id=opt_int(
                    raw.get("assigned_worker_id"), f"{where}.assigned_worker_id"
                ),
                closed_at=opt_int(raw.get("closed_at"), f"{where}.closed_at"),
                escalation_reason=raw.get("escalation_reason"),
            )
            for j, ex in enumerate(field_of(raw, "excluded", where)):
                ex_where = f"{where}.excluded[{j}]"
                wid = as_id(field_of(ex, "worker_id", ex_where), f"{ex_where}.worker_id")
                rec.excluded[wid] = _Exclusion(
                    as_enum(
                        ExclusionReason, field_of(ex, "reason", ex_where), f"{ex_where}.reason"
                    ),
                    as_time(field_of(ex, "at", ex_where), f"{ex_where}.at"),
                    str(ex.get("note", "")),
                )
            if rec.order_id in book._orders:
                raise DuplicateId(f"{where}.order_id {rec.order_id} appears twice")
            book._orders[rec.order_id] = rec
            book._restore_consistency(rec, where)
            book._set_status(rec, rec.status)
        return book

    def _restore_consistency(self, rec: _AutoOrder, where: str) -> None:
        if rec.status is OrderStatus.OFFERED:
            wid, expires_at = rec.offer_worker_id, rec.expires_at
            if wid is None or expires_at is None or rec.offers_made < 1:
                raise InvalidInput(f"{where} is offered but lacks offer_worker_id/expires_at")
            if wid in self._busy:
                raise InvalidInput(f"{where}: worker_id {wid} holds two outstanding offers")
            self._busy[wid] = rec.order_id
            heapq.heappush(self._deadlines, (expires_at, rec.order_id, rec.offers_made))
        elif rec.status is OrderStatus.ASSIGNED and (
            rec.assigned_worker_id is None or rec.closed_at is None
        ):
            raise InvalidInput(f"{where} is assigned but lacks assigned_worker_id/closed_at")
        elif rec.status is OrderStatus.ESCALATED and (
            not isinstance(rec.escalation_reason, str) or rec.closed_at is None
        ):
            raise InvalidInput(f"{where} is escalated but lacks escalation_reason/closed_at")
        elif rec.status is OrderStatus.CANCELLED and rec.closed_at is None:
            raise InvalidInput(f"{where} is cancelled but lacks closed_at")
