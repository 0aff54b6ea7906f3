"""What a simulated city day is made of: districts, services, worker groups, demand, customers.

Each part is a frozen dataclass validated where it is made; a bad value raises
:class:`ScenarioError` naming the field. :class:`Scenario` holds them all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from dispatch.model import TRANSPORT_MODES, SkillCatalog

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECONDS_PER_DAY = 86_400


class ScenarioError(ValueError):
    """A scenario file or value is invalid; ``field`` is its path, ``line`` its line (or None)."""

    def __init__(self, message: str, field: str = "", line: int | None = None, source: str = ""):
        self.field = field
        self.line = line
        self.source = source
        where = f"{source}:{line}: " if source and line else (f"line {line}: " if line else "")
        super().__init__(f"{where}{field + ': ' if field else ''}{message}")


def check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise ScenarioError(message, name)


def finite(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"must be a finite number, got {value!r}", name)
    if lo is not None and value < lo:
        raise ScenarioError(f"must be >= {lo}, got {value}", name)
    if hi is not None and value > hi:
        raise ScenarioError(f"must be <= {hi}, got {value}", name)
    return float(value)


@dataclass(frozen=True)
class District:
    """A demand area: a disk of ``radius_km`` around (lat, lng) degrees; weight >= 0 (relative)."""

    name: str
    lat: float
    lng: float
    radius_km: float
    demand_weight: float

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and bool(self.name), "name", "must be a non-empty string")
        finite(self.lat, "lat", -90, 90)
        finite(self.lng, "lng", -180, 180)
        finite(self.radius_km, "radius_km", 0, 100)
        finite(self.demand_weight, "demand_weight", 0)


@dataclass(frozen=True)
class ServiceType:
    """A service on the menu: skill, duration (minutes, lognormal/exponential), mix shares.

    ``share`` relative frequency; ``booked_share`` fraction booked ahead (the rest on
    demand); ``lead_time_h`` mean booking lead time in hours (exponential).
    """

    name: str
    skill: str
    duration_min: float
    duration_cv: float = 0.25
    distribution: str = "lognormal"
    share: float = 1.0
    booked_share: float = 0.5
    lead_time_h: float = 24.0
    price_yuan: float = 100.0

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and bool(self.name), "name", "must be a non-empty string")
        check(isinstance(self.skill, str) and bool(self.skill), "skill", "must be a skill name")
        finite(self.duration_min, "duration_min", 1)
        finite(self.duration_cv, "duration_cv", 0, 3)
        check(
            self.distribution in ("lognormal", "exponential", "fixed"),
            "distribution",
            f"must be lognormal, exponential or fixed, got {self.distribution!r}",
        )
        finite(self.share, "share", 0)
        finite(self.booked_share, "booked_share", 0, 1)
        finite(self.lead_time_h, "lead_time_h", 0)
        finite(self.price_yuan, "price_yuan", 0)


@dataclass(frozen=True)
class WorkerGroup:
    """``count`` workers living in ``district`` with one shift (local hours), skills, mode.

    ``decline_prob`` chance an offer is declined; ``response_s`` mean seconds to answer
    (exponential; answers slower than the accept timeout are timeouts).
    """

    district: str
    count: int
    shift_start_h: float
    shift_end_h: float
    skills: tuple[str, ...]
    mode: str = "ebike"
    decline_prob: float = 0.1
    response_s: float = 10.0
    rating: float = 4.8

    def __post_init__(self) -> None:
        check(
            isinstance(self.count, int) and not isinstance(self.count, bool) and self.count >= 0,
            "count",
            f"must be an integer >= 0, got {self.count!r}",
        )
        finite(self.shift_start_h, "shift", 0, 48)
        finite(self.shift_end_h, "shift", 0, 48)
        check(
            self.shift_end_h > self.shift_start_h,
            "shift",
            f"ends ({self.shift_end_h:g} h) before it starts ({self.shift_start_h:g} h); "
            "write overnight shifts with hours past 24, e.g. 22:00-30:00",
        )
        check(bool(self.skills), "skills", "must list at least one skill")
        check(self.mode in TRANSPORT_MODES, "mode", f"must be one of {TRANSPORT_MODES}")
        finite(self.decline_prob, "decline_prob", 0, 1)
        finite(self.response_s, "response_s", 0)
        finite(self.rating, "rating", 0, 5)


@dataclass(frozen=True)
class Demand:
    """Orders per day before weekday and sweep multipliers; 24 hourly weights (local time)."""

    orders_per_day: float
    hourly_profile: tuple[float, ...]
    weekday_multiplier: Mapping[str, float] = field(
        default_factory=lambda: dict.fromkeys(WEEKDAYS, 1.0)
    )

    def __post_init__(self) -> None:
        finite(self.orders_per_day, "orders_per_day", 0)
        check(
            len(self.hourly_profile) == 24,
            "hourly_profile",
            f"must hold 24 hourly weights, got {len(self.hourly_profile)}",
        )
        for h, w in enumerate(self.hourly_profile):
            finite(w, f"hourly_profile[{h}]", 0)
        check(sum(self.hourly_profile) > 0, "hourly_profile", "must have a positive weight")
        for k, v in self.weekday_multiplier.items():
            check(k in WEEKDAYS, f"weekday_multiplier.{k}", f"must be one of {WEEKDAYS}")
            finite(v, f"weekday_multiplier.{k}", 0)


@dataclass(frozen=True)
class Customers:
    """Customer behaviour: patience, promises and cancellations (minutes unless named)."""

    patience_min: float = 45.0  # mean wait before an unassigned on-demand order is cancelled
    promise_min: float = 60.0  # on-demand orders are promised a start within this
    grace_min: float = 5.0  # a start this late still counts as on time
    cancel_booked_prob: float = 0.03  # booked orders cancelled before their start
    slot_min: float = 30.0  # a booked slot: the worker arrives and starts within this window

    def __post_init__(self) -> None:
        finite(self.patience_min, "patience_min", 0)
        finite(self.promise_min, "promise_min", 0)
        finite(self.grace_min, "grace_min", 0)
        finite(self.cancel_booked_prob, "cancel_booked_prob", 0, 1)
        finite(self.slot_min, "slot_min", 1, 24 * 60)


@dataclass(frozen=True)
class Disruptions:
    """What goes wrong on the day (each day plan is repaired through ``dispatch.repair``).

    ``sick_prob`` chance a worker calls in sick (at a uniform time from an hour before
    the shift to its middle); ``delay_prob`` chance a trip to a visit runs late, by an
    exponential ``delay_mean_min`` minutes. Services overrun by their duration spread
    (``duration_cv``) and booked customers cancel (``cancel_booked_prob``) on their own.
    """

    sick_prob: float = 0.0
    delay_prob: float = 0.0
    delay_mean_min: float = 20.0

    def __post_init__(self) -> None:
        finite(self.sick_prob, "sick_prob", 0, 1)
        finite(self.delay_prob, "delay_prob", 0, 1)
        finite(self.delay_mean_min, "delay_mean_min", 0, 24 * 60)


@dataclass(frozen=True)
class Scenario:
    """Everything that defines a simulated city day (see module docstring)."""

    name: str
    day: date
    districts: tuple[District, ...]
    services: tuple[ServiceType, ...]
    workers: tuple[WorkerGroup, ...]
    demand: Demand
    customers: Customers = field(default_factory=Customers)
    dispatch: Mapping[str, Any] = field(default_factory=dict)
    disruptions: Disruptions = field(default_factory=Disruptions)
    seed: int = 0
    utc_offset_h: float = 8.0

    def __post_init__(self) -> None:
        check(bool(self.districts), "districts", "must list at least one district")
        check(bool(self.services), "services", "must list at least one service")
        names = [d.name for d in self.districts]
        for i, n in enumerate(names):
            check(names.index(n) == i, f"districts[{i}].name", f"duplicates {n!r}")
        for i, g in enumerate(self.workers):
            check(
                g.district in names,
                f"workers[{i}].district",
                f"unknown district {g.district!r} (known: {', '.join(names)})",
            )
        check(sum(s.share for s in self.services) > 0, "services", "need a positive share")
        check(sum(d.demand_weight for d in self.districts) > 0, "districts", "no demand weight")
        finite(self.utc_offset_h, "utc_offset_h", -14, 14)

    @property
    def weekday(self) -> str:
        """Local weekday of the simulated day (mon..sun)."""
        return WEEKDAYS[self.day.weekday()]

    @property
    def day_start_s(self) -> int:
        """Epoch seconds of local midnight starting the simulated day."""
        midnight = datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)
        return int(midnight.timestamp() - self.utc_offset_h * 3600)

    def skills(self) -> SkillCatalog:
        """Every skill named by a service or a worker group, in first-seen order."""
        seen = dict.fromkeys([s.skill for s in self.services])
        for g in self.workers:
            seen.update(dict.fromkeys(g.skills))
        return SkillCatalog(tuple(seen))

    def scaled(
        self,
        *,
        demand: float = 1.0,
        workers: float | None = None,
        worker_counts: Mapping[str, int] | None = None,
        only_district: str | None = None,
        duration: float = 1.0,
    ) -> Scenario:
        """A copy with demand × ``demand``, worker counts × ``workers`` (rounded) or set per
        district (``worker_counts``: district -> total, split over its groups pro rata),
        reduced to one district (its demand and workers only), service durations ×
        ``duration``."""
        districts = self.districts
        groups = list(self.workers)
        if only_district is not None:
            districts = tuple(d for d in districts if d.name == only_district)
            if not districts:
                raise ScenarioError(f"unknown district {only_district!r}", "only_district")
            groups = [g for g in groups if g.district == only_district]
        if workers is not None:
            groups = [replace(g, count=round(g.count * workers)) for g in groups]
        if worker_counts is not None:
            out: list[WorkerGroup] = []
            for g in groups:
                total_here = sum(x.count for x in groups if x.district == g.district)
                want = worker_counts.get(g.district)
                if want is None:
                    out.append(g)
                elif total_here == 0:
                    out.append(replace(g, count=int(want)))
                else:
                    out.append(replace(g, count=round(g.count * want / total_here)))
            groups = out
        share = sum(d.demand_weight for d in districts) / sum(
            d.demand_weight for d in self.districts
        )
        dem = replace(self.demand, orders_per_day=self.demand.orders_per_day * demand * share)
        services = self.services
        if duration != 1.0:
            services = tuple(
                replace(v, duration_min=max(v.duration_min * duration, 1.0)) for v in services
            )
        return replace(
            self, districts=districts, workers=tuple(groups), demand=dem, services=services
        )
