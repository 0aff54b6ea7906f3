"""Pydantic in/out models of the payments API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from api.payments.providers import ProviderName


class PayIn(BaseModel):
    """Pay an order; the provider defaults to the configured one."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName | None = None


class PaymentOut(BaseModel):
    """What the client needs to pay: WeChat JSAPI params, an Alipay order string or a URL."""

    provider: ProviderName
    out_trade_no: str
    amount_fen: int
    client_params: dict[str, str] = {}
    order_string: str | None = None
    pay_url: str | None = None


class ReconcileOut(BaseModel):
    """Result of asking the provider about an order whose notification never came."""

    outcome: str
    status: str
