"""Offer policies: auto-assign (派单) offers with accept timeouts, grab pool (抢单), fairness.

Pure state machines with an injected clock. Every method takes ``now`` (int
epoch seconds) and returns *events* — frozen dataclasses describing what
happened (``OfferMade``, ``OfferExpired``, ``Reoffer``, ``Claimed``,
``FallbackToAutoAssign``, ...) — for the caller to carry out (notify the
worker app, write order_events, persist). Nothing here sleeps, reads a clock,
does I/O or keeps global state: the discrete-event simulator drives it with a
simulated clock (scheduling its next wake-up from ``next_deadline()``) and the
API with the wall clock.

Pieces, usable alone or through :class:`OfferDesk`, which wires them:

* :class:`OfferBook` — 派单. An order is queued, the caller's ``match`` picks
  a worker (its ``OrderBatch`` built with :meth:`OfferBook.exclusions_csr`,
  its ``Fleet`` passed through :meth:`OfferDesk.fleet_for_batch` so busy,
  over-loaded and cooling-down workers are unavailable), and
  :meth:`OfferBook.offer_pairs` makes the offers with an accept timeout.
  Accept wins; decline or timeout re-queues the order with that worker
  excluded; after ``max_offers_per_order`` offers the order escalates to a
  human dispatcher.
* :class:`GrabPool` — 抢单. An order is shown to the eligible workers the
  caller chose (candidates within ``grab_rings`` rings); the first valid
  claim wins; after ``grab_window_s`` an unclaimed order falls back to
  auto-assign.
* :class:`FairnessLedger` — a sliding window of offers and claims per worker,
  plus a short cooldown after a missed (declined or timed-out) offer, exposed
  as arrays aligned with a caller's worker ids (see its docstring).

Time semantics: an offer made at ``t`` may be accepted while
``now < t + accept_timeout_s``; ``tick(now)`` expires it as soon as
``now >= t + accept_timeout_s`` and the emitted event carries that exact
expiry instant, however late the tick came. Once a tick has expired an
offer, no later call revives it, even with an earlier ``now`` (a clock that
stepped back): the accept is rejected with ``expired``.

Idempotency: repeating an accept or claim by the winner returns an equal
success event, never a second winner; repeating a decline returns the
original ``OfferDeclined`` and changes nothing.

Concurrency: each object is a single-writer state machine ("first valid
claim wins" holds within one instance). Across processes the API adds its own
guard (row lock / Redis) and drives one instance per region.
"""

from __future__ import annotations

from dispatch.offers import events
from dispatch.offers.base import (
    SNAPSHOT_VERSION,
    DispatchMode,
    EscalationReason,
    ExclusionReason,
    FallbackReason,
    GrabStatus,
    IdArray,
    OfferConflict,
    OrderStatus,
    RejectReason,
)
from dispatch.offers.book import (
    OfferBook,
    OfferState,
)
from dispatch.offers.desk import (
    OfferDesk,
)
from dispatch.offers.events import *  # noqa: F403  (events.__all__, listed once there)
from dispatch.offers.ledger import (
    FairnessLedger,
)
from dispatch.offers.policy import (
    OfferPolicy,
)
from dispatch.offers.pool import (
    GrabPool,
    GrabState,
)

__all__ = [
    "SNAPSHOT_VERSION",
    "DispatchMode",
    "EscalationReason",
    "ExclusionReason",
    "FairnessLedger",
    "FallbackReason",
    "GrabPool",
    "GrabState",
    "GrabStatus",
    "IdArray",
    "OfferBook",
    "OfferConflict",
    "OfferDesk",
    "OfferPolicy",
    "OfferState",
    "OrderStatus",
    "RejectReason",
]
__all__ += events.__all__
