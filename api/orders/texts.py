"""User-facing order texts (status labels, quote lines) as i18n msgids."""

from __future__ import annotations

from api.core.errors import DomainError
from api.orders.service import QUOTE_LABELS
from api.orders.state import OrderStatus

STATUS_LABELS: dict[str, str] = {
    OrderStatus.PENDING_PAYMENT: "Pending payment",
    OrderStatus.PENDING_SERVICE: "Pending service",
    OrderStatus.IN_SERVICE: "In service",
    OrderStatus.COMPLETED: "Completed",
    OrderStatus.CANCELLED: "Cancelled",
}


class _Texts(DomainError):
    """Registers these msgids with ``api.core.errors.all_messages`` (never raised)."""


for _i, _text in enumerate((*STATUS_LABELS.values(), *QUOTE_LABELS.values())):
    type(f"_OrderText{_i}", (_Texts,), {"message": _text, "code": "order_text"})
