"""simulations.export: a recorded day (plain data) as a CityDay and a replay log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulations import replay
from simulations.city import NOT_BOOKED
from simulations.engine import OrderOutcome
from simulations.export import (
    PRIOR_DECLINE,
    PRIOR_RESPONSE_S,
    city_of,
    estimate_answers,
    events_of,
    write_log,
)

DAY0 = 1_930_320_000  # 2031-03-04 00:00 Shanghai (UTC epoch)
SETTINGS = {
    "offer_timeout_s": 30,
    "grab_window_s": 0,
    "dispatch_tick_s": 2.0,
    "dispatch_batch_max": 200,
    "dispatch_horizon_s": 7200,
    "dispatch_max_travel_s": 3600.0,
    "dispatch_max_lateness_s": 3600,
    "dispatch_aging_per_hour": 1.0,
}


def _order(oid: int, paid: int, slot: int, **more: Any) -> dict[str, Any]:
    return {
        "id": oid, "enterprise_id": 1, "service_id": 5, "lat": 31.23, "lng": 121.47,
        "created_s": paid - 60, "paid_s": paid, "slot_start_s": slot,
        "slot_end_s": slot + 3 * 3600, "duration_s": 7200, "amount_fen": 9900,
        "status": "completed", "dispatch_status": None, "worker_id": 11,
        "events": {}, "assigned": (),
    } | more  # fmt: skip


def _worker(wid: int, **more: Any) -> dict[str, Any]:
    return {
        "id": wid, "enterprise_id": 1, "home_lat": 31.22, "home_lng": 121.46,
        "skills": ("cleaning",), "transport_mode": "ebike", "rating": 4.8, "shifts": (),
        "answered_s": (), "declined": 0, "expired": 0,
    } | more  # fmt: skip


def _offer(fid: int, oid: int, wid: int, state: str, at: int, decided: int) -> dict[str, Any]:
    return {
        "id": fid, "order_id": oid, "worker_id": wid, "mode": "auto", "state": state,
        "offered_s": at, "expires_s": at + 30, "decided_s": decided, "eligible": (),
    }  # fmt: skip


def _day() -> dict[str, Any]:
    t = DAY0 + 10 * 3600
    done = {"accepted": t + 40, "arrived": t + 900, "started": t + 960, "completed": t + 4560}
    return {
        "day": "2031-03-04",
        "timezone": "Asia/Shanghai",
        "day_start_s": DAY0,
        "day_end_s": DAY0 + 86_400,
        "orders": [
            _order(1, t, t + 1800, events=done, assigned=((t + 40, 11),)),
            _order(
                2,
                t - 86_400,
                t + 6 * 3600,
                status="cancelled",
                worker_id=None,
                events={"cancelled": t + 100},
            ),
        ],
        "offers": [
            _offer(1, 1, 12, "declined", t, t + 9),
            _offer(2, 1, 11, "accepted", t + 30, t + 40),
        ],
        "escalations": [],
        "workers": [
            _worker(11, answered_s=(10,)),
            _worker(12, answered_s=(9, 20, 3), declined=2, expired=1),
            _worker(13, shifts=({"weekday": 0, "start_min": 480, "end_min": 1200},)),
        ],
        "services": {5: ("Home cleaning", ("cleaning",))},
        "settings": SETTINGS,
    }


def test_estimate_without_answers_is_the_prior() -> None:
    est = estimate_answers((), 0, 0, 30)
    assert est.decline_prob == pytest.approx(PRIOR_DECLINE)
    assert est.response_mean_s == pytest.approx(PRIOR_RESPONSE_S)


def test_estimate_follows_many_answers_and_counts_timeouts_as_censored() -> None:
    est = estimate_answers([20] * 1000, 500, 0, 30)
    assert est.decline_prob == pytest.approx(0.5, abs=0.01)
    assert est.response_mean_s == pytest.approx(20, abs=0.2)
    slower = estimate_answers([20] * 1000, 500, 200, 30)
    assert slower.response_mean_s > est.response_mean_s + 5


def test_city_of_maps_orders_workers_and_answers() -> None:
    city = city_of(_day(), seed=3)
    t = DAY0 + 10 * 3600
    assert city.seed == 3
    assert city.order_ids.tolist() == [1, 2]
    # Paid half an hour before its slot (within the 2 h horizon): on demand, released when paid.
    assert city.booked_start_s[0] == NOT_BOOKED
    assert city.release_s[0] == t
    # Paid a day ahead: booked, its latest on-time start is slot end - duration.
    assert city.booked_start_s[1] == t + 6 * 3600
    assert city.promised_s[1] == t + 6 * 3600 + 3600
    assert city.cancel_at_s[1] == t + 100
    assert city.actual_service_s.tolist() == [3600, 7200]
    # Worker 13 has shifts, none on a Tuesday, and never appears: not in the day.
    assert city.worker_ids.tolist() == [11, 12]
    assert city.decline_prob[1] > city.decline_prob[0]
    assert (city.worker_skills & city.required_skills[0]).all()


def test_log_replays_and_rebuilds_the_recorded_run(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    city = write_log(_day(), path)
    recorded = replay.result_from_log(path)
    assert recorded.offers.tolist() == [2, 0]
    assert recorded.declines.tolist() == [1, 0]
    assert recorded.outcome.tolist() == [OrderOutcome.SERVED, OrderOutcome.CANCELLED]
    assert recorded.travel_s[0] == 860  # accepted to arrived
    assert recorded.worker_row[0] == 0
    rec = replay.load(path)
    assert rec.policy.offer.accept_timeout_s == 30
    _, after = replay.replay(path, rec.policy)
    assert after.city.n_orders == city.n_orders


def test_events_are_in_time_order() -> None:
    day = _day()
    events = events_of(day, city_of(day))
    times = [ev["t"] for ev in events]
    assert times == sorted(times)
    kinds = [ev["e"] for ev in events]
    assert kinds.index("offer") < kinds.index("decline") < kinds.index("assign")
    assert kinds.index("start") < kinds.index("done")
