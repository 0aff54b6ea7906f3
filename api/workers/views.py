"""What a worker sees of an order: masked phone, GCJ-02 navigation (workers and plans routers)."""

from __future__ import annotations

from api.orders.models import Order
from api.tracking.service import navigation
from api.workers import service
from api.workers.schemas import OrderBrief


def brief(order: Order) -> OrderBrief:
    """A worker's view of an order: masked phone, GCJ-02 navigation."""
    snap = order.address_snapshot or {}
    address = str(snap.get("detail", ""))
    return OrderBrief(
        id=order.id,
        order_no=order.order_no,
        service_id=order.service_id,
        status=order.status,
        dispatch_status=order.dispatch_status,
        slot_start=order.slot_start,
        duration_min=order.duration_min,
        lat=order.lat,
        lng=order.lng,
        address=address,
        contact_name=snap.get("contact_name"),
        contact_phone_masked=service.mask_phone(snap.get("contact_phone")),
        navigation=navigation(order, address or order.order_no),
    )
