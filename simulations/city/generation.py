"""Generating a city day from a scenario and a seed, and the M/M/c queue city."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dispatch.model import TRANSPORT_MODES, SkillCatalog
from geo.projection import EARTH_RADIUS_M
from simulations.city.day import NEVER, NOT_BOOKED, CityDay, FloatArray, IntArray
from simulations.city.scenario import SECONDS_PER_DAY, Disruptions, Scenario, ScenarioError


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


@dataclass(frozen=True)
class _Orders:
    """The day's orders as drawn (not yet sorted by release): times in epoch seconds."""

    district: IntArray
    service: IntArray
    created: IntArray
    release: IntArray
    promised: IntArray
    booked_start: IntArray
    mean_s: FloatArray
    actual: IntArray
    cancel_at: IntArray


@dataclass(frozen=True)
class _Workers:
    """The day's workers, one row per worker in group order."""

    home_district: IntArray
    home_lat: FloatArray
    home_lng: FloatArray
    shift_start: IntArray
    shift_end: IntArray
    skills: NDArray[np.uint64]
    mode: NDArray[np.uint8]
    decline_prob: FloatArray
    response_mean_s: FloatArray
    rating: FloatArray


def _arrivals(rng: np.random.Generator, scenario: Scenario) -> tuple[IntArray, IntArray]:
    """Local hour and district of every order: Poisson counts per (hour, district)."""
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
    return hour, dist_idx


def _cancel_times(
    rng: np.random.Generator,
    scenario: Scenario,
    booked: NDArray[np.bool_],
    created: IntArray,
    booked_start: IntArray,
) -> IntArray:
    """When each customer would cancel: impatience on demand, a draw before a booked start."""
    cust = scenario.customers
    n = created.shape[0]
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
    return cancel_at


def _orders(
    rng: np.random.Generator,
    scenario: Scenario,
    hour: IntArray,
    dist_idx: IntArray,
    dispatch_ahead_s: int,
) -> _Orders:
    """Each order's service, booking, durations, promise, release and cancel time."""
    day0 = scenario.day_start_s
    n = hour.shape[0]
    t_in_day = hour * 3600 + rng.integers(0, 3600, n)
    shares = np.asarray([s.share for s in scenario.services], dtype=np.float64)
    svc: IntArray = np.asarray(rng.choice(len(shares), size=n, p=shares / shares.sum()))
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
    return _Orders(
        district=dist_idx,
        service=svc,
        created=created,
        release=release,
        promised=promised,
        booked_start=booked_start,
        mean_s=mean_s,
        actual=actual,
        cancel_at=_cancel_times(rng, scenario, booked, created, booked_start),
    )


def _district_disks(scenario: Scenario) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centre latitudes, longitudes (degrees) and radii (metres) of the districts."""
    d_lat = np.asarray([d.lat for d in scenario.districts])
    d_lng = np.asarray([d.lng for d in scenario.districts])
    d_rad = np.asarray([d.radius_km * 1000.0 for d in scenario.districts])
    return d_lat, d_lng, d_rad


def _workers(
    rng: np.random.Generator,
    scenario: Scenario,
    catalog: SkillCatalog,
    disks: tuple[FloatArray, FloatArray, FloatArray],
) -> _Workers:
    """Every worker of every non-empty group: a home in the group's district, its shift."""
    day0 = scenario.day_start_s
    d_lat, d_lng, d_rad = disks
    groups = [g for g in scenario.workers if g.count > 0]
    g_count = np.asarray([g.count for g in groups], dtype=np.int64)
    g_of = np.repeat(np.arange(len(groups)), g_count)
    m = g_of.shape[0]
    name_idx = {d.name: i for i, d in enumerate(scenario.districts)}
    g_dist = np.asarray([name_idx[g.district] for g in groups], dtype=np.int64)[g_of]
    h_lat, h_lng = _disk_points(rng, d_lat[g_dist], d_lng[g_dist], d_rad[g_dist])

    def per_group(values: list[Any], dtype: Any) -> NDArray[Any]:
        return np.asarray(values, dtype=dtype)[g_of] if m else np.zeros(0, dtype=dtype)

    return _Workers(
        home_district=g_dist,
        home_lat=h_lat,
        home_lng=h_lng,
        shift_start=per_group([day0 + round(g.shift_start_h * 3600) for g in groups], np.int64),
        shift_end=per_group([day0 + round(g.shift_end_h * 3600) for g in groups], np.int64),
        skills=per_group([catalog.mask(g.skills) for g in groups], np.uint64),
        mode=per_group([TRANSPORT_MODES.index(g.mode) for g in groups], np.uint8),
        decline_prob=per_group([g.decline_prob for g in groups], np.float64),
        response_mean_s=per_group([g.response_s for g in groups], np.float64),
        rating=per_group([g.rating for g in groups], np.float64),
    )


def _disruptions(
    rng2: np.random.Generator, dis: Disruptions, n: int, workers: _Workers
) -> tuple[IntArray, IntArray]:
    """Each order's trip delay (s) and each worker's sick call time (NEVER: stays well)."""
    m = workers.shift_start.shape[0]
    shift_start, shift_end = workers.shift_start, workers.shift_end
    late = rng2.random(n) < dis.delay_prob
    delay = np.where(late, np.ceil(rng2.exponential(1.0, n) * dis.delay_mean_min * 60), 0)
    sick = rng2.random(m) < dis.sick_prob
    sick_from = shift_start - 3600 + rng2.random(m) * ((shift_end - shift_start) / 2 + 3600)
    sick_at = np.where(sick, np.floor(sick_from), 0).astype(np.int64)
    sick_at[~sick] = NEVER
    return delay.astype(np.int64), sick_at


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
    services = scenario.services
    hour, dist_idx = _arrivals(rng, scenario)
    orders = _orders(rng, scenario, hour, dist_idx, dispatch_ahead_s)
    n = hour.shape[0]
    disks = _district_disks(scenario)
    lat, lng = _disk_points(rng, *(a[dist_idx] for a in disks))
    order = np.lexsort((np.arange(n), orders.release))
    skill_of_svc = np.asarray([1 << catalog.bit(s.skill) for s in services], dtype=np.uint64)
    price = np.asarray([round(s.price_yuan * 100) for s in services], dtype=np.int64)
    workers = _workers(rng, scenario, catalog, disks)
    m = workers.shift_start.shape[0]
    end_s = day0 + SECONDS_PER_DAY
    # Disruptions from their own stream: adding them leaves every draw above unchanged.
    rng2 = np.random.default_rng([seed, 1])
    delay, sick_at = _disruptions(rng2, scenario.disruptions, n, workers)
    return CityDay(
        name=scenario.name,
        seed=seed,
        day_start_s=day0,
        skills=catalog.names,
        district_names=tuple(d.name for d in scenario.districts),
        service_names=tuple(s.name for s in services),
        order_ids=np.arange(1, n + 1, dtype=np.int64),
        created_s=orders.created[order],
        release_s=orders.release[order].astype(np.int64),
        promised_s=orders.promised[order],
        booked_start_s=orders.booked_start[order],
        lat=lat[order],
        lng=lng[order],
        district=dist_idx[order].astype(np.int64),
        service=orders.service[order].astype(np.int64),
        required_skills=skill_of_svc[orders.service][order],
        expected_service_s=np.rint(orders.mean_s[order]).astype(np.int64),
        actual_service_s=orders.actual[order],
        cancel_at_s=orders.cancel_at[order],
        price_fen=price[orders.service][order],
        worker_ids=np.arange(1, m + 1, dtype=np.int64),
        home_lat=workers.home_lat,
        home_lng=workers.home_lng,
        home_district=workers.home_district,
        shift_start_s=workers.shift_start,
        shift_end_s=workers.shift_end,
        worker_skills=workers.skills,
        mode=workers.mode,
        decline_prob=workers.decline_prob,
        response_mean_s=workers.response_mean_s,
        rating=workers.rating,
        grace_s=round(scenario.customers.grace_min * 60),
        end_s=int(max(end_s, int(workers.shift_end.max()) if m else end_s)),
        delay_s=delay[order],
        sick_at_s=sick_at,
    )


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
