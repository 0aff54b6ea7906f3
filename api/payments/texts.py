"""User-facing texts of the sandbox pay page, as i18n msgids."""

from __future__ import annotations

from api.errors import DomainError

PAGE_TEXTS: dict[str, str] = {
    "title": "Sandbox payment",
    "notice": "This is a test payment page: no real money is charged.",
    "amount": "Amount",
    "button": "Pay now",
    "paid": "Payment successful",
    "failed": "Payment failed",
}


class _Texts(DomainError):
    """Registers these msgids with ``api.errors.all_messages`` (never raised)."""


for _i, _text in enumerate(PAGE_TEXTS.values()):
    type(f"_PayText{_i}", (_Texts,), {"message": _text, "code": "payment_text"})
