"""A deterministic city day: districts, Poisson demand by hour and weekday, workers, shifts.

A :class:`Scenario` is the whole description (loadable from YAML/JSON with line-accurate
errors, demand fittable from a CSV of historical orders); :func:`generate` turns it and a
seed into a :class:`CityDay`: struct-of-arrays orders and workers with every random draw
the engine needs already made (actual service durations, customer patience, booked-order
cancellations), so the same scenario and seed give the same day under any policy.

Units: times are int64 epoch seconds (UTC), durations int64 seconds, positions WGS-84
degrees, money int64 fen. Local hours use the scenario's UTC offset (China: +8 h).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from dispatch.model import TRANSPORT_MODES, SkillCatalog
from geo.projection import EARTH_RADIUS_M

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECONDS_PER_DAY = 86_400
#: ``booked_start_s`` of an on-demand order.
NOT_BOOKED = -1
#: ``cancel_at_s`` of an order whose customer never cancels.
NEVER = np.iinfo(np.int64).max


class ScenarioError(ValueError):
    """A scenario file or value is invalid; ``field`` is its path, ``line`` its line (or None)."""

    def __init__(self, message: str, field: str = "", line: int | None = None, source: str = ""):
        self.field = field
        self.line = line
        self.source = source
        where = f"{source}:{line}: " if source and line else (f"line {line}: " if line else "")
        super().__init__(f"{where}{field + ': ' if field else ''}{message}")


# --------------------------------------------------------------------------- parameters


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise ScenarioError(message, name)


def _finite(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
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
        _check(isinstance(self.name, str) and bool(self.name), "name", "must be a non-empty string")
        _finite(self.lat, "lat", -90, 90)
        _finite(self.lng, "lng", -180, 180)
        _finite(self.radius_km, "radius_km", 0, 100)
        _finite(self.demand_weight, "demand_weight", 0)


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
        _check(isinstance(self.name, str) and bool(self.name), "name", "must be a non-empty string")
        _check(isinstance(self.skill, str) and bool(self.skill), "skill", "must be a skill name")
        _finite(self.duration_min, "duration_min", 1)
        _finite(self.duration_cv, "duration_cv", 0, 3)
        _check(
            self.distribution in ("lognormal", "exponential", "fixed"),
            "distribution",
            f"must be lognormal, exponential or fixed, got {self.distribution!r}",
        )
        _finite(self.share, "share", 0)
        _finite(self.booked_share, "booked_share", 0, 1)
        _finite(self.lead_time_h, "lead_time_h", 0)
        _finite(self.price_yuan, "price_yuan", 0)


def _parse_hhmm(text: Any, name: str) -> float:
    if isinstance(text, int | float) and not isinstance(text, bool):
        return _finite(text, name, 0, 48)
    if not isinstance(text, str) or ":" not in text:
        raise ScenarioError(f"must be HH:MM, got {text!r}", name)
    hh, mm = text.strip().split(":", 1)
    try:
        hours = int(hh) + int(mm) / 60.0
    except ValueError:
        raise ScenarioError(f"must be HH:MM, got {text!r}", name) from None
    return _finite(hours, name, 0, 48)


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
        _check(
            isinstance(self.count, int) and not isinstance(self.count, bool) and self.count >= 0,
            "count",
            f"must be an integer >= 0, got {self.count!r}",
        )
        _finite(self.shift_start_h, "shift", 0, 48)
        _finite(self.shift_end_h, "shift", 0, 48)
        _check(
            self.shift_end_h > self.shift_start_h,
            "shift",
            f"ends ({self.shift_end_h:g} h) before it starts ({self.shift_start_h:g} h); "
            "write overnight shifts with hours past 24, e.g. 22:00-30:00",
        )
        _check(bool(self.skills), "skills", "must list at least one skill")
        _check(self.mode in TRANSPORT_MODES, "mode", f"must be one of {TRANSPORT_MODES}")
        _finite(self.decline_prob, "decline_prob", 0, 1)
        _finite(self.response_s, "response_s", 0)
        _finite(self.rating, "rating", 0, 5)


@dataclass(frozen=True)
class Demand:
    """Orders per day before weekday and sweep multipliers; 24 hourly weights (local time)."""

    orders_per_day: float
    hourly_profile: tuple[float, ...]
    weekday_multiplier: Mapping[str, float] = field(
        default_factory=lambda: dict.fromkeys(WEEKDAYS, 1.0)
    )

    def __post_init__(self) -> None:
        _finite(self.orders_per_day, "orders_per_day", 0)
        _check(
            len(self.hourly_profile) == 24,
            "hourly_profile",
            f"must hold 24 hourly weights, got {len(self.hourly_profile)}",
        )
        for h, w in enumerate(self.hourly_profile):
            _finite(w, f"hourly_profile[{h}]", 0)
        _check(sum(self.hourly_profile) > 0, "hourly_profile", "must have a positive weight")
        for k, v in self.weekday_multiplier.items():
            _check(k in WEEKDAYS, f"weekday_multiplier.{k}", f"must be one of {WEEKDAYS}")
            _finite(v, f"weekday_multiplier.{k}", 0)


@dataclass(frozen=True)
class Customers:
    """Customer behaviour: patience, promises and cancellations (minutes unless named)."""

    patience_min: float = 45.0  # mean wait before an unassigned on-demand order is cancelled
    promise_min: float = 60.0  # on-demand orders are promised a start within this
    grace_min: float = 5.0  # a start this late still counts as on time
    cancel_booked_prob: float = 0.03  # booked orders cancelled before their start
    slot_min: float = 30.0  # a booked slot: the worker arrives and starts within this window

    def __post_init__(self) -> None:
        _finite(self.patience_min, "patience_min", 0)
        _finite(self.promise_min, "promise_min", 0)
        _finite(self.grace_min, "grace_min", 0)
        _finite(self.cancel_booked_prob, "cancel_booked_prob", 0, 1)
        _finite(self.slot_min, "slot_min", 1, 24 * 60)


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
        _finite(self.sick_prob, "sick_prob", 0, 1)
        _finite(self.delay_prob, "delay_prob", 0, 1)
        _finite(self.delay_mean_min, "delay_mean_min", 0, 24 * 60)


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
        _check(bool(self.districts), "districts", "must list at least one district")
        _check(bool(self.services), "services", "must list at least one service")
        names = [d.name for d in self.districts]
        for i, n in enumerate(names):
            _check(names.index(n) == i, f"districts[{i}].name", f"duplicates {n!r}")
        for i, g in enumerate(self.workers):
            _check(
                g.district in names,
                f"workers[{i}].district",
                f"unknown district {g.district!r} (known: {', '.join(names)})",
            )
        _check(sum(s.share for s in self.services) > 0, "services", "need a positive share")
        _check(sum(d.demand_weight for d in self.districts) > 0, "districts", "no demand weight")
        _finite(self.utc_offset_h, "utc_offset_h", -14, 14)

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


# --------------------------------------------------------------------------- loading


def _line_map(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every key path of a composed YAML tree to its 1-based line number."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            out[sub] = key.start_mark.line + 1
            for k, v in _line_map(value, sub).items():
                out.setdefault(k, v)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_line_map(item, (*path, i)))
    return out


def _path_of(field_name: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for chunk in field_name.replace("]", "").split("."):
        name, *idx = chunk.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in idx)
    return tuple(parts)


def _build(cls: type[Any], raw: Any, where: str, **extra: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"must be a mapping, got {type(raw).__name__}", where)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known - set(extra))
    if unknown:
        raise ScenarioError(
            f"unknown field(s) {unknown}; known: {sorted(known)}", f"{where}.{unknown[0]}"
        )
    try:
        return cls(**{**{k: v for k, v in raw.items() if k not in extra}, **extra})
    except ScenarioError as exc:
        raise ScenarioError(str(exc.args[0]).split(": ", 1)[-1], f"{where}.{exc.field}") from None
    except TypeError as exc:
        raise ScenarioError(str(exc), where) from None


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """Build and validate a Scenario from plain data (as in the YAML/JSON file)."""
    if not isinstance(data, Mapping):
        raise ScenarioError("the scenario must be a mapping at top level")
    allowed = {f.name for f in fields(Scenario)} | {"date"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(f"unknown field(s) {unknown}", str(unknown[0]))
    for key in ("districts", "services", "workers", "demand"):
        if key not in data:
            raise ScenarioError("is required", key)
    districts = tuple(
        _build(District, d, f"districts[{i}]") for i, d in enumerate(data["districts"] or [])
    )
    services = tuple(
        _build(ServiceType, s, f"services[{i}]") for i, s in enumerate(data["services"] or [])
    )
    groups: list[WorkerGroup] = []
    for i, g in enumerate(data["workers"] or []):
        where = f"workers[{i}]"
        if not isinstance(g, Mapping):
            raise ScenarioError("must be a mapping", where)
        shift = g.get("shift", "08:00-18:00")
        if not isinstance(shift, str) or "-" not in shift:
            raise ScenarioError(f"must be 'HH:MM-HH:MM', got {shift!r}", f"{where}.shift")
        start_txt, end_txt = shift.split("-", 1)
        skills = g.get("skills", ())
        if isinstance(skills, str) or not isinstance(skills, Sequence):
            raise ScenarioError("must be a list of skill names", f"{where}.skills")
        rest = {k: v for k, v in g.items() if k not in ("shift", "skills")}
        groups.append(
            _build(
                WorkerGroup,
                rest,
                where,
                shift_start_h=_parse_hhmm(start_txt, f"{where}.shift"),
                shift_end_h=_parse_hhmm(end_txt, f"{where}.shift"),
                skills=tuple(skills),
            )
        )
    raw_demand = data["demand"]
    if not isinstance(raw_demand, Mapping):
        raise ScenarioError("must be a mapping", "demand")
    demand = _build(
        Demand,
        {k: v for k, v in raw_demand.items() if k != "hourly_profile"},
        "demand",
        hourly_profile=tuple(raw_demand.get("hourly_profile", ())),
    )
    customers = _build(Customers, data.get("customers") or {}, "customers")
    disruptions = _build(Disruptions, data.get("disruptions") or {}, "disruptions")
    raw_day = data.get("date", data.get("day", "2026-11-28"))
    try:
        day = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day))
    except ValueError:
        raise ScenarioError(f"must be an ISO date, got {raw_day!r}", "date") from None
    dispatch = data.get("dispatch") or {}
    if not isinstance(dispatch, Mapping):
        raise ScenarioError("must be a mapping", "dispatch")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ScenarioError(f"must be an integer >= 0, got {seed!r}", "seed")
    known_skills = {s.skill for s in services}
    for i, g in enumerate(groups):
        for j, sk in enumerate(g.skills):
            if not isinstance(sk, str) or not sk:
                raise ScenarioError("must be a skill name", f"workers[{i}].skills[{j}]")
    del known_skills  # workers may have skills no service needs
    return Scenario(
        name=str(data.get("name", "scenario")),
        day=day,
        districts=districts,
        services=services,
        workers=tuple(groups),
        demand=demand,
        customers=customers,
        dispatch=dict(dispatch),
        disruptions=disruptions,
        seed=seed,
        utc_offset_h=data.get("utc_offset_h", 8.0),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Load a YAML or JSON scenario; errors are ScenarioError naming the field and line."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(
            f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}",
            line=(mark.line + 1) if mark is not None else None,
            source=str(p),
        ) from None
    lines = _line_map(node) if node is not None else {}
    try:
        scenario = scenario_from_dict(data if data is not None else {})
        # The dispatch section is the engine's Policy: validate it here too, so its
        # errors carry line numbers like the rest (imported late: engine imports city).
        from simulations.engine import Policy

        Policy.from_dict(scenario.dispatch)
        return scenario
    except ScenarioError as exc:
        path_t = _path_of(exc.field)
        line = None
        while path_t and line is None:
            line = lines.get(path_t)
            path_t = path_t[:-1]
        message = str(exc.args[0])
        if exc.field and message.startswith(f"{exc.field}: "):
            message = message[len(exc.field) + 2 :]
        raise ScenarioError(message, exc.field, line, str(p)) from None


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Plain-data form of a scenario (round-trips through ``scenario_from_dict``)."""

    def hhmm(h: float) -> str:
        return f"{int(h):02d}:{round((h % 1) * 60):02d}"

    return {
        "name": s.name,
        "date": s.day.isoformat(),
        "seed": s.seed,
        "utc_offset_h": s.utc_offset_h,
        "districts": [{f.name: getattr(d, f.name) for f in fields(District)} for d in s.districts],
        "services": [{f.name: getattr(v, f.name) for f in fields(ServiceType)} for v in s.services],
        "workers": [
            {
                "district": g.district,
                "count": g.count,
                "shift": f"{hhmm(g.shift_start_h)}-{hhmm(g.shift_end_h)}",
                "skills": list(g.skills),
                "mode": g.mode,
                "decline_prob": g.decline_prob,
                "response_s": g.response_s,
                "rating": g.rating,
            }
            for g in s.workers
        ],
        "demand": {
            "orders_per_day": s.demand.orders_per_day,
            "hourly_profile": list(s.demand.hourly_profile),
            "weekday_multiplier": dict(s.demand.weekday_multiplier),
        },
        "customers": {f.name: getattr(s.customers, f.name) for f in fields(Customers)},
        "dispatch": dict(s.dispatch),
        "disruptions": {f.name: getattr(s.disruptions, f.name) for f in fields(Disruptions)},
    }


# --------------------------------------------------------------------------- fitting


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


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True, eq=False)
class CityDay:
    """One generated day: orders and workers as parallel arrays (see module docstring).

    Orders: ``created_s`` when placed (booked: when booked, ``booked_start_s`` the slot's
    start); ``release_s`` when the order enters on-demand dispatch (on demand: when placed;
    booked: ``dispatch_ahead_s`` before its start, used when no day plan holds it);
    ``promised_s`` the latest start the customer was promised (booked: the slot's end);
    ``cancel_at_s`` when the customer would cancel if still unassigned (NEVER: patient);
    ``delay_s`` extra seconds the trip to it runs late (0: on time). Workers: home
    position, shift, skills mask, mode code, decline probability, mean response seconds
    and ``sick_at_s`` when they call in sick (NEVER: they do not).
    """

    name: str
    seed: int
    day_start_s: int
    skills: tuple[str, ...]
    district_names: tuple[str, ...]
    service_names: tuple[str, ...]
    # orders
    order_ids: IntArray
    created_s: IntArray
    release_s: IntArray
    promised_s: IntArray
    booked_start_s: IntArray
    lat: FloatArray
    lng: FloatArray
    district: IntArray
    service: IntArray
    required_skills: NDArray[np.uint64]
    expected_service_s: IntArray
    actual_service_s: IntArray
    cancel_at_s: IntArray
    price_fen: IntArray
    # workers
    worker_ids: IntArray
    home_lat: FloatArray
    home_lng: FloatArray
    home_district: IntArray
    shift_start_s: IntArray
    shift_end_s: IntArray
    worker_skills: NDArray[np.uint64]
    mode: NDArray[np.uint8]
    decline_prob: FloatArray
    response_mean_s: FloatArray
    rating: FloatArray
    grace_s: int = 300
    end_s: int = 0
    delay_s: IntArray | None = None
    sick_at_s: IntArray | None = None

    def __post_init__(self) -> None:
        n = self.order_ids.shape[0]
        m = self.worker_ids.shape[0]
        # Days written before disruptions existed: nobody runs late or calls in sick.
        if self.delay_s is None:
            object.__setattr__(self, "delay_s", np.zeros(n, dtype=np.int64))
        if self.sick_at_s is None:
            object.__setattr__(self, "sick_at_s", np.full(m, NEVER, dtype=np.int64))
        order_fields = [
            "created_s",
            "release_s",
            "promised_s",
            "booked_start_s",
            "lat",
            "lng",
            "district",
            "service",
            "required_skills",
            "expected_service_s",
            "actual_service_s",
            "cancel_at_s",
            "price_fen",
            "delay_s",
        ]
        for name in order_fields:
            if getattr(self, name).shape != (n,):
                raise ScenarioError(f"must have one entry per order ({n})", name)
        worker_fields = [
            "home_lat",
            "home_lng",
            "home_district",
            "shift_start_s",
            "shift_end_s",
            "worker_skills",
            "mode",
            "decline_prob",
            "response_mean_s",
            "rating",
            "sick_at_s",
        ]
        for name in worker_fields:
            if getattr(self, name).shape != (m,):
                raise ScenarioError(f"must have one entry per worker ({m})", name)
        if n and bool(np.any(np.asarray(self.delay_s) < 0)):
            raise ScenarioError("must be >= 0 s", "delay_s")
        if n and (self.actual_service_s < 1).any():
            raise ScenarioError("must be >= 1 s", "actual_service_s")
        if m and (self.shift_end_s <= self.shift_start_s).any():
            i = int(np.flatnonzero(self.shift_end_s <= self.shift_start_s)[0])
            raise ScenarioError("shift ends before it starts", f"shift_end_s[{i}]")

    @property
    def n_orders(self) -> int:
        """Number of orders."""
        return int(self.order_ids.shape[0])

    @property
    def n_workers(self) -> int:
        """Number of workers."""
        return int(self.worker_ids.shape[0])

    def to_json(self) -> dict[str, Any]:
        """Plain-data form (lists) for the replay log."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CityDay:
        """Rebuild from ``to_json`` output."""
        kinds: dict[str, Any] = {
            "lat": np.float64, "lng": np.float64, "home_lat": np.float64,
            "home_lng": np.float64, "decline_prob": np.float64, "response_mean_s": np.float64,
            "rating": np.float64, "required_skills": np.uint64, "worker_skills": np.uint64,
            "mode": np.uint8,
        }  # fmt: skip
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            v = data.get(f.name)  # None: a field added since the log was written
            if isinstance(v, list) and f.name not in ("skills", "district_names", "service_names"):
                kwargs[f.name] = np.asarray(v, dtype=kinds.get(f.name, np.int64))
            elif isinstance(v, list):
                kwargs[f.name] = tuple(v)
            else:
                kwargs[f.name] = v
        return cls(**kwargs)


def _disk_points(
    rng: np.random.Generator, lat: FloatArray, lng: FloatArray, radius_m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Uniform points in disks (centres in degrees, radii in metres), small-area approx."""
    r = radius_m * np.sqrt(rng.random(lat.shape[0]))
    theta = rng.random(lat.shape[0]) * 2 * np.pi
    dlat = np.degrees(r * np.sin(theta) / EARTH_RADIUS_M)
    dlng = np.degrees(r * np.cos(theta) / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    return lat + dlat, lng + dlng


def _durations(
    rng: np.random.Generator, mean_s: FloatArray, cv: FloatArray, dist: NDArray[np.str_]
) -> IntArray:
    """Actual durations: lognormal with mean and cv, exponential, or fixed (seconds, >= 1)."""
    sigma = np.sqrt(np.log1p(cv**2))
    logn = mean_s * np.exp(sigma * rng.standard_normal(mean_s.shape[0]) - sigma**2 / 2)
    expo = rng.exponential(1.0, mean_s.shape[0]) * mean_s
    out = np.where(dist == "exponential", expo, np.where(dist == "fixed", mean_s, logn))
    return np.maximum(np.rint(out), 1).astype(np.int64)


def generate(
    scenario: Scenario,
    seed: int | None = None,
    *,
    dispatch_ahead_s: int = 3600,
) -> CityDay:
    """Generate the city day of ``scenario`` with ``seed`` (default: the scenario's seed).

    Orders are a piecewise-constant Poisson process by local hour (rate = orders_per_day ×
    weekday multiplier × hourly weight × district weight); booked orders' hours are their
    start hours, rounded down to half-hour slots. Vectorised; deterministic given the seed.
    """
    seed = scenario.seed if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    day0 = scenario.day_start_s
    catalog = scenario.skills()
    dem = scenario.demand
    rate = dem.orders_per_day * float(dem.weekday_multiplier.get(scenario.weekday, 1.0))
    profile = np.asarray(dem.hourly_profile, dtype=np.float64)
    profile = profile / profile.sum()
    weights = np.asarray([d.demand_weight for d in scenario.districts], dtype=np.float64)
    weights = weights / weights.sum()
    lam = rate * profile[:, None] * weights[None, :]  # (24 hours, districts)
    counts = rng.poisson(lam)
    hour = np.repeat(np.repeat(np.arange(24), counts.shape[1]), counts.ravel())
    dist_idx = np.repeat(np.tile(np.arange(counts.shape[1]), 24), counts.ravel())
    n = hour.shape[0]
    t_in_day = hour * 3600 + rng.integers(0, 3600, n)
    shares = np.asarray([s.share for s in scenario.services], dtype=np.float64)
    svc = rng.choice(len(shares), size=n, p=shares / shares.sum())
    services = scenario.services
    booked_p = np.asarray([s.booked_share for s in services])[svc]
    booked = rng.random(n) < booked_p
    mean_s = np.asarray([s.duration_min * 60.0 for s in services])[svc]
    cv = np.asarray([s.duration_cv for s in services])[svc]
    kind = np.asarray([s.distribution for s in services])[svc]
    actual = _durations(rng, mean_s, cv, kind)
    lead = rng.exponential(1.0, n) * np.asarray([s.lead_time_h * 3600 for s in services])[svc]
    start_slot = (t_in_day // 1800) * 1800
    created = np.where(booked, day0 + start_slot - np.maximum(lead, 3600), day0 + t_in_day)
    created = created.astype(np.int64)
    booked_start = np.where(booked, day0 + start_slot, NOT_BOOKED).astype(np.int64)
    cust = scenario.customers
    slot_s = round(cust.slot_min * 60)
    promised = np.where(booked, booked_start + slot_s, created + int(cust.promise_min * 60)).astype(
        np.int64
    )
    release = np.where(booked, np.maximum(booked_start - dispatch_ahead_s, created), created)
    patience = rng.exponential(1.0, n) * cust.patience_min * 60.0
    cancels_booked = rng.random(n) < cust.cancel_booked_prob
    booked_cancel_at = created + rng.random(n) * (booked_start - created)
    cancel_f = np.where(
        booked,
        np.where(cancels_booked, booked_cancel_at, np.inf),
        created + patience if cust.patience_min > 0 else np.full(n, np.inf),
    )
    # int64 max as float rounds up past int64: map "never" explicitly, not by casting.
    cancel_at = np.full(n, NEVER, dtype=np.int64)
    finite = np.isfinite(cancel_f)
    cancel_at[finite] = np.floor(cancel_f[finite]).astype(np.int64)
    d_lat = np.asarray([d.lat for d in scenario.districts])
    d_lng = np.asarray([d.lng for d in scenario.districts])
    d_rad = np.asarray([d.radius_km * 1000.0 for d in scenario.districts])
    lat, lng = _disk_points(rng, d_lat[dist_idx], d_lng[dist_idx], d_rad[dist_idx])
    order = np.lexsort((np.arange(n), release))
    skill_of_svc = np.asarray([1 << catalog.bit(s.skill) for s in services], dtype=np.uint64)
    price = np.asarray([round(s.price_yuan * 100) for s in services], dtype=np.int64)[svc]

    groups = [g for g in scenario.workers if g.count > 0]
    g_count = np.asarray([g.count for g in groups], dtype=np.int64)
    g_of = np.repeat(np.arange(len(groups)), g_count)
    m = g_of.shape[0]
    name_idx = {d.name: i for i, d in enumerate(scenario.districts)}
    g_dist = np.asarray([name_idx[g.district] for g in groups], dtype=np.int64)[g_of]
    h_lat, h_lng = _disk_points(rng, d_lat[g_dist], d_lng[g_dist], d_rad[g_dist])

    def per_group(values: list[Any], dtype: Any) -> NDArray[Any]:
        return np.asarray(values, dtype=dtype)[g_of] if m else np.zeros(0, dtype=dtype)

    end_s = day0 + SECONDS_PER_DAY
    shift_start = per_group([day0 + round(g.shift_start_h * 3600) for g in groups], np.int64)
    shift_end = per_group([day0 + round(g.shift_end_h * 3600) for g in groups], np.int64)
    # Disruptions from their own stream: adding them leaves every draw above unchanged.
    dis = scenario.disruptions
    rng2 = np.random.default_rng([seed, 1])
    late = rng2.random(n) < dis.delay_prob
    delay = np.where(late, np.ceil(rng2.exponential(1.0, n) * dis.delay_mean_min * 60), 0)
    sick = rng2.random(m) < dis.sick_prob
    sick_from = shift_start - 3600 + rng2.random(m) * ((shift_end - shift_start) / 2 + 3600)
    sick_at = np.where(sick, np.floor(sick_from), 0).astype(np.int64)
    sick_at[~sick] = NEVER
    return CityDay(
        name=scenario.name,
        seed=seed,
        day_start_s=day0,
        skills=catalog.names,
        district_names=tuple(d.name for d in scenario.districts),
        service_names=tuple(s.name for s in services),
        order_ids=np.arange(1, n + 1, dtype=np.int64),
        created_s=created[order],
        release_s=release[order].astype(np.int64),
        promised_s=promised[order],
        booked_start_s=booked_start[order],
        lat=lat[order],
        lng=lng[order],
        district=dist_idx[order].astype(np.int64),
        service=svc[order].astype(np.int64),
        required_skills=skill_of_svc[svc][order],
        expected_service_s=np.rint(mean_s[order]).astype(np.int64),
        actual_service_s=actual[order],
        cancel_at_s=cancel_at[order],
        price_fen=price[order],
        worker_ids=np.arange(1, m + 1, dtype=np.int64),
        home_lat=h_lat,
        home_lng=h_lng,
        home_district=g_dist,
        shift_start_s=shift_start,
        shift_end_s=shift_end,
        worker_skills=per_group([catalog.mask(g.skills) for g in groups], np.uint64),
        mode=per_group([TRANSPORT_MODES.index(g.mode) for g in groups], np.uint8),
        decline_prob=per_group([g.decline_prob for g in groups], np.float64),
        response_mean_s=per_group([g.response_s for g in groups], np.float64),
        rating=per_group([g.rating for g in groups], np.float64),
        grace_s=round(cust.grace_min * 60),
        end_s=int(max(end_s, int(shift_end.max()) if m else end_s)),
        delay_s=delay.astype(np.int64)[order],
        sick_at_s=sick_at,
    )


def dump_scenario(s: Scenario, path: str | Path) -> None:
    """Write a scenario as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
    p = Path(path)
    data = scenario_to_dict(s)
    if p.suffix in (".yaml", ".yml"):
        p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    else:
        p.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def queue_city(
    arrival_rate_per_h: float,
    mean_service_s: float,
    workers: int,
    orders: int,
    seed: int = 0,
    *,
    lat: float = 31.2304,
    lng: float = 121.4737,
    day: date = date(2026, 11, 28),
) -> CityDay:
    """A single-point M/M/c city: Poisson arrivals, exponential services, no travel.

    ``orders`` arrivals at ``arrival_rate_per_h`` (times floored to whole seconds, as
    the engine's clock ticks in seconds), services exponential with mean
    ``mean_service_s`` (rounded, >= 1 s), ``workers`` identical workers on shift from
    midnight until every order could be served; everyone at one point so travel is 0.
    Customers never cancel and never decline: the queue the Erlang-C formula describes.
    """
    if arrival_rate_per_h <= 0 or mean_service_s <= 0 or workers < 1 or orders < 1:
        raise ScenarioError("rates, workers and orders must be positive", "queue_city")
    rng = np.random.default_rng(seed)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    day0 = int(midnight.timestamp()) - 8 * 3600
    gaps = rng.exponential(3600.0 / arrival_rate_per_h, orders)
    arrive = day0 + np.floor(np.cumsum(gaps)).astype(np.int64)
    service = np.maximum(np.rint(rng.exponential(mean_service_s, orders)), 1).astype(np.int64)
    horizon_end = int(arrive[-1] + service.sum() + 1)
    zeros_i = np.zeros(orders, dtype=np.int64)
    return CityDay(
        name=f"mmc_{workers}",
        seed=seed,
        day_start_s=day0,
        skills=("any",),
        district_names=("zone",),
        service_names=("service",),
        order_ids=np.arange(1, orders + 1, dtype=np.int64),
        created_s=arrive,
        release_s=arrive,
        promised_s=arrive,
        booked_start_s=np.full(orders, NOT_BOOKED, dtype=np.int64),
        lat=np.full(orders, lat),
        lng=np.full(orders, lng),
        district=zeros_i,
        service=zeros_i.copy(),
        required_skills=np.zeros(orders, dtype=np.uint64),
        expected_service_s=np.full(orders, max(round(mean_service_s), 1), dtype=np.int64),
        actual_service_s=service,
        cancel_at_s=np.full(orders, NEVER, dtype=np.int64),
        price_fen=np.full(orders, 10_000, dtype=np.int64),
        worker_ids=np.arange(1, workers + 1, dtype=np.int64),
        home_lat=np.full(workers, lat),
        home_lng=np.full(workers, lng),
        home_district=np.zeros(workers, dtype=np.int64),
        shift_start_s=np.full(workers, day0, dtype=np.int64),
        shift_end_s=np.full(workers, horizon_end, dtype=np.int64),
        worker_skills=np.ones(workers, dtype=np.uint64),
        mode=np.full(workers, TRANSPORT_MODES.index("ebike"), dtype=np.uint8),
        decline_prob=np.zeros(workers),
        response_mean_s=np.zeros(workers),
        rating=np.full(workers, 5.0),
        grace_s=0,
        end_s=horizon_end,
    )
