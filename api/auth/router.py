"""HTTP endpoints of auth: register, login (phone, WeChat, QQ), refresh, logout, me, tenants."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.auth import service
from api.auth.dependencies import (
    AdminUser,
    CurrentUser,
    ManagerUser,
    PasswordHasherDep,
    QQAppDep,
    TokenConfigDep,
    WechatAppDep,
)
from api.auth.models import Role, User
from api.auth.schemas import (
    EnterpriseIn,
    EnterpriseOut,
    LoginIn,
    MemberIn,
    RefreshIn,
    RegisterIn,
    SocialLoginIn,
    TokenOut,
    UserOut,
)
from api.core.db import utcnow
from api.core.deps import HttpClientDep, IdPath, JsonBody, LocaleDep, SessionDep, SettingsDep
from api.core.errors import error_responses

_errors = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 423, 429, 503)
router = APIRouter(prefix="/v1/auth", tags=["auth"], dependencies=[JsonBody], responses=_errors)
tenants = APIRouter(
    prefix="/v1/enterprises", tags=["enterprises"], dependencies=[JsonBody], responses=_errors
)


async def _tokens(
    session: SessionDep, config: TokenConfigDep, user: User, *, is_new: bool = False
) -> TokenOut:
    pair = await service.issue_tokens(session, config, user, utcnow())
    await session.commit()
    return TokenOut.of(pair, user, is_new=is_new)


async def _social_login(
    body: SocialLoginIn,
    session: SessionDep,
    client: HttpClientDep,
    app: service.SocialApp,
    config: TokenConfigDep,
    locale: str,
) -> TokenOut:
    """Tokens for the mini-program user behind ``body.code`` (first login creates a customer)."""
    social = await service.code2session(client, app, body.code)
    user, created = await service.login_with_social(session, app, social, locale=locale)
    return await _tokens(session, config, user, is_new=created)


@router.post("/register", status_code=status.HTTP_201_CREATED, summary="Register with phone")
async def register(
    body: RegisterIn,
    session: SessionDep,
    hasher: PasswordHasherDep,
    config: TokenConfigDep,
    locale: LocaleDep,
) -> TokenOut:
    """Create a customer account with a mainland mobile number and a password, and sign in."""
    user = await service.register_customer(
        session,
        hasher,
        phone=body.phone,
        password=body.password,
        display_name=body.display_name,
        locale=locale,
    )
    return await _tokens(session, config, user, is_new=True)


@router.post("/login", summary="Sign in with phone and password")
async def login(
    body: LoginIn,
    session: SessionDep,
    hasher: PasswordHasherDep,
    config: TokenConfigDep,
    settings: SettingsDep,
) -> TokenOut:
    """Phone + password login; repeated failures lock the account for a while."""
    user = await service.login_with_password(
        session,
        hasher,
        phone=body.phone,
        password=body.password,
        now=utcnow(),
        max_failures=settings.login_max_failures,
        lockout_s=settings.login_lockout_s,
    )
    return await _tokens(session, config, user)


@router.post("/wechat/login", summary="Sign in with a WeChat mini-program code")
async def wechat_login(
    body: SocialLoginIn,
    session: SessionDep,
    client: HttpClientDep,
    app: WechatAppDep,
    config: TokenConfigDep,
    locale: LocaleDep,
) -> TokenOut:
    """Exchange a ``wx.login`` code for our tokens (first login creates a customer)."""
    return await _social_login(body, session, client, app, config, locale)


@router.post("/qq/login", summary="Sign in with a QQ mini-program code")
async def qq_login(
    body: SocialLoginIn,
    session: SessionDep,
    client: HttpClientDep,
    app: QQAppDep,
    config: TokenConfigDep,
    locale: LocaleDep,
) -> TokenOut:
    """Exchange a ``qq.login`` code for our tokens (first login creates a customer)."""
    return await _social_login(body, session, client, app, config, locale)


@router.post(
    "/wechat/bind", status_code=status.HTTP_204_NO_CONTENT, summary="Link WeChat to my account"
)
async def wechat_bind(
    body: SocialLoginIn,
    user: CurrentUser,
    session: SessionDep,
    client: HttpClientDep,
    app: WechatAppDep,
) -> None:
    """Link the WeChat identity behind a ``wx.login`` code to the signed-in user."""
    social = await service.code2session(client, app, body.code)
    await service.bind_social(session, user, app, social)


@router.post("/refresh", summary="Rotate a refresh token")
async def refresh(body: RefreshIn, session: SessionDep, config: TokenConfigDep) -> TokenOut:
    """A new token pair; reusing an old refresh token signs out every device of that login."""
    user, pair = await service.rotate_refresh_token(session, config, body.refresh_token, utcnow())
    return TokenOut.of(pair, user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out")
async def logout(body: RefreshIn, session: SessionDep) -> None:
    """Revoke the refresh token and every token rotated from the same login."""
    await service.logout(session, body.refresh_token, utcnow())


@router.get("/me", summary="My profile")
async def me(user: CurrentUser) -> UserOut:
    """The signed-in user."""
    return UserOut.of(user)


@tenants.post("", status_code=status.HTTP_201_CREATED, summary="Create an enterprise (admin)")
async def create_enterprise(body: EnterpriseIn, _: AdminUser, session: SessionDep) -> EnterpriseOut:
    """A new tenant."""
    enterprise = await service.create_enterprise(session, code=body.code, name=body.name)
    return EnterpriseOut.model_validate(enterprise)


@tenants.post(
    "/{enterprise_id:int}/members",
    status_code=status.HTTP_201_CREATED,
    summary="Add a worker or staff account",
)
async def create_member(
    enterprise_id: IdPath,
    body: MemberIn,
    actor: ManagerUser,
    session: SessionDep,
    hasher: PasswordHasherDep,
) -> UserOut:
    """Admins add to any enterprise, staff only to their own."""
    user = await service.create_member(
        session,
        hasher,
        actor,
        enterprise_id=enterprise_id,
        role=Role(body.role),
        phone=body.phone,
        password=body.password,
        display_name=body.display_name,
    )
    return UserOut.of(user)
