"""Which providers the app builds, and production refusing to start without payment keys."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.core.settings import Environment, Settings
from api.payments.dependencies import build_providers
from api.payments.providers import ProviderName
from tests.api.payments.doubles import new_rsa_key, private_pem, public_der_b64

SECRET = "p" * 40


def test_production_refuses_the_sandbox(tmp_path: Path) -> None:
    settings = Settings(environment=Environment.PRODUCTION, jwt_secret=SECRET, var_dir=tmp_path)
    with pytest.raises(RuntimeError, match=r"(?i)sandbox is not for production"):
        create_app(settings)


def test_production_names_the_missing_wechatpay_keys(tmp_path: Path) -> None:
    settings = Settings(
        environment=Environment.PRODUCTION, jwt_secret=SECRET, var_dir=tmp_path,
        payment_provider="wechatpay", wechatpay_mchid="1900000109",
    )  # fmt: skip
    with pytest.raises(RuntimeError) as err:
        create_app(settings)
    assert "DAOJIA_WECHATPAY_APIV3_KEY" in str(err.value)
    assert "DAOJIA_WECHATPAY_MCHID" not in str(err.value)


def test_dev_builds_the_sandbox_and_configured_alipay(tmp_path: Path) -> None:
    http = httpx.AsyncClient()
    dev = build_providers(Settings(var_dir=tmp_path), http)
    assert set(dev) == {ProviderName.SANDBOX}
    app_key, alipay_key = new_rsa_key(), new_rsa_key()
    with_alipay = build_providers(
        Settings(
            var_dir=tmp_path, alipay_app_id="2021000123456789", alipay_seller_id="2088102146225135",
            alipay_app_private_key=private_pem(app_key),
            alipay_public_key=public_der_b64(alipay_key.public_key()),
            alipay_notify_url="https://daojia.test/v1/payments/alipay/notify",
        ),
        http,
    )  # fmt: skip
    assert set(with_alipay) == {ProviderName.SANDBOX, ProviderName.ALIPAY}
    prod = Settings(environment=Environment.PRODUCTION, jwt_secret=SECRET, var_dir=tmp_path)
    assert build_providers(prod, http) == {}
