"""A recorded production day as a replay log (``daojia export day``).

Input: the plain data ``api.dispatcher.export.recorded_day`` reads from the tables (as a
mapping: ``dataclasses.asdict`` of its ``RecordedDay``; this package does not import
``api``). Output: the JSON-lines log :mod:`simulations.replay` reads — a header with the
day as a :class:`~simulations.city.CityDay` and the policy production ran under, then
the day's events (release/book, offer, decline, timeout, grab_open, claim, assign,
start, done, cancel, escalate, shift_start, shift_end, end) — so ``daojia simulate
replay`` re-runs the real day under another policy.

How the tables become a simulated day:

- an order whose slot started more than the dispatch horizon after it was paid was
  booked ahead (``booked_start_s`` = its slot start, planned by the simulator); any other
  order entered dispatch when paid (on demand, ``release_s`` = paid). Either way its
  promised start is the latest on-time start production uses
  (``max(slot_start, slot_end - duration)``; ``grace_s`` 0);
- the actual service time is the recorded start-to-completion time (else the duration);
- a worker's shift is the span of their shifts on that weekday (no shifts: all day);
- a worker's decline probability and mean response time are estimated from their answers
  to auto offers (:func:`estimate_answers`), shrunk towards a prior when they are few;
- travel metres of a recorded job: the straight line from the worker's previous job that
  day (else home) × the travel model's detour for their mode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from dispatch.model import TRANSPORT_MODES, SkillCatalog
from dispatch.offers import DispatchMode, OfferPolicy
from dispatch.rounds import RoundParams
from geo.projection import haversine_m
from geo.travel import HaversineTravelModel
from simulations.city import NEVER, NOT_BOOKED, SECONDS_PER_DAY, CityDay
from simulations.engine import Policy

#: Prior of a worker's answers: decline probability and mean response seconds, each worth
#: this many observed answers (the simulator's defaults for a worker group).
PRIOR_DECLINE = 0.1
PRIOR_RESPONSE_S = 10.0
PRIOR_WEIGHT = 10.0

# Same-instant order of the events, as the engine handles them (its _Kind order).
_RANK = {
    "shift_start": -1, "done": 0, "start": 1, "assign": 2, "decline": 2, "claim": 3,
    "cancel": 4, "release": 7, "book": 8, "timeout": 12, "escalate": 12, "grab_open": 15,
    "offer": 15, "shift_end": 16,
}  # fmt: skip


@dataclass(frozen=True)
class AnswerEstimate:
    """A worker's estimated behaviour: decline probability and mean response seconds."""

    decline_prob: float
    response_mean_s: float


def estimate_answers(
    answered_s: Sequence[int], declined: int, expired: int, timeout_s: int
) -> AnswerEstimate:
    """Estimate a worker's answers from their recorded auto offers.

    ``answered_s`` seconds each accept or decline took, ``declined`` how many were
    declines, ``expired`` offers left unanswered until ``timeout_s``. Response times are
    exponential (as the simulator draws them) and censored at the timeout: the mean is
    (answered seconds + ``timeout_s`` per expired offer + the prior's) / (answers + the
    prior's weight). The decline probability among answers is shrunk the same way.
    """
    n = len(answered_s)
    decline = (declined + PRIOR_DECLINE * PRIOR_WEIGHT) / (n + PRIOR_WEIGHT)
    exposure = float(sum(answered_s)) + expired * timeout_s + PRIOR_RESPONSE_S * PRIOR_WEIGHT
    return AnswerEstimate(
        decline_prob=min(max(decline, 0.0), 1.0),
        response_mean_s=max(1.0, exposure / (n + PRIOR_WEIGHT)),
    )


def policy_of(day: Mapping[str, Any]) -> Policy:
    """The policy production ran the day under (platform knobs; enterprise boards aside)."""
    k = day["settings"]
    grab = int(k["grab_window_s"])
    return Policy(
        name="recorded",
        offer=OfferPolicy(
            mode=DispatchMode.GRAB if grab > 0 else DispatchMode.AUTO,
            accept_timeout_s=int(k["offer_timeout_s"]),
            grab_window_s=max(1, grab),
        ),
        batch_window_s=max(1, round(float(k["dispatch_tick_s"]))),
        max_batch=int(k["dispatch_batch_max"]),
        aging_per_hour=float(k["dispatch_aging_per_hour"]),
        max_lateness_s=int(k["dispatch_max_lateness_s"]),
        candidates_per_order=RoundParams().candidates_per_order,
        max_travel_s=float(k["dispatch_max_travel_s"]),
        grab_max_travel_s=float(k["dispatch_max_travel_s"]),
    )


def _shift(shifts: Sequence[Mapping[str, Any]], weekday: int, day0: int) -> tuple[int, int] | None:
    """The span of a worker's shifts on ``weekday`` (epoch s); all day without shifts."""
    if not shifts:
        return day0, day0 + SECONDS_PER_DAY
    today = [s for s in shifts if int(s.get("weekday", -1)) == weekday]
    if not today:
        return None
    start = min(int(s["start_min"]) for s in today)
    end = max(int(s["end_min"]) for s in today)
    return (day0 + start * 60, day0 + end * 60) if end > start else None


def _workers(
    day: Mapping[str, Any], involved: set[int]
) -> list[tuple[Mapping[str, Any], int, int]]:
    """The workers of the day with their shift: on shift that day, or met in its records."""
    weekday = date.fromisoformat(str(day["day"])).weekday()
    day0, day1 = int(day["day_start_s"]), int(day["day_end_s"])
    out = []
    for w in day["workers"]:
        span = _shift(w["shifts"], weekday, day0)
        if span is None and int(w["id"]) in involved:
            span = (day0, day1)  # off shift, yet worked: the records say so
        if span is not None:
            out.append((w, span[0], span[1]))
    return out


def city_of(day: Mapping[str, Any], *, seed: int = 0) -> CityDay:
    """The recorded day as a :class:`CityDay` (see the module docstring for the mapping)."""
    orders = list(day["orders"])
    involved = {int(o["worker_id"]) for o in day["offers"] if o["worker_id"] is not None}
    involved |= {int(w) for o in orders for _, w in o["assigned"]}
    workers = _workers(day, involved)
    services: Mapping[int, Any] = day["services"]
    names = sorted(
        {s for _, skills in services.values() for s in skills}
        | {s for w, _, _ in workers for s in w["skills"]}
    )[:64]
    catalog = SkillCatalog(tuple(names))
    svc_ids = sorted(services)
    horizon = int(day["settings"]["dispatch_horizon_s"])
    timeout = int(day["settings"]["offer_timeout_s"])
    n = len(orders)

    def col(fn: Any, dtype: Any = np.int64) -> Any:
        return np.asarray([fn(o) for o in orders], dtype=dtype).reshape(n)

    booked = col(lambda o: o["slot_start_s"] - o["paid_s"] > horizon, np.bool_)
    slot = col(lambda o: o["slot_start_s"])
    paid = col(lambda o: o["paid_s"])
    duration = col(lambda o: max(60, o["duration_s"]))
    latest = np.maximum(slot, col(lambda o: o["slot_end_s"]) - duration)
    actual = col(lambda o: _actual_s(o))
    actual = np.where(actual > 0, actual, duration)
    answers = [
        estimate_answers(w["answered_s"], w["declined"], w["expired"], timeout)
        for w, _, _ in workers
    ]
    m = len(workers)
    return CityDay(
        name=f"recorded {day['day']}",
        seed=seed,
        day_start_s=int(day["day_start_s"]),
        skills=catalog.names,
        district_names=("recorded",),
        service_names=tuple(services[s][0] for s in svc_ids),
        order_ids=col(lambda o: o["id"]),
        created_s=np.where(booked, col(lambda o: o["created_s"]), paid),
        release_s=np.where(booked, np.maximum(slot - horizon, paid), paid),
        promised_s=latest,
        booked_start_s=np.where(booked, slot, NOT_BOOKED),
        lat=col(lambda o: o["lat"], np.float64),
        lng=col(lambda o: o["lng"], np.float64),
        district=np.zeros(n, dtype=np.int64),
        service=col(lambda o: svc_ids.index(o["service_id"])),
        required_skills=catalog.masks(
            [[s for s in services[o["service_id"]][1] if s in names] for o in orders]
        ).reshape(n),
        expected_service_s=duration,
        actual_service_s=actual,
        cancel_at_s=col(lambda o: o["events"].get("cancelled", NEVER)),
        price_fen=col(lambda o: o["amount_fen"]),
        worker_ids=np.asarray([w["id"] for w, _, _ in workers], dtype=np.int64).reshape(m),
        home_lat=np.asarray([w["home_lat"] for w, _, _ in workers], dtype=np.float64).reshape(m),
        home_lng=np.asarray([w["home_lng"] for w, _, _ in workers], dtype=np.float64).reshape(m),
        home_district=np.zeros(m, dtype=np.int64),
        shift_start_s=np.asarray([a for _, a, _ in workers], dtype=np.int64).reshape(m),
        shift_end_s=np.asarray([b for _, _, b in workers], dtype=np.int64).reshape(m),
        worker_skills=catalog.masks(
            [[s for s in w["skills"] if s in names] for w, _, _ in workers]
        ).reshape(m),
        mode=np.asarray([_mode(w) for w, _, _ in workers], dtype=np.uint8).reshape(m),
        decline_prob=np.asarray([a.decline_prob for a in answers], dtype=np.float64).reshape(m),
        response_mean_s=np.asarray([a.response_mean_s for a in answers]).reshape(m),
        rating=np.asarray([w["rating"] for w, _, _ in workers], dtype=np.float64).reshape(m),
        grace_s=0,
        end_s=int(day["day_end_s"]),
    )


def _mode(worker: Mapping[str, Any]) -> int:
    mode = worker["transport_mode"]
    return TRANSPORT_MODES.index(mode if mode in TRANSPORT_MODES else "ebike")


def _actual_s(order: Mapping[str, Any]) -> int:
    ev = order["events"]
    if "started" in ev and "completed" in ev:
        return max(1, int(ev["completed"]) - int(ev["started"]))
    return 0


def events_of(day: Mapping[str, Any], city: CityDay) -> list[dict[str, Any]]:
    """The day's recorded events in the replay log's form, in time order."""
    out: list[dict[str, Any]] = []

    def add(kind: str, t: int, **data: Any) -> None:
        out.append({"t": int(t), "e": kind, **data})

    w_rows = {int(w): i for i, w in enumerate(city.worker_ids.tolist())}
    for w, i in w_rows.items():
        add("shift_start", int(city.shift_start_s[i]), w=w)
        add("shift_end", int(city.shift_end_s[i]), w=w)
    for i, o in enumerate(day["orders"]):
        if city.booked_start_s[i] != NOT_BOOKED:
            start, end = int(city.booked_start_s[i]), int(city.promised_s[i])
            add("book", int(city.created_s[i]), o=o["id"], start=start, end=end)
        else:
            add("release", int(city.release_s[i]), o=o["id"])
        if "cancelled" in o["events"]:
            add("cancel", o["events"]["cancelled"], o=o["id"])
    for f in day["offers"]:
        oid, wid = f["order_id"], f["worker_id"]
        if f["mode"] == "grab":
            add("grab_open", f["offered_s"], o=oid, shown=len(f["eligible"]))
            if f["state"] == "claimed" and wid is not None and f["decided_s"] is not None:
                add("claim", f["decided_s"], o=oid, w=wid)
            continue
        add("offer", f["offered_s"], o=oid, w=wid)
        if f["state"] == "declined":
            add("decline", f["decided_s"] or f["offered_s"], o=oid, w=wid)
        elif f["state"] == "expired":
            add("timeout", f["decided_s"] or f["expires_s"], o=oid, w=wid)
    for t, oid, reason in day["escalations"]:
        add("escalate", t, o=oid, reason=reason)
    out.extend(_jobs(day, city, w_rows))
    out.sort(key=lambda ev: (ev["t"], _RANK.get(ev["e"], 10)))
    return out


def _jobs(day: Mapping[str, Any], city: CityDay, w_rows: Mapping[int, int]) -> list[dict[str, Any]]:
    """assign, start and done of each order a worker took (one worker: the last assigned)."""
    travel = HaversineTravelModel()
    where = {w: (float(city.home_lat[i]), float(city.home_lng[i])) for w, i in w_rows.items()}
    taken = sorted(
        (o["assigned"][0][0], i, o) for i, o in enumerate(day["orders"]) if o["assigned"]
    )
    out: list[dict[str, Any]] = []
    for at, _, o in taken:
        wid = int(o["assigned"][-1][1])
        if wid not in w_rows:
            continue
        ev = o["events"]
        arrived = ev.get("arrived", ev.get("started"))
        lat, lng = where[wid]
        metres = float(haversine_m(lat, lng, o["lat"], o["lng"]))
        mode = TRANSPORT_MODES[int(city.mode[w_rows[wid]])]
        out.append(
            {
                "t": int(at), "e": "assign", "o": o["id"], "w": wid,
                "travel_s": float(max(0, int(arrived) - int(at))) if arrived else 0.0,
                "travel_m": round(metres * travel.detour(mode), 1),
            }
        )  # fmt: skip
        if "started" in ev:
            out.append({"t": int(ev["started"]), "e": "start", "o": o["id"]})
        if "completed" in ev:
            out.append({"t": int(ev["completed"]), "e": "done", "o": o["id"]})
            where[wid] = (float(o["lat"]), float(o["lng"]))
    return out


def write_log(day: Mapping[str, Any], path: str | Path, *, seed: int = 0) -> CityDay:
    """Write the recorded ``day`` as a replay log at ``path``; returns its CityDay."""
    city = city_of(day, seed=seed)
    events = events_of(day, city)
    last = max([int(city.end_s), *(ev["t"] for ev in events)])
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "t": city.day_start_s,
        "e": "header",
        "city": city.to_json(),
        "policy": policy_of(day).to_dict(),
    }
    with p.open("w", encoding="utf-8") as fh:
        for ev in [header, *events, {"t": last, "e": "end", "match_calls": 0, "events": 0}]:
            fh.write(json.dumps(ev, separators=(",", ":"), default=_plain) + "\n")
    return city


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (and anything else with ``item``)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = [
    "AnswerEstimate",
    "city_of",
    "estimate_answers",
    "events_of",
    "policy_of",
    "write_log",
]
