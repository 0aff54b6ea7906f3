"""The generated city day: orders and workers as parallel arrays, and its JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simulations.city.scenario import ScenarioError

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: ``booked_start_s`` of an on-demand order.
NOT_BOOKED = -1
#: ``cancel_at_s`` of an order whose customer never cancels.
NEVER = np.iinfo(np.int64).max


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
