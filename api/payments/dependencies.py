"""Payment dependencies: the configured providers (built once in the app's lifespan)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import httpx
from fastapi import Depends, Request

from api.core.settings import Environment, Settings
from api.payments.providers import (
    AlipayConfig,
    AlipayProvider,
    PaymentProvider,
    PlatformKeyring,
    ProviderName,
    SandboxProvider,
    WeChatPayConfig,
    WeChatPayProvider,
)


def build_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[ProviderName, PaymentProvider]:
    """Every provider whose settings are complete; the sandbox outside production."""
    providers: dict[ProviderName, PaymentProvider] = {}
    if settings.environment is not Environment.PRODUCTION:
        page = settings.sandbox_pay_page_url or (
            settings.public_base_url.rstrip("/") + "/v1/payments/sandbox/pay"
        )
        providers[ProviderName.SANDBOX] = SandboxProvider(pay_page_url=page)
    if settings.wechatpay_mchid and settings.wechatpay_merchant_private_key:
        keyring = PlatformKeyring.from_text(
            certificates=settings.wechatpay_platform_certificates,
            public_key_id=settings.wechatpay_public_key_id or None,
            public_key=settings.wechatpay_public_key or None,
        )
        config = WeChatPayConfig.from_strings(
            mchid=settings.wechatpay_mchid,
            appid=settings.wechat_appid,
            merchant_serial_no=settings.wechatpay_merchant_serial_no,
            merchant_private_key_pem=settings.wechatpay_merchant_private_key,
            apiv3_key=settings.wechatpay_apiv3_key,
            notify_url=settings.wechatpay_notify_url,
            platform_keys=keyring,
        )
        providers[ProviderName.WECHATPAY] = WeChatPayProvider(
            config, http, base_url=settings.wechatpay_base_url
        )
    if settings.alipay_app_id and settings.alipay_app_private_key:
        alipay = AlipayConfig.from_strings(
            app_id=settings.alipay_app_id,
            seller_id=settings.alipay_seller_id,
            app_private_key=settings.alipay_app_private_key,
            alipay_public_key=settings.alipay_public_key,
            notify_url=settings.alipay_notify_url,
            gateway_url=settings.alipay_gateway_url,
        )
        providers[ProviderName.ALIPAY] = AlipayProvider(alipay, http)
    return providers


async def get_providers(request: Request) -> Mapping[ProviderName, PaymentProvider]:
    """The providers configured at startup (tests may add doubles to app.state)."""
    providers: dict[ProviderName, PaymentProvider] = request.app.state.payment_providers
    return providers


ProvidersDep = Annotated[Mapping[ProviderName, PaymentProvider], Depends(get_providers)]
