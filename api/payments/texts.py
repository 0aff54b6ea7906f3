"""User-facing texts of the sandbox pay page, as i18n msgids."""

from __future__ import annotations

from api.core.errors import register_texts

PAGE_TEXTS: dict[str, str] = {
    "title": "Sandbox payment",
    "notice": "This is a test payment page: no real money is charged.",
    "amount": "Amount",
    "button": "Pay now",
    "paid": "Payment successful",
    "failed": "Payment failed",
}


register_texts(*PAGE_TEXTS.values())
