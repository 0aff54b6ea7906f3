"""Offer policies: auto-assign offers, grab pool, fairness, snapshots, stateful invariants."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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

ORDERS = st.integers(0, 5)
WORKERS = st.integers(0, 4)


class DeskMachine(RuleBasedStateMachine):
    """Random submits/offers/accepts/declines/claims/cancels/ticks against one desk."""

    @initialize(mode=st.sampled_from(list(DispatchMode)))
    def start(self, mode: DispatchMode) -> None:
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
        self.missed: set[tuple[int, int]] = set()  # (order, worker) declined or timed out
        self.offer_expiry: dict[int, int] = {}  # order -> expiry of its latest offer
        self.grab_close: dict[int, int] = {}

    def record(self, events: Any) -> None:
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
                assert event.expired_at == self.offer_expiry[event.order_id]
                assert event.expired_at <= self.now
                self.missed.add((event.order_id, event.worker_id))
            elif isinstance(event, GrabOpened):
                self.grab_close[event.order_id] = event.closes_at
            elif (
                isinstance(event, FallbackToAutoAssign)
                and event.reason is FallbackReason.WINDOW_ELAPSED
            ):
                assert event.at == self.grab_close[event.order_id] <= self.now

    @rule(dt=st.integers(0, 12))
    def advance(self, dt: int) -> None:
        self.now += dt

    @rule()
    def jump_to_next_deadline(self) -> None:
        """Stand exactly on a deadline without ticking, so answers race the expiry."""
        deadline = self.desk.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)

    @rule()
    def jump_to_next_deadline_and_tick(self) -> None:
        deadline = self.desk.next_deadline()
        if deadline is not None and self.now < deadline:
            self.now = deadline - 1
            assert self.desk.tick(self.now) == ()  # nothing fires one second early
            self.now = deadline
        self.record(self.desk.tick(self.now))
        self.check_nothing_overdue()

    @rule()
    def tick(self) -> None:
        self.record(self.desk.tick(self.now))
        self.check_nothing_overdue()

    def check_nothing_overdue(self) -> None:
        """After tick(now) every deadline <= now has fired."""
        deadline = self.desk.next_deadline()
        assert deadline is None or deadline > self.now
        for order in self.desk.book.order_ids(OrderStatus.OFFERED).tolist():
            expires_at = self.desk.book.state(order).expires_at
            assert expires_at is not None
            assert expires_at > self.now
        for order in self.desk.pool.order_ids(GrabStatus.OPEN).tolist():
            assert self.desk.pool.state(order).closes_at > self.now

    @rule(order=ORDERS, eligible=st.lists(WORKERS, max_size=4), excluded=st.lists(WORKERS))
    def submit(self, order: int, eligible: list[int], excluded: list[int]) -> None:
        if order in self.submitted:
            with pytest.raises(DuplicateId):
                self.desk.submit(order, self.now, eligible, excluded)
            return
        self.record(self.desk.submit(order, self.now, eligible, excluded))
        self.submitted.add(order)
        for worker in set(excluded):
            self.missed.add((order, worker))  # never offer a given exclusion either

    @rule(order=ORDERS, worker=WORKERS)
    def offer(self, order: int, worker: int) -> None:
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

    @rule(data=st.data())
    def offer_batch_to_eligible_workers(self, data: st.DataObject) -> None:
        """What the dispatcher does: pending orders x eligible workers, exclusions honoured."""
        pending = self.desk.book.pending_order_ids().tolist()
        workers = np.arange(5)
        free = workers[~self.desk.book.busy_mask(workers)].tolist()
        pairs = []
        for order in pending:
            options = [w for w in free if w not in self.desk.book.exclusions(order)]
            if options:
                worker = data.draw(st.sampled_from(options))
                pairs.append((order, worker))
                free.remove(worker)
        if pairs:
            orders, workers_chosen = zip(*pairs, strict=True)
            self.record(self.desk.offer_pairs(list(orders), list(workers_chosen), self.now))

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data(), worker=WORKERS)
    def accept(self, data: st.DataObject, worker: int) -> None:
        order = data.draw(st.sampled_from(sorted(self.submitted)))
        if order in self.desk.book:
            self.accept_and_check(order, worker)

    @precondition(lambda self: self.desk.book.busy_worker_ids().size > 0)
    @rule(data=st.data(), accept=st.booleans())
    def answer_own_offer(self, data: st.DataObject, accept: bool) -> None:
        """A worker holding an offer answers it (the common case)."""
        worker = data.draw(st.sampled_from(self.desk.book.busy_worker_ids().tolist()))
        order = self.desk.book.outstanding_offer(worker)
        assert order is not None
        if accept:
            self.accept_and_check(order, worker)
        else:
            self.record(self.desk.decline(order, worker, self.now, "no"))

    def accept_and_check(self, order: int, worker: int) -> None:
        before = self.desk.book.state(order)
        outcome = self.desk.accept(order, worker, self.now)
        should_win = (
            before.status is OrderStatus.OFFERED
            and before.offer_worker_id == worker
            and before.expires_at is not None
            and self.now < before.expires_at
        ) or (before.status is OrderStatus.ASSIGNED and before.assigned_worker_id == worker)
        assert isinstance(outcome, OfferAccepted) == should_win
        self.record((outcome,))

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data(), worker=WORKERS)
    def decline(self, data: st.DataObject, worker: int) -> None:
        order = data.draw(st.sampled_from(sorted(self.submitted)))
        if order in self.desk.book:
            self.record(self.desk.decline(order, worker, self.now, "busy"))

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data(), worker=WORKERS)
    def claim(self, data: st.DataObject, worker: int) -> None:
        order = data.draw(st.sampled_from(sorted(self.submitted)))
        if order not in self.desk.pool:
            return
        outcome = self.desk.claim(order, worker, self.now)
        again = self.desk.claim(order, worker, self.now)
        if isinstance(outcome, Claimed):
            assert again == outcome
        self.record((outcome,))

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(sorted(self.submitted)))
        self.record(self.desk.cancel(order, self.now))

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def escalate_pending(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(sorted(self.submitted)))
        if order in self.desk.book and self.desk.book.state(order).status is OrderStatus.PENDING:
            self.record(self.desk.escalate(order, self.now, EscalationReason.NO_CANDIDATES))

    @invariant()
    def never_lost(self) -> None:
        if not hasattr(self, "desk"):
            return
        for order in self.submitted:
            in_book = order in self.desk.book
            in_pool = order in self.desk.pool
            assert in_book or in_pool
            if in_pool and self.desk.pool.state(order).status is GrabStatus.FELL_BACK:
                assert in_book

    @invariant()
    def one_offer_per_worker_and_one_winner_per_order(self) -> None:
        if not hasattr(self, "desk"):
            return
        holders: dict[int, int] = {}
        for order in self.desk.book.order_ids().tolist():
            state = self.desk.book.state(order)
            if state.status is OrderStatus.OFFERED:
                assert state.offer_worker_id is not None
                assert state.offer_worker_id not in holders
                holders[state.offer_worker_id] = order
                assert state.offers_made <= self.policy.max_offers_per_order
            if state.status is OrderStatus.ASSIGNED:
                assert self.winner[order] == state.assigned_worker_id
        assert sorted(holders) == self.desk.book.busy_worker_ids().tolist()
        for order in self.desk.pool.order_ids(GrabStatus.CLAIMED).tolist():
            assert self.winner[order] == self.desk.pool.state(order).winner_worker_id
            # A claimed grab order never also reaches the offer book.
            assert order not in self.desk.book

    @invariant()
    def snapshot_round_trips(self) -> None:
        if not hasattr(self, "desk"):
            return
        data = json.loads(json.dumps(self.desk.snapshot()))
        assert OfferDesk.from_snapshot(data).snapshot() == data


DeskMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_desk_state_machine = DeskMachine.TestCase
