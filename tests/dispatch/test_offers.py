"""Offer policies: auto-assign offers, grab pool, fairness, snapshots, stateful invariants."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from dispatch.assign import match
from dispatch.errors import DuplicateId, InvalidInput, ShapeMismatch, UnknownOrder
from dispatch.model import Fleet, OrderBatch
from dispatch.offers import (
    AcceptRejected,
    Cancelled,
    Claimed,
    ClaimRejected,
    DeclineRejected,
    DispatchMode,
    Escalated,
    EscalationReason,
    FairnessLedger,
    FallbackReason,
    FallbackToAutoAssign,
    GrabOpened,
    GrabPool,
    GrabStatus,
    OfferAccepted,
    OfferBook,
    OfferConflict,
    OfferDeclined,
    OfferDesk,
    OfferExpired,
    OfferMade,
    OfferPolicy,
    OfferWithdrawn,
    OrderStatus,
    Queued,
    RejectReason,
    Reoffer,
)

T0 = 1_700_000_000  # an arbitrary epoch second; every test derives its times from it


@pytest.fixture
def policy() -> OfferPolicy:
    return OfferPolicy(
        accept_timeout_s=30,
        grab_window_s=60,
        max_offers_per_order=3,
        fairness_window_s=600,
        fairness_max_offers=3,
        miss_cooldown_s=20,
    )


@pytest.fixture
def book(policy: OfferPolicy) -> OfferBook:
    return OfferBook(policy)


@pytest.fixture
def pool(policy: OfferPolicy) -> GrabPool:
    return GrabPool(policy)


# --------------------------------------------------------------------------- policy


def test_policy_defaults_match_design() -> None:
    policy = OfferPolicy()
    assert policy.mode is DispatchMode.AUTO
    assert policy.accept_timeout_s == 30


def test_policy_mode_accepts_plain_strings() -> None:
    assert OfferPolicy(mode="grab").mode is DispatchMode.GRAB  # type: ignore[arg-type]


def test_policy_unknown_mode_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="mode") as info:
        OfferPolicy(mode="lottery")  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("accept_timeout_s", -1),
        ("accept_timeout_s", 0),
        ("grab_window_s", -5),
        ("grab_rings", -1),
        ("max_offers_per_order", 0),
        ("fairness_window_s", 0),
        ("fairness_max_offers", 0),
        ("miss_cooldown_s", -1),
        ("accept_timeout_s", 2.5),
        ("grab_window_s", True),
        ("max_offers_per_order", "3"),
    ],
)
def test_policy_rejects_bad_values_naming_the_field(name: str, bad: object) -> None:
    with pytest.raises(InvalidInput, match=name):
        OfferPolicy(**{name: bad})  # type: ignore[arg-type]


def test_policy_dict_round_trip_and_unknown_keys(policy: OfferPolicy) -> None:
    assert OfferPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    with pytest.raises(InvalidInput, match="surge"):
        OfferPolicy.from_dict({**policy.to_dict(), "surge": 2})


# --------------------------------------------------------------------------- offer book


def test_offer_expires_exactly_at_timeout(book: OfferBook, policy: OfferPolicy) -> None:
    book.add_order(1, T0)
    made = book.offer(1, 10, T0 + 5)
    assert made.expires_at == T0 + 5 + policy.accept_timeout_s
    assert book.next_deadline() == made.expires_at
    assert book.tick(made.expires_at - 1) == ()
    assert book.state(1).status is OrderStatus.OFFERED
    events = book.tick(made.expires_at)
    assert events == (
        OfferExpired(1, 10, made.expires_at),
        Reoffer(1, (10,), made.expires_at),
    )
    assert book.state(1).status is OrderStatus.PENDING
    assert book.next_deadline() is None


def test_late_tick_stamps_the_exact_expiry(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.add_order(2, T0)
    first = book.offer(1, 10, T0)
    second = book.offer(2, 11, T0 + 7)
    events = book.tick(T0 + 1_000)
    expired = [e for e in events if isinstance(e, OfferExpired)]
    # Earliest first, each with its own expiry instant rather than the tick time.
    assert expired == [
        OfferExpired(1, 10, first.expires_at),
        OfferExpired(2, 11, second.expires_at),
    ]


def test_accept_before_expiry_wins_and_repeats_are_idempotent(book: OfferBook) -> None:
    book.add_order(1, T0)
    made = book.offer(1, 10, T0)
    won = book.accept(1, 10, made.expires_at - 1)
    assert won == OfferAccepted(1, 10, made.expires_at - 1)
    assert book.accept(1, 10, made.expires_at + 50) == won
    assert book.accept(1, 11, T0 + 1) == AcceptRejected(1, 11, RejectReason.ALREADY_CLAIMED)
    assert book.state(1).assigned_worker_id == 10
    assert book.busy_worker_ids().size == 0
    assert book.tick(made.expires_at + 100) == ()


def test_accept_at_expiry_is_rejected_even_before_tick(book: OfferBook) -> None:
    book.add_order(1, T0)
    made = book.offer(1, 10, T0)
    assert book.accept(1, 10, made.expires_at) == AcceptRejected(1, 10, RejectReason.EXPIRED)
    book.tick(made.expires_at)
    # A clock that stepped back cannot revive the expired offer.
    assert book.accept(1, 10, T0 + 1) == AcceptRejected(1, 10, RejectReason.EXPIRED)


def test_accept_by_a_worker_without_the_offer(book: OfferBook) -> None:
    book.add_order(1, T0)
    assert book.accept(1, 10, T0) == AcceptRejected(1, 10, RejectReason.NOT_OFFERED)
    book.offer(1, 10, T0)
    assert book.accept(1, 11, T0 + 1) == AcceptRejected(1, 11, RejectReason.NOT_OFFERED)


def test_decline_requeues_with_worker_excluded(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.offer(1, 10, T0)
    events = book.decline(1, 10, T0 + 3, "too far")
    assert events == (OfferDeclined(1, 10, T0 + 3, "too far"), Reoffer(1, (10,), T0 + 3))
    assert book.exclusions(1).tolist() == [10]
    assert book.outstanding_offer(10) is None
    # Repeating the decline changes nothing and answers the same.
    assert book.decline(1, 10, T0 + 9, "other") == (events[0],)
    assert book.accept(1, 10, T0 + 4) == AcceptRejected(1, 10, RejectReason.DECLINED)
    with pytest.raises(OfferConflict, match="excluded"):
        book.offer(1, 10, T0 + 5)


def test_decline_rejections(book: OfferBook) -> None:
    book.add_order(1, T0)
    assert book.decline(1, 10, T0) == (DeclineRejected(1, 10, RejectReason.NOT_OFFERED),)
    made = book.offer(1, 10, T0)
    assert book.decline(1, 10, made.expires_at) == (DeclineRejected(1, 10, RejectReason.EXPIRED),)
    book.accept(1, 10, T0 + 1)
    assert book.decline(1, 10, T0 + 2) == (DeclineRejected(1, 10, RejectReason.ALREADY_CLAIMED),)


def test_max_offers_escalates(book: OfferBook, policy: OfferPolicy) -> None:
    book.add_order(1, T0)
    now = T0
    events: tuple[Any, ...] = ()
    for worker in range(policy.max_offers_per_order):
        made = book.offer(1, worker, now)
        events = book.decline(1, worker, now + 1) if worker % 2 else book.tick(made.expires_at)
        now = made.expires_at + 1
    assert isinstance(events[-1], Escalated)
    assert events[-1].reason == EscalationReason.MAX_OFFERS.value
    state = book.state(1)
    assert state.status is OrderStatus.ESCALATED
    assert state.offers_made == policy.max_offers_per_order
    assert book.accept(1, 0, now) == AcceptRejected(1, 0, RejectReason.ORDER_CLOSED)
    with pytest.raises(OfferConflict, match="escalated"):
        book.offer(1, 99, now)


def test_worker_holds_at_most_one_offer(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.add_order(2, T0)
    book.offer(1, 10, T0)
    assert book.busy_worker_ids().tolist() == [10]
    assert book.busy_mask([11, 10, 12]).tolist() == [False, True, False]
    with pytest.raises(OfferConflict, match="worker_id 10"):
        book.offer(2, 10, T0)
    with pytest.raises(OfferConflict, match="order_id 1 is offered"):
        book.offer(1, 11, T0)


def test_offer_pairs_is_all_or_nothing(book: OfferBook) -> None:
    for oid in (1, 2, 3):
        book.add_order(oid, T0)
    book.add_order(4, T0, excluded_worker_ids=[13])
    with pytest.raises(OfferConflict, match="excluded"):
        book.offer_pairs(np.array([1, 2, 4]), np.array([11, 12, 13]), T0)
    assert book.busy_worker_ids().size == 0
    assert book.pending_order_ids().tolist() == [1, 2, 3, 4]
    with pytest.raises(ShapeMismatch, match="same length"):
        book.offer_pairs([1, 2], [11], T0)
    with pytest.raises(DuplicateId, match=r"worker_ids\[1\]"):
        book.offer_pairs([1, 2], [11, 11], T0)
    with pytest.raises(UnknownOrder, match="77"):
        book.offer_pairs([1, 77], [11, 12], T0)
    made = book.offer_pairs(np.array([3, 1], dtype=np.int64), np.array([12, 11]), T0)
    assert [(m.order_id, m.worker_id) for m in made] == [(3, 12), (1, 11)]
    assert all(isinstance(m.order_id, int) and isinstance(m.worker_id, int) for m in made)


def test_exclusions_csr_feeds_order_batch(book: OfferBook) -> None:
    book.add_order(1, T0, excluded_worker_ids=[7])
    book.add_order(2, T0)
    book.add_order(3, T0)
    book.offer(3, 10, T0)
    book.decline(3, 10, T0 + 1)
    book.offer(3, 11, T0 + 2)
    book.tick(T0 + 1_000)
    order_ids = book.pending_order_ids()
    flat, offsets = book.exclusions_csr(order_ids)
    batch = OrderBatch.from_arrays(
        order_ids,
        np.full(order_ids.size, 31.23),
        np.full(order_ids.size, 121.47),
        excluded_worker_ids=flat,
        excluded_offsets=offsets,
    )
    for row, oid in enumerate(order_ids.tolist()):
        assert batch.excluded_for(row).tolist() == book.exclusions(oid).tolist()
    assert book.exclusions(3).tolist() == [10, 11]


def test_pending_is_fifo_by_queue_time(book: OfferBook) -> None:
    book.add_order(5, T0 + 2)
    book.add_order(9, T0)
    book.add_order(1, T0 + 2)
    assert book.pending_order_ids().tolist() == [9, 1, 5]


def test_cancel_withdraws_the_outstanding_offer(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.offer(1, 10, T0)
    events = book.cancel(1, T0 + 4)
    assert events == (OfferWithdrawn(1, 10, T0 + 4), Cancelled(1, T0 + 4))
    assert book.cancel(1, T0 + 9) == (Cancelled(1, T0 + 4),)
    assert book.outstanding_offer(10) is None
    assert book.accept(1, 10, T0 + 5) == AcceptRejected(1, 10, RejectReason.ORDER_CLOSED)
    assert book.tick(T0 + 1_000) == ()


def test_manual_escalation(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.add_order(2, T0)
    first = book.escalate(1, T0 + 1, EscalationReason.NO_CANDIDATES)
    assert first == (Escalated(1, "no_candidates", T0 + 1),)
    assert book.escalate(1, T0 + 5, "again") == first
    book.offer(2, 10, T0)
    with pytest.raises(OfferConflict, match="order_id 2"):
        book.escalate(2, T0 + 1, "busy")
    with pytest.raises(InvalidInput, match="reason"):
        book.escalate(2, T0 + 1, " ")


def test_drop_closed_forgets_only_old_closed_orders(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.add_order(2, T0)
    book.add_order(3, T0)
    book.offer(1, 10, T0)
    book.accept(1, 10, T0 + 1)
    book.cancel(2, T0 + 50)
    assert book.drop_closed(T0 + 10) == 1
    assert 1 not in book
    assert book.order_ids().tolist() == [2, 3]
    with pytest.raises(UnknownOrder):
        book.state(1)


def test_readded_order_is_not_expired_by_its_old_offer(book: OfferBook) -> None:
    book.add_order(1, T0)
    old = book.offer(1, 10, T0)
    book.accept(1, 10, T0 + 1)
    book.drop_closed(T0 + 2)
    book.add_order(1, T0 + 3)
    new = book.offer(1, 11, T0 + 3)
    assert new.attempt == old.attempt
    assert book.next_deadline() == new.expires_at
    assert book.tick(old.expires_at) == ()
    assert book.state(1).status is OrderStatus.OFFERED


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.add_order(True, T0), "order_id"),
        (lambda b: b.add_order(1, -1), "now"),
        (lambda b: b.add_order(1, 1.5), "now"),
        (lambda b: b.add_order(1, T0, excluded_worker_ids=[1.5]), "excluded_worker_ids"),
        (lambda b: b.offer(1, "w", T0), "worker_id"),
        (lambda b: b.decline(1, 2, T0, ""), "reason"),
        (lambda b: b.order_ids("nope"), "status"),
    ],
)
def test_bad_inputs_raise_naming_the_field(book: OfferBook, call: Any, field: str) -> None:
    book.add_order(1, T0 - 10)
    with pytest.raises(InvalidInput, match=field):
        call(book)


def test_unknown_and_duplicate_orders(book: OfferBook) -> None:
    with pytest.raises(UnknownOrder, match="42") as info:
        book.accept(42, 1, T0)
    assert isinstance(info.value, KeyError)
    book.add_order(42, T0)
    with pytest.raises(DuplicateId, match="42"):
        book.add_order(42, T0)


# --------------------------------------------------------------------------- grab pool


def test_first_claim_wins(pool: GrabPool) -> None:
    opened = pool.open(1, [12, 10, 11, 10], T0)
    assert opened == GrabOpened(1, (10, 11, 12), T0, T0 + 60)
    won = pool.claim(1, 11, T0 + 5)
    assert won == Claimed(1, 11, T0 + 5)
    assert pool.claim(1, 10, T0 + 6) == ClaimRejected(1, 10, RejectReason.ALREADY_CLAIMED)
    assert pool.claim(1, 11, T0 + 7) == won
    assert pool.state(1).winner_worker_id == 11
    assert pool.tick(T0 + 1_000) == ()


def test_claim_rejections(pool: GrabPool) -> None:
    pool.open(1, [10], T0)
    assert pool.claim(1, 99, T0 + 1) == ClaimRejected(1, 99, RejectReason.NOT_ELIGIBLE)
    assert pool.claim(1, 10, T0 + 60) == ClaimRejected(1, 10, RejectReason.EXPIRED)
    pool.open(2, [10], T0)
    pool.cancel(2, T0 + 1)
    assert pool.claim(2, 10, T0 + 2) == ClaimRejected(2, 10, RejectReason.ORDER_CLOSED)
    with pytest.raises(UnknownOrder):
        pool.claim(3, 10, T0)


def test_unclaimed_order_falls_back_exactly_after_window(pool: GrabPool) -> None:
    pool.open(1, [10, 11], T0)
    pool.open(2, [10], T0 + 10)
    assert pool.next_deadline() == T0 + 60
    assert pool.tick(T0 + 59) == ()
    assert pool.tick(T0 + 60) == (FallbackToAutoAssign(1, T0 + 60, FallbackReason.WINDOW_ELAPSED),)
    assert pool.state(1).status is GrabStatus.FELL_BACK
    assert pool.claim(1, 10, T0 + 61) == ClaimRejected(1, 10, RejectReason.EXPIRED)
    assert pool.tick(T0 + 500) == (FallbackToAutoAssign(2, T0 + 70, FallbackReason.WINDOW_ELAPSED),)
    assert pool.next_deadline() is None


def test_visible_orders_follow_eligibility_and_window(pool: GrabPool) -> None:
    pool.open(1, [10, 11], T0)
    pool.open(2, [10], T0 + 30)
    pool.open(3, [11], T0)
    assert pool.visible_order_ids(10, T0 + 31).tolist() == [1, 2]
    assert pool.visible_order_ids(10, T0 + 60).tolist() == [2]  # order 1's window is over
    pool.claim(2, 10, T0 + 61)
    assert pool.visible_order_ids(10, T0 + 61).size == 0
    assert pool.visible_order_ids(11, T0 + 1).tolist() == [1, 3]


def test_pool_cancel_after_fallback_is_a_conflict(pool: GrabPool) -> None:
    pool.open(1, [10], T0)
    pool.tick(T0 + 60)
    with pytest.raises(OfferConflict, match="fell back"):
        pool.cancel(1, T0 + 61)
    with pytest.raises(DuplicateId):
        pool.open(1, [10], T0 + 61)


# --------------------------------------------------------------------------- fairness


def test_load_slides_out_of_the_window(policy: OfferPolicy) -> None:
    ledger = FairnessLedger(policy)
    ledger.observe([OfferMade(1, 10, T0, T0 + 30, 1), Claimed(2, 10, T0 + 100)])
    ledger.observe([OfferMade(3, 11, T0 + 5, T0 + 35, 1)])
    ids = np.array([12, 11, 10])
    assert ledger.recent_load(ids, T0 + 100).tolist() == [0, 1, 2]
    window = policy.fairness_window_s
    assert ledger.recent_load(ids, T0 + window - 1).tolist() == [0, 1, 2]
    assert ledger.recent_load(ids, T0 + window).tolist() == [0, 1, 1]
    assert ledger.recent_load(ids, T0 + 100 + window).tolist() == [0, 0, 0]


def test_penalty_and_cap_follow_the_load(policy: OfferPolicy) -> None:
    ledger = FairnessLedger(policy)
    cap = policy.fairness_max_offers
    ledger.observe(OfferMade(i, 10, T0 + i, T0 + i + 30, 1) for i in range(cap + 2))
    ledger.observe([OfferMade(99, 11, T0, T0 + 30, 1)])
    now = T0 + cap + 2
    penalty = ledger.penalty([10, 11, 12], now)
    np.testing.assert_allclose(penalty, [1.0, 1.0 / cap, 0.0])
    assert ledger.eligible_mask([10, 11, 12], now).tolist() == [False, True, True]
    assert ledger.eligible_mask([10, 11, 12], now, busy_worker_ids=[12]).tolist() == [
        False,
        True,
        False,
    ]


def test_cooldown_after_a_miss(policy: OfferPolicy) -> None:
    ledger = FairnessLedger(policy)
    ledger.observe([OfferDeclined(1, 10, T0, "no"), OfferExpired(2, 11, T0 + 5)])
    cool = policy.miss_cooldown_s
    assert ledger.cooling_down([10, 11, 12], T0 + cool - 1).tolist() == [True, True, False]
    assert ledger.cooling_down([10, 11, 12], T0 + cool).tolist() == [False, True, False]
    assert ledger.cooling_down([10, 11, 12], T0 + cool + 5).tolist() == [False, False, False]


def test_fairness_arrays_align_with_a_fleet(policy: OfferPolicy) -> None:
    fleet = Fleet.from_arrays([30, 10, 20], [31.2, 31.21, 31.22], [121.4, 121.41, 121.42])
    ledger = FairnessLedger(policy)
    ledger.observe([OfferMade(1, 20, T0, T0 + 30, 1), OfferMade(2, 20, T0 + 1, T0 + 31, 1)])
    assert ledger.recent_load(fleet.ids, T0 + 2).tolist() == [0, 0, 2]
    assert ledger.penalty(fleet.ids, T0 + 2).shape == fleet.ids.shape


def test_apply_to_fleet_filters_and_loads(policy: OfferPolicy) -> None:
    fleet = Fleet.from_arrays(
        [1, 2, 3, 4],
        [31.2] * 4,
        [121.4] * 4,
        available=[True, True, True, False],
        load_today=[5, 0, 0, 0],
    )
    ledger = FairnessLedger(policy)
    ledger.observe([OfferMade(9, 1, T0, T0 + 30, 1), OfferDeclined(8, 2, T0, "no")])
    adjusted = ledger.apply_to_fleet(fleet, T0 + 1, busy_worker_ids=[3])
    assert adjusted.available.tolist() == [True, False, False, False]
    assert adjusted.load_today.tolist() == [6, 0, 0, 0]
    assert fleet.available.tolist() == [True, True, True, False]  # input untouched


# --------------------------------------------------------------------------- desk


def test_auto_mode_queues_new_orders(policy: OfferPolicy) -> None:
    desk = OfferDesk(policy)
    assert desk.submit(1, T0) == (Queued(1, T0),)
    assert desk.book.pending_order_ids().tolist() == [1]
    with pytest.raises(DuplicateId):
        desk.submit(1, T0)


def test_grab_mode_falls_back_with_given_exclusions() -> None:
    desk = OfferDesk(OfferPolicy(mode=DispatchMode.GRAB, grab_window_s=45))
    opened = desk.submit(1, T0, eligible_worker_ids=[10, 11, 12], excluded_worker_ids=[12])
    assert opened == (GrabOpened(1, (10, 11), T0, T0 + 45),)
    assert desk.next_deadline() == T0 + 45
    assert desk.tick(T0 + 44) == ()
    events = desk.tick(T0 + 45)
    assert events == (
        FallbackToAutoAssign(1, T0 + 45, FallbackReason.WINDOW_ELAPSED),
        Queued(1, T0 + 45),
    )
    assert desk.book.exclusions(1).tolist() == [12]
    assert desk.claim(1, 10, T0 + 46) == ClaimRejected(1, 10, RejectReason.EXPIRED)


def test_grab_mode_without_eligible_workers_goes_to_auto_assign() -> None:
    desk = OfferDesk(OfferPolicy(mode=DispatchMode.GRAB))
    events = desk.submit(1, T0, eligible_worker_ids=[5], excluded_worker_ids=[5])
    assert events == (
        FallbackToAutoAssign(1, T0, FallbackReason.NO_ELIGIBLE_WORKERS),
        Queued(1, T0),
    )
    with pytest.raises(InvalidInput, match="eligible_worker_ids"):
        desk.submit(2, T0)


def test_claim_is_refused_while_the_worker_holds_an_offer() -> None:
    desk = OfferDesk(OfferPolicy(mode=DispatchMode.GRAB))
    desk.submit(1, T0, eligible_worker_ids=[10])
    desk.submit(2, T0, eligible_worker_ids=[])
    desk.offer(2, 10, T0)
    assert desk.claim(1, 10, T0 + 1) == ClaimRejected(1, 10, RejectReason.WORKER_BUSY)
    desk.decline(2, 10, T0 + 2)
    assert desk.claim(1, 10, T0 + 3) == Claimed(1, 10, T0 + 3)
    # Offer, decline and claim all reached the ledger.
    assert desk.ledger.recent_load([10], T0 + 3).tolist() == [2]
    assert desk.offer_eligible_mask([10, 11], T0 + 3).tolist() == [False, True]


def test_batches_through_match_honour_exclusions_and_busy_workers() -> None:
    """The dispatcher loop: pending orders + adjusted fleet -> match -> offers -> misses."""
    policy = OfferPolicy(accept_timeout_s=30, max_offers_per_order=3, miss_cooldown_s=0)
    desk = OfferDesk(policy)
    rng = np.random.default_rng(7)
    worker_ids = np.arange(100, 108)
    fleet = Fleet.from_arrays(
        worker_ids,
        31.23 + rng.uniform(-0.01, 0.01, worker_ids.size),
        121.47 + rng.uniform(-0.01, 0.01, worker_ids.size),
    )
    order_lat = 31.23 + rng.uniform(-0.01, 0.01, 4)
    order_lng = 121.47 + rng.uniform(-0.01, 0.01, 4)
    for oid in range(4):
        desk.submit(oid, T0)
    offered: dict[int, list[int]] = {oid: [] for oid in range(4)}
    now = T0
    for round_no in range(4):
        pending = desk.book.pending_order_ids()
        if pending.size == 0:
            break
        flat, offsets = desk.book.exclusions_csr(pending)
        batch = OrderBatch.from_arrays(
            pending,
            order_lat[pending],
            order_lng[pending],
            excluded_worker_ids=flat,
            excluded_offsets=offsets,
        )
        result = match(batch, desk.fleet_for_batch(fleet, now), now=now)
        made = desk.offer_pairs(result.order_ids, result.worker_ids, now)
        assert made
        for offer in made:
            assert offer.worker_id not in offered[offer.order_id]
            offered[offer.order_id].append(offer.worker_id)
        # While offers are out, the next batch sees those workers as unavailable.
        busy = {offer.worker_id for offer in made}
        mid_batch_fleet = desk.fleet_for_batch(fleet, now)
        assert set(fleet.ids[~mid_batch_fleet.available].tolist()) == busy
        # Round 0: everyone declines; round 1: nobody answers; then order 0 is accepted.
        for offer in made:
            if round_no == 0:
                desk.decline(offer.order_id, offer.worker_id, now + 1, "too far")
            elif round_no >= 2 and offer.order_id == 0:
                assert isinstance(desk.accept(0, offer.worker_id, now + 1), OfferAccepted)
        now += policy.accept_timeout_s
        desk.tick(now)
    statuses = {oid: desk.book.state(oid).status for oid in range(4)}
    assert statuses[0] is OrderStatus.ASSIGNED
    assert {statuses[o] for o in (1, 2, 3)} == {OrderStatus.ESCALATED}
    assert all(len(workers) == policy.max_offers_per_order for workers in offered.values())


def _drive(desk: OfferDesk) -> list[Any]:
    """A fixed script touching every kind of state; returns every event."""
    events: list[Any] = []
    events += desk.submit(1, T0, eligible_worker_ids=[10, 11])
    events += desk.submit(2, T0, eligible_worker_ids=[12])
    events += desk.submit(3, T0 + 1, eligible_worker_ids=[10], excluded_worker_ids=[13])
    events.append(desk.claim(1, 11, T0 + 2))
    events += desk.tick(T0 + 61)
    events += desk.offer_pairs([2, 3], [12, 14], T0 + 62)
    events += desk.decline(2, 12, T0 + 63, "sick")
    events.append(desk.accept(3, 14, T0 + 64))
    return events


def test_desk_snapshot_round_trips_through_json() -> None:
    policy = OfferPolicy(mode=DispatchMode.GRAB)
    desk = OfferDesk(policy)
    _drive(desk)
    desk.submit(4, T0 + 65, eligible_worker_ids=[10], excluded_worker_ids=[15])
    desk.submit(5, T0 + 65, eligible_worker_ids=[], excluded_worker_ids=[])
    desk.offer(5, 16, T0 + 66)
    data = json.loads(json.dumps(desk.snapshot()))
    restored = OfferDesk.from_snapshot(data)
    assert restored.snapshot() == desk.snapshot()
    # Both continue identically.
    for d in (desk, restored):
        d.offer(2, 10, T0 + 70)
    assert restored.tick(T0 + 1_000) == desk.tick(T0 + 1_000)
    assert restored.book.state(4) == desk.book.state(4)
    assert restored.book.exclusions(4).tolist() == [15]
    assert restored.claim(1, 11, T0 + 1_001) == desk.claim(1, 11, T0 + 1_001)


def test_desk_replay_is_deterministic() -> None:
    runs = [_drive(OfferDesk(OfferPolicy(mode=DispatchMode.GRAB))) for _ in range(2)]
    assert runs[0] == runs[1]
    assert any(isinstance(e, Claimed) for e in runs[0])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["book"]["orders"][0].update(status="lost"), r"orders\[0\]\.status"),
        (lambda d: d["book"]["orders"][0].pop("queued_at"), r"orders\[0\]\.queued_at"),
        (lambda d: d["book"]["orders"][0].update(offers_made=-1), r"orders\[0\]\.offers_made"),
        (lambda d: d["pool"]["orders"][0].update(opened_at=-3), r"orders\[0\]\.opened_at"),
        (lambda d: d["ledger"].update(loads=[[1, 2, 3]]), r"loads\[0\]"),
        (lambda d: d["policy"].update(accept_timeout_s=-1), "accept_timeout_s"),
        (lambda d: d["book"]["policy"].update(accept_timeout_s=99), "book.policy"),
    ],
)
def test_bad_snapshots_name_the_field(mutate: Any, field: str) -> None:
    desk = OfferDesk(OfferPolicy(mode=DispatchMode.GRAB))
    _drive(desk)
    data = json.loads(json.dumps(desk.snapshot()))
    mutate(data)
    with pytest.raises(InvalidInput, match=field):
        OfferDesk.from_snapshot(data)


def test_snapshot_with_a_double_booked_worker_is_refused(book: OfferBook) -> None:
    book.add_order(1, T0)
    book.add_order(2, T0)
    book.offer(1, 10, T0)
    data = book.snapshot()
    data["orders"][1].update(
        status="offered", offer_worker_id=10, offered_at=T0, expires_at=T0 + 30, offers_made=1
    )
    with pytest.raises(InvalidInput, match="two outstanding offers"):
        OfferBook.from_snapshot(data)


# --------------------------------------------------------------------------- properties


@given(
    timeout=st.integers(1, 600),
    offered_at=st.integers(0, 10**9),
    answer_after=st.integers(0, 1_200),
)
def test_accept_wins_iff_before_expiry(timeout: int, offered_at: int, answer_after: int) -> None:
    book = OfferBook(OfferPolicy(accept_timeout_s=timeout))
    book.add_order(1, offered_at)
    book.offer(1, 7, offered_at)
    outcome = book.accept(1, 7, offered_at + answer_after)
    assert isinstance(outcome, OfferAccepted) == (answer_after < timeout)
    fired = book.tick(offered_at + answer_after)
    assert bool(fired) == (answer_after >= timeout)


# --------------------------------------------------------------------------- stateful
#
# One checker holds a desk plus an independent oracle (winners, misses, deadlines) and
# checks every answer against it. Two drivers run it: hypothesis' rule-based state
# machine (shrinks failures to a minimal story) and a seeded random walk (long runs
# with weighted actions, so boundary races such as an accept at the exact expiry
# second happen on every run).

N_ORDERS = 6
N_WORKERS = 5
Pick = Callable[[Sequence[Any]], Any]


class DeskChecker:
    """A desk under test plus the oracle every answer is checked against."""

    def __init__(self, mode: DispatchMode) -> None:
        self.policy = OfferPolicy(
            mode=mode,
            accept_timeout_s=10,
            grab_window_s=15,
            max_offers_per_order=3,
            fairness_window_s=60,
            fairness_max_offers=4,
            miss_cooldown_s=5,
        )
        self.desk = OfferDesk(self.policy)
        self.now = T0
        self.submitted: set[int] = set()
        self.winner: dict[int, int] = {}
        self.missed: set[tuple[int, int]] = set()  # (order, worker): declined, timed out, given
        self.offer_expiry: dict[int, int] = {}  # order -> expiry of its latest offer
        self.grab_close: dict[int, int] = {}

    def record(self, events: Iterable[Any]) -> None:
        """Check each event against the oracle, then update it."""
        for event in events:
            if isinstance(event, OfferAccepted | Claimed):
                assert self.winner.setdefault(event.order_id, event.worker_id) == event.worker_id
            elif isinstance(event, OfferMade):
                assert (event.order_id, event.worker_id) not in self.missed
                assert event.expires_at == event.offered_at + self.policy.accept_timeout_s
                self.offer_expiry[event.order_id] = event.expires_at
            elif isinstance(event, OfferDeclined):
                self.missed.add((event.order_id, event.worker_id))
            elif isinstance(event, OfferExpired):
                assert event.expired_at == self.offer_expiry[event.order_id] <= self.now
                self.missed.add((event.order_id, event.worker_id))
            elif isinstance(event, GrabOpened):
                assert event.closes_at == event.opened_at + self.policy.grab_window_s
                self.grab_close[event.order_id] = event.closes_at
            elif (
                isinstance(event, FallbackToAutoAssign)
                and event.reason is FallbackReason.WINDOW_ELAPSED
            ):
                assert event.at == self.grab_close[event.order_id] <= self.now

    # ----------------------------------------------------------------- time

    def advance(self, dt: int) -> None:
        self.now += dt

    def tick(self) -> None:
        self.record(self.desk.tick(self.now))
        # After tick(now) every deadline <= now has fired, and none later.
        deadline = self.desk.next_deadline()
        assert deadline is None or deadline > self.now
        for order in self.desk.book.order_ids(OrderStatus.OFFERED).tolist():
            expires_at = self.desk.book.state(order).expires_at
            assert expires_at is not None
            assert expires_at > self.now
        for order in self.desk.pool.order_ids(GrabStatus.OPEN).tolist():
            assert self.desk.pool.state(order).closes_at > self.now

    def jump_to_next_deadline(self, tick: bool) -> None:
        """Stand exactly on the next deadline; without a tick, answers race the expiry."""
        deadline = self.desk.next_deadline()
        if deadline is None or self.now >= deadline:
            return
        self.now = deadline - 1
        if tick:
            assert self.desk.tick(self.now) == ()  # nothing fires one second early
        self.now = deadline
        if tick:
            self.tick()

    def race_the_next_deadline(self, pick: Pick, accept: bool) -> None:
        """At exactly a deadline, the offered worker answers or an eligible worker claims."""
        deadline = self.desk.next_deadline()
        if deadline is None or self.now > deadline:
            return
        self.now = deadline
        book, pool = self.desk.book, self.desk.pool
        offered = [
            (book.state(o).offer_worker_id, o)
            for o in book.order_ids(OrderStatus.OFFERED).tolist()
            if book.state(o).expires_at == deadline
        ]
        closing = [
            o
            for o in pool.order_ids(GrabStatus.OPEN).tolist()
            if pool.state(o).closes_at == deadline
        ]
        if offered:
            worker, order = pick(offered)
            self.answer(order, worker, accept)
        elif closing:
            order = pick(closing)
            eligible = pool.state(order).eligible_worker_ids
            if eligible:
                self.claim(order, pick(eligible))

    # ----------------------------------------------------------------- commands

    def submit(self, order: int, eligible: list[int], excluded: list[int]) -> None:
        if order in self.submitted:
            with pytest.raises(DuplicateId):
                self.desk.submit(order, self.now, eligible, excluded)
            return
        self.record(self.desk.submit(order, self.now, eligible, excluded))
        self.submitted.add(order)
        self.missed.update((order, worker) for worker in excluded)

    def offer(self, order: int, worker: int) -> None:
        """Any offer at all: refused with OfferConflict exactly when it breaks a rule."""
        if order not in self.desk.book:
            with pytest.raises(UnknownOrder):
                self.desk.offer(order, worker, self.now)
            return
        state = self.desk.book.state(order)
        allowed = (
            state.status is OrderStatus.PENDING
            and self.desk.book.outstanding_offer(worker) is None
            and worker not in state.excluded_worker_ids
        )
        if not allowed:
            with pytest.raises(OfferConflict):
                self.desk.offer(order, worker, self.now)
            return
        self.record((self.desk.offer(order, worker, self.now),))

    def offer_batch(self, pick: Pick) -> None:
        """What the dispatcher does: pending orders x free workers, exclusions honoured."""
        workers = np.arange(N_WORKERS)
        free = workers[~self.desk.book.busy_mask(workers)].tolist()
        pairs = []
        for order in self.desk.book.pending_order_ids().tolist():
            options = [w for w in free if w not in self.desk.book.exclusions(order)]
            if options:
                worker = pick(options)
                pairs.append((order, worker))
                free.remove(worker)
        if pairs:
            orders, chosen = zip(*pairs, strict=True)
            self.record(self.desk.offer_pairs(list(orders), list(chosen), self.now))

    def answer(self, order: int, worker: int, accept: bool) -> None:
        """``worker`` accepts or declines ``order``; the outcome must match the oracle."""
        if order not in self.desk.book:
            with pytest.raises(UnknownOrder):
                self.desk.accept(order, worker, self.now)
            return
        before = self.desk.book.state(order)
        in_time = (
            before.status is OrderStatus.OFFERED
            and before.offer_worker_id == worker
            and before.expires_at is not None
            and self.now < before.expires_at
        )
        if accept:
            outcome = self.desk.accept(order, worker, self.now)
            repeat = before.status is OrderStatus.ASSIGNED and before.assigned_worker_id == worker
            assert isinstance(outcome, OfferAccepted) == (in_time or repeat)
            assert self.desk.accept(order, worker, self.now) == outcome  # idempotent
            self.record((outcome,))
            return
        events = self.desk.decline(order, worker, self.now, "busy")
        assert (len(events) == 2) == in_time
        if in_time:
            status = self.desk.book.state(order).status
            assert status in (OrderStatus.PENDING, OrderStatus.ESCALATED)
            assert self.desk.book.outstanding_offer(worker) is None
        self.record(events)

    def answer_own_offer(self, pick: Pick, accept: bool) -> None:
        busy = self.desk.book.busy_worker_ids().tolist()
        if busy:
            worker = pick(busy)
            order = self.desk.book.outstanding_offer(worker)
            assert order is not None
            self.answer(order, worker, accept)

    def claim(self, order: int, worker: int) -> None:
        """``worker`` grabs ``order``; the outcome must match the oracle."""
        if order not in self.desk.pool:
            with pytest.raises(UnknownOrder):
                self.desk.claim(order, worker, self.now)
            return
        before = self.desk.pool.state(order)
        outcome = self.desk.claim(order, worker, self.now)
        should_win = (
            before.status is GrabStatus.OPEN
            and self.now < before.closes_at
            and worker in before.eligible_worker_ids
            and self.desk.book.outstanding_offer(worker) is None
        ) or (before.status is GrabStatus.CLAIMED and before.winner_worker_id == worker)
        assert isinstance(outcome, Claimed) == should_win
        assert self.desk.claim(order, worker, self.now) == outcome  # idempotent
        self.record((outcome,))

    def claim_shown_order(self, pick: Pick, worker: int) -> None:
        visible = self.desk.pool.visible_order_ids(worker, self.now).tolist()
        if visible:
            self.claim(pick(visible), worker)

    def cancel(self, order: int) -> None:
        if order in self.submitted:
            self.record(self.desk.cancel(order, self.now))

    def escalate(self, order: int) -> None:
        if order in self.desk.book and self.desk.book.state(order).status is OrderStatus.PENDING:
            self.record(self.desk.escalate(order, self.now, EscalationReason.NO_CANDIDATES))

    # ----------------------------------------------------------------- invariants

    def check_invariants(self, snapshot: bool = True) -> None:
        book, pool = self.desk.book, self.desk.pool
        # Never lost: each submitted order is in the book or the pool, and a grab order
        # that fell back is in the book.
        for order in self.submitted:
            assert order in book or order in pool
            if order in pool and pool.state(order).status is GrabStatus.FELL_BACK:
                assert order in book
        # A worker holds at most one outstanding offer; winners match the oracle.
        holders: dict[int, int] = {}
        for order in book.order_ids().tolist():
            state = book.state(order)
            assert state.offers_made <= self.policy.max_offers_per_order
            if state.status is OrderStatus.OFFERED:
                assert state.offer_worker_id is not None
                assert state.offer_worker_id not in holders
                holders[state.offer_worker_id] = order
            if state.status is OrderStatus.ASSIGNED:
                assert self.winner[order] == state.assigned_worker_id
        assert sorted(holders) == book.busy_worker_ids().tolist()
        for order in pool.order_ids(GrabStatus.CLAIMED).tolist():
            assert self.winner[order] == pool.state(order).winner_worker_id
            assert order not in book  # a claimed grab order never reaches the offer book
        if not snapshot:
            return
        # The state survives a JSON snapshot unchanged.
        data = json.loads(json.dumps(self.desk.snapshot()))
        assert OfferDesk.from_snapshot(data).snapshot() == data


ORDERS = st.integers(0, N_ORDERS - 1)
WORKERS = st.integers(0, N_WORKERS - 1)


class DeskMachine(RuleBasedStateMachine):
    """Hypothesis driver: random rules against one desk, shrunk to a minimal story."""

    checker: DeskChecker

    @initialize(mode=st.sampled_from(list(DispatchMode)))
    def start(self, mode: DispatchMode) -> None:
        self.checker = DeskChecker(mode)

    @staticmethod
    def picker(data: st.DataObject) -> Pick:
        return lambda options: data.draw(st.sampled_from(list(options)))

    @rule(dt=st.integers(0, 8))
    def advance(self, dt: int) -> None:
        self.checker.advance(dt)

    @rule(tick=st.booleans())
    def jump_to_next_deadline(self, tick: bool) -> None:
        self.checker.jump_to_next_deadline(tick)

    @rule(data=st.data(), accept=st.booleans())
    def race_the_next_deadline(self, data: st.DataObject, accept: bool) -> None:
        self.checker.race_the_next_deadline(self.picker(data), accept)

    @rule()
    def tick(self) -> None:
        self.checker.tick()

    @rule(
        order=ORDERS,
        eligible=st.lists(WORKERS, min_size=1, max_size=4) | st.just([]),
        excluded=st.lists(WORKERS, max_size=2),
    )
    def submit(self, order: int, eligible: list[int], excluded: list[int]) -> None:
        self.checker.submit(order, eligible, excluded)

    @rule(order=ORDERS, worker=WORKERS)
    def offer(self, order: int, worker: int) -> None:
        self.checker.offer(order, worker)

    @rule(data=st.data())
    def offer_batch(self, data: st.DataObject) -> None:
        self.checker.offer_batch(self.picker(data))

    @rule(data=st.data(), accept=st.booleans())
    def answer_own_offer(self, data: st.DataObject, accept: bool) -> None:
        self.checker.answer_own_offer(self.picker(data), accept)

    @rule(order=ORDERS, worker=WORKERS, accept=st.booleans())
    def answer_any(self, order: int, worker: int, accept: bool) -> None:
        if order in self.checker.submitted:
            self.checker.answer(order, worker, accept)

    @rule(data=st.data(), worker=WORKERS)
    def claim_shown_order(self, data: st.DataObject, worker: int) -> None:
        self.checker.claim_shown_order(self.picker(data), worker)

    @rule(order=ORDERS, worker=WORKERS)
    def claim_any(self, order: int, worker: int) -> None:
        if order in self.checker.submitted:
            self.checker.claim(order, worker)

    # Cancels and manual escalations end an order for good; keep them rare so runs keep
    # enough live orders to race offers, claims and timeouts.
    @rule(order=ORDERS, roll=st.integers(0, 7))
    def close_an_order(self, order: int, roll: int) -> None:
        if roll == 0:
            self.checker.cancel(order)
        elif roll == 1:
            self.checker.escalate(order)

    @invariant()
    def invariants_hold(self) -> None:
        if hasattr(self, "checker"):
            self.checker.check_invariants()


DeskMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)
test_desk_state_machine = DeskMachine.TestCase


@pytest.mark.parametrize("mode", list(DispatchMode))
@pytest.mark.parametrize("seed", range(6))
def test_desk_random_walk(mode: DispatchMode, seed: int) -> None:
    """Seeded long runs with weighted actions; every answer checked against the oracle."""
    rng = np.random.default_rng(seed)
    checker = DeskChecker(mode)

    def pick(options: Sequence[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    def some_workers(high: int) -> list[int]:
        return [int(w) for w in rng.integers(0, N_WORKERS, size=int(rng.integers(0, high + 1)))]

    actions: list[tuple[float, Callable[[], None]]] = [
        (3, lambda: checker.advance(int(rng.integers(0, 6)))),
        (1, lambda: checker.jump_to_next_deadline(bool(rng.integers(2)))),
        (2, lambda: checker.race_the_next_deadline(pick, bool(rng.integers(2)))),
        (2, checker.tick),
        (
            3,
            lambda: checker.submit(
                int(rng.integers(N_ORDERS * 4)), some_workers(4), some_workers(1)
            ),
        ),
        (1, lambda: checker.offer(int(rng.integers(N_ORDERS * 4)), int(rng.integers(N_WORKERS)))),
        (3, lambda: checker.offer_batch(pick)),
        (3, lambda: checker.answer_own_offer(pick, bool(rng.integers(3)))),
        (1, lambda: checker.answer(pick(sorted(checker.submitted) or [0]), pick(range(5)), True)),
        (3, lambda: checker.claim_shown_order(pick, int(rng.integers(N_WORKERS)))),
        (1, lambda: checker.claim(pick(sorted(checker.submitted) or [0]), pick(range(5)))),
        (0.3, lambda: checker.cancel(int(rng.integers(N_ORDERS * 4)))),
        (0.3, lambda: checker.escalate(int(rng.integers(N_ORDERS * 4)))),
    ]
    weights = np.array([w for w, _ in actions])
    steps = rng.choice(len(actions), size=400, p=weights / weights.sum())
    for i, step in enumerate(steps.tolist()):
        actions[step][1]()
        checker.check_invariants(snapshot=i % 20 == 0)
    # The run exercised both outcomes rather than only rejections.
    assert checker.winner
    assert checker.missed
