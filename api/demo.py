"""`daojia demo`: a walkthrough of the geo library a user can check by hand.

A mini-program sends a GCJ-02 point (what ``wx.getLocation({type: 'gcj02'})``
returns); we convert it to WGS-84 once at the edge, index it in H3, ask the
travel model for e-bike and car times to a second address in the morning
peak and the afternoon, and replay a ride through ``EtaTracker`` so the
displayed ETA can be watched counting down. Everything is deterministic
(fixed date and seed) and printed from the library's own results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

import numpy as np
from rich.console import Console
from rich.table import Table

from geo.cells import latlng_to_cells
from geo.coords import to_wgs84
from geo.eta import EtaConfig, EtaTracker, EtaUpdate
from geo.projection import EARTH_RADIUS_M, haversine_m
from geo.travel import HaversineTravelModel, TransportMode

#: GCJ-02 points as a WeChat mini-program reports them (degrees).
PEOPLES_SQUARE_GCJ02 = (31.231706, 121.472644)  # 人民广场, Huangpu
LUJIAZUI_GCJ02 = (31.239693, 121.499756)  # 陆家嘴, Pudong
H3_RES = 9
DEMO_DAY = date(2026, 1, 5)  # a Monday, so 08:30 is the morning peak
DEPARTURES = (time(8, 30), time(14, 0))
PING_EVERY_S = 10
ROW_EVERY_S = 120
GPS_NOISE_M = 12.0
SEED = 20260105


@dataclass(frozen=True)
class Place:
    """One address: its GCJ-02 input, WGS-84 conversion and H3 cell."""

    name: str
    gcj02: tuple[float, float]
    wgs84: tuple[float, float]
    shift_m: float
    cell: int


@dataclass(frozen=True)
class TravelRow:
    """Travel time of one mode at one local departure time."""

    mode: TransportMode
    local_departure: time
    seconds: float


@dataclass(frozen=True)
class RidePing:
    """One ping of the simulated ride and the tracker's answer."""

    elapsed_s: int
    update: EtaUpdate


@dataclass(frozen=True)
class GeoDemo:
    """Everything the demo prints, computed by the geo library."""

    origin: Place
    destination: Place
    great_circle_m: float
    travel: tuple[TravelRow, ...]
    ride: tuple[RidePing, ...]
    ride_departure: time
    ride_start_at: int


def local_epoch(day: date, at: time, utc_offset_s: int) -> int:
    """Epoch seconds of local wall-clock ``at`` on ``day`` at ``utc_offset_s`` east of UTC."""
    tz = timezone(timedelta(seconds=utc_offset_s))
    return int(datetime.combine(day, at, tzinfo=tz).astimezone(UTC).timestamp())


def _place(name: str, gcj02: tuple[float, float]) -> Place:
    lat, lng = to_wgs84(gcj02[0], gcj02[1], "gcj02")
    wgs84 = (float(lat), float(lng))
    shift_m = float(haversine_m(gcj02[0], gcj02[1], wgs84[0], wgs84[1]))
    cell = int(latlng_to_cells(wgs84[0], wgs84[1], H3_RES))
    return Place(name=name, gcj02=gcj02, wgs84=wgs84, shift_m=shift_m, cell=cell)


def _simulate_ride(
    model: HaversineTravelModel, origin: Place, destination: Place, departure: time
) -> tuple[RidePing, ...]:
    """An e-bike ride at the model's own pace with GPS noise, one GPS jump, and the dwell."""
    rng = np.random.default_rng(SEED)
    t0 = local_epoch(DEMO_DAY, departure, model.utc_offset_s)
    tracker = EtaTracker.start(
        model, *origin.wgs84, *destination.wgs84, t0, mode=TransportMode.EBIKE, config=EtaConfig()
    )
    # The rider follows the straight line at the model's road speed / detour, so
    # the model is right on average and only GPS noise disturbs the raw ETA.
    total_s = float(
        model.seconds(*origin.wgs84, *destination.wgs84, t0, mode=TransportMode.EBIKE)
    ) - model.overhead(TransportMode.EBIKE)
    pings: list[RidePing] = [RidePing(0, tracker.current())]
    m_per_deg_lat = math.pi * EARTH_RADIUS_M / 180
    m_per_deg_lng = m_per_deg_lat * math.cos(math.radians(origin.wgs84[0]))
    jump_at_s = 5 * 60
    elapsed = 0
    while not pings[-1].update.arrived and elapsed < 4 * total_s:
        elapsed += PING_EVERY_S
        share = min(1.0, elapsed / total_s) if total_s > 0 else 1.0
        lat = origin.wgs84[0] + share * (destination.wgs84[0] - origin.wgs84[0])
        lng = origin.wgs84[1] + share * (destination.wgs84[1] - origin.wgs84[1])
        north_m, east_m = rng.normal(0.0, GPS_NOISE_M, 2)
        lat += north_m / m_per_deg_lat
        lng += east_m / m_per_deg_lng
        if elapsed == jump_at_s:
            # A multipath fix 3 km off: the tracker must reject it and keep its estimate.
            lng += 3000.0 / m_per_deg_lng
        pings.append(RidePing(elapsed, tracker.update(lat, lng, t0 + elapsed, GPS_NOISE_M)))
    return tuple(pings)


def build_demo() -> GeoDemo:
    """Compute the walkthrough's numbers with the geo library (deterministic)."""
    origin = _place("人民广场 People's Sq.", PEOPLES_SQUARE_GCJ02)
    destination = _place("陆家嘴 Lujiazui", LUJIAZUI_GCJ02)
    model = HaversineTravelModel()
    travel: list[TravelRow] = []
    for mode in (TransportMode.EBIKE, TransportMode.CAR):
        for departure in DEPARTURES:
            at = local_epoch(DEMO_DAY, departure, model.utc_offset_s)
            seconds = float(model.seconds(*origin.wgs84, *destination.wgs84, at, mode=mode))
            travel.append(TravelRow(mode=mode, local_departure=departure, seconds=seconds))
    return GeoDemo(
        origin=origin,
        destination=destination,
        great_circle_m=float(haversine_m(*origin.wgs84, *destination.wgs84)),
        travel=tuple(travel),
        ride=_simulate_ride(model, origin, destination, DEPARTURES[0]),
        ride_departure=DEPARTURES[0],
        ride_start_at=local_epoch(DEMO_DAY, DEPARTURES[0], model.utc_offset_s),
    )


def fmt_deg(value: float) -> str:
    """Degrees as printed by the demo (6 decimals, about 0.1 m)."""
    return f"{value:.6f}"


def fmt_duration(seconds: float) -> str:
    """Seconds as ``m:ss``."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def fmt_cell(cell: int) -> str:
    """An H3 cell as its usual hexadecimal string."""
    return f"{cell:x}"


def _places_table(demo: GeoDemo) -> Table:
    table = Table(title="1. The edge: GCJ-02 in, WGS-84 inside, H3 cell")
    table.add_column("")
    places = (demo.origin, demo.destination)
    for place in places:
        table.add_column(place.name, justify="right", no_wrap=True)
    table.add_row(
        "GCJ-02 (wx.getLocation)",
        *(f"{fmt_deg(p.gcj02[0])}, {fmt_deg(p.gcj02[1])}" for p in places),
    )
    table.add_row(
        "WGS-84 (coords.to_wgs84)",
        *(f"{fmt_deg(p.wgs84[0])}, {fmt_deg(p.wgs84[1])}" for p in places),
    )
    table.add_row("GCJ-02 offset", *(f"{p.shift_m:.0f} m" for p in places))
    table.add_row(f"H3 cell, res {H3_RES}", *(fmt_cell(p.cell) for p in places))
    return table


def _travel_table(demo: GeoDemo) -> Table:
    table = Table(
        title=(f"2. Travel time (m:ss), {demo.great_circle_m:.0f} m apart"),
        caption="HaversineTravelModel defaults, local time UTC+8",
    )
    table.add_column("mode")
    for departure in DEPARTURES:
        table.add_column(f"leave {departure:%H:%M}", justify="right")
    for mode in (TransportMode.EBIKE, TransportMode.CAR):
        cells = [
            fmt_duration(row.seconds)
            for departure in DEPARTURES
            for row in demo.travel
            if row.mode is mode and row.local_departure == departure
        ]
        table.add_row(mode.value, *cells)
    return table


def _ride_table(demo: GeoDemo) -> Table:
    table = Table(
        title=(
            f"3. E-bike ride from {demo.ride_departure:%H:%M} (EtaTracker)\n"
            f"pings every {PING_EVERY_S} s, {GPS_NOISE_M:.0f} m GPS noise"
        )
    )
    for name in ("elapsed", "to go m", "progress", "raw ETA", "shown ETA", "note"):
        if name == "note":
            table.add_column(name)
        else:
            table.add_column(name, justify="right", no_wrap=True)
    last_index = len(demo.ride) - 1
    for index, ping in enumerate(demo.ride):
        update = ping.update
        keep = (
            ping.elapsed_s % ROW_EVERY_S == 0
            or update.rejected is not None
            or update.arrived
            or index == last_index
        )
        if not keep:
            continue
        if update.rejected is not None:
            reason = update.rejected.value.replace("impossible_", "")
            note = f"{reason} rejected, kept {fmt_duration(update.as_of - demo.ride_start_at)}"
        elif update.arrived:
            note = "arrived (dwell done)"
        else:
            note = ""
        table.add_row(
            fmt_duration(ping.elapsed_s),
            f"{update.distance_remaining_m:.0f}",
            f"{update.progress:.0%}",
            fmt_duration(update.raw_eta_s),
            fmt_duration(update.eta_s),
            note,
        )
    return table


def run_demo(console: Console) -> None:
    """Print the geo walkthrough to ``console`` (about a second, no I/O besides printing)."""
    demo = build_demo()
    console.print("[bold]daojia geo walkthrough[/bold] — every number below comes from geo/")
    console.print(_places_table(demo))
    console.print(_travel_table(demo))
    console.print(_ride_table(demo))
