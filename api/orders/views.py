"""The API view of an order (``OrderOut``), shared by the orders and payments routers."""

from __future__ import annotations

from typing import Any

from api.catalog.models import Service
from api.catalog.schemas import localized
from api.core.i18n import translate
from api.orders import service
from api.orders.models import Order
from api.orders.roster import WorkerBrief
from api.orders.schemas import OrderOut, QuoteLineOut
from api.orders.texts import STATUS_LABELS
from api.tenants.models import Worker


async def render(
    session: Any,
    order: Order,
    locale: str,
    worker: WorkerBrief | Worker | None = None,
    svc: Service | None = None,
) -> OrderOut:
    """The API view of ``order`` (service name in ``locale``; service and worker if known)."""
    if svc is None or (worker is None and order.worker_id):
        found_svc, found_worker = await service.service_and_worker(session, order)
        svc = svc if svc is not None else found_svc
        worker = worker if worker is not None else found_worker
    return OrderOut(
        id=order.id,
        order_no=order.order_no,
        status=order.status,
        status_label=translate(STATUS_LABELS[order.status], locale),
        dispatch_status=order.dispatch_status,
        aftersales_status=order.aftersales_status,
        service_id=order.service_id,
        service_name=localized(svc.names, locale) if svc else "",
        enterprise_id=order.enterprise_id,
        customer_id=order.customer_id,
        worker=(
            {"id": worker.id, "display_name": worker.display_name, "rating": worker.rating}
            if worker
            else None
        ),
        slot_start=order.slot_start,
        slot_end=order.slot_end,
        duration_min=order.duration_min,
        price_fen=order.price_fen,
        surcharge_fen=order.surcharge_fen,
        amount_fen=order.amount_fen,
        refunded_fen=order.refunded_fen,
        cancel_fee_fen=order.cancel_fee_fen,
        quote_lines=[
            QuoteLineOut(
                code=line["code"],
                label=translate(line["label"], locale),
                amount_fen=line["amount_fen"],
            )
            for line in order.quote_lines
        ],
        address={k: str(v) for k, v in order.address_snapshot.items()},
        note=order.note,
        payment_provider=order.payment_provider,
        created_at=order.created_at,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        cancelled_at=order.cancelled_at,
        completed_at=order.completed_at,
    )
