"""Capacity sweeps on Ray: grids of (workers × policy × weights × demand) and bisection.

Each grid point is one simulated day (same scenario, same seed: common random numbers, so
points differ only by the parameters). Points run as Ray tasks — a local Ray with
``num_cpus`` (default 2, no dashboard, works offline) or an existing cluster via
``address`` — with a rich progress bar; ``backend="serial"`` runs them in this process
(the baseline the benchmark compares against).

:func:`workers_needed` answers "how many workers does district D need to start X % of
its orders on time?" by bisection on D's worker count, simulating D alone (its demand and
its workers); districts bisect in parallel.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simulations.city import Scenario, ScenarioError, generate
from simulations.engine import Policy, policy_with, simulate
from simulations.kpi import kpis

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: worker and demand multipliers, dispatch mode, weight preset name."""

    workers: float
    mode: str = "auto"
    weights: str = "default"
    demand: float = 1.0

    def __post_init__(self) -> None:
        if not self.workers > 0:
            raise ScenarioError(f"must be > 0, got {self.workers}", "workers")
        if not self.demand > 0:
            raise ScenarioError(f"must be > 0, got {self.demand}", "demand")
        if self.mode not in ("auto", "grab"):
            raise ScenarioError(f"must be auto or grab, got {self.mode!r}", "mode")

    @property
    def label(self) -> str:
        """Series label: policy, weights and demand (workers is the x axis)."""
        return f"{self.mode}/{self.weights} ×{self.demand:g} demand"


def grid(
    workers: Sequence[float],
    modes: Sequence[str] = ("auto",),
    weights: Sequence[str] = ("default",),
    demand: Sequence[float] = (1.0,),
) -> list[SweepPoint]:
    """Every combination of the given axes (workers varies fastest)."""
    return [
        SweepPoint(workers=w, mode=m, weights=k, demand=d)
        for m, k, d, w in itertools.product(modes, weights, demand, workers)
    ]


def base_policy(scenario: Scenario) -> Policy:
    """The policy in the scenario's ``dispatch`` section."""
    return Policy.from_dict(scenario.dispatch)


def run_point(scenario: Scenario, point: SweepPoint, seed: int | None = None) -> dict[str, Any]:
    """Simulate one grid point; returns the point, the worker count and city-wide KPIs."""
    t0 = time.perf_counter()
    scaled = scenario.scaled(demand=point.demand, workers=point.workers)
    ahead = int(scenario.dispatch.get("dispatch_ahead_s", 3600))
    city = generate(scaled, seed, dispatch_ahead_s=ahead)
    policy = policy_with(base_policy(scenario), mode=point.mode, weights=point.weights)
    result = simulate(city, policy)
    return {
        **kpis(result),
        **asdict(point),  # after the KPIs: the point's ``workers`` multiplier wins
        "label": point.label,
        "n_workers": city.n_workers,
        "n_orders": city.n_orders,
        "match_calls": result.match_calls,
        "wall_s": time.perf_counter() - t0,
    }


def _district_point(
    scenario: Scenario,
    district: str,
    workers: int,
    policy: Policy,
    seed: int | None,
    replications: int = 1,
) -> float:
    """Mean on-time rate of ``district`` alone with ``workers`` over ``replications`` days."""
    sub = scenario.scaled(only_district=district, worker_counts={district: workers})
    ahead = int(scenario.dispatch.get("dispatch_ahead_s", 3600))
    first = scenario.seed if seed is None else seed
    rates = [
        kpis(simulate(generate(sub, first + r, dispatch_ahead_s=ahead), policy))["on_time_rate"]
        for r in range(replications)
    ]
    return float(sum(rates) / len(rates))


def bisect_district(
    scenario: Scenario,
    district: str,
    target: float,
    policy: Policy | None = None,
    *,
    seed: int | None = None,
    max_workers: int = 2000,
    replications: int = 1,
) -> dict[str, Any]:
    """Fewest workers in ``district`` (alone) whose day starts >= ``target`` of orders on time.

    Doubles from the scenario's current count until the target is met (or ``max_workers``),
    then bisects; each probe averages ``replications`` days (seeds seed, seed + 1, ...),
    which smooths the day-to-day noise that can make single days non-monotone. Returns
    the district, the answer (None if unreachable or if doubling stops helping: a shift or
    skill gap), the current count and every (workers, on_time_rate) probed.
    """
    if not 0 < target <= 1:
        raise ScenarioError(f"must be in (0, 1], got {target}", "target")
    policy = policy or base_policy(scenario)
    current = sum(g.count for g in scenario.workers if g.district == district)
    probes: dict[int, float] = {}

    def ok(n: int) -> bool:
        if n not in probes:
            probes[n] = _district_point(scenario, district, n, policy, seed, replications)
        return probes[n] >= target

    lo, hi = 0, max(current, 1)
    while not ok(hi):
        lo = hi
        gain = probes[hi] - probes.get(hi // 2, -1.0) if hi > 1 else 1.0
        # Doubling the fleet no longer helps: the shortfall is shifts or skills, not heads.
        if hi >= max_workers or gain < 0.005:
            return {"district": district, "needed": None, "current": current, "probes": probes}
        hi = min(hi * 2, max_workers)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return {
        "district": district,
        "needed": hi,
        "current": current,
        "probes": dict(sorted(probes.items())),
    }


# --------------------------------------------------------------------------- Ray


def init_ray(address: str | None = None, num_cpus: int = 2) -> None:
    """Start (or join) Ray: local with ``num_cpus`` and no dashboard, or ``address``."""
    # Offline machines: no usage-stats upload attempts.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    if address is None:
        # Local workers inherit this environment: put the repository on their path (a
        # runtime_env would do the same through Ray's runtime-env agent, much slower).
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if str(REPO_ROOT) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, paths)])
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
        )
    else:
        import dispatch
        import geo
        import simulations

        ray.init(
            address=address,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            runtime_env={"py_modules": [simulations, dispatch, geo]},
        )


def _run_tasks(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    backend: str,
    description: str,
    show_progress: bool,
) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` serially or as Ray tasks, in order, with progress."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=len(args))
        if backend == "serial":
            out = []
            for a in args:
                out.append(fn(*a))
                progress.advance(task)
            return out
        if backend != "ray":
            raise ScenarioError(f"must be 'ray' or 'serial', got {backend!r}", "backend")
        import ray

        remote = ray.remote(num_cpus=1)(fn)
        futures = [remote.remote(*a) for a in args]
        index = {f: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        pending = list(futures)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for f in done:
                results[index[f]] = ray.get(f)
                progress.advance(task)
        return results


def run_grid(
    scenario: Scenario,
    points: Sequence[SweepPoint],
    *,
    backend: str = "ray",
    address: str | None = None,
    num_cpus: int = 2,
    seed: int | None = None,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Simulate every point (Ray tasks or serially); results in the order of ``points``."""
    if backend == "ray":
        init_ray(address, num_cpus)
    args = [(scenario, p, seed) for p in points]
    return _run_tasks(run_point, args, backend, "sweep points", show_progress)


def workers_needed(
    scenario: Scenario,
    target: float,
    *,
    districts: Sequence[str] | None = None,
    policy: Policy | None = None,
    backend: str = "ray",
    address: str | None = None,
    num_cpus: int = 2,
    seed: int | None = None,
    replications: int = 1,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Per district, the fewest workers reaching ``target`` on-time rate (bisection, parallel)."""
    names = list(districts or [d.name for d in scenario.districts])
    known = {d.name for d in scenario.districts}
    for i, name in enumerate(names):
        if name not in known:
            raise ScenarioError(f"unknown district {name!r}", f"districts[{i}]")
    if backend == "ray":
        init_ray(address, num_cpus)
    args = [(scenario, name, target, policy, seed, replications) for name in names]
    return _run_tasks(_bisect_task, args, backend, "workers needed", show_progress)


def _bisect_task(
    scenario: Scenario,
    district: str,
    target: float,
    policy: Policy | None,
    seed: int | None,
    replications: int,
) -> dict[str, Any]:
    return bisect_district(scenario, district, target, policy, seed=seed, replications=replications)


def by_series(results: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Group sweep results by series label, each sorted by worker count."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        out.setdefault(str(r["label"]), []).append(r)
    return {k: sorted(v, key=lambda r: r["n_workers"]) for k, v in out.items()}
