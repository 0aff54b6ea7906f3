"""Day plans in the simulated city (booked orders): the engine's booked half."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

import dispatch
import dispatch.assign
import dispatch.candidates
import dispatch.repair
import dispatch.rounds
import dispatch.schedule
import dispatch.slots
from dispatch.errors import InvalidInput
from dispatch.model import TRANSPORT_MODES
from dispatch.repair import ChangeKind, VisitOverran, WorkerAbsent
from dispatch.schedule import DayPlan, Stop, Visit, VisitStatus, WorkerDay
from dispatch.slots import ServiceRequest, Slot, SlotUnavailable
from simulations.city import NEVER, CityDay
from simulations.engine.parts import (
    ASSIGNED,
    DONE,
    IDLE,
    OFF,
    PLANNED,
    REFUSED,
    SERVING,
    WAITING,
    Kind,
    PlanningTravel,
    Recorder,
    angle,
)
from simulations.engine.policy import FloatArray, IntArray, Policy, Ports


class DayPlans:
    """The booked half of :class:`~simulations.engine.core.Engine`: day plans per partition,
    bookings into them through the slot engine, departures, and least-disruption repairs
    (see the package docstring). A mixin: its methods run on the engine's state."""

    # The engine's state and methods this half uses (set and defined by Engine).
    _assign: Callable[..., Any]
    _go_off: Callable[..., Any]
    _o_lookup: Any
    _oid: Callable[[int], int]
    _orow: Callable[[int], int]
    _part_dirty: Any
    _planned_rows: Any
    _push: Callable[..., Any]
    _trips: Callable[..., tuple[FloatArray, FloatArray]]
    _visits: Any
    _wrow: Callable[[int], int]
    book_start: Any
    city: CityDay
    in_plan: Any
    moved: Any
    o_known_end: Any
    o_part: Any
    o_plan_end: Any
    o_plan_start: Any
    o_repairs: Any
    o_route_w: Any
    o_state: Any
    part_rows: Any
    plan_calls: Any
    plan_travel: Any
    plans: list[DayPlan | None]
    policy: Policy
    ports: Ports
    promised: Any
    rec: Recorder
    repair_dropped: Any
    slot_calls: Any
    slot_errors: Any
    start_s: Any
    w_depart: Any
    w_gone: Any
    w_lat: Any
    w_lng: Any
    w_off_after: Any
    w_part: Any
    w_repairs: Any
    w_route: Any
    w_state: Any
    worker_row: Any

    def _partition(self) -> None:
        """Plan partitions: each district's workers in angular sectors of at most
        ``plan_workers`` around their centroid (shifts mixed), so every plan_day is small."""
        c, size = self.city, self.policy.plan_workers
        self._sectors: dict[int, tuple[float, float, FloatArray, IntArray]] = {}
        for d in range(len(c.district_names)):
            ws = np.flatnonzero(c.home_district == d)
            if ws.size == 0:
                continue
            clat, clng = float(c.home_lat[ws].mean()), float(c.home_lng[ws].mean())
            ang = angle(c.home_lat[ws], c.home_lng[ws], clat, clng)
            chunks = np.array_split(np.argsort(ang, kind="stable"), -(-ws.size // size))
            ids = np.arange(len(self.part_rows), len(self.part_rows) + len(chunks))
            for k, chunk in zip(ids.tolist(), chunks, strict=True):
                self.part_rows.append(ws[chunk])
                self.plans.append(None)
                self._part_dirty.append(set())
                self.w_part[ws[chunk]] = k
            edges = np.asarray([ang[ch[0]] for ch in chunks[1:]], dtype=np.float64)
            self._sectors[d] = (clat, clng, edges, ids.astype(np.int64))

    def _part_of_orders(self, rows: IntArray) -> IntArray:
        """Partition of each order: the sector of its district it lies in (-1: no workers)."""
        c = self.city
        out = np.full(rows.size, -1, dtype=np.int64)
        for d, (clat, clng, edges, ids) in self._sectors.items():
            sel = c.district[rows] == d
            if sel.any():
                ang = angle(c.lat[rows[sel]], c.lng[rows[sel]], clat, clng)
                out[sel] = ids[np.searchsorted(edges, ang, side="right")]
        return out

    def _visit(self, o: int) -> Visit:
        c = self.city
        return Visit(
            id=self._oid(o),
            lat=float(c.lat[o]),
            lng=float(c.lng[o]),
            duration_s=int(c.expected_service_s[o]),
            window_start=int(self.book_start[o]),
            window_end=int(self.promised[o]),
            skills=int(c.required_skills[o]),
        )

    def _worker_days(self, k: int) -> list[WorkerDay]:
        c = self.city
        return [
            WorkerDay(
                id=int(c.worker_ids[w]),
                shift_start=int(c.shift_start_s[w]),
                shift_end=int(c.shift_end_s[w]),
                start_lat=float(c.home_lat[w]),
                start_lng=float(c.home_lng[w]),
                skills=int(c.worker_skills[w]),
                mode=TRANSPORT_MODES[int(c.mode[w])],
            )
            for w in self.part_rows[k].tolist()
            if not self.w_gone[w]
        ]

    def _stop(self, iterations: int) -> Stop:
        # The iteration cap binds, not the clock: the same day gives the same plans.
        return Stop(seconds=600.0, max_iterations=iterations)

    def _new_plan(self, k: int, visits: list[Visit]) -> DayPlan | None:
        workers = self._worker_days(k)
        if not workers:
            return None
        self.plan_calls += 1
        return self.ports.plan_day(
            visits,
            workers,
            travel=self.plan_travel,
            stop=self._stop(self.policy.plan_iterations),
            seed=self.city.seed,
        )

    def _fits_a_shift(self, rows: IntArray, workers: list[WorkerDay]) -> NDArray[np.bool_]:
        """Orders whose slot and duration fit some worker's shift (plan_day rejects others)."""
        if not workers or rows.size == 0:
            return np.zeros(rows.size, dtype=np.bool_)
        starts = np.asarray([w.shift_start for w in workers], dtype=np.int64)[None, :]
        ends = np.asarray([w.shift_end for w in workers], dtype=np.int64)[None, :]
        ws, we = self.book_start[rows][:, None], self.promised[rows][:, None]
        dur = self.city.expected_service_s[rows][:, None]
        ok = (ws <= ends) & (np.maximum(ws, starts) + dur <= ends) & (we >= starts)
        return np.asarray(ok.any(axis=1), dtype=np.bool_)

    def _on_plan(self, t: int, _a: int, _b: int) -> None:
        """Day plans for everything booked so far, one plan_day per partition."""
        rows = np.flatnonzero(self._planned_rows & (self.o_state == WAITING))
        parts = self.o_part[rows]
        for o in rows[parts < 0].tolist():
            self._push(max(t, int(self.city.release_s[o])), Kind.RELEASE, o)
        planned = dropped = 0
        for k in range(len(self.part_rows)):
            mine = rows[parts == k]
            ours = self.in_plan & (self.o_part == k)
            earlier = np.flatnonzero(ours & (self.o_state == PLANNED))
            # Booked earlier and already under way: finished outside the new plan.
            self.in_plan[ours & (self.o_state != PLANNED)] = False
            fits = self._fits_a_shift(mine, self._worker_days(k))
            take = mine[fits]
            plan = None
            if take.size or earlier.size or self.plans[k] is None:
                for o in take.tolist():
                    self._visits[o] = self._visit(o)
                visits = [self._visits[o] for o in [*earlier.tolist(), *take.tolist()]]
                plan = self._new_plan(k, visits)
            # No shift covers it, or nobody is left to plan for: on-demand dispatch takes it.
            for o in (mine if plan is None else mine[~fits]).tolist():
                self._push(max(t, int(self.city.release_s[o])), Kind.RELEASE, o)
            if plan is None:
                continue
            self.o_state[take] = PLANNED
            self.in_plan[take] = True
            self.rec("planned", t, o=self.city.order_ids[take].tolist())
            planned += int(take.size)
            dropped += plan.num_dropped
            self._adopt(t, k, plan)
        self.rec("plan", t, partitions=len(self.part_rows), visits=planned, dropped=dropped)

    def _adopt(self, t: int, k: int, plan: DayPlan) -> None:
        """Make ``plan`` the one in force for partition ``k``: routes, departures, drops."""
        self.plans[k] = plan
        heads = {
            w: (self.w_route[w][0], int(self.o_plan_start[self.w_route[w][0]]))
            if self.w_route[w]
            else (-1, -1)
            for w in self.part_rows[k].tolist()
        }
        for w in heads:
            self.w_route[w] = []
        for r in plan.routes:
            w = self._wrow(r.worker_id)
            seq = self.w_route[w]
            for stop in r.stops:
                o = self._orow(stop.visit_id)
                if self.o_state[o] != PLANNED:
                    continue
                self.o_route_w[o] = w
                self.o_plan_start[o] = stop.start
                self.o_plan_end[o] = stop.end
                seq.append(o)
        # A visit no route can hold leaves the plan for on-demand dispatch (an hour ahead),
        # as a dispatcher would hand it to whoever is free.
        left = [
            self._orow(d.visit_id)
            for d in plan.dropped
            if self.o_state[self._orow(d.visit_id)] == PLANNED
        ]
        for o in left:
            self.in_plan[o] = False
            self.o_route_w[o] = -1
            self.o_state[o] = WAITING
            self._push(max(t, int(self.city.release_s[o])), Kind.RELEASE, o)
        if left:
            self._part_dirty[k].update(left)
            self.rec("unplanned", t, o=self.city.order_ids[left].tolist())
        changed = []
        for w, head in heads.items():
            route = self.w_route[w]
            now = (route[0], int(self.o_plan_start[route[0]])) if route else (-1, -1)
            # A new first visit, or the same one retimed: the departure moves.
            if now != head or (now[0] >= 0 and self.w_depart[w] == NEVER):
                changed.append(w)
        self._plan_next_many(t, changed)

    def _route_head(self, w: int) -> int:
        """The next planned visit of worker ``w`` (-1: none left)."""
        route = self.w_route[w]
        while route and self.o_state[route[0]] != PLANNED:
            route.pop(0)
        return route[0] if route else -1

    def _plan_next(self, t: int, w: int) -> None:
        """An idle worker with a planned visit leaves so as to arrive at its planned start."""
        self._plan_next_many(t, [w])

    def _plan_next_many(self, t: int, workers: list[int]) -> None:
        """:meth:`_plan_next` for several workers, their rides priced in one call."""
        going: list[tuple[int, int]] = []
        for w in workers:
            o = self._route_head(w)
            if o < 0:
                self.w_depart[w] = NEVER
            elif self.w_state[w] == IDLE:
                going.append((w, o))
        if not going:
            return
        w_rows = np.fromiter((w for w, _ in going), dtype=np.int64, count=len(going))
        o_rows = np.fromiter((o for _, o in going), dtype=np.int64, count=len(going))
        secs = self._planned_rides(t, o_rows, w_rows)
        for (w, o), ride in zip(going, secs.tolist(), strict=True):
            depart = max(t, int(self.o_plan_start[o]) - math.ceil(ride))
            self.w_depart[w] = depart
            if depart <= t:
                self._go_planned(t, w, o)
            else:
                self._push(depart, Kind.DEPART, w, o)

    def _planned_rides(self, t: int, o: IntArray, w: IntArray) -> FloatArray:
        """Seconds a worker allows for the ride to a planned visit: the plans' own (slowest
        hour) estimate, so they leave early rather than late."""
        if not isinstance(self.plan_travel, PlanningTravel):
            secs, _ = self._trips(np.full(o.size, t, dtype=np.int64), o, w)
            return secs
        c = self.city
        out = np.zeros(o.size)
        modes = c.mode[w]
        for code in np.unique(modes).tolist():
            sel = modes == code
            out[sel] = self.plan_travel.seconds(
                self.w_lat[w[sel]],
                self.w_lng[w[sel]],
                c.lat[o[sel]],
                c.lng[o[sel]],
                t,
                mode=TRANSPORT_MODES[code],
            )
        return out

    def _go_planned(self, t: int, w: int, o: int) -> None:
        self.w_route[w].pop(0)
        self.w_depart[w] = NEVER
        self._assign(t, o, w)

    def _on_depart(self, t: int, w: int, o: int) -> None:
        if self.w_state[w] == IDLE and self.w_depart[w] == t and self._route_head(w) == o:
            self._go_planned(t, w, o)

    def _sync(self, k: int, t: int, overrun: int = -1) -> DayPlan:
        """Partition ``k``'s plan with every visit's status as the day has gone so far.

        Started and done visits are fixed (a visit under way counts as started); gone
        ones (cancelled, escalated, left for on-demand dispatch) are pinned to nobody, so
        no repair brings them back.
        """
        plan = self.plans[k]
        assert plan is not None
        dirty = self._part_dirty[k]
        if overrun >= 0:
            dirty.add(overrun)
        if not dirty:
            return plan
        c = self.city
        out = list(plan.visits)
        where = {v.id: i for i, v in enumerate(out)}
        for o in sorted(dirty):
            i = where.get(self._oid(o))
            if i is None:
                continue  # not in this plan (any more)
            state = self.o_state[o]
            w = int(self.worker_row[o])
            wid = int(c.worker_ids[w]) if w >= 0 else -1
            spec = self._visits[o]
            if not self.in_plan[o]:
                v = replace(spec, status=VisitStatus.CONFIRMED, pinned_worker=-1)
            elif state == DONE:
                v = replace(
                    spec,
                    status=VisitStatus.DONE,
                    pinned_worker=wid,
                    pinned_start=int(self.start_s[o]),
                    duration_s=int(c.actual_service_s[o]),
                )
            elif state in (SERVING, ASSIGNED):
                start = (
                    int(self.start_s[o]) if state == SERVING else max(int(self.o_plan_start[o]), t)
                )
                if o == overrun:  # its end moves by the event's extra seconds
                    dur = max(1, int(self.o_plan_end[o]) - start)
                elif self.o_known_end[o] >= 0:
                    dur = max(1, int(self.o_known_end[o]) - start)
                else:
                    dur = int(c.expected_service_s[o])
                v = replace(
                    spec,
                    status=VisitStatus.STARTED,
                    pinned_worker=wid,
                    pinned_start=start,
                    duration_s=dur,
                )
            elif state == PLANNED:
                v = spec
            else:
                v = replace(spec, status=VisitStatus.CONFIRMED, pinned_worker=-1)
            out[i] = v
        dirty.clear()
        synced = replace(plan, visits=tuple(out))
        self.plans[k] = synced
        return synced

    def _repair(self, t: int, k: int, event: Any, overrun: int = -1) -> None:
        """Repair partition ``k``'s plan after ``event`` through ``dispatch.repair``."""
        if k < 0 or self.plans[k] is None:
            return
        plan = self._sync(k, t, overrun)
        result = self.ports.repair(
            plan,
            event,
            travel=self.plan_travel,
            stop=self._stop(self.policy.repair_iterations),
            seed=self.city.seed,
        )
        moved: list[int] = []
        dropped: list[int] = []
        for change in result.changes:
            o = self._o_lookup.get(change.visit_id)
            if o is None:
                continue
            if change.kind == ChangeKind.REASSIGNED:
                self.moved[o] += 1
                moved.append(change.visit_id)
            elif change.kind == ChangeKind.DROPPED:
                self.repair_dropped[o] = True
                dropped.append(change.visit_id)
        self.rec("repair", t, why=type(event).__name__, moved=moved, dropped=dropped)
        self._adopt(t, k, result.plan)

    def _on_sick(self, t: int, w: int, _: int) -> None:
        """Worker ``w`` calls in sick: home after the job in hand; their plan is repaired."""
        c = self.city
        if t >= c.shift_end_s[w] or self.w_gone[w]:
            return
        self.w_gone[w] = True
        self.rec("sick", t, w=int(c.worker_ids[w]))
        if self.w_state[w] == IDLE:
            self._go_off(t, w)
        elif self.w_state[w] != OFF:
            self.w_off_after[w] = True
        k = int(self.w_part[w])
        if k >= 0 and self.plans[k] is not None:
            self.w_repairs[w] += 1
            self._repair(t, k, WorkerAbsent(int(c.worker_ids[w]), t))

    def _on_overrun(self, t: int, o: int, w: int) -> None:
        """A planned visit will end well after its planned end: repair the rest of the day."""
        if self.o_state[o] != SERVING:
            return
        start = int(self.start_s[o])
        end = start + int(self.city.actual_service_s[o])
        extra = end - max(start + 1, int(self.o_plan_end[o]))
        if extra <= 0:
            return
        self.o_repairs[o] += 1
        self.rec("overrun", t, o=self._oid(o), extra_s=extra)
        self._repair(t, int(self.o_part[o]), VisitOverran(self._oid(o), extra), overrun=o)
        self.o_known_end[o] = end

    def _ensure_plan(self, k: int) -> DayPlan | None:
        if self.plans[k] is None:
            plan = self._new_plan(k, [])
            if plan is not None:
                self.plans[k] = plan
        return self.plans[k]

    def _on_book(self, t: int, o: int, _: int) -> None:
        """A customer books a slot: reserved into the plan in force through dispatch.slots.

        The requested slot first; if it is gone, the first free slot (available_slots)
        up to ``reslot_h`` later; otherwise the customer books nothing (refused).
        """
        if self.o_state[o] != WAITING:
            return  # cancelled at once
        c = self.city
        k = int(self.o_part[o])
        plan = self._ensure_plan(k) if k >= 0 else None
        oid = self._oid(o)
        result = None
        if plan is not None:
            plan = self._sync(k, t)
            req = ServiceRequest(
                duration_s=int(c.expected_service_s[o]), skills=int(c.required_skills[o])
            )
            where = (float(c.lat[o]), float(c.lng[o]))
            start, width = int(self.book_start[o]), int(self.promised[o] - self.book_start[o])
            result = self._reserve(req, where, Slot(start, start + width, 1), plan, oid)
            latest = start + round(self.policy.reslot_h * 3600)
            if result is None and latest > start:
                self.slot_calls += 1
                free = self.ports.available_slots(
                    req, where, (start + width, latest + 1), plan,
                    granularity_s=width, lead_time_s=0, now=t,
                )  # fmt: skip
                if free:
                    result = self._reserve(req, where, free[0], plan, oid)
        if result is None:
            self.o_state[o] = REFUSED
            self.rec("refuse", t, o=oid)
            return
        shift = result.visit.window_start - int(self.book_start[o])
        if shift:
            self.book_start[o] += shift
            self.promised[o] += shift
        self._visits[o] = result.visit
        self.o_state[o] = PLANNED
        self.in_plan[o] = True
        self.rec("book", t, o=oid, start=int(self.book_start[o]), end=int(self.promised[o]))
        self._adopt(t, k, result.plan)

    def _reserve(
        self,
        req: ServiceRequest,
        where: tuple[float, float],
        slot: Slot,
        plan: DayPlan,
        oid: int,
    ) -> dispatch.slots.Reservation | None:
        self.slot_calls += 1
        try:
            return self.ports.reserve_slot(req, where, slot, plan, visit_id=oid)
        except SlotUnavailable:
            return None
        except InvalidInput:
            # dispatch.schedule.plan_with_insertion re-times the chosen route without the
            # lateness the insertion search tolerates, so a route already running late (kept
            # by a repair) rejects the option it was offered. The booking fails like a
            # taken slot; counted so the KPI table shows it.
            self.slot_errors += 1
            return None
