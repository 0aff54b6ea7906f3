"""Routes of a ``Problem``: exact timing, feasibility, breaks, and the ``DayPlan`` they make."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dispatch._vrp_core import (
    IntArray,
    RouteTimes,
    TravelMatrix,
    TravelModelLike,
    route_times,
)
from dispatch.schedule.plan import (
    DayPlan,
    DroppedVisit,
    DropReason,
    Objective,
    Route,
    ScheduledVisit,
    Visit,
)
from dispatch.schedule.problem import Problem


@dataclass(frozen=True)
class TimedPart:
    """Worker k's free route part: its rows, stop windows and exact times (seconds after t0)."""

    nodes: IntArray
    early: IntArray
    late: IntArray
    service: IntArray
    times: RouteTimes


def time_free_part(
    p: Problem, k: int, seq: Sequence[int], start_row: int, *, allow_late: bool
) -> TimedPart:
    """Exact times of worker k's free part ``seq`` (breaks as -b-1), leaving ``start_row``."""
    nodes = np.asarray([2 * p.W + i if i >= 0 else p.break_row for i in seq], dtype=np.int64)
    early, late, service = stop_windows(p, k, np.asarray(seq, dtype=np.int64))
    times = route_times(
        p.space.duration[p.workers[k].mode_code],
        start_row,
        p.W + k,
        int(p.ready_time[k]),
        int(p.shift_end[k]),
        nodes,
        early,
        late,
        service,
        allow_late=allow_late,
        pass_through=p.break_row,
    )
    return TimedPart(nodes, early, late, service, times)


def schedule_route(
    p: Problem, k: int, seq: Sequence[int], allow_late: bool = False
) -> tuple[list[ScheduledVisit], int, int, int, bool, int]:
    """Exact timing of worker k's day (fixed prefix + ``seq``); absolute epoch seconds out."""
    w = p.workers[k]
    m = w.mode_code
    dur = p.space.duration[m]
    dist = p.space.distance[m]
    stops: list[ScheduledVisit] = []
    travel = 0
    distance = 0
    prev_row = k
    t_prev_end = int(p.shift_start[k])
    for i in p.prefix[k]:
        v = p.visits[i]
        assert v.pinned_start is not None
        row = 2 * p.W + i
        tt = int(dur[prev_row, row])
        travel += tt
        distance += int(dist[prev_row, row])
        start = v.pinned_start
        stops.append(
            ScheduledVisit(
                v.id,
                w.id,
                min(start, t_prev_end + tt + p.t0),
                start,
                start + v.duration_s,
                tt,
                max(0, start - v.window_end),
            )
        )
        prev_row, t_prev_end = row, start + v.duration_s - p.t0
    timed = time_free_part(p, k, seq, int(prev_row), allow_late=allow_late)
    nodes, rt = timed.nodes, timed.times
    # Travel across a break is really from the stop before the break.
    real_prev = int(prev_row)
    for j, i in enumerate(seq):
        if i < 0:
            continue
        row = int(nodes[j])
        travel += int(dur[real_prev, row])
        distance += int(dist[real_prev, row])
        real_prev = row
    travel += int(dur[real_prev, p.W + k])
    distance += int(dist[real_prev, p.W + k])
    for j, i in enumerate(seq):
        if i < 0:
            continue
        v = p.visits[i]
        stops.append(
            ScheduledVisit(
                v.id,
                w.id,
                int(rt.arrival[j]) + p.t0,
                int(rt.start[j]) + p.t0,
                int(rt.end[j]) + p.t0,
                int(rt.travel[j]),
                max(0, int(rt.start[j]) + p.t0 - v.window_end),
            )
        )
    return stops, rt.finish + p.t0, travel, distance, rt.feasible, rt.first_violation


def stop_windows(p: Problem, k: int, idx: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    early = np.empty(idx.size, dtype=np.int64)
    late = np.empty(idx.size, dtype=np.int64)
    service = np.empty(idx.size, dtype=np.int64)
    brk = p.workers[k].breaks
    for j, i in enumerate(idx.tolist()):
        if i >= 0:
            early[j], late[j], service[j] = p.early[i], p.late[i], p.service[i]
        else:
            b = brk[-i - 1]
            early[j] = late[j] = b.start - p.t0
            service[j] = b.end - b.start
    return early, late, service


def route_sequences_feasible(
    p: Problem, seqs: list[list[int]]
) -> tuple[list[list[int]], list[int]]:
    """Remove stops until every route is on time and within capacity; return removed visits."""
    removed: list[int] = []
    for k, seq in enumerate(seqs):
        while True:
            real = [i for i in seq if i >= 0]
            load = int(p.demand[real].sum()) if real else 0
            if real and (load > p.cap[k] or len(real) > p.maxv[k]):
                drop = max(real, key=lambda i: (p.demand[i], i))
                seq.remove(drop)
                removed.append(drop)
                continue
            *_, ok, bad = schedule_route(p, k, seq)
            if ok:
                break
            # Remove the first visit at or before the violation (never a break).
            cand = [j for j in range(min(bad, len(seq) - 1), -1, -1) if seq[j] >= 0]
            if not cand:
                break
            j = cand[0]
            removed.append(seq.pop(j))
    return seqs, removed


def assemble(
    p: Problem,
    seqs: list[list[int]],
    reasons: dict[int, tuple[DropReason, str]],
    *,
    hit_time_limit: bool,
    engine: str,
    runtime_s: float,
    objective: Objective,
    current: DayPlan | None,
    travel: TravelMatrix | TravelModelLike,
    warnings: Sequence[str] = (),
) -> DayPlan:
    routes: list[Route] = []
    tot_travel = tot_dist = tot_late = 0
    for k, w in enumerate(p.workers):
        stops, finish, trav, dist, _, _ = schedule_route(p, k, seqs[k], allow_late=True)
        depart = int(p.shift_start[k]) + p.t0
        if stops:
            depart = stops[0].arrival - stops[0].travel_s
        routes.append(Route(w.id, tuple(stops), depart, finish, trav, dist))
        tot_travel += trav
        tot_dist += dist
        tot_late += sum(s.lateness_s for s in stops)
    served = {i for seq in seqs for i in seq if i >= 0} | {i for pre in p.prefix for i in pre}
    dropped = tuple(
        DroppedVisit(
            p.visits[i].id,
            *reasons.get(i, (DropReason.NO_CAPACITY, "the solver found no room for it")),
        )
        for i in range(p.V)
        if i not in served
    )
    changed = count_changes(p, seqs) if current is not None else 0
    obj = objective.travel_weight * tot_travel + objective.distance_weight * tot_dist
    obj += objective.worker_cost * sum(1 for r in routes if r.stops)
    obj += sum(drop_penalty(p.visits[p.visit_index[d.visit_id]], objective) for d in dropped)
    warn = list(warnings)
    if hit_time_limit:
        warn.append("search stopped at its time limit; the plan may not be optimal")
    return DayPlan(
        routes=tuple(routes),
        dropped=dropped,
        total_travel_s=tot_travel,
        total_distance=tot_dist,
        total_lateness_s=tot_late,
        changed_assignments=changed,
        hit_time_limit=hit_time_limit,
        objective=int(obj),
        engine=engine,
        runtime_s=runtime_s,
        visits=p.visits,
        workers=p.workers,
        warnings=tuple(warn),
        travel=travel,
        _space=p.space,
    )


def count_changes(p: Problem, seqs: list[list[int]]) -> int:
    now = np.full(p.V, -1, dtype=np.int64)
    for k, seq in enumerate(seqs):
        for i in seq:
            if i >= 0:
                now[i] = k
    for k, pre in enumerate(p.prefix):
        now[pre] = k
    had = p.current != -1
    return int(np.count_nonzero(had & (now != p.current)))


def drop_penalty(v: Visit, objective: Objective) -> int:
    return objective.drop_penalty if v.drop_penalty is None else v.drop_penalty


def plan_sequences(plan: DayPlan, p: Problem) -> list[list[int]]:
    """Free-part sequences (visit indices, breaks as -b-1) of every worker in ``plan``."""
    seqs: list[list[int]] = [[] for _ in range(p.W)]
    for r in plan.routes:
        k = p.worker_index[r.worker_id]
        free = [
            p.visit_index[s.visit_id]
            for s in r.stops
            if not p.visits[p.visit_index[s.visit_id]].fixed
        ]
        seqs[k] = with_breaks(p, k, free)
    return seqs


def with_breaks(p: Problem, k: int, free: list[int]) -> list[int]:
    """Place worker k's breaks into a free sequence where its schedule puts them."""
    brk = p.workers[k].breaks
    if not brk:
        return list(free)
    seq = list(free)
    for b_idx, b in enumerate(brk):
        best: list[int] | None = None
        for pos in range(len(seq) + 1):
            trial = [*seq[:pos], -b_idx - 1, *seq[pos:]]
            *_, ok, _ = schedule_route(p, k, trial)
            if ok:
                best = trial
                break
        if best is None:
            # Keep the break where the worker is free: after the stop ending before it.
            pos = sum(1 for i in seq if i >= 0 and p.late[i] + p.service[i] <= b.start - p.t0)
            best = [*seq[:pos], -b_idx - 1, *seq[pos:]]
        seq = best
    return seq
