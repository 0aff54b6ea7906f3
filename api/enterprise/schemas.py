"""Request and response bodies of the enterprise dispatch board."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class BoardOrderOut(BaseModel):
    """An order as staff see it on the board (amounts in fen)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    order_no: str
    service_id: int
    service_area_id: int | None
    worker_id: int | None
    status: str
    dispatch_status: str | None
    aftersales_status: str | None
    slot_start: datetime
    duration_min: int
    amount_fen: int
    refunded_fen: int
    lat: float
    lng: float


class OrderPageOut(BaseModel):
    """One page of orders and the total matching the filters."""

    items: list[BoardOrderOut]
    total: int
    limit: int
    offset: int


class BoardWorkerOut(BaseModel):
    """A worker's live state: online/busy/offline, WGS-84 position, current order, ping age (s)."""

    id: int
    display_name: str
    skills: list[str]
    state: str
    lat: float | None
    lng: float | None
    last_ping_age_s: float | None
    current_order_id: int | None


class AssignIn(BaseModel):
    """The worker to give the order to (same enterprise)."""

    model_config = ConfigDict(extra="forbid")

    worker_id: int = Field(ge=1, le=2**53 - 1)


class DecisionOut(BaseModel):
    """One dispatch decision: the chosen worker's cost line and the runner-ups."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    worker_id: int | None
    mode: str
    reason: str | None
    total_cost: float | None
    cost: dict[str, Any]
    alternatives: list[dict[str, Any]]
    created_at: datetime


class OrderEventOut(BaseModel):
    """One step of the order's timeline."""

    model_config = ConfigDict(from_attributes=True)

    event: str
    from_status: str | None
    to_status: str
    from_sub: str | None
    to_sub: str | None
    actor_id: int | None
    data: dict[str, Any]
    created_at: datetime


class SettlementRowOut(BaseModel):
    """One worker's day (amounts in fen)."""

    worker_id: int
    display_name: str
    completed_orders: int
    amount_fen: int
    refunded_fen: int


class SettlementOut(BaseModel):
    """Per-worker settlement of one local day."""

    date: date
    workers: list[SettlementRowOut]


class DispatchSettingsIO(BaseModel):
    """Per-enterprise dispatch knobs; weights are dispatch.cost.CostWeights fields (cost seconds).

    Omitted fields take the platform defaults; ranges are checked by CostWeights and
    OfferPolicy (422 ``bad_dispatch_settings``).
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "grab"] = "auto"
    batch_window_s: float = 2.0
    accept_timeout_s: int = 30
    grab_window_s: int = 60
    weights: dict[str, float] = Field(default_factory=dict)
