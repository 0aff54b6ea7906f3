"""The planning problem as arrays (``Problem``), built once from visits, workers and travel.

Shared by ``plan_day``, insertion, slots, repair and the PyVRP engine: rows are worker
starts, worker ends, visits and one break row; ``build_problem`` checks the input and
precomputes the travel space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import (
    IntArray,
    Places,
    Space,
    TravelMatrix,
    TravelModelLike,
)
from dispatch.errors import InvalidInput, UnknownSkill, UnknownWorker
from dispatch.schedule.plan import DayPlan, Visit, VisitOutsideShifts, WorkerDay


@dataclass
class Problem:
    """Arrays of one planning problem; rows: worker starts, worker ends, visits, break row.

    Times are seconds after ``t0``; ``W`` workers and ``V`` visits index every array.
    Built by ``build_problem``; the engines (PyVRP search, insertion, slots, repair)
    read it and never change it.
    """

    visits: tuple[Visit, ...]
    workers: tuple[WorkerDay, ...]
    space: Space
    t0: int
    W: int
    V: int
    early: IntArray
    late: IntArray
    service: IntArray
    demand: IntArray
    vskills: NDArray[np.uint64]
    wskills: NDArray[np.uint64]
    wmode: IntArray
    shift_start: IntArray
    shift_end: IntArray
    cap: IntArray
    maxv: IntArray
    pinned: IntArray  # worker index a visit is pinned to, -1
    fixed: NDArray[np.bool_]
    ready_row: IntArray  # where each worker's free part starts
    ready_time: IntArray
    prefix: list[list[int]]  # fixed visit indices per worker
    current: IntArray  # current worker index per visit, -1
    worker_index: dict[int, int]
    visit_index: dict[int, int]

    @property
    def break_row(self) -> int:
        """Row of the break place: after worker starts, worker ends and visits."""
        return 2 * self.W + self.V


BIG = 1 << 40


def _places(visits: Sequence[Visit], workers: Sequence[WorkerDay], matrix: bool) -> Places:
    lat = [w.start_lat for w in workers] + [w.end_lat for w in workers] + [v.lat for v in visits]
    lng = [w.start_lng for w in workers] + [w.end_lng for w in workers] + [v.lng for v in visits]
    node = (
        [w.start_node for w in workers] + [w.end_node for w in workers] + [v.node for v in visits]
    )
    if matrix:
        for k, n in enumerate(node):
            if n is None:
                what = (
                    f"worker {workers[k % max(len(workers), 1)].id}"
                    if k < 2 * len(workers)
                    else f"visit {visits[k - 2 * len(workers)].id}"
                )
                raise InvalidInput(f"{what}: node is required when travel is a TravelMatrix")
    # The last row stands for "wherever the worker is" during a break (zero travel).
    lat.append(0.0)
    lng.append(0.0)
    node.append(-1)
    return Places(
        lat=np.asarray(lat, dtype=np.float64),
        lng=np.asarray(lng, dtype=np.float64),
        node=np.asarray([-1 if n is None else n for n in node], dtype=np.int64),
    )


def build_space(
    travel: TravelMatrix | TravelModelLike,
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
) -> Space:
    is_matrix = isinstance(travel, TravelMatrix)
    places = _places(visits, workers, is_matrix)
    if is_matrix:
        assert isinstance(travel, TravelMatrix)
        bad = places.node[:-1] >= travel.size
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InvalidInput(f"node {places.node[k]} is outside the {travel.size}-node matrix")
        # Break row: map to node 0 for indexing, then zero its travel.
        places = Places(places.lat, places.lng, np.where(places.node < 0, 0, places.node))
    lo = min([w.shift_start for w in workers], default=0)
    hi = max([w.shift_end for w in workers], default=lo)
    modes = tuple(sorted({w.mode_code for w in workers})) or (1,)
    space = Space(travel=travel, places=places, modes=modes, horizon=(lo, hi))
    space.build()
    for m in space.modes:
        for mat_name in ("duration", "distance"):
            mat = np.array(getattr(space, mat_name)[m])
            mat[-1, :] = 0
            mat[:, -1] = 0
            getattr(space, mat_name)[m] = mat
    return space


def _validate(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    known_skills: int | None,
    current: DayPlan | None,
    strict: bool = True,
) -> tuple[dict[int, int], dict[int, int]]:
    worker_index: dict[int, int] = {}
    for k, w in enumerate(workers):
        if w.id in worker_index:
            raise InvalidInput(f"workers[{k}]: worker id {w.id} appears twice")
        worker_index[w.id] = k
    visit_index: dict[int, int] = {}
    for i, v in enumerate(visits):
        if v.id in visit_index:
            raise InvalidInput(f"visits[{i}]: visit id {v.id} appears twice")
        visit_index[v.id] = i
        if known_skills is not None and v.skills & ~known_skills:
            raise UnknownSkill(
                f"visit {v.id}: skills bits {v.skills & ~known_skills:#x} are not in the catalog"
            )
    if workers and strict:
        # One pass over all (visit, shift) pairs: a visit must overlap some shift.
        starts = np.array([w.shift_start for w in workers], dtype=np.int64)
        ends = np.array([w.shift_end for w in workers], dtype=np.int64)
        ws = np.array([v.window_start for v in visits], dtype=np.int64)
        we = np.array([v.window_end for v in visits], dtype=np.int64)
        dur = np.array([v.duration_s for v in visits], dtype=np.int64)
        fits = (
            (ws[:, None] <= ends[None, :])
            & (np.maximum(ws[:, None], starts[None, :]) + dur[:, None] <= ends[None, :])
            & (we[:, None] >= starts[None, :])
        )
        fixed = np.array([v.fixed for v in visits], dtype=bool)
        bad = ~fits.any(axis=1) & ~fixed
        if bad.any():
            v = visits[int(np.flatnonzero(bad)[0])]
            raise VisitOutsideShifts(
                f"visit {v.id}: window [{v.window_start}, {v.window_end}] plus "
                f"{v.duration_s} s of service fits no worker's shift"
            )
    elif strict and visits and not all(v.fixed for v in visits):
        v = next(v for v in visits if not v.fixed)
        raise VisitOutsideShifts(f"visit {v.id}: there are no workers, so it fits no shift")
    for v in visits:
        if v.fixed and v.pinned_worker not in worker_index:
            raise UnknownWorker(
                f"visit {v.id}: {v.status} by worker {v.pinned_worker}, who is not in workers"
            )
    return worker_index, visit_index


def build_problem(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    travel: TravelMatrix | TravelModelLike,
    current: DayPlan | None,
    known_skills: int | None,
    space: Space | None = None,
    strict: bool = True,
) -> Problem:
    visits, workers = tuple(visits), tuple(workers)
    worker_index, visit_index = _validate(visits, workers, known_skills, current, strict)
    if space is None:
        space = build_space(travel, visits, workers)
    W, V = len(workers), len(visits)
    t0 = min([w.shift_start for w in workers] + [v.window_start for v in visits], default=0)
    early = np.array([v.window_start for v in visits], dtype=np.int64) - t0
    late = np.array([v.window_end for v in visits], dtype=np.int64) - t0
    service = np.array([v.duration_s for v in visits], dtype=np.int64)
    pinned = np.full(V, -1, dtype=np.int64)
    fixed = np.zeros(V, dtype=bool)
    for i, v in enumerate(visits):
        if v.pinned_worker is not None and v.pinned_worker in worker_index:
            pinned[i] = worker_index[v.pinned_worker]
        elif v.pinned_worker is not None:
            pinned[i] = -2  # pinned to someone absent
        if v.pinned_start is not None and not v.fixed:
            early[i] = late[i] = np.int64(v.pinned_start - t0)
        fixed[i] = v.fixed
    prefix: list[list[int]] = [[] for _ in range(W)]
    for fixed_i in np.flatnonzero(fixed).tolist():
        prefix[int(pinned[fixed_i])].append(fixed_i)
    ready_row = np.arange(W, dtype=np.int64)
    ready_time = np.array([w.shift_start for w in workers], dtype=np.int64) - t0
    for k in range(W):
        prefix[k].sort(key=lambda i: visits[i].pinned_start or 0)
        if prefix[k]:
            last = prefix[k][-1]
            v = visits[last]
            assert v.pinned_start is not None
            ready_row[k] = 2 * W + last
            ready_time[k] = max(int(ready_time[k]), v.pinned_start + v.duration_s - t0)
    cur = np.full(V, -1, dtype=np.int64)
    if current is not None:
        for vid, wid in current.assignment().items():
            if vid in visit_index and wid in worker_index:
                cur[visit_index[vid]] = worker_index[wid]
            elif vid in visit_index:
                cur[visit_index[vid]] = -2  # had a worker who is gone now
    cap = np.array([BIG if w.capacity is None else w.capacity for w in workers], dtype=np.int64)
    maxv = np.array(
        [BIG if w.max_visits is None else w.max_visits for w in workers], dtype=np.int64
    )
    for k in range(W):
        cap[k] -= sum(visits[i].demand for i in prefix[k])
        maxv[k] -= len(prefix[k])
    return Problem(
        visits=visits,
        workers=workers,
        space=space,
        t0=t0,
        W=W,
        V=V,
        early=early,
        late=late,
        service=service,
        demand=np.array([v.demand for v in visits], dtype=np.int64),
        vskills=np.array([v.skills for v in visits], dtype=np.uint64),
        wskills=np.array([w.skills for w in workers], dtype=np.uint64),
        wmode=np.array([w.mode_code for w in workers], dtype=np.int64),
        shift_start=np.array([w.shift_start for w in workers], dtype=np.int64) - t0,
        shift_end=np.array([w.shift_end for w in workers], dtype=np.int64) - t0,
        cap=cap,
        maxv=maxv,
        pinned=pinned,
        fixed=fixed,
        ready_row=ready_row,
        ready_time=ready_time,
        prefix=prefix,
        current=cur,
        worker_index=worker_index,
        visit_index=visit_index,
    )


def eligibility(p: Problem) -> NDArray[np.bool_]:
    """(V, W) may worker w serve visit v at all: skills, pin, and a direct trip fits."""
    if p.W == 0:
        return np.zeros((p.V, 0), dtype=bool)
    need = p.vskills[:, None]
    ok = (p.wskills[None, :] & need) == need
    pin = p.pinned[:, None]
    ok &= (pin == -1) | (pin == np.arange(p.W)[None, :])
    ok &= p.pinned[:, None] != -2
    return np.asarray(ok & direct_fit(p), dtype=bool)


def direct_fit(p: Problem) -> NDArray[np.bool_]:
    vrows = 2 * p.W + np.arange(p.V)
    fit = np.zeros((p.V, p.W), dtype=bool)
    for m in p.space.modes:
        dur = p.space.duration[m]
        cols = np.flatnonzero(p.wmode == m)
        if cols.size == 0:
            continue
        to_v = dur[p.ready_row[cols][None, :], vrows[:, None]]  # (V, w)
        back = dur[vrows[:, None], (p.W + cols)[None, :]]
        start = np.maximum(p.ready_time[cols][None, :] + to_v, p.early[:, None])
        fit[:, cols] = (start <= p.late[:, None]) & (
            start + p.service[:, None] + back <= p.shift_end[cols][None, :]
        )
    return fit


def extend_space(plan: DayPlan, visit: Visit) -> Space:
    """The plan's space with one more place (the new visit) before the break row."""
    old = plan._space
    assert old is not None
    n = old.places.lat.size
    node = -1 if visit.node is None else visit.node
    lat = np.insert(old.places.lat, n - 1, visit.lat)
    lng = np.insert(old.places.lng, n - 1, visit.lng)
    nodes = np.insert(old.places.node, n - 1, max(node, 0))
    space = Space(
        travel=old.travel, places=Places(lat, lng, nodes), modes=old.modes, horizon=old.horizon
    )
    rows = np.arange(n - 1, dtype=np.int64)
    for m in old.modes:
        t_in, t_out = old.to_and_from(visit.lat, visit.lng, node, m, rows)
        d_in, d_out = old.distance_to_and_from(visit.lat, visit.lng, node, rows)
        for name, a, b in (("duration", t_in, t_out), ("distance", d_in, d_out)):
            mat = getattr(old, name)[m]
            new = np.zeros((n + 1, n + 1), dtype=np.int64)
            new[: n - 1, : n - 1] = mat[: n - 1, : n - 1]
            new[: n - 1, n - 1] = a
            new[n - 1, : n - 1] = b
            getattr(space, name)[m] = new
    return space
