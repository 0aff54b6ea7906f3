"""City generation and scenario files: determinism, demand shape, line-accurate errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.city import (
    NEVER,
    Scenario,
    ScenarioError,
    dump_scenario,
    fit_demand,
    generate,
    load_scenario,
    with_fit,
)

from .conftest import EXAMPLE


def test_same_seed_same_day(small: Scenario) -> None:
    a, b = generate(small, 3), generate(small, 3)
    for name in ("release_s", "lat", "lng", "actual_service_s", "cancel_at_s", "home_lat"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = generate(small, 4)
    assert not np.array_equal(a.lat[:5], c.lat[:5]) or a.n_orders != c.n_orders


def test_demand_follows_rates_and_profile(example: Scenario) -> None:
    big = example.scaled(demand=20.0)
    city = generate(big, 1)
    expected = big.demand.orders_per_day * big.demand.weekday_multiplier["sat"]
    # Poisson total: within 4 standard deviations of its mean.
    assert abs(city.n_orders - expected) < 4 * np.sqrt(expected)
    start = np.where(city.booked_start_s >= 0, city.booked_start_s, city.created_s)
    hours = (start - city.day_start_s) // 3600
    profile = np.asarray(big.demand.hourly_profile)
    assert set(np.unique(hours)) <= set(np.flatnonzero(profile > 0))
    # District shares follow the weights.
    weights = np.array([d.demand_weight for d in big.districts])
    share = np.bincount(city.district, minlength=weights.size) / city.n_orders
    np.testing.assert_allclose(share, weights / weights.sum(), atol=0.02)


def test_orders_and_workers_are_consistent(small_city) -> None:  # type: ignore[no-untyped-def]
    c = small_city
    assert (np.diff(c.release_s) >= 0).all(), "orders come in release order"
    assert (c.release_s >= c.created_s).all()
    booked = c.booked_start_s >= 0
    assert (c.release_s[booked] <= c.booked_start_s[booked]).all()
    assert (c.shift_end_s > c.shift_start_s).all()
    assert (c.actual_service_s >= 1).all()
    assert ((c.cancel_at_s == NEVER) | (c.cancel_at_s >= c.created_s)).all()
    # Every order's skill is a catalog bit.
    assert (c.required_skills != 0).all()
    # A booked slot is promised as a window: the worker arrives within slot_min.
    assert (c.promised_s[booked] - c.booked_start_s[booked] == 30 * 60).all()
    assert (c.delay_s >= 0).all()


def test_disruptions_are_drawn_at_their_rates(example: Scenario) -> None:
    from dataclasses import replace

    from simulations.city import Disruptions

    calm = generate(replace(example.scaled(demand=4.0), disruptions=Disruptions()), 5)
    rough = generate(
        replace(
            example.scaled(demand=4.0),
            disruptions=Disruptions(sick_prob=0.5, delay_prob=0.25, delay_mean_min=10),
        ),
        5,
    )
    # Their own random stream: the day itself is unchanged.
    np.testing.assert_array_equal(calm.lat, rough.lat)
    np.testing.assert_array_equal(calm.actual_service_s, rough.actual_service_s)
    assert (calm.delay_s == 0).all()
    assert (calm.sick_at_s == NEVER).all()
    assert abs((rough.delay_s > 0).mean() - 0.25) < 0.05
    assert 8 * 60 < rough.delay_s[rough.delay_s > 0].mean() < 12 * 60
    sick = rough.sick_at_s != NEVER
    assert abs(sick.mean() - 0.5) < 0.1
    assert (rough.sick_at_s[sick] >= rough.shift_start_s[sick] - 3600).all()
    assert (rough.sick_at_s[sick] < rough.shift_end_s[sick]).all()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _load_with_policy(path: Path) -> None:
    """Load a scenario and build its dispatch policy, as the CLI does."""
    from simulations.engine import Policy

    Policy.from_dict(load_scenario(path).dispatch)


def _with(example_text: str, old: str, new: str) -> str:
    assert old in example_text
    return example_text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("orders_per_day: 700", "orders_per_day: -5", "demand.orders_per_day", ">= 0"),
        ("demand_weight: 0.22", "demand_weight: -1", "districts[1].demand_weight", ">= 0"),
        (
            "{district: Xuhui,   count: 35",
            "{district: Xuhiu,   count: 35",
            "workers[2].district",
            "unknown district 'Xuhiu'",
        ),
        (
            'shift: "13:00-23:00", skills: [cleaning, cooking, appliance], decline_prob: 0.15',
            'shift: "18:00-09:00", skills: [cleaning, cooking, appliance], decline_prob: 0.15',
            "workers[1].shift",
            "before it starts",
        ),
        ("duration_min: 90", "duration_min: 0", "services[2].duration_min", ">= 1"),
        (
            "max_offers_per_order: 5",
            "max_offers_per_order: 5\n  bogus_knob: 1",
            "dispatch.bogus_knob",
            "unknown",
        ),
        ("booked_share: 0.60", "booked_share: 1.5", "services[2].booked_share", "<= 1"),
        ("lead_time_h: 12", "lead_time_h: -3", "services[3].lead_time_h", ">= 0"),
        ("sick_prob: 0.02", "sick_prob: -0.1", "disruptions.sick_prob", ">= 0"),
        ("delay_prob: 0.05", "delay_prob: 2", "disruptions.delay_prob", "<= 1"),
        ("delay_mean_min: 20", "delay_mean_min: -5", "disruptions.delay_mean_min", ">= 0"),
        (
            "delay_mean_min: 20",
            "delay_mean_min: 20\n  flu_rate: 1",
            "disruptions.flu_rate",
            "unknown",
        ),
        ("slot_min: 30", "slot_min: 0", "customers.slot_min", ">= 1"),
        ("plan_at_h: 6", "plan_at_h: 25", "dispatch.plan_at_h", "local hour"),
        ("plan_workers: 12", "plan_workers: 0", "dispatch.plan_workers", ">= 1"),
        ("reslot_h: 2", "reslot_h: -1", "dispatch.reslot_h", ">= 0"),
    ],
)
def test_bad_scenario_names_field_and_line(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    text = _with(EXAMPLE.read_text(encoding="utf-8"), old, new)
    path = _write(tmp_path, text)
    bad_line = next(i for i, line in enumerate(text.splitlines(), 1) if new.split("\n")[-1] in line)
    with pytest.raises(ScenarioError) as info:
        _load_with_policy(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field
    assert message in str(err)
    assert err.line == bad_line, str(err)
    assert f"bad.yaml:{bad_line}:" in str(err)


def test_dispatch_errors_carry_lines_through_load(tmp_path: Path) -> None:
    text = _with(EXAMPLE.read_text(encoding="utf-8"), "accept_timeout_s: 30", "accept_timeout_s: 0")
    with pytest.raises(ScenarioError, match="accept_timeout_s") as info:
        load_scenario(_write(tmp_path, text))
    assert info.value.line == 1 + text.splitlines().index("  accept_timeout_s: 0")


def test_not_yaml_reports_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ndistricts: [\n  {name: a,\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line is not None


def test_scenario_round_trips_through_yaml_and_json(example: Scenario, tmp_path: Path) -> None:
    for name in ("s.yaml", "s.json"):
        dump_scenario(example, tmp_path / name)
        again = load_scenario(tmp_path / name)
        assert again == example


def test_fit_recovers_rates_from_history(example: Scenario, tmp_path: Path) -> None:
    # 14 days of history drawn from the example itself: the fit must find its shape again.
    rows = ["created_at,district,service"]
    for day in range(14):
        s = example.scaled(demand=3.0)
        from dataclasses import replace
        from datetime import timedelta

        s = replace(s, day=example.day + timedelta(days=day))
        c = generate(s, day)
        on_demand = c.booked_start_s < 0
        for t, d, v in zip(
            c.created_s[on_demand], c.district[on_demand], c.service[on_demand], strict=True
        ):
            rows.append(f"{int(t)},{c.district_names[d]},{c.service_names[v]}")
    path = tmp_path / "history.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    fit = fit_demand(path, example)
    assert fit.days == 14
    # The busiest day of the week is the one the example says (Saturday).
    assert max(fit.demand.weekday_multiplier, key=fit.demand.weekday_multiplier.get) in (
        "sat",
        "sun",
    )
    weights = np.array([d.demand_weight for d in example.districts])
    got = np.array([fit.district_weights[d.name] for d in example.districts])
    np.testing.assert_allclose(got, weights / weights.sum(), atol=0.03)
    fitted = with_fit(example, fit)
    assert fitted.demand.orders_per_day == pytest.approx(fit.demand.orders_per_day)


def test_fit_rejects_unknown_district_with_line(example: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("created_at,district\n1795795200,Pudong\n1795795300,Atlantis\n", "utf-8")
    with pytest.raises(ScenarioError, match="Atlantis") as info:
        fit_demand(path, example)
    assert info.value.line == 3
