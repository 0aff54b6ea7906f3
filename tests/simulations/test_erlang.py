"""Validation against queueing theory: a single-zone M/M/c day through the real dispatch.

The engine's wait-to-assign must equal, order by order, the waits of an exact FIFO
c-server queue (Kiefer-Wolfowitz recursion) fed the same arrival and service times —
that fails if the engine ignored busy workers, served out of order or delayed windows.
Its mean must agree with the Erlang-C formula: the raw mean within 4 batch-means
standard errors, and the control-variate estimate (engine mean corrected by the same
queue's long-run mean) within 10 %, which is statistically stable at test sizes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dispatch.cost import CostWeights
from dispatch.offers import OfferPolicy
from simulations.city import queue_city
from simulations.engine import Policy, simulate

MEAN_SERVICE_S = 600.0
WORKERS = 2
ORDERS = 260
WARMUP = 20


def erlang_c_wait_s(c: int, arrival_rate: float, service_rate: float) -> float:
    """Mean wait in queue of M/M/c (seconds), from the Erlang-C formula."""
    a = arrival_rate / service_rate
    top = a**c / math.factorial(c) * c / (c - a)
    prob_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return prob_wait / (c * service_rate - arrival_rate)


def fifo_waits(arrive: np.ndarray, service: np.ndarray, c: int) -> np.ndarray:
    """Waits of a FIFO c-server queue (Kiefer-Wolfowitz): each takes the earliest-free server."""
    free = np.zeros(c)
    free[:] = arrive[0]
    waits = np.empty(arrive.size)
    for i in range(arrive.size):
        j = int(np.argmin(free))
        start = max(arrive[i], free[j])
        waits[i] = start - arrive[i]
        free[j] = start + service[i]
    return waits


def queue_policy() -> Policy:
    """One-second windows, no fairness cap or cooldown, strong aging (FIFO among equals).

    The fairness cost is off: at 30 s per order served today, a worker with 120+ orders
    would cost more than leaving an order unassigned (3600 s) and never be matched again.
    """
    offer = OfferPolicy(accept_timeout_s=60, fairness_max_offers=10**6, miss_cooldown_s=0)
    weights = CostWeights(fairness_per_order=0.0, rating_per_star=0.0, reputation=0.0)
    return Policy(
        name="mmc",
        offer=offer,
        weights=weights,
        batch_window_s=1,
        aging_per_hour=3.6,
        max_lateness_s=None,
    )


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.4, 0.6, 0.8])
def test_mean_wait_matches_erlang_c(rho: float) -> None:
    lam_per_h = rho * WORKERS * 3600.0 / MEAN_SERVICE_S
    city = queue_city(lam_per_h, MEAN_SERVICE_S, WORKERS, ORDERS, seed=11)
    result = simulate(city, queue_policy())
    assert (result.assigned_at >= 0).all()
    waits = (result.assigned_at - city.release_s).astype(np.float64)

    reference = fifo_waits(
        city.release_s.astype(float), city.actual_service_s.astype(float), WORKERS
    )
    assert np.abs(waits - reference).max() <= 1.0, "engine is not a FIFO c-server queue"

    theory = erlang_c_wait_s(WORKERS, lam_per_h / 3600.0, 1.0 / MEAN_SERVICE_S)
    engine_mean = waits[WARMUP:].mean()
    # Raw mean against theory, within 4 standard errors from 8 batch means.
    batches = np.array_split(waits[WARMUP:], 8)
    se = np.std([b.mean() for b in batches], ddof=1) / math.sqrt(8)
    assert abs(engine_mean - theory) <= 4 * se + 1.0

    # Control variate: the same FIFO queue, fed 500k fresh customers, estimates the
    # long-run mean; engine mean - its own-inputs reference + long-run = a low-noise
    # estimate of the engine's long-run mean wait.
    rng = np.random.default_rng(5)
    n = 500_000
    arrive = np.floor(np.cumsum(rng.exponential(3600.0 / lam_per_h, n)))
    service = np.maximum(np.rint(rng.exponential(MEAN_SERVICE_S, n)), 1)
    long_run = fifo_waits(arrive, service, WORKERS)[1000:].mean()
    assert abs(long_run / theory - 1) < 0.05, "the reference queue itself disagrees with theory"
    estimate = engine_mean - reference[WARMUP:].mean() + long_run
    assert abs(estimate / theory - 1) < 0.10
