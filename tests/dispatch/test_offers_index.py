"""The offer book's and ledger's incremental indices answer as a full scan of their state would.

Random walks of offers, answers, timeouts, cancellations, escalations and drops; after every
step the indexed queries (pending orders, exclusions as CSR, recent load, drop_closed) are
compared with the same answers computed from scratch from the public views and snapshots.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.offers import (
    FairnessLedger,
    OfferBook,
    OfferDesk,
    OfferMade,
    OfferPolicy,
    OrderStatus,
)

POLICY = OfferPolicy(accept_timeout_s=20, max_offers_per_order=3, fairness_window_s=100)


def _pending_by_scan(book: OfferBook) -> list[int]:
    ids = book.order_ids(OrderStatus.PENDING).tolist()
    return sorted(ids, key=lambda oid: (book.state(oid).queued_at, oid))


def _load_by_scan(ledger: FairnessLedger, workers: np.ndarray, now: int) -> np.ndarray:
    loads = ledger.snapshot()["loads"]
    window = ledger.policy.fairness_window_s
    live = [wid for at, wid in loads if now - window < at <= now]
    return np.array([live.count(w) for w in workers.tolist()], dtype=np.int64)


def _closed_before(book: OfferBook, cutoff: int) -> int:
    closed = ("assigned", "escalated", "cancelled")
    return sum(
        1
        for o in book.snapshot()["orders"]
        if o["status"] in closed and o["closed_at"] is not None and o["closed_at"] < cutoff
    )


step = st.tuples(st.integers(0, 7), st.integers(0, 11), st.integers(0, 5), st.integers(0, 9))


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=1, max_size=80))
def test_indices_agree_with_a_full_scan(steps: list[tuple[int, int, int, int]]) -> None:
    desk = OfferDesk(POLICY)
    book, ledger = desk.book, desk.ledger
    workers = np.arange(1, 7, dtype=np.int64)
    now = 0
    next_oid = 1
    for action, a, b, dt in steps:
        now += dt
        if action == 0:  # a new order
            desk.submit(next_oid, now)
            next_oid += 1
        elif action == 1:  # offer the oldest pending order to a free, allowed worker
            pending = book.pending_order_ids()
            if pending.size:
                oid = int(pending[a % pending.size])
                free = [
                    int(w)
                    for w in workers
                    if book.outstanding_offer(int(w)) is None
                    and int(w) not in book.exclusions(oid).tolist()
                ]
                if free:
                    desk.offer_pairs([oid], [free[b % len(free)]], now)
        elif action in (2, 3):  # the offered worker accepts or declines
            offered = book.order_ids(OrderStatus.OFFERED)
            if offered.size:
                oid = int(offered[a % offered.size])
                wid = book.state(oid).offer_worker_id
                assert wid is not None
                if action == 2:
                    desk.accept(oid, wid, now)
                else:
                    desk.decline(oid, wid, now)
        elif action == 4:
            desk.tick(now)
        elif action == 5 and next_oid > 1:  # cancel any known order
            oid = 1 + a % (next_oid - 1)
            if oid in book:
                desk.cancel(oid, now)
        elif action == 6:  # escalate a pending order
            pending = book.pending_order_ids()
            if pending.size:
                desk.escalate(int(pending[a % pending.size]), now, "manual")
        elif action == 7:  # forget closed orders
            cutoff = max(now - b * 5, 0)
            expected = _closed_before(book, cutoff)
            assert desk.drop_closed(cutoff) == expected
        assert book.pending_order_ids().tolist() == _pending_by_scan(book)
        pending = book.pending_order_ids()
        flat, offsets = book.exclusions_csr(pending)
        for i, oid in enumerate(pending.tolist()):
            assert flat[offsets[i] : offsets[i + 1]].tolist() == book.exclusions(oid).tolist()
        for at in (now, now + 50, max(now - 30, 0)):
            np.testing.assert_array_equal(
                ledger.recent_load(workers, at), _load_by_scan(ledger, workers, at)
            )


def test_recent_load_out_of_order_log_falls_back_to_a_scan() -> None:
    ledger = FairnessLedger(POLICY)
    ledger.observe([OfferMade(1, 7, 50, 70, 1), OfferMade(2, 7, 40, 60, 1)])  # clock skew
    ledger.observe([OfferMade(3, 8, 55, 75, 1)])
    np.testing.assert_array_equal(ledger.recent_load([7, 8, 9], 55), [2, 1, 0])
    np.testing.assert_array_equal(ledger.recent_load([7, 8, 9], 145), [1, 1, 0])
    np.testing.assert_array_equal(ledger.recent_load([7, 8, 9], 45), [1, 0, 0])
