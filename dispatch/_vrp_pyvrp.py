"""PyVRP engine of plan_day: encode a ``Problem`` as ProblemData, solve, decode routes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from dispatch.schedule.plan import DayPlan, Objective, Stop
    from dispatch.schedule.problem import Problem

#: PyVRP restarts from its best (next seed) after this share of the time without a new best.
STAGNATION_SHARE = 0.3
#: Shortest patience, and no restart with less than this many seconds left.
MIN_PATIENCE_S = 0.2
#: Capacity that no route can exceed (sum of deliveries is at most the client count).
_UNLIMITED = 1 << 30


@dataclass(frozen=True)
class SearchResult:
    """What one PyVRP search found for a ``Problem``."""

    #: Free-part sequence per worker index: visit indices, breaks as -b-1.
    sequences: tuple[tuple[int, ...], ...]
    #: The search stopped on the clock rather than after ``stop.max_iterations``.
    hit_time_limit: bool
    #: Seconds spent in PyVRP's search (encoding excluded).
    search_s: float


def _pin_codes(n: int) -> tuple[int, list[tuple[int, ...]]]:
    """``n`` distinct k-subsets of m dimensions, none containing another (an antichain)."""
    if n == 0:
        return 0, []
    m = 1
    while math.comb(m, max(1, m // 2)) < n:
        m += 1
    k = max(1, m // 2)
    return m, list(combinations(range(m), k))[:n]


def solve_pyvrp(
    p: Problem,
    elig: NDArray[np.bool_],
    objective: Objective,
    stop: Stop,
    seed: int,
    change_penalty: int,
    current: DayPlan | None,
) -> SearchResult:
    """Solve ``p`` with PyVRP: free-part sequences per worker and how the search ended."""
    import pyvrp

    seqs: list[list[int]] = [[] for _ in range(p.W)]
    cand = np.flatnonzero(elig.any(axis=1) & ~p.fixed)
    has_breaks = any(w.breaks for w in p.workers)
    if p.W == 0 or (cand.size == 0 and not has_breaks):
        return SearchResult(tuple(map(tuple, seqs)), hit_time_limit=False, search_s=0.0)

    stay = _stay_targets(p, elig, cand, change_penalty)
    loads = _Loads.of(p, cand, stay)
    places = _Places(pyvrp, p)
    for k in range(p.W):
        places.depot(int(p.ready_row[k]))
        places.depot(p.W + k)
    clients, client_visit, groups = _visit_clients(
        pyvrp, p, cand, stay, loads, places, objective, change_penalty
    )
    _add_break_clients(pyvrp, p, loads, places, clients, client_visit)
    vehicle_types, type_workers = _vehicle_types(pyvrp, p, loads, places, objective)
    locations, matrices = _matrices(pyvrp, p, places, objective)
    data = pyvrp.ProblemData(locations, clients, places.depots, vehicle_types, *matrices, groups)

    init = _warm_start(pyvrp, data, p, current, client_visit, stay, type_workers)
    t_start = time.perf_counter()
    result = _solve_until(data, t_start + stop.seconds, stop.max_iterations, seed, init)
    runtime = time.perf_counter() - t_start
    hit = stop.max_iterations is None or result.num_iterations < stop.max_iterations

    best = result.best
    free_slots = [list(ws) for ws in type_workers]
    for route in best.routes():
        vt = route.vehicle_type()
        k = free_slots[vt].pop(0)
        seqs[k] = [client_visit[c] for c in _client_indices(route)]
    return SearchResult(tuple(map(tuple, seqs)), hit_time_limit=hit, search_s=runtime)


def _stay_targets(
    p: Problem, elig: NDArray[np.bool_], cand: NDArray[np.intp], change_penalty: int
) -> dict[int, int]:
    """Which visits get a "stay" copy: those with a current worker that may still serve them."""
    return {
        int(i): int(p.current[i])
        for i in cand
        if change_penalty > 0 and p.current[i] >= 0 and p.pinned[i] == -1 and elig[i, p.current[i]]
    }


@dataclass(frozen=True)
class _Loads:
    """The load dimensions that carry PyVRP's side constraints.

    In order: total demand (if any visit has one or a capacity binds), visit count (if a
    worker has a cap), one per skill some visit needs and not every worker has, then the
    pin code dimensions that tie a visit (or a break) to one worker.
    """

    p: Problem
    use_demand: bool
    use_count: bool
    skill_bits: list[int]
    code_of: dict[int, tuple[int, ...]]
    n_dims: int

    @classmethod
    def of(cls, p: Problem, cand: NDArray[np.intp], stay: dict[int, int]) -> _Loads:
        # Workers needing a pin code: pinned targets, "stay" targets, workers with breaks.
        coded = sorted(
            {int(p.pinned[i]) for i in cand if p.pinned[i] >= 0}
            | set(stay.values())
            | {k for k, w in enumerate(p.workers) if w.breaks}
        )
        m_pin, codes = _pin_codes(len(coded))
        use_demand = bool(p.demand[cand].any()) or bool((p.cap < _UNLIMITED).any())
        use_count = bool((p.maxv < _UNLIMITED).any())
        all_skills = int(np.bitwise_and.reduce(p.wskills)) if p.W else 0
        need_bits = int(np.bitwise_or.reduce(p.vskills[cand])) if cand.size else 0
        skill_bits = [b for b in range(64) if (need_bits >> b) & 1 and not (all_skills >> b) & 1]
        return cls(
            p=p,
            use_demand=use_demand,
            use_count=use_count,
            skill_bits=skill_bits,
            code_of={k: codes[j] for j, k in enumerate(coded)},
            n_dims=int(use_demand) + int(use_count) + len(skill_bits) + m_pin,
        )

    @property
    def off_skill(self) -> int:
        return int(self.use_demand) + int(self.use_count)

    @property
    def off_pin(self) -> int:
        return self.off_skill + len(self.skill_bits)

    def pin(self, k: int) -> list[int]:
        """A break's delivery: only worker ``k``'s pin code."""
        vec = [0] * self.n_dims
        for dim in self.code_of[k]:
            vec[self.off_pin + dim] = 1
        return vec

    def delivery(self, i: int, pin_to: int) -> list[int]:
        """Visit ``i``'s delivery, pinned to worker ``pin_to`` (-1: to nobody)."""
        p = self.p
        vec = [0] * self.n_dims
        d = 0
        if self.use_demand:
            vec[d] = int(p.demand[i])
            d += 1
        if self.use_count:
            vec[d] = 1
        for j, b in enumerate(self.skill_bits):
            if (int(p.vskills[i]) >> b) & 1:
                vec[self.off_skill + j] = 1
        if pin_to >= 0:
            for dim in self.code_of[pin_to]:
                vec[self.off_pin + dim] = 1
        return vec

    def capacity(self, k: int) -> list[int]:
        """Worker ``k``'s capacity in every dimension."""
        p = self.p
        vec = [0] * self.n_dims
        d = 0
        if self.use_demand:
            vec[d] = int(min(p.cap[k], _UNLIMITED))
            d += 1
        if self.use_count:
            vec[d] = int(min(p.maxv[k], _UNLIMITED))
        for j, b in enumerate(self.skill_bits):
            vec[self.off_skill + j] = _UNLIMITED if (int(p.wskills[k]) >> b) & 1 else 0
        if k in self.code_of:
            for dim in self.code_of[k]:
                vec[self.off_pin + dim] = _UNLIMITED
        return vec


class _Places:
    """The places PyVRP sees: only those in use (depots first, then clients), so a
    Solomon day is exactly as big for it as the plain instance."""

    def __init__(self, pyvrp: Any, p: Problem) -> None:
        self._pyvrp = pyvrp
        self._places = p.space.places
        self.used_rows: list[int] = []
        self._loc_of_row: dict[int, int] = {}
        self.depots: list[Any] = []
        self._depot_of_place: dict[tuple[float, float, int], int] = {}

    def loc(self, row: int) -> int:
        """PyVRP location of place row ``row`` (numbered on first use)."""
        if row not in self._loc_of_row:
            self._loc_of_row[row] = len(self.used_rows)
            self.used_rows.append(row)
        return self._loc_of_row[row]

    def key(self, row: int) -> tuple[float, float, int]:
        """What makes two place rows the same place."""
        places = self._places
        return (float(places.lat[row]), float(places.lng[row]), int(places.node[row]))

    def depot(self, row: int) -> int:
        """One depot per distinct place: a shared home base is one depot, as in Solomon."""
        key = self.key(row)
        if key not in self._depot_of_place:
            self._depot_of_place[key] = len(self.depots)
            self.depots.append(self._pyvrp.Depot(location=self.loc(row)))
        return self._depot_of_place[key]


def _visit_clients(
    pyvrp: Any,
    p: Problem,
    cand: NDArray[np.intp],
    stay: dict[int, int],
    loads: _Loads,
    places: _Places,
    objective: Objective,
    change_penalty: int,
) -> tuple[list[Any], list[int], list[Any]]:
    """Clients for the candidate visits (two in a group for a "stay" visit), the visit
    index of each client, and the client groups."""
    horizon = int(max(p.shift_end.max(), p.late.max() if p.V else 0)) + 1
    clients: list[Any] = []
    client_visit: list[int] = []
    groups: list[Any] = []
    for i in cand.tolist():
        own = p.visits[i].drop_penalty
        pen = objective.drop_penalty if own is None else int(own)
        where = {
            "location": places.loc(2 * p.W + i),
            "service_duration": int(p.service[i]),
            "tw_early": int(max(p.early[i], 0)),
            "tw_late": int(min(p.late[i], horizon)),
        }
        if i in stay:
            g = len(groups)
            a, b = len(clients), len(clients) + 1
            if objective.allow_drop:
                # Serving elsewhere costs the change penalty; dropping costs it too, on top
                # of the drop penalty, so the search never trades a kept visit for a new one.
                prize_a, prize_b = pen + change_penalty, pen
            else:
                prize_a, prize_b = change_penalty, 0
            for pin_to, prize in ((stay[i], prize_a), (-1, prize_b)):
                clients.append(
                    pyvrp.Client(
                        delivery=loads.delivery(i, pin_to),
                        prize=prize,
                        required=False,
                        group=g,
                        **where,
                    )
                )
            client_visit += [i, i]
            groups.append(pyvrp.ClientGroup([a, b], required=not objective.allow_drop))
        else:
            clients.append(
                pyvrp.Client(
                    delivery=loads.delivery(i, int(p.pinned[i])),
                    prize=pen if objective.allow_drop else 0,
                    required=not objective.allow_drop,
                    **where,
                )
            )
            client_visit.append(i)
    return clients, client_visit, groups


def _add_break_clients(
    pyvrp: Any,
    p: Problem,
    loads: _Loads,
    places: _Places,
    clients: list[Any],
    client_visit: list[int],
) -> None:
    """A required client per break still ahead of its worker and inside the shift,
    pinned to that worker; its visit index is -b-1."""
    for k, w in enumerate(p.workers):
        for b_idx, brk in enumerate(w.breaks):
            s = brk.start - p.t0
            if s < p.ready_time[k] or brk.end - p.t0 > p.shift_end[k]:
                continue  # already behind the worker, or outside the shift
            clients.append(
                pyvrp.Client(
                    location=places.loc(p.break_row),
                    delivery=loads.pin(k),
                    service_duration=int(brk.end - brk.start),
                    tw_early=int(s),
                    tw_late=int(s),
                    required=True,
                )
            )
            client_visit.append(-b_idx - 1)


def _vehicle_types(
    pyvrp: Any, p: Problem, loads: _Loads, places: _Places, objective: Objective
) -> tuple[list[Any], list[list[int]]]:
    """Vehicle types and the workers of each: identical workers share one type (PyVRP
    searches faster that way)."""
    groups_of_type: dict[tuple[Any, ...], list[int]] = {}
    for k in range(p.W):
        key = (
            places.key(int(p.ready_row[k])),
            places.key(p.W + k),
            int(p.ready_time[k]),
            int(p.shift_end[k]),
            tuple(loads.capacity(k)),
            int(p.wmode[k]),
        )
        groups_of_type.setdefault(key, []).append(k)
    modes = list(p.space.modes)
    vehicle_types = []
    type_workers: list[list[int]] = []
    for members in groups_of_type.values():
        k = members[0]
        vehicle_types.append(
            pyvrp.VehicleType(
                num_available=len(members),
                capacity=loads.capacity(k),
                start_depot=places.depot(int(p.ready_row[k])),
                end_depot=places.depot(p.W + k),
                fixed_cost=int(objective.worker_cost),
                tw_early=int(max(p.ready_time[k], 0)),
                tw_late=int(max(p.shift_end[k], p.ready_time[k])),
                profile=modes.index(int(p.wmode[k])),
            )
        )
        type_workers.append(members)
    return vehicle_types, type_workers


def _matrices(
    pyvrp: Any, p: Problem, places: _Places, objective: Objective
) -> tuple[list[Any], tuple[Any, Any]]:
    """Locations of the places in use and, per travel mode, the cost and duration matrices."""
    rows = np.asarray(places.used_rows, dtype=np.int64)
    sub = np.ix_(rows, rows)
    lat, lng = p.space.places.lat, p.space.places.lng
    locations = [pyvrp.Location(x=float(lng[r]), y=float(lat[r])) for r in rows]
    dist_mats, dur_mats = [], []
    for m in p.space.modes:
        dur = np.asarray(p.space.duration[m][sub], dtype=np.int64)
        cost = objective.travel_weight * dur
        if objective.distance_weight:
            cost = cost + objective.distance_weight * np.asarray(p.space.distance[m][sub], np.int64)
        dist_mats.append(np.ascontiguousarray(cost))
        dur_mats.append(np.ascontiguousarray(dur))
    # PyVRP's stubs type matrices as ndarray[int]; plain int64 arrays are what it wants.
    matrices: tuple[Any, Any] = (dist_mats, dur_mats)
    return locations, matrices


def _solve_until(
    data: Any, deadline: float, max_iterations: int | None, seed: int, init: Any
) -> Any:
    """PyVRP's iterated local search with every step inside the deadline (perf_counter s).

    ``pyvrp.solve`` starts its clock only after computing neighbourhoods and
    running an exhaustive local search on a random start; on 2,000 visits
    that is seconds outside ``MaxRuntime``. Here the whole run fits the
    deadline. PyVRP's own search (same seed, same trajectory as plain PyVRP)
    runs as long as it keeps finding better solutions; after
    ``STAGNATION_SHARE`` of the time without one it restarts from its best
    with the next seed, which escapes the local optimum its late-acceptance
    history has settled in. With ``max_iterations`` (tests) it is one run.
    """
    from pyvrp import PenaltyManager, RandomNumberGenerator, Solution
    from pyvrp.IteratedLocalSearch import IteratedLocalSearch
    from pyvrp.search import LocalSearch, PerturbationManager, compute_neighbours
    from pyvrp.solve import SolveParams
    from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria

    params = SolveParams()
    neighbours = compute_neighbours(data, params.neighbourhood)

    def search_parts(phase_seed: int) -> tuple[Any, Any, Any]:
        rng = RandomNumberGenerator(seed=phase_seed)
        ls = LocalSearch(data, rng, neighbours, PerturbationManager(params.perturbation))
        for op in params.operators:
            if op.supports(data):
                ls.add_operator(op(data))
        pm = PenaltyManager(params.penalty.midpoint_penalties(data), params.penalty)
        return rng, ls, pm

    rng, ls, pm = search_parts(seed)
    if init is None:
        init = ls(Solution.make_random(data, rng), pm.max_cost_evaluator(), exhaustive=True)
    left = max(deadline - time.perf_counter(), 0.01)
    if max_iterations is not None:
        capped = MultipleCriteria([MaxRuntime(left), MaxIterations(max_iterations)])
        return IteratedLocalSearch(data, pm, ls, init, params.ils).run(
            capped, collect_stats=False, display=False
        )
    # Run PyVRP undisturbed while it keeps improving; only when it has found
    # nothing new for a while, restart from its best with the next seed.
    patience = max(left * STAGNATION_SHARE, MIN_PATIENCE_S)
    best = init
    phase_seed = seed
    result = None
    while True:
        stop = _Stagnation(deadline, patience)
        run = IteratedLocalSearch(data, pm, ls, best, params.ils).run(
            stop, collect_stats=False, display=False
        )
        if result is None or _better(run.best, result.best, pm):
            result = run
        best = result.best
        if stop.timed_out or deadline - time.perf_counter() < MIN_PATIENCE_S:
            return result
        phase_seed += 1
        _, ls, pm = search_parts(phase_seed)


def _better(a: Any, b: Any, pm: Any) -> bool:
    """Feasible beats infeasible, then the lower (penalised) cost."""
    judge = pm.cost_evaluator()
    return bool(
        (a.is_feasible(), -judge.penalised_cost(a)) > (b.is_feasible(), -judge.penalised_cost(b))
    )


class _Stagnation:
    """Stop at the deadline, or once the best cost has not improved for ``patience_s``."""

    def __init__(self, deadline: float, patience_s: float) -> None:
        self._deadline = deadline
        self._patience = patience_s
        self._best: float | None = None
        self._since = time.perf_counter()
        self.timed_out = False

    def __call__(self, best_cost: float) -> bool:
        now = time.perf_counter()
        if now >= self._deadline:
            self.timed_out = True
            return True
        if self._best is None or best_cost < self._best:
            self._best = best_cost
            self._since = now
        return now - self._since >= self._patience


def _client_indices(route: Any) -> list[int]:
    """Client indices (0-based among clients) of a route, in order."""
    return [int(a.idx) for a in route if a.is_client()]


def _warm_start(
    pyvrp: Any,
    data: Any,
    p: Problem,
    current: DayPlan | None,
    client_visit: list[int],
    stay: dict[int, int],
    type_workers: list[list[int]],
) -> Any:
    """The current plan as a PyVRP solution, so the search starts from what is in force."""
    if current is None:
        return None
    first_client: dict[int, int] = {}
    for c, i in enumerate(client_visit):
        if i >= 0 and i not in first_client:
            first_client[i] = c  # the "stay" copy comes first
    type_of = {k: t for t, ws in enumerate(type_workers) for k in ws}
    routes = []
    assign = current.assignment()
    per_worker: dict[int, list[int]] = {}
    for r in current.routes:
        k = p.worker_index.get(r.worker_id)
        if k is None:
            continue
        cl = [
            first_client[p.visit_index[vid]]
            for vid in r.visit_ids
            if vid in p.visit_index and p.visit_index[vid] in first_client
        ]
        if cl:
            per_worker[k] = cl
    del assign
    for k, cl in per_worker.items():
        routes.append(pyvrp.Route(data, cl, type_of[k]))
    try:
        return pyvrp.Solution(data, routes)
    except (ValueError, RuntimeError, IndexError):
        return None
