"""HTTP endpoints of orders: quote, slots, booking, history, actions, share, rebook."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from api.addresses.service import get_own
from api.auth.dependencies import AccessClaims, CurrentUser, TokenConfigDep
from api.catalog.dependencies import InvalidPoint, optional_point
from api.catalog.schemas import localized
from api.core.db import utcnow
from api.core.deps import IdPath, JsonBody, LocaleDep, SessionDep, SettingsDep
from api.core.errors import error_responses
from api.core.geo_edge import CoordType
from api.core.i18n import translate
from api.orders import service
from api.orders.dependencies import (
    BookingEnvDep,
    BookingSession,
    IdempotencyKeyHeader,
    VisibleOrder,
)
from api.orders.models import Order
from api.orders.schemas import (
    BookingIn,
    OrderEventOut,
    OrderList,
    OrderOut,
    ProgressIn,
    QuoteLineOut,
    QuoteOut,
    RebookIn,
    RefundRequestIn,
    SharedOrderOut,
    ShareOut,
    SlotList,
    SlotOut,
)
from api.orders.state import OrderStatus
from api.orders.texts import STATUS_LABELS
from api.orders.views import render

_errors = error_responses(400, 401, 403, 404, 409, 413, 415, 422)
router = APIRouter(prefix="/v1/orders", tags=["orders"], dependencies=[JsonBody], responses=_errors)

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=100_000)]


@router.get("/quote", summary="Price of a service at a start time")
async def get_quote(
    session: SessionDep,
    settings: SettingsDep,
    locale: LocaleDep,
    service_id: Annotated[int, Query(ge=1, le=2**53 - 1)],
    slot_start: Annotated[AwareDatetime, Query(description="start, ISO 8601 with offset")],
) -> QuoteOut:
    """Base price plus evening/weekend surcharges, in fen."""
    svc = await service.bookable_service(session, service_id)
    q = service.quote(svc, slot_start, settings)
    return QuoteOut(
        service_id=svc.id,
        slot_start=slot_start,
        price_fen=q.price_fen,
        surcharge_fen=q.surcharge_fen,
        amount_fen=q.amount_fen,
        lines=[
            QuoteLineOut(code=x.code, label=translate(x.label, locale), amount_fen=x.amount_fen)
            for x in q.lines
        ],
    )


@router.get("/slots", summary="Bookable slots of a service at a place and day")
async def get_slots(
    session: SessionDep,
    settings: SettingsDep,
    env: BookingEnvDep,
    user: CurrentUser,
    service_id: Annotated[int, Query(ge=1, le=2**53 - 1)],
    day: Annotated[date, Query(alias="date", description="local date (service time zone)")],
    address_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lng: Annotated[float | None, Query(ge=-180, le=180)] = None,
    coord_type: Annotated[CoordType, Query()] = CoordType.WGS84,
) -> SlotList:
    """Start windows some worker can really take (travel, duration and shifts checked)."""
    svc = await service.bookable_service(session, service_id)
    if address_id is not None:
        address = await get_own(session, user, address_id)
        wlat, wlng = address.lat, address.lng
    else:
        point = await optional_point(lat, lng, coord_type)
        if point is None:
            raise InvalidPoint()
        wlat, wlng = point.lat, point.lng
    now = utcnow()
    found = await service.available_slots(session, env, svc, wlat, wlng, day, settings, now=now)
    return SlotList(
        service_id=svc.id,
        date=day,
        timezone=settings.service_timezone,
        slots=[SlotOut(start=s.start, end=s.end, available_workers=s.workers) for s in found],
    )


async def _replay(session: Any, stored: dict[str, Any], code: int, locale: str) -> JSONResponse:
    order = await service.get_order(session, int(stored["order_id"]))
    if order is None:  # the key's order is gone: nothing to replay
        raise service.OrderNotFound()
    body = (await render(session, order, locale)).model_dump(mode="json")
    return JSONResponse(body, status_code=code, headers={"Idempotent-Replayed": "true"})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Book a slot",
    response_model=OrderOut,
)
async def create_order(
    body: BookingIn,
    session: BookingSession,
    settings: SettingsDep,
    env: BookingEnvDep,
    claims: AccessClaims,
    locale: LocaleDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Create a 待支付 order and hold a worker for the slot (409 ``slot_taken`` if gone).

    The signed-in customer is checked in the booking's own first query (``AccessClaims``
    only verifies the token), one round trip fewer on the busiest write.
    """
    body_hash = service.request_hash(body.model_dump(mode="json"))
    user_id = int(claims["uid"])
    if idempotency_key:
        stored = await service.stored_response(session, user_id, "book", idempotency_key, body_hash)
        if stored is not None:
            return await _replay(session, stored[1], stored[0], locale)
    req = service.BookingRequest(
        service_id=body.service_id,
        address_id=body.address_id,
        slot_start=body.slot_start,
        note=body.note,
        preferred_worker_id=body.preferred_worker_id,
    )
    booked = await _book(session, env, user_id, req, settings, idempotency_key, body_hash)
    return await render(session, booked.order, locale, booked.worker, booked.service)


async def _book(
    session: Any,
    env: service.BookingEnv,
    user_id: int,
    req: service.BookingRequest,
    settings: Any,
    key: str | None,
    body_hash: str,
) -> service.Booked:
    idem = (key, body_hash) if key else None

    def on_created(order: Order) -> dict[str, Any]:
        return {"order_id": order.id}

    return await service.book(
        session, env, user_id, req, settings, now=utcnow(), idempotency=idem,
        on_created=on_created,
    )  # fmt: skip


@router.get("", summary="My orders (history)")
async def list_orders(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    locale: LocaleDep,
    status_: Annotated[list[OrderStatus] | None, Query(alias="status")] = None,
    date_from: Annotated[date | None, Query()] = None,
    date_to: Annotated[date | None, Query()] = None,
    service_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> OrderList:
    """Orders the caller may see, newest slot first; filters by status, date range, service."""
    flt = service.OrderFilter(
        statuses=tuple(status_ or ()), date_from=date_from, date_to=date_to, service_id=service_id
    )
    rows, total = await service.list_orders(
        session, user, flt, settings, limit=limit, offset=offset
    )
    return OrderList(
        items=[await render(session, o, locale) for o in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/shared/{token}", summary="A shared order's read-only summary (no sign-in)")
async def shared_order(
    token: Annotated[str, ...],
    session: SessionDep,
    config: TokenConfigDep,
    locale: LocaleDep,
) -> SharedOrderOut:
    """Service, status, time and worker name only: no names, phones or address."""
    if len(token) > 200:
        raise service.ShareLinkInvalid()
    order_id = service.read_share_token(config.secret, token, now=utcnow())
    order = await service.get_order(session, order_id)
    if order is None:
        raise service.ShareLinkInvalid()
    svc, worker = await service.service_and_worker(session, order)
    return SharedOrderOut(
        order_no_tail=order.order_no[-4:],
        service_name=localized(svc.names, locale) if svc else "",
        status=order.status,
        status_label=translate(STATUS_LABELS[order.status], locale),
        slot_start=order.slot_start,
        duration_min=order.duration_min,
        worker_name=worker.display_name if worker else None,
    )


@router.get("/{order_id}", summary="One order")
async def get_order(order: VisibleOrder, session: SessionDep, locale: LocaleDep) -> OrderOut:
    """The order (customer: own; worker: assigned; staff: own enterprise; admin: any)."""
    return await render(session, order, locale)


@router.get("/{order_id}/events", summary="The order's audit log")
async def order_events(order: VisibleOrder, session: SessionDep) -> list[OrderEventOut]:
    """Every transition, oldest first."""
    rows = await service.order_events(session, order.id)
    return [
        OrderEventOut(
            event=e.event,
            from_status=e.from_status,
            to_status=e.to_status,
            from_sub=e.from_sub,
            to_sub=e.to_sub,
            created_at=e.created_at,
        )
        for e in rows
    ]


@router.post(
    "/{order_id}/progress", summary="Worker steps: accept, depart, arrive, start, complete"
)
async def progress(
    order_id: IdPath,
    body: ProgressIn,
    session: SessionDep,
    user: CurrentUser,
    locale: LocaleDep,
) -> OrderOut:
    """The assigned worker (or the enterprise's staff) moves the visit along."""
    order = await service.worker_action(session, user, order_id, body.action, now=utcnow())
    return await render(session, order, locale)


@router.post("/{order_id}/refund-request", summary="After-sales refund request")
async def refund_request(
    order_id: IdPath,
    body: RefundRequestIn,
    session: SessionDep,
    user: CurrentUser,
    locale: LocaleDep,
) -> OrderOut:
    """The customer asks for a refund of a completed order."""
    order = await service.request_refund(session, user, order_id, body.reason, now=utcnow())
    return await render(session, order, locale)


@router.post(
    "/{order_id}/rebook",
    status_code=status.HTTP_201_CREATED,
    summary="Book again: same service, address and worker preference",
)
async def rebook(
    order: VisibleOrder,
    body: RebookIn,
    session: BookingSession,
    settings: SettingsDep,
    env: BookingEnvDep,
    user: CurrentUser,
    locale: LocaleDep,
) -> OrderOut:
    """A new order like ``order_id`` at a new slot (the same worker when free)."""
    if order.customer_id != user.id or order.address_id is None:
        raise service.OrderNotFound()
    req = service.BookingRequest(
        service_id=order.service_id,
        address_id=order.address_id,
        slot_start=body.slot_start,
        note=order.note,
        preferred_worker_id=order.worker_id,
    )
    booked = await _book(session, env, user.id, req, settings, None, "")
    return await render(session, booked.order, locale, booked.worker, booked.service)


@router.post("/{order_id}/share", summary="A signed, expiring share link")
async def share(
    order: VisibleOrder,
    user: CurrentUser,
    settings: SettingsDep,
    config: TokenConfigDep,
) -> ShareOut:
    """Only the customer shares; the link shows no personal data."""
    if order.customer_id != user.id:
        raise service.OrderNotFound()
    token, expires = service.share_token(
        config.secret, order, now=utcnow(), ttl_s=settings.share_ttl_s
    )
    return ShareOut(token=token, path=f"/v1/orders/shared/{token}", expires_at=expires)
