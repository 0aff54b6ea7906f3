"""``plan_day``: search with PyVRP, make every route feasible, place what is left, report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from dispatch._vrp_core import (
    TravelMatrix,
    TravelModelLike,
)
from dispatch.errors import InvalidInput
from dispatch.schedule.insertion import greedy_insert
from dispatch.schedule.plan import (
    DEFAULT_CHANGE_PENALTY,
    DayPlan,
    DropReason,
    Objective,
    Stop,
    Visit,
    WorkerDay,
)
from dispatch.schedule.problem import Problem, build_problem, eligibility
from dispatch.schedule.routes import assemble, route_sequences_feasible

#: Time kept for decoding and repairing the search's routes: per visit, at most this share.
_DECODE_S_PER_VISIT = 0.0005
_DECODE_RESERVE = 0.1


def plan_day(
    visits: Sequence[Visit],
    workers: Sequence[WorkerDay],
    *,
    travel: TravelMatrix | TravelModelLike,
    stop: float | Stop = 5.0,
    seed: int = 0,
    current: DayPlan | None = None,
    change_penalty: int = DEFAULT_CHANGE_PENALTY,
    objective: Objective | None = None,
    known_skills: int | None = None,
) -> DayPlan:
    """Plan every worker's route for a day (times epoch seconds, durations seconds).

    ``current`` is the plan in force: each visit moved away from its worker
    there costs ``change_penalty`` (cost units = travel seconds by default).
    Confirmed visits stay with their pinned worker; started/done visits are a
    fixed prefix. ``known_skills`` (the catalog's full mask) turns unknown
    skill bits into ``UnknownSkill``. Raises ``InvalidInput`` subclasses naming
    the visit for malformed input; infeasible visits are dropped with a reason.
    """
    t_begin = time.perf_counter()
    stop = stop if isinstance(stop, Stop) else Stop(seconds=float(stop))
    objective = objective or Objective()
    if change_penalty < 0:
        raise InvalidInput(f"change_penalty must be >= 0, got {change_penalty}")
    p = build_problem(visits, workers, travel, current, known_skills)
    return solve_problem(p, travel, stop, seed, current, change_penalty, objective, t_begin)


def solve_problem(
    p: Problem,
    travel: TravelMatrix | TravelModelLike,
    stop: Stop,
    seed: int,
    current: DayPlan | None,
    change_penalty: int,
    objective: Objective,
    t_begin: float,
) -> DayPlan:
    """Search, make every route feasible, place what the search left out, and report."""
    from dispatch._vrp_pyvrp import solve_pyvrp

    elig = eligibility(p)
    reasons = _pre_drop_reasons(p, elig)
    # The limit is wall-clock for the whole call: the matrices and decoding count too.
    spent = time.perf_counter() - t_begin
    reserve = min(_DECODE_RESERVE * stop.seconds, 0.01 + _DECODE_S_PER_VISIT * p.V)
    budget = max(stop.seconds - spent - reserve, 0.05)
    found = solve_pyvrp(
        p,
        elig,
        objective,
        replace(stop, seconds=budget),
        seed,
        change_penalty if current is not None else 0,
        current,
    )
    seqs, removed = route_sequences_feasible(p, [list(seq) for seq in found.sequences])
    if removed:
        seqs, still = greedy_insert(p, seqs, removed, elig)
        for i in still:
            reasons.setdefault(i, (DropReason.NO_CAPACITY, "no worker's day had room after search"))
    return assemble(
        p,
        seqs,
        reasons,
        hit_time_limit=found.hit_time_limit,
        engine="pyvrp",
        runtime_s=time.perf_counter() - t_begin,
        objective=objective,
        current=current,
        travel=travel,
    )


def _pre_drop_reasons(p: Problem, elig: NDArray[np.bool_]) -> dict[int, tuple[DropReason, str]]:
    reasons: dict[int, tuple[DropReason, str]] = {}
    if p.W:
        need = p.vskills[:, None]
        skilled = ((p.wskills[None, :] & need) == need).any(axis=1)
    else:
        skilled = np.zeros(p.V, dtype=bool)
    for i in np.flatnonzero(~elig.any(axis=1) & ~p.fixed):
        v = p.visits[int(i)]
        if p.pinned[i] == -2:
            reasons[int(i)] = (
                DropReason.PINNED_WORKER_ABSENT,
                f"pinned to worker {v.pinned_worker}, who is not working",
            )
        elif not skilled[i]:
            reasons[int(i)] = (
                DropReason.NO_SKILLED_WORKER,
                f"no worker on shift has skills {v.skills:#x}",
            )
        else:
            reasons[int(i)] = (
                DropReason.UNREACHABLE,
                "no eligible worker can reach it within its window and still end the shift",
            )
    return reasons
