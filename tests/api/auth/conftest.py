"""Auth fixtures: fake WeChat and QQ jscode2session servers behind the app's HTTP client."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from api.core.settings import Settings
from tests.api.auth.fake_wechat import FakeCode2Session


@pytest.fixture
def wechat(settings: Settings) -> FakeCode2Session:
    """The fake WeChat server for this test."""
    return FakeCode2Session(settings.wechat_appid, settings.wechat_secret, "wechat.test")


@pytest.fixture
def qq(settings: Settings) -> FakeCode2Session:
    """The fake QQ server for this test."""
    return FakeCode2Session(settings.qq_appid, settings.qq_secret, "qq.test")


@pytest.fixture
def upstream(
    wechat: FakeCode2Session, qq: FakeCode2Session
) -> Callable[[httpx.Request], httpx.Response]:
    """Route outbound calls to the fake WeChat or QQ server by host."""

    def route(request: httpx.Request) -> httpx.Response:
        return qq(request) if request.url.host == "qq.test" else wechat(request)

    return route
