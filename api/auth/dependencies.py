"""Auth-specific dependencies: the password hasher and the mini-program apps."""

from __future__ import annotations

from typing import Annotated

from argon2 import PasswordHasher
from fastapi import Depends, Request

from api.auth.models import SocialProvider
from api.auth.service import SocialApp
from api.core.deps import SettingsDep


async def get_password_hasher(request: Request) -> PasswordHasher:
    """The Argon2id hasher built at startup with the configured cost."""
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


async def get_wechat_app(settings: SettingsDep) -> SocialApp:
    """The WeChat mini-program's appid/secret and API base URL."""
    return SocialApp(
        SocialProvider.WECHAT,
        settings.wechat_appid,
        settings.wechat_secret,
        settings.wechat_base_url,
        settings.upstream_timeout_s,
    )


async def get_qq_app(settings: SettingsDep) -> SocialApp:
    """The QQ mini-program's appid/secret and API base URL."""
    return SocialApp(
        SocialProvider.QQ,
        settings.qq_appid,
        settings.qq_secret,
        settings.qq_base_url,
        settings.upstream_timeout_s,
    )


WechatAppDep = Annotated[SocialApp, Depends(get_wechat_app)]
QQAppDep = Annotated[SocialApp, Depends(get_qq_app)]
