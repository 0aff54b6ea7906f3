"""Demand fitted from a CSV of historical orders, and a scenario with that fit applied."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from simulations.city.scenario import SECONDS_PER_DAY, WEEKDAYS, Demand, Scenario, ScenarioError


@dataclass(frozen=True)
class DemandFit:
    """Demand fitted from history: the Demand, district weights and service shares."""

    demand: Demand
    district_weights: Mapping[str, float]
    service_shares: Mapping[str, float]
    days: int
    orders: int


def _parse_time(text: str, utc_offset_h: float) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone(timedelta(hours=utc_offset_h)))
    return stamp.timestamp()


def fit_demand(csv_path: str | Path, scenario: Scenario) -> DemandFit:
    """Fit orders per day, hourly profile, weekday multipliers, district and service mix.

    The CSV needs ``created_at`` (epoch seconds or ISO 8601; naive = local time) and
    ``district``; ``service`` is optional. Unknown districts/services raise ScenarioError
    naming the CSV line.
    """
    names = {d.name for d in scenario.districts}
    services = {s.name for s in scenario.services}
    off = scenario.utc_offset_h * 3600
    stamps: list[float] = []
    dist_count: dict[str, int] = dict.fromkeys(names, 0)
    svc_count: dict[str, int] = {}
    with Path(csv_path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for col in ("created_at", "district"):
            if reader.fieldnames is None or col not in reader.fieldnames:
                raise ScenarioError("missing column", col, 1, str(csv_path))
        for row in reader:
            line = reader.line_num
            d = (row.get("district") or "").strip()
            if d not in names:
                raise ScenarioError(f"unknown district {d!r}", "district", line, str(csv_path))
            try:
                stamps.append(_parse_time(row["created_at"], scenario.utc_offset_h))
            except ValueError:
                raise ScenarioError(
                    f"not a time: {row['created_at']!r}", "created_at", line, str(csv_path)
                ) from None
            dist_count[d] += 1
            svc = (row.get("service") or "").strip()
            if svc:
                if svc not in services:
                    raise ScenarioError(f"unknown service {svc!r}", "service", line, str(csv_path))
                svc_count[svc] = svc_count.get(svc, 0) + 1
    if not stamps:
        raise ScenarioError("no orders in the CSV", "created_at", None, str(csv_path))
    local = np.asarray(stamps) + off
    day_idx = np.floor(local / SECONDS_PER_DAY).astype(np.int64)
    hours = ((local % SECONDS_PER_DAY) // 3600).astype(np.int64)
    # 1970-01-01 was a Thursday: weekday = (day + 3) % 7 with Monday = 0.
    weekday = (day_idx + 3) % 7
    days = np.unique(day_idx)
    per_day = np.bincount(day_idx - days.min())[days - days.min()]
    day_wd = (days + 3) % 7
    mean_all = float(per_day.mean())
    mult = {}
    for k, name in enumerate(WEEKDAYS):
        sel = per_day[day_wd == k]
        mult[name] = float(sel.mean() / mean_all) if sel.size else 1.0
    profile = np.bincount(hours, minlength=24).astype(np.float64)
    del weekday
    total = sum(dist_count.values())
    demand = Demand(
        orders_per_day=mean_all,
        hourly_profile=tuple(float(x) for x in profile / profile.sum()),
        weekday_multiplier=mult,
    )
    return DemandFit(
        demand=demand,
        district_weights={k: v / total for k, v in dist_count.items()},
        service_shares=(
            {k: v / sum(svc_count.values()) for k, v in svc_count.items()} if svc_count else {}
        ),
        days=int(days.size),
        orders=len(stamps),
    )


def with_fit(scenario: Scenario, fit: DemandFit) -> Scenario:
    """The scenario with demand, district weights and (if fitted) service shares replaced."""
    districts = tuple(
        replace(d, demand_weight=fit.district_weights.get(d.name, 0.0)) for d in scenario.districts
    )
    services = scenario.services
    if fit.service_shares:
        services = tuple(
            replace(s, share=fit.service_shares.get(s.name, 0.0)) for s in scenario.services
        )
    return replace(scenario, demand=fit.demand, districts=districts, services=services)
