"""Least-disruption repair of a day plan when the day changes.

Events: a worker is absent from some time, a started visit overran, an urgent
visit arrives, a visit is cancelled. ``repair`` keeps started visits fixed and
minimises lexicographically (disruption, lateness, travel), where disruption
weighs each unserved visit by the drop penalty and each changed assignment by
the change penalty (by default one drop = eight changes):

1. apply the event to the plan and keep every other route as it is
   (a route that ran late keeps its order while each visit stays within
   ``max_lateness_s`` of its window; visits later than that are freed);
2. put each freed or new visit at its cheapest feasible place, hardest
   window first, without moving anything else;
3. only if some visit is still unserved, re-optimise with PyVRP from the
   repaired plan with a change penalty per moved visit, and keep that result
   only if it is better by the same order.

Every change is reported with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from dispatch._vrp_core import Places, Space, TravelMatrix, TravelModelLike
from dispatch.errors import DispatchError, InvalidInput, UnknownOrder, UnknownWorker
from dispatch.schedule import (
    DEFAULT_CHANGE_PENALTY,
    ChangeReason,
    DayPlan,
    DropReason,
    Objective,
    Stop,
    Visit,
    VisitStatus,
    WorkerDay,
)
from dispatch.schedule.insertion import greedy_insert
from dispatch.schedule.problem import Problem, build_problem, eligibility, extend_space
from dispatch.schedule.routes import assemble, schedule_route, with_breaks
from dispatch.schedule.solve import solve_problem

__all__ = [
    "Change",
    "ChangeKind",
    "RepairResult",
    "UrgentVisit",
    "VisitCancelled",
    "VisitOverran",
    "WorkerAbsent",
    "repair",
]

#: A visit may run this late (seconds past its window) before repair moves it elsewhere.
DEFAULT_MAX_LATENESS_S = 30 * 60


@dataclass(frozen=True)
class WorkerAbsent:
    """Worker ``worker_id`` cannot work from ``from_time`` (epoch seconds) on."""

    worker_id: int
    from_time: int


@dataclass(frozen=True)
class VisitOverran:
    """Started visit ``visit_id`` takes ``extra_s`` seconds longer than planned."""

    visit_id: int
    extra_s: int

    def __post_init__(self) -> None:
        if self.extra_s <= 0:
            raise InvalidInput(f"extra_s must be > 0, got {self.extra_s}")


@dataclass(frozen=True)
class UrgentVisit:
    """A new visit that must be fitted into today's plan."""

    visit: Visit


@dataclass(frozen=True)
class VisitCancelled:
    """The customer cancelled visit ``visit_id``."""

    visit_id: int


Event = WorkerAbsent | VisitOverran | UrgentVisit | VisitCancelled


class ChangeKind(StrEnum):
    """What happened to one visit."""

    REASSIGNED = "reassigned"  # another worker now
    RETIMED = "retimed"  # same worker, other start
    DROPPED = "dropped"  # no worker any more
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True)
class Change:
    """One visit's change, with the reason (epoch seconds; None where not applicable)."""

    visit_id: int
    kind: ChangeKind
    reason: ChangeReason
    from_worker: int | None
    to_worker: int | None
    old_start: int | None
    new_start: int | None
    detail: str = ""


@dataclass(frozen=True)
class RepairResult:
    """The repaired plan, every change with its reason, and the changed-assignment count."""

    plan: DayPlan
    changes: tuple[Change, ...]
    changed_assignments: int
    reoptimised: bool


def _apply(
    plan: DayPlan, event: Event
) -> tuple[list[Visit], list[WorkerDay], set[int], ChangeReason]:
    """Visits and workers after the event, and visits that must be placed anew."""
    visits = list(plan.visits)
    workers = list(plan.workers)
    by_id = {v.id: i for i, v in enumerate(visits)}
    freed: set[int] = set()
    if isinstance(event, WorkerAbsent):
        k = next((j for j, w in enumerate(workers) if w.id == event.worker_id), None)
        if k is None:
            raise UnknownWorker(f"worker {event.worker_id} is not in this plan")
        w = workers[k]
        route = plan.route_of(w.id)
        fixed_end = max(
            (s.end for s in route.stops if visits[by_id[s.visit_id]].fixed), default=w.shift_start
        )
        new_end = max(min(w.shift_end, event.from_time), w.shift_start, fixed_end)
        workers[k] = replace(w, shift_end=new_end)
        for s in route.stops:
            i = by_id[s.visit_id]
            v = visits[i]
            if v.fixed:
                continue
            freed.add(v.id)
            if v.pinned_worker == w.id:
                # The customer was told this worker; re-confirmation follows the repair.
                visits[i] = replace(
                    v, pinned_worker=None, pinned_start=None, status=VisitStatus.PLANNED
                )
        for i, v in enumerate(visits):
            if v.pinned_worker == w.id and not v.fixed and v.id not in freed:
                visits[i] = replace(
                    v, pinned_worker=None, pinned_start=None, status=VisitStatus.PLANNED
                )
        return visits, workers, freed, ChangeReason.WORKER_ABSENT
    if isinstance(event, VisitOverran):
        if event.visit_id not in by_id:
            raise UnknownOrder(f"visit {event.visit_id} is not in this plan")
        i = by_id[event.visit_id]
        v = visits[i]
        if v.status != VisitStatus.STARTED:
            raise InvalidInput(f"visit {v.id}: only a started visit can overrun, it is {v.status}")
        visits[i] = replace(v, duration_s=v.duration_s + event.extra_s)
        return visits, workers, freed, ChangeReason.OVERRUN
    if isinstance(event, UrgentVisit):
        if event.visit.id in by_id:
            raise InvalidInput(f"visit {event.visit.id} is already in the plan")
        visits.append(event.visit)
        freed.add(event.visit.id)
        return visits, workers, freed, ChangeReason.URGENT_INSERTED
    if isinstance(event, VisitCancelled):
        if event.visit_id not in by_id:
            raise UnknownOrder(f"visit {event.visit_id} is not in this plan")
        v = visits[by_id[event.visit_id]]
        if v.fixed:
            raise InvalidInput(f"visit {v.id} is {v.status}; it can no longer be cancelled")
        visits.pop(by_id[event.visit_id])
        return visits, workers, freed, ChangeReason.CANCELLED
    raise InvalidInput(f"unknown event type {type(event).__name__}")


def _late_tolerant_problem(p: Problem, seqs: list[list[int]], max_lateness_s: int) -> set[int]:
    """Visits to free because their route now runs more than ``max_lateness_s`` late."""
    freed: set[int] = set()
    for k, seq in enumerate(seqs):
        while True:
            stops, finish, *_ = schedule_route(p, k, seq, allow_late=True)
            shift_end = int(p.shift_end[k]) + p.t0
            free_stops = stops[len(p.prefix[k]) :]
            worst = next(
                (j for j, s in enumerate(free_stops) if s.lateness_s > max_lateness_s), None
            )
            if worst is None and finish > shift_end and free_stops:
                worst = len(free_stops) - 1
            if worst is None:
                break
            vid = free_stops[worst].visit_id
            i = p.visit_index[vid]
            seq.remove(i)
            freed.add(i)
    return freed


def repair(
    plan: DayPlan,
    event: Event,
    *,
    travel: TravelMatrix | TravelModelLike | None = None,
    stop: float | Stop = 2.0,
    seed: int = 0,
    change_penalty: int = DEFAULT_CHANGE_PENALTY,
    max_lateness_s: int = DEFAULT_MAX_LATENESS_S,
    reoptimise: bool = True,
) -> RepairResult:
    """Repair ``plan`` after ``event`` with as few changes to confirmed visits as possible.

    Times epoch seconds, durations seconds. Started visits never move; a
    route that runs late keeps its visits while each is at most
    ``max_lateness_s`` late. Returns the new plan and every change.
    """
    travel = travel if travel is not None else plan.travel
    if travel is None:
        raise DispatchError("the plan has no travel model; pass travel=")
    if max_lateness_s < 0:
        raise InvalidInput(f"max_lateness_s must be >= 0, got {max_lateness_s}")
    visits, workers, freed_ids, reason = _apply(plan, event)
    space = _space_after(plan, event)
    # A shift cut short may leave a visit outside every shift: drop it, do not fail.
    p = build_problem(visits, workers, travel, plan, None, space=space, strict=False)
    # Sequences of the plan in force, in the new problem's indices.
    old_assign = plan.assignment()
    seqs: list[list[int]] = [[] for _ in range(p.W)]
    for r in plan.routes:
        k = p.worker_index[r.worker_id]
        seqs[k] = [
            p.visit_index[vid]
            for vid in r.visit_ids
            if vid in p.visit_index
            and vid not in freed_ids
            and not p.visits[p.visit_index[vid]].fixed
        ]
        seqs[k] = with_breaks(p, k, [i for i in seqs[k] if i >= 0])
    freed = {p.visit_index[vid] for vid in freed_ids if vid in p.visit_index}
    freed |= _late_tolerant_problem(p, seqs, max_lateness_s)
    elig = eligibility(p)
    # Previously dropped visits get another chance too: a cancellation frees room.
    routed = {i for seq in seqs for i in seq if i >= 0} | {i for pre in p.prefix for i in pre}
    todo = sorted(freed | {i for i in range(p.V) if i not in routed})
    seqs, left = greedy_insert(p, seqs, todo, elig)
    reasons = _reasons(p, left, elig)
    objective = Objective(drop_penalty=max(Objective().drop_penalty, 2 * change_penalty))
    local = assemble(
        p,
        seqs,
        reasons,
        hit_time_limit=False,
        engine="insertion",
        runtime_s=0.0,
        objective=objective,
        current=plan,
        travel=travel,
    )
    best, reopt = local, False
    if reoptimise and any(i in freed for i in left):
        # Re-optimise from the repaired plan; confirmed visits stay pinned to their worker,
        # late ones keep their current start as their window so nothing is dropped for it.
        relaxed = []
        for v in p.visits:
            s = local.stop_of(v.id)
            if s is not None and s.lateness_s > 0 and not v.fixed:
                v = replace(v, window_end=s.start)
            relaxed.append(v)
        stop = stop if isinstance(stop, Stop) else Stop(seconds=float(stop))
        try:
            p2 = build_problem(relaxed, workers, travel, local, None, space=p.space, strict=False)
            cand = solve_problem(
                p2, travel, stop, seed, local, change_penalty, objective, time.perf_counter()
            )
        except DispatchError:
            cand = None
        if cand is not None:
            cand = replace(
                cand, visits=p.visits, changed_assignments=_changes_vs(plan, cand, p.visits)
            )
            if _key(cand, objective, change_penalty) < _key(local, objective, change_penalty):
                best, reopt = cand, True
    changes = _diff(plan, best, old_assign, reason, freed_ids, event)
    return RepairResult(
        plan=best,
        changes=tuple(changes),
        changed_assignments=best.changed_assignments,
        reoptimised=reopt,
    )


def _space_after(plan: DayPlan, event: Event) -> Space | None:
    """The plan's travel matrices adjusted to the event's rows (no recomputation)."""
    old = plan._space
    if old is None:
        return None
    if isinstance(event, UrgentVisit):
        return extend_space(plan, event.visit)
    if isinstance(event, VisitCancelled):
        i = next(j for j, v in enumerate(plan.visits) if v.id == event.visit_id)
        row = 2 * len(plan.workers) + i
        keep = np.delete(np.arange(old.places.lat.size), row)
        space = Space(
            travel=old.travel,
            places=Places(old.places.lat[keep], old.places.lng[keep], old.places.node[keep]),
            modes=old.modes,
            horizon=old.horizon,
        )
        for m in old.modes:
            space.duration[m] = old.duration[m][np.ix_(keep, keep)]
            space.distance[m] = old.distance[m][np.ix_(keep, keep)]
        return space
    return old


def _key(plan: DayPlan, objective: Objective, change_penalty: int) -> tuple[int, int, int]:
    """Unserved visits and changes weighed by their penalties, then lateness, then travel."""
    disruption = (
        plan.num_dropped * objective.drop_penalty + plan.changed_assignments * change_penalty
    )
    return (disruption, plan.total_lateness_s, plan.total_travel_s)


def _changes_vs(old: DayPlan, new: DayPlan, visits: Sequence[Visit]) -> int:
    before = old.assignment()
    after = new.assignment()
    return sum(1 for v in visits if v.id in before and after.get(v.id) != before[v.id])


def _reasons(
    p: Problem, left: Sequence[int], elig: np.ndarray
) -> dict[int, tuple[DropReason, str]]:
    out: dict[int, tuple[DropReason, str]] = {}
    for i in left:
        if not elig[i].any():
            out[i] = (
                DropReason.UNREACHABLE,
                "no worker with the skills can reach it within its window today",
            )
        else:
            out[i] = (
                DropReason.NO_CAPACITY,
                "every eligible worker's day is full around its window",
            )
    return out


def _diff(
    old: DayPlan,
    new: DayPlan,
    old_assign: dict[int, int],
    reason: ChangeReason,
    freed_ids: set[int],
    event: Event,
) -> list[Change]:
    changes: list[Change] = []
    new_assign = new.assignment()
    if isinstance(event, VisitCancelled):
        s = old.stop_of(event.visit_id)
        changes.append(
            Change(
                event.visit_id,
                ChangeKind.REMOVED,
                reason,
                old_assign.get(event.visit_id),
                None,
                None if s is None else s.start,
                None,
                "cancelled by customer",
            )
        )
    for v in new.visits:
        before, after = old_assign.get(v.id), new_assign.get(v.id)
        s_old, s_new = old.stop_of(v.id), new.stop_of(v.id)
        old_start = None if s_old is None else s_old.start
        new_start = None if s_new is None else s_new.start
        why = (
            reason
            if (v.id in freed_ids or reason == ChangeReason.OVERRUN)
            else (ChangeReason.REOPTIMISED)
        )
        if before is None and after is not None:
            changes.append(
                Change(
                    v.id,
                    ChangeKind.ADDED,
                    why,
                    None,
                    after,
                    None,
                    new_start,
                    f"inserted for worker {after}",
                )
            )
        elif before is not None and after is None:
            d = next((d for d in new.dropped if d.visit_id == v.id), None)
            changes.append(
                Change(
                    v.id,
                    ChangeKind.DROPPED,
                    why,
                    before,
                    None,
                    old_start,
                    None,
                    d.detail if d else "no worker can take it",
                )
            )
        elif before is not None and after is not None and before != after:
            changes.append(
                Change(
                    v.id,
                    ChangeKind.REASSIGNED,
                    why,
                    before,
                    after,
                    old_start,
                    new_start,
                    f"moved from worker {before} to {after}",
                )
            )
        elif before is not None and old_start != new_start:
            late = s_new.lateness_s if s_new is not None else 0
            changes.append(
                Change(
                    v.id,
                    ChangeKind.RETIMED,
                    why,
                    before,
                    after,
                    old_start,
                    new_start,
                    f"{late} s late" if late else "new start",
                )
            )
    return changes
