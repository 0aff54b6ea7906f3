"""KPIs of a simulated day: fill rate, waits, punctuality, utilisation, travel, fairness.

Every KPI is computed for the whole city (``district == "all"``) and per district (of the
order; worker KPIs by home district). Output is a tidy table — one row per (run, district,
metric) with its unit — written as CSV (and Parquet when pyarrow is importable), plus a
flat summary dict of the city-wide values.

Definitions:
- ``fill_rate``: served orders / all orders of the day.
- ``on_time_rate``: orders served with a start no later than promise + grace / orders the
  customer still wanted (all but booked orders cancelled ahead, which no fleet could
  serve); unserved orders and on-demand customers who gave up waiting count as not on
  time — the capacity question's target.
- ``on_time_of_served``: the same among served orders only.
- ``booked_on_time_rate`` / ``on_demand_on_time_rate``: ``on_time_rate`` of booked orders
  (start within the slot, or the later slot the customer took, + grace; a booking refused
  for want of a slot counts as not on time) and of on-demand orders.
- ``time_to_assign_*``: seconds from placing an on-demand order to an accepted
  offer/claim (booked orders are assigned by their day plan, hours ahead).
- ``booking_refused``: booked orders no slot could take; ``bookings_moved_slot``: booked
  to a later slot than asked.
- ``repairs``: day-plan repairs (sick calls, visits ending late, cancellations);
  ``visits_moved``: times a repair gave a visit to another worker; ``visits_dropped``:
  visits a repair left without a worker.
- ``lateness_*_min``: minutes a served start came after the promise (0 if early).
- ``utilisation``: (travel + service seconds) / on-shift seconds over all workers.
- ``gini_earnings``: Gini coefficient of worker earnings (0 equal, 1 one worker earns all).
"""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simulations.engine import OrderOutcome, SimResult

FloatArray = NDArray[np.float64]

#: Unit of each metric, in output order.
UNITS: dict[str, str] = {
    "orders": "count",
    "served": "count",
    "fill_rate": "ratio",
    "on_time_rate": "ratio",
    "on_time_of_served": "ratio",
    "cancelled": "count",
    "cancel_rate": "ratio",
    "escalated": "count",
    "unserved": "count",
    "booked_orders": "count",
    "booked_on_time_rate": "ratio",
    "on_demand_orders": "count",
    "on_demand_on_time_rate": "ratio",
    "booking_refused": "count",
    "bookings_moved_slot": "count",
    "repairs": "count",
    "visits_moved": "count",
    "visits_dropped": "count",
    "time_to_assign_mean_s": "s",
    "time_to_assign_p50_s": "s",
    "time_to_assign_p90_s": "s",
    "lateness_mean_min": "min",
    "lateness_p50_min": "min",
    "lateness_p90_min": "min",
    "lateness_max_min": "min",
    "late_0_5_min": "count",
    "late_5_15_min": "count",
    "late_15_30_min": "count",
    "late_30_60_min": "count",
    "late_over_60_min": "count",
    "workers": "count",
    "utilisation": "ratio",
    "travel_km_per_order": "km",
    "orders_per_worker": "count",
    "gini_earnings": "ratio",
    "offers": "count",
    "declined_offers": "count",
    "timed_out_offers": "count",
}
_LATE_BINS = (
    ("late_0_5_min", 0.0, 5.0),
    ("late_5_15_min", 5.0, 15.0),
    ("late_15_30_min", 15.0, 30.0),
    ("late_30_60_min", 30.0, 60.0),
    ("late_over_60_min", 60.0, np.inf),
)


def gini(values: Iterable[float] | FloatArray) -> float:
    """Gini coefficient of non-negative values (0: all equal; NaN for no values)."""
    x = np.sort(np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float))
    if x.size == 0:
        return float("nan")
    total = x.sum()
    if total <= 0:
        return 0.0
    ranks = np.arange(1, x.size + 1)
    return float((2.0 * (ranks * x).sum()) / (x.size * total) - (x.size + 1.0) / x.size)


def _q(x: FloatArray, q: float) -> float:
    return float(np.quantile(x, q)) if x.size else float("nan")


def _mean(x: FloatArray) -> float:
    return float(x.mean()) if x.size else float("nan")


def kpis(
    result: SimResult,
    orders: NDArray[np.bool_] | None = None,
    workers: NDArray[np.bool_] | None = None,
) -> dict[str, float]:
    """KPIs over the selected orders and workers (masks; default all), keyed as in UNITS."""
    c = result.city
    sel = np.ones(c.n_orders, dtype=np.bool_) if orders is None else orders
    wsel = np.ones(c.n_workers, dtype=np.bool_) if workers is None else workers
    out = result.outcome[sel]
    n = int(sel.sum())
    served = out == OrderOutcome.SERVED
    start = result.start_s[sel]
    assert result.promised_s is not None
    assert result.booked_start_s is not None
    promised = result.promised_s[sel]
    late_s = (start - promised).astype(np.float64)
    on_time = served & (late_s <= c.grace_s)
    booked = c.booked_start_s[sel] >= 0
    assigned = (result.assigned_at[sel] >= 0) & ~booked
    wait = (result.assigned_at[sel] - c.release_s[sel])[assigned].astype(np.float64)
    late_min = np.maximum(late_s[served], 0.0) / 60.0
    # Booked orders cancelled ahead were drawn independently of dispatch: not a failure.
    cancelled_ahead = (out == OrderOutcome.CANCELLED) & booked
    wanted = n - int(cancelled_ahead.sum())
    booked_wanted = int(booked.sum() - cancelled_ahead.sum())
    on_demand = int((~booked).sum())
    assert result.moved is not None
    assert result.repair_dropped is not None
    assert result.order_repairs is not None
    assert result.worker_repairs is not None
    on_shift = result.worker_on_shift_s[wsel]
    worked = on_shift > 0
    n_served = int(served.sum())
    values: dict[str, float] = {
        "orders": float(n),
        "served": float(n_served),
        "fill_rate": n_served / n if n else float("nan"),
        "on_time_rate": float(on_time.sum()) / wanted if wanted else float("nan"),
        "on_time_of_served": float(on_time.sum()) / n_served if n_served else float("nan"),
        "cancelled": float((out == OrderOutcome.CANCELLED).sum()),
        "cancel_rate": float((out == OrderOutcome.CANCELLED).sum()) / n if n else float("nan"),
        "escalated": float((out == OrderOutcome.ESCALATED).sum()),
        "unserved": float((out == OrderOutcome.UNSERVED).sum()),
        "booked_orders": float(booked.sum()),
        "booked_on_time_rate": (
            float((on_time & booked).sum()) / booked_wanted if booked_wanted else float("nan")
        ),
        "on_demand_orders": float(on_demand),
        "on_demand_on_time_rate": (
            float((on_time & ~booked).sum()) / on_demand if on_demand else float("nan")
        ),
        "booking_refused": float((out == OrderOutcome.REFUSED).sum()),
        "bookings_moved_slot": float(
            (result.booked_start_s[sel] > c.booked_start_s[sel])[booked].sum()
        ),
        "repairs": float(result.order_repairs[sel].sum() + result.worker_repairs[wsel].sum()),
        "visits_moved": float(result.moved[sel].sum()),
        "visits_dropped": float(result.repair_dropped[sel].sum()),
        "time_to_assign_mean_s": _mean(wait),
        "time_to_assign_p50_s": _q(wait, 0.5),
        "time_to_assign_p90_s": _q(wait, 0.9),
        "lateness_mean_min": _mean(late_min),
        "lateness_p50_min": _q(late_min, 0.5),
        "lateness_p90_min": _q(late_min, 0.9),
        "lateness_max_min": float(late_min.max()) if late_min.size else float("nan"),
    }
    late_only = late_min[late_min > 0]
    for name, lo, hi in _LATE_BINS:
        values[name] = float(((late_only > lo) & (late_only <= hi)).sum())
    busy = result.worker_busy_s[wsel]
    values.update(
        {
            "workers": float(worked.sum()),
            "utilisation": float(busy.sum() / on_shift.sum()) if on_shift.sum() > 0 else 0.0,
            "travel_km_per_order": (
                float(result.travel_m[sel][served].sum() / 1000.0 / n_served)
                if n_served
                else float("nan")
            ),
            "orders_per_worker": (
                float(result.worker_served[wsel][worked].mean()) if worked.any() else float("nan")
            ),
            "gini_earnings": gini(result.worker_earnings_fen[wsel][worked].astype(np.float64)),
            "offers": float(result.offers[sel].sum()),
            "declined_offers": float(result.declines[sel].sum()),
            "timed_out_offers": float(result.timeouts[sel].sum()),
        }
    )
    return values


@dataclass(frozen=True)
class KpiRow:
    """One tidy row: which run, which district, which metric, its value and unit."""

    run: str
    policy: str
    district: str
    metric: str
    value: float
    unit: str

    def __post_init__(self) -> None:
        if self.metric not in UNITS:
            raise ValueError(f"metric must be one of UNITS, got {self.metric!r}")


def kpi_table(result: SimResult, run: str = "run") -> list[KpiRow]:
    """Tidy KPI rows for the whole city and for every district."""
    c = result.city
    rows: list[KpiRow] = []
    groups: list[tuple[str, Any, Any]] = [("all", None, None)]
    for d, name in enumerate(c.district_names):
        groups.append((name, c.district == d, c.home_district == d))
    for name, o_mask, w_mask in groups:
        for metric, value in kpis(result, o_mask, w_mask).items():
            rows.append(KpiRow(run, result.policy.name, name, metric, value, UNITS[metric]))
    return rows


def summary(result: SimResult) -> dict[str, float]:
    """City-wide KPIs plus run counters (match, plan_day and slot calls, events, wall s)."""
    out = kpis(result)
    out["match_calls"] = float(result.match_calls)
    out["plan_calls"] = float(result.plan_calls)
    out["slot_calls"] = float(result.slot_calls)
    out["events"] = float(result.events)
    out["wall_s"] = result.wall_s
    return out


def write_table(rows: Sequence[KpiRow], path: str | Path) -> list[Path]:
    """Write rows as CSV at ``path`` (and ``.parquet`` beside it if pyarrow exists)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cols = ["run", "policy", "district", "metric", "value", "unit"]
    with p.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for r in rows:
            writer.writerow([r.run, r.policy, r.district, r.metric, f"{r.value:.6g}", r.unit])
    written = [p]
    if importlib.util.find_spec("pyarrow") is not None:  # optional: not in the lock file
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [getattr(r, c) for r in rows] for c in cols})
        pq.write_table(table, p.with_suffix(".parquet"))
        written.append(p.with_suffix(".parquet"))
    return written


def compare(
    a: Mapping[str, float], b: Mapping[str, float]
) -> list[tuple[str, float, float, float]]:
    """Side-by-side rows (metric, a, b, b - a) for metrics present in both."""
    return [(k, float(a[k]), float(b[k]), float(b[k]) - float(a[k])) for k in a if k in b]
