"""The discrete-event engine: its clock, events, on-demand dispatch rounds and offers."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

import dispatch
import dispatch.assign
import dispatch.candidates
import dispatch.repair
import dispatch.rounds
import dispatch.schedule
import dispatch.slots
from dispatch.model import NO_LIMIT_S, TRANSPORT_MODES, Fleet, OrderBatch
from dispatch.offers import (
    Claimed,
    Escalated,
    FallbackToAutoAssign,
    GrabOpened,
    OfferAccepted,
    OfferDesk,
    OfferExpired,
    OfferMade,
    OfferWithdrawn,
    Reoffer,
)
from dispatch.repair import VisitCancelled
from dispatch.schedule import DayPlan, Visit
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel, TravelTimeModel
from simulations.city import NEVER, CityDay
from simulations.engine.parts import (
    ASSIGNED,
    BUSY,
    CANCELLED,
    DONE,
    ESCALATED,
    HOLDING,
    IDLE,
    OFF,
    OFFERED,
    PLANNED,
    QUEUED,
    REFUSED,
    SERVING,
    WAITING,
    Kind,
    PlanningTravel,
    Recorder,
    hash_u01,
)
from simulations.engine.plans import DayPlans
from simulations.engine.policy import (
    FloatArray,
    IntArray,
    OrderOutcome,
    Policy,
    Ports,
    SimResult,
)


class Engine(DayPlans):
    """One simulated day; build with a CityDay and a Policy, then :meth:`run`."""

    def __init__(
        self,
        city: CityDay,
        policy: Policy | None = None,
        *,
        travel: TravelTimeModel | None = None,
        log: IO[str] | None = None,
        progress: Callable[[float], None] | None = None,
        ports: Ports | None = None,
    ) -> None:
        """Prepare state; ``log`` a text stream for the JSON-lines replay log; ``ports`` the
        decision functions (default: production's)."""
        self.city = city
        self.policy = policy or Policy()
        self.ports = ports or Ports()
        self.travel: TravelTimeModel = travel or cast(TravelTimeModel, HaversineTravelModel())
        # Day plans ride at the slowest hour (see PlanningTravel); other models as they are.
        self.plan_travel: Any = (
            PlanningTravel(self.travel)
            if isinstance(self.travel, HaversineTravelModel)
            else self.travel
        )
        self.desk = OfferDesk(self.policy.offer)
        self.rec = Recorder(log)
        self.progress = progress
        n, m = city.n_orders, city.n_workers
        self.o_state = np.full(n, WAITING, dtype=np.int8)
        self.assigned_at = np.full(n, -1, dtype=np.int64)
        self.start_s = np.full(n, -1, dtype=np.int64)
        self.end_s = np.full(n, -1, dtype=np.int64)
        self.worker_row = np.full(n, -1, dtype=np.int64)
        self.travel_s = np.zeros(n)
        self.travel_m = np.zeros(n)
        self.offers = np.zeros(n, dtype=np.int64)
        self.declines = np.zeros(n, dtype=np.int64)
        self.timeouts = np.zeros(n, dtype=np.int64)
        self.w_state = np.full(m, OFF, dtype=np.int8)
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
        # Booked orders and day plans (see "day plans" below).
        self.book_start = city.booked_start_s.copy()
        self.promised = city.promised_s.copy()
        self.o_part = np.full(n, -1, dtype=np.int64)  # plan partition of a booked order
        self.in_plan = np.zeros(n, dtype=np.bool_)
        self.o_route_w = np.full(n, -1, dtype=np.int64)  # worker row its plan routes it to
        self.o_plan_start = np.full(n, -1, dtype=np.int64)
        self.o_plan_end = np.full(n, -1, dtype=np.int64)
        self.o_known_end = np.full(n, -1, dtype=np.int64)  # end announced by an overrun
        self.moved = np.zeros(n, dtype=np.int64)
        self.repair_dropped = np.zeros(n, dtype=np.bool_)
        self.o_repairs = np.zeros(n, dtype=np.int64)
        self.w_repairs = np.zeros(m, dtype=np.int64)
        self.w_part = np.full(m, -1, dtype=np.int64)
        self.w_route: list[list[int]] = [[] for _ in range(m)]
        self.w_depart = np.full(m, NEVER, dtype=np.int64)  # must leave for a planned visit
        self.w_gone = np.zeros(m, dtype=np.bool_)  # called in sick
        self.plans: list[DayPlan | None] = []
        self.part_rows: list[IntArray] = []
        # Per partition, orders whose state changed since its plan last saw them.
        self._part_dirty: list[set[int]] = []
        self._visits: dict[int, Visit] = {}
        self.plan_calls = 0
        self.slot_calls = 0
        self.slot_errors = 0

    # ----------------------------------------------------------------- plumbing

    def _push(self, t: int, kind: Kind, a: int = 0, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (int(t), int(kind), self._seq, a, b))

    def _touch(self, now: int) -> None:
        """Something changed: make sure a dispatch runs at the next window boundary."""
        self._dirty = True
        w = self.policy.batch_window_s
        at = -(-now // w) * w
        if self._dispatch_at is None:
            self._dispatch_at = at
            self._push(at, Kind.DISPATCH)

    def _schedule_tick(self) -> None:
        d = self.desk.next_deadline()
        if d is not None and d not in self._ticks:
            self._ticks.add(d)
            self._push(d, Kind.TICK)

    def _oid(self, row: int) -> int:
        return int(self.city.order_ids[row])

    def _orow(self, oid: int) -> int:
        return int(self._o_lookup[int(oid)])

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
        plan_at = c.day_start_s + round(self.policy.plan_at_h * 3600)
        booked = c.booked_start_s >= 0
        # Booked before the plans are made (for a start after that): planned at plan_at;
        # booked later: reserved through dispatch.slots when the customer books.
        self._planned_rows = booked & (c.created_s < plan_at) & (c.booked_start_s >= plan_at)
        if booked.any():
            self._partition()
            self.o_part[booked] = self._part_of_orders(np.flatnonzero(booked))
        for row in range(c.n_orders):
            if self._planned_rows[row]:
                pass  # placed by the PLAN event
            elif booked[row]:
                self._push(int(c.created_s[row]), Kind.BOOK, row)
            else:
                self._push(int(c.release_s[row]), Kind.RELEASE, row)
            if c.cancel_at_s[row] < c.end_s + 86_400:
                self._push(int(c.cancel_at_s[row]), Kind.CANCEL, row)
        if self._planned_rows.any():
            self._push(plan_at, Kind.PLAN)
        assert c.sick_at_s is not None
        for row in range(c.n_workers):
            self._push(int(c.shift_start_s[row]), Kind.SHIFT_START, row)
            self._push(int(c.shift_end_s[row]), Kind.SHIFT_END, row)
            if c.sick_at_s[row] != NEVER:
                self._push(int(c.sick_at_s[row]), Kind.SICK, row)
        handlers: dict[int, Callable[[int, int, int], None]] = {
            Kind.SERVICE_END: self._on_service_end,
            Kind.ARRIVE: self._on_arrive,
            Kind.RESPONSE: self._on_response,
            Kind.CLAIM: self._on_claim,
            Kind.CANCEL: self._on_cancel,
            Kind.RELEASE: self._on_release,
            Kind.SHIFT_START: self._on_shift_start,
            Kind.TICK: self._on_tick,
            Kind.COOLDOWN_END: self._on_cooldown_end,
            Kind.SHIFT_END: self._on_shift_end,
            Kind.DISPATCH: self._on_dispatch,
            Kind.SICK: self._on_sick,
            Kind.OVERRUN: self._on_overrun,
            Kind.BOOK: self._on_book,
            Kind.PLAN: self._on_plan,
            Kind.DEPART: self._on_depart,
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
        on = self.w_state != OFF
        self.w_on_shift_s[on] += last - self.w_on_since[on]
        outcome = np.full(c.n_orders, OrderOutcome.UNSERVED, dtype=np.int8)
        outcome[self.o_state == DONE] = OrderOutcome.SERVED
        outcome[self.o_state == CANCELLED] = OrderOutcome.CANCELLED
        outcome[self.o_state == ESCALATED] = OrderOutcome.ESCALATED
        outcome[self.o_state == REFUSED] = OrderOutcome.REFUSED
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
            promised_s=self.promised,
            booked_start_s=self.book_start,
            in_plan=self.in_plan,
            moved=self.moved,
            repair_dropped=self.repair_dropped,
            order_repairs=self.o_repairs,
            worker_repairs=self.w_repairs,
            plan_calls=self.plan_calls,
            slot_calls=self.slot_calls,
        )
        self.rec("end", last, match_calls=self.match_calls, events=self.n_events)
        return result

    # ----------------------------------------------------------------- workers

    def _on_shift_start(self, t: int, w: int, _: int) -> None:
        if self.w_gone[w]:
            return  # called in sick before the shift
        self.w_state[w] = IDLE
        self.w_on_since[w] = t
        self._freed_skills |= int(self.city.worker_skills[w])
        self.rec("shift_start", t, w=int(self.city.worker_ids[w]))
        self._plan_next(t, w)
        self._touch(t)

    def _go_off(self, t: int, w: int) -> None:
        self.w_state[w] = OFF
        self.w_on_shift_s[w] += t - self.w_on_since[w]
        self.rec("shift_end", t, w=int(self.city.worker_ids[w]))

    def _on_shift_end(self, t: int, w: int, _: int) -> None:
        if self.w_state[w] == IDLE and self._route_head(w) < 0:
            self._go_off(t, w)
        elif self.w_state[w] != OFF:
            # Finish the job in hand (and visits planned for today, if running late).
            self.w_off_after[w] = True

    def _free(self, t: int, w: int) -> None:
        """Worker ``w`` is free again (job done, offer missed or withdrawn)."""
        ending = self.w_off_after[w] or t >= self.city.shift_end_s[w]
        if self.w_gone[w] or (ending and self._route_head(w) < 0):
            self._go_off(t, w)
            return
        self.w_state[w] = IDLE
        self._freed_skills |= int(self.city.worker_skills[w])
        self._plan_next(t, w)
        self._touch(t)

    def _on_cooldown_end(self, t: int, w: int, _b: int) -> None:
        if self.w_state[w] == IDLE:
            self._freed_skills |= int(self.city.worker_skills[w])
            self._touch(t)

    # ----------------------------------------------------------------- orders

    def _on_release(self, t: int, o: int, _: int) -> None:
        if self.o_state[o] != WAITING:
            return  # cancelled before it reached dispatch
        self.o_state[o] = QUEUED
        self.rec("release", t, o=self._oid(o))
        self._new.append(o)
        self._touch(t)

    def _on_cancel(self, t: int, o: int, _: int) -> None:
        state = self.o_state[o]
        if state == PLANNED:
            self.o_state[o] = CANCELLED
            self.rec("cancel", t, o=self._oid(o))
            self.o_repairs[o] += 1
            self._repair(t, int(self.o_part[o]), VisitCancelled(self._oid(o)))
            return
        if state not in (WAITING, QUEUED, OFFERED):
            return  # already assigned: the customer keeps the visit
        oid = self._oid(o)
        if state != WAITING and (oid in self.desk.book or oid in self.desk.pool):
            for ev in self.desk.cancel(oid, t):
                if isinstance(ev, OfferWithdrawn):
                    self._free(t, self._wrow(ev.worker_id))
        self.o_state[o] = CANCELLED
        self.rec("cancel", t, o=oid)

    def _assign(self, t: int, o: int, w: int) -> None:
        c = self.city
        self.o_state[o] = ASSIGNED
        self.w_state[w] = BUSY
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
        if self.in_plan[o]:
            self._part_dirty[int(self.o_part[o])].add(o)
        assert c.delay_s is not None
        self._push(t + math.ceil(secs) + int(c.delay_s[o]), Kind.ARRIVE, o, w)

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
        start = max(t, int(self.book_start[o]))  # early for a booking: wait at the door
        self.o_state[o] = SERVING
        self.start_s[o] = start
        self.rec("start", start, o=self._oid(o))
        end = start + int(c.actual_service_s[o])
        self._push(end, Kind.SERVICE_END, o, w)
        if self.in_plan[o] and self.o_plan_end[o] >= 0:
            self._part_dirty[int(self.o_part[o])].add(o)
            # Ending so late (late start or overrun) that the worker's next planned visit
            # would start after its slot: the plan is repaired when that becomes known (at
            # the start, or when this visit should have ended).
            nxt = self._route_head(w)
            slack = self.policy.repair_after_s
            if nxt >= 0:
                room = int(self.promised[nxt]) + c.grace_s - int(self.o_plan_start[nxt])
                slack = max(slack, room)
            limit = int(self.o_plan_end[o]) + slack
            if nxt >= 0 and end > limit:
                known = start if start + int(c.expected_service_s[o]) > limit else None
                at = known if known is not None else start + int(c.expected_service_s[o])
                self._push(min(at, end - 1), Kind.OVERRUN, o, w)

    def _on_service_end(self, t: int, o: int, w: int) -> None:
        if self.in_plan[o]:
            self._part_dirty[int(self.o_part[o])].add(o)
        self.o_state[o] = DONE
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
                self.o_state[o] = QUEUED
                self.rec("timeout", ev.expired_at, o=ev.order_id, w=ev.worker_id)
                self._free(t, w)
                self._cooldown(t, w)
            elif isinstance(ev, Reoffer | FallbackToAutoAssign):
                self.o_state[self._orow(ev.order_id)] = QUEUED
                self._touch(t)
            elif isinstance(ev, Escalated):
                o = self._orow(ev.order_id)
                self.o_state[o] = ESCALATED
                self.rec("escalate", t, o=ev.order_id, reason=ev.reason)

    def _cooldown(self, t: int, w: int) -> None:
        cd = self.policy.offer.miss_cooldown_s
        if cd > 0:
            self._push(t + cd, Kind.COOLDOWN_END, w)

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
        if self.w_state[w] != IDLE:
            return  # took another job meanwhile
        oid, wid = self._oid(o), int(self.city.worker_ids[w])
        if oid not in self.desk.pool:
            return
        ev = self.desk.claim(oid, wid, t)
        if isinstance(ev, Claimed):
            self.rec("claim", t, o=oid, w=wid)
            self._assign(t, o, w)

    # ----------------------------------------------------------------- dispatch

    def _free_until(self, rows: IntArray) -> IntArray:
        """When each worker must be done with on-demand work: shift end, or the departure
        for their next planned visit less ``booked_buffer_s``."""
        planned = self.w_depart[rows] - self.policy.booked_buffer_s
        until: IntArray = np.minimum(self.city.shift_end_s[rows], planned)
        return until

    def _fleet(self, rows: IntArray) -> Fleet:
        c = self.city
        return Fleet.from_arrays(
            c.worker_ids[rows],
            self.w_lat[rows],
            self.w_lng[rows],
            skills=c.worker_skills[rows],
            rating=c.rating[rows],
            shift_end_s=self._free_until(rows),
            load_today=self.w_served[rows],
            recent_earnings_fen=self.w_earn[rows],
            mode=c.mode[rows],
        )

    def _orders(self, rows: IntArray, now: int) -> OrderBatch:
        """Orders of ``rows`` as a batch (the desk adds its exclusions in each round)."""
        c, p = self.city, self.policy
        latest = self._latest_start(rows)
        return OrderBatch.from_arrays(
            c.order_ids[rows],
            c.lat[rows],
            c.lng[rows],
            required_skills=c.required_skills[rows],
            service_s=c.expected_service_s[rows],
            latest_start_s=latest,
            priority=dispatch.rounds.waiting_priority(now - c.release_s[rows], p.aging_per_hour),
        )

    def _idle_rows(self, now: int) -> IntArray:
        rows = np.flatnonzero(self.w_state == IDLE).astype(np.int64)
        if rows.size:
            rows = rows[self._free_until(rows) > now]
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
        new = [o for o in new if self.o_state[o] == QUEUED]
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
        latest = self._latest_start(self._orows(pending_ids))
        self._after_desk_events(t, dispatch.rounds.escalate_late(self.desk, pending_ids, latest, t))
        keep: IntArray = pending_ids[latest >= t]
        return keep

    def _latest_start(self, rows: IntArray) -> IntArray:
        """Latest acceptable start of each order row (epoch s; NO_LIMIT_S without a bound)."""
        if self.policy.max_lateness_s is None:
            return np.full(rows.size, NO_LIMIT_S, dtype=np.int64)
        c = self.city
        latest: IntArray = c.promised_s[rows] + c.grace_s + self.policy.max_lateness_s
        return latest

    def _match(self, t: int, pending_ids: IntArray, idle: IntArray) -> None:
        p = self.policy
        rows = self._orows(pending_ids)
        outcome = dispatch.rounds.offer_round(
            self.desk,
            self._orders(rows, t),
            self._fleet(idle),
            t,
            weights=p.weights,
            params=p.rounds,
            travel=self.travel,
            match_fn=self.ports.match,
        )
        result = outcome.assignment
        if result is None:
            return
        self.match_calls += 1
        self.rec(
            "match", t, orders=int(rows.size), workers=int(idle.size), assigned=result.assigned
        )
        for oid, reason in zip(
            result.unassigned_order_ids.tolist(), result.unassigned_reasons, strict=True
        ):
            if reason != "outbid":  # outbid orders had an eligible worker: retry next window
                self._parked[self._orow(oid)] = True
        if not outcome.offers:
            return
        self.matched += len(outcome.offers)
        self._answer(t, outcome.offers)

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
            self.o_state[o] = OFFERED
            self.offers[o] += 1
            self.w_state[w] = HOLDING
            self.rec("offer", t, o=m.order_id, w=m.worker_id)
            if delay[i] < timeout:
                self._push(t + int(delay[i]), Kind.RESPONSE, o, (w << 1) | int(accept[i]))

    def _open_grab(self, t: int, rows: IntArray) -> None:
        """Show new orders to nearby eligible idle workers; schedule the first claims."""
        c, p = self.city, self.policy
        events = dispatch.rounds.admit(
            self.desk,
            self._orders(rows, t),
            self._fleet(self._idle_rows(t)),
            t,
            params=p.rounds,
            travel=self.travel,
            find_fn=self.ports.find_candidates,
        )
        window = p.offer.grab_window_s
        for ev in events:
            if not isinstance(ev, GrabOpened):
                continue  # nobody eligible: queued for auto-assign straight away
            o = self._orow(ev.order_id)
            wids = np.asarray(ev.eligible_worker_ids, dtype=np.int64)
            w_rows = np.asarray([self._wrow(w) for w in wids.tolist()], dtype=np.int64)
            self.rec("grab_open", t, o=ev.order_id, shown=int(w_rows.size))
            oid_arr = np.full(w_rows.size, ev.order_id, dtype=np.int64)
            keen = hash_u01(c.seed, oid_arr, wids, 1) >= c.decline_prob[w_rows]
            delay = np.ceil(
                -np.log1p(-hash_u01(c.seed, oid_arr, wids, 2)) * c.response_mean_s[w_rows]
            ).astype(np.int64)
            ok = keen & (delay < window)
            first = np.argsort(delay[ok], kind="stable")[: p.grab_claims_per_order]
            for j in first.tolist():
                self._push(t + int(delay[ok][j]), Kind.CLAIM, o, int(w_rows[ok][j]))


def simulate(
    city: CityDay,
    policy: Policy | None = None,
    *,
    travel: TravelTimeModel | None = None,
    record: str | Path | None = None,
    progress: Callable[[float], None] | None = None,
    ports: Ports | None = None,
) -> SimResult:
    """Simulate ``city`` under ``policy``; ``record`` writes the JSON-lines replay log there;
    ``ports`` the decision functions (default: production's)."""
    if record is None:
        return Engine(city, policy, travel=travel, progress=progress, ports=ports).run()
    path = Path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        return Engine(city, policy, travel=travel, log=fh, progress=progress, ports=ports).run()
