"""Fixtures for the payment provider tests: generated keys, certificates and fake gateways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api.payments.providers.alipay import AlipayConfig, AlipayProvider
from api.payments.providers.keys import PlatformKey, PlatformKeyring
from api.payments.providers.wechatpay import WeChatPayConfig, WeChatPayProvider
from tests.api.payments.doubles import (
    ALIPAY_APP_ID,
    ALIPAY_NOTIFY_URL,
    ALIPAY_SELLER_ID,
    APIV3_KEY,
    APPID,
    FIXED_NOW,
    MCHID,
    MERCHANT_SERIAL,
    NOTIFY_URL,
    PUB_KEY_ID,
    FakeAlipayGateway,
    FakeWeChatGateway,
    WeChatPlatform,
    new_rsa_key,
    private_pem,
    public_der_b64,
    self_signed_cert,
)

CERT_SERIAL = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1
EXPIRED_CERT_SERIAL = 0x1157F09EFDC096DE15EBE81A47057A7232F1B8E1


@pytest.fixture(scope="session")
def merchant_key() -> rsa.RSAPrivateKey:
    """Our merchant API key (signs requests and JSAPI params)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def platform_cert_key() -> rsa.RSAPrivateKey:
    """WeChat's platform-certificate key (the old mode)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def platform_pubkey_key() -> rsa.RSAPrivateKey:
    """WeChat Pay public key (`PUB_KEY_ID_...`, the new mode)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def expired_cert_key() -> rsa.RSAPrivateKey:
    """Key of a platform certificate that has expired."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def attacker_key() -> rsa.RSAPrivateKey:
    """A key nobody configured."""
    return new_rsa_key()


@pytest.fixture
def cert_platform(platform_cert_key: rsa.RSAPrivateKey) -> WeChatPlatform:
    """WeChat signing with the platform certificate."""
    return WeChatPlatform(key=platform_cert_key, serial=format(CERT_SERIAL, "X"))


@pytest.fixture
def pubkey_platform(platform_pubkey_key: rsa.RSAPrivateKey) -> WeChatPlatform:
    """WeChat signing with the WeChat Pay public key."""
    return WeChatPlatform(key=platform_pubkey_key, serial=PUB_KEY_ID)


@pytest.fixture
def keyring(
    platform_cert_key: rsa.RSAPrivateKey,
    platform_pubkey_key: rsa.RSAPrivateKey,
    expired_cert_key: rsa.RSAPrivateKey,
) -> PlatformKeyring:
    """Mid key switch: a platform certificate, the PUB_KEY_ID_ key and an expired cert."""
    return PlatformKeyring(
        [
            PlatformKey.from_certificate(self_signed_cert(platform_cert_key, CERT_SERIAL)),
            PlatformKey.from_public_key(PUB_KEY_ID, platform_pubkey_key.public_key()),
            PlatformKey.from_certificate(
                self_signed_cert(
                    expired_cert_key,
                    EXPIRED_CERT_SERIAL,
                    not_before=FIXED_NOW - timedelta(days=400),
                    not_after=FIXED_NOW - timedelta(days=1),
                )
            ),
        ]
    )


@pytest.fixture
def wechat_config(merchant_key: rsa.RSAPrivateKey, keyring: PlatformKeyring) -> WeChatPayConfig:
    """Merchant configuration matching the doubles' constants."""
    return WeChatPayConfig(
        mchid=MCHID,
        appid=APPID,
        merchant_serial_no=MERCHANT_SERIAL,
        merchant_private_key=merchant_key,
        apiv3_key=APIV3_KEY,
        notify_url=NOTIFY_URL,
        platform_keys=keyring,
    )


@pytest.fixture
def wechat_gateway(
    merchant_key: rsa.RSAPrivateKey, cert_platform: WeChatPlatform
) -> FakeWeChatGateway:
    """The fake v3 API, answering with the platform certificate's key."""
    return FakeWeChatGateway(merchant_public_key=merchant_key.public_key(), platform=cert_platform)


@pytest.fixture
async def wechat_http(wechat_gateway: FakeWeChatGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient wired to the fake gateway."""
    async with httpx.AsyncClient(transport=wechat_gateway.transport()) as client:
        yield client


@pytest.fixture
def wechat(wechat_config: WeChatPayConfig, wechat_http: httpx.AsyncClient) -> WeChatPayProvider:
    """The provider under test, on the fixed clock, talking to the fake gateway."""
    return WeChatPayProvider(
        wechat_config, wechat_http, base_url="https://wechatpay.test", clock=lambda: FIXED_NOW
    )


@pytest.fixture(scope="session")
def alipay_app_key() -> rsa.RSAPrivateKey:
    """Our Alipay application key (signs order strings and gateway requests)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def alipay_key() -> rsa.RSAPrivateKey:
    """Alipay's own key (signs notifies and gateway answers)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def alipay_config(alipay_app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> AlipayConfig:
    """Configuration loaded from text, the way settings hold it (PEM and bare base64)."""
    return AlipayConfig.from_strings(
        app_id=ALIPAY_APP_ID,
        seller_id=ALIPAY_SELLER_ID,
        app_private_key=private_pem(alipay_app_key),
        alipay_public_key=public_der_b64(alipay_key.public_key()),
        notify_url=ALIPAY_NOTIFY_URL,
        gateway_url="https://openapi.alipay.test/gateway.do",
    )


@pytest.fixture
def alipay_gateway(
    alipay_app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> FakeAlipayGateway:
    """The fake openapi gateway."""
    return FakeAlipayGateway(app_public_key=alipay_app_key.public_key(), alipay_key=alipay_key)


@pytest.fixture
async def alipay_http(alipay_gateway: FakeAlipayGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient wired to the fake Alipay gateway."""
    async with httpx.AsyncClient(transport=alipay_gateway.transport()) as client:
        yield client


@pytest.fixture
def alipay(alipay_config: AlipayConfig, alipay_http: httpx.AsyncClient) -> AlipayProvider:
    """The Alipay provider under test, on the fixed clock."""
    return AlipayProvider(alipay_config, alipay_http, clock=lambda: FIXED_NOW)
