"""Discrete-event simulation of a city day through the production dispatch code.

Own heapq loop with an integer simulated clock (epoch seconds) that is passed as ``now``
into the dispatch policies. Per batch window the engine calls ``dispatch.match`` once
for every pending order × every idle, offer-eligible worker (one region: the city), and
drives :class:`dispatch.offers.OfferDesk` for offers, accept timeouts, exclusions,
fairness and the grab pool (grab-pool eligibility comes from
``dispatch.candidates.find_candidates``). Workers answer offers after a random delay
(slower than the accept timeout = a timeout) and decline with their own probability;
travel times come from the geo travel model; services take the city's pre-drawn actual
durations. Nothing here re-implements matching: the dispatch functions are looked up at
call time (see :func:`match_fn`), so tests can patch them.

Windows are event driven: a dispatch runs at the next window boundary only after
something changed (a new order, a re-queued order, a worker became free), which is
exactly when a production dispatcher's batch would contain new work.

Randomness uses common random numbers: a worker's answer to an order is a hash of (seed,
order, worker), so replaying the same day under another policy meets the same worker
behaviour wherever the same offer is made.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from numpy.typing import NDArray

import dispatch
import dispatch.assign
import dispatch.candidates
from dispatch.cost import CostWeights
from dispatch.model import NO_LIMIT_S, TRANSPORT_MODES, Fleet, OrderBatch
from dispatch.offers import (
    Claimed,
    Escalated,
    FallbackToAutoAssign,
    OfferAccepted,
    OfferDesk,
    OfferExpired,
    OfferMade,
    OfferPolicy,
    OfferWithdrawn,
    Reoffer,
)
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel, TravelTimeModel
from simulations.city import CityDay, ScenarioError

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: ``dispatch.assign.match`` as imported; lets :func:`match_fn` see a patched module attribute.
_ORIGINAL_MATCH = dispatch.assign.match


def match_fn() -> Callable[..., dispatch.assign.Assignment]:
    """The production ``match`` resolved now: ``dispatch.match`` if exported, else
    ``dispatch.assign.match`` (whichever of the two a test patched wins)."""
    inner = dispatch.assign.match
    top = getattr(dispatch, "match", None)
    if top is None or inner is not _ORIGINAL_MATCH:
        return inner
    return cast(Callable[..., dispatch.assign.Assignment], top)


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """How the simulated platform dispatches: offer policy, cost weights, batching.

    ``batch_window_s`` seconds between batch matches; ``max_batch`` oldest pending orders
    per match; ``aging_per_hour`` member-priority units added per hour an order waits
    (older orders win ties, nobody starves); ``max_lateness_s`` hard bound on a start
    after the promise (None: none); grab pools show an order to the
    ``grab_candidates`` nearest eligible workers within ``grab_max_travel_s``.
    """

    name: str = "auto"
    offer: OfferPolicy = field(default_factory=OfferPolicy)
    weights: CostWeights = field(default_factory=CostWeights)
    batch_window_s: int = 30
    max_batch: int = 200
    aging_per_hour: float = 1.0
    max_lateness_s: int | None = 3600
    candidates_per_order: int = 8
    max_travel_s: float = 3600.0
    grab_candidates: int = 20
    grab_max_travel_s: float = 1800.0
    grab_claims_per_order: int = 3

    def __post_init__(self) -> None:
        for name in ("batch_window_s", "max_batch", "candidates_per_order", "grab_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ScenarioError(f"must be an integer >= 1, got {value!r}", name)
        if self.grab_claims_per_order < 1:
            raise ScenarioError("must be >= 1", "grab_claims_per_order")
        for name in ("aging_per_hour", "max_travel_s", "grab_max_travel_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ScenarioError(f"must be a finite number >= 0, got {value!r}", name)
        if self.max_lateness_s is not None and self.max_lateness_s < 0:
            raise ScenarioError(
                f"must be >= 0 or null, got {self.max_lateness_s}", "max_lateness_s"
            )

    @property
    def mode(self) -> str:
        """``auto`` (派单) or ``grab`` (抢单)."""
        return self.offer.mode.value

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (as in a scenario's ``dispatch`` section)."""
        out: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("offer", "weights")
        }
        out.update(self.offer.to_dict())
        out["weights"] = {f.name: getattr(self.weights, f.name) for f in fields(CostWeights)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "dispatch") -> Policy:
        """Build from a scenario's ``dispatch`` mapping; errors name ``where.field``."""
        if not isinstance(data, Mapping):
            raise ScenarioError("must be a mapping", where)
        own = {f.name for f in fields(cls)} - {"offer", "weights"}
        offer_keys = set(OfferPolicy.__dataclass_fields__)
        unknown = sorted(set(data) - own - offer_keys - {"weights", "dispatch_ahead_s"})
        if unknown:
            raise ScenarioError(f"unknown field(s) {unknown}", f"{where}.{unknown[0]}")
        try:
            offer = OfferPolicy(**{k: v for k, v in data.items() if k in offer_keys})
        except ValueError as exc:
            name = str(exc).split(" ", 1)[0]
            raise ScenarioError(str(exc), f"{where}.{name}") from None
        raw_w = data.get("weights") or {}
        if isinstance(raw_w, str):
            raw_w = WEIGHT_PRESETS.get(raw_w)
            if raw_w is None:
                raise ScenarioError(
                    f"unknown preset; choose from {sorted(WEIGHT_PRESETS)}", f"{where}.weights"
                )
        if not isinstance(raw_w, Mapping):
            raise ScenarioError("must be a mapping or a preset name", f"{where}.weights")
        bad = sorted(set(raw_w) - set(CostWeights.__dataclass_fields__))
        if bad:
            raise ScenarioError(f"unknown weight(s) {bad}", f"{where}.weights.{bad[0]}")
        try:
            weights = CostWeights(**raw_w)
        except ValueError as exc:
            name = str(exc).split(" ", 1)[0]
            raise ScenarioError(str(exc), f"{where}.weights.{name}") from None
        kwargs = {k: v for k, v in data.items() if k in own}
        kwargs.setdefault("name", offer.mode.value)
        try:
            return cls(offer=offer, weights=weights, **kwargs)
        except ScenarioError as exc:
            raise ScenarioError(str(exc).split(": ", 1)[-1], f"{where}.{exc.field}") from None


#: Named cost-weight sets a sweep or replay can refer to.
WEIGHT_PRESETS: dict[str, dict[str, float]] = {
    "default": {},
    "travel_only": {
        "rating_per_star": 0.0,
        "reputation": 0.0,
        "fairness_per_order": 0.0,
        "preferred_worker": 0.0,
        "lateness_risk": 0.0,
    },
    "fair": {"fairness_per_order": 300.0, "fairness_per_100_yuan": 60.0},
}


# --------------------------------------------------------------------------- results


class OrderOutcome(IntEnum):
    """Final state of an order at the end of the simulated day."""

    SERVED = 0
    CANCELLED = 1
    ESCALATED = 2
    UNSERVED = 3  # still waiting (or in service) when the day ended


@dataclass(frozen=True, eq=False)
class SimResult:
    """Everything KPIs need: per-order and per-worker arrays plus run counters.

    Times epoch seconds (-1: never); ``travel_m`` metres along the road (detour applied).
    """

    city: CityDay
    policy: Policy
    outcome: NDArray[np.int8]
    assigned_at: IntArray
    start_s: IntArray
    end_s: IntArray
    worker_row: IntArray
    travel_s: FloatArray
    travel_m: FloatArray
    offers: IntArray
    declines: IntArray
    timeouts: IntArray
    worker_busy_s: FloatArray
    worker_travel_m: FloatArray
    worker_served: IntArray
    worker_earnings_fen: IntArray
    worker_on_shift_s: FloatArray
    match_calls: int
    matched_orders: int
    events: int
    wall_s: float


class _Kind(IntEnum):
    # Value = order among events at the same instant; DISPATCH last so a window sees
    # every completion, arrival and answer of its instant.
    SERVICE_END = 0
    ARRIVE = 1
    RESPONSE = 2
    CLAIM = 3
    CANCEL = 4
    RELEASE = 5
    SHIFT_START = 6
    TICK = 7
    COOLDOWN_END = 8
    SHIFT_END = 9
    DISPATCH = 10


# order states
_WAITING, _QUEUED, _OFFERED, _ASSIGNED, _SERVING, _DONE, _CANCELLED, _ESCALATED = range(8)
# worker states
_OFF, _IDLE, _HOLDING, _BUSY = range(4)

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def hash_u01(seed: int, a: Any, b: Any, stream: int) -> FloatArray:
    """Uniform [0, 1) numbers keyed by (seed, a, b, stream) (splitmix64; vectorised over a, b)."""
    x = np.asarray(a, dtype=np.uint64) * _M2 ^ np.asarray(b, dtype=np.uint64) * _M3
    x = x ^ np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0x8CB92BA72F3D8DD7) % 2**64)
    x = x + _M1
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    x = x ^ (x >> np.uint64(31))
    return np.asarray((x >> np.uint64(11)).astype(np.float64) / float(2**53))


class _Recorder:
    """JSON-lines event log (one object per line); no-op when no file is given."""

    def __init__(self, fh: IO[str] | None) -> None:
        self.fh = fh

    def __call__(self, kind: str, t: int, **data: Any) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps({"t": t, "e": kind, **data}, separators=(",", ":")) + "\n")


class Engine:
    """One simulated day; build with a CityDay and a Policy, then :meth:`run`."""

    def __init__(
        self,
        city: CityDay,
        policy: Policy | None = None,
        *,
        travel: TravelTimeModel | None = None,
        log: IO[str] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        """Prepare state; ``log`` a text stream for the JSON-lines replay log."""
        self.city = city
        self.policy = policy or Policy()
        self.travel: TravelTimeModel = travel or cast(TravelTimeModel, HaversineTravelModel())
        self.desk = OfferDesk(self.policy.offer)
        self.rec = _Recorder(log)
        self.progress = progress
        n, m = city.n_orders, city.n_workers
        self.o_state = np.full(n, _WAITING, dtype=np.int8)
        self.assigned_at = np.full(n, -1, dtype=np.int64)
        self.start_s = np.full(n, -1, dtype=np.int64)
        self.end_s = np.full(n, -1, dtype=np.int64)
        self.worker_row = np.full(n, -1, dtype=np.int64)
        self.travel_s = np.zeros(n)
        self.travel_m = np.zeros(n)
        self.offers = np.zeros(n, dtype=np.int64)
        self.declines = np.zeros(n, dtype=np.int64)
        self.timeouts = np.zeros(n, dtype=np.int64)
        self.w_state = np.full(m, _OFF, dtype=np.int8)
        self.w_lat = city.home_lat.copy()
        self.w_lng = city.home_lng.copy()
        self.w_busy_s = np.zeros(m)
        self.w_travel_m = np.zeros(m)
        self.w_served = np.zeros(m, dtype=np.int64)
        self.w_earn = np.zeros(m, dtype=np.int64)
        self.w_off_after = np.zeros(m, dtype=np.bool_)
        self.w_on_since = np.zeros(m, dtype=np.int64)
        self.w_on_shift_s = np.zeros(m)
        self._heap: list[tuple[int, int, int, int, int]] = []
        self._seq = 0
        self._new: list[int] = []
        self._dirty = False
        self._dispatch_at: int | None = None
        self._ticks: set[int] = set()
        # Orders the last match could not serve for want of an eligible worker wait
        # ("parked") until a worker with one of their skills frees up: re-running match on
        # them before that cannot change the answer, and their growing search radii are the
        # most expensive part of a batch.
        self._parked = np.zeros(n, dtype=np.bool_)
        self._trip_s = np.zeros(n)
        self._trip_m = np.zeros(n)
        self._trip_w = np.full(n, -1, dtype=np.int64)
        self._trip_at = np.full(n, -1, dtype=np.int64)
        detour = getattr(self.travel, "detour", None)
        self._detour = np.array(
            [float(detour(m)) if callable(detour) else 1.0 for m in TRANSPORT_MODES]
        )
        self._freed_skills = 0
        self.match_calls = 0
        self._dispatches = 0
        self.matched = 0
        self.n_events = 0
        self._ids_sorted = bool(np.all(np.diff(city.worker_ids) > 0))

    # ----------------------------------------------------------------- plumbing

    def _push(self, t: int, kind: _Kind, a: int = 0, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (int(t), int(kind), self._seq, a, b))

    def _touch(self, now: int) -> None:
        """Something changed: make sure a dispatch runs at the next window boundary."""
        self._dirty = True
        w = self.policy.batch_window_s
        at = -(-now // w) * w
        if self._dispatch_at is None:
            self._dispatch_at = at
            self._push(at, _Kind.DISPATCH)

    def _schedule_tick(self) -> None:
        d = self.desk.next_deadline()
        if d is not None and d not in self._ticks:
            self._ticks.add(d)
            self._push(d, _Kind.TICK)

    def _oid(self, row: int) -> int:
        return int(self.city.order_ids[row])

    def _orow(self, oid: int) -> int:
        return self._o_lookup[int(oid)]

    def _orows(self, oids: IntArray) -> IntArray:
        """Row of each order id (vectorised)."""
        rows: IntArray = self._oid_sorter[np.searchsorted(self._oid_sorted, oids)]
        return rows

    def _wrow(self, wid: int) -> int:
        return self._w_lookup[int(wid)]

    # ----------------------------------------------------------------- run

    def run(self) -> SimResult:
        """Simulate the whole day (until every event is processed); returns the result."""
        wall0 = time.perf_counter()
        c = self.city
        ids = c.order_ids
        self._o_lookup = {int(o): i for i, o in enumerate(ids)}
        self._oid_sorter = np.argsort(ids, kind="stable").astype(np.int64)
        self._oid_sorted = ids[self._oid_sorter]
        self._w_lookup = {int(w): i for i, w in enumerate(c.worker_ids)}
        self.rec("header", c.day_start_s, city=c.to_json(), policy=self.policy.to_dict())
        for row in range(c.n_orders):
            self._push(int(c.release_s[row]), _Kind.RELEASE, row)
            if c.cancel_at_s[row] < c.end_s + 86_400:
                self._push(int(c.cancel_at_s[row]), _Kind.CANCEL, row)
        for row in range(c.n_workers):
            self._push(int(c.shift_start_s[row]), _Kind.SHIFT_START, row)
            self._push(int(c.shift_end_s[row]), _Kind.SHIFT_END, row)
        handlers: dict[int, Callable[[int, int, int], None]] = {
            _Kind.SERVICE_END: self._on_service_end,
            _Kind.ARRIVE: self._on_arrive,
            _Kind.RESPONSE: self._on_response,
            _Kind.CLAIM: self._on_claim,
            _Kind.CANCEL: self._on_cancel,
            _Kind.RELEASE: self._on_release,
            _Kind.SHIFT_START: self._on_shift_start,
            _Kind.TICK: self._on_tick,
            _Kind.COOLDOWN_END: self._on_cooldown_end,
            _Kind.SHIFT_END: self._on_shift_end,
            _Kind.DISPATCH: self._on_dispatch,
        }
        span = max(c.end_s - c.day_start_s, 1)
        next_report = 0
        heap = self._heap
        while heap:
            t, kind, _, a, b = heapq.heappop(heap)
            self.n_events += 1
            handlers[kind](t, a, b)
            if self.progress is not None and self.n_events >= next_report:
                next_report = self.n_events + 2000
                self.progress(min(max((t - c.day_start_s) / span, 0.0), 1.0))
        last = max(c.end_s, int(self.end_s.max()) if self.end_s.size else c.end_s)
        on = self.w_state != _OFF
        self.w_on_shift_s[on] += last - self.w_on_since[on]
        outcome = np.full(c.n_orders, OrderOutcome.UNSERVED, dtype=np.int8)
        outcome[self.o_state == _DONE] = OrderOutcome.SERVED
        outcome[self.o_state == _CANCELLED] = OrderOutcome.CANCELLED
        outcome[self.o_state == _ESCALATED] = OrderOutcome.ESCALATED
        if self.progress is not None:
            self.progress(1.0)
        result = SimResult(
            city=c,
            policy=self.policy,
            outcome=outcome,
            assigned_at=self.assigned_at,
            start_s=self.start_s,
            end_s=self.end_s,
            worker_row=self.worker_row,
            travel_s=self.travel_s,
            travel_m=self.travel_m,
            offers=self.offers,
            declines=self.declines,
            timeouts=self.timeouts,
            worker_busy_s=self.w_busy_s,
            worker_travel_m=self.w_travel_m,
            worker_served=self.w_served,
            worker_earnings_fen=self.w_earn,
            worker_on_shift_s=self.w_on_shift_s,
            match_calls=self.match_calls,
            matched_orders=self.matched,
            events=self.n_events,
            wall_s=time.perf_counter() - wall0,
        )
        self.rec("end", last, match_calls=self.match_calls, events=self.n_events)
        return result

    # ----------------------------------------------------------------- workers

    def _on_shift_start(self, t: int, w: int, _: int) -> None:
        self.w_state[w] = _IDLE
        self.w_on_since[w] = t
        self._freed_skills |= int(self.city.worker_skills[w])
        self.rec("shift_start", t, w=int(self.city.worker_ids[w]))
        self._touch(t)

    def _go_off(self, t: int, w: int) -> None:
        self.w_state[w] = _OFF
        self.w_on_shift_s[w] += t - self.w_on_since[w]
        self.rec("shift_end", t, w=int(self.city.worker_ids[w]))

    def _on_shift_end(self, t: int, w: int, _: int) -> None:
        if self.w_state[w] == _IDLE:
            self._go_off(t, w)
        elif self.w_state[w] != _OFF:
            self.w_off_after[w] = True  # finish the job in hand, then go home

    def _free(self, t: int, w: int) -> None:
        """Worker ``w`` is free again (job done, offer missed or withdrawn)."""
        if self.w_off_after[w] or t >= self.city.shift_end_s[w]:
            self._go_off(t, w)
            return
        self.w_state[w] = _IDLE
        self._freed_skills |= int(self.city.worker_skills[w])
        self._touch(t)

    def _on_cooldown_end(self, t: int, w: int, _b: int) -> None:
        if self.w_state[w] == _IDLE:
            self._freed_skills |= int(self.city.worker_skills[w])
            self._touch(t)

    # ----------------------------------------------------------------- orders

    def _on_release(self, t: int, o: int, _: int) -> None:
        if self.o_state[o] != _WAITING:
            return  # cancelled before it reached dispatch
        self.o_state[o] = _QUEUED
        self.rec("release", t, o=self._oid(o))
        self._new.append(o)
        self._touch(t)

    def _on_cancel(self, t: int, o: int, _: int) -> None:
        state = self.o_state[o]
        if state not in (_WAITING, _QUEUED, _OFFERED):
            return  # already assigned: the customer keeps the visit
        oid = self._oid(o)
        if state != _WAITING and (oid in self.desk.book or oid in self.desk.pool):
            for ev in self.desk.cancel(oid, t):
                if isinstance(ev, OfferWithdrawn):
                    self._free(t, self._wrow(ev.worker_id))
        self.o_state[o] = _CANCELLED
        self.rec("cancel", t, o=oid)

    def _assign(self, t: int, o: int, w: int) -> None:
        c = self.city
        self.o_state[o] = _ASSIGNED
        self.w_state[w] = _BUSY
        self.assigned_at[o] = t
        self.worker_row[o] = w
        if self._trip_w[o] == w and self._trip_at[o] == t:
            secs, metres = float(self._trip_s[o]), float(self._trip_m[o])
        else:
            s_arr, m_arr = self._trips(np.array([t]), np.array([o]), np.array([w]))
            secs, metres = float(s_arr[0]), float(m_arr[0])
        self.travel_s[o] = secs
        self.travel_m[o] = metres
        self.w_travel_m[w] += metres
        self.w_busy_s[w] += secs
        self.rec(
            "assign", t, o=self._oid(o), w=int(c.worker_ids[w]), travel_s=secs, travel_m=metres
        )
        self._push(t + math.ceil(secs), _Kind.ARRIVE, o, w)

    def _trips(self, at: IntArray, o: IntArray, w: IntArray) -> tuple[FloatArray, FloatArray]:
        """Travel seconds and road metres of workers ``w`` to orders ``o`` leaving at ``at``."""
        c = self.city
        secs = self.travel.seconds(
            self.w_lat[w], self.w_lng[w], c.lat[o], c.lng[o], at, mode=c.mode[w].astype(np.int8)
        )
        metres = haversine_m(self.w_lat[w], self.w_lng[w], c.lat[o], c.lng[o])
        return np.asarray(secs, dtype=np.float64), metres * self._detour[c.mode[w]]

    def _on_arrive(self, t: int, o: int, w: int) -> None:
        c = self.city
        self.w_lat[w], self.w_lng[w] = c.lat[o], c.lng[o]
        start = max(t, int(c.booked_start_s[o]))  # early for a booking: wait at the door
        self.o_state[o] = _SERVING
        self.start_s[o] = start
        self.rec("start", start, o=self._oid(o))
        self._push(start + int(c.actual_service_s[o]), _Kind.SERVICE_END, o, w)

    def _on_service_end(self, t: int, o: int, w: int) -> None:
        self.o_state[o] = _DONE
        self.end_s[o] = t
        self.w_busy_s[w] += float(self.city.actual_service_s[o])
        self.w_served[w] += 1
        self.w_earn[w] += int(self.city.price_fen[o])
        self.rec("done", t, o=self._oid(o))
        self._free(t, w)

    # ----------------------------------------------------------------- offers

    def _after_desk_events(self, t: int, events: tuple[Any, ...]) -> None:
        for ev in events:
            if isinstance(ev, OfferExpired):
                o, w = self._orow(ev.order_id), self._wrow(ev.worker_id)
                self.timeouts[o] += 1
                self.o_state[o] = _QUEUED
                self.rec("timeout", ev.expired_at, o=ev.order_id, w=ev.worker_id)
                self._free(t, w)
                self._cooldown(t, w)
            elif isinstance(ev, Reoffer | FallbackToAutoAssign):
                self.o_state[self._orow(ev.order_id)] = _QUEUED
                self._touch(t)
            elif isinstance(ev, Escalated):
                o = self._orow(ev.order_id)
                self.o_state[o] = _ESCALATED
                self.rec("escalate", t, o=ev.order_id, reason=ev.reason)

    def _cooldown(self, t: int, w: int) -> None:
        cd = self.policy.offer.miss_cooldown_s
        if cd > 0:
            self._push(t + cd, _Kind.COOLDOWN_END, w)

    def _on_tick(self, t: int, _a: int, _b: int) -> None:
        self._ticks.discard(t)
        self._after_desk_events(t, self.desk.tick(t))
        self._schedule_tick()

    def _on_response(self, t: int, o: int, packed: int) -> None:
        w, accept = packed >> 1, packed & 1
        oid, wid = self._oid(o), int(self.city.worker_ids[w])
        if self.desk.book.outstanding_offer(wid) != oid:
            return  # withdrawn (cancelled) or already expired
        if accept:
            ev = self.desk.accept(oid, wid, t)
            if isinstance(ev, OfferAccepted):
                self._assign(t, o, w)
            return
        self.declines[o] += 1
        self.rec("decline", t, o=oid, w=wid)
        events = self.desk.decline(oid, wid, t, "declined")
        self._free(t, w)
        self._cooldown(t, w)
        self._after_desk_events(t, events)

    def _on_claim(self, t: int, o: int, w: int) -> None:
        if self.w_state[w] != _IDLE:
            return  # took another job meanwhile
        oid, wid = self._oid(o), int(self.city.worker_ids[w])
        if oid not in self.desk.pool:
            return
        ev = self.desk.claim(oid, wid, t)
        if isinstance(ev, Claimed):
            self.rec("claim", t, o=oid, w=wid)
            self._assign(t, o, w)

    # ----------------------------------------------------------------- dispatch

    def _fleet(self, rows: IntArray) -> Fleet:
        c = self.city
        return Fleet.from_arrays(
            c.worker_ids[rows],
            self.w_lat[rows],
            self.w_lng[rows],
            skills=c.worker_skills[rows],
            rating=c.rating[rows],
            shift_end_s=c.shift_end_s[rows],
            load_today=self.w_served[rows],
            recent_earnings_fen=self.w_earn[rows],
            mode=c.mode[rows],
        )

    def _orders(
        self, rows: IntArray, now: int, exclusions: tuple[IntArray, IntArray] | None
    ) -> OrderBatch:
        c, p = self.city, self.policy
        if p.max_lateness_s is None:
            latest = np.full(rows.size, NO_LIMIT_S, dtype=np.int64)
        else:
            latest = c.promised_s[rows] + c.grace_s + p.max_lateness_s
        age_h = np.maximum(now - c.release_s[rows], 0) / 3600.0
        return OrderBatch.from_arrays(
            c.order_ids[rows],
            c.lat[rows],
            c.lng[rows],
            required_skills=c.required_skills[rows],
            service_s=c.expected_service_s[rows],
            latest_start_s=latest,
            priority=p.aging_per_hour * age_h,
            excluded_worker_ids=None if exclusions is None else exclusions[0],
            excluded_offsets=None if exclusions is None else exclusions[1],
        )

    def _idle_rows(self, now: int) -> IntArray:
        rows = np.flatnonzero(self.w_state == _IDLE).astype(np.int64)
        if rows.size:
            ok = self.desk.offer_eligible_mask(self.city.worker_ids[rows], now)
            rows = rows[ok]
        return rows

    def _on_dispatch(self, t: int, _a: int, _b: int) -> None:
        self._dispatch_at = None
        if not self._dirty:
            return
        self._dirty = False
        new, self._new = self._new, []
        new = [o for o in new if self.o_state[o] == _QUEUED]
        if new and self.policy.mode == "grab":
            self._open_grab(t, np.asarray(new, dtype=np.int64))
        else:
            for o in new:
                self.desk.submit(self._oid(o), t)
        pending = self._drop_hopeless(t, self.desk.book.pending_order_ids())
        pending = self._unparked(pending)[: self.policy.max_batch]
        self._freed_skills = 0
        if pending.size:
            idle = self._idle_rows(t)
            if idle.size:
                self._match(t, pending, idle)
        self._schedule_tick()
        self._dispatches += 1
        if self._dispatches % 20 == 0:
            # The book scans every order it holds on each call: forget closed ones.
            self.desk.drop_closed(t)

    def _unparked(self, pending_ids: IntArray) -> IntArray:
        """Pending orders worth matching: not parked, or parked but a skilled worker freed up."""
        if pending_ids.size == 0:
            return pending_ids
        rows = self._orows(pending_ids)
        parked = self._parked[rows]
        need = self.city.required_skills[rows]
        retry = parked & (((need & np.uint64(self._freed_skills)) != 0) | (need == 0))
        self._parked[rows[retry]] = False
        keep: IntArray = pending_ids[~parked | retry]
        return keep

    def _drop_hopeless(self, t: int, pending_ids: IntArray) -> IntArray:
        """Escalate orders whose latest acceptable start has passed (no match can serve them)."""
        if self.policy.max_lateness_s is None or pending_ids.size == 0:
            return pending_ids
        c = self.city
        rows = self._orows(pending_ids)
        latest = c.promised_s[rows] + c.grace_s + self.policy.max_lateness_s
        late = latest < t
        for oid in pending_ids[late].tolist():
            self._after_desk_events(t, self.desk.escalate(oid, t, "latest_start_passed"))
        return pending_ids[~late]

    def _match(self, t: int, pending_ids: IntArray, idle: IntArray) -> None:
        p = self.policy
        rows = self._orows(pending_ids)
        orders = self._orders(rows, t, self.desk.book.exclusions_csr(pending_ids))
        fleet = self._fleet(idle)
        result = match_fn()(
            orders,
            fleet,
            weights=p.weights,
            travel=self.travel,
            now=t,
            candidates_per_order=p.candidates_per_order,
            max_travel_s=p.max_travel_s,
        )
        self.match_calls += 1
        self.rec(
            "match", t, orders=int(rows.size), workers=int(idle.size), assigned=result.assigned
        )
        for oid, reason in zip(
            result.unassigned_order_ids.tolist(), result.unassigned_reasons, strict=True
        ):
            if reason != "outbid":  # outbid orders had an eligible worker: retry next window
                self._parked[self._orow(oid)] = True
        if result.assigned == 0:
            return
        made = self.desk.offer_pairs(result.order_ids, result.worker_ids, t)
        self.matched += len(made)
        self._answer(t, made)

    def _answer(self, t: int, made: tuple[OfferMade, ...]) -> None:
        """Draw each offered worker's answer (common random numbers) and schedule it."""
        c = self.city
        oids = np.fromiter((m.order_id for m in made), dtype=np.int64, count=len(made))
        wids = np.fromiter((m.worker_id for m in made), dtype=np.int64, count=len(made))
        o_rows = self._orows(oids)
        w_rows = np.asarray([self._wrow(w) for w in wids.tolist()], dtype=np.int64)
        u_decline = hash_u01(c.seed, oids, wids, 1)
        u_delay = hash_u01(c.seed, oids, wids, 2)
        delay = np.ceil(-np.log1p(-u_delay) * c.response_mean_s[w_rows]).astype(np.int64)
        timeout = self.policy.offer.accept_timeout_s
        accept = u_decline >= c.decline_prob[w_rows]
        # Trips of the workers who will accept, priced at once (vectorised) for their
        # departure instants; _assign uses them if the accept comes as drawn.
        go = accept & (delay < self.policy.offer.accept_timeout_s)
        if go.any():
            depart = t + delay[go]
            secs, metres = self._trips(depart, o_rows[go], w_rows[go])
            self._trip_s[o_rows[go]] = secs
            self._trip_m[o_rows[go]] = metres
            self._trip_w[o_rows[go]] = w_rows[go]
            self._trip_at[o_rows[go]] = depart
        for i, m in enumerate(made):
            o, w = int(o_rows[i]), int(w_rows[i])
            self.o_state[o] = _OFFERED
            self.offers[o] += 1
            self.w_state[w] = _HOLDING
            self.rec("offer", t, o=m.order_id, w=m.worker_id)
            if delay[i] < timeout:
                self._push(t + int(delay[i]), _Kind.RESPONSE, o, (w << 1) | int(accept[i]))

    def _open_grab(self, t: int, rows: IntArray) -> None:
        """Show new orders to nearby eligible idle workers; schedule the first claims."""
        c, p = self.city, self.policy
        idle = self._idle_rows(t)
        eligible: list[IntArray] = [np.zeros(0, dtype=np.int64)] * rows.size
        if idle.size:
            orders = self._orders(rows, t, None)
            fleet = self._fleet(idle)
            pool = dispatch.candidates.find_candidates(
                orders,
                fleet,
                self.travel,
                t,
                candidates_per_order=p.grab_candidates,
                max_travel_s=p.grab_max_travel_s,
            )
            offs = pool.offsets
            eligible = [idle[pool.worker_idx[offs[i] : offs[i + 1]]] for i in range(rows.size)]
        window = p.offer.grab_window_s
        for i, o in enumerate(rows.tolist()):
            w_rows = eligible[i]
            events = self.desk.submit(self._oid(o), t, eligible_worker_ids=c.worker_ids[w_rows])
            if any(isinstance(ev, FallbackToAutoAssign) for ev in events):
                continue  # nobody eligible: queued for auto-assign straight away
            self.rec("grab_open", t, o=self._oid(o), shown=int(w_rows.size))
            wids = c.worker_ids[w_rows]
            oid_arr = np.full(w_rows.size, self._oid(o), dtype=np.int64)
            keen = hash_u01(c.seed, oid_arr, wids, 1) >= c.decline_prob[w_rows]
            delay = np.ceil(
                -np.log1p(-hash_u01(c.seed, oid_arr, wids, 2)) * c.response_mean_s[w_rows]
            ).astype(np.int64)
            ok = keen & (delay < window)
            first = np.argsort(delay[ok], kind="stable")[: p.grab_claims_per_order]
            for j in first.tolist():
                self._push(t + int(delay[ok][j]), _Kind.CLAIM, o, int(w_rows[ok][j]))


def simulate(
    city: CityDay,
    policy: Policy | None = None,
    *,
    travel: TravelTimeModel | None = None,
    record: str | Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Simulate ``city`` under ``policy``; ``record`` writes the JSON-lines replay log there."""
    if record is None:
        return Engine(city, policy, travel=travel, progress=progress).run()
    path = Path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        return Engine(city, policy, travel=travel, log=fh, progress=progress).run()


def policy_with(policy: Policy, **changes: Any) -> Policy:
    """A copy of ``policy`` with top-level, offer (``mode``, ``accept_timeout_s``, ...) or
    ``weights`` (a mapping or preset name) fields changed."""
    data = policy.to_dict()
    for key, value in changes.items():
        if key == "weights" and isinstance(value, Mapping):
            data["weights"] = {**data["weights"], **value}
        else:
            data[key] = value
    if "mode" in changes and "name" not in changes:
        data["name"] = str(changes["mode"])
    return Policy.from_dict(data, where="policy")


__all__ = [
    "WEIGHT_PRESETS",
    "Engine",
    "OrderOutcome",
    "Policy",
    "SimResult",
    "hash_u01",
    "match_fn",
    "policy_with",
    "simulate",
]
