"""Insertion into a day plan: every gap of every route evaluated at once, cheapest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import (
    FlatRoutes,
    InsertionCandidates,
    IntArray,
    cheapest_insertions,
    latest_starts,
)
from dispatch.errors import DispatchError, InvalidInput, UnknownWorker
from dispatch.schedule.plan import DayPlan, Objective, Visit
from dispatch.schedule.problem import Problem, build_problem, extend_space
from dispatch.schedule.routes import assemble, plan_sequences, schedule_route, time_free_part


@dataclass(frozen=True)
class Insertion:
    """Cheapest feasible insertion of a visit into one worker's route (epoch seconds)."""

    worker_id: int
    position: int  # index among the worker's stops before which the visit goes
    start: int
    added_travel_s: int
    added_cost: int


@dataclass(frozen=True)
class InsertionOptions:
    """The best insertion per worker that can take the visit, cheapest first."""

    options: tuple[Insertion, ...]

    @property
    def best(self) -> Insertion | None:
        """The cheapest option, or None when no worker can take the visit."""
        return self.options[0] if self.options else None

    def __len__(self) -> int:
        return len(self.options)


_FLAT_COLUMNS = (
    "route",
    "position",
    "prev_row",
    "next_row",
    "prev_end",
    "next_early",
    "next_start",
    "next_latest",
    "mode",
    "load_left",
    "visits_left",
    "skills",
    "free_from",
    "old_travel",
)


def _cheapest_by_travel(
    flat: FlatRoutes, to_new: IntArray, from_new: IntArray, *visit: int
) -> InsertionCandidates:
    """``cheapest_insertions`` where a gap's cost is its added travel seconds.

    ``visit``: its early and late start, service seconds, demand and skill bits.
    """
    travel = (to_new, from_new)
    return cheapest_insertions(flat, *travel, *travel, flat.old_cost, *visit)


def _route_gaps(p: Problem, k: int, seq: list[int]) -> dict[str, NDArray[Any]]:
    """Gap rows of worker k's free route part: one before each stop and one before home."""
    w = p.workers[k]
    m = w.mode_code
    dur = p.space.duration[m]
    real = [i for i in seq if i >= 0]
    timed = time_free_part(p, k, seq, int(p.ready_row[k]), allow_late=True)
    nodes, early, late, service = timed.nodes, timed.early, timed.late, timed.service
    rt = timed.times
    # A stop already late (after an overrun) may not get any later than it is now.
    lat = latest_starts(
        dur,
        nodes,
        p.W + k,
        max(int(p.shift_end[k]), rt.finish),
        np.maximum(late, rt.start),
        service,
        start_node=int(p.ready_row[k]),
        pass_through=p.break_row,
    )
    # Nothing goes right before a break: the ride after the break would change with it.
    lat = np.where(nodes == p.break_row, np.iinfo(np.int64).min // 4, lat)
    n = len(seq)
    prev_rows = np.concatenate([[p.ready_row[k]], nodes]).astype(np.int64)
    prev_end = np.concatenate([[p.ready_time[k]], rt.end]).astype(np.int64)
    # Inserting right after a break means leaving from the place before the break.
    for j in range(1, n + 1):
        if seq[j - 1] < 0:
            prev_rows[j] = prev_rows[j - 1]
    next_rows = np.concatenate([nodes, [p.W + k]]).astype(np.int64)
    used = int(p.demand[real].sum()) if real else 0
    return {
        "route": np.full(n + 1, k, dtype=np.int64),
        "position": np.arange(n + 1, dtype=np.int64),
        "prev_row": prev_rows,
        "next_row": next_rows,
        "prev_end": prev_end,
        "next_early": np.concatenate([early, [0]]).astype(np.int64),
        "next_start": np.concatenate([rt.start, [rt.finish]]).astype(np.int64),
        "next_latest": np.concatenate([lat, [p.shift_end[k]]]).astype(np.int64),
        "mode": np.full(n + 1, m, dtype=np.int64),
        "load_left": np.full(n + 1, p.cap[k] - used, dtype=np.int64),
        "visits_left": np.full(n + 1, p.maxv[k] - len(real), dtype=np.int64),
        "skills": np.full(n + 1, p.wskills[k], dtype=np.uint64),
        "free_from": np.zeros(n + 1, dtype=np.int64),
        "old_travel": dur[prev_rows, next_rows].astype(np.int64),
    }


def _concat_gaps(pieces: Sequence[dict[str, NDArray[Any]]]) -> FlatRoutes:
    cat = {
        c: (
            np.concatenate([pc[c] for pc in pieces])
            if pieces
            else np.zeros(0, dtype=np.uint64 if c == "skills" else np.int64)
        )
        for c in _FLAT_COLUMNS
    }
    return FlatRoutes(**cat, old_cost=cat["old_travel"])  # type: ignore[arg-type]


def flat_routes(p: Problem, seqs: list[list[int]]) -> FlatRoutes:
    """Gap rows of every route (free part only), for vectorised insertion."""
    return _concat_gaps([_route_gaps(p, k, seq) for k, seq in enumerate(seqs)])


def plan_gaps(plan: DayPlan) -> tuple[Problem, list[list[int]], FlatRoutes]:
    """The plan as a problem, its routes' free parts and every gap a new visit could take."""
    if plan.travel is None or plan._space is None:
        raise DispatchError("this plan has no travel model attached; re-plan it with plan_day")
    p = build_problem(
        plan.visits, plan.workers, plan.travel, None, None, space=plan._space, strict=False
    )
    seqs = plan_sequences(plan, p)
    return p, seqs, flat_routes(p, seqs)


def gap_rides(p: Problem, flat: FlatRoutes, visit: Visit) -> tuple[IntArray, IntArray]:
    """(G,) seconds from each gap's previous stop to ``visit`` and from it to the gap's next
    stop, by the gap's worker's mode; a break row rides 0, like everywhere else."""
    to_new = np.zeros(flat.route.size, dtype=np.int64)
    from_new = np.zeros(flat.route.size, dtype=np.int64)
    node = -1 if visit.node is None else visit.node
    for m in p.space.modes:
        sel = np.flatnonzero(flat.mode == m)
        if sel.size == 0:
            continue
        rows = np.unique(np.concatenate([flat.prev_row[sel], flat.next_row[sel]]))
        t_in, t_out = p.space.to_and_from(visit.lat, visit.lng, node, m, rows)
        pos = np.searchsorted(rows, flat.prev_row[sel])
        to_new[sel] = t_in[pos]
        pos = np.searchsorted(rows, flat.next_row[sel])
        from_new[sel] = t_out[pos]
        to_new[sel] = np.where(flat.prev_row[sel] == p.break_row, 0, to_new[sel])
        from_new[sel] = np.where(flat.next_row[sel] == p.break_row, 0, from_new[sel])
    return to_new, from_new


def _insert_one(
    p: Problem, flat: FlatRoutes, i: int, allowed: NDArray[np.bool_]
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Feasible insertions of existing visit i: (route, position, start, added travel)."""
    row = 2 * p.W + i
    to_new = np.zeros(flat.route.size, dtype=np.int64)
    from_new = np.zeros(flat.route.size, dtype=np.int64)
    for m in p.space.modes:
        sel = flat.mode == m
        if sel.any():
            dur = p.space.duration[m]
            to_new[sel] = dur[flat.prev_row[sel], row]
            from_new[sel] = dur[row, flat.next_row[sel]]
    cand = _cheapest_by_travel(
        flat,
        to_new,
        from_new,
        int(p.early[i]),
        int(p.late[i]),
        int(p.service[i]),
        int(p.demand[i]),
        int(p.vskills[i]),
    )
    keep = allowed[cand.route]
    return cand.route[keep], cand.position[keep], cand.start[keep], cand.added_cost[keep]


def greedy_insert(
    p: Problem, seqs: list[list[int]], todo: Sequence[int], elig: NDArray[np.bool_]
) -> tuple[list[list[int]], list[int]]:
    """Insert visits one by one at their cheapest feasible place (hardest-window first)."""
    left: list[int] = []
    order = sorted(todo, key=lambda i: (int(p.late[i] - p.early[i]), i))
    pieces = [_route_gaps(p, k, seq) for k, seq in enumerate(seqs)]
    flat = _concat_gaps(pieces)
    for i in order:
        r, pos, _, cost = _insert_one(p, flat, i, elig[i])
        if r.size == 0:
            left.append(i)
            continue
        j = int(np.argmin(cost))
        k = int(r[j])
        seqs[k].insert(int(pos[j]), i)
        pieces[k] = _route_gaps(p, k, seqs[k])
        flat = _concat_gaps(pieces)
    return seqs, left


def external_insertions(
    plan: DayPlan,
    visit: Visit,
    worker_filter: NDArray[np.bool_] | None = None,
    max_leg_s: int | None = None,
) -> tuple[Problem, list[list[int]], InsertionOptions]:
    """Best insertion per worker of a visit that is not in ``plan`` yet."""
    p, seqs, flat = plan_gaps(plan)
    to_new, from_new = gap_rides(p, flat, visit)
    ws = (visit.pinned_start if visit.pinned_start is not None else visit.window_start) - p.t0
    we = (visit.pinned_start if visit.pinned_start is not None else visit.window_end) - p.t0
    cand = _cheapest_by_travel(
        flat,
        to_new,
        from_new,
        ws,
        we,
        visit.duration_s,
        visit.demand,
        visit.skills,
    )
    keep = np.ones(cand.route.size, dtype=bool)
    if max_leg_s is not None:
        rows = _candidate_rows(flat, cand)
        keep &= (to_new[rows] <= max_leg_s) & (from_new[rows] <= max_leg_s)
    if worker_filter is not None:
        keep &= worker_filter[cand.route]
    if visit.pinned_worker is not None:
        keep &= cand.route == p.worker_index.get(visit.pinned_worker, -1)
    r, pos, st, cost, trav = (
        cand.route[keep],
        cand.position[keep],
        cand.start[keep],
        cand.added_cost[keep],
        cand.added_travel[keep],
    )
    options: list[Insertion] = []
    if r.size:
        order = np.lexsort((pos, cost, r))
        r, pos, st, cost, trav = r[order], pos[order], st[order], cost[order], trav[order]
        first = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        for j in first[np.argsort(cost[first], kind="stable")]:
            k = int(r[j])
            # Position among *visible* stops: count real stops before the gap (prefix + free).
            visible = len(p.prefix[k]) + sum(1 for i in seqs[k][: int(pos[j])] if i >= 0)
            options.append(
                Insertion(p.workers[k].id, visible, int(st[j]) + p.t0, int(trav[j]), int(cost[j]))
            )
    return p, seqs, InsertionOptions(tuple(options))


def _candidate_rows(flat: FlatRoutes, cand: Any) -> IntArray:
    """Gap rows of the flat table that the candidates came from."""
    starts = np.flatnonzero(flat.position == 0)
    return np.asarray(starts[cand.route] + cand.position, dtype=np.int64)


def insertion_options(plan: DayPlan, visit: Visit) -> InsertionOptions:
    """Cheapest feasible insertion of a new visit per worker, cheapest first (seconds, cost).

    Every gap of every route is evaluated at once (numpy); an option keeps
    every visit already in the plan on time and within its worker's shift,
    skills, capacity and visit limit.
    """
    if visit.id in {v.id for v in plan.visits}:
        raise InvalidInput(f"visit {visit.id} is already in the plan")
    _, _, options = external_insertions(plan, visit)
    return options


def plan_with_insertion(plan: DayPlan, visit: Visit, option: Insertion) -> DayPlan:
    """A new plan with ``visit`` inserted as ``option`` says; nothing else moves."""
    if plan.travel is None or plan._space is None:
        raise DispatchError("this plan has no travel model attached; re-plan it with plan_day")
    if visit.id in {v.id for v in plan.visits}:
        raise InvalidInput(f"visit {visit.id} is already in the plan")
    p_old = build_problem(
        plan.visits, plan.workers, plan.travel, None, None, space=plan._space, strict=False
    )
    seqs = plan_sequences(plan, p_old)
    k = p_old.worker_index.get(option.worker_id)
    if k is None:
        raise UnknownWorker(f"worker {option.worker_id} is not in this plan")
    space = extend_space(plan, visit)
    visits = (*plan.visits, visit)
    # The new visit's row is appended after the old visits; the break row moves by one.
    p = build_problem(visits, plan.workers, plan.travel, None, None, space=space, strict=False)
    new_i = len(visits) - 1
    free_visible = option.position - len(p.prefix[k])
    seq = seqs[k]
    pos, seen = 0, 0
    while pos < len(seq) and (seen < free_visible or seq[pos] < 0):
        if seq[pos] >= 0:
            seen += 1
        pos += 1
    seq.insert(pos, new_i)
    # Breaks keep their indices (negative), visits keep theirs.
    *_, ok, _ = schedule_route(p, k, seq)
    if not ok:
        raise InvalidInput(f"visit {visit.id} does not fit worker {option.worker_id} there")
    reasons = {p.visit_index[d.visit_id]: (d.reason, d.detail) for d in plan.dropped}
    out = assemble(
        p,
        seqs,
        reasons,
        hit_time_limit=False,
        engine="insertion",
        runtime_s=0.0,
        objective=Objective(),
        current=None,
        travel=space.travel,
    )
    return replace(out, changed_assignments=0)
