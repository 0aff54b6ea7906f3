"""Who is calling: the signed-in user, role checks, token claims; the password hasher and the
mini-program apps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from argon2 import PasswordHasher
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import service as auth_service
from api.auth.models import Role, SocialProvider, User
from api.auth.service import SocialApp
from api.core.deps import SessionDep, SettingsDep
from api.core.errors import Forbidden, Unauthorized


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


async def get_token_config(request: Request) -> auth_service.TokenConfig:
    """Signing secret and lifetimes resolved at startup."""
    config: auth_service.TokenConfig = request.app.state.token_config
    return config


TokenConfigDep = Annotated[auth_service.TokenConfig, Depends(get_token_config)]

_bearer = HTTPBearer(auto_error=False, description="Access token from /v1/auth/*/login")


async def optional_user(
    session: SessionDep,
    config: TokenConfigDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User | None:
    """The signed-in user, or ``None`` without an Authorization header."""
    if credentials is None:
        return None
    return await auth_service.user_from_access_token(session, config, credentials.credentials)


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    """The signed-in user; 401 without a valid access token."""
    if user is None:
        raise Unauthorized()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def access_claims(
    config: TokenConfigDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    """The verified claims of the access token, without reading the user.

    For hot endpoints that read the user in a query they make anyway (booking): they
    must check the user exists and is active themselves. 401 without a valid token.
    """
    if credentials is None:
        raise Unauthorized()
    claims = auth_service.decode_access_token(config, credentials.credentials)
    try:
        claims["uid"] = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise auth_service.InvalidToken() from exc
    return claims


AccessClaims = Annotated[dict[str, Any], Depends(access_claims)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that admits only users with one of ``roles`` (403 otherwise)."""
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> User:
        if Role(user.role) not in allowed:
            raise Forbidden()
        return user

    return check


AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]
#: Staff of an enterprise or a platform admin (tenant checks happen in the services).
ManagerUser = Annotated[User, Depends(require_roles(Role.STAFF, Role.ADMIN))]
