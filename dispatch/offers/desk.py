"""One region's dispatch front: :class:`OfferDesk` wires the book, the pool and the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.errors import DuplicateId, InvalidInput, UnknownOrder
from dispatch.model import Fleet
from dispatch.offers.base import (
    SNAPSHOT_VERSION,
    DispatchMode,
    FallbackReason,
    RejectReason,
    as_id,
    as_id_array,
    as_time,
    check_version,
    field_of,
)
from dispatch.offers.book import (
    OfferBook,
)
from dispatch.offers.events import (
    AcceptRejected,
    Claimed,
    ClaimRejected,
    Escalated,
    Event,
    FallbackToAutoAssign,
    OfferAccepted,
    OfferMade,
)
from dispatch.offers.ledger import (
    FairnessLedger,
)
from dispatch.offers.policy import (
    OfferPolicy,
)
from dispatch.offers.pool import (
    GrabPool,
)


class OfferDesk:
    """One region's dispatch front: mode routing, grab fallback, offers and fairness together.

    New orders go to the :class:`GrabPool` in ``grab`` mode and to the
    :class:`OfferBook` in ``auto`` mode; grab orders nobody claimed fall back
    to the book on ``tick``. Every event produced is fed to the
    :class:`FairnessLedger`. Each order lives in exactly one active place, so
    it is never lost and never gets two winners across the two mechanisms.
    """

    def __init__(self, policy: OfferPolicy | None = None) -> None:
        """Empty desk under ``policy`` (default :class:`OfferPolicy`)."""
        self.policy = policy if policy is not None else OfferPolicy()
        self.book = OfferBook(self.policy)
        self.pool = GrabPool(self.policy)
        self.ledger = FairnessLedger(self.policy)
        # Exclusions given at submit time for grab orders, applied if they fall back.
        self._fallback_exclusions: dict[int, tuple[int, ...]] = {}

    def _observed(self, events: tuple[Event, ...]) -> tuple[Event, ...]:
        self.ledger.observe(events)
        return events

    def submit(
        self,
        order_id: int,
        now: int,
        eligible_worker_ids: ArrayLike | None = None,
        excluded_worker_ids: ArrayLike = (),
    ) -> tuple[Event, ...]:
        """Bring a new order into dispatch according to ``policy.mode``.

        ``grab`` mode needs ``eligible_worker_ids`` (minus ``excluded_worker_ids``);
        with none left the order goes straight to auto-assign.
        """
        oid = as_id(order_id, "order_id")
        t = as_time(now)
        excluded = np.unique(as_id_array(excluded_worker_ids, "excluded_worker_ids"))
        if oid in self.book or oid in self.pool:
            raise DuplicateId(f"order_id {oid} was already submitted")
        if self.policy.mode is DispatchMode.AUTO:
            return self._observed(self.book.add_order(oid, t, excluded))
        if eligible_worker_ids is None:
            raise InvalidInput("eligible_worker_ids is required in grab mode")
        eligible = as_id_array(eligible_worker_ids, "eligible_worker_ids")
        eligible = eligible[~np.isin(eligible, excluded)]
        if eligible.size == 0:
            fallback = FallbackToAutoAssign(oid, t, FallbackReason.NO_ELIGIBLE_WORKERS)
            return self._observed((fallback, *self.book.add_order(oid, t, excluded)))
        opened = self.pool.open(oid, eligible, t)
        if excluded.size:
            self._fallback_exclusions[oid] = tuple(excluded.tolist())
        return self._observed((opened,))

    def offer_pairs(
        self, order_ids: ArrayLike, worker_ids: ArrayLike, now: int
    ) -> tuple[OfferMade, ...]:
        """Offer matched pairs (all or nothing); see :meth:`OfferBook.offer_pairs`."""
        made = self.book.offer_pairs(order_ids, worker_ids, now)
        self.ledger.observe(made)
        return made

    def offer(self, order_id: int, worker_id: int, now: int) -> OfferMade:
        """Offer one pending order to one worker; see :meth:`OfferBook.offer`."""
        made = self.book.offer(order_id, worker_id, now)
        self.ledger.observe((made,))
        return made

    def accept(self, order_id: int, worker_id: int, now: int) -> OfferAccepted | AcceptRejected:
        """A worker accepts an auto-assign offer; see :meth:`OfferBook.accept`."""
        return self.book.accept(order_id, worker_id, now)

    def decline(
        self, order_id: int, worker_id: int, now: int, reason: str = "declined"
    ) -> tuple[Event, ...]:
        """A worker declines an auto-assign offer; see :meth:`OfferBook.decline`."""
        return self._observed(self.book.decline(order_id, worker_id, now, reason))

    def claim(self, order_id: int, worker_id: int, now: int) -> Claimed | ClaimRejected:
        """A worker grabs a pool order; rejected with ``worker_busy`` while they hold an offer."""
        outcome = self.pool.check_claim(order_id, worker_id, now)
        wid = as_id(worker_id, "worker_id")
        if outcome is None and self.book.outstanding_offer(wid) is not None:
            return ClaimRejected(as_id(order_id, "order_id"), wid, RejectReason.WORKER_BUSY)
        if outcome is not None:
            return outcome
        claimed = self.pool.claim(order_id, wid, now)
        self.ledger.observe((claimed,))
        self._fallback_exclusions.pop(claimed.order_id, None)
        return claimed

    def tick(self, now: int) -> tuple[Event, ...]:
        """Fire every deadline up to ``now``: grab fallbacks (queued for auto-assign), expiries."""
        t = as_time(now)
        events: list[Event] = []
        for fallback in self.pool.tick(t):
            excluded = self._fallback_exclusions.pop(fallback.order_id, ())
            events.append(fallback)
            events.extend(self.book.add_order(fallback.order_id, fallback.at, excluded))
        events.extend(self.book.tick(t))
        return self._observed(tuple(events))

    def escalate(self, order_id: int, now: int, reason: str) -> tuple[Escalated]:
        """Hand a pending auto-assign order to a human; see :meth:`OfferBook.escalate`."""
        return self.book.escalate(order_id, now, reason)

    def cancel(self, order_id: int, now: int) -> tuple[Event, ...]:
        """Take an order out of dispatch wherever it is (pool or book)."""
        oid = as_id(order_id, "order_id")
        if oid in self.book:
            return self.book.cancel(oid, now)
        if oid not in self.pool:
            raise UnknownOrder(f"order_id {oid} was never submitted")
        self._fallback_exclusions.pop(oid, None)
        return self.pool.cancel(oid, now)

    def next_deadline(self) -> int | None:
        """Earliest offer expiry or grab close (epoch s): when the caller should next ``tick``."""
        deadlines = [
            d for d in (self.book.next_deadline(), self.pool.next_deadline()) if d is not None
        ]
        return min(deadlines) if deadlines else None

    def offer_eligible_mask(self, worker_ids: ArrayLike, now: int) -> NDArray[np.bool_]:
        """Workers that may get a new offer now (not busy, under fairness cap, not cooling down)."""
        return self.ledger.eligible_mask(worker_ids, now, self.book.busy_worker_ids())

    def fleet_for_batch(self, fleet: Fleet, now: int) -> Fleet:
        """``fleet`` with busy, capped and cooling-down workers unavailable and recent load added.

        See :meth:`FairnessLedger.apply_to_fleet`; ``now`` epoch seconds.
        """
        return self.ledger.apply_to_fleet(fleet, now, self.book.busy_worker_ids())

    def drop_closed(self, closed_before: int) -> int:
        """Forget orders closed before ``closed_before`` in book and pool; returns the count."""
        return self.book.drop_closed(closed_before) + self.pool.drop_closed(closed_before)

    def snapshot(self) -> dict[str, Any]:
        """Whole state as plain dicts/lists/ints/strs (JSON-safe) for persistence or replay."""
        return {
            "version": SNAPSHOT_VERSION,
            "policy": self.policy.to_dict(),
            "book": self.book.snapshot(),
            "pool": self.pool.snapshot(),
            "ledger": self.ledger.snapshot(),
            "fallback_exclusions": [
                [oid, list(excluded)] for oid, excluded in self._fallback_exclusions.items()
            ],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> OfferDesk:
        """Rebuild a desk from :meth:`snapshot` output; ``InvalidInput`` names a bad field."""
        check_version(data, "offer desk")
        desk = cls(OfferPolicy.from_dict(field_of(data, "policy", "snapshot")))
        desk.book = OfferBook.from_snapshot(field_of(data, "book", "snapshot"))
        desk.pool = GrabPool.from_snapshot(field_of(data, "pool", "snapshot"))
        desk.ledger = FairnessLedger.from_snapshot(field_of(data, "ledger", "snapshot"))
        for name, part in (("book", desk.book), ("pool", desk.pool), ("ledger", desk.ledger)):
            if part.policy != desk.policy:
                raise InvalidInput(f"snapshot.{name}.policy differs from snapshot.policy")
        for i, pair in enumerate(field_of(data, "fallback_exclusions", "snapshot")):
            where = f"snapshot.fallback_exclusions[{i}]"
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise InvalidInput(f"{where} must be [order_id, [worker_id, ...]]")
            oid = as_id(pair[0], f"{where}[0]")
            desk._fallback_exclusions[oid] = tuple(as_id_array(pair[1], f"{where}[1]").tolist())
        return desk
