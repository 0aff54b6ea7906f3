"""Enterprise dispatch board over HTTP (staff of the enterprise, or an admin)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from api.core.deps import IdPath, JsonBody, SessionDep, SettingsDep
from api.core.errors import error_responses
from api.enterprise import service
from api.enterprise.dependencies import BoardUser, LiveDep, NowDep, ServiceTz
from api.enterprise.schemas import (
    AssignIn,
    BoardOrderOut,
    BoardWorkerOut,
    DecisionOut,
    DispatchSettingsIO,
    OrderEventOut,
    OrderPageOut,
    SettlementOut,
    SettlementRowOut,
)
from api.orders.state import DispatchStatus, OrderStatus

ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422)
router = APIRouter(
    prefix="/v1/enterprise", tags=["enterprise"], dependencies=[JsonBody], responses=ERRORS
)


@router.get("/orders", summary="Orders of my enterprise, filtered and paged")
async def orders(
    user: BoardUser,
    session: SessionDep,
    tz: ServiceTz,
    status: OrderStatus | None = None,
    dispatch_status: DispatchStatus | None = None,
    service_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    service_area_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> OrderPageOut:
    flt = service.OrderFilter(
        status, dispatch_status, service_id, service_area_id, date_from, date_to
    )
    rows, total = await service.list_orders(session, user, flt, tz, limit=limit, offset=offset)
    return OrderPageOut(
        items=[BoardOrderOut.model_validate(o) for o in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/workers", summary="Live positions and states of my workers")
async def workers(
    user: BoardUser, session: SessionDep, live: LiveDep, now: NowDep
) -> list[BoardWorkerOut]:
    rows = await service.board_workers(session, live, user, now=now)
    return [
        BoardWorkerOut(
            id=r.worker.id,
            display_name=r.worker.display_name,
            skills=list(r.worker.skills or []),
            state=r.state.value,
            lat=r.lat,
            lng=r.lng,
            last_ping_age_s=r.last_ping_age_s,
            current_order_id=r.current_order_id,
        )
        for r in rows
    ]


@router.post("/orders/{order_id}/assign", summary="Assign or reassign an order to a worker")
async def assign(
    order_id: IdPath,
    body: AssignIn,
    user: BoardUser,
    session: SessionDep,
    live: LiveDep,
    settings: SettingsDep,
    now: NowDep,
) -> BoardOrderOut:
    order = await service.assign(
        session, live, user, order_id, body.worker_id, settings=settings, now=now
    )
    return BoardOrderOut.model_validate(order)


@router.get("/orders/{order_id}/decisions", summary="Why the dispatcher chose (or not)")
async def decisions(order_id: IdPath, user: BoardUser, session: SessionDep) -> list[DecisionOut]:
    rows = await service.decisions(session, user, order_id)
    return [DecisionOut.model_validate(d) for d in rows]


@router.get("/orders/{order_id}/events", summary="The order's progress timeline")
async def events(order_id: IdPath, user: BoardUser, session: SessionDep) -> list[OrderEventOut]:
    rows = await service.timeline(session, user, order_id)
    return [OrderEventOut.model_validate(e) for e in rows]


@router.get("/settlement", summary="Per-worker settlement of one day")
async def settlement(
    day: date, user: BoardUser, session: SessionDep, tz: ServiceTz
) -> SettlementOut:
    rows = await service.settlement(session, user, day, tz)
    return SettlementOut(
        date=day,
        workers=[
            SettlementRowOut(
                worker_id=r.worker_id,
                display_name=r.display_name,
                completed_orders=r.completed_orders,
                amount_fen=r.amount_fen,
                refunded_fen=r.refunded_fen,
            )
            for r in rows
        ],
    )


EnterpriseQuery = Annotated[
    int | None, Query(ge=1, le=2**53 - 1, description="admin: whose settings (staff: own)")
]


@router.get("/dispatch-settings", summary="My enterprise's dispatch settings")
async def get_dispatch_settings(
    user: BoardUser, session: SessionDep, enterprise_id: EnterpriseQuery = None
) -> DispatchSettingsIO:
    parsed = await service.get_dispatch_settings(session, user, enterprise_id)
    return DispatchSettingsIO.model_validate(parsed.as_json())


@router.put("/dispatch-settings", summary="Change my enterprise's dispatch settings")
async def put_dispatch_settings(
    body: DispatchSettingsIO,
    user: BoardUser,
    session: SessionDep,
    enterprise_id: EnterpriseQuery = None,
) -> DispatchSettingsIO:
    parsed = await service.put_dispatch_settings(session, user, enterprise_id, body.model_dump())
    return DispatchSettingsIO.model_validate(parsed.as_json())
