"""HTTP endpoints of payments: pay an order, provider notifications, sandbox pay page, reconcile;
cancel an order and decide a refund request (the refunds are payments').

Notification endpoints read the raw body (verification is over the exact bytes)
and answer exactly as each provider wants (WeChat/sandbox: 204 or 4xx JSON;
Alipay: the text ``success``).
"""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.auth.dependencies import CurrentUser, ManagerUser
from api.auth.models import Role
from api.catalog.schemas import localized
from api.core.db import utcnow
from api.core.deps import IdPath, JsonBody, LocaleDep, SessionDep, SettingsDep
from api.core.errors import Forbidden, InvalidInput, error_responses
from api.core.i18n import translate
from api.orders import service as orders
from api.orders.dependencies import IdempotencyKeyHeader, VisibleOrder
from api.orders.schemas import CancelIn, OrderOut, RefundDecisionIn
from api.orders.views import render
from api.payments import service
from api.payments.dependencies import ProvidersDep
from api.payments.providers import HttpReply, ProviderName, SandboxProvider
from api.payments.schemas import PayIn, PaymentOut, ReconcileOut
from api.payments.texts import PAGE_TEXTS

_errors = error_responses(400, 401, 403, 404, 409, 413, 415, 422)
router = APIRouter(prefix="/v1", tags=["payments"], responses=_errors)
#: Order routes whose use case is a payment's (a refund on cancel or after-sales): they sit
#: here, above orders, and are documented with the orders (api/orders/router.py).
order_router = APIRouter(
    prefix="/v1/orders", tags=["orders"], dependencies=[JsonBody], responses=_errors
)


def _intent_out(intent: Any) -> PaymentOut:
    return PaymentOut(
        provider=intent.provider,
        out_trade_no=intent.out_trade_no,
        amount_fen=intent.amount_fen,
        client_params=dict(intent.client_params),
        order_string=intent.order_string,
        pay_url=intent.pay_url,
    )


@router.post("/orders/{order_id}/payments", summary="Pay an order", dependencies=[JsonBody])
async def pay_order(
    order: VisibleOrder,
    body: PayIn,
    session: SessionDep,
    settings: SettingsDep,
    providers: ProvidersDep,
    user: CurrentUser,
    locale: LocaleDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Start paying: WeChat JSAPI params, an Alipay order string, or the sandbox pay page."""
    if order.customer_id != user.id:
        raise Forbidden()
    name = body.provider or ProviderName(settings.payment_provider)
    provider = providers.get(name)
    if provider is None:
        raise service.ProviderUnavailable()
    body_hash = orders.request_hash({"order_id": order.id, **body.model_dump(mode="json")})
    if idempotency_key:
        stored = await orders.stored_response(session, user.id, "pay", idempotency_key, body_hash)
        if stored is not None:
            return JSONResponse(stored[1], status_code=stored[0])
    svc, _ = await orders.service_and_worker(session, order)
    description = (localized(svc.names, locale) if svc else order.order_no)[:40]
    payer = await service.payer_openid(session, provider.name, user.id)
    intent = await service.start_payment(
        session, order, provider, description=description, payer_id=payer, now=utcnow()
    )
    out = _intent_out(intent)
    if idempotency_key:
        orders.store_response(
            session, user.id, "pay", idempotency_key, body_hash, 200,
            out.model_dump(mode="json"), utcnow(),
        )  # fmt: skip
        await session.commit()
    return out


@router.post("/orders/{order_id}/payments/reconcile", summary="Ask the provider (no callback came)")
async def reconcile(
    order: VisibleOrder,
    session: SessionDep,
    settings: SettingsDep,
    providers: ProvidersDep,
    user: CurrentUser,
) -> ReconcileOut:
    """Query the provider for the order's pending payments and apply a verified success."""
    if user.role == "worker":
        raise Forbidden()
    outcome = await service.reconcile(session, providers, order, settings, now=utcnow())
    return ReconcileOut(outcome=outcome, status=await service.fresh_status(session, order))


@order_router.post("/{order_id}/cancel", summary="Cancel (refund when paid, fee after the cut-off)")
async def cancel_order(
    order: VisibleOrder,
    body: CancelIn,
    session: SessionDep,
    settings: SettingsDep,
    providers: ProvidersDep,
    user: CurrentUser,
    locale: LocaleDep,
) -> OrderOut:
    """Customer (own) or staff (own enterprise) cancel a pending order."""
    if user.role == Role.WORKER.value:
        raise Forbidden()
    done = await service.cancel_order(
        session, providers, order.id, user.id, settings, reason=body.reason, now=utcnow()
    )
    return await render(session, done, locale)


@order_router.post(
    "/{order_id}/refund-decision", summary="Staff approve or reject a refund request"
)
async def refund_decision(
    order_id: IdPath,
    body: RefundDecisionIn,
    session: SessionDep,
    providers: ProvidersDep,
    user: ManagerUser,
    locale: LocaleDep,
) -> OrderOut:
    """Approval refunds what was paid and not yet refunded."""
    await orders.visible_order(session, user, order_id)
    order = await service.approve_refund(
        session, providers, order_id, user.id, approve=body.approve, now=utcnow()
    )
    return await render(session, order, locale)


def _reply(reply: HttpReply) -> Response:
    return Response(content=reply.body, status_code=reply.status_code, headers=dict(reply.headers))


async def _notify(
    name: ProviderName, request: Request, session: Any, settings: Any, providers: Any
) -> Response:
    provider = providers.get(name)
    if provider is None:
        return JSONResponse({"code": "FAIL", "message": "provider not configured"}, 404)
    raw = await request.body()
    result = await service.handle_notification(
        session, provider, dict(request.headers), raw, settings, now=utcnow()
    )
    return _reply(result.reply)


@router.post(
    "/payments/wechatpay/notify", summary="WeChat Pay v3 notification", include_in_schema=False
)
async def wechatpay_notify(
    request: Request, session: SessionDep, settings: SettingsDep, providers: ProvidersDep
) -> Response:
    """Verified, checked against the order, idempotent; 204 or 4xx ``{"code": "FAIL"}``."""
    return await _notify(ProviderName.WECHATPAY, request, session, settings, providers)


@router.post("/payments/alipay/notify", summary="Alipay async notify", include_in_schema=False)
async def alipay_notify(
    request: Request, session: SessionDep, settings: SettingsDep, providers: ProvidersDep
) -> Response:
    """Verified, checked against the order, idempotent; replies ``success`` when taken."""
    return await _notify(ProviderName.ALIPAY, request, session, settings, providers)


@router.post("/payments/sandbox/notify", summary="Sandbox notification", include_in_schema=False)
async def sandbox_notify(
    request: Request, session: SessionDep, settings: SettingsDep, providers: ProvidersDep
) -> Response:
    """The sandbox's WeChat-v3-format callbacks, through the same code path."""
    return await _notify(ProviderName.SANDBOX, request, session, settings, providers)


def _sandbox(providers: Any) -> SandboxProvider:
    provider = providers.get(ProviderName.SANDBOX)
    if not isinstance(provider, SandboxProvider):
        raise service.ProviderUnavailable()
    return provider


def _page(locale: str, title: str, body: str) -> HTMLResponse:
    page = (
        f'<!doctype html><html lang="{html.escape(locale)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="font-family:sans-serif;max-width:28em;margin:2em auto">{body}</body></html>'
    )
    return HTMLResponse(page, headers={"Content-Language": locale})


@router.get(
    "/payments/sandbox/pay",
    summary="Sandbox pay page",
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def sandbox_page(
    session: SessionDep,
    providers: ProvidersDep,
    locale: LocaleDep,
    out_trade_no: Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")],
) -> HTMLResponse:
    """A local page with one button that "pays" (the sandbox then sends a signed callback)."""
    _sandbox(providers)
    payment = await service.payment_by_trade_no(session, out_trade_no)
    if payment is None:
        raise InvalidInput(code="unknown_trade")
    t = {k: translate(v, locale) for k, v in PAGE_TEXTS.items()}
    amount = f"{payment.amount_fen // 100}.{payment.amount_fen % 100:02d}"
    body = (
        f"<h1>{html.escape(t['title'])}</h1>"
        f"<p>{html.escape(t['notice'])}</p>"
        f"<p>{html.escape(t['amount'])}: ¥{amount}</p>"
        f'<form method="post" action="/v1/payments/sandbox/pay">'
        f'<input type="hidden" name="out_trade_no" value="{html.escape(out_trade_no)}">'
        f'<button type="submit">{html.escape(t["button"])}</button></form>'
    )
    return _page(locale, t["title"], body)


@router.post(
    "/payments/sandbox/pay",
    summary="Sandbox: pay",
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def sandbox_pay(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    providers: ProvidersDep,
    locale: LocaleDep,
) -> HTMLResponse:
    """Mark the sandbox trade paid and deliver its signed callback to the notify code path."""
    sandbox = _sandbox(providers)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    trade_no = (form.get("out_trade_no") or [""])[0]
    if not trade_no or len(trade_no) > 32:
        raise InvalidInput(code="unknown_trade")
    try:
        callback = sandbox.pay(trade_no)
    except Exception as exc:  # TradeNotFound / invalid number: the page was not from us
        raise InvalidInput(code="unknown_trade") from exc
    result = await service.handle_notification(
        session, sandbox, dict(callback.headers), callback.body, settings, now=utcnow()
    )
    t = {k: translate(v, locale) for k, v in PAGE_TEXTS.items()}
    text = t["paid"] if result.outcome in ("paid", "duplicate") else t["failed"]
    resp = _page(locale, t["title"], f"<h1>{html.escape(text)}</h1>")
    resp.headers["X-Payment-Outcome"] = result.outcome
    return resp
