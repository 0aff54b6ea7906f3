"""A dispatch round passes its match time budget through, and reports the gap bound."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from dispatch.assign import Assignment, match
from dispatch.errors import InvalidInput
from dispatch.offers import OfferDesk, OfferPolicy
from dispatch.rounds import RoundParams, admit, offer_round
from tests.dispatch.test_assign import NOW, TRAVEL, random_batch


@pytest.mark.parametrize("budget", [0, -0.5, math.nan, math.inf, True])
def test_round_params_reject_a_bad_budget(budget: object) -> None:
    with pytest.raises(InvalidInput, match="match_budget_s"):
        RoundParams(match_budget_s=budget)  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [None, 1.5])
def test_offer_round_passes_the_budget_to_match(budget: float | None) -> None:
    orders, fleet = random_batch(5, 12, 30, constrained=False)
    desk = OfferDesk(OfferPolicy())
    admit(desk, orders, fleet, NOW)
    seen: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Assignment:
        seen.append(kwargs)
        return match(*args, **kwargs)

    out = offer_round(
        desk,
        orders,
        fleet,
        NOW,
        travel=TRAVEL,
        params=RoundParams(match_budget_s=budget),
        match_fn=spy,
    )
    assert len(seen) == 1
    assert seen[0].get("budget_s") == budget
    assert out.assignment is not None
    assert out.assignment.gap_bound == 0.0  # small batch: certified well within budget
    assert len(out.offers) == out.assignment.assigned
    assert np.isin(out.assignment.order_ids, orders.ids).all()
