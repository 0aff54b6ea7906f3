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

import heapq
import itertools
import operator
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeGuard, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.errors import DispatchError, DuplicateId, InvalidInput, ShapeMismatch, UnknownOrder
from dispatch.model import Fleet

IdArray: TypeAlias = NDArray[np.int64]

#: Version of the plain-dict snapshot layout written by ``snapshot()``.
SNAPSHOT_VERSION = 1


class OfferConflict(DispatchError, RuntimeError):
    """A caller asked for a transition the current state forbids.

    Examples: offering an order that is not pending, offering a worker who
    already holds an outstanding offer or who is excluded for that order.
    These are caller bugs (the inputs to ``match`` should have prevented
    them), unlike a worker's late accept, which is an ordinary rejection event.
    """


class DispatchMode(StrEnum):
    """How new orders reach workers."""

    AUTO = "auto"  # 派单: the platform picks the worker and offers the order
    GRAB = "grab"  # 抢单: eligible workers see the order and the first claim wins


class RejectReason(StrEnum):
    """Why an accept, decline or claim was refused; stable codes for the API."""

    ALREADY_CLAIMED = "already_claimed"  # another worker already won the order
    NOT_ELIGIBLE = "not_eligible"  # grab: the worker was not shown this order
    EXPIRED = "expired"  # the accept timeout or grab window is over
    NOT_OFFERED = "not_offered"  # auto: no outstanding offer to this worker
    DECLINED = "declined"  # auto: this worker already declined the order
    ORDER_CLOSED = "order_closed"  # the order was cancelled or escalated
    WORKER_BUSY = "worker_busy"  # the worker holds an outstanding offer elsewhere


class ExclusionReason(StrEnum):
    """Why a worker may no longer be offered an order."""

    DECLINED = "declined"
    EXPIRED = "expired"
    GIVEN = "given"  # passed in by the caller when the order was queued


class EscalationReason(StrEnum):
    """Standard reasons an order goes to a human dispatcher (callers may use others)."""

    MAX_OFFERS = "max_offers_reached"
    NO_CANDIDATES = "no_candidates"


class FallbackReason(StrEnum):
    """Why a grab-pool order moved to auto-assign."""

    WINDOW_ELAPSED = "grab_window_elapsed"
    NO_ELIGIBLE_WORKERS = "no_eligible_workers"


class OrderStatus(StrEnum):
    """State of an order in the :class:`OfferBook`."""

    PENDING = "pending"  # waiting for the next match
    OFFERED = "offered"  # one outstanding offer
    ASSIGNED = "assigned"  # accepted; terminal for the book
    ESCALATED = "escalated"  # handed to a human dispatcher; terminal
    CANCELLED = "cancelled"  # withdrawn by the caller; terminal


class GrabStatus(StrEnum):
    """State of an order in the :class:`GrabPool`."""

    OPEN = "open"
    CLAIMED = "claimed"  # terminal
    FELL_BACK = "fell_back"  # moved to auto-assign; terminal for the pool
    CANCELLED = "cancelled"  # terminal


# --------------------------------------------------------------------------- validation


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_):
        raise InvalidInput(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInput(f"{name} must be an integer, got {value!r}") from None


def _as_id(value: object, name: str) -> int:
    return _as_int(value, name)


def _as_time(value: object, name: str = "now") -> int:
    seconds = _as_int(value, name)
    if seconds < 0:
        raise InvalidInput(f"{name} must be epoch seconds >= 0, got {seconds}")
    return seconds


def _as_id_array(values: ArrayLike, name: str) -> IdArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = np.atleast_1d(arr)
        if arr.ndim != 1:
            raise InvalidInput(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == object:
            return np.fromiter(
                (_as_id(v, f"{name}[{i}]") for i, v in enumerate(arr)), np.int64, arr.size
            )
        raise InvalidInput(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and (arr > np.iinfo(np.int64).max).any():
        bad = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise InvalidInput(f"{name}[{bad}] does not fit in int64, got {arr[bad]}")
    return arr.astype(np.int64, copy=False)


def _as_count(value: object, name: str) -> int:
    count = _as_int(value, name)
    if count < 0:
        raise InvalidInput(f"{name} must be >= 0, got {count}")
    return count


def _as_reason(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}")
    return value


def _first_duplicate(ids: IdArray) -> int | None:
    if ids.size < 2:
        return None
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    return None if dup.size == 0 else int(order[dup[0] + 1])


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class OfferPolicy:
    """Knobs of the offer policies; validated on construction, field named on error.

    Durations are whole seconds. ``mode`` may be given as ``"auto"``/``"grab"``.
    """

    mode: DispatchMode = DispatchMode.AUTO
    #: seconds a worker has to accept an auto-assign offer.
    accept_timeout_s: int = 30
    #: seconds a grab-pool order stays claimable before falling back to auto-assign.
    grab_window_s: int = 60
    #: H3 k-ring radius the caller uses to pick grab-pool eligible workers (0 = own cell).
    grab_rings: int = 2
    #: offers per order (declined or timed out) before escalating to a human dispatcher.
    max_offers_per_order: int = 5
    #: length of the sliding window in which offers and claims count towards fairness.
    fairness_window_s: int = 3600
    #: offers + claims within the window at which a worker stops being eligible.
    fairness_max_offers: int = 12
    #: seconds after a declined or timed-out offer before the worker is offered again.
    miss_cooldown_s: int = 60

    def __post_init__(self) -> None:
        try:
            mode = DispatchMode(self.mode)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in DispatchMode)
            raise InvalidInput(f"mode must be one of {allowed}, got {self.mode!r}") from None
        object.__setattr__(self, "mode", mode)
        minimums = {
            "accept_timeout_s": 1,
            "grab_window_s": 1,
            "grab_rings": 0,
            "max_offers_per_order": 1,
            "fairness_window_s": 1,
            "fairness_max_offers": 1,
            "miss_cooldown_s": 0,
        }
        for name, minimum in minimums.items():
            value = _as_int(getattr(self, name), name)
            if value < minimum:
                raise InvalidInput(f"{name} must be >= {minimum}, got {value}")
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for snapshots and settings files)."""
        out = asdict(self)
        out["mode"] = self.mode.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OfferPolicy:
        """Build from :meth:`to_dict` output; unknown keys raise ``InvalidInput``."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"policy must be a mapping, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"policy has unknown field(s) {unknown}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Queued:
    """The order waits for the next auto-assign match (first time)."""

    order_id: int
    queued_at: int


@dataclass(frozen=True, slots=True)
class OfferMade:
    """Offer ``order_id`` to ``worker_id``; it lapses at ``expires_at`` (epoch s)."""

    order_id: int
    worker_id: int
    offered_at: int
    expires_at: int
    attempt: int  # 1 for the first offer of this order


@dataclass(frozen=True, slots=True)
class OfferAccepted:
    """The offered worker accepted in time: the order is theirs."""

    order_id: int
    worker_id: int
    accepted_at: int


@dataclass(frozen=True, slots=True)
class AcceptRejected:
    """An accept that does not count; ``reason`` says why."""

    order_id: int
    worker_id: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class OfferDeclined:
    """The offered worker declined (``reason`` is the worker's, free text or a code)."""

    order_id: int
    worker_id: int
    declined_at: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeclineRejected:
    """A decline that does not count; ``reason`` says why."""

    order_id: int
    worker_id: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class OfferExpired:
    """The offer lapsed unanswered at exactly ``expired_at``."""

    order_id: int
    worker_id: int
    expired_at: int


@dataclass(frozen=True, slots=True)
class Reoffer:
    """The order is back in the auto-assign queue; never offer it to ``excluded_worker_ids``."""

    order_id: int
    excluded_worker_ids: tuple[int, ...]
    at: int


@dataclass(frozen=True, slots=True)
class Escalated:
    """The order goes to a human dispatcher."""

    order_id: int
    reason: str
    at: int


@dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    """An outstanding offer was withdrawn (order cancelled); tell the worker's app."""

    order_id: int
    worker_id: int
    at: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The order left the book or pool at the caller's request."""

    order_id: int
    at: int


@dataclass(frozen=True, slots=True)
class GrabOpened:
    """Show ``order_id`` to ``eligible_worker_ids`` until ``closes_at`` (epoch s)."""

    order_id: int
    eligible_worker_ids: tuple[int, ...]
    opened_at: int
    closes_at: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """``worker_id`` won the grab-pool order."""

    order_id: int
    worker_id: int
    claimed_at: int


@dataclass(frozen=True, slots=True)
class ClaimRejected:
    """A claim that does not count; ``reason`` says why."""

    order_id: int
    worker_id: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class FallbackToAutoAssign:
    """The grab-pool order moves to auto-assign (at exactly ``at``)."""

    order_id: int
    at: int
    reason: FallbackReason


Event: TypeAlias = (
    Queued
    | OfferMade
    | OfferAccepted
    | AcceptRejected
    | OfferDeclined
    | DeclineRejected
    | OfferExpired
    | Reoffer
    | Escalated
    | OfferWithdrawn
    | Cancelled
    | GrabOpened
    | Claimed
    | ClaimRejected
    | FallbackToAutoAssign
)


# --------------------------------------------------------------------------- snapshot helpers


def _check_version(data: Mapping[str, Any], what: str) -> None:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what} snapshot must be a mapping, got {type(data).__name__}")
    version = data.get("version")
    if version != SNAPSHOT_VERSION:
        raise InvalidInput(f"{what} snapshot version must be {SNAPSHOT_VERSION}, got {version!r}")


def _field(data: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except (KeyError, TypeError):
        raise InvalidInput(f"{where}.{key} is missing") from None


def _opt_int(value: object, name: str) -> int | None:
    return None if value is None else _as_int(value, name)


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


_E = TypeVar("_E", bound=StrEnum)


def _enum(kind: type[_E], value: object, name: str) -> _E:
    try:
        return kind(value)  # type: ignore[arg-type]
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise InvalidInput(f"{name} must be one of {allowed}, got {value!r}") from None


class _HasStatus(Protocol):
    order_id: int

    @property
    def status(self) -> StrEnum: ...


_Rec = TypeVar("_Rec", bound=_HasStatus)


class _OrderTable(Generic[_Rec]):
    """Orders by id, shared by the offer book and the grab pool."""

    _where: ClassVar[str]  # "offer book" / "grab pool", for messages
    _status_kind: ClassVar[type[StrEnum]]
    _orders: dict[int, _Rec]

    def __contains__(self, order_id: object) -> bool:
        return isinstance(order_id, int | np.integer) and int(order_id) in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def _get(self, order_id: object) -> _Rec:
        oid = _as_id(order_id, "order_id")
        try:
            return self._orders[oid]
        except KeyError:
            raise UnknownOrder(f"order_id {oid} is not in the {self._where}") from None

    def order_ids(self, status: StrEnum | str | None = None) -> IdArray:
        """Ids of the orders in ``status`` (all when None), ascending."""
        if status is None:
            ids: Iterable[int] = self._orders
        else:
            wanted = _enum(self._status_kind, status, "status")
            ids = (o for o, rec in self._orders.items() if rec.status is wanted)
        return np.sort(np.fromiter(ids, dtype=np.int64))


class OfferBook(_OrderTable[_AutoOrder]):
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
        oids = _as_id_array(order_ids, "order_ids")
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
        ids = _as_id_array(worker_ids, "worker_ids")
        return np.isin(ids, self.busy_worker_ids())

    def outstanding_offer(self, worker_id: int) -> int | None:
        """The order ``worker_id`` currently holds an offer for, or None."""
        return self._busy.get(_as_id(worker_id, "worker_id"))

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
        oid = _as_id(order_id, "order_id")
        t = _as_time(now)
        excluded = _as_id_array(excluded_worker_ids, "excluded_worker_ids")
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
        wid = _as_id(worker_id, "worker_id")
        t = _as_time(now)
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
        oids = _as_id_array(order_ids, "order_ids")
        wids = _as_id_array(worker_ids, "worker_ids")
        t = _as_time(now)
        if oids.shape != wids.shape:
            raise ShapeMismatch(
                f"order_ids and worker_ids must have the same length, got {oids.size} and "
                f"{wids.size}"
            )
        for name, ids in (("order_ids", oids), ("worker_ids", wids)):
            dup = _first_duplicate(ids)
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
        wid = _as_id(worker_id, "worker_id")
        t = _as_time(now)
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
        wid = _as_id(worker_id, "worker_id")
        t = _as_time(now)
        note = _as_reason(reason, "reason")
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
        t = _as_time(now)
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
        t = _as_time(now)
        why = _as_reason(reason, "reason")
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
        t = _as_time(now)
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
        cutoff = _as_time(closed_before, "closed_before")
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
        _check_version(data, "offer book")
        book = cls(OfferPolicy.from_dict(_field(data, "policy", "snapshot")))
        raw_orders = _field(data, "orders", "snapshot")
        if not isinstance(raw_orders, list):
            raise InvalidInput("snapshot.orders must be a list")
        for i, raw in enumerate(raw_orders):
            where = f"snapshot.orders[{i}]"
            rec = _AutoOrder(
                order_id=_as_id(_field(raw, "order_id", where), f"{where}.order_id"),
                status=_enum(OrderStatus, _field(raw, "status", where), f"{where}.status"),
                queued_at=_as_time(_field(raw, "queued_at", where), f"{where}.queued_at"),
                offers_made=_as_count(_field(raw, "offers_made", where), f"{where}.offers_made"),
                offer_worker_id=_opt_int(raw.get("offer_worker_id"), f"{where}.offer_worker_id"),
                offered_at=_opt_int(raw.get("offered_at"), f"{where}.offered_at"),
                expires_at=_opt_int(raw.get("expires_at"), f"{where}.expires_at"),
                assigned_worker_id=_opt_int(
                    raw.get("assigned_worker_id"), f"{where}.assigned_worker_id"
                ),
                closed_at=_opt_int(raw.get("closed_at"), f"{where}.closed_at"),
                escalation_reason=raw.get("escalation_reason"),
            )
            for j, ex in enumerate(_field(raw, "excluded", where)):
                ex_where = f"{where}.excluded[{j}]"
                wid = _as_id(_field(ex, "worker_id", ex_where), f"{ex_where}.worker_id")
                rec.excluded[wid] = _Exclusion(
                    _enum(ExclusionReason, _field(ex, "reason", ex_where), f"{ex_where}.reason"),
                    _as_time(_field(ex, "at", ex_where), f"{ex_where}.at"),
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


# --------------------------------------------------------------------------- grab pool


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


class GrabPool(_OrderTable[_GrabOrder]):
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
        wid = _as_id(worker_id, "worker_id")
        t = _as_time(now)
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
        oid = _as_id(order_id, "order_id")
        eligible = np.unique(_as_id_array(eligible_worker_ids, "eligible_worker_ids"))
        t = _as_time(now)
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
        wid = _as_id(worker_id, "worker_id")
        t = _as_time(now)
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
        wid = _as_id(worker_id, "worker_id")
        t = _as_time(now)
        rec.winner_worker_id = wid
        self._close(rec, GrabStatus.CLAIMED, t)
        return Claimed(rec.order_id, wid, t)

    def tick(self, now: int) -> tuple[FallbackToAutoAssign, ...]:
        """Close every open order whose window ended by ``now``; each falls back to auto-assign.

        Events carry the exact close instant, earliest first.
        """
        t = _as_time(now)
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
        t = _as_time(now)
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
        cutoff = _as_time(closed_before, "closed_before")
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
        _check_version(data, "grab pool")
        pool = cls(OfferPolicy.from_dict(_field(data, "policy", "snapshot")))
        raw_orders = _field(data, "orders", "snapshot")
        if not isinstance(raw_orders, list):
            raise InvalidInput("snapshot.orders must be a list")
        for i, raw in enumerate(raw_orders):
            where = f"snapshot.orders[{i}]"
            eligible = _as_id_array(
                _field(raw, "eligible_worker_ids", where), f"{where}.eligible_worker_ids"
            )
            rec = _GrabOrder(
                order_id=_as_id(_field(raw, "order_id", where), f"{where}.order_id"),
                status=_enum(GrabStatus, _field(raw, "status", where), f"{where}.status"),
                eligible=frozenset(eligible.tolist()),
                opened_at=_as_time(_field(raw, "opened_at", where), f"{where}.opened_at"),
                closes_at=_as_time(_field(raw, "closes_at", where), f"{where}.closes_at"),
                winner_worker_id=_opt_int(raw.get("winner_worker_id"), f"{where}.winner_worker_id"),
                closed_at=_opt_int(raw.get("closed_at"), f"{where}.closed_at"),
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


# --------------------------------------------------------------------------- fairness


class FairnessLedger:
    """Recent load and miss cooldowns per worker, from the event stream.

    *Load*: every ``OfferMade`` and ``Claimed`` counts 1 for its worker during
    ``[at, at + fairness_window_s)``. A worker whose load reaches
    ``fairness_max_offers`` is not eligible for new offers until older
    entries slide out of the window, so one well-placed worker is not handed
    everything in a dense area. ``penalty`` is ``min(load / fairness_max_offers,
    1)`` in [0, 1]: multiply it by the cost model's fairness weight (seconds
    of travel one "full" worker is worth) to prefer less-loaded workers
    before the hard cap bites.

    *Cooldown*: after an ``OfferDeclined`` or ``OfferExpired`` the worker is
    not eligible during ``[at, at + miss_cooldown_s)``, so a worker with the
    app in a pocket is not hit by the next order straight away.

    Queries take worker ids (e.g. a Fleet's ``ids``) and return arrays
    aligned with them. :meth:`apply_to_fleet` folds both into a ``Fleet`` for
    ``match``: ineligible workers become unavailable (a hard filter in
    candidate generation) and the recent load is added to ``load_today``, which
    the cost model's fairness term (``CostWeights.fairness_per_order``)
    already prices.
    """

    def __init__(self, policy: OfferPolicy | None = None) -> None:
        """Empty ledger under ``policy`` (default :class:`OfferPolicy`)."""
        self.policy = policy if policy is not None else OfferPolicy()
        self._log: deque[tuple[int, int]] = deque()  # (at, worker_id), roughly time-ordered
        self._cooldown_until: dict[int, int] = {}
        self._latest = 0
        # Kept with the log: entries per worker, whether the log is in time order (then a
        # query at or after its last entry needs no scan), and sorted arrays of the counts
        # rebuilt only after the log changed.
        self._counts: dict[int, int] = {}
        self._in_order = True
        self._count_arrays: tuple[IdArray, IdArray] | None = None

    def observe(self, events: Iterable[Event]) -> None:
        """Record the loads and misses in ``events``; other event kinds are ignored."""
        for event in events:
            if isinstance(event, OfferMade):
                self._record_load(event.worker_id, event.offered_at)
            elif isinstance(event, Claimed):
                self._record_load(event.worker_id, event.claimed_at)
            elif isinstance(event, OfferDeclined | OfferExpired):
                at = event.declined_at if isinstance(event, OfferDeclined) else event.expired_at
                until = at + self.policy.miss_cooldown_s
                if until > self._cooldown_until.get(event.worker_id, -1):
                    self._cooldown_until[event.worker_id] = until
                self._latest = max(self._latest, at)
        self._prune()

    def _record_load(self, worker_id: int, at: int) -> None:
        if self._log and at < self._log[-1][0]:
            self._in_order = False
        self._log.append((at, worker_id))
        self._counts[worker_id] = self._counts.get(worker_id, 0) + 1
        self._count_arrays = None
        self._latest = max(self._latest, at)

    def _prune(self) -> None:
        # Entries are appended in event order, which is time order up to small clock skew;
        # anything missed here is still masked out by time in the queries.
        horizon = self._latest - self.policy.fairness_window_s
        while self._log and self._log[0][0] <= horizon:
            _, wid = self._log.popleft()
            left = self._counts[wid] - 1
            if left:
                self._counts[wid] = left
            else:
                del self._counts[wid]
            self._count_arrays = None
        if not self._log:
            self._in_order = True
        stale = [w for w, until in self._cooldown_until.items() if until <= self._latest]
        for wid in stale:
            del self._cooldown_until[wid]

    def recent_load(self, worker_ids: ArrayLike, now: int) -> NDArray[np.int64]:
        """Offers + claims per worker in ``(now - fairness_window_s, now]``, aligned with ids."""
        ids = _as_id_array(worker_ids, "worker_ids")
        t = _as_time(now)
        if not self._log:
            return np.zeros(ids.size, dtype=np.int64)
        if (
            self._in_order
            and self._log[-1][0] <= t
            and self._log[0][0] > t - self.policy.fairness_window_s
        ):
            # Every logged entry is inside the window: the running counts are the answer.
            if self._count_arrays is None:
                keys = np.fromiter(self._counts, dtype=np.int64, count=len(self._counts))
                values = np.fromiter(self._counts.values(), dtype=np.int64, count=keys.size)
                order = np.argsort(keys)
                self._count_arrays = (keys[order], values[order])
            return _lookup(*self._count_arrays, ids, 0)
        log = np.array(self._log, dtype=np.int64).reshape(-1, 2)
        live = (log[:, 0] <= t) & (log[:, 0] > t - self.policy.fairness_window_s)
        loaded, counts = np.unique(log[live, 1], return_counts=True)
        return _lookup(loaded, counts.astype(np.int64), ids, 0)

    def penalty(self, worker_ids: ArrayLike, now: int) -> NDArray[np.float64]:
        """Fairness penalty in [0, 1] per worker (recent load / cap, clipped), aligned with ids."""
        load = self.recent_load(worker_ids, now)
        return np.minimum(load / float(self.policy.fairness_max_offers), 1.0)

    def cooling_down(self, worker_ids: ArrayLike, now: int) -> NDArray[np.bool_]:
        """True where the worker missed an offer less than ``miss_cooldown_s`` before ``now``."""
        ids = _as_id_array(worker_ids, "worker_ids")
        t = _as_time(now)
        if not self._cooldown_until:
            return np.zeros(ids.size, dtype=np.bool_)
        keys = np.fromiter(self._cooldown_until, dtype=np.int64, count=len(self._cooldown_until))
        until = np.fromiter(
            self._cooldown_until.values(), dtype=np.int64, count=len(self._cooldown_until)
        )
        order = np.argsort(keys)
        return _lookup(keys[order], until[order], ids, -1) > t

    def eligible_mask(
        self, worker_ids: ArrayLike, now: int, busy_worker_ids: ArrayLike = ()
    ) -> NDArray[np.bool_]:
        """True where a worker may get a new offer: under the load cap, not cooling down, not busy.

        Pass :meth:`OfferBook.busy_worker_ids` as ``busy_worker_ids``.
        """
        ids = _as_id_array(worker_ids, "worker_ids")
        busy = _as_id_array(busy_worker_ids, "busy_worker_ids")
        under_cap = self.recent_load(ids, now) < self.policy.fairness_max_offers
        return under_cap & ~self.cooling_down(ids, now) & ~np.isin(ids, busy)

    def apply_to_fleet(self, fleet: Fleet, now: int, busy_worker_ids: ArrayLike = ()) -> Fleet:
        """A copy of ``fleet`` for the next ``match``: ineligible workers unavailable, load added.

        ``available &= eligible_mask(...)``; ``load_today += recent_load(...)`` (orders).
        """
        eligible = self.eligible_mask(fleet.ids, now, busy_worker_ids)
        available = np.asarray(fleet.available, dtype=np.bool_) & eligible
        load_today = np.asarray(fleet.load_today, dtype=np.int64) + self.recent_load(fleet.ids, now)
        for arr in (available, load_today):
            arr.setflags(write=False)  # Fleet arrays are read-only by contract
        return replace(fleet, available=available, load_today=load_today)

    def snapshot(self) -> dict[str, Any]:
        """Whole state as plain dicts/lists/ints (JSON-safe) for persistence or replay."""
        return {
            "version": SNAPSHOT_VERSION,
            "policy": self.policy.to_dict(),
            "loads": [[at, wid] for at, wid in self._log],
            "cooldowns": [[wid, until] for wid, until in self._cooldown_until.items()],
            "latest": self._latest,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> FairnessLedger:
        """Rebuild a ledger from :meth:`snapshot` output; ``InvalidInput`` names a bad field."""
        _check_version(data, "fairness ledger")
        ledger = cls(OfferPolicy.from_dict(_field(data, "policy", "snapshot")))
        for i, pair in enumerate(_field(data, "loads", "snapshot")):
            at, wid = _pair(pair, f"snapshot.loads[{i}]")
            ledger._record_load(wid, _as_time(at, f"snapshot.loads[{i}][0]"))
        for i, pair in enumerate(_field(data, "cooldowns", "snapshot")):
            wid, until = _pair(pair, f"snapshot.cooldowns[{i}]")
            ledger._cooldown_until[wid] = until
        ledger._latest = _as_time(_field(data, "latest", "snapshot"), "snapshot.latest")
        return ledger


def _pair(value: object, name: str) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidInput(f"{name} must be a pair of integers, got {value!r}")
    return _as_int(value[0], f"{name}[0]"), _as_int(value[1], f"{name}[1]")


def _lookup(
    sorted_keys: IdArray, values: IdArray, query: IdArray, missing: int
) -> NDArray[np.int64]:
    """values[k] where sorted_keys[k] == query[i], else ``missing`` — vectorised dict lookup."""
    if sorted_keys.size == 0:
        return np.full(query.size, missing, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, query), sorted_keys.size - 1)
    return np.where(sorted_keys[pos] == query, values[pos], missing)


# --------------------------------------------------------------------------- desk


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
        oid = _as_id(order_id, "order_id")
        t = _as_time(now)
        excluded = np.unique(_as_id_array(excluded_worker_ids, "excluded_worker_ids"))
        if oid in self.book or oid in self.pool:
            raise DuplicateId(f"order_id {oid} was already submitted")
        if self.policy.mode is DispatchMode.AUTO:
            return self._observed(self.book.add_order(oid, t, excluded))
        if eligible_worker_ids is None:
            raise InvalidInput("eligible_worker_ids is required in grab mode")
        eligible = _as_id_array(eligible_worker_ids, "eligible_worker_ids")
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
        wid = _as_id(worker_id, "worker_id")
        if outcome is None and self.book.outstanding_offer(wid) is not None:
            return ClaimRejected(_as_id(order_id, "order_id"), wid, RejectReason.WORKER_BUSY)
        if outcome is not None:
            return outcome
        claimed = self.pool.claim(order_id, wid, now)
        self.ledger.observe((claimed,))
        self._fallback_exclusions.pop(claimed.order_id, None)
        return claimed

    def tick(self, now: int) -> tuple[Event, ...]:
        """Fire every deadline up to ``now``: grab fallbacks (queued for auto-assign), expiries."""
        t = _as_time(now)
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
        oid = _as_id(order_id, "order_id")
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
        _check_version(data, "offer desk")
        desk = cls(OfferPolicy.from_dict(_field(data, "policy", "snapshot")))
        desk.book = OfferBook.from_snapshot(_field(data, "book", "snapshot"))
        desk.pool = GrabPool.from_snapshot(_field(data, "pool", "snapshot"))
        desk.ledger = FairnessLedger.from_snapshot(_field(data, "ledger", "snapshot"))
        for name, part in (("book", desk.book), ("pool", desk.pool), ("ledger", desk.ledger)):
            if part.policy != desk.policy:
                raise InvalidInput(f"snapshot.{name}.policy differs from snapshot.policy")
        for i, pair in enumerate(_field(data, "fallback_exclusions", "snapshot")):
            where = f"snapshot.fallback_exclusions[{i}]"
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise InvalidInput(f"{where} must be [order_id, [worker_id, ...]]")
            oid = _as_id(pair[0], f"{where}[0]")
            desk._fallback_exclusions[oid] = tuple(_as_id_array(pair[1], f"{where}[1]").tolist())
        return desk
